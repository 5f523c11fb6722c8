"""The `kerasreg` console script.

`cli.py` only parses arguments and dispatches; the demo lives in
`kerasreg/demo.py`. The library's own clear errors (a bad argument, a dataset
that cannot be found, a missing optional dependency, an unwritable output
folder) end with one line on stderr and a non-zero exit, without a traceback.
"""

import argparse
import sys

DATASET_CHOICES = ("digits", "fashion_mnist")
DEFAULT_OUT = "./kerasreg-demo/"

# Exit codes: 2 for a bad command line (argparse's convention), 1 for an
# error while running, 130 for Ctrl-C.
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


DEMO_DESCRIPTION = """\
Train and compare, on the same data split and the same epoch budget:
  1. a baseline MLP (Keras layers, constant learning rate);
  2. the same with kerasreg Dropout + BatchNormalization + He init + a step
     schedule;
  3. + WeightEMA (EMA weights evaluated);
  4. SnapshotEnsemble (M=5) and its parameter-averaged model (BatchNorm
     re-estimated);
  5. a short CoarseToFine search of learning rate and L2 (skipped with
     --no-tune) and the top-3 trials as an Ensemble.
Prints one line per stage and a table (test accuracy, NLL, ECE, training
time); writes results.json and plots to --out. The default dataset, digits,
is bundled with scikit-learn and needs no network."""

DEMO_EPILOG = """\
examples:
  kerasreg demo                          # digits, a few minutes on a CPU
  kerasreg demo --quick --no-tune        # smoke run, seconds
  kerasreg demo --dataset fashion_mnist  # Keras cache, Debian package
                                         # dataset-fashion-mnist, or download"""


def _build_parser():
    parser = _Parser(
        prog="kerasreg",
        description="kerasreg: classic training craft for Keras 3.",
        epilog="Run `kerasreg demo --help` for the demo's options.",
    )
    parser.add_argument(
        "--version", action="store_true", help="print the version and exit"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
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
        help="epoch budget of every stage (default: 30 for digits, 10 for "
        "fashion_mnist, 2 with --quick)",
    )
    demo.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help=f"output folder for results.json and plots (default: {DEFAULT_OUT})",
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: at most 2000 training examples and 2 epochs",
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


def _demo(args):
    from kerasreg import demo

    demo.run(
        dataset=args.dataset,
        epochs=args.epochs,
        out=args.out,
        quick=args.quick,
        seed=args.seed,
        tune=args.tune,
    )
    return 0


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__


def main(argv=None):
    """Entry point of the `kerasreg` console script; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from kerasreg import __version__

        print(f"kerasreg {__version__}")
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    prog = f"kerasreg {args.command}"
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, ImportError, OSError) as e:
        # The library's clear errors: bad argument, dataset not found,
        # optional dependency missing, output folder not writable.
        sys.stdout.flush()
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
