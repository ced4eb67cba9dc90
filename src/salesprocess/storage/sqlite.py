"""SQLite storage: one file, many processes, no server (stdlib :mod:`sqlite3` only).

Why SQLite: an app that outgrows :class:`~salesprocess.storage.InMemoryRepository` usually
needs durability and several worker processes long before it needs a database server. SQLite in
WAL mode gives both: readers never block, one writer at a time, and a crash (even ``kill -9``)
leaves every transaction wholly there or wholly absent.

How it is laid out. Each account is one row of ``accounts``: the columns the queries need (``id``
primary key; ``email``, ``phone`` and ``referral_code`` unique, which is what makes a duplicate
lead, or two accounts behind one code, impossible across processes; ``stage`` indexed with
``created_at`` and ``id`` for funnel counts and oldest-first listing; ``created_at`` as integer
microseconds since 1970-01-01 UTC, so it sorts by instant whatever the offset; ``version``) plus
``data``, the whole account as JSON text (:mod:`salesprocess.storage.serialise`), the one source
of truth when reading. ``find_id``, the duplicate check, goes through a unique index and
never fetches the JSON.

Writes are optimistic: ``save`` is ``UPDATE ... WHERE id = ? AND version = ?``; no row changed
means someone else wrote first (``ConflictError``) or the account does not exist
(``NotFound``). Single-statement writes run in SQLite's autocommit mode; ``atomic()`` and
``add_many`` open ``BEGIN IMMEDIATE`` transactions (taking the write lock up front, so two
processes never deadlock upgrading a read lock) and nest with ``SAVEPOINT``. Lock waits are
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

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Final, Literal

from salesprocess.account import Account, unchecked_copy
from salesprocess.checks import require_number
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

__all__ = [
    "APPLICATION_ID",
    "MAX_TIMEOUT",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Row",
    "SQLiteRepository",
    "account_row",
]

#: ``PRAGMA application_id`` of a salesprocess file: "SALE" in ASCII.
APPLICATION_ID: Final = 0x53414C45

#: The forward migrations: step ``n`` takes a file from schema ``n`` to ``n + 1``.
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
        "CREATE INDEX accounts_stage_created ON accounts (stage, created_at, id)",
    ),
    # 2 -> 3: referral codes, unique like email and phone. Rows written before keep NULL, which
    # is right: their JSON has no referral code either.
    (
        "ALTER TABLE accounts ADD COLUMN referral_code TEXT",
        "CREATE UNIQUE INDEX accounts_referral_code ON accounts (referral_code)",
    ),
)

#: The schema version this module writes and reads.
SCHEMA_VERSION: Final = len(MIGRATIONS)


#: The longest ``timeout`` in seconds: ``busy_timeout`` is a C int of milliseconds.
MAX_TIMEOUT: Final = (2**31 - 1) // 1000

_SYNCHRONOUS: Final = ("FULL", "NORMAL", "OFF")

_INSERT: Final = (
    "INSERT INTO accounts (id, name, email, phone, stage, created_at, version, data, "
    "referral_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE: Final = (
    "UPDATE accounts SET name = ?, email = ?, phone = ?, stage = ?, created_at = ?, "
    "version = ?, data = ?, referral_code = ? WHERE id = ? AND version = ?"
)

_BY_ID: Final = "SELECT data FROM accounts WHERE id = ?"
_BY_EMAIL: Final = "SELECT data FROM accounts WHERE email = ?"
_BY_PHONE: Final = "SELECT data FROM accounts WHERE phone = ?"
_BY_REFERRAL_CODE: Final = "SELECT data FROM accounts WHERE referral_code = ?"
# find_id: the id alone, through the unique index (no JSON fetched, nothing decoded).
_ID_BY: Final = {
    "email": ("SELECT id FROM accounts WHERE email = ?", "finding the id by email"),
    "phone": ("SELECT id FROM accounts WHERE phone = ?", "finding the id by phone"),
    "referral_code": (
        "SELECT id FROM accounts WHERE referral_code = ?",
        "finding the id by referral code",
    ),
}

#: One ``accounts`` row: id, name, email, phone, stage, created_at, version, data,
#: referral_code (last, where ``ALTER TABLE`` put it when schema 3 added it).
Row = tuple[str, str, str | None, str | None, str, int, int, str, str | None]


def account_row(account: Account, version: int | None = None) -> Row:
    """Return the ``accounts`` row that stores ``account`` at ``version`` (default: its own)."""
    if version is None:
        version = account.version
    return (
        account.id,
        account.name,
        account.email,
        account.phone,
        account.stage,
        created_key(account.created_at),
        version,
        dumps(account, version=version),
        account.referral_code,
    )


class SQLiteRepository:
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
        self._lock = threading.RLock()
        self._depth = 0
        self._after_commit = AfterCommit()
        require_number(timeout, "timeout", low=0, high=MAX_TIMEOUT, kinds=(int, float))
        if not isinstance(synchronous, str) or synchronous not in _SYNCHRONOUS:
            raise ValidationError(
                f"synchronous must be FULL, NORMAL or OFF, not {synchronous!r}",
                field="synchronous",
            )
        try:
            connection = sqlite3.connect(
                self._path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite database {self._path}: {exc}") from None
        self._connection = connection
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            connection.execute("PRAGMA foreign_keys = ON")
            if not self._memory:
                connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(f"PRAGMA synchronous = {synchronous}")
            self._migrate(connection)
        except BaseException as exc:
            connection.close()
            self._connection = None
            # The driver's own message is in ours; its traceback would only distract.
            if isinstance(exc, sqlite3.OperationalError):  # locked, unreadable, disk I/O ...
                raise StorageError(f"cannot open SQLite database {self._path}: {exc}") from None
            if isinstance(exc, sqlite3.DatabaseError):  # "file is not a database", malformed
                raise StorageError(
                    f"{self._path} is not a salesprocess database (or is damaged): {exc}"
                ) from None
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"cannot open SQLite database {self._path}: {exc}") from None
            raise

    @property
    def path(self) -> str:
        """The database file (``":memory:"`` for a private in-memory database)."""
        return self._path

    def __repr__(self) -> str:
        state = "closed" if self._connection is None else "open"
        return f"SQLiteRepository({self._path!r}, {state})"

    # --- opening ----------------------------------------------------------------------------

    def _migrate(self, connection: sqlite3.Connection) -> None:
        if self._schema(connection) == SCHEMA_VERSION:
            return
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = self._schema(connection)
            if version == 0:
                tables = connection.execute(
                    "SELECT group_concat(name, ', ') FROM sqlite_master "
                    "WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                ).fetchone()[0]
                if tables:
                    raise StorageError(
                        f"{self._path} is an SQLite database of another application "
                        f"(tables: {tables}), not a salesprocess database"
                    )
                connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            for step in MIGRATIONS[version:]:
                for statement in step:
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _schema(self, connection: sqlite3.Connection) -> int:
        application = connection.execute("PRAGMA application_id").fetchone()[0]
        version: int = connection.execute("PRAGMA user_version").fetchone()[0]
        if application != APPLICATION_ID and (application != 0 or version != 0):
            raise StorageError(
                f"{self._path} is an SQLite database of another application "
                f"(application_id {application:#x}, user_version {version}), "
                "not a salesprocess database"
            )
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self._path} has schema version {version}, written by a newer salesprocess; "
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
                raise StorageError(f"SQLite repository {self._path} is closed")
            if self._depth and not connection.in_transaction:
                raise StorageError(
                    f"SQLite {self._path}: {what} failed: the transaction of this atomic() "
                    "block was rolled back after an earlier error; nothing of it was stored"
                )
            try:
                yield connection
            except sqlite3.Error as exc:
                raise StorageError(f"SQLite {self._path}: {what} failed: {exc}") from exc
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
                    raise StorageError(f"closing {self._path} failed: {exc}") from exc

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
        return StorageError(f"SQLite {self._path}: storing account {account.id} failed: {exc}")

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
        row = account_row(stored)
        with self._using(f"adding account {account.id}") as connection:
            try:
                connection.execute(_INSERT, row)
            except sqlite3.IntegrityError as exc:
                raise self._conflict(connection, stored, exc, new=True) from None
        remember(row[7], stored)
        return stored

    def add_many(self, accounts: Iterable[Account]) -> int:
        """Store many new accounts in one transaction, all or nothing; return how many."""
        count = 0
        current: Account | None = None

        def rows() -> Iterator[Row]:
            nonlocal count, current
            for account in accounts:
                if type(account) is not Account or account.version != 0:
                    require_new(account)
                current = account
                count += 1
                yield account_row(account, 1)

        with self.atomic(), self._using("adding accounts") as connection:
            try:
                connection.executemany(_INSERT, rows())
            except sqlite3.IntegrityError as exc:
                if current is None:  # pragma: no cover - no row, no constraint to break
                    raise
                raise self._conflict(connection, current, exc, new=True) from None
        return count

    def save(self, account: Account, *, expected_version: int) -> Account:
        """Replace the stored account if it is still at ``expected_version``."""
        account = require_account(account)
        expected_version = require_version(expected_version)
        stored = unchecked_copy(account, version=expected_version + 1)
        row = account_row(stored)
        with self._using(f"saving account {account.id}") as connection:
            try:
                changed = connection.execute(
                    _UPDATE, (*row[1:], account.id, expected_version)
                ).rowcount
            except sqlite3.IntegrityError as exc:
                raise self._conflict(connection, stored, exc, new=False) from None
            if changed == 1:
                remember(row[7], stored)
                return stored
            current = connection.execute(
                "SELECT version FROM accounts WHERE id = ?", (account.id,)
            ).fetchone()
        if current is None:
            raise NotFound(f"no account with id {account.id!r}")
        raise stale_write(account.id, current[0], expected_version)

    # --- reads ------------------------------------------------------------------------------

    def _value(self, query: str, key: str, what: str) -> str | None:
        """Return the one column of the one row ``query`` finds for ``key`` (the hot read path).

        The same as ``with self._using(what)``, spelled out: a generator-based context manager
        costs a tenth of a look-up. A key that is not text finds nothing: SQLite would compare
        ``5`` with the text ``"5"`` and find it, where the other adapters find nothing.
        """
        if not isinstance(key, str):
            return None
        with self._lock:
            connection = self._connection
            if connection is None:
                raise StorageError(f"SQLite repository {self._path} is closed")
            try:
                row = connection.execute(query, (key,)).fetchone()
            except sqlite3.Error as exc:
                raise StorageError(f"SQLite {self._path}: {what} failed: {exc}") from exc
            except UnicodeEncodeError as exc:
                raise ValidationError(f"{what}: {key!r} is not valid Unicode") from exc
            except OverflowError as exc:  # pragma: no cover - keys are text
                raise ValidationError(f"{what}: {key!r} is too large for SQLite") from exc
        return None if row is None else str(row[0])

    def get(self, account_id: str) -> Account:
        """Return the stored account or raise ``NotFound``."""
        data = self._value(_BY_ID, account_id, f"reading account {account_id}")
        if data is None:
            raise NotFound(f"no account with id {account_id!r}")
        return cached_loads(data)

    def find_by_email(self, email: str) -> Account | None:
        """Return the account with this normalised email, if any."""
        data = self._value(_BY_EMAIL, email, "finding by email")
        return None if data is None else cached_loads(data)

    def find_by_phone(self, phone: str) -> Account | None:
        """Return the account with this normalised phone number, if any."""
        data = self._value(_BY_PHONE, phone, "finding by phone")
        return None if data is None else cached_loads(data)

    def find_by_referral_code(self, code: str) -> Account | None:
        """Return the account whose (already normalised) referral code is ``code``, if any."""
        data = self._value(_BY_REFERRAL_CODE, code, "finding by referral code")
        return None if data is None else cached_loads(data)

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
        return self._value(query, value, what)

    def with_stage(self, stage: Stage) -> Iterator[Account]:
        """Yield the accounts at ``stage`` (a ``Stage`` or its name), oldest first.

        They come by ``created_at``, then id. Rows are read in pages of 256 as the iterator
        advances, so listing a large stage holds neither the lock nor much memory between pages;
        an account written meanwhile shows as its page found it.
        """
        name = str(Stage(stage))
        return accounts_in_pages(lambda after: self._stage_page(name, after))

    def _stage_page(self, stage: str, after: Key | None) -> list[PageRow]:
        with self._using(f"listing stage {stage}") as connection:
            if after is None:
                cursor = connection.execute(
                    "SELECT created_at, id, data FROM accounts WHERE stage = ? "
                    "ORDER BY created_at, id LIMIT ?",
                    (stage, PAGE_SIZE),
                )
            else:
                cursor = connection.execute(
                    "SELECT created_at, id, data FROM accounts "
                    "WHERE stage = ? AND (created_at, id) > (?, ?) "
                    "ORDER BY created_at, id LIMIT ?",
                    (stage, *after, PAGE_SIZE),
                )
            return cursor.fetchall()

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
                rows = connection.execute(
                    "SELECT data FROM accounts ORDER BY id LIMIT ?", (limit,)
                ).fetchall()
            else:
                rows = connection.execute(
                    "SELECT data FROM accounts WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
                ).fetchall()
        return [cached_loads(data) for (data,) in rows]

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
                raise
            try:
                with self._using("committing") as connection:
                    connection.execute("COMMIT" if depth == 0 else f"RELEASE {savepoint}")
            except BaseException as exc:
                self._depth = depth
                self._undo(depth, savepoint, exc)
                self._after_commit.discard(held)
                raise
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
            cause.add_note(f"SQLite {self._path}: rolling back failed too: {exc}")
            with suppress(sqlite3.Error):
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
