import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from kerasreg import cli
from kerasreg import datasets
from kerasreg import demo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _exit_code(argv):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    return info.value.code


def test_help_lists_the_demo_command(capsys):
    assert _exit_code(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: kerasreg")
    assert "demo" in out and "kerasreg demo --help" in out


def test_demo_help_describes_every_option(capsys):
    assert _exit_code(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    for option in (
        "--dataset {digits,fashion_mnist}",
        "--epochs",
        "--out",
        "./kerasreg-demo/",
        "--quick",
        "--seed",
        "--no-tune",
    ):
        assert option in out, option


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 0
    assert "usage: kerasreg" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["demo", "--epochs", "0"], ["--epochs", "positive integer", "'0'"]),
        (["demo", "--epochs", "ten"], ["--epochs", "'ten'"]),
        (["demo", "--seed", "-3"], ["--seed", "non-negative"]),
        (["demo", "--dataset", "cifar"], ["--dataset", "'cifar'"]),
        (["demo", "--bogus"], ["unrecognized arguments: --bogus"]),
        (["frobnicate"], ["invalid choice: 'frobnicate'"]),
    ],
)
def test_bad_option_one_line_and_exit_2(argv, words, capsys):
    assert _exit_code(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0]
    for word in words:
        assert word in lines[0]
    assert captured.out == ""


def test_bad_option_in_a_subprocess_has_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "kerasreg", "demo", "--dataset", "mnist"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "kerasreg demo: error: argument --dataset: invalid choice: 'mnist' "
        "(choose from 'digits', 'fashion_mnist') (see `kerasreg demo --help`)"
    ]


def test_dataset_not_found_one_line_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        datasets, "_fashion_mnist_local_sources", lambda: [("x", str(tmp_path))]
    )

    def offline():
        raise Exception("URL fetch failure:\n[Errno -3] name resolution")

    monkeypatch.setattr(datasets, "_download_fashion_mnist", offline)
    code = cli.main(
        ["demo", "--dataset", "fashion_mnist", "--out", str(tmp_path / "o")]
    )
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("kerasreg demo: error: Fashion-MNIST was not found")
    assert "apt-get install dataset-fashion-mnist" in err[0]
    assert "network" in err[0]
    assert not (tmp_path / "o").exists()


def test_unwritable_out_is_one_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(demo, "STAGES", [])
    code = cli.main(["demo", "--quick", "--out", str(blocker / "sub")])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kerasreg demo: error:")


def test_demo_quick_writes_results_json(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--quick", "--no-tune", "--out", str(out)]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["dataset"] == "digits"
    assert report["epochs"] == demo.QUICK_EPOCHS
    assert report["quick"] is True and report["tune"] is False
    assert report["sizes"] == {"train": 1295, "val": 143, "test": 359}
    (row,) = report["results"]
    assert row["method"] == "baseline MLP"
    # Two epochs of SGD on digits beat chance (0.1) by far.
    assert 0.5 < row["test_accuracy"] <= 1.0
    assert row["nll"] > 0 and 0 <= row["ece"] <= 1
    assert len(report["histories"]["baseline MLP"]["val_loss"]) == 2
    stdout = capsys.readouterr().out
    assert "[1/1] baseline MLP" in stdout
    assert f"{row['test_accuracy']:.4f}" in stdout


def test_runner_with_custom_stages(tmp_path, capsys):
    """A stage is a function in a list; metrics computed from its probs."""

    def uniform(ctx):
        probs = np.full((len(ctx.y_test), ctx.num_classes), 0.1)
        return [demo._row("uniform", probs, ctx, 1.5)]

    def never(ctx):
        raise AssertionError("a needs_tune stage ran with tune=False")

    stages = [
        demo.Stage("uniform guess", uniform),
        demo.Stage("search", never, needs_tune=True),
    ]
    report = demo.run(
        "digits", epochs=1, out=str(tmp_path), tune=False, stages=stages
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
    assert json.loads((tmp_path / "results.json").read_text()) == json.loads(
        json.dumps(report)
    )


def test_run_rejects_bad_epochs(tmp_path):
    with pytest.raises(ValueError, match="argument `epochs`"):
        demo.run("digits", epochs=0, out=str(tmp_path), stages=[])


def test_nll_and_ece_hand_cases():
    probs = np.array([[0.5, 0.5], [0.9, 0.1]])
    assert demo._nll(probs, np.array([0, 0])) == pytest.approx(
        -(math.log(0.5) + math.log(0.9)) / 2
    )
    # Confidences 0.9 (right), 0.9 (wrong), 0.7 (right), 10 bins:
    # bin (0.8, 0.9]: accuracy 0.5, confidence 0.9, weight 2/3;
    # bin (0.6, 0.7]: accuracy 1.0, confidence 0.7, weight 1/3.
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7]])
    y = np.array([0, 1, 1])
    expected = 2 / 3 * abs(0.5 - 0.9) + 1 / 3 * abs(1.0 - 0.7)
    assert demo._ece(probs, y, num_bins=10) == pytest.approx(expected)
    assert demo._accuracy(probs, y) == pytest.approx(2 / 3)
    # Perfectly calibrated: confidence 0.75 and 3 of 4 right.
    probs = np.array([[0.75, 0.25]] * 4)
    assert demo._ece(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.0)


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
