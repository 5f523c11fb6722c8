"""The demo package `kerasreg.demo`: its stage list, runner, table, plots.

The command line around it (`kerasreg demo`) is tested in test_cli.py; its
quick run (`kerasreg demo --quick --no-tune`) is checked here, stage by stage.
"""

import ast
import csv
import json
import math
import types

import numpy as np
import pytest

from kerasreg import datasets
from kerasreg import demo
from kerasreg.demo import context
from kerasreg.demo import models
from kerasreg.demo import plan
from kerasreg.demo import plots
from kerasreg.demo import stages


def test_plan_is_plain_data():
    # kerasreg_cli executes plan.py by its path to write `--help` without
    # importing keras: it must import nothing.
    with open(plan.__file__) as f:
        tree = ast.parse(f.read())
    assert not [
        node for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    ]


def test_stages_follow_the_plan():
    assert [(s.fn.__name__, s.title, s.needs_tune) for s in demo.STAGES] == [
        tuple(entry) for entry in plan.STAGES
    ]
    assert all(s.fn is getattr(stages, s.fn.__name__) for s in demo.STAGES)
    assert demo.STAGES is stages.STAGES


# --- the stages run: the model and probabilities behind every row -----------


class _Recorder:
    """Wraps the stages' `predict` and `result_row`: the model and the test
    probabilities behind every result row, by method."""

    def __init__(self, monkeypatch):
        self.predicted = []  # (model, probabilities)
        self.rows = {}  # method -> (model, probabilities)
        monkeypatch.setattr(stages, "predict", self._predict)
        monkeypatch.setattr(stages, "result_row", self._result_row)

    def _predict(self, model, x):
        probs = context.predict(model, x)
        self.predicted.append((model, probs))
        return probs

    def _result_row(self, method, probs, ctx, *args, **kwargs):
        (model,) = [m for m, p in self.predicted if p is probs]
        self.rows[method] = (model, np.asarray(probs, "float64"))
        return context.result_row(method, probs, ctx, *args, **kwargs)


def _nll(probs, y):
    return float(-np.mean(np.log(probs[np.arange(len(y)), y])))


def _temperature_scaled(probs, t):
    z = np.log(np.clip(probs, np.finfo("float32").tiny, 1.0)) / t
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _mean_of_members(members, x):
    return np.mean([context.predict(m, x) for m in members], axis=0)


def _test_and_val():
    (_, _), (x_val, y_val), (x_test, y_test) = datasets.load("digits", 0.1, 0)
    return (x_test, y_test), (x_val[: plan.QUICK_MAX_VAL], y_val[: plan.QUICK_MAX_VAL])


@pytest.mark.slow
def test_tuning_stage(tmp_path, monkeypatch, capsys):
    pytest.importorskip("keras_tuner")
    monkeypatch.setattr(plan, "QUICK_MAX_TRAIN", 400)
    recorder = _Recorder(monkeypatch)
    (stage,) = [s for s in demo.STAGES if s.needs_tune]
    report = demo.run("digits", epochs=1, out=str(tmp_path), quick=True,
                      stages=[stage])
    assert report["sizes"]["train"] == 400
    best, ensemble_row = report["results"]
    assert best["method"] == "CoarseToFine best trial"
    assert ensemble_row["method"] == "CoarseToFine top-3 Ensemble"
    settings = best["tuning"]
    # 4 coarse trials of 1 epoch, then the top 3 trained for the budget.
    assert settings["stages"] == [[4, 1], [3, 1]]
    assert settings["trials"] == 7
    low, high = stages.TUNE_LEARNING_RATE
    assert low <= settings["learning_rate"] <= high
    low, high = stages.TUNE_L2
    assert low <= settings["l2"] <= high
    with open(tmp_path / "tuner.csv", newline="") as f:
        trials = list(csv.DictReader(f))  # one row per trial
    assert len(trials) == 7
    assert sorted((t["stage"], t["epochs"]) for t in trials) == (
        [("0", "1")] * 4 + [("1", "1")] * 3)
    for name, (low, high) in (("learning_rate", stages.TUNE_LEARNING_RATE),
                              ("l2", stages.TUNE_L2)):
        assert all(low <= float(t[name]) <= high for t in trials)
    # The best trial: the first of the final stage's ranking, and no final
    # trial scored higher.
    (first,) = [t for t in trials if t["rank"] == "1"]
    assert first["stage"] == "1"
    assert float(first["val_accuracy"]) == max(
        float(t["val_accuracy"]) for t in trials if t["stage"] == "1")
    assert float(first["learning_rate"]) == settings["learning_rate"]
    assert float(first["l2"]) == settings["l2"]
    # The ensemble: the 3 best trials' models, the best first; its
    # probabilities are their mean, not the best model's.
    (x_test, y_test), _ = _test_and_val()
    best_model, best_probs = recorder.rows["CoarseToFine best trial"]
    ensemble, probs = recorder.rows["CoarseToFine top-3 Ensemble"]
    assert len(ensemble.members) == 3 and ensemble.members[0] is best_model
    np.testing.assert_allclose(
        _mean_of_members(ensemble.members, x_test), probs, rtol=1e-4, atol=1e-6)
    assert np.abs(probs - best_probs).max() > 1e-3
    for row, (_, p) in ((best, recorder.rows[best["method"]]),
                        (ensemble_row, recorder.rows[ensemble_row["method"]])):
        assert row["nll"] == pytest.approx(_nll(p, y_test), rel=1e-6)
    assert (tmp_path / "tuner.png").stat().st_size > 0
    lines = capsys.readouterr().out.splitlines()
    # The search prints nothing of its own: the stage's line is whole, and
    # the narrowed ranges and the best trials follow it as notes.
    (progress,) = [line for line in lines if line.startswith("[1/1]")]
    assert progress.endswith(" s)") and "CoarseToFine top-3 Ensemble acc" in progress
    notes = lines[lines.index(progress) + 1:]
    assert notes[0].startswith(
        "    CoarseToFine: stage 2/2 (3 trials x 1 epochs), ranges: "
    )
    assert [n.strip()[:7] for n in notes[1:4]] == ["Best-1 ", "Best-2 ", "Best-3 "]
    assert notes[1].startswith("    Best-1 (val_accuracy:")


def test_row_uses_kerasreg_metrics():
    """`result_row` scores the test set: accuracy, NLL and ECE by hand."""
    y = np.array([0, 1, 1])
    ctx = types.SimpleNamespace(y_test=y)
    # Confidences 0.9 (right), 0.9 (wrong), 0.7 (right), 15 bins:
    # (0.8667, 0.9333]: accuracy 0.5, confidence 0.9, weight 2/3;
    # (0.6667, 0.7333]: accuracy 1.0, confidence 0.7, weight 1/3.
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7]])
    row = context.result_row("m", probs, ctx, 2.0)
    assert row["test_accuracy"] == pytest.approx(2 / 3)
    assert row["nll"] == pytest.approx(
        -(math.log(0.9) + math.log(0.1) + math.log(0.7)) / 3
    )
    assert row["ece"] == pytest.approx(2 / 3 * 0.4 + 1 / 3 * 0.3)


def test_stage_settings_follow_the_budget():
    ctx = types.SimpleNamespace(epochs=30, x_train=np.zeros((1295, 1)),
                                batch_size=64)
    schedule = models.step_schedule(ctx)
    # drop every ceil(30 / 4) = 8 epochs by STEP_DROP_FACTOR.
    rates = [float(schedule(t)) for t in (0, 7, 8, 16, 29)]
    f = models.STEP_DROP_FACTOR
    expected = [models.LEARNING_RATE * f**k for k in (0, 0, 1, 2, 3)]
    np.testing.assert_allclose(rates, expected, rtol=1e-6)
    # 30 epochs of ceil(1295 / 64) = 21 steps: horizon 10% of 630 steps.
    assert models.ema_decay(ctx) == pytest.approx(1 - 10 / 630)
    ctx.epochs = 1
    assert models.ema_decay(ctx) == 0.9  # clipped: horizon of 10 steps at least
    ctx.quick, ctx.epochs = False, 30
    assert stages.tune_stages(ctx) == ((10, 3), (plan.TUNE_TOP_K, 30))


def test_regularized_model_uses_kerasreg_layers():
    import kerasreg

    ctx = types.SimpleNamespace(x_train=np.zeros((4, 8, 8, 1)), num_classes=10,
                                seed=0)
    model = models.regularized_model(ctx)
    kinds = [type(layer) for layer in model.layers]
    assert kinds.count(kerasreg.BatchNormalization) == len(models.HIDDEN_UNITS)
    assert kinds.count(kerasreg.Dropout) == len(models.HIDDEN_UNITS)
    dense = [layer for layer in model.layers if layer.name.startswith("dense")]
    assert isinstance(dense[0].kernel_initializer, kerasreg.HeNormal)
    # He normal (untruncated): std sqrt(2 / fan_in) = sqrt(2 / 64).
    std = float(np.std(np.asarray(dense[0].kernel)))
    assert std == pytest.approx(np.sqrt(2 / 64), rel=0.05)


def test_runner_with_custom_stages(tmp_path, capsys):
    """A stage is a function in a list; metrics computed from its probs."""

    def uniform(ctx):
        probs = np.full((len(ctx.y_test), ctx.num_classes), 0.1)
        return [context.result_row("uniform", probs, ctx, 1.5)]

    def never(ctx):
        raise AssertionError("a needs_tune stage ran with tune=False")

    custom = [
        demo.Stage("uniform guess", uniform),
        demo.Stage("search", never, needs_tune=True),
    ]
    report = demo.run(
        "digits", epochs=1, out=str(tmp_path), tune=False, stages=custom
    )
    _, _, (_, y_test) = datasets.load("digits", 0.1, 0)
    # argmax of a uniform row is class 0; confidence 0.1 everywhere.
    accuracy = np.mean(y_test == 0)
    (row,) = report["results"]
    assert row["test_accuracy"] == pytest.approx(accuracy)
    assert row["nll"] == pytest.approx(math.log(10))
    assert row["ece"] == pytest.approx(abs(accuracy - 0.1))
    assert row["train_time_s"] == 1.5
    out = capsys.readouterr().out
    assert "[2/2] search: skipped (--no-tune)" in out
    # The source is named once, by the demo's own first line.
    assert out.splitlines()[0].startswith(
        "kerasreg demo: digits from scikit-learn's bundled copy"
    )
    assert json.loads((tmp_path / "results.json").read_text()) == json.loads(
        json.dumps(report)
    )
    # No stage drew a schedule: the learning curves only.
    assert out.rstrip().endswith(
        f"wrote results.json, learning_curves.png to {tmp_path}"
    )


def test_run_rejects_bad_epochs(tmp_path):
    with pytest.raises(ValueError, match="argument `epochs`"):
        demo.run("digits", epochs=0, out=str(tmp_path), stages=[])


def test_format_table_is_aligned():
    rows = [
        {"method": "a", "test_accuracy": 0.5, "nll": 1.0, "ece": 0.1,
         "train_time_s": 2.0},
        {"method": "a longer name", "test_accuracy": 0.95, "nll": 0.123456,
         "ece": 0.01, "train_time_s": 123.4},
    ]
    lines = demo.format_table(rows).splitlines()
    assert len({len(line) for line in lines}) == 1
    assert lines[0].split() == ["method", "test", "acc", "NLL", "ECE", "train", "s"]
    assert lines[3].split() == ["a", "longer", "name", "0.9500", "0.1235",
                                "0.0100", "123.4"]


# --- plots ----------------------------------------------------------------


@pytest.fixture
def template_backend():
    """pyplot on the non-Agg "template" backend, as a notebook user's would be."""
    matplotlib = pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    previous = matplotlib.get_backend()
    plt.switch_backend("template")
    figures = plt.get_fignums()
    yield matplotlib
    assert plt.get_fignums() == figures  # no pyplot figure left open
    plt.switch_backend(previous)


def _png_pixels(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


def test_learning_curves_leave_the_backend_alone(template_backend, tmp_path):
    rows = [
        {"method": "a", "history": {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7],
                                    "val_accuracy": [0.5, 0.8]}},
        {"method": "no curves", "history": {}},
    ]
    fig = plots.plot_learning_curves(rows, tmp_path / "curves.png")
    assert template_backend.get_backend() == "template"
    ax_loss, ax_acc = fig.axes
    assert [line.get_label() for line in ax_loss.get_lines()] == [
        "a (loss)", "a (val_loss)"
    ]
    np.testing.assert_allclose(ax_acc.get_lines()[0].get_ydata(), [0.5, 0.8])
    image = _png_pixels(tmp_path / "curves.png")
    assert image.shape[:2] == (400, 1100)  # 11 x 4 inches at 100 dpi
    assert np.std(image[..., :3]) > 0.01


def test_schedules_plot_leaves_the_backend_alone(template_backend, tmp_path):
    # Also `kerasreg.schedules.plot`, which draws it.
    schedules = {"constant": lambda t: 0.05 + 0.0 * t, "halved": lambda t: 0.1 / 2 ** (t // 5)}
    fig = plots.plot_schedules(schedules, 20, tmp_path / "lr.png")
    assert template_backend.get_backend() == "template"
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["constant", "halved"]
    np.testing.assert_allclose(
        lines[1].get_ydata(), [0.1 / 2 ** (t // 5) for t in range(20)]
    )
    assert np.std(_png_pixels(tmp_path / "lr.png")[..., :3]) > 0.01


# --- the whole demo, quick: each stage does what its row claims -------------


@pytest.mark.slow
def test_quick_demo_stages_do_what_they_claim(tmp_path, capsys, monkeypatch):
    # The command line's quick run (`kerasreg demo --quick --no-tune`).
    from kerasreg import cli

    recorder = _Recorder(monkeypatch)
    out = tmp_path / "demo"
    assert cli.main(["demo", "--quick", "--no-tune", "--out", str(out)]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["dataset"] == "digits"
    assert report["epochs"] == demo.QUICK_EPOCHS == 2
    assert report["quick"] is True and report["tune"] is False
    assert report["sizes"] == {"train": 1295, "val": 143, "test": 359}
    methods = [r["method"] for r in report["results"]]
    assert methods == [
        "baseline MLP",
        "+ Dropout, BN, He, step LR",
        "+ WeightEMA (EMA weights)",
        "SnapshotEnsemble (M=5)",
        "snapshot weights averaged, BN re-estimated",
        f"DeepEnsemble (M={plan.DEEP_MEMBERS})",
        f"+ temperature scaling (T={report['results'][-1]['temperature']:.2f})",
    ]
    assert list(recorder.rows) == methods
    (x_test, y_test), (x_val, y_val) = _test_and_val()
    rows = {r["method"]: r for r in report["results"]}
    for method, (_, probs) in recorder.rows.items():
        row = rows[method]
        # Two epochs of SGD on digits beat chance (0.1) by far.
        assert 0.5 < row["test_accuracy"] <= 1.0, row
        assert row["nll"] > 0 and 0 <= row["ece"] <= 1
        # Each row scores its own model's test probabilities.
        assert row["test_accuracy"] == pytest.approx(
            np.mean(probs.argmax(axis=1) == y_test))
        assert row["nll"] == pytest.approx(_nll(probs, y_test), rel=1e-6)
        # The snapshots' average and the scaled ensemble have no curves.
        if method not in (methods[4], methods[6]):
            assert len(report["histories"][method]["val_loss"]) == 2
    base = recorder.rows[methods[1]][1]
    # Stages 3-5 change the stage-2 model's predictions.
    for method in methods[2:]:
        assert np.abs(recorder.rows[method][1] - base).max() > 1e-3, method
    # Stage 1 keeps its constant rate; the step schedule (stages 2, 3, 5):
    # 0.05, times 0.3 after a quarter of the epochs (ceil(2 / 4) = 1 epoch).
    for method in (methods[1], methods[2], methods[5]):
        np.testing.assert_allclose(
            report["histories"][method]["learning_rate"], [0.05, 0.015],
            rtol=1e-6)
    baseline = recorder.rows[methods[0]][0]
    assert float(baseline.optimizer.learning_rate) == pytest.approx(0.05)

    # Stage 4: 5 snapshots, taken after the last step of each cycle of
    # ceil(42 / 5) = 9 of the 2 x ceil(1295 / 64) = 42 steps; the ensemble's
    # probabilities are their mean; the averaged model is another model.
    ensemble, probs = recorder.rows["SnapshotEnsemble (M=5)"]
    steps = 2 * math.ceil(1295 / 64)
    cycle = math.ceil(steps / 5)
    assert ensemble.snapshot_steps == [
        t for t in range(steps) if (t + 1) % cycle == 0 or t + 1 == steps]
    snapshots = ensemble.snapshots
    assert len(snapshots) == len(ensemble.snapshot_steps) == 5
    np.testing.assert_allclose(_mean_of_members(snapshots, x_test),
                               probs, rtol=1e-4, atol=1e-6)
    # Stage 5: 3 members from different initializations; the ensemble is
    # their mean; temperature scaling is softmax(log p / T) with the T that
    # minimizes the validation NLL, and keeps every predicted class.
    deep, probs = recorder.rows[methods[5]]
    assert len(deep.members) == plan.DEEP_MEMBERS == 3
    first = [m.get_weights()[0] for m in deep.members]
    assert all(np.abs(a - b).max() > 1e-3 for a, b in
               [(first[0], first[1]), (first[0], first[2]), (first[1], first[2])])
    np.testing.assert_allclose(_mean_of_members(deep.members, x_test), probs,
                               rtol=1e-4, atol=1e-6)
    t = report["results"][-1]["temperature"]
    assert t != 1.0
    scaled = recorder.rows[methods[6]][1]
    np.testing.assert_allclose(scaled, _temperature_scaled(probs, t),
                               rtol=1e-3, atol=1e-6)
    np.testing.assert_array_equal(scaled.argmax(axis=1), probs.argmax(axis=1))
    val = context.predict(deep, x_val).astype("float64")
    fitted = _nll(_temperature_scaled(val, t), y_val)
    for other in (1.0, t * 1.1, t / 1.1):
        assert fitted <= _nll(_temperature_scaled(val, other), y_val) + 1e-6

    for name in ("results.json", "learning_curves.png", "schedules.png"):
        assert (out / name).stat().st_size > 0, name
    stdout = capsys.readouterr().out
    assert f"[1/{len(demo.STAGES)}] baseline MLP" in stdout
    assert "CoarseToFine search of learning rate and L2, top-3 as an " \
        "Ensemble: skipped (--no-tune)" in stdout
    assert f"{report['results'][0]['test_accuracy']:.4f}" in stdout

