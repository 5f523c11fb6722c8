"""Runs every python snippet of README.md in order, as a user pasting them would.

The snippets run in sessions (one test each, so that they run in parallel):
each session starts with the README's first snippet (imports, data, `mlp`),
then the snippets up to the next `SESSION` marker, in one namespace.
"""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
SESSION = "<!-- tests/test_readme.py: a new session starts here"


def _snippets(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _sessions():
    first, *later = README.read_text().split(SESSION)
    setup, *snippets = _snippets(first)
    return [[setup] + snippets] + [[setup] + _snippets(part) for part in later]


def _check_basics(namespace, tmp_path):
    # Data, layers, schedules, EMA, ensembles, calibration.
    assert namespace["passes"].shape[0] == 10
    assert namespace["report"].verdict == "good", str(namespace["report"])
    assert (tmp_path / "schedules.png").exists()
    assert (tmp_path / "ensemble.keras").exists()
    assert (tmp_path / "reliability.png").exists()
    assert namespace["table"].row("mean")["temperature"] == pytest.approx(
        namespace["scaled"].temperature, rel=1e-6
    )


def _check_training_craft(namespace, tmp_path):
    # Snapshot ensembles, diagnostics, tuning.
    assert namespace["se"].snapshot_steps
    assert namespace["history"].history["update_ratio"]
    assert (tmp_path / "search.png").exists()
    assert len(namespace["best3"].members) == 3


# What each session's snippets promise, checked on what they produced.
CHECKS = (_check_basics, _check_training_craft)


def test_readme_sessions_match_the_checks():
    sessions = _sessions()
    assert len(sessions) == len(CHECKS)
    assert sum(len(s) - 1 for s in sessions) + 1 >= 10


@pytest.mark.slow
@pytest.mark.parametrize("session", range(len(CHECKS)))
def test_readme_snippets_run(session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    for i, code in enumerate(_sessions()[session]):
        try:
            exec(compile(code, f"README.md session {session} snippet {i}", "exec"),
                 namespace)
        except Exception as e:  # pragma: no cover - the message is the point
            raise AssertionError(
                f"README session {session}, snippet {i} failed:\n{code}"
            ) from e
    CHECKS[session](namespace, tmp_path)
