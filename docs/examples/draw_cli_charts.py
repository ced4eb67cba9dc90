"""Redraw the charts shown in docs/cli.md: ``python docs/examples/draw_cli_charts.py``.

It runs the command line as a user would: ``salesprocess demo`` (the default seed) on a new
SQLite file in a temporary folder, then ``salesprocess report --plot`` with the page's
``--as-of`` and ``--target``, into ``docs/_static/cli/`` (or ``--out``). The PNG files are
committed; run this again when ``salesprocess/cli/plots.py`` or the demo changes, and commit
what it draws. ``tests/test_docs_charts.py`` checks the committed files against what it draws.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from salesprocess.cli import main as salesprocess

#: Where docs/cli.md takes its charts from.
FOLDER = Path(__file__).parents[1] / "_static" / "cli"
#: The report's moment and weekly target, as in the page's ``report --plot`` example.
AS_OF = "2026-04-12"
TARGET = "3"


def draw(folder: Path) -> list[str]:
    """Draw the charts of a new demo database into ``folder``; return the names drawn.

    The charts are drawn in a temporary folder first, so the names returned are exactly those
    ``report --plot`` draws, whatever ``folder`` held before (a chart no longer drawn is left
    there: ``tests/test_docs_charts.py`` finds it).
    """
    with tempfile.TemporaryDirectory(prefix="salesprocess-charts-") as scratch:
        db, charts = str(Path(scratch) / "demo.db"), Path(scratch) / "charts"
        said = io.StringIO()  # the demo's story, the tables, the "drew" lines; an error
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(said):
            status = salesprocess(["demo", "--db", db])
            if status == 0:
                status = salesprocess(
                    ["report", "--db", db, "--plot", str(charts), "--as-of", AS_OF,
                     "--target", TARGET]
                )  # fmt: skip
        if status != 0:
            raise RuntimeError(f"salesprocess exited with status {status}: {said.getvalue()}")
        names = sorted(path.name for path in charts.iterdir())
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(charts / name, folder / name)
    return names


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and draw the charts; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="draw_cli_charts.py", description="Redraw the charts shown in docs/cli.md."
    )
    parser.add_argument("--out", type=Path, default=FOLDER, help=f"folder (default {FOLDER})")
    args = parser.parse_args(argv)
    for name in draw(args.out):
        print(args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
