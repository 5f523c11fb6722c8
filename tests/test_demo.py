"""The demo package `kerasreg.demo`: its stage list, runner, table, plots.

The command line around it (`kerasreg demo`) is tested in test_cli.py.
"""

import ast
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


@pytest.mark.slow
def test_tuning_stage(tmp_path, monkeypatch, capsys):
    pytest.importorskip("keras_tuner")
    monkeypatch.setattr(plan, "QUICK_MAX_TRAIN", 400)
    (stage,) = [s for s in demo.STAGES if s.needs_tune]
    report = demo.run("digits", epochs=1, out=str(tmp_path), quick=True,
                      stages=[stage])
    assert report["sizes"]["train"] == 400
    best, ensemble = report["results"]
    assert best["method"] == "CoarseToFine best trial"
    assert ensemble["method"] == "CoarseToFine top-3 Ensemble"
    settings = best["tuning"]
    # 4 coarse trials of 1 epoch, then the top 3 trained for the budget.
    assert settings["stages"] == [[4, 1], [3, 1]]
    assert settings["trials"] == 7
    low, high = stages.TUNE_LEARNING_RATE
    assert low <= settings["learning_rate"] <= high
    low, high = stages.TUNE_L2
    assert low <= settings["l2"] <= high
    csv_lines = (tmp_path / "tuner.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 1 + 7  # header + one row per trial
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
