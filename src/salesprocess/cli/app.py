"""The ``salesprocess`` commands (Click), each a thin layer over the public API."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from click.core import ParameterSource
from rich.console import Console

import salesprocess as sp
from salesprocess.cli import csvfiles

__all__ = ["cli", "main"]

_Command = TypeVar("_Command", bound=Callable[..., Any])

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _out() -> Console:
    # Piped or redirected, rich would assume 80 columns and cut a long amount short.
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def _fail(message: str) -> NoReturn:
    # One line, always: a driver's message may run over several (psycopg adds a hint line).
    _err.print(f"error: {' '.join(message.split())}", markup=False)
    raise SystemExit(1)


def _criteria(path: Path) -> sp.Criteria:
    """Load a criteria file, named by its stem and versioned by its document's digest.

    A screening records the criteria's name and version: the digest (of the document as
    :meth:`~salesprocess.Criteria.to_json` writes it) says exactly which rules judged, whatever
    the file was called later. ``from_json`` reads the file, with its checks (a regular file,
    at most 1 MiB).
    """
    try:
        read = sp.Criteria.from_json(path, name=path.stem, version="file")
    except sp.ValidationError as error:
        if str(path) in str(error):
            raise
        raise sp.ValidationError(f"{path}: {error}", field=error.field) from None
    digest = hashlib.sha256(read.to_json().encode("utf-8")).hexdigest()[:12]
    return sp.Criteria.from_dict(read.document, name=path.stem, version=f"sha256:{digest}")


@contextmanager
def _process(
    db: str,
    dsn: str | None,
    criteria: Path | None = None,
    *,
    existing: bool = False,
    **wiring: Any,
) -> Iterator[sp.SalesProcess]:
    """Open the store the options name, and report any library error as one line, exit 1.

    A file that cannot be written (a rejects file, a chart) is reported the same way. With
    ``existing`` a SQLite file that is not there is an error (a misspelt ``--db`` must not
    become a new, empty database that reports zeros).
    """
    dsn = _chosen_dsn(dsn)
    try:
        rules = None if criteria is None else _criteria(criteria)
        if not dsn and existing and db not in ("", ":memory:") and not Path(db).exists():
            _fail(f"{db}: no such database (demo, import-leads or migrate make a new one)")
        if dsn:
            from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415

            repository: Any = PostgresRepository(dsn)
        else:
            from salesprocess.storage.sqlite import SQLiteRepository  # noqa: PLC0415 - with its command

            repository = SQLiteRepository(db)
        with repository:
            yield sp.SalesProcess(repository, criteria=rules, **wiring)
    except sp.SalesProcessError as error:
        _fail(str(error))
    except OSError as error:
        _fail(f"{error.filename or 'a file'}: {error.strerror or error}")


def _chosen_dsn(dsn: str | None) -> str | None:
    """Return the DSN to use: an explicit ``--db`` wins over ``SALESPROCESS_DSN``.

    The variable stands for the usual store; a ``--db`` typed on the command line is the one
    the user means (an explicit ``--dsn`` still overrides it).
    """
    context = click.get_current_context(silent=True)
    if (
        dsn
        and context is not None
        and context.get_parameter_source("dsn") is ParameterSource.ENVIRONMENT
        and context.get_parameter_source("db") is ParameterSource.COMMANDLINE
    ):
        return None
    return dsn


def _store_options(command: _Command) -> _Command:
    """Add ``--db`` and ``--dsn`` (or ``SALESPROCESS_DSN``) to a command."""
    command = click.option(
        "--dsn",
        envvar="SALESPROCESS_DSN",
        help="PostgreSQL connection string (or SALESPROCESS_DSN, which a --db given overrides).",
    )(command)
    return click.option(
        "--db",
        default="sales.db",
        show_default=True,
        help="SQLite file to keep the accounts in.",
    )(command)


@contextmanager
def _progress(
    what: str, console: Console | None = None
) -> Iterator[Callable[[int, int], None] | None]:
    """Yield ``progress(done, total)`` drawing a bar on a terminal; ``None`` (quiet) elsewhere.

    A log file or a pipe must not fill with a bar's redraws, so the bar is shown only when
    stderr is a terminal (``console`` stands for stderr in the tests).
    """
    console = console or _err
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


def _renames(mappings: Sequence[str]) -> dict[str, str]:
    renames = {}
    for mapping in mappings:
        column, sep, field = mapping.partition("=")
        if not sep or not column.strip() or not field.strip():
            raise click.BadParameter(f"{mapping!r} is not COLUMN=FIELD", param_hint="--map")
        renames[column.strip()] = field.strip()
    return renames


def _moment(text: str) -> datetime | str:
    """Parse a CSV or option date: an ISO date (midnight UTC) or an ISO datetime with offset.

    Anything else comes back as the reason it is refused, in the spreadsheet's terms.
    """
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        return f"{text!r} is no date: write 2026-03-02, or 2026-03-02T16:30:00+01:00"
    if moment.utcoffset() is None:
        return f"{text!r} has no offset from UTC: add one (2026-03-02T16:30:00+01:00, or Z)"
    return moment


def _option_moment(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    moment = _moment(text)
    if isinstance(moment, str):
        raise click.BadParameter(moment, param_hint=name)
    return moment


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(sp.__version__, prog_name="salesprocess")
def cli() -> None:
    """Run the sales process on a SQLite file (or PostgreSQL): leads, purchases, reports."""


@cli.command("migrate")
@_store_options
def migrate_command(*, db: str, dsn: str | None) -> None:
    """Create the tables, or bring them to this version's schema (once per release).

    On PostgreSQL the app's repositories only check the schema version; this is the step that
    changes it (safe to run twice, or from several machines at once). A SQLite file is
    migrated whenever it is opened: this opens it.
    """
    dsn = _chosen_dsn(dsn)
    try:
        if dsn:
            from salesprocess.storage import postgres  # noqa: PLC0415

            with postgres.PostgresRepository(dsn, migrate=True):
                version = postgres.SCHEMA_VERSION
        else:
            from salesprocess.storage import sqlite  # noqa: PLC0415

            with sqlite.SQLiteRepository(db):
                version = sqlite.SCHEMA_VERSION
    except sp.SalesProcessError as error:
        _fail(str(error))
    except OSError as error:
        _fail(f"{error.filename or 'a file'}: {error.strerror or error}")
    _out().print(f"{'PostgreSQL' if dsn else db}: salesprocess schema version {version}")


@cli.command("demo")
@_store_options
@click.option("--seed", default=7, show_default=True, help="The same seed, the same quarter.")
@click.option(
    "--accounts",
    default=60,
    show_default=True,
    type=click.IntRange(min=1),
    help="Leads to capture over the quarter.",
)
@click.option("--force", is_flag=True, help="Run even if the database already holds accounts.")
def demo_command(*, db: str, dsn: str | None, seed: int, accounts: int, force: bool) -> None:
    """Simulate a quarter of a small equipment supplier, then show the report."""
    from salesprocess.cli import demo, render  # noqa: PLC0415 - a command's own modules load with it

    ids, codes = demo.factories(seed)
    dsn = _chosen_dsn(dsn)
    with _process(db, dsn, demo.criteria_file(), id_factory=ids, code_factory=codes) as sales:
        held = sum(sales.stage_counts().values())
        if held and not force:
            # Never the DSN itself: it may hold a password, and stderr ends up in logs.
            where = "the PostgreSQL database" if dsn else db
            _fail(
                f"{where} already holds {held} accounts: the demo never mixes its data into "
                "yours; give it another --db or --dsn (or --force)"
            )
        story = demo.run_quarter(sales, seed=seed, leads=accounts)
        console = _out()
        console.print(story, markup=False)
        end = demo.START + timedelta(days=98)
        render.report(console, render.figures(render.gather(sales, as_of=end, target=3)))


@cli.command("import-leads")
@_store_options
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--channel",
    required=True,
    type=click.Choice([channel.value for channel in sp.Channel]),
    help="Where the leads came from.",
)
@click.option("--campaign", help="The campaign they came with.")
@click.option("--map", "mappings", multiple=True, metavar="COLUMN=FIELD", help="Rename a column.")
@click.option("--encoding", default="utf-8", show_default=True)
@click.option("--skip-bad", is_flag=True, help="Import the good rows; list the bad ones.")
@click.option("--rejects", type=click.Path(path_type=Path), help="CSV file for the bad rows.")
def import_leads(
    *,
    db: str,
    dsn: str | None,
    file: Path,
    channel: str,
    campaign: str | None,
    mappings: tuple[str, ...],
    encoding: str,
    skip_bad: bool,
    rejects: Path | None,
) -> None:
    """Capture the leads of a CSV file (name, email and/or phone; other columns: attributes).

    Known contacts are recognised, never doubled: importing the same file twice changes
    nothing. By default one bad row imports nothing (every bad row is listed, exit 1).
    """
    _check_rejects(rejects, skip_bad, file, db=db, dsn=dsn)
    sheet = _read(
        file, encoding=encoding, required=[["name"], ["email", "phone"]],
        renames=_renames(mappings),
    )  # fmt: skip
    with _process(db, dsn) as sales:
        done, rejected = _load(
            file, sheet, [csvfiles.lead_row(row) for row in sheet.rows],
            lambda leads, whole, progress: sales.import_leads(
                leads, channel=channel, campaign=campaign, all_or_nothing=whole,
                progress=progress,
            ),
            sales=sales, skip_bad=skip_bad, rejects=rejects,
        )  # fmt: skip
        _out().print(
            f"{done.captured} leads captured, {done.known} known, {rejected} rejected",
            markup=False,
        )


@cli.command("import-purchases")
@_store_options
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--map", "mappings", multiple=True, metavar="COLUMN=FIELD", help="Rename a column.")
@click.option("--currency", help="The currency of an amount column without one.")
@click.option("--encoding", default="utf-8", show_default=True)
@click.option("--skip-bad", is_flag=True, help="Import the good rows; list the bad ones.")
@click.option("--rejects", type=click.Path(path_type=Path), help="CSV file for the bad rows.")
def import_purchases(
    *,
    db: str,
    dsn: str | None,
    file: Path,
    mappings: tuple[str, ...],
    currency: str | None,
    encoding: str,
    skip_bad: bool,
    rejects: Path | None,
) -> None:
    """Record the purchases of a CSV file (account_id, email or phone; amount; at; reference).

    The reference column (the invoice or receipt number) makes re-imports harmless: a known
    reference is recorded once, so the same file twice changes nothing. A row for an unknown
    customer creates it (a walk-in buyer). Any other column is refused: a misnamed one must not
    vanish.
    """
    _check_rejects(rejects, skip_bad, file, db=db, dsn=dsn)
    required = [["amount"], ["at"], ["reference"], ["account_id", "email", "phone"]]
    sheet = _read(
        file, encoding=encoding, required=required, renames=_renames(mappings),
        allowed=_PURCHASE_FIELDS,
    )  # fmt: skip
    with _process(db, dsn) as sales:
        done, rejected = _load(
            file, sheet, [_purchase_row(row, currency) for row in sheet.rows],
            lambda purchases, whole, progress: sales.import_purchases(
                purchases, all_or_nothing=whole, progress=progress
            ),
            sales=sales, skip_bad=skip_bad, rejects=rejects,
        )  # fmt: skip
        _out().print(
            f"{done.recorded} purchases recorded, {done.duplicates} already known, "
            f"{len(done.created)} new customers, {rejected} rejected",
            markup=False,
        )


_PURCHASE_FIELDS = ("account_id", "email", "phone", "name", "amount", "currency", "at", "reference")


def _read(path: Path, **options: Any) -> csvfiles.Sheet:
    """Read the CSV file before the store is opened: a file that cannot be read leaves it be."""
    try:
        return csvfiles.read_rows(path, **options)
    except sp.SalesProcessError as error:
        _fail(str(error))


def _same_file(one: Path, other: Path) -> bool:
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


def _never_over(
    path: Path, option: str, *, db: str, dsn: str | None, source: Path | None = None
) -> None:
    """Refuse an output file that is the input (``source``) or the SQLite database: usage error."""
    if source is not None and _same_file(path, source):
        raise click.BadParameter(f"{path} is the file being imported", param_hint=option)
    if not _chosen_dsn(dsn) and db not in ("", ":memory:") and _same_file(path, Path(db)):
        raise click.BadParameter(f"{path} is the database (--db)", param_hint=option)


def _check_rejects(
    rejects: Path | None, skip_bad: bool, source: Path, *, db: str, dsn: str | None
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
    _never_over(rejects, "--rejects", db=db, dsn=dsn, source=source)
    existed = rejects.exists()
    try:
        rejects.open("a", encoding="utf-8").close()
    except OSError as error:
        _fail(f"{rejects}: cannot write the rejects file: {error.strerror or error}")
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


def _load(
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
    early = [
        *sheet.broken,
        *(
            csvfiles.Rejected(sheet.lines[index], row, tuple(sheet.rows[index].values()))
            for index, row in enumerate(converted)
            if isinstance(row, str)
        ),
    ]

    def of_library(errors: Sequence[sp.RowError]) -> list[csvfiles.Rejected]:
        return [
            csvfiles.Rejected(
                sheet.lines[kept[error.position - 1]],
                error.message,
                tuple(sheet.rows[kept[error.position - 1]].values()),
            )
            for error in errors
        ]

    with _progress(f"importing {path.name}") as progress:
        if early and not skip_bad:
            tried = _tried(sales, lambda: run(good, False, progress))
            _refuse(path, [*early, *of_library(tried.rejected)])
        try:
            done = run(good, not skip_bad, progress)
        except sp.BadRows as error:
            _refuse(path, of_library(error.rows))
    rejected = _listed(path, [*early, *of_library(done.rejected)])
    if rejects is not None:  # even with none: an older run's rows must not pass for this one's
        count = csvfiles.write_rejects(rejects, sheet.header, rejected)
        _err.print(f"{count} rejected rows written to {rejects}", markup=False)
    return done, len(rejected)


def _listed(path: Path, rejected: Iterable[csvfiles.Rejected]) -> list[csvfiles.Rejected]:
    """Print each rejected row on stderr, by line; return them in that order."""
    ordered = sorted(rejected, key=lambda row: row.line)
    for row in ordered:
        _err.print(f"{path}:{row.line}: {row.reason}", markup=False)
    return ordered


def _refuse(path: Path, bad: Iterable[csvfiles.Rejected]) -> NoReturn:
    """List the bad rows and end the command: nothing was imported."""
    count = len(_listed(path, bad))
    _fail(f"{path}: {count} bad row{'' if count == 1 else 's'}, nothing imported "
          "(--skip-bad keeps the rest)")  # fmt: skip


def _purchase_row(row: dict[str, str], currency: str | None) -> dict[str, object] | str:
    """Return a CSV row as a purchase row, or the reason its amount or date cannot be one."""
    fields: dict[str, object] = {
        key: value.strip() or None
        for key, value in row.items()
        if key in ("account_id", "email", "phone", "name")
    }
    # Kept as written, empty too: the library refuses an empty reference with the row's line,
    # where None would record the row again at every re-import of the file.
    fields["reference"] = row.get("reference", "").strip()
    text = row.get("amount", "").strip()
    code = (row.get("currency") or currency or "").strip()
    if not code:
        return f"amount {text!r} has no currency: add a currency column, or give --currency"
    try:
        fields["amount"] = sp.Money(Decimal(text), code)
    except InvalidOperation:
        return f"amount {text!r} is no number: write it as 1234.50"
    except sp.ValidationError as error:
        return f"amount {text} {code}: {error}"
    at = _moment(row.get("at", ""))
    if isinstance(at, str):
        return f"at {at}"
    fields["at"] = at
    return fields


@cli.command("screen")
@_store_options
@click.option("--criteria", type=click.Path(path_type=Path), required=True, help="JSON Logic file.")
def screen(*, db: str, dsn: str | None, criteria: Path) -> None:
    """Screen every prospect against marketing's criteria and record each screening."""
    with _process(db, dsn, criteria, existing=True) as sales, _progress("screening") as progress:
        reports = sales.screen_all(progress=progress)
        passed = sum(1 for report in reports if report.passed)
        _out().print(f"{len(reports)} prospects screened, {passed} passed", markup=False)


@cli.command("call-list")
@_store_options
@click.option("--criteria", type=click.Path(path_type=Path), required=True, help="JSON Logic file.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--out", type=click.Path(path_type=Path), help="Write the list to this CSV file.")
def call_list(*, db: str, dsn: str | None, criteria: Path, limit: int, out: Path | None) -> None:
    """List the prospects to phone now, best first (never a do-not-contact account)."""
    from salesprocess.cli import render  # noqa: PLC0415 - a command's own modules load with it

    if out is not None:
        _never_over(out, "--out", db=db, dsn=dsn)
    with _process(db, dsn, criteria, existing=True) as sales:
        accounts = sales.call_list(limit=limit)
        if out is not None:
            render.write_call_list(out, accounts)
        render.call_list(_out(), accounts)


@cli.command("record-call")
@_store_options
@click.argument("account_id")
@click.argument("outcome", type=click.Choice([outcome.value for outcome in sp.CallOutcome]))
@click.option("--notes", default="", help="What was said.")
@click.option("--at", "at_text", help="When (ISO date or datetime with offset); default now.")
@click.option("--callback-at", "callback_text", help="For call_back: when to call again.")
def record_call(
    *,
    db: str,
    dsn: str | None,
    account_id: str,
    outcome: str,
    notes: str,
    at_text: str | None,
    callback_text: str | None,
) -> None:
    """Record how a phone call to ACCOUNT_ID ended."""
    at = _option_moment(at_text, "--at")
    callback = _option_moment(callback_text, "--callback-at")
    with _process(db, dsn, existing=True) as sales:
        acct = sales.record_call(
            account_id, sp.CallOutcome(outcome), notes=notes, at=at, callback_at=callback
        )
        _out().print(f"{acct.id} {acct.name}: {outcome} recorded", markup=False)


@cli.command("qualify")
@_store_options
@click.argument("account_id")
@click.option("--override", help="Qualify without a passing screen and call, for this reason.")
def qualify(*, db: str, dsn: str | None, account_id: str, override: str | None) -> None:
    """Qualify ACCOUNT_ID (a passing screen and a confirming call, or --override)."""
    with _process(db, dsn, existing=True) as sales:
        try:
            acct = sales.qualify(account_id, override=override)
        except sp.QualificationRefused as refused:
            # The library's message tells a Python caller what to pass; say the option.
            _fail(
                f"account {account_id} cannot be qualified yet; missing: "
                f"{'; '.join(refused.missing)}; with the authority, give --override REASON"
            )
        _out().print(f"{acct.id} {acct.name}: {acct.stage}", markup=False)


@cli.command("report")
@_store_options
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--since", "since_text", help="Revenue from this day (ISO).")
@click.option("--until", "until_text", help="Revenue up to (not including) this day (ISO).")
@click.option(
    "--target",
    default=5,
    show_default=True,
    type=click.IntRange(min=0),
    help="Qualified leads wanted a week.",
)
@click.option("--plot", type=click.Path(path_type=Path), help="Draw PNG charts into this folder.")
@click.option(
    "--as-of",
    "as_of_text",
    help="The report's moment (ISO); default now. Revenue and charts end at it; the referral "
    "figures are all time, not cut at it.",
)
def report(
    *,
    db: str,
    dsn: str | None,
    as_json: bool,
    since_text: str | None,
    until_text: str | None,
    target: int,
    plot: Path | None,
    as_of_text: str | None,
) -> None:
    """Show the funnel, revenue, repeat rate, lead flow against a target, and referrals."""
    from salesprocess.cli import plots, render  # noqa: PLC0415 - a command's own modules load with it

    since, until = _option_moment(since_text, "--since"), _option_moment(until_text, "--until")
    as_of = _option_moment(as_of_text, "--as-of") or datetime.now(UTC)
    if as_of_text is not None and (until is None or until > as_of):
        until = as_of  # the report is of that moment: no revenue from after it
        if since is not None and since >= until:
            raise click.BadParameter(f"{since_text!r} is not before --as-of", param_hint="--since")
    with _process(db, dsn, existing=True) as sales:
        found = render.gather(sales, as_of=as_of, target=target, since=since, until=until)
        figures = render.figures(found)
        if as_json:
            click.echo(json.dumps(render.views(found), indent=2))
        else:
            render.report(_out(), figures)
        if plot is not None:
            for path in plots.draw(sales, plot, figures, since=since, until=until):
                _err.print(f"drew {path}", markup=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit status (0 ok, 1 error, 2 usage)."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="salesprocess")
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
