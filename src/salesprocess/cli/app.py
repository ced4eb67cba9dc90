"""The ``salesprocess`` commands (Click), each a thin layer over the public API."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

import salesprocess as sp
from salesprocess.cli import csvfiles, loading
from salesprocess.cli.console import err, fail, progress, stdout

__all__ = ["cli", "main"]

_Command = TypeVar("_Command", bound=Callable[..., Any])


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
    dsn, database = _chosen_dsn(dsn), _database(db, dsn)
    try:
        rules = None if criteria is None else _criteria(criteria)
        if existing and database is not None and not database.exists():
            fail(f"{db}: no such database (demo, import-leads or migrate make a new one)")
        if dsn:
            from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415

            repository: Any = PostgresRepository(dsn)
        else:
            from salesprocess.storage.sqlite import SQLiteRepository  # noqa: PLC0415 - with its command

            repository = SQLiteRepository(db)
        with repository:
            yield sp.SalesProcess(repository, criteria=rules, **wiring)
    except sp.SalesProcessError as error:
        fail(str(error))
    except OSError as error:
        fail(f"{error.filename or 'a file'}: {error.strerror or error}")


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


def _database(db: str, dsn: str | None) -> Path | None:
    """Return the SQLite file the options name (``None``: PostgreSQL, or in memory)."""
    return None if _chosen_dsn(dsn) or db in ("", ":memory:") else Path(db)


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


def _renames(mappings: Sequence[str]) -> dict[str, str]:
    renames = {}
    for mapping in mappings:
        column, sep, field = mapping.partition("=")
        if not sep or not column.strip() or not field.strip():
            raise click.BadParameter(f"{mapping!r} is not COLUMN=FIELD", param_hint="--map")
        renames[column.strip()] = field.strip()
    return renames


def _option_moment(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    moment = csvfiles.moment(text)
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
        fail(str(error))
    except OSError as error:
        fail(f"{error.filename or 'a file'}: {error.strerror or error}")
    stdout().print(f"{'PostgreSQL' if dsn else db}: salesprocess schema version {version}")


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
            fail(
                f"{where} already holds {held} accounts: the demo never mixes its data into "
                "yours; give it another --db or --dsn (or --force)"
            )
        story = demo.run_quarter(sales, seed=seed, leads=accounts)
        console = stdout()
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
    loading.check_rejects(rejects, skip_bad, file, database=_database(db, dsn))
    sheet = loading.read(
        file, encoding=encoding, required=[["name"], ["email", "phone"]],
        renames=_renames(mappings),
    )  # fmt: skip
    with _process(db, dsn) as sales:
        done, rejected = loading.load(
            file, sheet, [csvfiles.lead_row(row) for row in sheet.rows],
            lambda leads, whole, progress: sales.import_leads(
                leads, channel=channel, campaign=campaign, all_or_nothing=whole,
                progress=progress,
            ),
            sales=sales, skip_bad=skip_bad, rejects=rejects,
        )  # fmt: skip
        stdout().print(
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
    loading.check_rejects(rejects, skip_bad, file, database=_database(db, dsn))
    required = [["amount"], ["at"], ["reference"], ["account_id", "email", "phone"]]
    sheet = loading.read(
        file, encoding=encoding, required=required, renames=_renames(mappings),
        allowed=csvfiles.PURCHASE_FIELDS,
    )  # fmt: skip
    with _process(db, dsn) as sales:
        done, rejected = loading.load(
            file, sheet, [csvfiles.purchase_row(row, currency) for row in sheet.rows],
            lambda purchases, whole, progress: sales.import_purchases(
                purchases, all_or_nothing=whole, progress=progress
            ),
            sales=sales, skip_bad=skip_bad, rejects=rejects,
        )  # fmt: skip
        stdout().print(
            f"{done.recorded} purchases recorded, {done.duplicates} already known, "
            f"{len(done.created)} new customers, {rejected} rejected",
            markup=False,
        )


@cli.command("screen")
@_store_options
@click.option("--criteria", type=click.Path(path_type=Path), required=True, help="JSON Logic file.")
def screen(*, db: str, dsn: str | None, criteria: Path) -> None:
    """Screen every prospect against marketing's criteria and record each screening."""
    with _process(db, dsn, criteria, existing=True) as sales, progress("screening") as told:
        reports = sales.screen_all(progress=told)
        passed = sum(1 for report in reports if report.passed)
        stdout().print(f"{len(reports)} prospects screened, {passed} passed", markup=False)


@cli.command("call-list")
@_store_options
@click.option("--criteria", type=click.Path(path_type=Path), required=True, help="JSON Logic file.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--out", type=click.Path(path_type=Path), help="Write the list to this CSV file.")
def call_list(*, db: str, dsn: str | None, criteria: Path, limit: int, out: Path | None) -> None:
    """List the prospects to phone now, best first (never a do-not-contact account)."""
    from salesprocess.cli import render  # noqa: PLC0415 - a command's own modules load with it

    if out is not None:
        loading.never_over(
            out, "--out", database=_database(db, dsn), source=criteria,
            source_is="the criteria file (--criteria)",
        )  # fmt: skip
    with _process(db, dsn, criteria, existing=True) as sales:
        accounts = sales.call_list(limit=limit)
        if out is not None:
            render.write_call_list(out, accounts)
        render.call_list(stdout(), accounts)


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
        stdout().print(f"{acct.id} {acct.name}: {outcome} recorded", markup=False)


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
            fail(
                f"account {account_id} cannot be qualified yet; missing: "
                f"{'; '.join(refused.missing)}; with the authority, give --override REASON"
            )
        stdout().print(f"{acct.id} {acct.name}: {acct.stage}", markup=False)


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
            render.report(stdout(), figures)
        if plot is not None:
            for path in plots.draw(sales, plot, figures, since=since, until=until):
                err.print(f"drew {path}", markup=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit status (0 ok, 1 error, 2 usage)."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="salesprocess")
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
