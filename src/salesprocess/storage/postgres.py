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
value exactly. The schema
version lives in ``salesprocess_schema``; opening a repository runs the missing forward
migrations under an advisory lock and refuses a database written by a newer salesprocess.
Tables are created in the connection's current schema (``search_path``), so one database can
hold several independent sets.

Transactions, and joining the app's. ``PostgresRepository`` takes a DSN (it then opens, owns
and closes an autocommit connection) or an open :class:`psycopg.Connection` that the app owns.
The rule for a connection the app owns: the repository never commits, rolls back or closes a
transaction or connection it did not begin.

- If the connection has a transaction open when a method runs, the method's writes join that
  transaction inside a savepoint: a failed write (a conflict, say) is undone without aborting
  the app's transaction, and the rest becomes durable only when the app commits.
- If no transaction is open, each method runs in its own short transaction and commits it.
  A report runs in one ``REPEATABLE READ`` transaction of its own (one snapshot); inside the
  app's transaction it sees what that transaction's isolation level shows.
- ``atomic()`` is ``connection.transaction()``: a transaction of its own when none is open, a
  savepoint inside the app's otherwise; nested blocks are savepoints.
- A connection whose transaction has already failed raises ``StorageError``: roll it back first.
- ``after_commit`` callbacks (how ``SalesProcess`` publishes its events) wait for the outermost
  ``atomic()`` block. The repository cannot see the commit of a transaction the app began
  itself, so there they run when the outermost block ends (or at once, outside any block):
  to publish only what is committed, let ``atomic()`` begin the transaction.

Every psycopg error is translated: a unique violation becomes ``ConflictError``, anything else
(connection lost, server shut down, permission denied) ``StorageError``.

Threads: one connection per repository, behind a re-entrant lock held for each call and for the
whole of an ``atomic()`` block. Use one repository per thread, or per process, for parallelism.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import Any, Final

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.pq import TransactionStatus
except ImportError as error:  # pragma: no cover - exercised where psycopg is missing
    raise ImportError(
        "salesprocess.storage.postgres needs psycopg 3: pip install 'salesprocess[postgres]'"
    ) from error

from salesprocess.account import Account, Channel, unchecked_copy
from salesprocess.errors import ConflictError, NotFound, StorageError, ValidationError
from salesprocess.reports import FlowPeriod, Funnel, RevenueReport
from salesprocess.reports.flow import FlowPeriodName
from salesprocess.reports.stages import StageTime
from salesprocess.stage import Stage
from salesprocess.storage import readmodel
from salesprocess.storage.paging import PAGE_SIZE, Key, accounts_in_pages
from salesprocess.storage.protocol import (
    AfterCommit,
    call_all,
    every_account,
    require_account,
    require_new,
    require_one_key,
    require_page,
    require_version,
    stale_write,
)
from salesprocess.storage.readmodel import PROGRESS_COLUMNS, Plan
from salesprocess.storage.serialise import created_key, dumps, loads, remember
from salesprocess.storage.sqlite import SQLReports

__all__ = ["FILLED_BY", "MIGRATIONS", "SCHEMA_VERSION", "TABLES", "PostgresRepository"]

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
_INSERT: Final = (
    f"INSERT INTO salesprocess_accounts ({_COLUMNS}) "  # noqa: S608 - our own names
    f"VALUES ({', '.join(['%s'] * len(_ALL_COLUMNS))})"
)
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
#: The purchase rows of accounts (by key), and their stamps: what reads join to ``data``.
TAIL_PURCHASES: Final = (
    "SELECT account_id, position, at, currency, amount, moment, reference "
    "FROM salesprocess_purchases WHERE account_id = ANY(%s) ORDER BY account_id, position"
)
TAIL_STAMPS: Final = "SELECT id, stamp FROM salesprocess_accounts WHERE id = ANY(%s)"
_STAGE_ROWS: Final = (
    "SELECT created_at, id, data::text, stamp, purchase_count FROM salesprocess_accounts "
)
#: ``with_stage``'s pages (keyset pagination by ``created_at``, then id).
STAGE_FIRST: Final = f"{_STAGE_ROWS}WHERE stage = %s ORDER BY created_at, id LIMIT %s"
STAGE_NEXT: Final = (
    f"{_STAGE_ROWS}WHERE stage = %s AND (created_at, id) > (%s, %s) "
    "ORDER BY created_at, id LIMIT %s"
)
COUNT_BY_STAGE: Final = "SELECT stage, count(*) FROM salesprocess_accounts GROUP BY stage"
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
    return (
        _key(account.id),
        account.name.replace("\x00", "\ufffd"),
        _optional_key(account.email),
        _optional_key(account.phone),
        account.stage,
        created_key(account.created_at),
        version,
        dumps(prefix, version=version),
        _optional_key(account.referral_code),
    )


def _plan(account: Account, version: int, **known: Any) -> Plan:
    return readmodel.plan(account, version, _key(account.id), DIALECT, **known)


def _full_row(account: Account, version: int, plan: Plan) -> tuple[object, ...]:
    """Return every ``salesprocess_accounts`` column of ``account``, as ``plan`` has them."""
    return (
        _key(account.id),
        account.name.replace("\x00", "\ufffd"),
        _optional_key(account.email),
        _optional_key(account.phone),
        account.stage,
        created_key(account.created_at),
        version,
        plan.data,
        _optional_key(account.referral_code),
        *plan.progress,
    )


def _tally_rows(key: str, plan: Plan) -> list[tuple[object, ...]]:
    return [(currency, key, *tally) for currency, tally in plan.tallies.items()]


def conflict_named(
    accounts: list[Account],
    *,
    new: bool,
    stored_ids: set[str],
    owners: dict[str, dict[str, str]],
) -> ConflictError:
    """Name the first uniqueness rule ``accounts`` (in order) break.

    ``stored_ids`` are the keys of their ids already stored (for a ``new`` write), ``owners``
    per unique column the stored value's owner key, as the conflict queries found them.
    """
    seen_ids: set[str] = set()
    for account in accounts:
        key = _key(account.id)
        if new and (key in stored_ids or key in seen_ids):
            return ConflictError(f"an account with id {account.id} is already stored")
        seen_ids.add(key)
        for kind, shown in _UNIQUE:
            value = getattr(account, kind)
            if value is None:
                continue
            owner = owners[kind].get(_key(value))
            if owner is not None and owner != key:
                return ConflictError(f"{shown} {value} already belongs to account {_unkey(owner)}")
            owners[kind][_key(value)] = key
    return ConflictError(
        "a concurrent write took an id, email, phone or referral code of these accounts"
    )


class PostgresRepository:
    """Accounts in PostgreSQL, through a DSN or an app-owned ``psycopg.Connection``.

    See the module documentation for how it joins an app's transactions.
    """

    def __init__(self, dsn_or_connection: str | psycopg.Connection[Any]) -> None:
        self._lock = threading.RLock()
        self._depth = 0  # atomic() blocks open
        self._after_commit = AfterCommit()
        self._memo = readmodel.Memo()
        self._reports = SQLReports(self._reader, DIALECT, TABLES, lambda: every_account(self))
        if isinstance(dsn_or_connection, psycopg.Connection):
            self._connection: psycopg.Connection[Any] | None = dsn_or_connection
            self._owned = False
        elif isinstance(dsn_or_connection, str):
            try:
                self._connection = psycopg.connect(dsn_or_connection, autocommit=True)
            except psycopg.Error as exc:
                raise StorageError(f"cannot connect to PostgreSQL: {exc}") from exc
            self._owned = True
        else:
            raise ValidationError(
                "PostgresRepository takes a DSN string or a psycopg.Connection, not "
                f"{type(dsn_or_connection).__name__}",
                field="dsn_or_connection",
            )
        try:
            self._migrate()
        except BaseException:
            if self._owned:
                self.close()
            raise

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The psycopg connection in use (``StorageError`` once closed)."""
        return self._live()

    def __repr__(self) -> str:
        state = "closed" if self._connection is None or self._connection.closed else "open"
        owner = "own" if self._owned else "app's"
        return f"<PostgresRepository on the {owner} connection, {state}>"

    # --- plumbing ---------------------------------------------------------------------------

    def _live(self) -> psycopg.Connection[Any]:
        connection = self._connection
        if connection is None:
            raise StorageError("PostgreSQL repository is closed")
        if connection.closed:
            raise StorageError("PostgreSQL repository's connection is closed")
        return connection

    @contextmanager
    def _using(self, what: str) -> Iterator[psycopg.Connection[Any]]:
        """Hold the lock and yield the live connection; translate every driver error."""
        with self._lock:
            connection = self._live()
            try:
                yield connection
            except pg_errors.UniqueViolation as exc:
                raise ConflictError(f"{what}: {exc.diag.message_detail or exc}") from exc
            except psycopg.Error as exc:
                raise StorageError(f"PostgreSQL: {what} failed: {exc}") from exc
            except UnicodeEncodeError as exc:
                raise ValidationError(
                    f"{what}: text that is not valid Unicode cannot be stored ({exc.reason})"
                ) from exc

    def _scope(self, connection: psycopg.Connection[Any]) -> AbstractContextManager[Any]:
        """Return the transaction a statement needs: none in autocommit, else one of its own.

        Inside an open transaction that is a savepoint, so that a failing statement (a
        conflict) does not abort the transaction around it.
        """
        status = connection.info.transaction_status
        if status == TransactionStatus.IDLE and connection.autocommit:
            return nullcontext()
        if status == TransactionStatus.INERROR:
            raise StorageError(
                "the connection's transaction has failed: roll it back before using the repository"
            )
        return connection.transaction()

    def close(self) -> None:
        """Close the connection if the repository opened it (never an app's connection)."""
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None and self._owned:
                connection.close()

    def __enter__(self) -> PostgresRepository:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- schema -----------------------------------------------------------------------------

    def _version(self, connection: psycopg.Connection[Any]) -> int | None:
        exists = connection.execute(
            "SELECT to_regclass('salesprocess_schema') IS NOT NULL"
        ).fetchone()
        if not exists or not exists[0]:
            return None
        row = connection.execute("SELECT max(version) FROM salesprocess_schema").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _migrate(self) -> None:
        with self._using("preparing the schema") as connection:
            with self._scope(connection):
                version = self._version(connection)
            if version == SCHEMA_VERSION:
                return
            with connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                version = self._version(connection)
                if version is None:
                    taken = connection.execute(
                        "SELECT to_regclass('salesprocess_accounts') IS NOT NULL"
                    ).fetchone()
                    if taken and taken[0]:
                        raise StorageError(
                            "table salesprocess_accounts exists but has no salesprocess "
                            "schema version: it is not ours, refusing to touch it"
                        )
                    connection.execute("CREATE TABLE salesprocess_schema (version integer)")
                    connection.execute("INSERT INTO salesprocess_schema VALUES (0)")
                    version = 0
                if version > SCHEMA_VERSION:
                    raise StorageError(
                        f"the database has salesprocess schema version {version}, written by "
                        f"a newer salesprocess; this version reads up to {SCHEMA_VERSION}: "
                        "upgrade salesprocess"
                    )
                for reached, step in enumerate(MIGRATIONS[version:], start=version + 1):
                    for statement in step:
                        connection.execute(statement)
                    if reached in FILLED_BY:
                        self._fill_read_model(connection)
                connection.execute("UPDATE salesprocess_schema SET version = %s", (SCHEMA_VERSION,))

    def _fill_read_model(self, connection: psycopg.Connection[Any]) -> None:
        """Fill the read model from every account's JSON (migration to schema 4).

        ``data`` keeps the whole account; reads take its purchases from it. An account
        whose JSON is not valid stops the migration (nothing is changed) with ``StorageError``.
        """
        after: str | None = None
        while True:
            rows = connection.execute(
                "SELECT id, data::text FROM salesprocess_accounts "  # noqa: S608 - our own names
                + ("" if after is None else "WHERE id > %s ")
                + "ORDER BY id LIMIT 1000",
                () if after is None else (after,),
            ).fetchall()
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
            with connection.cursor() as cursor:
                cursor.executemany(_FILL, progress)
                self._copy(cursor, purchases, history, tallies)

    @staticmethod
    def _copy(
        cursor: psycopg.Cursor[Any],
        purchases: list[tuple[object, ...]],
        history: list[tuple[object, ...]],
        tallies: list[tuple[object, ...]],
    ) -> None:
        """COPY new accounts' rows (tallies of new accounts: no conflict possible)."""
        for table, columns, rows in (
            ("salesprocess_stage_changes", _CHANGE_COLUMNS, history),
            ("salesprocess_purchases", _PURCHASE_COLUMNS, purchases),
            ("salesprocess_purchase_tallies", _TALLY_COLUMNS, tallies),
        ):
            if rows:
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)

    # --- conflicts --------------------------------------------------------------------------

    def _conflict(
        self, connection: psycopg.Connection[Any], accounts: list[Account], *, new: bool
    ) -> ConflictError:
        """Name the first uniqueness rule ``accounts`` (in order) break; nothing was written.

        Runs after the failed statement's savepoint or transaction was rolled back, so it sees
        the database as it was before the write.
        """
        stored_ids: set[str] = set()
        if new:
            rows = connection.execute(
                "SELECT id FROM salesprocess_accounts WHERE id = ANY(%s)",
                ([_key(a.id) for a in accounts],),
            ).fetchall()
            stored_ids = {row[0] for row in rows}
        owners: dict[str, dict[str, str]] = {}
        for kind, _shown in _UNIQUE:
            values = [_key(v) for a in accounts if (v := getattr(a, kind)) is not None]
            rows = connection.execute(
                f"SELECT {kind}, id FROM salesprocess_accounts "  # noqa: S608 - kind is ours
                f"WHERE {kind} = ANY(%s)",
                (values,),
            ).fetchall()
            owners[kind] = {row[0]: row[1] for row in rows}
        return conflict_named(accounts, new=new, stored_ids=stored_ids, owners=owners)

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
            raise StorageError(
                "the connection's transaction has failed: roll it back before using the repository"
            )
        return connection.transaction()

    def add(self, account: Account) -> Account:
        """Store a new account at version 1."""
        account = require_new(account)
        stored = unchecked_copy(account, version=1)
        plan = _plan(stored, 1)
        with self._using(f"adding account {account.id}") as connection:
            try:
                with self._writing(connection), connection.cursor() as cursor:
                    cursor.execute(_INSERT, _full_row(stored, 1, plan))
                    self._append(cursor, _key(account.id), plan)
            except pg_errors.UniqueViolation:
                raise self._conflict(connection, [account], new=True) from None
        self._written(stored, plan)
        return stored

    def add_many(self, accounts: Iterable[Account]) -> int:
        """Store many new accounts with ``COPY``, all or nothing; return how many."""
        batch: list[Account] = []
        purchases: list[tuple[object, ...]] = []
        history: list[tuple[object, ...]] = []
        tallies: list[tuple[object, ...]] = []
        with self._using("adding accounts") as connection:
            try:
                # Inside an open transaction the scope is a savepoint, so a conflict leaves
                # that transaction usable.
                with self._writing(connection), connection.cursor() as cursor:
                    with cursor.copy(f"COPY salesprocess_accounts ({_COLUMNS}) FROM STDIN") as copy:
                        for account in accounts:
                            batch.append(require_new(account))
                            plan = _plan(account, 1, stamp=0)
                            copy.write_row(_full_row(account, 1, plan))
                            history.extend(plan.history)
                            if plan.purchases:
                                purchases.extend(plan.purchases)
                                tallies.extend(_tally_rows(_key(account.id), plan))
                    self._copy(cursor, purchases, history, tallies)
            except pg_errors.UniqueViolation:
                raise self._conflict(connection, batch, new=True) from None
        return len(batch)

    def save(self, account: Account, *, expected_version: int) -> Account:
        """Replace the stored account if it is still at ``expected_version``.

        Only the purchases and stage changes the account gained are written, when it holds
        the very ones this repository last read or wrote; otherwise its rows are rewritten.
        """
        account = require_account(account)
        expected_version = require_version(expected_version)
        stored = unchecked_copy(account, version=expected_version + 1)
        key = _key(account.id)
        with self._using(f"saving account {account.id}") as connection:
            try:
                with self._writing(connection), connection.cursor() as cursor:
                    state = cursor.execute(_STATE, (key,)).fetchone()
                    if state is None:
                        raise NotFound(f"no account with id {account.id!r}")
                    if state[0] != expected_version:
                        raise stale_write(account.id, state[0], expected_version)
                    plan = _plan(
                        stored,
                        expected_version + 1,
                        state=state,
                        stored=self._memo.get(account.id, state[1]),
                        known_tallies=lambda currencies: self._tallies(cursor, key, currencies),
                    )
                    row = _full_row(stored, stored.version, plan)
                    cursor.execute(_UPDATE, (*row[1:], key, expected_version))
                    if plan.rewrite:
                        for statement in _DROP_ROWS:
                            cursor.execute(statement, {"id": key})
                    self._append(cursor, key, plan)
            except pg_errors.UniqueViolation:
                raise self._conflict(connection, [account], new=False) from None
        self._written(stored, plan)
        return stored

    @staticmethod
    def _append(cursor: psycopg.Cursor[Any], key: str, plan: Plan) -> None:
        """Write the rows ``plan`` adds: stage changes, purchases, and the touched tallies."""
        if plan.history:
            cursor.executemany(_INSERT_CHANGE, plan.history)
        if plan.purchases:
            cursor.executemany(_INSERT_PURCHASE, plan.purchases)
            cursor.executemany(_PUT_TALLY, _tally_rows(key, plan))

    @staticmethod
    def _tallies(
        cursor: psycopg.Cursor[Any], key: str, currencies: Iterable[str]
    ) -> dict[str, readmodel.Tally]:
        rows = cursor.execute(
            "SELECT currency, units, purchases, first_day, last_day, min_exponent FROM "
            "salesprocess_purchase_tallies WHERE account_id = %s AND currency = ANY(%s)",
            (key, list(currencies)),
        ).fetchall()
        return {row[0]: readmodel.Tally(*row[1:]) for row in rows}

    def _written(self, stored: Account, plan: Plan) -> None:
        """Remember what was written: the next read of it in this process decodes nothing."""
        with self._lock:
            self._memo.put(stored.id, plan.progress[-1], stored)
        remember(plan.data, plan.prefix)

    # --- reads ------------------------------------------------------------------------------

    def _accounts(
        self, rows: list[tuple[Any, ...]], what: str, *, remember: bool = False
    ) -> list[Account]:
        """Return the accounts of ``rows`` (as ``_READ`` selects them), rows joined back in."""

        def tails(ids: list[str]) -> readmodel.Tails:
            keys = [_key(account_id) for account_id in ids]
            purchases: dict[str, list[tuple[object, ...]]] = {}
            with self._using(what) as connection, self._scope(connection):
                for key, *row in connection.execute(TAIL_PURCHASES, (keys,)):
                    purchases.setdefault(_unkey(key), []).append(tuple(row))
                stamps = {
                    _unkey(key): stamp for key, stamp in connection.execute(TAIL_STAMPS, (keys,))
                }
            return purchases, stamps

        def reread(ids: list[str]) -> list[readmodel.AccountRow]:
            with self._using(what) as connection, self._scope(connection):
                found = connection.execute(
                    f"{_READ} WHERE id = ANY(%s)", ([_key(i) for i in ids],)
                ).fetchall()
            return [(_unkey(row[0]), *row[1:]) for row in found]

        accounts = [(_unkey(row[0]), *row[1:]) for row in rows]
        with self._lock:
            return readmodel.assemble(
                accounts,
                self._memo,
                tails,
                reread,
                DIALECT,
                remember=remember,
            )

    def _one(self, what: str, column: str, value: str) -> Account | None:
        if not isinstance(value, str):
            return None  # no account has a key that is not text (as in the other adapters)
        with self._using(what) as connection, self._scope(connection):
            row = connection.execute(
                f"{_READ} WHERE {column} = %s",
                (_key(value),),
            ).fetchone()
        if row is None:
            return None
        with self._lock:
            found = readmodel.quick(self._memo, (_unkey(row[0]), *row[1:]))
        return found if found is not None else self._accounts([row], what, remember=True)[0]

    def get(self, account_id: str) -> Account:
        """Return the stored account or raise ``NotFound``."""
        found = self._one(f"reading account {account_id}", "id", account_id)
        if found is None:
            raise NotFound(f"no account with id {account_id!r}")
        return found

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
        with self._using(what) as connection, self._scope(connection):
            row = connection.execute(query, (_key(value),)).fetchone()
        return None if row is None else _unkey(row[0])

    def with_stage(self, stage: Stage) -> Iterator[Account]:
        """Yield the accounts at ``stage`` (a ``Stage`` or its name), oldest first.

        They come by ``created_at``, then id. Rows are read in pages of 256 as the iterator
        advances (keyset pagination): the lock is not held between pages, and an account written
        meanwhile shows as its page found it.
        """
        name = str(Stage(stage))
        what = f"listing stage {name}"
        return accounts_in_pages(
            lambda after: self._stage_page(name, after),
            lambda page: self._accounts([row[1:] for row in page], what),
        )

    def _stage_page(self, stage: str, after: Key | None) -> list[tuple[Any, ...]]:
        with self._using(f"listing stage {stage}") as connection, self._scope(connection):
            if after is None:
                cursor = connection.execute(STAGE_FIRST, (stage, PAGE_SIZE))
            else:
                cursor = connection.execute(STAGE_NEXT, (stage, *after, PAGE_SIZE))
            return cursor.fetchall()

    def count_by_stage(self) -> Mapping[Stage, int]:
        """Return how many accounts are at each stage (one ``GROUP BY`` over the stage index)."""
        with self._using("counting by stage") as connection, self._scope(connection):
            rows = connection.execute(COUNT_BY_STAGE).fetchall()
        return {Stage(stage): int(count) for stage, count in rows}

    def page(self, *, after: str | None = None, limit: int = 1000) -> list[Account]:
        """Return up to ``limit`` accounts with ids greater than ``after``, by id."""
        require_page(after, limit)
        with self._using("paging accounts") as connection, self._scope(connection):
            if after is None:
                rows = connection.execute(f"{_READ} ORDER BY id LIMIT %s", (limit,)).fetchall()
            else:
                rows = connection.execute(
                    f"{_READ} WHERE id > %s ORDER BY id LIMIT %s", (_key(after), limit)
                ).fetchall()
        return self._accounts(rows, "paging accounts")

    # --- reports ----------------------------------------------------------------------------

    @contextmanager
    def _reader(self) -> Iterator[readmodel.Fetch]:
        """Yield ``fetch(sql, params)`` over one snapshot (REPEATABLE READ, or the app's)."""
        with self._using("answering a report") as connection:
            if connection.info.transaction_status == TransactionStatus.INERROR:
                raise StorageError(
                    "the connection's transaction has failed: roll it back before using the "
                    "repository"
                )
            idle = connection.info.transaction_status == TransactionStatus.IDLE
            with connection.transaction():
                if idle:
                    connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")

                def fetch(query: str, params: Iterable[object]) -> list[Any]:
                    return connection.execute(query, tuple(params)).fetchall()

                yield fetch

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

    # --- transactions -----------------------------------------------------------------------

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Run the block in one transaction (a savepoint when nested or inside the app's).

        Holds the repository's lock for the whole block.
        """
        with self._lock:
            connection = self._live()
            if connection.info.transaction_status == TransactionStatus.INERROR:
                raise StorageError(
                    "the connection's transaction has failed: roll it back before using the "
                    "repository"
                )
            transaction = connection.transaction()
            try:
                transaction.__enter__()
            except psycopg.Error as exc:
                raise StorageError(f"PostgreSQL: opening a transaction failed: {exc}") from exc
            self._depth += 1
            held = self._after_commit.mark()
            try:
                try:
                    yield
                except BaseException as exc:
                    self._after_commit.discard(held)
                    transaction.__exit__(type(exc), exc, exc.__traceback__)
                    raise
                try:
                    transaction.__exit__(None, None, None)
                except psycopg.Error as exc:
                    self._after_commit.discard(held)
                    raise StorageError(f"PostgreSQL: committing failed: {exc}") from exc
            finally:
                self._depth -= 1
            committed = self._after_commit.take() if self._depth == 0 else []
        call_all(committed)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` now, or when the outermost open ``atomic()`` block ends committed.

        See the module documentation for a transaction the app began itself.
        """
        self._after_commit.register(callback, self._lock, lambda: self._depth > 0)


def __getattr__(name: str) -> Any:
    # The async adapter lives in postgres_async, which imports this module; it is offered
    # here too, loaded on first use (an import at the top would be a cycle).
    if name == "AsyncPostgresRepository":
        from salesprocess.storage.postgres_async import AsyncPostgresRepository  # noqa: PLC0415

        return AsyncPostgresRepository
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
