"""benchmarks/run.py rewrites RESULTS.md and keeps its Keras compatibility section."""

import importlib.util
import pathlib

RUN_PY = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


def _load_run():
    spec = importlib.util.spec_from_file_location("bench_run", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_write_markdown_keeps_the_keras_compatibility_section(tmp_path, monkeypatch):
    # Regression: `make bench` rewrote RESULTS.md from results.json only, which
    # dropped the `make test-compat` results recorded there by hand.
    run = _load_run()
    monkeypatch.setattr(run, "HERE", tmp_path)
    section = "## Keras compatibility\n\n| Keras | tensorflow |\n|---|---|\n| 3.10.0 | 1 passed |\n"
    (tmp_path / "RESULTS.md").write_text("# Benchmark results\n\nold table\n\n" + section)
    row = {
        "area": "layers", "figure": "f", "value": 1.0, "target": "<= 1.05",
        "machine": "m", "date": "2026-12-01",
    }
    run._write_markdown({"jax": {"rows": [row]}})
    text = (tmp_path / "RESULTS.md").read_text()
    assert "old table" not in text
    assert "| layers | f | 1.0 | <= 1.05 | m | jax | 2026-12-01 |  |" in text
    assert text.endswith("\n\n" + section)
    run._write_markdown({"jax": {"rows": [row]}})
    assert (tmp_path / "RESULTS.md").read_text() == text


def test_write_markdown_escapes_pipes_in_cells(tmp_path, monkeypatch):
    # Regression: a note with `max |p - q|` cut the table's last column.
    run = _load_run()
    monkeypatch.setattr(run, "HERE", tmp_path)
    row = {
        "area": "a", "figure": "f", "value": 1.0, "target": "t", "machine": "m",
        "date": "d", "note": "max |p - q| 3e-07",
    }
    run._write_markdown({"jax": {"rows": [row]}})
    line = (tmp_path / "RESULTS.md").read_text().splitlines()[-1]
    assert line == "| a | f | 1.0 | t | m | jax | d | max \\|p - q\\| 3e-07 |"
    assert len(line.replace("\\|", "").split("|")) == 10  # 8 cells


def test_write_markdown_without_a_section(tmp_path, monkeypatch):
    run = _load_run()
    monkeypatch.setattr(run, "HERE", tmp_path)
    run._write_markdown({})
    assert "Keras compatibility" not in (tmp_path / "RESULTS.md").read_text()


def test_interleaved_alternates_the_order_of_the_sides():
    # Regression: every round ran the sides in one order, and an A/A test
    # on jax found the second fit of a round 1-3% slower, which biased
    # every "feature / plain" ratio upwards.
    import gc
    import sys

    sys.path.insert(0, str(RUN_PY.parent))
    try:
        import _common
    finally:
        sys.path.remove(str(RUN_PY.parent))
    calls = []
    fns = {
        "a": lambda: calls.append(("a", gc.isenabled())),
        "b": lambda: calls.append(("b", gc.isenabled())),
    }
    times = _common.interleaved(fns, repeats=3, warmup=1)
    assert [name for name, _ in calls] == list("abbaabba")
    assert not any(enabled for _, enabled in calls)  # collector off
    assert gc.isenabled()
    assert [len(times["a"]), len(times["b"])] == [3, 3]
