"""The README: its python snippets run, its links lead somewhere, it stays short.

The snippets run in order in one namespace, as a user pasting them would
(the guides' code blocks, which hold the rest of the old README's snippets,
run in tests/test_docs.py). Every relative link of the README names a file
of the repository and, with a `#anchor`, a heading of that Markdown file.
"""

import pathlib
import re

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# The issue that split the README into the docs site: "at most about 200 lines".
MAX_LINES = 200


def _snippets(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _slug(heading):
    """A heading's anchor, as GitHub and MkDocs' toc extension make it."""
    heading = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[\s]+", "-", heading)


def _anchors(path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_readme_is_short():
    assert len(README.read_text().splitlines()) <= MAX_LINES


def test_readme_starts_with_the_two_commands():
    text = README.read_text()
    sections = re.findall(r"^## (.+)$", text, flags=re.M)
    assert sections[0] == "Two commands"
    first = text.split("\n## ")[1]
    assert "make demo" in first and "make test" in first


def test_readme_links_resolve():
    text = README.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    relative = [link for link in links if "://" not in link]
    assert len(relative) >= 15, relative
    for link in relative:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.exists(), link
        if anchor:
            assert anchor in _anchors(target), link


@pytest.mark.slow
def test_readme_snippets_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    keras.utils.set_random_seed(0)
    namespace = {"__name__": "__readme__"}
    snippets = _snippets(README.read_text())
    assert len(snippets) == 4  # the data, then the three snippets
    for i, code in enumerate(snippets):
        try:
            exec(compile(code, f"README.md snippet {i}", "exec"), namespace)
        except Exception as e:  # pragma: no cover - the message is the point
            raise AssertionError(f"README snippet {i} failed:\n{code}") from e
    assert len(namespace["se"].snapshot_steps) == 3
    assert namespace["history"].history["learning_rate"] == pytest.approx(
        [0.1, 0.1, 0.05, 0.05])
    assert len(namespace["averaged"].weights) == len(namespace["model"].weights)
    assert len(namespace["best2"].members) == 2
