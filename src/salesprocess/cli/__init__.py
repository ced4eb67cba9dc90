"""The command line: ``salesprocess``, the sales process on a SQLite file or PostgreSQL.

An entry point, like the facade it drives: it parses arguments (Click), reads and writes files
(CSV, JSON) and prints tables (rich); the library's errors become one line on stderr and exit
status 1, usage errors exit 2. Install it with the extra: ``pip install 'salesprocess[cli]'``.
"""

from __future__ import annotations

from salesprocess.cli.app import main

__all__ = ["main"]
