"""Where the command line writes: results on standard output, errors and progress on stderr.

An error is one line (``error: ...``) and exit status 1; a progress bar is drawn only on a
terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

from rich.console import Console

__all__ = ["err", "fail", "progress", "stdout"]

#: Standard error, for errors, rejected rows and progress.
err = Console(stderr=True, highlight=False, soft_wrap=True)


def stdout() -> Console:
    """Return a console on standard output, for what a command answers."""
    # Piped or redirected, rich would assume 80 columns and cut a long amount short.
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def fail(message: str) -> NoReturn:
    """Say ``message`` on standard error, on one line, and end the command with status 1."""
    # One line, always: a driver's message may run over several (psycopg adds a hint line).
    err.print(f"error: {' '.join(message.split())}", markup=False)
    raise SystemExit(1)


@contextmanager
def progress(
    what: str, console: Console | None = None
) -> Iterator[Callable[[int, int], None] | None]:
    """Yield ``progress(done, total)`` drawing a bar on a terminal; ``None`` (quiet) elsewhere.

    A log file or a pipe must not fill with a bar's redraws, so the bar is shown only when
    stderr is a terminal (``console`` stands for stderr in the tests).
    """
    console = console or err
    if not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn  # noqa: PLC0415 - only on a terminal

    bar = Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True,
    )  # fmt: skip
    task = bar.add_task(what, total=None)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total)
