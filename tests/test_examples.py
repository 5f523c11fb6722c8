"""Smoke tests: every script in examples/ runs with `--quick`.

Each `examples/*.py` (and `examples/*.sh`) found is run in a subprocess with
`--quick`, plus `--out <tmp folder>` when its source mentions `--out` (it must
then write something there), from a temporary working directory, with this
checkout's `kerasreg` first on `PYTHONPATH` and the current `KERAS_BACKEND`.
Fashion-MNIST is the session's tiny fixture (`fashion_mnist_dir` in
tests/conftest.py, through `KERASREG_DATA_DIR`), and Keras' cache is the
session's empty temporary `KERAS_HOME`: nothing comes from the machine.
Select or skip them with `-m example` / `-m "not example"`.

Per-example time limit: `DEFAULT_TIMEOUT_S`, or the number on a line
`# example-timeout-s: N` in the script. Keep every `--quick` run short: the
whole suite has a 10-minute budget per backend.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPO / "examples"
DEFAULT_TIMEOUT_S = 300
_TIMEOUT_RE = re.compile(r"^#\s*example-timeout-s:\s*(\d+)\s*$", re.MULTILINE)


def _examples():
    if not EXAMPLES_DIR.is_dir():
        return []
    return sorted(
        p
        for p in EXAMPLES_DIR.iterdir()
        if p.suffix in (".py", ".sh") and not p.name.startswith("_")
    )


def _environment(fashion_mnist_dir):
    env = dict(os.environ)
    env["KERASREG_DATA_DIR"] = str(fashion_mnist_dir)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    )
    # Shell examples call `python`: make it this interpreter.
    env["PATH"] = os.pathsep.join(
        [os.path.dirname(sys.executable), env.get("PATH", "")]
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.mark.example
@pytest.mark.parametrize("script", _examples(), ids=lambda p: p.name)
def test_example_runs_quick(script, tmp_path, fashion_mnist_dir):
    source = script.read_text()
    launcher = [sys.executable] if script.suffix == ".py" else ["bash"]
    command = [*launcher, str(script), "--quick"]
    out = tmp_path / "out"
    takes_out = "--out" in source
    if takes_out:
        command += ["--out", str(out)]
    match = _TIMEOUT_RE.search(source)
    timeout = int(match.group(1)) if match else DEFAULT_TIMEOUT_S
    work = tmp_path / "cwd"
    work.mkdir()
    try:
        result = subprocess.run(
            command,
            cwd=work,
            env=_environment(fashion_mnist_dir),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script.name} --quick ran past its {timeout} s limit")
    assert result.returncode == 0, (
        f"{' '.join(command)} exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-3000:]}\n"
        f"--- stderr ---\n{result.stderr[-3000:]}"
    )
    if takes_out:
        assert out.is_dir() and any(out.iterdir()), (
            f"{script.name} accepts --out but wrote nothing there"
        )
    # Fashion-MNIST, when used, came from the fixture.
    sources = [
        line
        for line in result.stdout.splitlines()
        if line.startswith("kerasreg.datasets: fashion_mnist from")
    ]
    for line in sources:
        assert line.endswith(f"from KERASREG_DATA_DIR ({fashion_mnist_dir})")
    if "tune_fashion_mnist" in source:
        assert sources, f"{script.name} printed no Fashion-MNIST source"


@pytest.mark.example
def test_calibration_example_on_fashion_mnist(tmp_path, fashion_mnist_dir):
    # The Fashion-MNIST path (the fixture), with the sizes given by options:
    # one row per method, scored raw and temperature-scaled, two diagrams.
    out = tmp_path / "out"
    command = [
        sys.executable, str(EXAMPLES_DIR / "calibration_fashion_mnist.py"),
        "--quick", "--dataset", "fashion_mnist", "--epochs", "1",
        "--members", "2", "--snapshots", "2", "--mc-samples", "3",
        "--out", str(out),
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                            env=_environment(fashion_mnist_dir),
                            timeout=DEFAULT_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    # 2560 fixture images: 1/6 for validation (the 10,000 of 60,000).
    assert "fashion_mnist: 2134 train, 426 validation, 256 test" in result.stdout
    assert "| method | test acc | NLL | NLL (T) |" in result.stdout
    stem = f"calibration_fashion_mnist_{keras.backend.backend()}"
    report = json.loads((out / f"{stem}.json").read_text())
    assert list(report["results"]) == [
        "single model", "MC dropout (3 passes)",
        "DeepEnsemble (M=2, fused)", "SnapshotEnsemble (M=2)",
    ]
    for name, row in report["results"].items():
        assert row["temperature"] > 0, name
        for scores in (row["raw"], row["scaled"]):
            assert set(scores) == {"accuracy", "nll", "ece", "brier"}, name
        # Scaling changes no predicted class.
        assert row["raw"]["accuracy"] == row["scaled"]["accuracy"], name
        assert np.isfinite(row["scaled"]["nll"]), name
    for name in (f"{stem}.png", f"{stem}_scaled.png"):
        assert (out / name).stat().st_size > 0, name


def test_examples_are_found():
    names = [p.name for p in _examples()]
    assert "optimizers_2d.py" in names


# --- the optimizers_2d example's numbers, against the fish book's updates ----


def _load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _book_path(update, steps=30, start=(-7.0, 2.0)):
    """Runs a numpy update rule from the book on grad f = (x / 10, 2 y)."""
    w = np.array(start)
    state = {}
    path = [w.copy()]
    for t in range(1, steps + 1):
        w = update(w, np.array([w[0] / 10, 2 * w[1]]), state, t)
        path.append(w.copy())
    return np.array(path)


def _sgd(w, g, state, t, lr=0.95):
    return w - lr * g


def _momentum(w, g, state, t, lr=0.1, momentum=0.9):
    v = momentum * state.get("v", 0.0) - lr * g
    state["v"] = v
    return w + v


def _adagrad(w, g, state, t, lr=1.5):
    h = state.get("h", 0.0) + g * g
    state["h"] = h
    return w - lr * g / (np.sqrt(h) + 1e-7)


def _adam(w, g, state, t, lr=0.3, beta1=0.9, beta2=0.999):
    m = beta1 * state.get("m", 0.0) + (1 - beta1) * g
    v = beta2 * state.get("v", 0.0) + (1 - beta2) * g * g
    state.update(m=m, v=v)
    lr_t = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
    return w - lr_t * m / (np.sqrt(v) + 1e-7)


@pytest.mark.parametrize(
    "name, update",
    [("SGD", _sgd), ("Momentum", _momentum), ("AdaGrad", _adagrad), ("Adam", _adam)],
)
def test_optimizers_2d_matches_the_book(name, update):
    example = _load_example("optimizers_2d")
    path = example.trajectory(example.optimizers()[name])
    expected = _book_path(update)
    assert path.shape == (31, 2)
    np.testing.assert_allclose(path, expected, atol=2e-4, rtol=1e-4)


def test_optimizers_2d_sgd_closed_form():
    # x_t = x0 (1 - lr/10)^t, y_t = y0 (1 - 2 lr)^t for plain SGD.
    example = _load_example("optimizers_2d")
    path = example.trajectory(example.optimizers()["SGD"], steps=10)
    t = np.arange(11)
    np.testing.assert_allclose(path[:, 0], -7.0 * (1 - 0.095) ** t, rtol=1e-5)
    np.testing.assert_allclose(path[:, 1], 2.0 * (1 - 1.9) ** t, rtol=1e-5)
