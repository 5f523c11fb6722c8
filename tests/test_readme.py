"""Runs every python snippet of README.md in order, as a user pasting them would."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _snippets():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.slow
def test_readme_snippets_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    snippets = _snippets()
    assert len(snippets) >= 10
    namespace = {"__name__": "__readme__"}
    for i, code in enumerate(snippets):
        try:
            exec(compile(code, f"README.md snippet {i}", "exec"), namespace)
        except Exception as e:  # pragma: no cover - the message is the point
            raise AssertionError(f"README snippet {i} failed:\n{code}") from e
    # What the snippets promise, checked on what they produced.
    assert namespace["history"].history["update_ratio"]
    assert namespace["report"].verdict == "good", str(namespace["report"])
    assert (tmp_path / "schedules.png").exists()
    assert (tmp_path / "ensemble.keras").exists()
    assert (tmp_path / "reliability.png").exists()
    assert namespace["passes"].shape[0] == 10
    assert namespace["table"].row("mean")["temperature"] == pytest.approx(
        namespace["scaled"].temperature, rel=1e-6
    )
    assert (tmp_path / "search.png").exists()
    assert len(namespace["best3"].members) == 3
