r"""PostgreSQL storage with psycopg 3: for many app servers sharing one database.

Why PostgreSQL next to SQLite: once several machines write, or the app already keeps its data
in PostgreSQL and wants accounts in the same transactions as its own tables. Install the extra:
``pip install 'salesprocess[postgres]'``.

The layout mirrors :mod:`salesprocess.storage.sqlite`: table ``salesprocess_accounts`` with
``id`` (primary key), ``email``, ``phone`` and ``referral_code`` (unique), ``stage`` (indexed with
``created_at`` and ``id``), ``created_at`` (bigint microseconds since 1970-01-01 UTC),
``version``, and ``data``: the whole account as ``json`` (the type that keeps the text exactly
as written, unlike ``jsonb``), read back through :mod:`salesprocess.storage.serialise`. Key
columns use the ``"C"`` collation so that ``page()`` orders ids by code point, as Python does.
PostgreSQL text cannot hold NUL characters, so key columns store ``\x00`` and ``\x01`` escaped
(an order-keeping escape) and the informational ``name`` column stores ``\x00`` as U+FFFD;
``data`` holds every value exactly. The schema version lives in ``salesprocess_schema``;
opening a repository runs the missing forward migrations under an advisory lock and refuses a
database written by a newer salesprocess. Tables are created in the connection's current
schema (``search_path``), so one database can hold several independent sets.

Transactions, and joining the app's. ``PostgresRepository`` takes a DSN (it then opens, owns
and closes an autocommit connection) or an open :class:`psycopg.Connection` that the app owns.
The rule for a connection the app owns: the repository never commits, rolls back or closes a
transaction or connection it did not begin.

- If the connection has a transaction open when a method runs, the method's writes join that
  transaction inside a savepoint: a failed write (a conflict, say) is undone without aborting
  the app's transaction, and the rest becomes durable only when the app commits.
- If no transaction is open, each method runs in its own short transaction and commits it.
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
from typing import Any, Final

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.pq import TransactionStatus
except ImportError as error:  # pragma: no cover - exercised where psycopg is missing
    raise ImportError(
        "salesprocess.storage.postgres needs psycopg 3: pip install 'salesprocess[postgres]'"
    ) from error

from salesprocess.account import Account, unchecked_copy
from salesprocess.errors import ConflictError, NotFound, StorageError, ValidationError
from salesprocess.stage import Stage
from salesprocess.storage.paging import PAGE_SIZE, Key, PageRow, accounts_in_pages
from salesprocess.storage.protocol import (
    AfterCommit,
    call_all,
    require_account,
    require_new,
    require_one_key,
    require_page,
    require_version,
    stale_write,
)
from salesprocess.storage.serialise import cached_loads, created_key, dumps, remember

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresRepository"]

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
)

#: The schema version this module writes and reads.
SCHEMA_VERSION: Final = len(MIGRATIONS)

_LOCK_KEY: Final = 0x53414C45  # pg_advisory_xact_lock key for migrations: "SALE"
_COLUMNS: Final = "id, name, email, phone, stage, created_at, version, data, referral_code"
_INSERT: Final = (
    "INSERT INTO salesprocess_accounts (id, name, email, phone, stage, created_at, version, "
    "data, referral_code) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_UPDATE: Final = (
    "UPDATE salesprocess_accounts SET name = %s, email = %s, phone = %s, stage = %s, "
    "created_at = %s, version = %s, data = %s, referral_code = %s WHERE id = %s AND version = %s"
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


def _row(account: Account, version: int) -> _Row:
    return (
        _key(account.id),
        account.name.replace("\x00", "\ufffd"),
        _optional_key(account.email),
        _optional_key(account.phone),
        account.stage,
        created_key(account.created_at),
        version,
        dumps(account, version=version),
        _optional_key(account.referral_code),
    )


class PostgresRepository:
    """Accounts in PostgreSQL, through a DSN or an app-owned ``psycopg.Connection``.

    See the module documentation for how it joins an app's transactions.
    """

    def __init__(self, dsn_or_connection: str | psycopg.Connection[Any]) -> None:
        self._lock = threading.RLock()
        self._depth = 0  # atomic() blocks open
        self._after_commit = AfterCommit()
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
                for step in MIGRATIONS[version:]:
                    for statement in step:
                        connection.execute(statement)
                connection.execute("UPDATE salesprocess_schema SET version = %s", (SCHEMA_VERSION,))

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
                    return ConflictError(
                        f"{shown} {value} already belongs to account {_unkey(owner)}"
                    )
                owners[kind][_key(value)] = key
        return ConflictError(
            "a concurrent write took an id, email, phone or referral code of these accounts"
        )

    # --- writes -----------------------------------------------------------------------------
    #
    # add and save prime the decode cache with what they wrote (serialise.remember): ``data``
    # is ``json``, which keeps the text exactly, so the next get in this process finds the
    # account without decoding. They do it once the statement has succeeded; the transaction
    # around it (atomic(), or the app's) may still roll back, and that is harmless: the cache
    # maps the text to the (equal) account that text decodes to, so the pair is only ever used
    # when some row holds that very text again, and is right then too. add_many does not
    # prime: a bulk load would flush the whole cache with accounts rarely read right away.

    def add(self, account: Account) -> Account:
        """Store a new account at version 1."""
        account = require_new(account)
        row = _row(account, 1)
        with self._using(f"adding account {account.id}") as connection:
            try:
                with self._scope(connection):
                    connection.execute(_INSERT, row)
            except pg_errors.UniqueViolation:
                raise self._conflict(connection, [account], new=True) from None
        stored = unchecked_copy(account, version=1)
        remember(row[7], stored)
        return stored

    def add_many(self, accounts: Iterable[Account]) -> int:
        """Store many new accounts with one ``COPY``, all or nothing; return how many."""
        batch: list[Account] = []
        with self._using("adding accounts") as connection:
            try:
                # One COPY statement is all or nothing by itself; inside an open transaction
                # the scope is a savepoint, so a conflict leaves that transaction usable.
                with (
                    self._scope(connection),
                    connection.cursor() as cursor,
                    cursor.copy(f"COPY salesprocess_accounts ({_COLUMNS}) FROM STDIN") as copy,
                ):
                    for account in accounts:
                        batch.append(require_new(account))
                        copy.write_row(_row(account, 1))
            except pg_errors.UniqueViolation:
                raise self._conflict(connection, batch, new=True) from None
        return len(batch)

    def save(self, account: Account, *, expected_version: int) -> Account:
        """Replace the stored account if it is still at ``expected_version``."""
        account = require_account(account)
        expected_version = require_version(expected_version)
        row = _row(account, expected_version + 1)
        with self._using(f"saving account {account.id}") as connection:
            try:
                with self._scope(connection):
                    changed = connection.execute(
                        _UPDATE, (*row[1:], row[0], expected_version)
                    ).rowcount
                    current = None
                    if changed != 1:
                        current = connection.execute(
                            "SELECT version FROM salesprocess_accounts WHERE id = %s", (row[0],)
                        ).fetchone()
            except pg_errors.UniqueViolation:
                raise self._conflict(connection, [account], new=False) from None
        if changed == 1:
            stored = unchecked_copy(account, version=expected_version + 1)
            remember(row[7], stored)
            return stored
        if current is None:
            raise NotFound(f"no account with id {account.id!r}")
        raise stale_write(account.id, current[0], expected_version)

    # --- reads ------------------------------------------------------------------------------

    def _one(self, what: str, query: str, value: str) -> Account | None:
        if not isinstance(value, str):
            return None  # no account has a key that is not text (as in the other adapters)
        with self._using(what) as connection, self._scope(connection):
            row = connection.execute(query, (_key(value),)).fetchone()
        return None if row is None else cached_loads(row[0])

    def get(self, account_id: str) -> Account:
        """Return the stored account or raise ``NotFound``."""
        found = self._one(
            f"reading account {account_id}",
            "SELECT data::text FROM salesprocess_accounts WHERE id = %s",
            account_id,
        )
        if found is None:
            raise NotFound(f"no account with id {account_id!r}")
        return found

    def find_by_email(self, email: str) -> Account | None:
        """Return the account with this normalised email, if any."""
        return self._one(
            "finding by email",
            "SELECT data::text FROM salesprocess_accounts WHERE email = %s",
            email,
        )

    def find_by_phone(self, phone: str) -> Account | None:
        """Return the account with this normalised phone number, if any."""
        return self._one(
            "finding by phone",
            "SELECT data::text FROM salesprocess_accounts WHERE phone = %s",
            phone,
        )

    def find_by_referral_code(self, code: str) -> Account | None:
        """Return the account whose (already normalised) referral code is ``code``, if any."""
        return self._one(
            "finding by referral code",
            "SELECT data::text FROM salesprocess_accounts WHERE referral_code = %s",
            code,
        )

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
        return accounts_in_pages(lambda after: self._stage_page(name, after))

    def _stage_page(self, stage: str, after: Key | None) -> list[PageRow]:
        with self._using(f"listing stage {stage}") as connection, self._scope(connection):
            if after is None:
                cursor = connection.execute(
                    "SELECT created_at, id, data::text FROM salesprocess_accounts "
                    "WHERE stage = %s ORDER BY created_at, id LIMIT %s",
                    (stage, PAGE_SIZE),
                )
            else:
                cursor = connection.execute(
                    "SELECT created_at, id, data::text FROM salesprocess_accounts "
                    "WHERE stage = %s AND (created_at, id) > (%s, %s) "
                    "ORDER BY created_at, id LIMIT %s",
                    (stage, *after, PAGE_SIZE),
                )
            return cursor.fetchall()

    def count_by_stage(self) -> Mapping[Stage, int]:
        """Return how many accounts are at each stage (one ``GROUP BY`` over the stage index)."""
        with self._using("counting by stage") as connection, self._scope(connection):
            rows = connection.execute(
                "SELECT stage, count(*) FROM salesprocess_accounts GROUP BY stage"
            ).fetchall()
        return {Stage(stage): int(count) for stage, count in rows}

    def page(self, *, after: str | None = None, limit: int = 1000) -> list[Account]:
        """Return up to ``limit`` accounts with ids greater than ``after``, by id."""
        require_page(after, limit)
        with self._using("paging accounts") as connection, self._scope(connection):
            if after is None:
                rows = connection.execute(
                    "SELECT data::text FROM salesprocess_accounts ORDER BY id LIMIT %s",
                    (limit,),
                ).fetchall()
            else:
                rows = connection.execute(
                    "SELECT data::text FROM salesprocess_accounts WHERE id > %s "
                    "ORDER BY id LIMIT %s",
                    (_key(after), limit),
                ).fetchall()
        return [cached_loads(data) for (data,) in rows]

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
