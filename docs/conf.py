"""Sphinx configuration: MyST Markdown, furo, autodoc, and a lifecycle diagram drawn at build."""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx

import salesprocess

project = "salesprocess"
author = "salesprocess developers"
copyright = "2026, salesprocess developers"
release = salesprocess.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinxcontrib.mermaid",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "_generated"]
html_theme = "furo"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
nitpicky = False
suppress_warnings = ["myst.xref_missing"]

GENERATED = Path(__file__).parent / "_generated"


def draw_lifecycle(_app: Sphinx) -> None:
    """Write the lifecycle diagram from the state machine class itself, so it cannot drift."""
    from statemachine.contrib.diagram import MermaidGraphMachine  # noqa: PLC0415

    from salesprocess.lifecycle import Lifecycle  # noqa: PLC0415

    GENERATED.mkdir(exist_ok=True)
    (GENERATED / "lifecycle.mmd").write_text(MermaidGraphMachine(Lifecycle)(), encoding="utf-8")


def setup(app: Sphinx) -> None:
    """Hook the diagram into the build."""
    app.connect("builder-inited", draw_lifecycle)
