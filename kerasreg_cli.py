"""The `kerasreg` console script (also `python -m kerasreg_cli`).

This module parses the command line and dispatches; the demo lives in the
package `kerasreg/demo/`. It is a top-level module, beside the `kerasreg`
package and not inside it, and imports only the standard library: importing any
module of the package runs `kerasreg/__init__.py`, which imports keras (and
TensorFlow or JAX) so that kerasreg's classes are registered before a `.keras`
file is loaded. That takes seconds and, with TensorFlow, prints C++ log lines;
`kerasreg --help`, `kerasreg demo --help` and a bad option need none of it.
The library is imported once the arguments are parsed, with TensorFlow's C++
log quieted (`TF_CPP_MIN_LOG_LEVEL=2` unless the environment sets it).
`kerasreg.cli` re-exports `main` (the old entry point) and `python -m kerasreg`
runs it too, after importing the package.

The demo's stages and defaults are written once, in `kerasreg/demo/plan.py`,
a file of plain data that imports nothing: this module executes that file
by its path (found with `importlib.util.find_spec("kerasreg")`, which runs
nothing), so that `kerasreg demo --help` lists the stages the demo runs
without importing the package.

Errors:

- a bad command line: one line on stderr, exit code 2 (argparse's);
- a data or environment error while running (an `OSError`: a dataset that
  cannot be found or read, an output folder that cannot be written; an
  `ImportError` of a missing optional dependency): one line on stderr,
  exit code 1;
- anything else is a bug and keeps its traceback.
"""

import argparse
import importlib.util
import os
import sys
import textwrap


def _load_demo_plan():
    """`kerasreg/demo/plan.py` as a module, without importing `kerasreg`."""
    spec = importlib.util.find_spec("kerasreg")  # finds; runs nothing
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("kerasreg_cli: the `kerasreg` package is not installed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "demo", "plan.py")
    plan_spec = importlib.util.spec_from_file_location("_kerasreg_demo_plan", path)
    plan = importlib.util.module_from_spec(plan_spec)
    plan_spec.loader.exec_module(plan)
    return plan


_PLAN = _load_demo_plan()
DATASET_CHOICES = _PLAN.DATASETS
DEFAULT_OUT = _PLAN.DEFAULT_OUT

# Exit codes: 2 for a bad command line (argparse's convention), 1 for a data
# or environment error while running, 130 for Ctrl-C. (An uncaught exception,
# a bug, exits with Python's 1 and a traceback.)
EXIT_USAGE = 2
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr, exit code 2."""

    def error(self, message):
        self.exit(
            EXIT_USAGE,
            f"{self.prog}: error: {message} (see `{self.prog} --help`)\n",
        )


class _CommandParser(_Parser):
    """A command's parser (`kerasreg demo`): reports its own unrecognized
    arguments, pointing at its own `--help` (argparse would leave them to
    the top-level parser, whose help lists no command's options)."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, received {text!r}"
        )
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative integer, received {text!r}"
        )
    return value


def _demo_description(plan):
    """The demo's help text: its stages, numbered, from `plan.STAGES`."""
    lines = ["Train and compare, on the same data split and the same epoch budget:"]
    for i, (_, title, needs_tune) in enumerate(plan.STAGES, 1):
        text = f"{i}. {title}" + (" (skipped with --no-tune)" if needs_tune else "")
        text += "." if i == len(plan.STAGES) else ";"
        lines += textwrap.wrap(
            text, width=76, initial_indent="  ", subsequent_indent="     "
        )
    lines += [
        "Prints one line per stage and a table (test accuracy, NLL, ECE, training",
        "time); writes results.json and plots to --out. The default dataset,",
        "digits, is bundled with scikit-learn and needs no network.",
    ]
    return "\n".join(lines)


DEMO_DESCRIPTION = _demo_description(_PLAN)

DEMO_EPILOG = """\
examples:
  kerasreg demo                          # digits, a few minutes on a CPU
  kerasreg demo --quick --no-tune        # smoke run, seconds
  kerasreg demo --dataset fashion_mnist  # Keras cache, Debian package
                                         # dataset-fashion-mnist, or download

Fashion-MNIST is read from $KERASREG_DATA_DIR when set (a folder holding its
four IDX files), else from the Keras cache (~/.keras/datasets/fashion-mnist/),
else from the Debian package dataset-fashion-mnist (`make fashion-mnist`),
else downloaded by Keras."""


def _build_parser():
    parser = _Parser(
        prog="kerasreg",
        description="kerasreg: classic training craft for Keras 3.",
        epilog="Run `kerasreg demo --help` for the demo's options.",
    )
    parser.add_argument(
        "--version", action="store_true", help="print the version and exit"
    )
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_CommandParser
    )
    demo = sub.add_parser(
        "demo",
        help="train and compare the kerasreg techniques on small data",
        description=DEMO_DESCRIPTION,
        epilog=DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--dataset",
        choices=DATASET_CHOICES,
        default="digits",
        help="digits (scikit-learn, bundled, default) or fashion_mnist",
    )
    demo.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help="epoch budget of every stage (default: "
        + ", ".join(f"{n} for {d}" for d, n in _PLAN.DEFAULT_EPOCHS.items())
        + f", {_PLAN.QUICK_EPOCHS} with --quick)",
    )
    demo.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help=f"output folder for results.json and plots (default: {DEFAULT_OUT})",
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: at most {_PLAN.QUICK_MAX_TRAIN} training examples "
        f"and {_PLAN.QUICK_EPOCHS} epochs",
    )
    demo.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        help="seed of the validation split and of every model (default: 0)",
    )
    demo.add_argument(
        "--no-tune",
        dest="tune",
        action="store_false",
        help="skip the coarse-to-fine search stage",
    )
    demo.set_defaults(func=_demo)
    return parser


def _quiet_tensorflow_logs():
    """TensorFlow's C++ log lines off (errors kept), unless the user chose."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__


def _is_data_error(error):
    """A data or environment error (one line), not a bug (a traceback)."""
    if isinstance(error, ImportError):
        # A missing optional dependency; a failed import of kerasreg's own
        # modules is a bug.
        return not (error.name or "").startswith("kerasreg")
    return isinstance(error, OSError)


def _run(prog, fn):
    """Calls `fn()`; data errors and Ctrl-C become one line and an exit code."""
    try:
        fn()
    except KeyboardInterrupt:
        sys.stdout.flush()
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if not _is_data_error(e):
            raise
        sys.stdout.flush()
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _demo(args):
    _quiet_tensorflow_logs()
    # Outside `_run`: an install that cannot import keeps its traceback.
    from kerasreg import demo

    return _run(
        "kerasreg demo",
        lambda: demo.run(
            dataset=args.dataset,
            epochs=args.epochs,
            out=args.out,
            quick=args.quick,
            seed=args.seed,
            tune=args.tune,
        ),
    )


def _version():
    """`kerasreg.__version__`, read from the source without importing it."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("kerasreg")  # finds; runs nothing
    if spec is not None and spec.origin:
        with open(spec.origin, encoding="utf-8") as f:
            for node in ast.parse(f.read()).body:
                if (
                    isinstance(node, ast.Assign)
                    and [getattr(t, "id", None) for t in node.targets]
                    == ["__version__"]
                    and isinstance(node.value, ast.Constant)
                ):
                    return node.value.value
    from kerasreg import __version__

    return __version__


def main(argv=None):
    """Entry point of the `kerasreg` console script; returns the exit code.

    Args:
        argv: List of strings or `None` (`sys.argv[1:]`).

    Returns:
        The exit code: 0, `EXIT_ERROR` or `EXIT_INTERRUPTED`. A bad command
        line exits with `EXIT_USAGE` (`SystemExit`), as argparse does.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"kerasreg {_version()}")
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
