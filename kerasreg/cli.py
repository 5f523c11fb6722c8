"""The `kerasreg` console script."""

import argparse
import sys


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="kerasreg",
        description="kerasreg: classic training craft for Keras 3.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo", help="train and compare the kerasreg techniques on small data"
    )
    demo.set_defaults(func=_demo)
    return parser


def _demo(args):
    print(
        "kerasreg demo: the full comparison (baseline, Dropout + BatchNorm, "
        "WeightEMA, SnapshotEnsemble, coarse-to-fine search) is not built yet."
    )
    return 0


def main(argv=None):
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
