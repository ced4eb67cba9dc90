"""A CSV file through an import: every bad row listed by its line, and the rejects file.

Bad rows come from three places: the file (a row that cannot be a row), the command line (a
date or an amount it cannot read) and the library's rules. They are listed together, by line,
on stderr; without ``--skip-bad`` one of them imports nothing, and all are listed at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

import salesprocess as sp
from salesprocess.cli import csvfiles
from salesprocess.cli.console import err, fail, progress

__all__ = ["check_rejects", "load", "never_over", "read", "same_file"]


def read(path: Path, **options: Any) -> csvfiles.Sheet:
    """Read the CSV file before the store is opened: a file that cannot be read leaves it be."""
    try:
        return csvfiles.read_rows(path, **options)
    except sp.SalesProcessError as error:
        fail(str(error))


def same_file(one: Path, other: Path) -> bool:
    """Whether ``one`` and ``other`` name one file: the same path, a link, another spelling.

    ``resolve`` covers a path not made yet; ``samefile`` a hard link, or a name in another
    case on a file system that ignores case.
    """
    if one.resolve() == other.resolve():
        return True
    try:
        return one.samefile(other)
    except OSError:  # either is not there (yet)
        return False


def never_over(
    path: Path,
    option: str,
    *,
    database: Path | None,
    source: Path | None = None,
    source_is: str = "the file being imported",
) -> None:
    """Refuse an output file that is the input (``source``) or the SQLite ``database``.

    Raises Click's usage error (exit status 2) naming ``option``; ``source_is`` says what the
    input is.
    """
    if source is not None and same_file(path, source):
        raise click.BadParameter(f"{path} is {source_is}", param_hint=option)
    if database is None:
        return
    # The database's own files too: SQLite keeps committed rows in the write-ahead log until a
    # checkpoint, and overwriting it loses them (an import said "captured", and the leads were
    # gone).
    for end in ("", "-wal", "-shm", "-journal"):
        if same_file(path, Path(f"{database}{end}")):
            what = "a file of the database" if end else "the database"
            raise click.BadParameter(f"{path} is {what} (--db)", param_hint=option)


def check_rejects(
    rejects: Path | None, skip_bad: bool, source: Path, *, database: Path | None
) -> None:
    """Refuse --rejects without --skip-bad or naming the input or the database; check it.

    The check appends nothing and truncates nothing: the file is written once the import has
    run, with this run's rejected rows (none: the header alone), so a previous run's rejects
    survive a run that fails before that, and never pass for this run's.
    """
    if rejects is None:
        return
    if not skip_bad:
        raise click.UsageError("--rejects goes with --skip-bad: without it nothing is imported")
    never_over(rejects, "--rejects", database=database, source=source)
    existed = rejects.exists()
    try:
        rejects.open("a", encoding="utf-8").close()
    except OSError as error:
        fail(f"{rejects}: cannot write the rejects file: {error.strerror or error}")
    if not existed:
        rejects.unlink()


class _Undone(Exception):
    """Raised inside ``atomic()`` to roll back an import tried only to list its bad rows."""

    def __init__(self, done: Any) -> None:
        super().__init__("rolled back")
        self.done = done


def _tried(sales: sp.SalesProcess, run: Callable[[], Any]) -> Any:
    """Return what ``run()`` returns, its writes rolled back."""
    try:
        with sales.repository.atomic():
            raise _Undone(run())
    except _Undone as undone:
        return undone.done


def load(
    path: Path,
    sheet: csvfiles.Sheet,
    converted: Sequence[object],
    run: Callable[[list[Any], bool, Any], Any],
    *,
    sales: sp.SalesProcess,
    skip_bad: bool,
    rejects: Path | None,
) -> tuple[Any, int]:
    """Import the rows of ``sheet`` by ``run(rows, all_or_nothing, progress)``.

    ``converted`` holds each row as the library takes it, or the reason (text) it cannot be
    one. Bad rows come from three places, the file (``sheet.broken``), the conversion and the
    library, and are listed together by line. Without ``skip_bad`` one bad row imports
    nothing: when the file or the conversion has some, the others are still tried, in a
    transaction rolled back, so that every bad row is listed at once. Returns what ``run``
    returned and how many rows were rejected.
    """
    kept = [index for index, row in enumerate(converted) if not isinstance(row, str)]
    good = [converted[index] for index in kept]

    def rejected_at(index: int, reason: str) -> csvfiles.Rejected:
        return csvfiles.Rejected(sheet.lines[index], reason, tuple(sheet.rows[index].values()))

    def of_library(errors: Sequence[sp.RowError]) -> list[csvfiles.Rejected]:
        return [rejected_at(kept[error.position - 1], error.message) for error in errors]

    early = [
        *sheet.broken,
        *(rejected_at(index, row) for index, row in enumerate(converted) if isinstance(row, str)),
    ]

    with progress(f"importing {path.name}") as told:
        if early and not skip_bad:
            tried = _tried(sales, lambda: run(good, False, told))
            _refuse(path, [*early, *of_library(tried.rejected)])
        try:
            done = run(good, not skip_bad, told)
        except sp.BadRows as error:
            _refuse(path, of_library(error.rows))
    rejected = _listed(path, [*early, *of_library(done.rejected)])
    if rejects is not None:  # even with none: an older run's rows must not pass for this one's
        count = csvfiles.write_rejects(rejects, sheet.header, rejected)
        err.print(f"{count} rejected rows written to {rejects}", markup=False)
    return done, len(rejected)


def _listed(path: Path, rejected: Iterable[csvfiles.Rejected]) -> list[csvfiles.Rejected]:
    """Print each rejected row on stderr, by line; return them in that order."""
    ordered = sorted(rejected, key=lambda row: row.line)
    for row in ordered:
        err.print(f"{path}:{row.line}: {row.reason}", markup=False)
    return ordered


def _refuse(path: Path, bad: Iterable[csvfiles.Rejected]) -> NoReturn:
    """List the bad rows and end the command: nothing was imported."""
    count = len(_listed(path, bad))
    fail(f"{path}: {count} bad row{'' if count == 1 else 's'}, nothing imported "
          "(--skip-bad keeps the rest)")  # fmt: skip
