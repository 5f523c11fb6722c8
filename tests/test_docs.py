"""The docs site (docs/ + mkdocs.yml).

- Every python code block of the pages (the guides, Getting started, the
  home page) runs, in order, in one namespace per page, as a reader pasting
  them would; one test per page, so that xdist spreads them. A block right
  after the HTML comment `<!-- docs-test: skip (why) -->` is not run (a set-up
  that must come before the backend starts, say); one after
  `<!-- docs-test: backend=jax -->` runs on that backend only.
- The API reference has an entry (a `::: path` line of docs/api/) for every
  public name of kerasreg and of its subpackages.
- The site builds with `mkdocs build --strict` (a broken link or anchor, a
  missing page or a docstring mkdocstrings cannot parse fails it) into a
  temporary folder, with the network cut off.
"""

import importlib
import importlib.util
import os
import pathlib
import re
import subprocess
import sys
import types

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKER = "<!-- docs-test:"
BLOCK = re.compile(
    r"(?:<!-- docs-test: (?P<marker>[^\n]*?) -->\n)?```python\n(?P<code>.*?)```",
    flags=re.S,
)
SUBPACKAGES = (
    "layers", "initializers", "schedules", "callbacks", "ensembles",
    "calibration", "metrics", "tuning", "diagnostics", "datasets", "demo",
)


def _nav_pages():
    """The pages of mkdocs.yml's nav, in order (read without a YAML parser)."""
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text[text.index("\nnav:"):]
    return re.findall(r"^\s*- (?:[^:\n]+: )?(\S+\.md)\s*$", nav, flags=re.M)


def _blocks(page, backend):
    """The python blocks of `page` that run on `backend`, in order."""
    text = (DOCS / page).read_text()
    matches = list(BLOCK.finditer(text))
    markers = [m["marker"] for m in matches if m["marker"] is not None]
    # A marker that is not right above a python block would be ignored.
    assert len(markers) == text.count(MARKER), f"{page}: a stray {MARKER} comment"
    blocks = []
    for m in matches:
        marker = m["marker"]
        if marker is None:
            blocks.append(m["code"])
        elif marker.startswith("skip"):
            continue
        elif marker.startswith("backend="):
            if marker.split("=", 1)[1] == backend:
                blocks.append(m["code"])
        else:
            raise AssertionError(f"{page}: unknown marker {marker!r}")
    return blocks


RUN_PAGES = [p for p in _nav_pages()
             if not p.startswith("api/") and BLOCK.search((DOCS / p).read_text())]
# The data block that every guide starts with.
SETUP = _blocks("getting-started.md", "any")[0]


def _check_index(ns, tmp_path):
    assert len(ns["se"].snapshot_steps) == 3


def _check_getting_started(ns, tmp_path):
    assert (tmp_path / "averaged.keras").exists()
    assert len(ns["reloaded"].weights) == len(ns["model"].weights)


def _check_layers(ns, tmp_path):
    for a, b in zip(ns["plain"].get_weights(), ns["model"].get_weights(),
                    strict=True):
        assert (a == b).all()


def _check_initialization(ns, tmp_path):
    assert ns["w"].std() == pytest.approx((2 / 400) ** 0.5, rel=0.05)


def _check_schedules(ns, tmp_path):
    assert (tmp_path / "schedules.png").exists()
    assert tuple(ns["snap"].cycle_end_steps) == (249, 499, 749, 999)
    assert ns["history"].history["learning_rate"][:4] == pytest.approx(
        [0.1, 0.1, 0.05, 0.05])


def _check_weight_averaging(ns, tmp_path):
    assert len(ns["swa"].weights) == len(ns["model"].weights)


def _check_ensembles(ns, tmp_path):
    assert (tmp_path / "ensemble.keras").exists()
    assert len(ns["boot"].members) == 3
    assert ns["heads"].head_predictions(ns["x_test"]).shape == (4, 359, 10)


def _check_snapshot_ensembles(ns, tmp_path):
    assert len(ns["se"].snapshot_steps) == 5
    assert len(ns["snapshots"].members) == 3


def _check_deep_ensembles(ns, tmp_path):
    assert ns["passes"].shape == (10, 359, 10)
    assert len(ns["members"]) == 4


def _check_calibration(ns, tmp_path):
    assert (tmp_path / "reliability.png").exists()
    assert ns["table"].row("mean")["temperature"] == pytest.approx(
        ns["scaled"].temperature, rel=1e-6)


def _check_tuning(ns, tmp_path):
    assert (tmp_path / "search.png").exists()
    assert len(ns["best3"].members) == 3


def _check_diagnostics(ns, tmp_path):
    assert ns["report"].verdict == "good", str(ns["report"])
    assert len(ns["history"].history["update_ratio"]) == 4


def _check_devices(ns, tmp_path):
    assert len(ns["deep"].members) == 3


# What each page's blocks promise, checked on what they produced.
CHECKS = {
    "index.md": _check_index,
    "getting-started.md": _check_getting_started,
    "guides/layers.md": _check_layers,
    "guides/initialization.md": _check_initialization,
    "guides/schedules.md": _check_schedules,
    "guides/weight-averaging.md": _check_weight_averaging,
    "guides/ensembles.md": _check_ensembles,
    "guides/snapshot-ensembles.md": _check_snapshot_ensembles,
    "guides/deep-ensembles.md": _check_deep_ensembles,
    "guides/calibration.md": _check_calibration,
    "guides/tuning.md": _check_tuning,
    "guides/diagnostics.md": _check_diagnostics,
    "guides/devices.md": _check_devices,
}


def test_every_page_with_code_is_checked():
    assert sorted(RUN_PAGES) == sorted(CHECKS)
    assert all(page in _nav_pages() for page in CHECKS)


def test_every_guide_starts_with_the_data_of_getting_started():
    guides = [p for p in RUN_PAGES if p.startswith("guides/")]
    assert len(guides) == 11
    for page in guides:
        assert _blocks(page, "any")[0] == SETUP, page


@pytest.mark.slow
@pytest.mark.parametrize("page", RUN_PAGES)
def test_docs_snippets_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    keras.utils.set_random_seed(0)
    namespace = {"__name__": "__docs__"}
    for i, code in enumerate(_blocks(page, keras.backend.backend())):
        try:
            exec(compile(code, f"docs/{page} block {i}", "exec"), namespace)
        except Exception as e:  # pragma: no cover - the message is the point
            raise AssertionError(f"docs/{page}, block {i} failed:\n{code}") from e
    CHECKS[page](namespace, tmp_path)


def _public_names(module):
    """A module's public names: its `__all__`, else what it defines."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [
        name for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", module.__name__).startswith("kerasreg")
    ]


def _resolve(path):
    """The object named by a dotted path (a module, or attributes of one)."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(path)


def _api_entries():
    """`(path, members)` of each `::: path` of docs/api/: `members` is the
    list under its `members:` option, `[]` for `members: false`, else None."""
    entries = []
    for page in sorted((DOCS / "api").glob("*.md")):
        for m in re.finditer(r"^::: (\S+)\n((?:[ ]{4}.*\n)*)",
                             page.read_text(), flags=re.M):
            options = m[2]
            members = None
            if re.search(r"^\s+members: false$", options, flags=re.M):
                members = []
            elif listed := re.search(r"^\s+members:\n((?:\s+- \S+\n)+)",
                                     options, flags=re.M):
                members = re.findall(r"- (\S+)", listed[1])
            entries.append((m[1], members))
    return entries


def test_api_reference_covers_every_public_name():
    pytest.importorskip("keras_tuner")  # CoarseToFine's entry imports it
    import kerasreg  # noqa: F401

    documented = set()
    for path, members in _api_entries():
        obj = _resolve(path)
        documented.add(id(obj))
        if isinstance(obj, types.ModuleType):
            # A whole module's entry shows its public names, or those listed.
            names = _public_names(obj) if members is None else members
            documented.update(id(getattr(obj, n)) for n in names)
    missing = []
    for module_name in ("kerasreg",) + tuple(
            f"kerasreg.{name}" for name in SUBPACKAGES):
        module = importlib.import_module(module_name)
        for name in _public_names(module):
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType):
                continue
            if id(obj) not in documented:
                missing.append(f"{module_name}.{name}")
    assert not missing, f"no entry in docs/api/: {missing}"


# Runs mkdocs with every socket connection refused: the build must need no
# network (no fonts, no plugin that downloads).
_OFFLINE_BUILD = """
import socket, sys

def _refuse(*args, **kwargs):
    raise OSError("the docs build tried to use the network")

socket.socket.connect = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse

from mkdocs.__main__ import cli

sys.argv = ["mkdocs", "build", "--strict", "-f", sys.argv[1], "-d", sys.argv[2]]
cli()
"""


def test_docs_build_strict_offline(tmp_path):
    for package in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(package, reason="the docs extra: pip install -e '.[docs]'")
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-c", _OFFLINE_BUILD, str(ROOT / "mkdocs.yml"), str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    for page in _nav_pages():
        assert (site / page).with_suffix(".html").exists(), page
    index = (site / "index.html").read_text()
    assert "fonts.googleapis" not in index
    api = (site / "api" / "ensembles.html").read_text()
    assert 'id="kerasreg.ensembles.SnapshotEnsemble"' in api
    assert (site / "calibration_fashion_mnist_tensorflow.png").exists()
    # benchmarks/RESULTS.md is included, not copied by hand.
    assert 'id="keras-compatibility"' in (site / "benchmarks.html").read_text()


def test_call_arguments_sections_become_lists():
    pytest.importorskip("griffe", reason="the docs extra: pip install -e '.[docs]'")
    spec = importlib.util.spec_from_file_location(
        "keras_sections", DOCS / "_griffe" / "keras_sections.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = (
        "Summary.\n\n"
        "Args:\n    rate: Float.\n\n"
        "Call arguments:\n"
        "    inputs: Input tensor.\n"
        "    training: Python boolean, whether the layer\n"
        "        behaves in training mode.\n\n"
        "Example:\n\n    x: not an argument.\n"
    )
    assert module.call_arguments_as_list(doc) == (
        "Summary.\n\n"
        "Args:\n    rate: Float.\n\n"
        "Call arguments:\n"
        "    - `inputs`: Input tensor.\n"
        "    - `training`: Python boolean, whether the layer\n"
        "        behaves in training mode.\n\n"
        "Example:\n\n    x: not an argument.\n"
    )
