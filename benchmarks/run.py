"""Runs every kerasreg benchmark in one process and writes the results.

    python benchmarks/run.py [--quick] [--only NAME ...]

Each `benchmarks/bench_<area>.py` defines `run(quick) -> list of rows` (see
`_common.figure`). Results of this backend are merged into
`benchmarks/results.json` (one entry per backend) and `benchmarks/RESULTS.md`
is rewritten from it: figure, value, target, machine, backend, date, note.
Its hand-written "Keras compatibility" section (`make test-compat`) is kept.
"""

import argparse
import gc
import datetime
import importlib
import json
import os
import pathlib
import platform
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _machine():
    try:
        import jax

        devices = {d.platform for d in jax.devices()}
    except Exception:
        devices = {"cpu"}
    gpu = "gpu" if devices - {"cpu"} else "cpu"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.machine()} {os.cpu_count()} cores {gpu}, load {load:.1f}"


KEPT_HEADING = "## Keras compatibility"


def _kept_section(text):
    """The part of RESULTS.md from its "Keras compatibility" heading on, or ""."""
    start = text.find(KEPT_HEADING)
    return "" if start < 0 else "\n" + text[start:].rstrip("\n") + "\n"


def _cell(value):
    """A Markdown table cell: a `|` in the text (`max |p - q|`) is escaped."""
    return str(value).replace("|", "\\|")


def _write_markdown(results):
    path = HERE / "RESULTS.md"
    kept = _kept_section(path.read_text()) if path.exists() else ""
    lines = [
        "# Benchmark results",
        "",
        "Written by `python benchmarks/run.py` (`make bench`). Ratios are measured",
        "in one process against the Keras built-in or a hand-written equivalent,",
        "the sides run alternately (each round in the reverse order of the last).",
        "The machine column gives the load",
        "average when the area started: figures taken on a busy machine are noisy.",
        "",
        "| area | figure | value | target | machine | backend | date | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend in sorted(results):
        for row in results[backend]["rows"]:
            cells = [row["area"], row["figure"], row["value"], row["target"],
                     row["machine"], backend, row["date"], row.get("note", "")]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    path.write_text("\n".join(lines) + "\n" + kept)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--only", nargs="*", help="areas to run, e.g. layers")
    parser.add_argument("--gpu", action="store_true", help="add GPU throughput figures")
    args = parser.parse_args(argv)

    import keras

    areas = sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))
    if args.only:
        areas = [a for a in areas if a in args.only]
    rows = []
    for area in areas:
        # Each area starts from a clean Keras session: the models and
        # compiled functions of the areas before it are freed.
        keras.backend.clear_session()
        gc.collect()
        module = importlib.import_module(f"bench_{area}")
        print(f"== {area}", flush=True)
        kwargs = {"gpu": True} if args.gpu and "gpu" in module.run.__code__.co_varnames else {}
        machine, date = _machine(), datetime.date.today().isoformat()
        for row in module.run(quick=args.quick, **kwargs):
            row = {"area": area, **row, "machine": machine, "date": date}
            if args.quick:
                row["note"] = f"quick mode; {row['note']}".rstrip("; ")
            print(f"  {row['figure']}: {row['value']} (target {row['target']})", flush=True)
            rows.append(row)

    path = HERE / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    backend = keras.backend.backend()
    old = results.get(backend, {}).get("rows", [])
    ran = {r["area"] for r in rows}
    merged = [r for r in old if r["area"] not in ran] + rows
    results[backend] = {"keras": keras.__version__, "rows": merged}
    path.write_text(json.dumps(results, indent=2) + "\n")
    _write_markdown(results)
    print(f"wrote {path} and {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
