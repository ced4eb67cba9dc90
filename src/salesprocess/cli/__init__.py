"""The command line: ``salesprocess``, the sales process on a SQLite file or PostgreSQL.

An entry point, like the facade it drives: it parses arguments (Click), reads and writes files
(CSV, JSON) and prints tables (rich); the library's errors become one line on stderr and exit
status 1, usage errors exit 2. Install it with the extra: ``pip install 'salesprocess[cli]'``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (see :func:`salesprocess.cli.app.main`).

    Without the extra (Click, rich) it says so in one line, exit status 1, not a traceback.
    """
    try:
        from salesprocess.cli.app import main as run  # noqa: PLC0415 - needs the extra
    except ImportError as error:
        if error.name not in ("click", "rich"):
            raise
        print(
            f"error: the command line needs {error.name}: pip install 'salesprocess[cli]'",
            file=sys.stderr,
        )
        return 1
    return run(argv)
