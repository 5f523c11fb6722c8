"""A Griffe extension for the API pages: Keras' `Call arguments:` sections.

Keras-style docstrings list a layer's call arguments under `Call arguments:`,
in the `name: description` form of `Args:`. Griffe's Google-style parser
knows no such section and renders it as an admonition whose lines run
together; this extension rewrites each entry as a Markdown list item,
`- `name`: description`, before the docstring is parsed. Loaded by
mkdocstrings (mkdocs.yml, `extensions:`); the docstrings are not changed.
"""

import re

import griffe

_SECTION = re.compile(r"^(?P<indent>[ \t]*)Call arguments:[ \t]*$")
_ENTRY = re.compile(r"^(?P<indent>[ \t]+)(?P<name>\*{0,2}\w+): ?(?P<text>.*)$")


def call_arguments_as_list(text):
    """Rewrites the entries of each `Call arguments:` section of `text`."""
    lines = text.splitlines()
    out = []
    section_indent = None  # the indentation of the section's entries
    for line in lines:
        if section_indent is None:
            out.append(line)
            if _SECTION.match(line):
                section_indent = ""
            continue
        if not line.strip():
            out.append(line)
            if section_indent:
                section_indent = None  # a blank line ends the section
            continue
        if section_indent == "":
            section_indent = line[: len(line) - len(line.lstrip())]
        entry = _ENTRY.match(line)
        if entry and entry["indent"] == section_indent:
            line = f"{section_indent}- `{entry['name']}`: {entry['text']}"
        out.append(line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


class KerasSections(griffe.Extension):
    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None and "Call arguments:" in obj.docstring.value:
            obj.docstring.value = call_arguments_as_list(obj.docstring.value)
