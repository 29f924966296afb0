"""Sphinx configuration of the sciwire manual (``make docs``)."""

from __future__ import annotations

import re
from pathlib import Path

import sciwire

project = "sciwire"
author = "the sciwire developers"
copyright = "the sciwire developers"
version = release = sciwire.__version__

extensions = [
    "myst_parser",  # Markdown pages: other teams drop docs/*.md in and they are built
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # Google-style docstrings
    "sphinx.ext.intersphinx",
    "sphinx_click",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]
myst_heading_anchors = 3
myst_enable_extensions = ["deflist"]

html_theme = "furo"
html_title = f"sciwire {release}"

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Cross-references into the standard library need its inventory, which would be a download
# at build time: `make docs` must build offline, so only local references are resolved.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

# Type hints name third-party and private types autodoc cannot resolve; they render as
# text. Everything else (markup errors, missing pages, broken toctrees) fails the build.
nitpicky = False

# Attributes: sections become fields of their class, not separate object descriptions
# (a documented property of the same name would otherwise be described twice).
napoleon_use_ivar = True


def _join_name_lists(
    app: object, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """Join an argument line that lists several names over two lines ("a, b,\\n    c: text").

    Google style allows it and the packages' docstrings use it for long shared argument
    lists; napoleon reads the continuation as a nested block and docutils warns. Runs
    before napoleon.
    """
    i = 0
    while i < len(lines) - 1:
        line, nxt = lines[i].rstrip(), lines[i + 1]
        indent = len(line) - len(line.lstrip())
        deeper = len(nxt) - len(nxt.lstrip()) > indent
        if line.endswith(",") and ":" not in line and nxt.strip() and deeper:
            lines[i] = f"{line} {nxt.strip()}"
            del lines[i + 1]
            continue
        i += 1


def setup(app: object) -> None:
    """Register the docstring clean-up ahead of napoleon (priority 500)."""
    app.connect("autodoc-process-docstring", _join_name_lists, priority=400)  # type: ignore[attr-defined]


# Each package page shows that package's section of differences.md, cut out at build time
# (into the git-ignored _generated/), so the list has one home and the pages cannot drift.
_HERE = Path(__file__).resolve().parent
PACKAGES = ("command", "drms", "samp", "ifcb", "rig")


def _split_differences() -> None:
    text = (_HERE / "differences.md").read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    out = _HERE / "_generated"
    out.mkdir(exist_ok=True)
    for package in PACKAGES:
        found = [s for s in sections if re.match(rf"sciwire\.{package}\b", s)]
        if found:
            body = found[0].partition("\n")[2].strip() + "\n"
        else:
            body = "The full list is in {doc}`differences`.\n"
        target = out / f"differences-{package}.md"
        if not target.exists() or target.read_text(encoding="utf-8") != body:
            target.write_text(body, encoding="utf-8")


_split_differences()
