r"""PostgreSQL storage with psycopg 3: for many app servers sharing one database.

Why PostgreSQL next to SQLite: once several machines write, or the app already keeps its data
in PostgreSQL and wants accounts in the same transactions as its own tables. Install the extra:
``pip install 'salesprocess[postgres]'``.

The layout mirrors :mod:`salesprocess.storage.sqlite`: table ``salesprocess_accounts`` with
``id`` (primary key), ``email``, ``phone`` and ``referral_code`` (unique), ``stage`` (indexed with
``created_at`` and ``id``), ``created_at`` (bigint microseconds since 1970-01-01 UTC),
``version``, and ``data``: the account as ``json`` (the type that keeps the text exactly as
written, unlike ``jsonb``) but for its purchases, read back through
:mod:`salesprocess.storage.serialise`. Purchases are rows of their own, appended and never
rewritten (``salesprocess_purchases``, money as ``numeric``); with
``salesprocess_stage_changes`` (the changes after the first), the account's progress in more
columns of its row and its purchases per currency in ``salesprocess_purchase_tallies``, they
are the read model of :mod:`salesprocess.storage.readmodel`, written in the same transaction (or
savepoint) as the account, from which ``revenue``, ``funnel``, ``lead_flow`` and
``time_in_stage`` are answered in SQL. Key columns use the ``"C"`` collation so that ``page()``
orders ids by code point, as Python does. PostgreSQL text cannot hold NUL characters, so key
columns (and the read model's text) store ``\x00`` and ``\x01`` escaped (an order-keeping
escape) and the informational ``name`` column stores ``\x00`` as U+FFFD; ``data`` holds every
value exactly. The schema version lives in ``salesprocess_schema``. Creating and migrating
the tables is an explicit step (:meth:`PostgresRepository.migrate`, ``migrate=True``, or
``salesprocess migrate``), run under an advisory lock; a repository otherwise only checks the
version (one statement, once per pool, factory or connection) and refuses any other. Tables
are created in the connection's current schema (``search_path``), so one database can hold
several independent sets.

Connections. ``PostgresRepository`` takes a DSN (it then opens, owns and closes an autocommit
connection, and opens another after a drop), a ``psycopg_pool.ConnectionPool`` (a connection
per call or per ``atomic()`` block, in autocommit while it is ours), a callable returning a
new connection (owned like a DSN's), or an open :class:`psycopg.Connection` that the app
owns. The rule for a connection the app owns: the repository never commits, rolls back or
closes a transaction or connection it did not begin.

Statements. A read is one statement (an account's purchases come in its row, as JSON, unless
the repository remembers them at the row's stamp); an add is one statement (``ON CONFLICT DO
NOTHING``, the conflict then named by a few reads); a save of an account this repository read
at the stored row's stamp is one statement, which updates the row if it still has that version
and stamp and appends the purchases and changes the account gained (:func:`save_statement`).
A save of any other account reads the row's state first (``FOR UPDATE``) and rewrites its rows
if it must. The statements are module-level, for another adapter over the same tables.

- If the connection has a transaction open when a method runs, the method joins it, without a
  savepoint: reads and adds cannot fail on the data, and a save that changes a unique key
  (email, phone, referral code), or reads the row first, runs in a savepoint, so that a
  conflict is undone without aborting the app's transaction. Everything becomes durable only
  when the app commits.
- If no transaction is open, each statement commits on its own (autocommit), or, on an app's
  connection outside autocommit, runs in a short transaction of its own.
  A report runs in one ``REPEATABLE READ`` transaction of its own (one snapshot); inside the
  app's transaction it sees what that transaction's isolation level shows.
- ``atomic()`` is ``connection.transaction()`` on a connection kept for the block (this
  thread's): a transaction of its own when none is open, a savepoint inside the app's
  otherwise; nested blocks are savepoints.
- A connection whose transaction has already failed raises ``StorageError``: roll it back first.
- ``after_commit`` callbacks (how ``SalesProcess`` publishes its events) wait for the outermost
  ``atomic()`` block. The repository cannot see the commit of a transaction the app began
  itself, so there they run when the outermost block ends (or at once, outside any block):
  to publish only what is committed, let ``atomic()`` begin the transaction.

Every psycopg error leaves through one choke point (``_translated``): a unique violation
becomes ``ConflictError``, anything else (connection lost, server shut down, permission denied,
a pool exhausted or closed) ``StorageError``. A broken connection is then dropped: the pool
replaces it, a DSN or factory repository makes another on the next call.

Threads: over a pool, each thread's calls take their own connection, and an ``atomic()`` block
keeps one for its thread. Over one connection (a DSN's, a factory's or the app's), a
re-entrant lock is held for each call and for the whole of an ``atomic()`` block.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from datetime import datetime
from functools import cache
from typing import Any, Final, NamedTuple, TypeAlias, TypeVar

from salesprocess.checks import require_items, shown, unencodable

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.pq import TransactionStatus
    from psycopg.rows import tuple_row
except ImportError as error:  # pragma: no cover - exercised where psycopg is missing
    raise ImportError(
        "salesprocess.storage.postgres needs psycopg 3: pip install 'salesprocess[postgres]'"
    ) from error

try:
    from psycopg_pool import ConnectionPool
except ImportError:  # pragma: no cover - psycopg_pool comes with the postgres extra
    ConnectionPool = None  # type: ignore[assignment,misc]

from salesprocess.account import Account, Screening, unchecked_copy
from salesprocess.criteria_sql import Prefilter
from salesprocess.errors import ConflictError, NotFound, StorageError, ValidationError
from salesprocess.stage import Stage
from salesprocess.storage import readmodel
from salesprocess.storage.criteria_sql import (
    NUL_ESCAPE,
    postgres_where,
    screening_json,
    verdicts,
)
from salesprocess.storage.paging import PAGE_SIZE, Key, accounts_in_pages
from salesprocess.storage.protocol import (
    AfterCommit,
    Holders,
    call_all,
    every_account,
    require_account,
    require_callback,
    require_ids,
    require_keys,
    require_new,
    require_one_key,
    require_page,
    require_version,
    stale_write,
)
from salesprocess.storage.readmodel import PROGRESS_COLUMNS, Plan
from salesprocess.storage.selection import ScreenedOut, StoredFacts
from salesprocess.storage.serialise import (
    cached_loads,
    created_key,
    dumps,
    encode_json,
    loads,
    moment_from_text,
    remember,
)
from salesprocess.storage.sqlite import ReportsInSQL, SQLReports

__all__ = [
    "COUNT_BY_STAGE",
    "FILLED_BY",
    "ID_BY",
    "IN_ERROR",
    "MIGRATIONS",
    "READ_COLUMNS",
    "REFERRERS",
    "SCHEMA_VERSION",
    "SCHEMA_VERSION_QUERY",
    "TABLES",
    "Ask",
    "BatchWrite",
    "PostgresRepository",
    "SharedMemo",
    "Talk",
    "add_parameters",
    "add_statement",
    "adding",
    "append_save",
    "appended",
    "asking",
    "batch_refused",
    "batch_writes",
    "copying_rows",
    "decoding",
    "first_conflict",
    "foreign_tables",
    "ids_ask",
    "key_of",
    "migrating",
    "new_account",
    "page_ask",
    "read_one",
    "reading_holders",
    "reading_many",
    "reading_one",
    "remember_written",
    "rewriting",
    "save_parameters",
    "save_statement",
    "schema_refused",
    "schema_version",
    "stage_page",
    "state_of",
    "talk",
    "unkey",
]

_CREATED_DAY: Final = readmodel.day_expression("created_at")
_QUALIFIED_DAY: Final = readmodel.day_expression("first_qualified_at")

#: The forward migrations: step ``n`` takes a database from schema ``n`` to ``n + 1``.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 0 -> 1: the accounts table.
    (
        """
        CREATE TABLE salesprocess_accounts (
            id text COLLATE "C" NOT NULL PRIMARY KEY,
            name text NOT NULL,
            email text COLLATE "C" CONSTRAINT salesprocess_accounts_email_key UNIQUE,
            phone text COLLATE "C" CONSTRAINT salesprocess_accounts_phone_key UNIQUE,
            stage text COLLATE "C" NOT NULL,
            created_at bigint NOT NULL,
            version integer NOT NULL CHECK (version >= 1),
            data json NOT NULL
        )
        """,
        "CREATE INDEX salesprocess_accounts_stage ON salesprocess_accounts (stage)",
    ),
    # 1 -> 2: with_stage lists oldest first; let the index give that order instead of a sort.
    (
        "DROP INDEX salesprocess_accounts_stage",
        "CREATE INDEX salesprocess_accounts_stage_created "
        "ON salesprocess_accounts (stage, created_at, id)",
    ),
    # 2 -> 3: referral codes, unique like email and phone. Rows written before keep NULL, which
    # is right: their JSON has no referral code either.
    (
        'ALTER TABLE salesprocess_accounts ADD COLUMN referral_code text COLLATE "C"',
        "CREATE UNIQUE INDEX salesprocess_accounts_referral_code_key "
        "ON salesprocess_accounts (referral_code)",
    ),
    # 3 -> 4: the read model (see salesprocess.storage.readmodel): purchases and stage changes
    # as rows of their own, the account's progress as columns of its row, and its purchases per
    # currency as tallies; money is numeric. Rows written before keep their whole JSON in
    # ``data``; the rows are filled from it.
    (
        "ALTER TABLE salesprocess_accounts "
        + ", ".join(
            f"ADD COLUMN {column} {kind}"
            for column, kind in (
                ("channel", 'text COLLATE "C"'),
                ("campaign", 'text COLLATE "C"'),
                ("created_zone", 'text COLLATE "C"'),
                ("created_wall", "bigint"),
                ("captured_at", "bigint"),
                ("captured_stage", 'text COLLATE "C"'),
                ("captured_zone", 'text COLLATE "C"'),
                ("captured_wall", "bigint"),
                ("last_stage", 'text COLLATE "C"'),
                ("first_qualified_at", "bigint"),
                ("bought_at", "bigint"),
                ("mask", "integer"),
                ("settled_at", "bigint"),
                ("purchase_count", "integer"),
                ("history_count", "integer"),
                ("stamp", "bigint"),
            )
        ),
        """
        CREATE TABLE salesprocess_purchases (
            account_id text COLLATE "C" NOT NULL,
            position integer NOT NULL,
            at bigint NOT NULL,
            day integer NOT NULL,
            currency text COLLATE "C" NOT NULL,
            units numeric,
            exponent integer NOT NULL,
            amount text NOT NULL,
            moment text,
            reference text,
            zone text COLLATE "C",
            wall bigint,
            PRIMARY KEY (account_id, position)
        )
        """,
        "CREATE INDEX salesprocess_purchases_at ON salesprocess_purchases (at)",
        "CREATE INDEX salesprocess_purchases_zone ON salesprocess_purchases (zone, at) "
        "WHERE zone IS NOT NULL",
        """
        CREATE TABLE salesprocess_stage_changes (
            account_id text COLLATE "C" NOT NULL,
            position integer NOT NULL,
            from_stage text COLLATE "C",
            to_stage text COLLATE "C" NOT NULL,
            event text NOT NULL,
            at bigint NOT NULL,
            moment text,
            actor text,
            reason text,
            zone text COLLATE "C",
            wall bigint,
            PRIMARY KEY (account_id, position)
        )
        """,
        "CREATE INDEX salesprocess_stage_changes_zone ON salesprocess_stage_changes (zone, at) "
        "WHERE zone IS NOT NULL",
        """
        CREATE TABLE salesprocess_purchase_tallies (
            currency text COLLATE "C" NOT NULL,
            account_id text COLLATE "C" NOT NULL,
            units numeric,
            purchases integer NOT NULL,
            first_day integer NOT NULL,
            last_day integer NOT NULL,
            min_exponent integer NOT NULL,
            PRIMARY KEY (currency, account_id)
        )
        """,
        "CREATE INDEX salesprocess_accounts_funnel ON salesprocess_accounts (last_stage, mask)",
        "CREATE INDEX salesprocess_accounts_funnel_source "
        "ON salesprocess_accounts (channel, campaign, last_stage, mask)",
        "CREATE INDEX salesprocess_accounts_settled ON salesprocess_accounts (settled_at)",
        "CREATE INDEX salesprocess_accounts_zone ON salesprocess_accounts "
        "(created_zone, created_at) WHERE created_zone IS NOT NULL",
        "CREATE INDEX salesprocess_accounts_captured_zone ON salesprocess_accounts "
        "(captured_zone, captured_at) WHERE captured_zone IS NOT NULL",
        f"CREATE INDEX salesprocess_accounts_leads ON salesprocess_accounts "
        f"({_CREATED_DAY}, channel)",
        f"CREATE INDEX salesprocess_accounts_qualified "
        f"ON salesprocess_accounts ({_QUALIFIED_DAY}, first_qualified_at, created_at)",
    ),
)

#: The schema versions whose migration step is followed by filling the read model.
FILLED_BY: Final = frozenset({4})

#: The schema version this module writes and reads.
SCHEMA_VERSION: Final = len(MIGRATIONS)

_LOCK_KEY: Final = 0x53414C45  # pg_advisory_xact_lock key for migrations: "SALE"
_ALL_COLUMNS: Final = (
    "id",
    "name",
    "email",
    "phone",
    "stage",
    "created_at",
    "version",
    "data",
    "referral_code",
    *PROGRESS_COLUMNS,
)
_COLUMNS: Final = ", ".join(_ALL_COLUMNS)
_UPDATE: Final = (
    "UPDATE salesprocess_accounts SET "  # noqa: S608 - our own names
    f"{', '.join(f'{column} = %s' for column in _ALL_COLUMNS[1:])} "
    "WHERE id = %s AND version = %s"
)
_FILL: Final = (
    f"UPDATE salesprocess_accounts SET {', '.join(f'{c} = %s' for c in PROGRESS_COLUMNS)} "  # noqa: S608 - our own names
    "WHERE id = %s"
)
_STATE: Final = (
    f"SELECT {', '.join(readmodel.STATE_COLUMNS)} FROM salesprocess_accounts "  # noqa: S608 - our own names
    "WHERE id = %s FOR UPDATE"
)
_PURCHASE_COLUMNS: Final = (
    "account_id, position, at, day, currency, units, exponent, amount, moment, reference, "
    "zone, wall"
)
_CHANGE_COLUMNS: Final = (
    "account_id, position, from_stage, to_stage, event, at, moment, actor, reason, zone, wall"
)
_TALLY_COLUMNS: Final = "currency, account_id, units, purchases, first_day, last_day, min_exponent"
_INSERT_PURCHASE: Final = (
    f"INSERT INTO salesprocess_purchases ({_PURCHASE_COLUMNS}) VALUES ({', '.join(['%s'] * 12)})"  # noqa: S608 - our own names
)
_INSERT_CHANGE: Final = (
    f"INSERT INTO salesprocess_stage_changes ({_CHANGE_COLUMNS}) VALUES ({', '.join(['%s'] * 11)})"  # noqa: S608 - our own names
)
_PUT_TALLY: Final = (
    f"INSERT INTO salesprocess_purchase_tallies ({_TALLY_COLUMNS}) VALUES "  # noqa: S608 - our own names
    f"({', '.join(['%s'] * 7)}) ON CONFLICT (currency, account_id) DO UPDATE SET "
    "units = EXCLUDED.units, purchases = EXCLUDED.purchases, first_day = EXCLUDED.first_day, "
    "last_day = EXCLUDED.last_day, min_exponent = EXCLUDED.min_exponent"
)
_DROP_ROWS: Final = (
    "DELETE FROM salesprocess_purchase_tallies WHERE account_id = %(id)s AND currency IN "
    "(SELECT DISTINCT currency FROM salesprocess_purchases WHERE account_id = %(id)s)",
    "DELETE FROM salesprocess_purchases WHERE account_id = %(id)s",
    "DELETE FROM salesprocess_stage_changes WHERE account_id = %(id)s",
)
_READ: Final = "SELECT id, data::text, stamp, purchase_count FROM salesprocess_accounts"
# The referral report's rows (readmodel.REFERRERS); json keeps the text as written.
_REFERRERS: Final = (
    "SELECT id, data::text, mask FROM salesprocess_accounts "
    "WHERE strpos(data::text, '\"referrals\":') > 0"
)
#: The read model's tables, for the queries :mod:`~salesprocess.storage.readmodel` writes.
TABLES: Final = readmodel.Tables(
    "salesprocess_accounts",
    "salesprocess_purchases",
    "salesprocess_stage_changes",
    "salesprocess_purchase_tallies",
    "%s",
)
#: The unique keys besides the id, as columns and as error messages name them.
_UNIQUE: Final = (("email", "email"), ("phone", "phone"), ("referral_code", "referral code"))
# find_id: the id alone, through the unique index (no JSON fetched, nothing decoded).
_ID_BY: Final = {
    kind: (
        f"SELECT id FROM salesprocess_accounts WHERE {kind} = %s",  # noqa: S608 - kind is ours
        f"finding the id by {shown}",
    )
    for kind, shown in _UNIQUE
}

#: One row: id, name, email, phone, stage, created_at, version, data, referral_code.
_Row = tuple[str, str, str | None, str | None, str, int, int, str, str | None]


def _key(text: str) -> str:
    """Return ``text`` as a key column stores it: NUL-free, same order, no two alike."""
    if "\x00" in text or "\x01" in text:
        return text.replace("\x01", "\x01\x02").replace("\x00", "\x01\x01")
    return text


def _optional_key(text: str | None) -> str | None:
    return None if text is None else _key(text)


def _unkey(stored: str) -> str:
    """Return the text a key column's ``stored`` value stands for (undo :func:`_key`)."""
    if "\x01" in stored:
        return stored.replace("\x01\x01", "\x00").replace("\x01\x02", "\x01")
    return stored


#: Money as ``numeric``, text with NUL escaped as in the key columns.
DIALECT: Final = readmodel.postgres_dialect(_key, _unkey)


def _row(account: Account, version: int) -> _Row:
    """Return the first nine columns that store ``account`` at ``version``.

    ``data`` is the account's JSON without its purchases (they are rows of their own).
    """
    prefix = unchecked_copy(account, purchases=()) if account.purchases else account
    return _columns(account, version, dumps(prefix, version=version))


def _columns(account: Account, version: int, data: str) -> _Row:
    """Return the first nine columns of ``account`` at ``version``, ``data`` its JSON as made."""
    return (
        _key(account.id),
        account.name.replace("\x00", "\ufffd"),
        _optional_key(account.email),
        _optional_key(account.phone),
        account.stage,
        created_key(account.created_at),
        version,
        data,
        _optional_key(account.referral_code),
    )


def _plan(account: Account, version: int, **known: Any) -> Plan:
    return readmodel.plan(account, version, _key(account.id), DIALECT, **known)


def _full_row(account: Account, version: int, plan: Plan) -> tuple[object, ...]:
    """Return every ``salesprocess_accounts`` column of ``account``, as ``plan`` has them."""
    return (*_columns(account, version, plan.data), *plan.progress)


def _tally_rows(key: str, plan: Plan) -> list[tuple[object, ...]]:
    return [(currency, key, *tally) for currency, tally in plan.tallies.items()]


# --- the statements of a request --------------------------------------------------------------
#
# What a web request runs is one statement per read and one per write, so that a GET is one
# round trip and a command (load, decide, write) two or three. They are module-level so that
# another adapter over the same tables (an async one) runs the very same SQL.

#: The columns :data:`READ_ONE` selects before the purchase rows: the row as a read needs it
#: (``id, data, stamp, purchase_count``), then ``readmodel.STATE_COLUMNS``.
READ_COLUMNS: Final = ("id", "data::text", "stamp", "purchase_count", *readmodel.STATE_COLUMNS)


def read_one(column: str) -> str:
    """Return the one statement that reads an account by ``column`` (``id``, ``email``, ...).

    Parameters: the stamp of the account as the reader remembers it (or ``None``), then the
    key. The last column holds the account's purchase rows as JSON arrays ``[position, at,
    currency, amount, moment, reference]`` in position order, unless the row still has the
    remembered stamp (then ``NULL``: the reader has them) or no purchases.
    """
    return _READ_ONE[column]


_READ_ONE: Final = {
    column: (
        f"SELECT {', '.join(READ_COLUMNS)}, "  # noqa: S608 - our own names
        "CASE WHEN a.purchase_count > 0 AND a.stamp IS DISTINCT FROM %s THEN ("
        "SELECT json_agg(json_build_array(p.position, p.at, p.currency, p.amount, p.moment, "
        "p.reference) ORDER BY p.position) FROM salesprocess_purchases p "
        "WHERE p.account_id = a.id) END "
        f"FROM salesprocess_accounts a WHERE a.{column} = %s"
    )
    for column in ("id", "email", "phone", "referral_code")
}

#: The version check: one statement (it fails with ``UndefinedTable`` on a database without
#: salesprocess tables).
SCHEMA_VERSION_QUERY: Final = "SELECT max(version) FROM salesprocess_schema"

_PURCHASE_TYPES: Final = (
    "text",
    "integer",
    "bigint",
    "integer",
    "text",
    "numeric",
    "integer",
    "text",
    "text",
    "text",
    "text",
    "bigint",
)
_CHANGE_TYPES: Final = (
    "text",
    "integer",
    "text",
    "text",
    "text",
    "bigint",
    "text",
    "text",
    "text",
    "text",
    "bigint",
)
_TALLY_TYPES: Final = ("text", "text", "numeric", "integer", "integer", "integer", "integer")


def _rows_of(guard: str, table: str, columns: str, types: Sequence[str]) -> str:
    arrays = ", ".join(f"%s::{kind}[]" for kind in types)
    return (
        f"INSERT INTO {table} AS t ({columns}) SELECT * FROM unnest({arrays}) "  # noqa: S608 - ours
        f"WHERE EXISTS (SELECT FROM {guard})"
    )


def _gains(guard: str, *, history: bool, purchases: bool, merge: bool) -> str:
    """Return the ``WITH`` items that append the rows a write gains, if ``guard`` wrote."""
    items = []
    if history:
        items.append(
            "changes AS ("
            + _rows_of(guard, "salesprocess_stage_changes", _CHANGE_COLUMNS, _CHANGE_TYPES)
            + ")"
        )
    if purchases:
        items.append(
            "bought AS ("
            + _rows_of(guard, "salesprocess_purchases", _PURCHASE_COLUMNS, _PURCHASE_TYPES)
            + ")"
        )
        tallied = _rows_of(guard, "salesprocess_purchase_tallies", _TALLY_COLUMNS, _TALLY_TYPES)
        if merge:  # a save's tallies are of its new purchases: add them to the stored ones
            tallied += (
                " ON CONFLICT (currency, account_id) DO UPDATE SET "
                "units = t.units + EXCLUDED.units, purchases = t.purchases + EXCLUDED.purchases, "
                "first_day = least(t.first_day, EXCLUDED.first_day), "
                "last_day = greatest(t.last_day, EXCLUDED.last_day), "
                "min_exponent = least(t.min_exponent, EXCLUDED.min_exponent)"
            )
        items.append(f"tallied AS ({tallied})")
    return "".join(f", {item}" for item in items)


@cache
def add_statement(*, history: bool, purchases: bool) -> str:
    """Return the one statement that adds an account and its rows; it returns ``(added,)``.

    ``added`` is 0 when an id, email, phone or referral code is taken (``ON CONFLICT DO
    NOTHING``: the statement never fails on one, so it needs no savepoint inside a
    transaction). Parameters: :func:`add_parameters`.
    """
    marks = ", ".join(["%s"] * len(_ALL_COLUMNS))
    return (
        f"WITH added AS (INSERT INTO salesprocess_accounts ({_COLUMNS}) VALUES ({marks}) "  # noqa: S608 - ours
        "ON CONFLICT DO NOTHING RETURNING 1)"
        + _gains("added", history=history, purchases=purchases, merge=False)
        + " SELECT count(*) FROM added"
    )


@cache
def save_statement(*, history: bool, purchases: bool) -> str:
    """Return the one statement that saves an account read at a known stamp, and its new rows.

    It updates the row only if it still has the expected version and stamp, appends the rows
    the account gained and adds its new purchases to the tallies, and returns ``(saved,
    version)``: ``saved`` 1 or 0, and the stored version as the statement found it (``None``:
    no such account). Parameters: :func:`save_parameters`.
    """
    sets = ", ".join(f"{column} = %s" for column in _ALL_COLUMNS[1:])
    return (
        f"WITH saved AS (UPDATE salesprocess_accounts SET {sets} "  # noqa: S608 - ours
        "WHERE id = %s AND version = %s AND stamp = %s RETURNING 1)"
        + _gains("saved", history=history, purchases=purchases, merge=True)
        + " SELECT (SELECT count(*) FROM saved), "
        "(SELECT version FROM salesprocess_accounts WHERE id = %s)"
    )


def _columns_of(rows: Sequence[Sequence[object]], width: int) -> list[list[object]]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


def _gained(plan: Plan, key: str) -> list[object]:
    """Return the array parameters of the rows ``plan`` adds, in :func:`_gains`'s order."""
    params: list[object] = []
    if plan.history:
        params.extend(_columns_of(plan.history, len(_CHANGE_TYPES)))
    if plan.purchases:
        params.extend(_columns_of(plan.purchases, len(_PURCHASE_TYPES)))
        params.extend(_columns_of(_tally_rows(key, plan), len(_TALLY_TYPES)))
    return params


def add_parameters(account: Account, plan: Plan) -> tuple[str, list[object]]:
    """Return :func:`add_statement` and its parameters for ``account`` (at version 1)."""
    key = _key(account.id)
    statement = add_statement(history=bool(plan.history), purchases=bool(plan.purchases))
    return statement, [*_full_row(account, 1, plan), *_gained(plan, key)]


def save_parameters(
    account: Account, plan: Plan, expected_version: int, stamp: int
) -> tuple[str, list[object]]:
    """Return :func:`save_statement` and its parameters: ``account`` is the one to store.

    ``plan`` must append (``plan.rewrite`` false) to the account stored at
    ``expected_version`` with ``stamp``; its tallies are those of the new purchases alone.
    """
    key = _key(account.id)
    row = _full_row(account, expected_version + 1, plan)
    statement = save_statement(history=bool(plan.history), purchases=bool(plan.purchases))
    return statement, [*row[1:], key, expected_version, stamp, *_gained(plan, key), key]


#: Where each of ``readmodel.STATE_COLUMNS`` but the version is among ``PROGRESS_COLUMNS``.
_STATE_AT: Final = tuple(PROGRESS_COLUMNS.index(column) for column in readmodel.STATE_COLUMNS[1:])


def state_of(version: int, plan: Plan) -> tuple[Any, ...]:
    """Return the ``readmodel.STATE_COLUMNS`` of the row ``plan`` writes at ``version``."""
    progress = plan.progress
    return (version, *(progress[index] for index in _STATE_AT))


class SharedMemo(readmodel.Memo):
    """The memo of a repository that threads share, and the state of each remembered row.

    The state (``readmodel.STATE_COLUMNS``) lets a save of an account read at a stamp append
    its new rows in one statement, without reading the row again first.
    """

    __slots__ = ("_guard", "_states")

    def __init__(self, maxsize: int = 4096) -> None:
        super().__init__(maxsize)
        self._guard = threading.Lock()
        self._states: OrderedDict[str, tuple[Any, ...]] = OrderedDict()

    def get(self, account_id: str, stamp: int | None) -> Account | None:
        """Return the account remembered for ``account_id`` at ``stamp``, if any."""
        with self._guard:
            return super().get(account_id, stamp)

    def put(self, account_id: str, stamp: int, account: Account) -> None:
        """Remember ``account`` as the one stored under ``account_id`` at ``stamp``."""
        with self._guard:
            super().put(account_id, stamp, account)

    def clear(self) -> None:
        """Forget every account and state."""
        with self._guard:
            super().clear()
            self._states.clear()

    def stamp_of(self, account_id: str) -> int | None:
        """Return the stamp of the account remembered for ``account_id``, if any."""
        with self._guard:
            entry = self._entries.get(account_id)
        return None if entry is None else entry[0]

    def put_state(self, account_id: str, state: Sequence[Any]) -> None:
        """Remember the stored row's ``STATE_COLUMNS`` for ``account_id``."""
        with self._guard:
            states = self._states
            states[account_id] = tuple(state)
            states.move_to_end(account_id)
            if len(states) > self.maxsize:
                states.popitem(last=False)

    def state(self, account_id: str) -> tuple[Any, ...] | None:
        """Return the remembered ``STATE_COLUMNS`` of ``account_id``'s row, if any."""
        with self._guard:
            return self._states.get(account_id)


# --- where connections come from --------------------------------------------------------------

_IN_ERROR: Final = (
    "the connection's transaction has failed: roll it back before using the repository"
)


class _Source:
    """Where the repository's connections come from; ``serial`` guards one shared connection."""

    serial: AbstractContextManager[Any]
    owner: object  # what the schema check is remembered for (weakly), or None

    def acquire(self) -> psycopg.Connection[Any]:
        raise NotImplementedError  # pragma: no cover

    def release(self, connection: psycopg.Connection[Any]) -> None:
        """Give back what :meth:`acquire` gave (a broken connection is dropped)."""

    def current(self) -> psycopg.Connection[Any]:
        return self.acquire()

    def close(self) -> None:
        """Close what the repository owns."""


class _AppConnection(_Source):
    """The app's own connection: used as it is, never committed, rolled back or closed."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection: psycopg.Connection[Any] | None = connection
        self.serial = threading.RLock()
        self.owner = connection  # a repository per request on one connection: one check

    def acquire(self) -> psycopg.Connection[Any]:
        connection = self.connection
        if connection is None:
            raise StorageError("PostgreSQL repository is closed")
        if connection.closed:
            raise StorageError("PostgreSQL repository's connection is closed")
        return connection

    def close(self) -> None:
        self.connection = None

    def __str__(self) -> str:
        return "the app's connection"


class _Factory(_Source):
    """Connections the repository makes (from a DSN or the app's factory) and owns.

    It keeps one at a time, in autocommit, and makes another once it is closed or broken.
    """

    def __init__(self, make: Callable[[], object], what: str, owner: object) -> None:
        self.make = make
        self.what = what
        self.owner = owner
        self.connection: psycopg.Connection[Any] | None = None
        self.closed = False
        self.serial = threading.RLock()

    def acquire(self) -> psycopg.Connection[Any]:
        if self.closed:
            raise StorageError("PostgreSQL repository is closed")
        connection = self.connection
        if connection is not None and not connection.closed and not connection.broken:
            return connection
        self.connection = None
        try:
            made = self.make()
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to PostgreSQL: {exc}") from exc
        if not isinstance(made, psycopg.Connection):
            raise StorageError(
                f"the connection factory returned {type(made).__name__}, not a psycopg.Connection"
            )
        if not made.autocommit and made.info.transaction_status == TransactionStatus.IDLE:
            made.autocommit = True  # ours: each call commits on its own, atomic() begins
        self.connection = made
        return made

    def release(self, connection: psycopg.Connection[Any]) -> None:
        if connection.closed or connection.broken:
            self.connection = None
            connection.close()

    def close(self) -> None:
        self.closed = True
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.close()

    def __str__(self) -> str:
        return f"connections from {self.what}"


class _Pool(_Source):
    """A ``psycopg_pool.ConnectionPool``: a connection per call or ``atomic()`` block."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.owner = pool
        self.serial = nullcontext()
        self.closed = False
        self._switched: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()

    def acquire(self) -> psycopg.Connection[Any]:
        if self.closed:
            raise StorageError("PostgreSQL repository is closed")
        connection: psycopg.Connection[Any] = self.pool.getconn()
        if not connection.autocommit:
            try:
                connection.autocommit = True  # given back as it came, in release()
            except BaseException:
                self.pool.putconn(connection)
                raise
            self._switched.add(connection)
        return connection

    def release(self, connection: psycopg.Connection[Any]) -> None:
        if connection in self._switched:
            self._switched.discard(connection)
            if not connection.closed and not connection.broken:
                idle = connection.info.transaction_status == TransactionStatus.IDLE
                if idle:
                    connection.autocommit = False
        self.pool.putconn(connection)

    def current(self) -> psycopg.Connection[Any]:
        raise StorageError(
            "a repository over a pool has a connection only inside atomic(): use "
            "repository.connection there"
        )

    def close(self) -> None:
        self.closed = True

    def __str__(self) -> str:
        return f"pool {getattr(self.pool, 'name', '')!s}".rstrip()


class _Block:
    """This thread's open ``atomic()`` block: its connection, depth and held callbacks."""

    __slots__ = ("after_commit", "connection", "depth")

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection
        self.depth = 0
        self.after_commit = AfterCommit()


#: Pools and factories whose database was found at ``SCHEMA_VERSION`` (the check runs once).
_CHECKED: Final[weakref.WeakKeyDictionary[object, bool]] = weakref.WeakKeyDictionary()

_FOREIGN: Final = (
    "table salesprocess_accounts exists but has no salesprocess schema version: it is not "
    "ours, refusing to touch it"
)


def _newer(version: int) -> StorageError:
    return StorageError(
        f"the database has salesprocess schema version {version}, written by a newer "
        f"salesprocess; this version reads up to {SCHEMA_VERSION}: upgrade salesprocess"
    )


def _source(source: object) -> _Source:
    if isinstance(source, psycopg.Connection):
        # Every statement reads its rows by position: a dict_row connection would fail at the
        # first read with a bare KeyError. The factory is the app's, not ours to change.
        if getattr(source, "row_factory", tuple_row) is not tuple_row:
            raise ValidationError(
                "PostgresRepository needs a connection that returns tuples (row_factory="
                "psycopg.rows.tuple_row, the default); this one has row_factory="
                f"{shown(source.row_factory)}: pass a DSN, or a connection of its own",
                field="source",
            )
        return _AppConnection(source)
    if isinstance(source, str):
        dsn = source

        def connect() -> psycopg.Connection[Any]:
            return psycopg.connect(dsn, autocommit=True)

        return _Factory(connect, "a DSN", None)
    if ConnectionPool is not None and isinstance(source, ConnectionPool):
        return _Pool(source)
    if callable(source):
        return _Factory(source, "a factory", source)
    raise ValidationError(
        "PostgresRepository takes a DSN string, a psycopg.Connection, a "
        "psycopg_pool.ConnectionPool or a callable returning a psycopg.Connection, not "
        f"{type(source).__name__}",
        field="source",
    )


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Translate every driver error: the one choke point psycopg errors leave the adapter by.

    A unique violation becomes ``ConflictError``; any other driver error (a dropped
    connection, an exhausted or closed pool, a lock timeout) ``StorageError``.
    """
    try:
        yield
    except pg_errors.UniqueViolation as exc:
        raise ConflictError(f"{what}: {exc.diag.message_detail or exc}") from exc
    except psycopg.Error as exc:
        raise StorageError(f"PostgreSQL: {what} failed: {exc}") from exc
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"{what}: text that is not valid Unicode cannot be stored ({exc.reason})"
        ) from exc


def _plain(connection: psycopg.Connection[Any]) -> AbstractContextManager[Any]:
    """Return the scope of a statement that cannot fail on the data (a read, an add): none.

    No savepoint: inside a transaction the statement simply joins it. Only on an idle
    connection outside autocommit (an app's) it runs in a transaction of its own, so as not to
    leave one open.
    """
    status = connection.info.transaction_status
    if status == TransactionStatus.IDLE:
        return nullcontext() if connection.autocommit else connection.transaction()
    if status == TransactionStatus.INERROR:
        raise StorageError(_IN_ERROR)
    return nullcontext()


def _guarded(connection: psycopg.Connection[Any]) -> AbstractContextManager[Any]:
    """Return the scope of one statement that may fail on the data (a unique key it changes).

    In autocommit the statement is atomic alone; inside a transaction it gets a savepoint, so
    that its failure does not abort the transaction around it.
    """
    status = connection.info.transaction_status
    if status == TransactionStatus.IDLE and connection.autocommit:
        return nullcontext()
    if status == TransactionStatus.INERROR:
        raise StorageError(_IN_ERROR)
    return connection.transaction()


# --- the adapter's logic without I/O ----------------------------------------------------------
#
# Both PostgreSQL adapters run the same statements and decode the same rows: what a call does is
# written once here, as a generator (a Talk) that yields the statements it needs (each an Ask)
# and is sent their rows. PostgresRepository runs a Talk on a psycopg Connection, calling;
# AsyncPostgresRepository on an AsyncConnection, awaiting. The adapters keep the I/O alone:
# connections, transactions, savepoints, pipelines and the translation of driver errors.

_Answer = TypeVar("_Answer")

#: ``find_id``'s statement per kind, and what a message calls it.
ID_BY: Final = _ID_BY
#: The pools, factories and connections whose database was found at ``SCHEMA_VERSION``.
CHECKED: Final = _CHECKED
#: Why a connection whose transaction failed is refused.
IN_ERROR: Final = _IN_ERROR
#: The referral report's rows.
REFERRERS: Final = _REFERRERS
#: A key as its column stores it, and back.
key_of: Final = _key
unkey: Final = _unkey


class Ask(NamedTuple):
    """One statement a :data:`Talk` asks for: ``sql`` with ``params``; it is sent the rows.

    ``kind`` is ``"rows"`` (a statement that returns rows; answered with them), ``"do"`` (one
    that returns none; ``[]``), ``"many"`` (``executemany`` over the parameter rows
    ``params``; ``[]``) or ``"copy"`` (``COPY ... FROM STDIN`` of the rows ``params``; ``[]``).
    """

    sql: str
    params: Any = ()
    kind: str = "rows"


#: Work on the database without I/O: yields each :class:`Ask`, is sent its rows.
Talk: TypeAlias = Generator[Ask, list[Any], _Answer]


def talk(connection: psycopg.Connection[Any], steps: Talk[_Answer]) -> _Answer:
    """Run ``steps`` on ``connection``: execute each statement asked, send back its rows."""
    rows: Any = None
    try:
        while True:
            ask = steps.send(rows)
            rows = []
            if ask.kind == "rows":
                rows = connection.execute(ask.sql, ask.params).fetchall()
            elif ask.kind == "do":
                connection.execute(ask.sql, ask.params)
            elif ask.kind == "many":
                with connection.cursor() as cursor:
                    cursor.executemany(ask.sql, ask.params)
            else:
                with connection.cursor() as cursor, cursor.copy(ask.sql) as copy:
                    for row in ask.params:
                        copy.write_row(row)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def asking(ask: Ask) -> Talk[list[Any]]:
    """Ask for one statement; answer its rows."""
    rows = yield ask
    return rows


def schema_version() -> Talk[int | None]:
    """Return the schema version of the database (``None``: no salesprocess tables)."""
    exists = yield Ask("SELECT to_regclass('salesprocess_schema') IS NOT NULL")
    if not exists or not exists[0][0]:
        return None
    rows = yield Ask(SCHEMA_VERSION_QUERY)
    return None if not rows or rows[0][0] is None else int(rows[0][0])


def foreign_tables() -> Talk[bool]:
    """Whether a table ``salesprocess_accounts`` exists (without a schema version: not ours)."""
    rows = yield Ask("SELECT to_regclass('salesprocess_accounts') IS NOT NULL")
    return bool(rows and rows[0][0])


def schema_refused(version: int | None, foreign: bool) -> StorageError | None:
    """Return why a database at ``version`` is refused (``None``: it is at ``SCHEMA_VERSION``)."""
    if version is None and foreign:
        return StorageError(_FOREIGN)
    if version is None or version < SCHEMA_VERSION:
        return StorageError(
            f"the database has {'no salesprocess tables' if version is None else ''}"
            f"{'' if version is None else f'salesprocess schema version {version}'}; this "
            f"salesprocess needs version {SCHEMA_VERSION}: migrate it once with "
            "`salesprocess migrate --dsn DSN`, PostgresRepository(..., migrate=True) or "
            "repository.migrate()"
        )
    if version > SCHEMA_VERSION:
        return _newer(version)
    return None


def migrating() -> Talk[int]:
    """Migrate to ``SCHEMA_VERSION`` under the advisory lock (in a transaction); the old one."""
    yield Ask("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    version = yield from schema_version()
    if version is None:
        if (yield from foreign_tables()):
            raise StorageError(_FOREIGN)
        yield Ask("CREATE TABLE salesprocess_schema (version integer)", (), "do")
        yield Ask("INSERT INTO salesprocess_schema VALUES (0)", (), "do")
        version = 0
    if version > SCHEMA_VERSION:
        raise _newer(version)
    for reached, step in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in step:
            yield Ask(statement, (), "do")
        if reached in FILLED_BY:
            yield from _filling_read_model()
    yield Ask("UPDATE salesprocess_schema SET version = %s", (SCHEMA_VERSION,), "do")
    return version


def _filling_read_model() -> Talk[None]:
    """Fill the read model from every account's JSON (migration to schema 4).

    ``data`` keeps the whole account; reads take its purchases from it. An account
    whose JSON is not valid stops the migration (nothing is changed) with ``StorageError``.
    """
    after: str | None = None
    while True:
        rows = yield Ask(
            "SELECT id, data::text FROM salesprocess_accounts "  # noqa: S608 - our own names
            + ("" if after is None else "WHERE id > %s ")
            + "ORDER BY id LIMIT 1000",
            () if after is None else (after,),
        )
        if not rows:
            return
        after = rows[-1][0]
        progress, purchases, history, tallies = [], [], [], []
        for key, data in rows:
            plan = readmodel.plan(loads(data), 0, key, DIALECT, stamp=0, with_data=False)
            progress.append((*plan.progress, key))
            purchases.extend(plan.purchases)
            history.extend(plan.history)
            tallies.extend(_tally_rows(key, plan))
        yield Ask(_FILL, progress, "many")
        yield from copying_rows(purchases, history, tallies)


def copying_rows(
    purchases: list[tuple[object, ...]],
    history: list[tuple[object, ...]],
    tallies: list[tuple[object, ...]],
) -> Talk[None]:
    """COPY new accounts' rows (tallies of new accounts: no conflict possible)."""
    for table, columns, rows in (
        ("salesprocess_stage_changes", _CHANGE_COLUMNS, history),
        ("salesprocess_purchases", _PURCHASE_COLUMNS, purchases),
        ("salesprocess_purchase_tallies", _TALLY_COLUMNS, tallies),
    ):
        if rows:
            yield Ask(f"COPY {table} ({columns}) FROM STDIN", rows, "copy")


def first_conflict(accounts: list[Account], *, new: bool) -> Talk[ConflictError]:
    """Name the first uniqueness rule ``accounts`` (in order) break; nothing was written.

    Run after the failed statement's savepoint or transaction was rolled back (or after an add
    that wrote nothing), so it sees the database as it was before the write.
    """
    stored_ids: set[str] = set()
    if new:
        rows = yield Ask(
            "SELECT id FROM salesprocess_accounts WHERE id = ANY(%s)",
            ([_key(a.id) for a in accounts],),
        )
        stored_ids = {row[0] for row in rows}
    owners: dict[str, dict[str, str]] = {}
    for kind, _shown in _UNIQUE:
        values = [_key(v) for a in accounts if (v := getattr(a, kind)) is not None]
        rows = yield Ask(
            f"SELECT {kind}, id FROM salesprocess_accounts "  # noqa: S608 - kind is ours
            f"WHERE {kind} = ANY(%s)",
            (values,),
        )
        owners[kind] = {row[0]: row[1] for row in rows}
    seen_ids: set[str] = set()
    for account in accounts:
        key = _key(account.id)
        if new and (key in stored_ids or key in seen_ids):
            return ConflictError(f"an account with id {account.id} is already stored")
        seen_ids.add(key)
        for kind, label in _UNIQUE:
            value = getattr(account, kind)
            if value is None:
                continue
            owner = owners[kind].get(_key(value))
            if owner is not None and owner != key:
                return ConflictError(f"{label} {value} already belongs to account {_unkey(owner)}")
            owners[kind][_key(value)] = key
    return ConflictError(
        "a concurrent write took an id, email, phone or referral code of these accounts"
    )


_TAIL_PURCHASES: Final = (
    "SELECT account_id, position, at, currency, amount, moment, reference "
    "FROM salesprocess_purchases WHERE account_id = ANY(%s) ORDER BY account_id, position"
)
_TAIL_STAMPS: Final = "SELECT id, stamp FROM salesprocess_accounts WHERE id = ANY(%s)"


def decoding(
    memo: readmodel.Memo, rows: list[tuple[Any, ...]], *, remember: bool
) -> Talk[list[Account]]:
    """Return the accounts of ``rows`` (as ``_READ`` selects them), their rows joined back in."""
    steps = readmodel.assembling(
        [(_unkey(row[0]), *row[1:]) for row in rows], memo, DIALECT, remember=remember
    )
    answer: Any = None
    try:
        while True:
            kind, ids = steps.send(answer)
            keys = [_key(account_id) for account_id in ids]
            if kind == "tails":
                purchases: dict[str, list[tuple[object, ...]]] = {}
                for key, *row in (yield Ask(_TAIL_PURCHASES, (keys,))):
                    purchases.setdefault(_unkey(key), []).append(tuple(row))
                stamps = {_unkey(k): stamp for k, stamp in (yield Ask(_TAIL_STAMPS, (keys,)))}
                answer = (purchases, stamps)
            else:
                found = yield Ask(f"{_READ} WHERE id = ANY(%s)", (keys,))
                answer = [(_unkey(row[0]), *row[1:]) for row in found]
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def reading_many(memo: SharedMemo, account_ids: list[str]) -> Talk[dict[str, Account]]:
    """Read the stored ones of ``account_ids``: one statement, and one per tail to join back."""
    if not account_ids:
        return {}
    rows = yield Ask(f"{_READ} WHERE id = ANY(%s)", ([_key(i) for i in account_ids],))
    if not rows:
        return {}
    accounts = yield from decoding(memo, rows, remember=False)
    return {account.id: account for account in accounts}


def reading_one(memo: SharedMemo, column: str, value: str) -> Talk[Account | None]:
    """Read one account by ``column`` in one statement, its purchase rows included."""
    statement = read_one(column)
    key = _key(value)
    known = memo.stamp_of(value) if column == "id" else None
    rows = yield Ask(statement, (known, key))
    if not rows:
        return None
    return (yield from _decoded_one(memo, rows[0], Ask(statement, (None, key))))


def _decoded_one(memo: SharedMemo, row: tuple[Any, ...], again: Ask) -> Talk[Account]:
    """Return the account of a :func:`read_one` row; remember it and its state."""
    account_id = _unkey(row[0])
    head: readmodel.AccountRow = (account_id, *row[1:4])
    found = readmodel.quick(memo, head)
    if found is None:
        steps = readmodel.assembling([head], memo, DIALECT, remember=True)
        answer: Any = None
        try:
            while True:
                kind, _ids = steps.send(answer)
                if kind == "tails":
                    purchases = row[-1]
                    # None: the remembered account was replaced meanwhile
                    answer = ({}, {}) if purchases is None else (
                        {account_id: purchases}, {account_id: row[2]}
                    )  # fmt: skip
                else:
                    rows = yield again
                    if not rows:
                        raise NotFound(f"account {account_id!r} was removed while it was read")
                    row = rows[0]
                    answer = [(account_id, *row[1:4])]
        except StopIteration as done:
            found = done.value[0]
    memo.put_state(account_id, row[4 : 4 + len(readmodel.STATE_COLUMNS)])
    assert found is not None
    return found


def _holders_statement(kinds: tuple[str, ...]) -> str:
    return (
        f"SELECT {', '.join(READ_COLUMNS)}, "  # noqa: S608 - our own names
        "CASE WHEN a.purchase_count > 0 THEN ("
        "SELECT json_agg(json_build_array(p.position, p.at, p.currency, p.amount, p.moment, "
        "p.reference) ORDER BY p.position) FROM salesprocess_purchases p "
        "WHERE p.account_id = a.id) END, "
        f"{', '.join(f'a.{kind} = %({kind})s' for kind in kinds)} "
        "FROM salesprocess_accounts a WHERE "
        + " OR ".join(f"a.{kind} = %({kind})s" for kind in kinds)
    )


def reading_holders(
    memo: SharedMemo, keys: Mapping[str, str | None]
) -> Talk[dict[str, Account | None]]:
    """Read, in one statement, the accounts holding each of ``keys`` (``id``, ``email``, ...).

    Answers ``{kind: account or None}``; a value that is not text is held by nobody.
    """
    wanted = {kind: value for kind, value in keys.items() if isinstance(value, str)}
    found: dict[str, Account | None] = dict.fromkeys(_HOLDER_KINDS)
    if not wanted:
        return found
    kinds = tuple(kind for kind in _HOLDER_KINDS if kind in wanted)
    statement = _holders_statement(kinds)
    rows = yield Ask(statement, {kind: _key(value) for kind, value in wanted.items()})
    width = len(READ_COLUMNS) + 1
    for row in rows:
        again = Ask(read_one("id"), (None, row[0]))
        account = yield from _decoded_one(memo, row[:width], again)
        for kind, holds in zip(kinds, row[width:], strict=True):
            if holds:
                found[kind] = account
    return found


_HOLDER_KINDS: Final = ("id", "email", "phone", "referral_code")


def stage_page(stage: str, where: str, params: Mapping[str, object], after: Key | None) -> Ask:
    """Return the statement of a page of accounts at ``stage`` meeting ``where``, oldest first.

    Keyset pagination by ``(created_at, id)``.
    """
    bound = "" if after is None else "AND (created_at, id) > (%(after_at)s, %(after_id)s) "
    keys = {} if after is None else {"after_at": after[0], "after_id": after[1]}
    return Ask(
        "SELECT created_at, id, data::text, stamp, purchase_count "  # noqa: S608 - ours
        f"FROM salesprocess_accounts WHERE stage = %(stage)s {bound}AND ({where}) "
        "ORDER BY created_at, id LIMIT %(limit)s",
        {**params, **keys, "stage": stage, "limit": PAGE_SIZE},
    )


#: ``count_by_stage``'s statement: one ``GROUP BY`` over the stage index.
COUNT_BY_STAGE: Final = "SELECT stage, count(*) FROM salesprocess_accounts GROUP BY stage"


def page_ask(after: str | None, limit: int) -> Ask:
    """Return ``page()``'s statement: up to ``limit`` accounts with ids after ``after``."""
    if after is None:
        return Ask(f"{_READ} ORDER BY id LIMIT %s", (limit,))
    return Ask(f"{_READ} WHERE id > %s ORDER BY id LIMIT %s", (_key(after), limit))


def ids_ask(kind: str, values: Iterable[str]) -> Ask:
    """Return ``find_ids()``'s statement (``kind`` checked by ``require_keys``)."""
    return Ask(
        f"SELECT {kind}, id FROM salesprocess_accounts WHERE {kind} = ANY(%s)",  # noqa: S608 - kind is checked
        ([_key(value) for value in values],),
    )


def append_save(
    memo: SharedMemo, stored: Account, expected_version: int
) -> tuple[Plan, Ask, bool] | None:
    """Plan the one-statement save of ``stored`` if it extends the account read at a stamp.

    Returns the plan, its statement, and whether the unique keys stay as they were (a
    statement that changes one may fail on it); ``None`` when the row must be read first (the
    account was not read here, or its rows must be rewritten).
    """
    state = memo.state(stored.id)
    if state is None or state[0] != expected_version:
        return None
    known = memo.get(stored.id, state[1])
    if known is None:
        return None
    plan = _plan(stored, expected_version + 1, state=state, stored=known)
    if plan.rewrite:
        return None
    same_keys = (known.email, known.phone, known.referral_code) == (
        stored.email,
        stored.phone,
        stored.referral_code,
    )
    statement, params = save_parameters(stored, plan, expected_version, state[1])
    return plan, Ask(statement, params), same_keys


def appended(stored: Account, expected_version: int, rows: list[Any]) -> bool:
    """Whether :func:`append_save`'s statement saved; raise if the row is gone or newer.

    ``False``: the row changed in a way the statement cannot tell; read it and rewrite.
    """
    saved, version = rows[0] if rows else (0, None)
    if saved:
        return True
    if version is None:
        raise NotFound(f"no account with id {shown(stored.id)}")
    if version != expected_version:
        raise stale_write(stored.id, version, expected_version)
    return False


_TALLIES: Final = (
    "SELECT currency, units, purchases, first_day, last_day, min_exponent FROM "
    "salesprocess_purchase_tallies WHERE account_id = %s AND currency = ANY(%s)"
)


def rewriting(memo: SharedMemo, stored: Account, expected_version: int) -> Talk[Plan]:
    """Save ``stored`` after reading its row's state: appending, or rewriting its rows.

    Runs in a transaction (or savepoint) of the caller's: the row is locked ``FOR UPDATE``.
    """
    key = _key(stored.id)
    states = yield Ask(_STATE, (key,))
    if not states:
        raise NotFound(f"no account with id {shown(stored.id)}")
    state = states[0]
    if state[0] != expected_version:
        raise stale_write(stored.id, state[0], expected_version)
    known = memo.get(stored.id, state[1])
    wanted: list[list[str]] = []

    def asked(currencies: Iterable[str]) -> dict[str, readmodel.Tally]:
        wanted.append(list(currencies))
        return {}

    plan = _plan(stored, expected_version + 1, state=state, stored=known, known_tallies=asked)
    if wanted:  # the stored tallies of the new purchases' currencies: plan again with them
        rows = yield Ask(_TALLIES, (key, wanted[0]))
        tallies = {row[0]: readmodel.Tally(*row[1:]) for row in rows}
        plan = _plan(
            stored, expected_version + 1, state=state, stored=known,
            known_tallies=lambda currencies: {c: tallies[c] for c in currencies if c in tallies},
        )  # fmt: skip
    row = _full_row(stored, stored.version, plan)
    yield Ask(_UPDATE, (*row[1:], key, expected_version), "do")
    if plan.rewrite:
        for statement in _DROP_ROWS:
            yield Ask(statement, {"id": key}, "do")
    if plan.history:
        yield Ask(_INSERT_CHANGE, plan.history, "many")
    if plan.purchases:
        yield Ask(_INSERT_PURCHASE, plan.purchases, "many")
        yield Ask(_PUT_TALLY, _tally_rows(key, plan), "many")
    return plan


def adding(accounts: Iterable[Account]) -> Talk[list[Account]]:
    """COPY new accounts and their rows (``add_many``); return them as checked."""
    batch: list[Account] = []
    purchases: list[tuple[object, ...]] = []
    history: list[tuple[object, ...]] = []
    tallies: list[tuple[object, ...]] = []
    rows = []
    for account in accounts:
        batch.append(require_new(account))
        plan = _plan(account, 1, stamp=0)
        rows.append(_full_row(account, 1, plan))
        history.extend(plan.history)
        if plan.purchases:
            purchases.extend(plan.purchases)
            tallies.extend(_tally_rows(_key(account.id), plan))
    yield Ask(f"COPY salesprocess_accounts ({_COLUMNS}) FROM STDIN", rows, "copy")
    yield from copying_rows(purchases, history, tallies)
    return batch


def remember_written(memo: SharedMemo, stored: Account, plan: Plan) -> None:
    """Remember what was written: the next read of it in this process decodes nothing."""
    memo.put(stored.id, plan.progress[-1], stored)
    memo.put_state(stored.id, state_of(stored.version, plan))
    remember(plan.data, plan.prefix)


def new_account(account: Account) -> tuple[Account, Plan, Ask]:
    """Return ``account`` as stored at version 1, its plan and its one-statement add."""
    stored = unchecked_copy(require_new(account), version=1)
    plan = _plan(stored, 1)
    statement, params = add_parameters(stored, plan)
    return stored, plan, Ask(statement, params)


#: A write of a batch: the account as stored, its plan, its statement, the version it expects
#: (``None``: an add).
BatchWrite: TypeAlias = tuple[Account, Plan, Ask, "int | None"]


def batch_writes(memo: SharedMemo, accounts: Sequence[Account]) -> list[BatchWrite] | None:
    """Plan ``write_all``: each account's one statement, or ``None`` if one must read its row."""
    planned: list[BatchWrite] = []
    for account in accounts:
        if not account.version:
            stored, plan, ask = new_account(account)
            planned.append((stored, plan, ask, None))
            continue
        expected = require_version(account.version)
        stored = unchecked_copy(require_account(account), version=expected + 1)
        saving = append_save(memo, stored, expected)
        if saving is None:
            return None
        plan, ask, _same_keys = saving
        planned.append((stored, plan, ask, expected))
    return planned


def batch_refused(planned: list[BatchWrite], results: list[list[Any]]) -> str | None:
    """Return what refused a batch (``"conflict"``, ``"reread"``), or ``None``: all written.

    A save whose row is gone or newer raises (``NotFound``, ``StaleWrite``).
    """
    refused = None
    for (stored, _plan, _ask, expected), rows in zip(planned, results, strict=True):
        if expected is None:
            if not rows or not rows[0][0]:
                refused = "conflict"
        elif not appended(stored, expected, rows):
            refused = refused or "reread"
    return refused


def _pipelined(connection: psycopg.Connection[Any], planned: list[BatchWrite]) -> str | None:
    """Run a batch's statements in one transaction, ``BEGIN`` travelling with them.

    One round trip for ``BEGIN`` and the statements, one for ``COMMIT`` (or ``ROLLBACK``, when
    the batch was refused: see :func:`batch_refused`). On an idle autocommit connection.
    """
    try:
        with connection.pipeline() as pipeline:
            connection.execute("BEGIN", prepare=False)
            cursors = [
                connection.execute(ask.sql, ask.params, prepare=False)
                for _s, _p, ask, _e in planned
            ]
            pipeline.sync()
            try:
                refused = batch_refused(planned, [cursor.fetchall() for cursor in cursors])
            except BaseException:
                connection.execute("ROLLBACK", prepare=False)
                raise
            connection.execute("ROLLBACK" if refused else "COMMIT", prepare=False)
    except BaseException:
        if not connection.closed and connection.info.transaction_status in (
            TransactionStatus.INTRANS,
            TransactionStatus.INERROR,
        ):
            with suppress(psycopg.Error):  # the connection broke: the first error says why
                connection.execute("ROLLBACK")
        raise
    return refused


class PostgresRepository(ReportsInSQL):
    """Accounts in PostgreSQL: over a DSN, the app's connection, a pool, or a factory.

    ``source`` is one of:

    - a DSN (``str``): the repository opens, owns and closes an autocommit connection, and
      opens a new one on the next call after it was dropped;
    - a ``psycopg.Connection`` the app owns: used as it is, joining the app's transactions; a
      dropped connection stays dropped (the app owns it), every call raising ``StorageError``;
    - a ``psycopg_pool.ConnectionPool``: each call, and each ``atomic()`` block, takes a
      connection from the pool and gives it back; threads share the repository without
      waiting for each other, and a connection that broke is replaced by the pool;
    - a callable returning a new ``psycopg.Connection`` (a factory): the repository owns
      what it returns, keeps one at a time, and calls it again once that one is dropped.

    The schema is migrated by an explicit step, :meth:`migrate` (or ``salesprocess migrate``),
    not by every app server at start-up: a migration takes locks and may need rights the app
    does not have, and while servers of two releases run side by side, the older must not
    see its tables changed under it. So by default the constructor only checks, with one
    statement, that the database is at :data:`SCHEMA_VERSION` (once per pool, factory or
    connection in the process), and refuses any other with a ``StorageError`` that says what to run.
    ``migrate=True`` migrates first instead: the way to keep a script, a test or a
    single-process app working as before, when it opened a fresh database and let the
    repository create the tables.

    See the module documentation for how it joins an app's transactions.
    """

    def __init__(self, source: object, *, migrate: bool = False) -> None:
        self._memo = SharedMemo()
        self._local = threading.local()
        self._reports = SQLReports(
            self._reader, DIALECT, TABLES, lambda: every_account(self), _REFERRERS
        )
        self._source = _source(source)
        try:
            if migrate:
                self.migrate()
            else:
                self._check_schema()
        except BaseException:
            self.close()
            raise

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The psycopg connection in use (``StorageError`` once closed).

        Inside an ``atomic()`` block, the block's connection, for the app's own statements in
        the same transaction; outside one, over a pool, there is none (``StorageError``).
        """
        block = self._block()
        if block is not None:
            return block.connection
        with self._source.serial:
            return self._source.current()

    def __repr__(self) -> str:
        closed = getattr(self._source, "closed", False) or (
            isinstance(self._source, _AppConnection)
            and (self._source.connection is None or self._source.connection.closed)
        )
        return f"<PostgresRepository on {self._source}, {'closed' if closed else 'open'}>"

    # --- plumbing ---------------------------------------------------------------------------

    def _block(self) -> _Block | None:
        block: _Block | None = getattr(self._local, "block", None)
        return block

    @contextmanager
    def _using(self, what: str) -> Iterator[psycopg.Connection[Any]]:
        """Yield a connection for one call; the one place driver errors are translated.

        Inside this thread's ``atomic()`` block that is the block's connection; otherwise one
        from the source (over a shared connection, holding its lock for the call), given back
        afterwards: a broken one is dropped, and the next call gets a fresh one.
        """
        block = self._block()
        if block is not None:
            with _translated(what):
                yield block.connection
            return
        source = self._source
        with source.serial:
            with _translated(what):
                connection = source.acquire()
            try:
                with _translated(what):
                    yield connection
            finally:
                with _translated(what):
                    source.release(connection)

    def close(self) -> None:
        """Close what the repository owns: its connection from a DSN or a factory.

        Never the app's connection or pool; a closed repository raises ``StorageError``.
        """
        source: _Source | None = getattr(self, "_source", None)
        if source is not None:
            with source.serial:
                source.close()

    def __enter__(self) -> PostgresRepository:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- schema -----------------------------------------------------------------------------

    def _check_schema(self) -> None:
        """Refuse a database that is not at ``SCHEMA_VERSION``: one statement, once per source.

        In autocommit a missing table costs nothing but the error; inside a transaction the
        check asks the catalogue first, so as not to abort it.
        """
        owner = self._source.owner
        if owner is not None and _CHECKED.get(owner):
            return
        foreign = False
        with self._using("checking the schema version") as connection:
            status = connection.info.transaction_status
            if status == TransactionStatus.INERROR:
                raise StorageError(_IN_ERROR)
            if status == TransactionStatus.IDLE and connection.autocommit:
                try:
                    row = connection.execute(SCHEMA_VERSION_QUERY).fetchone()
                    version = None if row is None or row[0] is None else int(row[0])
                except pg_errors.UndefinedTable:
                    version = None
            else:
                with _plain(connection):
                    version = talk(connection, schema_version())
            if version is None:
                with _plain(connection):
                    foreign = talk(connection, foreign_tables())
        refused = schema_refused(version, foreign)
        if refused is not None:
            raise refused
        if owner is not None:
            _CHECKED[owner] = True

    def migrate(self) -> int:
        """Create the tables, or migrate them forward to ``SCHEMA_VERSION``; return the old one.

        The version the database had is returned (0 for one without salesprocess tables).
        Safe to run from several processes at once (an advisory lock orders them), and a
        no-op on a database that is already at ``SCHEMA_VERSION``. Refuses, with
        ``StorageError``, tables named like ours that are not, and a database written by a
        newer salesprocess.
        """
        with self._using("migrating the schema") as connection:
            with _plain(connection):
                version = talk(connection, schema_version())
            found = version or 0
            if version != SCHEMA_VERSION:
                with connection.transaction():
                    found = talk(connection, migrating())
        owner = self._source.owner
        if owner is not None:
            _CHECKED[owner] = True
        return found

    # --- conflicts --------------------------------------------------------------------------

    def _conflict(
        self, connection: psycopg.Connection[Any], accounts: list[Account], *, new: bool
    ) -> ConflictError:
        """Name the first uniqueness rule ``accounts`` (in order) break; nothing was written.

        Runs after the failed statement's savepoint or transaction was rolled back (or after
        an add that wrote nothing), so it sees the database as it was before the write.
        """
        with _plain(connection):  # on an app's idle connection, leave no transaction open
            return talk(connection, first_conflict(accounts, new=new))

    # --- writes -----------------------------------------------------------------------------
    #
    # add and save prime the decode cache with what they wrote (serialise.remember): ``data``
    # is ``json``, which keeps the text exactly, so the next get in this process finds the
    # account without decoding. They do it once the statement has succeeded; the transaction
    # around it (atomic(), or the app's) may still roll back, and that is harmless: the cache
    # maps the text to the (equal) account that text decodes to, so the pair is only ever used
    # when some row holds that very text again, and is right then too. add_many does not
    # prime: a bulk load would flush the whole cache with accounts rarely read right away.

    def _writing(self, connection: psycopg.Connection[Any]) -> AbstractContextManager[Any]:
        """Return the transaction a write runs in: its own, or a savepoint in the open one."""
        if connection.info.transaction_status == TransactionStatus.INERROR:
            raise StorageError(_IN_ERROR)
        return connection.transaction()

    def add(self, account: Account) -> Account:
        """Store a new account at version 1: one statement (``ON CONFLICT DO NOTHING``)."""
        stored, plan, ask = new_account(account)
        with self._using(f"adding account {account.id}") as connection:
            with _plain(connection):
                rows = talk(connection, asking(ask))
            if not rows or not rows[0][0]:
                # Nothing was written, and no error aborted a transaction around it.
                raise self._conflict(connection, [account], new=True)
        remember_written(self._memo, stored, plan)
        return stored

    def add_many(self, accounts: Iterable[Account]) -> int:
        """Store many new accounts with ``COPY``, all or nothing; return how many."""
        accounts = list(require_items(accounts, "accounts"))
        batch: list[Account] = []
        with self._using("adding accounts") as connection:
            try:
                # Inside an open transaction the scope is a savepoint, so a conflict leaves
                # that transaction usable.
                with self._writing(connection):
                    batch = talk(connection, adding(accounts))
            except pg_errors.UniqueViolation:
                raise self._conflict(connection, accounts, new=True) from None
        return len(batch)

    def save(self, account: Account, *, expected_version: int) -> Account:
        """Replace the stored account if it is still at ``expected_version``.

        Only the purchases and stage changes the account gained are written, when it holds
        the very ones this repository last read or wrote; otherwise its rows are rewritten.
        An account this repository read at the stored row's stamp is saved in one statement.
        """
        account = require_account(account)
        expected_version = require_version(expected_version)
        stored = unchecked_copy(account, version=expected_version + 1)
        with self._using(f"saving account {account.id}") as connection:
            plan = self._append_only(connection, stored, expected_version)
            if plan is None:
                try:
                    with self._writing(connection):
                        plan = talk(connection, rewriting(self._memo, stored, expected_version))
                except pg_errors.UniqueViolation:
                    raise self._conflict(connection, [stored], new=False) from None
        remember_written(self._memo, stored, plan)
        return stored

    def _append_only(
        self, connection: psycopg.Connection[Any], stored: Account, expected_version: int
    ) -> Plan | None:
        """Save ``stored`` in one statement if it extends the account read at a known stamp.

        Returns the plan written, or ``None`` when the row must be read first (the account was
        not read here, or the row changed since in a way the statement cannot tell).
        """
        saving = append_save(self._memo, stored, expected_version)
        if saving is None:
            return None
        plan, ask, same_keys = saving
        try:
            with _plain(connection) if same_keys else _guarded(connection):
                rows = talk(connection, asking(ask))
        except pg_errors.UniqueViolation:
            raise self._conflict(connection, [stored], new=False) from None
        return plan if appended(stored, expected_version, rows) else None

    def write_all(self, accounts: Sequence[Account]) -> list[Account]:
        """Store ``accounts`` all or nothing: each new one added, each other saved.

        A save expects the account's own ``version``. On an autocommit connection with no
        transaction open, when every save extends an account read here, ``BEGIN`` and the
        statements travel in one round trip and ``COMMIT`` in a second; otherwise they run in
        an ``atomic()`` block. Refused like ``add`` and ``save`` (nothing is then stored).
        """
        accounts = [require_account(a, "accounts") for a in require_items(accounts, "accounts")]
        planned = batch_writes(self._memo, accounts) if self._block() is None else None
        if planned is not None:
            with self._using("writing accounts") as connection:
                status = connection.info.transaction_status
                if status == TransactionStatus.IDLE and connection.autocommit:
                    try:
                        refused = _pipelined(connection, planned)
                    except pg_errors.UniqueViolation:  # a save took a key: name it
                        saved = [account for account in accounts if account.version]
                        raise self._conflict(connection, saved, new=False) from None
                    if refused == "conflict":
                        added = [account for account in accounts if not account.version]
                        raise self._conflict(connection, added, new=True)
                    if refused is None:
                        for stored, plan, _ask, _expected in planned:
                            remember_written(self._memo, stored, plan)
                        return [stored for stored, *_rest in planned]
        with self.atomic():
            return [
                self.save(account, expected_version=account.version)
                if account.version
                else self.add(account)
                for account in accounts
            ]

    def holders(
        self,
        *,
        account_id: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        referral_code: str | None = None,
    ) -> Holders:
        """Return the accounts holding this id, email, phone and referral code: one statement."""
        keys = {"id": account_id, "email": email, "phone": phone, "referral_code": referral_code}
        with self._using("reading accounts") as connection, _plain(connection):
            found = talk(connection, reading_holders(self._memo, keys))
        return Holders(found["id"], found["email"], found["phone"], found["referral_code"])

    # --- reads ------------------------------------------------------------------------------

    def _accounts(
        self, rows: list[tuple[Any, ...]], what: str, *, remember: bool = False
    ) -> list[Account]:
        """Return the accounts of ``rows`` (as ``_READ`` selects them), rows joined back in."""
        with self._using(what) as connection, _plain(connection):
            return talk(connection, decoding(self._memo, rows, remember=remember))

    def _one(self, what: str, column: str, value: str) -> Account | None:
        """Read one account by ``column`` in one statement, its purchase rows included."""
        if not isinstance(value, str):
            return None  # no account has a key that is not text (as in the other adapters)
        with self._using(what) as connection, _plain(connection):
            return talk(connection, reading_one(self._memo, column, value))

    def get(self, account_id: str) -> Account:
        """Return the stored account or raise ``NotFound``."""
        # Named in messages only if it is text a message can show (no lone surrogate; a key
        # that is not text may even raise from its own __format__).
        readable = type(account_id) is str and not unencodable(account_id)
        what = f"reading account {account_id}" if readable else "reading an account"
        found = self._one(what, "id", account_id)
        if found is None:
            raise NotFound(f"no account with id {shown(account_id)}")
        return found

    def get_many(self, account_ids: Iterable[str]) -> dict[str, Account]:
        """Return ``{id: account}`` for the stored ones among ``account_ids``: one ``SELECT``.

        (And one per kind of row joined back, for the accounts that have purchases.)
        """
        wanted = require_ids(account_ids)
        with self._using("reading accounts") as connection, _plain(connection):
            return talk(connection, reading_many(self._memo, wanted))

    def find_by_email(self, email: str) -> Account | None:
        """Return the account with this normalised email, if any."""
        return self._one("finding by email", "email", email)

    def find_by_phone(self, phone: str) -> Account | None:
        """Return the account with this normalised phone number, if any."""
        return self._one("finding by phone", "phone", phone)

    def find_by_referral_code(self, code: str) -> Account | None:
        """Return the account whose (already normalised) referral code is ``code``, if any."""
        return self._one("finding by referral code", "referral_code", code)

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
        with self._using(what) as connection, _plain(connection):
            row = connection.execute(query, (_key(value),)).fetchone()
        return None if row is None else _unkey(row[0])

    def find_ids(self, kind: str, values: Iterable[str]) -> dict[str, str]:
        """Return ``{value: id}`` for the ``values`` an account holds as its ``kind``.

        One ``SELECT ... = ANY(...)`` through the unique index, no JSON fetched.
        """
        wanted = require_keys(kind, values)
        what = f"finding ids by {kind.replace('_', ' ')}"
        with self._using(what) as connection, _plain(connection):
            rows = talk(connection, asking(ids_ask(kind, wanted)))
        return {_unkey(value): _unkey(account_id) for value, account_id in rows}

    def with_stage(self, stage: Stage) -> Iterator[Account]:
        """Yield the accounts at ``stage`` (a ``Stage`` or its name), oldest first.

        They come by ``created_at``, then id. Rows are read in pages of 256 as the iterator
        advances (keyset pagination): the lock is not held between pages, and an account written
        meanwhile shows as its page found it.
        """
        name = str(Stage(stage))
        return self._stage_pages(name, f"listing stage {name}", "TRUE", {})

    def _stage_pages(
        self, stage: str, what: str, where: str, params: Mapping[str, object]
    ) -> Iterator[Account]:
        """Read the accounts at ``stage`` whose rows meet ``where``, oldest first, in pages.

        Keyset pagination by ``(created_at, id)``: the lock is not held between pages.
        """

        def fetch(after: Key | None) -> list[tuple[Any, ...]]:
            with self._using(what) as connection, _plain(connection):
                return talk(connection, asking(stage_page(stage, where, params, after)))

        return accounts_in_pages(fetch, lambda page: self._accounts([r[1:] for r in page], what))

    def prospects_matching(self, check: Prefilter, *, stage: Stage) -> Iterator[Account]:
        """Yield the accounts at ``stage`` that ``check`` may pass, oldest first.

        The prefilter runs in SQL (:mod:`salesprocess.storage.criteria_sql`): the accounts it
        rules out are never fetched nor decoded. Read in pages, as :meth:`with_stage` is.
        """
        name = str(Stage(stage))
        where, params = postgres_where(check)
        return self._stage_pages(name, f"selecting prospects at {name}", where, params)

    def latest_screening(self, *, stage: Stage) -> datetime | None:
        """Return the latest last screening of the accounts at ``stage`` (``None``: none)."""
        nul = NUL_ESCAPE.format("data")
        with self._using("reading the last screenings") as connection, _plain(connection):
            texts = connection.execute(
                "SELECT DISTINCT data -> 'screenings' -> -1 ->> 'at' FROM salesprocess_accounts "  # noqa: S608 - ours
                f"WHERE stage = %s AND CASE WHEN {nul} THEN FALSE "  # CASE: checked first
                "ELSE json_array_length(data -> 'screenings') > 0 END",
                (str(Stage(stage)),),
            ).fetchall()
            # JSON functions refuse a document holding \u0000: read those few in Python.
            for (data,) in connection.execute(
                f"SELECT data::text FROM salesprocess_accounts WHERE stage = %s AND {nul}",  # noqa: S608 - ours
                (str(Stage(stage)),),
            ):
                screenings = json.loads(data).get("screenings") or []
                if screenings:
                    texts.append((screenings[-1]["at"],))
        return max((moment_from_text(text) for (text,) in texts if text), default=None)

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

        The page's rows are locked; those the prefilter surely passes gain ``passed``, those
        it rules out ``failed``, appended to their JSON as plain JSON (no account is decoded)
        and written back with the version raised by one and a new stamp.
        """
        name = str(Stage(stage))
        may, must, params = verdicts(check, "postgres")
        records = {
            True: json.loads(screening_json(passed)),
            False: json.loads(screening_json(failed)),
        }
        bound = "" if after is None else "AND (created_at, id) > (%(after_at)s, %(after_id)s) "
        keys = {} if after is None else {"after_at": after[0], "after_id": after[1]}
        what = f"screening prospects at {name}"
        with self.atomic(), self._using(what) as connection:
            page = connection.execute(
                f"SELECT created_at, id, ({must}), ({may}), version, data::text "  # noqa: S608
                f"FROM salesprocess_accounts WHERE stage = %(stage)s {bound}"
                "ORDER BY created_at, id LIMIT %(limit)s FOR UPDATE",
                {**params, **keys, "stage": name, "limit": limit},
            ).fetchall()
            decided: dict[str, tuple[bool, object]] = {}
            writes = []
            for _at, key, surely, maybe, version, text in page:
                if maybe and not surely:
                    continue
                value = json.loads(text)
                value.setdefault("screenings", []).append(records[bool(surely)])
                value["version"] = version + 1
                data = encode_json(value)
                writes.append((data, version + 1, readmodel.new_stamp(), key))
                decided[_unkey(key)] = (bool(surely), StoredFacts(data, cached_loads))
            if writes:
                with connection.cursor() as cursor:
                    cursor.executemany(
                        "UPDATE salesprocess_accounts SET data = %s::json, version = %s, "
                        "stamp = %s WHERE id = %s",
                        writes,
                    )
            kept = [row[1] for row in page if _unkey(row[1]) not in decided]
            rows = (
                connection.execute(f"{_READ} WHERE id = ANY(%s)", (kept,)).fetchall()
                if kept
                else []
            )
        by_id = {account.id: account for account in self._accounts(rows, what)}
        return ScreenedOut(
            order=tuple(_unkey(row[1]) for row in page),
            decided=decided,
            undecided=tuple(by_id[_unkey(k)] for k in kept if _unkey(k) in by_id),
            after=(page[-1][0], page[-1][1]) if len(page) == limit else None,
        )

    def count_by_stage(self) -> Mapping[Stage, int]:
        """Return how many accounts are at each stage (one ``GROUP BY`` over the stage index)."""
        with self._using("counting by stage") as connection, _plain(connection):
            rows = talk(connection, asking(Ask(COUNT_BY_STAGE)))
        return {Stage(stage): int(count) for stage, count in rows}

    def page(self, *, after: str | None = None, limit: int = 1000) -> list[Account]:
        """Return up to ``limit`` accounts with ids greater than ``after``, by id."""
        require_page(after, limit)
        with self._using("paging accounts") as connection, _plain(connection):
            rows = talk(connection, asking(page_ask(after, limit)))
        return self._accounts(rows, "paging accounts")

    # --- reports ----------------------------------------------------------------------------

    @contextmanager
    def _reader(self) -> Iterator[readmodel.Fetch]:
        """Yield ``fetch(sql, params)`` over one snapshot (REPEATABLE READ, or the app's)."""
        with self._using("answering a report") as connection:
            if connection.info.transaction_status == TransactionStatus.INERROR:
                raise StorageError(_IN_ERROR)
            idle = connection.info.transaction_status == TransactionStatus.IDLE
            with connection.transaction():
                if idle:
                    connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")

                def fetch(query: str, params: Iterable[object]) -> list[Any]:
                    return connection.execute(query, tuple(params)).fetchall()

                yield fetch

    # --- transactions -----------------------------------------------------------------------

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Run the block in one transaction (a savepoint when nested or inside the app's).

        The block keeps one connection for this thread (one from the pool, or the shared
        connection, whose lock it holds throughout): every call of the repository in the
        block, in this thread, runs on it. ``repository.connection`` is that connection, for
        the app's own statements in the same transaction.
        """
        block = self._block()
        if block is not None:
            with self._transaction(block):
                yield
            return
        source = self._source
        with source.serial:
            with _translated("opening a transaction"):
                connection = source.acquire()
            block = _Block(connection)
            self._local.block = block
            try:
                with self._transaction(block):
                    yield
            finally:
                self._local.block = None
                with _translated("giving back the connection"):
                    source.release(connection)
        call_all(block.after_commit.take())

    @contextmanager
    def _transaction(self, block: _Block) -> Iterator[None]:
        """One level of ``atomic()`` on the block's connection; callbacks wait for the top."""
        connection = block.connection
        if connection.info.transaction_status == TransactionStatus.INERROR:
            raise StorageError(_IN_ERROR)
        transaction = connection.transaction()
        with _translated("opening a transaction"):
            transaction.__enter__()
        block.depth += 1
        held = block.after_commit.mark()
        try:
            try:
                yield
            except BaseException as exc:
                block.after_commit.discard(held)
                with _translated("rolling back"):
                    transaction.__exit__(type(exc), exc, exc.__traceback__)
                raise
            try:
                with _translated("committing"):
                    transaction.__exit__(None, None, None)
            except StorageError:
                block.after_commit.discard(held)
                raise
        finally:
            block.depth -= 1

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` now, or when this thread's outermost ``atomic()`` block commits.

        See the module documentation for a transaction the app began itself.
        """
        checked = require_callback(callback)
        block = self._block()
        if block is not None and block.depth > 0:
            block.after_commit.register(checked, nullcontext(), lambda: True)
            return
        call_all([checked])


def __getattr__(name: str) -> Any:
    # The async adapter lives in postgres_async, which imports this module; it is offered
    # here too, loaded on first use (an import at the top would be a cycle).
    if name == "AsyncPostgresRepository":
        from salesprocess.storage.postgres_async import AsyncPostgresRepository  # noqa: PLC0415

        return AsyncPostgresRepository
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
