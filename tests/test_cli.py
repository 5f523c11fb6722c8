import json
import os
import re
import subprocess
import sys

import pytest

import kerasreg_cli
from kerasreg import cli
from kerasreg import datasets
from kerasreg import demo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY_MODULES = ("keras", "tensorflow", "jax", "kerasreg")


def _entry_point():
    """`module:function` of the `kerasreg` console script in pyproject.toml."""
    with open(os.path.join(REPO, "pyproject.toml")) as f:
        match = re.search(r'^kerasreg\s*=\s*"([\w.]+):(\w+)"', f.read(), re.M)
    return match.group(1), match.group(2)


# What pip writes as bin/kerasreg, plus a report of the heavy modules that
# were imported by the time the process exits.
_CONSOLE_SCRIPT = """\
import atexit, json, sys
def _report():
    with open({report!r}, "w") as f:
        json.dump([m for m in {heavy!r} if m in sys.modules], f)
atexit.register(_report)
from {module} import {function}
sys.argv[0] = "kerasreg"
sys.exit({function}())
"""


def _run_console_script(args, tmp_path, env=None):
    """Runs `kerasreg ARGS` as installed; returns (result, heavy modules)."""
    module, function = _entry_point()
    report = tmp_path / "imported.json"
    code = _CONSOLE_SCRIPT.format(
        report=str(report), heavy=HEAVY_MODULES, module=module, function=function
    )
    env = dict(os.environ if env is None else env)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as on a fresh machine
    env["PYTHONPATH"] = os.pathsep.join(
        [REPO, *filter(None, [env.get("PYTHONPATH")])]
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, json.loads(report.read_text())


def _our_lines(stderr):
    """kerasreg's own lines of a subprocess's stderr.

    TensorFlow, absl and XLA write their own lines there at import, on some
    machines even with `TF_CPP_MIN_LOG_LEVEL=2` (absl's "All log messages
    before absl::InitializeLog()", oneDNN's notice; `TF_ENABLE_ONEDNN_OPTS=1`
    reproduces them): only ours are compared. A Python traceback is never
    expected.
    """
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("kerasreg")]


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


def test_console_script_points_outside_the_package():
    # Importing anything inside `kerasreg` runs kerasreg/__init__.py, which
    # imports keras.
    module, function = _entry_point()
    assert module.split(".")[0] != "kerasreg"
    assert cli.main is kerasreg_cli.main is getattr(kerasreg_cli, function)


@pytest.mark.parametrize(
    "args", [["--help"], ["demo", "--help"], ["--version"], []],
    ids=["help", "demo-help", "version", "no-command"],
)
def test_help_imports_no_keras(args, tmp_path):
    result, imported = _run_console_script(args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert imported == []  # none of keras, tensorflow, jax, kerasreg
    assert _our_lines(result.stderr) == []
    if args == ["--version"]:
        import kerasreg

        assert result.stdout == f"kerasreg {kerasreg.__version__}\n"
    else:
        assert result.stdout.startswith("usage: kerasreg")


@pytest.mark.parametrize(
    "argv, line",
    [
        (
            ["demo", "--dataset", "mnist"],
            "kerasreg demo: error: argument --dataset: invalid choice: "
            "'mnist' (choose from 'digits', 'fashion_mnist') (see `kerasreg "
            "demo --help`)",
        ),
        (
            ["demo", "--bogus"],
            "kerasreg demo: error: unrecognized arguments: --bogus (see "
            "`kerasreg demo --help`)",
        ),
    ],
    ids=["invalid-choice", "unrecognized"],
)
def test_bad_option_in_a_subprocess_has_no_traceback(argv, line, tmp_path):
    result, imported = _run_console_script(argv, tmp_path)
    assert result.returncode == 2
    assert imported == []
    assert result.stdout == ""
    assert _our_lines(result.stderr) == [line]


@pytest.mark.parametrize(
    "argv, line",
    [
        (
            ["demo", "--bogus"],
            "kerasreg demo: error: unrecognized arguments: --bogus (see "
            "`kerasreg demo --help`)",
        ),
        (
            ["demo", "--quick", "extra", "--no-such"],
            "kerasreg demo: error: unrecognized arguments: extra --no-such "
            "(see `kerasreg demo --help`)",
        ),
        # Before the command: the top-level parser's own.
        (
            ["--bogus", "demo"],
            "kerasreg: error: unrecognized arguments: --bogus (see "
            "`kerasreg --help`)",
        ),
    ],
    ids=["demo-option", "demo-extras", "top-level"],
)
def test_unrecognized_arguments_point_at_their_commands_help(argv, line, capsys):
    # `kerasreg --help` lists no demo option: a demo option is reported by
    # `kerasreg demo`, whose help lists them.
    assert _exit_code(argv) == 2
    assert capsys.readouterr().err.splitlines() == [line]


def test_data_error_in_a_subprocess_is_one_line(tmp_path):
    """The library is imported (TensorFlow quiet), the data is missing."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    env = dict(os.environ, KERASREG_DATA_DIR=str(empty))
    result, imported = _run_console_script(
        ["demo", "--dataset", "fashion_mnist", "--quick", "--out", "o"],
        tmp_path,
        env=env,
    )
    assert result.returncode == 1
    assert "keras" in imported and "kerasreg" in imported
    assert _our_lines(result.stderr) == [
        "kerasreg demo: error: Fashion-MNIST was not found in "
        f"KERASREG_DATA_DIR={str(empty)!r}: missing "
        "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
        "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] there and "
        "in its fashion-mnist/ subfolder. Put the four IDX files there "
        "(gzipped or not), point KERASREG_DATA_DIR at the folder holding "
        "them, or leave both data_dir and KERASREG_DATA_DIR unset to use the "
        "Keras cache, the Debian package dataset-fashion-mnist (`make "
        "fashion-mnist` in a kerasreg checkout (as root on Debian/Ubuntu it "
        "runs `apt-get install dataset-fashion-mnist`)) or a download."
    ]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("preset", [None, "0"])
def test_demo_quiets_tensorflow_unless_the_user_chose(preset, monkeypatch):
    seen = []
    monkeypatch.setattr(
        demo, "run", lambda **kw: seen.append(os.environ["TF_CPP_MIN_LOG_LEVEL"])
    )
    if preset is None:
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", preset)
    assert cli.main(["demo", "--quick"]) == 0
    assert seen == ["2" if preset is None else preset]


def _failing_stage(monkeypatch, error):
    def stage(ctx):
        raise error

    monkeypatch.setattr(demo, "STAGES", [demo.Stage("failing", stage)])


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("a bug"),
        ValueError("a bug"),
        KeyError("a bug"),
        ImportError("cannot import name 'X'", name="kerasreg.callbacks"),
    ],
    ids=["RuntimeError", "ValueError", "KeyError", "ImportError-kerasreg"],
)
def test_a_bug_keeps_its_traceback(error, tmp_path, monkeypatch, capsys):
    _failing_stage(monkeypatch, error)
    with pytest.raises(type(error)) as info:
        cli.main(["demo", "--quick", "--out", str(tmp_path)])
    assert info.value is error
    assert "error:" not in capsys.readouterr().err


def test_missing_optional_dependency_is_one_line(tmp_path, monkeypatch, capsys):
    error = ImportError("Needs keras-tuner: `pip install kerasreg[tuner]`.")
    error.__cause__ = ModuleNotFoundError("No module", name="keras_tuner")
    _failing_stage(monkeypatch, error)
    assert cli.main(["demo", "--quick", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "kerasreg demo: error: Needs keras-tuner: `pip install kerasreg[tuner]`."
    ]


def test_interrupt_is_one_line(tmp_path, monkeypatch, capsys):
    _failing_stage(monkeypatch, KeyboardInterrupt())
    assert cli.main(["demo", "--quick", "--out", str(tmp_path)]) == 130
    assert capsys.readouterr().err.splitlines() == ["kerasreg demo: interrupted"]


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


def test_demo_help_lists_the_stages_the_demo_runs(capsys):
    # One list: the help is written from kerasreg/demo/plan.py, which the
    # demo's STAGES are built from.
    assert _exit_code(["demo", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # undo the wrapping
    positions = [
        out.index(f"{i}. {stage.title}") for i, stage in enumerate(demo.STAGES, 1)
    ]
    assert positions == sorted(positions)
    for stage in demo.STAGES:
        skipped = f"{stage.title} (skipped with --no-tune)"
        assert (skipped in out) == stage.needs_tune, stage.title
    quick = f"at most {demo.plan.QUICK_MAX_TRAIN} training examples and " \
        f"{demo.QUICK_EPOCHS} epochs"
    assert quick in out
    assert kerasreg_cli.DEFAULT_OUT == demo.DEFAULT_OUT
    assert kerasreg_cli.DATASET_CHOICES == demo.plan.DATASETS
