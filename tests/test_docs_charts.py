"""The charts docs/cli.md shows: committed, PNG files, and the very set `report --plot` draws.

They are drawn by ``docs/examples/draw_cli_charts.py``; the bytes are not compared (another
matplotlib version draws other bytes), the file names are.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

DOCS = Path(__file__).parents[1] / "docs"
SCRIPT = DOCS / "examples" / "draw_cli_charts.py"
_spec = importlib.util.spec_from_file_location("draw_cli_charts", SCRIPT)
assert _spec is not None
assert _spec.loader is not None
draw_cli_charts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(draw_cli_charts)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def committed() -> list[str]:
    return sorted(path.name for path in draw_cli_charts.FOLDER.iterdir())


def test_the_committed_charts_are_pngs():
    """Every file in the charts folder is a PNG image, and there are some."""
    assert committed(), f"no charts in {draw_cli_charts.FOLDER}"
    for name in committed():
        path = draw_cli_charts.FOLDER / name
        assert name.endswith(".png")
        assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path} is not a PNG file"


def test_report_plot_on_a_fresh_demo_draws_the_committed_set(tmp_path):
    """A chart added to or dropped from plots.py must be redrawn (and shown) in the docs."""
    drawn = draw_cli_charts.draw(tmp_path / "charts")
    assert drawn == committed()
    assert sorted(path.name for path in (tmp_path / "charts").iterdir()) == drawn
    for name in drawn:
        assert (tmp_path / "charts" / name).read_bytes()[:8] == PNG_SIGNATURE


def test_the_cli_page_shows_every_committed_chart():
    """docs/cli.md shows each chart, with Markdown image syntax, from the committed folder."""
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    shown = sorted(re.findall(r"!\[[^\]]*\]\(_static/cli/([^)\s]+)\)", page))
    assert shown == committed()
