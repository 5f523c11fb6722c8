import csv
import math
import os
import sys

import keras_tuner
import numpy as np
import pytest

from kerasreg.tuning import CoarseToFine
from kerasreg.tuning import beta
from kerasreg.tuning import log_uniform
from kerasreg.tuning import report


def declare(hp):
    log_uniform(hp, "learning_rate", 1e-6, 1.0)
    log_uniform(hp, "weight_decay", 1e-8, 1e-4)
    beta(hp, "beta_1")


class Toy(CoarseToFine):
    """Closed-form accuracy; learning rates above 0.1 "diverge"."""

    def run_trial(self, trial, *args, **kwargs):
        declare(trial.hyperparameters)  # the model builder records beta_1
        values = trial.hyperparameters.values
        if values["learning_rate"] > 0.1:
            # What CoarseToFine does when StopOnDivergence stopped the fit.
            values["tuner/diverged"] = "loss is nan at step 3"
            raise keras_tuner.errors.FailedTrialError("Diverged: loss is nan")
        acc = 0.9 - 0.05 * (math.log10(values["learning_rate"]) + 2) ** 2
        return {"val_accuracy": acc}


@pytest.fixture
def tuner(tmp_path):
    t = Toy(
        declare,
        keras_tuner.Objective("val_accuracy", "max"),
        stages=((12, 1), (4, 2)),
        top_k=3,
        seed=3,
        directory=str(tmp_path),
        project_name="report",
    )
    t.search(verbose=0)
    return t


def test_report_lines_and_rows(tuner):
    lines = []
    rows = report(tuner, top=3, print_fn=lines.append)
    trials = list(tuner.oracle.trials.values())
    assert len(rows) == len(trials) == 16
    # Best first: final stage (stage index 1) by accuracy, then stage 0.
    done = [t for t in trials if t.status == "COMPLETED"]
    expected = sorted(
        done, key=lambda t: (-t.hyperparameters.values["tuner/stage"], -t.score)
    )
    assert [r["trial_id"] for r in rows[: len(done)]] == [t.trial_id for t in expected]
    assert [r["rank"] for r in rows[: len(done)]] == list(range(1, len(done) + 1))
    assert len(lines) == 3
    best = expected[0].hyperparameters.values
    assert lines[0] == (
        f"Best-1 (val_accuracy: {expected[0].score:.3g}) | "
        f"learning_rate: {best['learning_rate']:.3g}, "
        f"weight_decay: {best['weight_decay']:.3g}, beta_1: {best['beta_1']:.3g}"
        " | stage 2, 2 epochs"
    )
    # Diverged trials: failed, marked, with their reason, ranked last.
    diverged = [r for r in rows if r["diverged"]]
    n_big = sum(t.hyperparameters.values["learning_rate"] > 0.1 for t in trials)
    assert len(diverged) == n_big > 0
    assert all(r["status"] == "FAILED" and r["rank"] is None for r in diverged)
    assert all(r["reason"] == "loss is nan at step 3" for r in diverged)
    assert all(
        t.message == "Diverged: loss is nan at step 3"
        for t in trials
        if t.status == "FAILED"
    )
    assert rows[-1]["diverged"]


def test_report_csv_and_png(tuner, tmp_path):
    rows = report(
        tuner, top=2, path=tmp_path / "r.png", csv_path=tmp_path / "r.csv", print_fn=lambda s: None
    )
    with open(tmp_path / "r.csv") as f:
        read = list(csv.DictReader(f))
    assert len(read) == len(rows)
    assert read[0]["trial_id"] == rows[0]["trial_id"]
    assert float(read[0]["learning_rate"]) == pytest.approx(rows[0]["learning_rate"])
    import matplotlib.image

    png = tmp_path / "r.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 100 and image.shape[1] > 300
    assert np.std(image[..., :3]) > 0.01  # not blank


def test_report_works_for_plain_keras_tuner(tmp_path):
    class Search(keras_tuner.RandomSearch):
        def run_trial(self, trial, *args, **kwargs):
            return (trial.hyperparameters.Float("x", -2.0, 2.0) - 0.5) ** 2

    tuner = Search(max_trials=5, seed=0, directory=str(tmp_path), project_name="rs")
    tuner.search(verbose=0)
    lines = []
    rows = report(tuner, top=1, print_fn=lines.append)
    best = min(t.score for t in tuner.oracle.trials.values() if t.score is not None)
    assert rows[0]["default_objective"] == best
    assert lines[0].startswith(f"Best-1 (default_objective: {best:.3g}) | x: ")


def test_report_ranks_only_finite_scores(tmp_path):
    # A completed trial whose objective is infinite (e.g. an overflowed
    # score) is not a result: no rank, listed after the ranked trials.
    class Search(keras_tuner.RandomSearch):
        def run_trial(self, trial, *args, **kwargs):
            x = trial.hyperparameters.Float("x", -2.0, 2.0)
            return {"score": math.inf if x > 1.0 else -((x - 0.5) ** 2)}

    tuner = Search(
        objective=keras_tuner.Objective("score", "max"), max_trials=8, seed=0,
        directory=str(tmp_path), project_name="inf",
    )
    tuner.search(verbose=0)
    trials = list(tuner.oracle.trials.values())
    finite = sorted((t.score for t in trials if math.isfinite(t.score)), reverse=True)
    n_inf = sum(1 for t in trials if t.score == math.inf)
    assert n_inf >= 1 and len(finite) >= 1
    lines = []
    rows = report(tuner, top=1, print_fn=lines.append)
    assert [r["rank"] for r in rows] == list(range(1, len(finite) + 1)) + [None] * n_inf
    assert [r["score"] for r in rows[: len(finite)]] == finite
    assert all(r["status"] == "COMPLETED" and r["score"] is None for r in rows[len(finite):])
    assert lines == [lines[0]] and lines[0].startswith(f"Best-1 (score: {finite[0]:.3g})")


def test_plot_needs_matplotlib(tuner, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"kerasreg\[plot\]"):
        report(tuner, path=tmp_path / "x.png", print_fn=lambda s: None)


def test_bad_top(tuner):
    with pytest.raises(ValueError, match="argument `top`"):
        report(tuner, top=0)


def test_lazy_keras_tuner_import():
    import pathlib
    import subprocess

    code = (
        "import sys; sys.modules['keras_tuner'] = None\n"
        "import kerasreg\n"
        "assert kerasreg.tuning.log_uniform\n"
        "try:\n"
        "    kerasreg.CoarseToFine\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    # The numpy backend: what is checked does not depend on the backend,
    # and it spares the subprocess TensorFlow's import time.
    env = {**os.environ, "KERAS_BACKEND": "numpy"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
        cwd=pathlib.Path(__file__).resolve().parents[1], env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "kerasreg[tuner]" in out.stdout


def test_png_leaves_the_backend_alone(tuner, tmp_path):
    # Library code never calls `matplotlib.use`: a notebook user's pyplot
    # backend (here the non-Agg "template") is the same after the plot.
    import matplotlib
    import matplotlib.pyplot as plt

    previous = matplotlib.get_backend()
    plt.switch_backend("template")
    figures = plt.get_fignums()
    try:
        report(tuner, path=tmp_path / "r.png", print_fn=lambda s: None)
        assert matplotlib.get_backend() == "template"
        assert plt.get_fignums() == figures
    finally:
        plt.switch_backend(previous)
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
