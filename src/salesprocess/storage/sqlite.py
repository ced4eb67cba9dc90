"""SQLite storage: one file, many processes, no server (stdlib :mod:`sqlite3` only).

Why SQLite: an app that outgrows :class:`~salesprocess.storage.InMemoryRepository` usually
needs durability and several worker processes long before it needs a database server. SQLite in
WAL mode gives both: readers never block, one writer at a time, and a crash (even ``kill -9``)
leaves every transaction wholly there or wholly absent.

How it is laid out. Each account is one row of ``accounts``: the columns the queries need (``id``
primary key; ``email``, ``phone`` and ``referral_code`` unique, which is what makes a duplicate
lead, or two accounts behind one code, impossible across processes; ``stage`` indexed with
``created_at`` and ``id`` for funnel counts and oldest-first listing; ``created_at`` as integer
microseconds since 1970-01-01 UTC, so it sorts by instant whatever the offset) plus ``data``, the
account as JSON text (:mod:`salesprocess.storage.serialise`) but for its purchases and
screenings, which are rows of their own in ``purchases`` and ``screenings``, appended and never
rewritten. What changes at every write, the ``version``, the ``stamp``, the screenings' count
and the last one's moment, is on a narrow row of ``account_states``: a bulk screen raises it
alone. With ``stage_changes`` (the changes after the first), the account's progress in more
columns of its row and its purchases per currency in ``purchase_tallies``, they are the read model
(:mod:`salesprocess.storage.readmodel`), written in the same transaction as the account; a read
joins the purchases back; ``revenue``, ``funnel``, ``lead_flow`` and ``time_in_stage`` are
answered in SQL from them (``report_*``).
``find_id``, the duplicate check, goes through a unique index and never fetches the JSON.

Writes are optimistic: ``save`` reads the stored version and writes only if it is still the
expected one (``StaleWrite`` if not, ``NotFound`` if the account does not exist). Every write
runs in a transaction of its own or the open ``atomic()`` block's: ``BEGIN IMMEDIATE`` (taking
the write lock up front, so two processes never deadlock upgrading a read lock), nested with
``SAVEPOINT``. A save appends the purchases and stage changes the account gained since this
repository last read or wrote it, so its cost does not grow with the account's past. Lock waits are
bounded by ``busy_timeout`` (``timeout`` seconds).

The schema carries a version (``PRAGMA user_version``) and an application id; opening a file
runs the forward migrations it lacks, refuses a file written by a newer salesprocess, and
refuses a file that is not a salesprocess database. Every ``sqlite3`` error is translated:
a unique violation becomes ``ConflictError``, anything else ``StorageError`` naming the file.

If SQLite itself aborts the transaction of an ``atomic()`` block (it may, after a full disk or
an I/O error), the block's exception still propagates, never replaced by a failing rollback, and
every later statement of the block raises ``StorageError`` instead of running outside it.

Threads: a repository holds one connection behind a re-entrant lock, so it may be shared by
threads; an ``atomic()`` block holds the lock until it ends, so other threads wait for it. For
parallel writers use processes, each with its own repository on the same file. Do not carry an
open repository across ``fork()``.

>>> from datetime import UTC, datetime
>>> from salesprocess.account import Account, Source
>>> with SQLiteRepository(":memory:") as repo:
...     stored = repo.add(Account("a-1", "Acme", Source("referral"), datetime.now(UTC)))
...     repo.get("a-1").version
1
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import date, datetime
from functools import partial
from typing import Final, Literal

from salesprocess import reports
from salesprocess.account import Account, Channel, Screening, unchecked_copy
from salesprocess.checks import clipped, require_items, require_number, shown, unencodable
from salesprocess.clock import require_aware
from salesprocess.criteria_sql import Prefilter
from salesprocess.errors import ConflictError, NotFound, StorageError, ValidationError
from salesprocess.reports import FlowPeriod, Funnel, RevenueReport
from salesprocess.reports.flow import FlowPeriodName, flow_arguments, flow_periods, period_start
from salesprocess.reports.funnel import LADDER, funnel_arguments, funnel_of
from salesprocess.reports.referrals import ReferralReport, referral_report
from salesprocess.reports.revenue import Tally, revenue_figures, tally, window
from salesprocess.reports.stages import StageTime, stage_times
from salesprocess.stage import Stage
from salesprocess.storage import readmodel
from salesprocess.storage.criteria_sql import sqlite_verdict, sqlite_where
from salesprocess.storage.paging import PAGE_SIZE, Key, accounts_in_pages
from salesprocess.storage.protocol import (
    AfterCommit,
    call_all,
    every_account,
    require_account,
    require_ids,
    require_keys,
    require_new,
    require_one_key,
    require_page,
    require_version,
    stale_write,
)
from salesprocess.storage.readmodel import (
    PROGRESS_COLUMNS,
    SQLITE_MONEY,
    Plan,
    capture_columns,
    is_capture,
)
from salesprocess.storage.selection import ScreenedOut, StoredFacts
from salesprocess.storage.serialise import (
    cached_loads,
    created_key,
    dumps,
    dumps_lead,
    loads,
    remember,
)

__all__ = [
    "APPLICATION_ID",
    "FILLED_BY",
    "MAX_TIMEOUT",
    "MIGRATIONS",
    "PAGE_SIZE_BYTES",
    "SCHEMA_VERSION",
    "TABLES",
    "ReportsInSQL",
    "Row",
    "SQLReports",
    "SQLiteRepository",
    "account_row",
]

_CREATED_DAY: Final = readmodel.day_expression("created_at")
_QUALIFIED_DAY: Final = readmodel.day_expression("first_qualified_at")

#: ``PRAGMA application_id`` of a salesprocess file: "SALE" in ASCII.
APPLICATION_ID: Final = 0x53414C45

# The read model's columns of an account's row, as schema 4 added them (in PROGRESS_COLUMNS'
# order; the stamp, last, moved to the state row at schema 7).
_PROGRESS_KINDS: Final = (
    ("channel", "TEXT"),
    ("campaign", "TEXT"),
    ("created_zone", "TEXT"),
    ("created_wall", "INTEGER"),
    ("captured_at", "INTEGER"),
    ("captured_stage", "TEXT"),
    ("captured_zone", "TEXT"),
    ("captured_wall", "INTEGER"),
    ("last_stage", "TEXT"),
    ("first_qualified_at", "INTEGER"),
    ("bought_at", "INTEGER"),
    ("mask", "INTEGER"),
    ("settled_at", "INTEGER"),
    ("purchase_count", "INTEGER"),
    ("history_count", "INTEGER"),
    ("stamp", "INTEGER"),
)
# The columns of an account's row (schema 7): the progress but its stamp, which is on the
# account's state row (account_states) with the version and the screenings' count.
_COLUMNS: Final = (
    "id",
    "name",
    "email",
    "phone",
    "stage",
    "created_at",
    "data",
    "referral_code",
    *(column for column, _kind in _PROGRESS_KINDS[:-1]),
)
# The indexes of the accounts table, each made by the step that says why; schema 7 makes
# them again on the table it rebuilds.
_STAGE_INDEX: Final = "CREATE INDEX accounts_stage_created ON accounts (stage, created_at, id)"
_CODE_INDEX: Final = "CREATE UNIQUE INDEX accounts_referral_code ON accounts (referral_code)"
_READ_MODEL_INDEXES: Final = (
    "CREATE INDEX accounts_funnel ON accounts (last_stage, mask)",
    "CREATE INDEX accounts_funnel_source ON accounts (channel, campaign, last_stage, mask)",
    "CREATE INDEX accounts_settled ON accounts (settled_at)",
    "CREATE INDEX accounts_zone ON accounts (created_zone, created_at) "
    "WHERE created_zone IS NOT NULL",
    "CREATE INDEX accounts_captured_zone ON accounts (captured_zone, captured_at) "
    "WHERE captured_zone IS NOT NULL",
    f"CREATE INDEX accounts_leads ON accounts ({_CREATED_DAY}, channel)",
    f"CREATE INDEX accounts_qualified "
    f"ON accounts ({_QUALIFIED_DAY}, first_qualified_at, created_at)",
)
_REFERRING_INDEX: Final = (
    "CREATE INDEX accounts_referring ON accounts (id) "
    f"WHERE {readmodel.REFERRERS.partition(' WHERE ')[2]}"
)

#: The forward migrations: step ``n`` takes a file from schema ``n`` to ``n + 1``. Steps 4
#: and 6 are followed by filling rows from every stored account's JSON (:data:`FILLED_BY`).
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 0 -> 1: the accounts table.
    (
        """
        CREATE TABLE accounts (
            id TEXT NOT NULL PRIMARY KEY,
            name TEXT NOT NULL,
            email TEXT UNIQUE,
            phone TEXT UNIQUE,
            stage TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            version INTEGER NOT NULL CHECK (version >= 1),
            data TEXT NOT NULL
        )
        """,
        "CREATE INDEX accounts_stage ON accounts (stage)",
    ),
    # 1 -> 2: with_stage lists oldest first; let the index give that order instead of a sort.
    (
        "DROP INDEX accounts_stage",
        _STAGE_INDEX,
    ),
    # 2 -> 3: referral codes, unique like email and phone. Rows written before keep NULL, which
    # is right: their JSON has no referral code either.
    (
        "ALTER TABLE accounts ADD COLUMN referral_code TEXT",
        _CODE_INDEX,
    ),
    # 3 -> 4: the read model. Purchases and stage changes become rows of their own (appended,
    # never rewritten), the account's progress columns of its row, and each account's purchases
    # per currency a tally; the reports read them. Times are microseconds since 1970 UTC, days
    # UTC day numbers, money exact: integer millionths (NULL when an amount does not fit) beside
    # the amount's text and exponent. Rows written before keep their whole JSON in ``data``;
    # the rows are filled from it.
    (
        *(f"ALTER TABLE accounts ADD COLUMN {column} {kind}" for column, kind in _PROGRESS_KINDS),
        """
        CREATE TABLE purchases (
            account_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            at INTEGER NOT NULL,
            day INTEGER NOT NULL,
            currency TEXT NOT NULL,
            units INTEGER,
            exponent INTEGER NOT NULL,
            amount TEXT NOT NULL,
            moment TEXT,
            reference TEXT,
            zone TEXT,
            wall INTEGER,
            PRIMARY KEY (account_id, position)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX purchases_at ON purchases (at)",
        "CREATE INDEX purchases_zone ON purchases (zone, at) WHERE zone IS NOT NULL",
        """
        CREATE TABLE stage_changes (
            account_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            from_stage TEXT,
            to_stage TEXT NOT NULL,
            event TEXT NOT NULL,
            at INTEGER NOT NULL,
            moment TEXT,
            actor TEXT,
            reason TEXT,
            zone TEXT,
            wall INTEGER,
            PRIMARY KEY (account_id, position)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX stage_changes_zone ON stage_changes (zone, at) WHERE zone IS NOT NULL",
        """
        CREATE TABLE purchase_tallies (
            currency TEXT NOT NULL,
            account_id TEXT NOT NULL,
            units INTEGER,
            purchases INTEGER NOT NULL,
            first_day INTEGER NOT NULL,
            last_day INTEGER NOT NULL,
            min_exponent INTEGER NOT NULL,
            PRIMARY KEY (currency, account_id)
        ) WITHOUT ROWID
        """,
        *_READ_MODEL_INDEXES,
    ),
    # 4 -> 5: the accounts that may hold referrals, for the referral report (a partial index:
    # a few rows, each found without reading the others' JSON).
    (_REFERRING_INDEX,),
    # 5 -> 6: screenings become rows of their own, appended and never rewritten, as purchases
    # are: a bulk screen records one without rewriting the account's JSON. ``screening_count``
    # says how many an account has, ``screened_at`` when the last was (its key). The
    # screenings stored in ``data`` are moved out of it (:data:`FILLED_BY`).
    (
        "ALTER TABLE accounts ADD COLUMN screening_count INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE accounts ADD COLUMN screened_at INTEGER",
        """
        CREATE TABLE screenings (
            account_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            at INTEGER NOT NULL,
            moment TEXT,
            criteria TEXT NOT NULL,
            version TEXT NOT NULL,
            passed INTEGER NOT NULL,
            PRIMARY KEY (account_id, position)
        ) WITHOUT ROWID
        """,
    ),
    # 6 -> 7: an account's version, stamp, screening count and last screening move to a narrow
    # row of their own. A bulk screen raises them and nothing else; in the account's row, with
    # its JSON and read model, each raise rewrote some 600 bytes (and wrote them to the WAL and
    # back at a checkpoint). screen_all over 100,000 prospects took 2.6 and 3.9 us a
    # prospect less on average in two sets of alternating runs (medians 14.1 and 11.1 us).
    # The accounts table is made anew without those columns (copied, rowids kept, its indexes
    # made again), not altered: ALTER TABLE ... DROP COLUMN needs SQLite 3.35, and a Python
    # may well be built on an older one (3.34 on RHEL 9).
    (
        """
        CREATE TABLE account_states (
            id TEXT NOT NULL PRIMARY KEY,
            version INTEGER NOT NULL CHECK (version >= 1),
            stamp INTEGER,
            screening_count INTEGER NOT NULL DEFAULT 0,
            screened_at INTEGER
        ) WITHOUT ROWID
        """,
        "INSERT INTO account_states (id, version, stamp, screening_count, screened_at) "
        "SELECT id, version, stamp, screening_count, screened_at FROM accounts",
        f"""
        CREATE TABLE accounts_7 (
            id TEXT NOT NULL PRIMARY KEY,
            name TEXT NOT NULL,
            email TEXT UNIQUE,
            phone TEXT UNIQUE,
            stage TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            data TEXT NOT NULL,
            referral_code TEXT,
            {", ".join(f"{column} {kind}" for column, kind in _PROGRESS_KINDS[:-1])}
        )
        """,
        f"INSERT INTO accounts_7 (rowid, {', '.join(_COLUMNS)}) "  # noqa: S608 - our own names
        f"SELECT rowid, {', '.join(_COLUMNS)} FROM accounts",
        "DROP TABLE accounts",
        "ALTER TABLE accounts_7 RENAME TO accounts",
        _STAGE_INDEX,
        _CODE_INDEX,
        *_READ_MODEL_INDEXES,
        _REFERRING_INDEX,
    ),
)

#: The schema version this module writes and reads.
SCHEMA_VERSION: Final = len(MIGRATIONS)

#: The schema versions whose migration step is followed by filling rows from the accounts'
#: JSON: the read model (4), the screenings (6).
FILLED_BY: Final = frozenset({4, 6})


#: The page size of a new file, in bytes. An account's row, with its JSON, is about a kilobyte:
#: SQLite's default 4 KiB pages hold three or four. Twice that took a tenth off the SQLite time
#: of a 100,000-lead bulk load (its inserts, its index builds' table scans, its commit) and did
#: not slow single commands (one ``record_call`` on a file: 357-619 us either way), measured.
PAGE_SIZE_BYTES: Final = 8192

#: The longest ``timeout`` in seconds: ``busy_timeout`` is a C int of milliseconds.
MAX_TIMEOUT: Final = (2**31 - 1) // 1000

_SYNCHRONOUS: Final = ("FULL", "NORMAL", "OFF")

# An account's state row (schema 7); the rest of the account is its accounts row.
_STATE_OWN: Final = ("version", "stamp", "screening_count", "screened_at")
_INSERT: Final = (
    f"INSERT INTO accounts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"  # noqa: S608 - our own names
)
_INSERT_STATE: Final = (
    f"INSERT INTO account_states (id, {', '.join(_STATE_OWN)}) VALUES (?, ?, ?, ?, ?)"  # noqa: S608 - our own names
)
# A lead as a capture makes it (readmodel.is_capture): its progress columns repeat its stage
# (?5) and creation time (?6), and the statement repeats them itself. Python's sqlite3 binds
# each parameter on its own, so 14 of them instead of 28 took about a sixth off add_many of
# 100,000 leads (2.65 to 2.24 s CPU), measured. The order is readmodel.capture_columns'
# (?9 to ?14).
_INSERT_CAPTURE: Final = (
    f"INSERT INTO accounts ({', '.join(_COLUMNS)}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "  # noqa: S608 - our own names
    "?9, ?10, ?11, ?12, ?6, ?5, ?11, ?12, ?5, CASE WHEN ?13 THEN ?6 END, NULL, ?14, ?6, 0, 1)"
)
# add_many's state rows: version 1, stamp 0 (it plans every account with stamp 0), no
# screening, then the screenings' count of those with some. One INSERT ... SELECT of the rows
# after the largest rowid before the batch (SQLite gives a new row the largest rowid plus one)
# took about a tenth off the SQLite time of a 100,000-lead bulk load against a row of
# parameters each (1.62 to 1.43 s CPU, medians of four alternating runs), measured. Once the
# largest possible rowid is taken SQLite picks new ones at random; then the accounts left
# without a state row are found by a scan.
_LAST_ROWID: Final = "SELECT coalesce(max(rowid), -9223372036854775808) FROM accounts"
_ADD_STATES: Final = (
    "INSERT INTO account_states (id, version, stamp) SELECT id, 1, 0 FROM accounts WHERE rowid > ?"
)
_ADD_MISSING_STATES: Final = (
    "INSERT INTO account_states (id, version, stamp) SELECT id, 1, 0 FROM accounts AS a "
    "WHERE NOT EXISTS (SELECT 1 FROM account_states AS s WHERE s.id = a.id)"
)
_SCREENED_STATE: Final = (
    "UPDATE account_states SET screening_count = ?, screened_at = ? WHERE id = ?"
)
_UPDATE: Final = (
    f"UPDATE accounts SET {', '.join(f'{column} = ?' for column in _COLUMNS[1:])} WHERE id = ?"  # noqa: S608 - our own names
)
_UPDATE_STATE: Final = (
    f"UPDATE account_states SET {', '.join(f'{column} = ?' for column in _STATE_OWN)} "  # noqa: S608 - our own names
    "WHERE id = ?"
)
# Schema 4's migration fills the read model, stamp included, in the accounts row it had then.
_FILL: Final = (
    f"UPDATE accounts SET {', '.join(f'{column} = ?' for column in PROGRESS_COLUMNS)} WHERE id = ?"  # noqa: S608 - our own names
)
# An account's rows, joined: ``a`` the accounts row, ``s`` its state row.
_JOINED: Final = "accounts AS a JOIN account_states AS s ON s.id = a.id"


def _selected(*columns: str) -> str:
    """Return ``columns`` for a select over ``_JOINED``, each taken from the row that has it."""
    return ", ".join(("s." if column in _STATE_OWN else "a.") + column for column in columns)


_STATE: Final = (
    f"SELECT {_selected(*readmodel.STATE_COLUMNS, 'screening_count')} FROM {_JOINED} "  # noqa: S608 - our own names
    "WHERE a.id = ?"
)
_INSERT_PURCHASE: Final = (
    "INSERT INTO purchases (account_id, position, at, day, currency, units, exponent, amount, "
    "moment, reference, zone, wall) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_CHANGE: Final = (
    "INSERT INTO stage_changes (account_id, position, from_stage, to_stage, event, at, moment, "
    "actor, reason, zone, wall) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_PUT_TALLY: Final = (
    "INSERT OR REPLACE INTO purchase_tallies (currency, account_id, units, purchases, "
    "first_day, last_day, min_exponent) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_DROP_ROWS: Final = (
    "DELETE FROM purchase_tallies WHERE account_id = ?1 AND currency IN "
    "(SELECT DISTINCT currency FROM purchases WHERE account_id = ?1)",
    "DELETE FROM purchases WHERE account_id = ?",
    "DELETE FROM stage_changes WHERE account_id = ?",
)
_INSERT_SCREENING: Final = (
    "INSERT INTO screenings (account_id, position, at, moment, criteria, version, passed) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_DROP_SCREENINGS: Final = "DELETE FROM screenings WHERE account_id = ?"

# A bulk screen's accounts and, among them, those that pass: by their accounts rowids, a JSON
# list (of integers: SQLite's JSON functions end a text at "\u0000", and an id may hold one).
_IN_PAGE: Final = (
    "id IN (SELECT id FROM accounts WHERE rowid IN (SELECT value FROM json_each(:all)))"
)
_PASSED: Final = (
    "id IN (SELECT id FROM accounts WHERE rowid IN (SELECT value FROM json_each(:passed)))"
)

# An account's row as reads fetch it (readmodel.AccountRow, with screenings).
_READ_COLUMNS: Final = _selected(
    "id", "data", "stamp", "purchase_count", "version", "screening_count"
)
_READ: Final = f"SELECT {_READ_COLUMNS} FROM {_JOINED}"  # noqa: S608 - our own names
_BY_ID: Final = f"{_READ} WHERE a.id = ?"
_BY_EMAIL: Final = f"{_READ} WHERE a.email = ?"
_BY_PHONE: Final = f"{_READ} WHERE a.phone = ?"
_BY_REFERRAL_CODE: Final = f"{_READ} WHERE a.referral_code = ?"
# find_id: the id alone, through the unique index (no JSON fetched, nothing decoded).
_ID_BY: Final = {
    "email": ("SELECT id FROM accounts WHERE email = ?", "finding the id by email"),
    "phone": ("SELECT id FROM accounts WHERE phone = ?", "finding the id by phone"),
    "referral_code": (
        "SELECT id FROM accounts WHERE referral_code = ?",
        "finding the id by referral code",
    ),
}
# IN lists of at most this many ids (SQLite before 3.32 allows 999 parameters).
_CHUNK: Final = 500

# A bulk load into an empty accounts table (a new file's first import) drops the table's
# secondary indexes in its transaction and builds them again, each in one sorted pass, just
# before the outermost block commits: cheaper than updating a dozen B-trees row by row. SQLite
# DDL is transactional, so a load that fails leaves the file as it was, indexes included. The
# unique indexes stay: they are how a doubled email, phone or code is refused.
_SECONDARY: Final = (
    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'accounts' "
    "AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE %'"
)
# add_many batches of at least this many accounts take the bulk path; a smaller one would
# spend more rebuilding the (empty) indexes than it saves.
_BULK: Final = 500
# Page cache while a bulk load's transaction lasts (KiB, SQLite's negative form): the unique
# indexes take keys in no order (emails, phones, and ids from a factory other than the
# default's time-ordered one), and a bigger cache spares most of their page reloads.
_BULK_CACHE: Final = -65536

#: The read model's tables, for the queries :mod:`~salesprocess.storage.readmodel` writes.
TABLES: Final = readmodel.Tables("accounts", "purchases", "stage_changes", "purchase_tallies", "?")

#: An account's stored fields: id, name, email, phone, stage, created_at, version, data,
#: referral_code (the ``accounts`` row of schemas 3 to 6, the read model's columns aside).
Row = tuple[str, str, str | None, str | None, str, int, int, str, str | None]


def account_row(account: Account, version: int | None = None) -> Row:
    """Return the stored fields (:data:`Row`) of ``account`` at ``version``.

    ``data`` is the account's JSON without its purchases and screenings (they are rows of their
    own, see :mod:`salesprocess.storage.readmodel`). ``version`` defaults to the account's own.
    """
    if version is None:
        version = account.version
    prefix = _unscreened(account)
    prefix = unchecked_copy(prefix, purchases=()) if prefix.purchases else prefix
    return (
        account.id,
        account.name,
        account.email,
        account.phone,
        account.stage,
        created_key(account.created_at),
        version,
        dumps(prefix, version=version),
        account.referral_code,
    )


def _unscreened(account: Account) -> Account:
    """Return ``account`` without its screenings: ``data`` holds none, they are rows."""
    return unchecked_copy(account, screenings=()) if account.screenings else account


def _plan(account: Account, version: int, **known: object) -> Plan:
    return readmodel.plan(_unscreened(account), version, account.id, SQLITE_MONEY, **known)  # type: ignore[arg-type]


def _row(account: Account, plan: Plan) -> tuple[object, ...]:
    """Return the ``_COLUMNS`` values of ``account``, as ``plan`` has them."""
    return (
        account.id,
        account.name,
        account.email,
        account.phone,
        account.stage,
        created_key(account.created_at),
        plan.data,
        account.referral_code,
        *plan.progress[:-1],
    )


def _state_row(account: Account, version: int, plan: Plan) -> tuple[object, ...]:
    """Return the state row (``id`` and ``_STATE_OWN``) of ``account`` at ``version``."""
    screenings = account.screenings
    return (
        account.id,
        version,
        plan.progress[-1],
        len(screenings),
        created_key(screenings[-1].at) if screenings else None,
    )


def _stored_as_capture(account: Account) -> bool:
    """Return whether ``add_many`` stores ``account`` by the short ``_INSERT_CAPTURE``."""
    return not account.screenings and is_capture(account)


def _tally_rows(account_id: str, plan: Plan) -> list[tuple[object, ...]]:
    return [(currency, account_id, *tally) for currency, tally in plan.tallies.items()]


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _special(path: str) -> bool:
    """Whether ``path`` names something that exists and is no regular file (``/dev/null``)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # nothing there (yet): SQLite creates the file
        return False
    return not stat.S_ISREG(mode)


class ReportsInSQL:
    """The read side's reports as methods of a SQL adapter, answered by its :class:`SQLReports`.

    Each method gives what the pure report in :mod:`salesprocess.reports` (the oracle) gives
    over the stored accounts, in SQL. An adapter sets ``_reports``.
    """

    _reports: SQLReports

    def report_revenue(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> RevenueReport:
        """Answer :func:`salesprocess.reports.revenue` in SQL; see :class:`SQLReports`."""
        return self._reports.revenue(since, until)

    def report_funnel(
        self,
        *,
        as_of: datetime,
        channel: Channel | str | None = None,
        campaign: str | None = None,
    ) -> Funnel:
        """Answer :func:`salesprocess.reports.funnel` in SQL; see :class:`SQLReports`."""
        return self._reports.funnel(as_of, channel, campaign)

    def report_referral_stats(self) -> ReferralReport:
        """Answer :func:`salesprocess.reports.referral_stats` in SQL; see :class:`SQLReports`."""
        return self._reports.referral_stats()

    def report_time_in_stage(self, *, as_of: datetime) -> Mapping[Stage, StageTime]:
        """Answer :func:`salesprocess.reports.time_in_stage` in SQL; see :class:`SQLReports`."""
        return self._reports.time_in_stage(as_of)

    def report_lead_flow(
        self,
        *,
        period: FlowPeriodName = "week",
        target: int | None = None,
        as_of: datetime | None = None,
    ) -> list[FlowPeriod]:
        """Answer :func:`salesprocess.reports.lead_flow` in SQL; see :class:`SQLReports`."""
        return self._reports.lead_flow(period, target, as_of)


class SQLiteRepository(ReportsInSQL):
    """Accounts in one SQLite file (or ``":memory:"``), safe for several processes.

    ``timeout`` bounds how long a write waits for another process's lock (``busy_timeout``)
    before failing with ``StorageError``. ``synchronous`` is SQLite's durability setting:
    ``"FULL"`` (the default) syncs the WAL at every commit; ``"NORMAL"`` is faster and still
    never corrupts the file, but the last commits may be lost on power failure (not on a crash
    of the process). A ``timeout`` that is not a finite number of seconds from 0 to
    ``MAX_TIMEOUT`` (about 24 days), or another ``synchronous``, raises ``ValidationError``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 5.0,
        synchronous: Literal["FULL", "NORMAL", "OFF"] = "FULL",
    ) -> None:
        self._connection: sqlite3.Connection | None = None
        try:
            self._path = os.fspath(path)
        except TypeError:
            raise ValidationError(
                f"path must be a str or os.PathLike, not {type(path).__name__}", field="path"
            ) from None
        if not isinstance(self._path, str):  # os.fspath(b"...") is bytes
            raise ValidationError(
                f"path must be a str or os.PathLike, not {type(path).__name__}", field="path"
            )
        self._memory = self._path in (":memory:", "")
        self._label = clipped(self._path)  # how messages name the file
        if "\x00" in self._path or unencodable(self._path):
            raise ValidationError(
                f"path {shown(self._path)} holds a NUL or a lone surrogate: no file has that name",
                field="path",
            )
        if not self._memory and _special(self._path):
            raise StorageError(
                f"cannot open SQLite database {self._label}: it is not a regular file (a "
                "directory, device or pipe cannot hold a database)"
            )
        self._lock = threading.RLock()
        self._depth = 0
        self._after_commit = AfterCommit()
        self._rebuild: list[tuple[str, str]] = []  # indexes dropped by a bulk load
        self._cache_size: int | None = None  # the page cache to go back to after it
        self._memo = readmodel.Memo()
        self._reports = SQLReports(self._reader, SQLITE_MONEY, TABLES, lambda: every_account(self))
        require_number(timeout, "timeout", low=0, high=MAX_TIMEOUT, kinds=(int, float))
        if not isinstance(synchronous, str) or synchronous not in _SYNCHRONOUS:
            raise ValidationError(
                f"synchronous must be FULL, NORMAL or OFF, not {shown(synchronous)}",
                field="synchronous",
            )
        try:
            connection = sqlite3.connect(
                self._path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite database {self._label}: {exc}") from None
        self._connection = connection
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            connection.execute("PRAGMA foreign_keys = ON")
            # Before WAL, which writes the file's first page: the size a new file is made with
            # (an existing file keeps its own).
            connection.execute(f"PRAGMA page_size = {PAGE_SIZE_BYTES}")
            # Refuse another application's file before anything is written to it: switching
            # to WAL rewrites its header (and leaves it in WAL mode).
            self._refuse_foreign(connection)
            if not self._memory:
                connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(f"PRAGMA synchronous = {synchronous}")
            self._migrate(connection)
        except BaseException as exc:
            connection.close()
            self._connection = None
            # The driver's own message is in ours; its traceback would only distract.
            if isinstance(exc, sqlite3.OperationalError):  # locked, unreadable, disk I/O ...
                raise StorageError(f"cannot open SQLite database {self._label}: {exc}") from None
            if isinstance(exc, sqlite3.DatabaseError):  # "file is not a database", malformed
                raise StorageError(
                    f"{self._label} is not a salesprocess database (or is damaged): {exc}"
                ) from None
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"cannot open SQLite database {self._label}: {exc}") from None
            raise

    @property
    def path(self) -> str:
        """The database file (``":memory:"`` for a private in-memory database)."""
        return self._path

    def __repr__(self) -> str:
        state = "closed" if self._connection is None else "open"
        return f"SQLiteRepository({shown(self._path)}, {state})"

    # --- opening ----------------------------------------------------------------------------

    def _refuse_foreign(self, connection: sqlite3.Connection) -> None:
        """Raise ``StorageError`` for a file of another application (it reads, never writes).

        Ours carry our ``application_id`` (``_schema`` refuses any other); a file without one
        is ours to make only while it holds no table.
        """
        if self._schema(connection) == 0:
            tables = connection.execute(
                "SELECT group_concat(name, ', ') FROM sqlite_master "
                "WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchone()[0]
            if tables:
                raise StorageError(
                    f"{self._label} is an SQLite database of another application "
                    f"(tables: {tables}), not a salesprocess database"
                )

    def _migrate(self, connection: sqlite3.Connection) -> None:
        if self._schema(connection) == SCHEMA_VERSION:
            return
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = self._schema(connection)
            if version == 0:
                self._refuse_foreign(connection)  # again: another process may have begun it
                connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            for reached, step in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in step:
                    connection.execute(statement)
                if reached == 4:
                    self._fill_read_model(connection)
                elif reached == 6:
                    self._move_screenings(connection)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _fill_read_model(self, connection: sqlite3.Connection) -> None:
        """Fill the read model from every account's JSON (migration to schema 4).

        ``data`` keeps the whole account; reads take its purchases from it. An account
        whose JSON is not valid stops the migration (nothing is changed) with ``StorageError``.
        """
        after = -1
        while True:
            rows = connection.execute(
                "SELECT rowid, id, data FROM accounts WHERE rowid > ? ORDER BY rowid LIMIT 1000",
                (after,),
            ).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            progress, purchases, history, tallies = [], [], [], []
            for _rowid, account_id, data in rows:
                plan = readmodel.plan(
                    loads(data), 0, account_id, SQLITE_MONEY, stamp=0, with_data=False
                )
                progress.append((*plan.progress, account_id))
                purchases.extend(plan.purchases)
                history.extend(plan.history)
                tallies.extend(_tally_rows(account_id, plan))
            connection.executemany(_FILL, progress)
            connection.executemany(_INSERT_PURCHASE, purchases)
            connection.executemany(_INSERT_CHANGE, history)
            connection.executemany(_PUT_TALLY, tallies)

    def _move_screenings(self, connection: sqlite3.Connection) -> None:
        """Move every account's screenings out of its JSON into rows (migration to schema 6).

        The account's JSON is written again without them (its row gets a new stamp); an
        account whose JSON is not valid stops the migration (nothing is changed) with
        ``StorageError``.
        """
        after = -1
        while True:
            rows = connection.execute(
                "SELECT rowid, id, data FROM accounts WHERE rowid > ? "
                "AND instr(data, '\"screenings\"') > 0 ORDER BY rowid LIMIT 1000",
                (after,),
            ).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            moved, screenings = [], []
            for _rowid, account_id, data in rows:
                account = loads(data)
                if not account.screenings:  # the text was in some other field
                    continue
                held = account.screenings
                moved.append(
                    (
                        dumps(unchecked_copy(account, screenings=())),
                        len(held),
                        created_key(held[-1].at),
                        readmodel.new_stamp(),
                        account_id,
                    )
                )
                screenings.extend(readmodel.screening_rows(account_id, 0, held))
            connection.executemany(
                "UPDATE accounts SET data = ?, screening_count = ?, screened_at = ?, stamp = ? "
                "WHERE id = ?",
                moved,
            )
            connection.executemany(_INSERT_SCREENING, screenings)

    def _schema(self, connection: sqlite3.Connection) -> int:
        application = connection.execute("PRAGMA application_id").fetchone()[0]
        version: int = connection.execute("PRAGMA user_version").fetchone()[0]
        if application != APPLICATION_ID and (application != 0 or version != 0):
            raise StorageError(
                f"{self._label} is an SQLite database of another application "
                f"(application_id {application:#x}, user_version {version}), "
                "not a salesprocess database"
            )
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self._label} has schema version {version}, written by a newer salesprocess; "
                f"this version reads up to {SCHEMA_VERSION}: upgrade salesprocess"
            )
        return version

    # --- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _using(self, what: str) -> Iterator[sqlite3.Connection]:
        """Hold the lock and yield the connection; translate every driver error.

        Inside an ``atomic()`` block whose transaction SQLite has already rolled back (after a
        full disk or an I/O error) it refuses: the statement would run outside the block.
        """
        with self._lock:
            connection = self._connection
            if connection is None:
                raise StorageError(f"SQLite repository {self._label} is closed")
            if self._depth and not connection.in_transaction:
                raise StorageError(
                    f"SQLite {self._label}: {what} failed: the transaction of this atomic() "
                    "block was rolled back after an earlier error; nothing of it was stored"
                )
            try:
                yield connection
            except sqlite3.Error as exc:
                raise StorageError(f"SQLite {self._label}: {what} failed: {exc}") from exc
            except UnicodeEncodeError as exc:
                raise ValidationError(
                    f"{what}: text that is not valid Unicode cannot be stored ({exc.reason})"
                ) from exc
            except OverflowError as exc:  # an int beyond SQLite's 64 bits
                raise ValidationError(
                    f"{what}: a number too large for SQLite cannot be stored ({exc})"
                ) from exc

    def close(self) -> None:
        """Close the connection; later calls raise ``StorageError``. Closing twice is fine."""
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                try:
                    connection.close()
                except sqlite3.Error as exc:  # pragma: no cover - close does not fail in practice
                    raise StorageError(f"closing {self._label} failed: {exc}") from exc

    def __enter__(self) -> SQLiteRepository:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _conflict(
        self,
        connection: sqlite3.Connection,
        account: Account,
        exc: sqlite3.IntegrityError,
        *,
        new: bool,
    ) -> ConflictError | StorageError:
        """Name the uniqueness rule ``account`` broke (the statement failed, nothing written)."""
        if (
            new
            and connection.execute("SELECT 1 FROM accounts WHERE id = ?", (account.id,)).fetchone()
        ):
            return ConflictError(f"an account with id {account.id} is already stored")
        for kind, value in (
            ("email", account.email),
            ("phone", account.phone),
            ("referral_code", account.referral_code),
        ):
            if value is None:
                continue
            owner = connection.execute(
                f"SELECT id FROM accounts WHERE {kind} = ?",  # noqa: S608 - kind is ours
                (value,),
            ).fetchone()
            if owner is not None and owner[0] != account.id:
                what = kind.replace("_", " ")
                return ConflictError(f"{what} {value} already belongs to account {owner[0]}")
        return StorageError(f"SQLite {self._label}: storing account {account.id} failed: {exc}")

    # --- writes -----------------------------------------------------------------------------
    #
    # add and save prime the decode cache with what they wrote (serialise.remember), so that
    # the next get of the account in this process decodes nothing. They do it once the
    # statement has succeeded; inside atomic() the write may still be rolled back, and that is
    # harmless: the cache maps the text to the (equal) account that text decodes to, so the
    # pair is only ever used when some row holds that very text again, and is right then too.
    # add_many does not prime: a bulk load would flush the whole cache with accounts that are
    # rarely read right away, and cost the bulk add time.

    def add(self, account: Account) -> Account:
        """Store a new account at version 1."""
        account = require_new(account)
        stored = unchecked_copy(account, version=1)
        plan = _plan(stored, 1)
        with self.atomic(), self._using(f"adding account {account.id}") as connection:
            try:
                connection.execute(_INSERT, _row(stored, plan))
            except sqlite3.IntegrityError as exc:
                raise self._conflict(connection, stored, exc, new=True) from None
            connection.execute(_INSERT_STATE, _state_row(stored, 1, plan))
            self._append(connection, account.id, plan)
            if stored.screenings:
                connection.executemany(
                    _INSERT_SCREENING, readmodel.screening_rows(account.id, 0, stored.screenings)
                )
        self._written(stored, plan)
        return stored

    def add_many(self, accounts: Iterable[Account]) -> int:
        """Store many new accounts in one transaction, all or nothing; return how many."""
        accounts = require_items(accounts, "accounts")
        count = 0
        current: Account | None = None
        purchases: list[tuple[object, ...]] = []
        history: list[tuple[object, ...]] = []
        tallies: list[tuple[object, ...]] = []
        screenings: list[tuple[object, ...]] = []
        screened: list[tuple[object, ...]] = []  # the state of those with screenings

        def checked() -> Iterator[Account]:
            nonlocal count
            for account in accounts:
                if type(account) is not Account or account.version != 0:
                    require_new(account)
                count += 1
                yield account

        def captures(run: Iterable[Account]) -> Iterator[tuple[object, ...]]:
            nonlocal current
            for account in run:
                current = account
                yield (
                    account.id,
                    account.name,
                    account.email,
                    account.phone,
                    account.stage,
                    created_key(account.created_at),
                    dumps_lead(account, version=1),
                    account.referral_code,
                    *capture_columns(account),
                )

        def rows(run: Iterable[Account]) -> Iterator[tuple[object, ...]]:
            nonlocal current
            for account in run:
                current = account
                plan = _plan(account, 1, stamp=0)
                if account.screenings:
                    screenings.extend(readmodel.screening_rows(account.id, 0, account.screenings))
                    screened.append((*_state_row(account, 1, plan)[3:], account.id))
                if plan.purchases:
                    purchases.extend(plan.purchases)
                    tallies.extend(_tally_rows(account.id, plan))
                history.extend(plan.history)
                yield _row(account, plan)

        head = list(itertools.islice(accounts, _BULK))
        accounts = itertools.chain(head, accounts)
        with self.atomic(), self._using("adding accounts") as connection:
            if len(head) == _BULK:
                self._defer_indexes(connection)
            (last,) = connection.execute(_LAST_ROWID).fetchone()
            try:
                # The batch is stored in its order, as runs of captures (the short statement)
                # and runs of other accounts (the general one): a clash is then the later
                # account's, as it is one by one.
                for as_capture, run in itertools.groupby(checked(), key=_stored_as_capture):
                    if as_capture:
                        connection.executemany(_INSERT_CAPTURE, captures(run))
                    else:
                        connection.executemany(_INSERT, rows(run))
            except sqlite3.IntegrityError as exc:
                if current is None:  # pragma: no cover - no row, no constraint to break
                    raise
                raise self._conflict(connection, current, exc, new=True) from None
            if connection.execute(_ADD_STATES, (last,)).rowcount != count:
                connection.execute(_ADD_MISSING_STATES)
            for statement, brought in (
                (_SCREENED_STATE, screened),
                (_INSERT_CHANGE, history),
                (_INSERT_PURCHASE, purchases),
                (_PUT_TALLY, tallies),
                (_INSERT_SCREENING, screenings),
            ):
                connection.executemany(statement, brought)
        return count

    def _defer_indexes(self, connection: sqlite3.Connection) -> None:
        """Drop the secondary indexes if the accounts table is empty (see ``_SECONDARY``).

        They are built again before the outermost ``atomic()`` block commits; until then the
        transaction's own reads still answer right, through the unique indexes or a scan.
        """
        if self._rebuild or connection.execute("SELECT 1 FROM accounts LIMIT 1").fetchone():
            return
        indexes = connection.execute(_SECONDARY).fetchall()
        if not indexes:  # pragma: no cover - every schema has secondary indexes
            return
        self._cache_size = connection.execute("PRAGMA cache_size").fetchone()[0]
        connection.execute(f"PRAGMA cache_size = {_BULK_CACHE}")
        for name, _sql in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        self._rebuild = indexes

    def _build_indexes(self, connection: sqlite3.Connection) -> None:
        """Create the indexes a bulk load dropped (those a rolled-back savepoint kept, not)."""
        present = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
        for name, sql in self._rebuild:
            if name not in present:
                connection.execute(sql)

    def _end_bulk(self) -> None:
        """Forget a bulk load once its transaction has ended; give back the page cache."""
        self._rebuild = []
        size, self._cache_size = self._cache_size, None
        connection = self._connection
        if size is not None and connection is not None:
            with suppress(sqlite3.Error):
                connection.execute(f"PRAGMA cache_size = {int(size)}")

    def save(self, account: Account, *, expected_version: int) -> Account:
        """Replace the stored account if it is still at ``expected_version``.

        Only the purchases and stage changes the account gained are written, when it holds
        the very ones this repository last read or wrote; otherwise its rows are rewritten.
        """
        account = require_account(account)
        expected_version = require_version(expected_version)
        stored = unchecked_copy(account, version=expected_version + 1)
        with self.atomic(), self._using(f"saving account {account.id}") as connection:
            state = connection.execute(_STATE, (account.id,)).fetchone()
            if state is None:
                raise NotFound(f"no account with id {shown(account.id)}")
            if state[0] != expected_version:
                raise stale_write(account.id, state[0], expected_version)
            known = self._memo.get(account.id, state[1])
            plan = _plan(
                stored,
                expected_version + 1,
                state=state,
                stored=known,
                known_tallies=lambda currencies: self._tallies(connection, account.id, currencies),
            )
            try:
                connection.execute(_UPDATE, (*_row(stored, plan)[1:], account.id))
            except sqlite3.IntegrityError as exc:
                raise self._conflict(connection, stored, exc, new=False) from None
            state_row = _state_row(stored, stored.version, plan)
            connection.execute(_UPDATE_STATE, (*state_row[1:], account.id))
            if plan.rewrite:
                for statement in _DROP_ROWS:
                    connection.execute(statement, (account.id,))
            self._append(connection, account.id, plan)
            self._screened(connection, stored, known, state[-1])
        self._written(stored, plan)
        return stored

    def _screened(
        self, connection: sqlite3.Connection, account: Account, known: Account | None, held: int
    ) -> None:
        """Write the screening rows of a save: those ``account`` gained, or all of them.

        Only the new ones when it holds the very screenings of ``known`` (the account as this
        repository last read or wrote it) and they are the ``held`` ones stored.
        """
        screenings = account.screenings
        if (
            known is not None
            and len(known.screenings) == held
            and readmodel.same_start(known.screenings, screenings)
        ):
            if len(screenings) > held:
                connection.executemany(
                    _INSERT_SCREENING,
                    readmodel.screening_rows(account.id, held, screenings[held:]),
                )
            return
        if held:
            connection.execute(_DROP_SCREENINGS, (account.id,))
        if screenings:
            connection.executemany(
                _INSERT_SCREENING, readmodel.screening_rows(account.id, 0, screenings)
            )

    def _append(self, connection: sqlite3.Connection, account_id: str, plan: Plan) -> None:
        """Write the rows ``plan`` adds: stage changes, purchases, and the touched tallies."""
        if plan.history:
            connection.executemany(_INSERT_CHANGE, plan.history)
        if plan.purchases:
            connection.executemany(_INSERT_PURCHASE, plan.purchases)
            connection.executemany(_PUT_TALLY, _tally_rows(account_id, plan))

    def _tallies(
        self, connection: sqlite3.Connection, account_id: str, currencies: Iterable[str]
    ) -> dict[str, readmodel.Tally]:
        known = {}
        for currency in currencies:
            row = connection.execute(
                "SELECT units, purchases, first_day, last_day, min_exponent FROM "
                "purchase_tallies WHERE currency = ? AND account_id = ?",
                (currency, account_id),
            ).fetchone()
            if row is not None:
                known[currency] = readmodel.Tally(*row)
        return known

    def _written(self, stored: Account, plan: Plan) -> None:
        """Remember what was written: the next read of it in this process decodes nothing."""
        with self._lock:
            self._memo.put(stored.id, plan.progress[-1], stored)
        remember(plan.data, plan.prefix)

    # --- reads ------------------------------------------------------------------------------

    def _one(self, query: str, key: str, what: str) -> readmodel.AccountRow | None:
        """Return the account row ``query`` finds for ``key`` (the hot read path).

        The same as ``with self._using(what)``, spelled out: a generator-based context manager
        costs a tenth of a look-up. A key that is not text finds nothing: SQLite would compare
        ``5`` with the text ``"5"`` and find it, where the other adapters find nothing.
        """
        if not isinstance(key, str):
            return None
        with self._lock:
            connection = self._connection
            if connection is None:
                raise StorageError(f"SQLite repository {self._label} is closed")
            try:
                row: readmodel.AccountRow | None = connection.execute(query, (key,)).fetchone()
            except sqlite3.Error as exc:
                raise StorageError(f"SQLite {self._label}: {what} failed: {exc}") from exc
            except UnicodeEncodeError as exc:
                raise ValidationError(f"{what}: {shown(key)} is not valid Unicode") from exc
            except OverflowError as exc:  # pragma: no cover - keys are text
                raise ValidationError(f"{what}: {shown(key)} is too large for SQLite") from exc
        return row

    def _found(self, row: readmodel.AccountRow | None, what: str) -> Account | None:
        if row is None:
            return None
        with self._lock:
            found = readmodel.quick(self._memo, row, screenings=True)
        return found if found is not None else self._accounts([row], what, remember=True)[0]

    def _accounts(
        self, rows: list[readmodel.AccountRow], what: str, *, remember: bool = False
    ) -> list[Account]:
        """Return the accounts of ``rows``, their purchases joined back in."""

        def tails(ids: list[str]) -> readmodel.Tails:
            purchases: dict[str, list[tuple[object, ...]]] = {}
            screenings: dict[str, list[tuple[object, ...]]] = {}
            stamps: dict[str, int | None] = {}
            with self._using(what) as connection:
                for chunk in _chunks(ids):
                    marks = _marks(len(chunk))
                    for account_id, *row in connection.execute(
                        "SELECT account_id, position, at, currency, amount, moment, reference "  # noqa: S608 - marks
                        f"FROM purchases WHERE account_id IN ({marks}) "
                        "ORDER BY account_id, position",
                        chunk,
                    ):
                        purchases.setdefault(account_id, []).append(tuple(row))
                    for account_id, *row in connection.execute(
                        "SELECT account_id, position, at, moment, criteria, version, passed "  # noqa: S608 - marks
                        f"FROM screenings WHERE account_id IN ({marks}) "
                        "ORDER BY account_id, position",
                        chunk,
                    ):
                        screenings.setdefault(account_id, []).append(tuple(row))
                    stamps.update(
                        connection.execute(
                            f"SELECT id, stamp FROM account_states WHERE id IN ({marks})",  # noqa: S608
                            chunk,
                        ).fetchall()
                    )
            return purchases, stamps, screenings

        with self._lock:
            return readmodel.assemble(
                rows, self._memo, tails, partial(self._rows_of, what=what), SQLITE_MONEY,
                remember=remember, screenings=True,
            )  # fmt: skip

    def _rows_of(self, ids: list[str], *, what: str) -> list[readmodel.AccountRow]:
        """Read the rows of the accounts ``ids`` names, one ``SELECT`` per 500 ids."""
        with self._using(what) as connection:
            return [
                row
                for chunk in _chunks(ids)
                for row in connection.execute(
                    f"{_READ} WHERE a.id IN ({_marks(len(chunk))})", chunk
                )
            ]

    def get(self, account_id: str) -> Account:
        """Return the stored account or raise ``NotFound``."""
        # Named in messages only if it is text a message can show (no lone surrogate; a key
        # that is not text may even raise from its own __format__).
        readable = type(account_id) is str and not unencodable(account_id)
        what = f"reading account {account_id}" if readable else "reading an account"
        found = self._found(self._one(_BY_ID, account_id, what), what)
        if found is None:
            raise NotFound(f"no account with id {shown(account_id)}")
        return found

    def get_many(self, account_ids: Iterable[str]) -> dict[str, Account]:
        """Return ``{id: account}`` for the stored ones among ``account_ids``.

        One ``SELECT`` per 500 ids (and the purchases and screenings of those that have some).
        """
        what = "reading accounts"
        rows = self._rows_of(require_ids(account_ids), what=what)
        return {account.id: account for account in self._accounts(rows, what)} if rows else {}

    def find_by_email(self, email: str) -> Account | None:
        """Return the account with this normalised email, if any."""
        return self._found(self._one(_BY_EMAIL, email, "finding by email"), "finding by email")

    def find_by_phone(self, phone: str) -> Account | None:
        """Return the account with this normalised phone number, if any."""
        return self._found(self._one(_BY_PHONE, phone, "finding by phone"), "finding by phone")

    def find_by_referral_code(self, code: str) -> Account | None:
        """Return the account whose (already normalised) referral code is ``code``, if any."""
        what = "finding by referral code"
        return self._found(self._one(_BY_REFERRAL_CODE, code, what), what)

    def find_id(
        self,
        *,
        email: str | None = None,
        phone: str | None = None,
        referral_code: str | None = None,
    ) -> str | None:
        """Return the id of the account holding this email, phone or referral code, if any.

        One ``SELECT id`` through the unique index: the account's JSON is neither fetched nor
        decoded.
        """
        kind, value = require_one_key(email, phone, referral_code)
        query, what = _ID_BY[kind]
        if not isinstance(value, str):  # pragma: no cover - require_one_key checked it
            return None
        with self._lock:
            connection = self._connection
            if connection is None:
                raise StorageError(f"SQLite repository {self._label} is closed")
            try:
                row = connection.execute(query, (value,)).fetchone()
            except sqlite3.Error as exc:
                raise StorageError(f"SQLite {self._label}: {what} failed: {exc}") from exc
            except UnicodeEncodeError as exc:
                raise ValidationError(f"{what}: {shown(value)} is not valid Unicode") from exc
        return None if row is None else str(row[0])

    def find_ids(self, kind: str, values: Iterable[str]) -> dict[str, str]:
        """Return ``{value: id}`` for the ``values`` an account holds as its ``kind``.

        One ``SELECT`` through the unique index per 500 values, no JSON fetched.
        """
        wanted = require_keys(kind, values)
        what = f"finding ids by {kind.replace('_', ' ')}"
        found: dict[str, str] = {}
        with self._using(what) as connection:
            for chunk in _chunks(wanted):
                query = f"SELECT {kind}, id FROM accounts WHERE {kind} IN ({_marks(len(chunk))})"  # noqa: S608 - kind is checked, marks ours
                found.update(connection.execute(query, chunk).fetchall())
        return found

    def with_stage(self, stage: Stage) -> Iterator[Account]:
        """Yield the accounts at ``stage`` (a ``Stage`` or its name), oldest first.

        They come by ``created_at``, then id. Rows are read in pages of 256 as the iterator
        advances, so listing a large stage holds neither the lock nor much memory between pages;
        an account written meanwhile shows as its page found it.
        """
        name = str(Stage(stage))
        return self._stage_pages(name, f"listing stage {name}", "1", {})

    def _stage_pages(
        self, stage: str, what: str, where: str, params: Mapping[str, object]
    ) -> Iterator[Account]:
        """Read the accounts at ``stage`` whose rows meet ``where``, oldest first, in pages.

        Keyset pagination by ``(created_at, id)``: the lock is not held between pages.
        """

        def fetch(after: Key | None) -> list[tuple[object, ...]]:
            bound = "" if after is None else "AND (a.created_at, a.id) > (:after_at, :after_id) "
            keys = {} if after is None else {"after_at": after[0], "after_id": after[1]}
            with self._using(what) as connection:
                return connection.execute(
                    f"SELECT a.created_at, {_READ_COLUMNS} FROM {_JOINED} "  # noqa: S608 - ours
                    f"WHERE a.stage = :stage {bound}AND ({where}) "
                    "ORDER BY a.created_at, a.id LIMIT :limit",
                    {**params, **keys, "stage": stage, "limit": PAGE_SIZE},
                ).fetchall()

        return accounts_in_pages(fetch, lambda page: self._accounts([r[1:] for r in page], what))

    def count_by_stage(self) -> Mapping[Stage, int]:
        """Return how many accounts are at each stage (one ``GROUP BY`` over the stage index)."""
        with self._using("counting by stage") as connection:
            rows = connection.execute(
                "SELECT stage, count(*) FROM accounts GROUP BY stage"
            ).fetchall()
        return {Stage(stage): count for stage, count in rows}

    def page(self, *, after: str | None = None, limit: int = 1000) -> list[Account]:
        """Return up to ``limit`` accounts with ids greater than ``after``, by id."""
        require_page(after, limit)
        with self._using("paging accounts") as connection:
            if after is None:
                rows = connection.execute(f"{_READ} ORDER BY a.id LIMIT ?", (limit,)).fetchall()
            else:
                rows = connection.execute(
                    f"{_READ} WHERE a.id > ? ORDER BY a.id LIMIT ?", (after, limit)
                ).fetchall()
        return self._accounts(rows, "paging accounts")

    # --- criteria in SQL ----------------------------------------------------------------------

    def prospects_matching(self, check: Prefilter, *, stage: Stage) -> Iterator[Account]:
        """Yield the accounts at ``stage`` that ``check`` may pass, oldest first.

        The prefilter runs in SQL (:mod:`salesprocess.storage.criteria_sql`): the accounts it
        rules out are never fetched nor decoded. Read in pages, as :meth:`with_stage` is.
        """
        name = str(Stage(stage))
        where, params = sqlite_where(check)
        return self._stage_pages(name, f"selecting prospects at {name}", where, params)

    def latest_screening(self, *, stage: Stage) -> datetime | None:
        """Return the latest last screening of the accounts at ``stage`` (``None``: none).

        From the rows' ``screened_at`` column, then the one screening row it names: no JSON
        read, and nothing at all while no account has a screening.
        """
        with self._using("reading the last screenings") as connection:
            if not connection.execute("SELECT EXISTS (SELECT 1 FROM screenings)").fetchone()[0]:
                return None
            # A bare column beside max() is read from the row holding the maximum.
            latest = connection.execute(
                f"SELECT s.id, max(s.screened_at) FROM {_JOINED} WHERE a.stage = ?",  # noqa: S608 - ours
                (str(Stage(stage)),),
            ).fetchone()
            if latest is None or latest[1] is None:
                return None
            row = connection.execute(
                "SELECT r.at, r.moment FROM account_states AS s JOIN screenings AS r "
                "ON r.account_id = s.id AND r.position = s.screening_count - 1 "
                "WHERE s.id = ?",
                (latest[0],),
            ).fetchone()
        return None if row is None else readmodel.moment_of(*row)

    def screen_out(
        self,
        check: Prefilter,
        *,
        stage: Stage,
        passed: Screening,
        failed: Screening,
        after: Key | None,
        limit: int,
    ) -> ScreenedOut:
        """Record the page's screenings that ``check`` decides in SQL; decode the rest.

        One ``SELECT`` reads the page and its verdicts; one ``INSERT ... SELECT`` appends the
        screening rows of the accounts it decides, and one ``UPDATE`` of their state rows
        raises their version by one, counts the screening and gives them a new stamp.
        Their JSON is neither rewritten nor decoded; the rest are read whole and decoded.
        """
        name = str(Stage(stage))
        verdict_sql, params = sqlite_verdict(check)
        bound = "" if after is None else "AND (created_at, id) > (:after_at, :after_id) "
        keys = {} if after is None else {"after_at": after[0], "after_id": after[1]}
        what = f"screening prospects at {name}"
        with self.atomic(), self._using(what) as connection:
            # One evaluation of the prefilter per row: 1 surely passes, 0 surely fails,
            # NULL is Python's to judge.
            page = connection.execute(
                f"SELECT created_at, id, {verdict_sql}, data, rowid "  # noqa: S608
                f"FROM accounts WHERE stage = :stage {bound}ORDER BY created_at, id LIMIT :limit",
                {**params, **keys, "stage": name, "limit": limit},
            ).fetchall()
            decided: dict[str, tuple[bool, object]] = {}
            rowids: dict[bool, list[int]] = {True: [], False: []}
            kept = []
            for _created, account_id, verdict, data, rowid in page:
                if verdict is None:
                    kept.append(account_id)
                    continue
                surely = verdict == 1
                rowids[surely].append(rowid)
                decided[account_id] = (surely, StoredFacts(data, cached_loads))
            if decided:
                self._record_screenings(connection, rowids, passed, failed)
            rows = self._rows_of(kept, what=what) if kept else []
            at = {account_id: index for index, account_id in enumerate(kept)}
            rows.sort(key=lambda row: at[row[0]])  # the page's order, as one by one
        undecided = self._accounts(rows, what) if rows else []
        return ScreenedOut(
            order=tuple(row[1] for row in page),
            decided=decided,
            undecided=tuple(undecided),
            after=(page[-1][0], page[-1][1]) if len(page) == limit else None,
        )

    @staticmethod
    def _record_screenings(
        connection: sqlite3.Connection,
        rowids: Mapping[bool, list[int]],
        passed: Screening,
        failed: Screening,
    ) -> None:
        """Append ``passed`` to the accounts ``rowids[True]``, ``failed`` to ``rowids[False]``.

        One ``INSERT ... SELECT`` for both verdicts and one ``UPDATE`` (not one of each per
        verdict: 1 us a prospect less, measured), since a row's screening differs by verdict
        only in what the two records hold.
        """
        params: dict[str, object] = {
            "all": json.dumps(rowids[True] + rowids[False]),
            "passed": json.dumps(rowids[True]),
        }
        values = {}
        for column, of in (
            ("at", lambda record: created_key(record.at)),
            ("moment", lambda record: readmodel.moment_text_of(record.at)),
            ("criteria", lambda record: record.criteria),
            ("version", lambda record: record.version),
        ):
            params[f"passed_{column}"], params[f"failed_{column}"] = of(passed), of(failed)
            # Equal for a bulk screen's two records; the protocol allows them to differ.
            values[column] = (
                f":passed_{column}"
                if params[f"passed_{column}"] == params[f"failed_{column}"]
                else f"CASE WHEN {_PASSED} THEN :passed_{column} ELSE :failed_{column} END"
            )
        connection.execute(
            "INSERT INTO screenings (account_id, position, at, moment, criteria, version, "  # noqa: S608 - ours
            f"passed) SELECT id, screening_count, {values['at']}, {values['moment']}, "
            f"{values['criteria']}, {values['version']}, {_PASSED} "
            f"FROM account_states WHERE {_IN_PAGE}",
            params,
        )
        connection.execute(
            "UPDATE account_states SET version = version + 1, "  # noqa: S608 - ours
            "stamp = (random() & 4611686018427387903) + 1, "
            f"screening_count = screening_count + 1, screened_at = {values['at']} WHERE {_IN_PAGE}",
            params,
        )

    # --- reports ----------------------------------------------------------------------------

    @contextmanager
    def _reader(self) -> Iterator[readmodel.Fetch]:
        """Yield ``fetch(sql, params)`` over one snapshot (a read transaction, or the block's)."""
        with self._using("answering a report") as connection:
            begun = not connection.in_transaction
            if begun:
                connection.execute("BEGIN")

            def fetch(query: str, params: Iterable[object]) -> list[object]:
                try:
                    return connection.execute(query, tuple(params)).fetchall()
                except sqlite3.OperationalError as exc:
                    if "integer overflow" in str(exc):
                        raise OverflowError(str(exc)) from exc
                    raise

            try:
                yield fetch
            finally:
                if begun and connection.in_transaction:
                    connection.execute("COMMIT")

    # --- transactions -----------------------------------------------------------------------

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Run the block in one transaction (a savepoint when nested): all of it or none.

        The outermost block begins with ``BEGIN IMMEDIATE`` and holds the repository's lock, so
        other threads sharing this repository wait; other processes wait for the write lock.
        """
        with self._lock:
            depth = self._depth
            savepoint = f"salesprocess_{depth}"
            with self._using("opening a transaction") as connection:
                connection.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {savepoint}")
            self._depth = depth + 1
            held = self._after_commit.mark()
            try:
                yield
            except BaseException as exc:
                self._depth = depth
                self._undo(depth, savepoint, exc)
                self._after_commit.discard(held)
                if depth == 0 and self._rebuild:
                    self._end_bulk()
                raise
            try:
                with self._using("committing") as connection:
                    if depth == 0 and self._rebuild:
                        self._build_indexes(connection)
                    connection.execute("COMMIT" if depth == 0 else f"RELEASE {savepoint}")
            except BaseException as exc:
                self._depth = depth
                self._undo(depth, savepoint, exc)
                self._after_commit.discard(held)
                raise
            finally:
                if depth == 0 and self._rebuild:
                    self._end_bulk()
            self._depth = depth
            committed = self._after_commit.take() if depth == 0 else []
        call_all(committed)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` now, or when the outermost open ``atomic()`` block commits."""
        self._after_commit.register(callback, self._lock, lambda: self._depth > 0)

    def _undo(self, depth: int, savepoint: str, cause: BaseException) -> None:
        """Undo the block that ``cause`` ended; never raise, so that ``cause`` propagates.

        A rollback that fails is noted on ``cause``, and then the whole transaction is rolled
        back, so that the outer blocks fail (``StorageError``) rather than commit half of it.
        """
        connection = self._connection
        if connection is None or not connection.in_transaction:
            return  # closed inside the block, or SQLite already rolled the transaction back
        try:
            if depth == 0:
                connection.execute("ROLLBACK")
            else:
                connection.execute(f"ROLLBACK TO {savepoint}")
                connection.execute(f"RELEASE {savepoint}")
        except sqlite3.Error as exc:
            cause.add_note(f"SQLite {self._label}: rolling back failed too: {exc}")
            with suppress(sqlite3.Error):
                if connection.in_transaction:
                    connection.execute("ROLLBACK")


Reader = Callable[[], AbstractContextManager[readmodel.Fetch]]


class SQLReports:
    """The reports the SQL adapters answer from the read model, built as the pure ones are.

    Each checks its arguments with the report's own checks (the same ``ValidationError``),
    runs :mod:`~salesprocess.storage.readmodel`'s queries over one snapshot (``reader``), and
    builds the result with the report's own functions: the same types, rounding and order.
    Where SQL cannot answer exactly (a bound in a zone some stored moment shares, compared by
    wall time around a DST change) the report runs over ``accounts()``, every stored account.
    Shared by :class:`SQLiteRepository` and
    :class:`~salesprocess.storage.postgres.PostgresRepository`.
    """

    def __init__(
        self,
        reader: Reader,
        dialect: readmodel.Dialect,
        tables: readmodel.Tables,
        accounts: Callable[[], Iterable[Account]],
        referrers: str = readmodel.REFERRERS,
    ) -> None:
        self._reader = reader
        self._dialect = dialect
        self._tables = tables
        self._accounts = accounts
        self._referrers = referrers

    def revenue(self, since: object, until: object) -> RevenueReport:
        """Return :func:`salesprocess.reports.revenue` of every stored account."""
        start, end = window(since, until)
        with self._reader() as fetch:
            if readmodel.ambiguous(fetch, self._tables, (start, end)):
                exact = None
            else:
                exact, rows = readmodel.revenue_tallies(
                    fetch,
                    self._tables,
                    self._dialect,
                    None if start is None else readmodel.moment_key(start),
                    None if end is None else readmodel.moment_key(end),
                )
        if exact is None:
            return reports.revenue(self._accounts(), since=start, until=end)
        tallied = {currency: Tally(*figures) for currency, figures in exact.items()}
        tallied.update(tally(rows))
        return RevenueReport(
            {currency: revenue_figures(currency, tallied[currency]) for currency in sorted(tallied)}
        )

    def funnel(self, as_of: object, channel: object, campaign: object) -> Funnel:
        """Return :func:`salesprocess.reports.funnel` of every stored account."""
        moment, wanted = funnel_arguments(as_of, channel)
        now: dict[Stage, int] = {}
        reached: dict[Stage, int] = {}
        onward: dict[Stage, int] = {}
        if campaign is not None and not isinstance(campaign, str):  # no campaign is that
            return funnel_of(moment, now, reached, onward)
        with self._reader() as fetch:
            if readmodel.ambiguous(fetch, self._tables, (moment,)):
                counts = None
            else:
                counts = readmodel.funnel_counts(
                    fetch,
                    self._tables,
                    self._dialect,
                    readmodel.moment_key(moment),
                    channel=None if wanted is None else wanted.value,
                    campaign=campaign,
                )
        if counts is None:
            return reports.funnel(self._accounts(), as_of=moment, channel=wanted, campaign=campaign)
        bits = readmodel.REACHED_BIT
        for (stage, mask), number in counts.items():
            now[stage] = now.get(stage, 0) + number
            for rung, bit in bits.items():
                if mask & bit:
                    reached[rung] = reached.get(rung, 0) + number
            for here, following in itertools.pairwise(LADDER):
                if mask & bits[here] and mask & bits[following]:
                    onward[here] = onward.get(here, 0) + number
        return funnel_of(moment, now, reached, onward)

    def referral_stats(self) -> ReferralReport:
        """Return :func:`salesprocess.reports.referral_stats` of every stored account.

        Only the accounts holding referrals are read (``referrers``, the adapter's form of
        :data:`~salesprocess.storage.readmodel.REFERRERS`); who bought is each row's ``mask``.
        """
        with self._reader() as fetch:
            counted = readmodel.referral_counts(fetch, self._tables, self._dialect, self._referrers)
        return referral_report(*counted)

    def time_in_stage(self, as_of: object) -> Mapping[Stage, StageTime]:
        """Return :func:`salesprocess.reports.time_in_stage` of every stored account."""
        end = require_aware(as_of, "as_of")
        with self._reader() as fetch:
            if readmodel.ambiguous(fetch, self._tables, (end,)):
                lengths = None
            else:
                lengths = readmodel.stays(fetch, self._tables, readmodel.moment_key(end))
        if lengths is None:
            return reports.time_in_stage(self._accounts(), as_of=end)
        return stage_times(lengths)

    def lead_flow(self, period: object, target: object, as_of: object) -> list[FlowPeriod]:
        """Return :func:`salesprocess.reports.lead_flow` of every stored account."""
        unit, goal, end = flow_arguments(period, target, as_of)
        with self._reader() as fetch:
            if readmodel.ambiguous(fetch, self._tables, (end,)):
                counted = None
            else:
                counted = readmodel.lead_counts(
                    fetch, self._tables, None if end is None else readmodel.moment_key(end)
                )
        if counted is None:
            return reports.lead_flow(self._accounts(), period=unit, target=goal, as_of=end)
        by_day, qualified_by_day = counted
        leads: dict[date, dict[Channel, int]] = {}
        for day, channel, number in by_day:
            per_channel = leads.setdefault(period_start(day, unit), {})
            kind = Channel(channel)
            per_channel[kind] = per_channel.get(kind, 0) + number
        qualified: dict[date, int] = {}
        for day, number in qualified_by_day:
            start = period_start(day, unit)
            qualified[start] = qualified.get(start, 0) + number
        return flow_periods(leads, qualified, unit, goal, end)
