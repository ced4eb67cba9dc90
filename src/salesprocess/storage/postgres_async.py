"""PostgreSQL storage for async apps: psycopg's ``AsyncConnection`` or ``AsyncConnectionPool``.

The tables, SQL, row layout and read model are :mod:`salesprocess.storage.postgres`'s (imported
from it, not copied): a database written by one adapter is read by the other.
``AsyncPostgresRepository`` takes

- a :class:`psycopg_pool.AsyncConnectionPool` (``pip install 'salesprocess[postgres]'``): each
  call borrows a connection for its statements and gives it back, so many tasks run at once;
  a connection that broke is dropped by the pool and the next call gets a fresh one. Make the
  pool with ``kwargs={"autocommit": True}``: a read is then one round trip (otherwise the pool
  wraps it in ``BEGIN`` ... ``COMMIT``);
- or one :class:`psycopg.AsyncConnection`, shared by every task in turn.

The schema is created or migrated by an explicit ``await repository.migrate()`` (once, at
deployment, or at the app's start); the first call of each repository object checks, once, that
the database has the schema this version reads, and raises ``StorageError`` if not.

Round trips: a read is one statement (an account with purchase rows this process has not
read yet: one more, pipelined); a save is two round trips, pipelined: ``BEGIN``, the stored
row's state ``FOR UPDATE`` and its purchase tallies; then the ``UPDATE``, the rows it appends
and ``COMMIT``. A new account is one. So a command (load, then save) is three.

Transactions: ``async with repository.atomic():`` holds one connection for the task that
opened it (a pooled one, or the shared one, which other tasks then wait for) in one
transaction; nested blocks are savepoints. Inside a block the task's calls read and write in
its transaction; other tasks do not see its writes before it commits. ``after_commit``
callbacks wait for the task's outermost block to commit and are dropped if it rolls back.

Every driver error reaches the caller through one choke point: a unique violation as
``ConflictError``, anything else (the pool exhausted or closed, the connection dropped, the
server gone) as ``StorageError``; a transaction is then whole or absent.

The reports (``revenue``, ``funnel``, ``lead_flow``, ``time_in_stage``) are answered in SQL
by the sync adapter's report code (:class:`~salesprocess.storage.sqlite.SQLReports`), run in a
worker thread whose queries are awaited on the event loop in one ``REPEATABLE READ`` snapshot.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import (
    AbstractAsyncContextManager,
    asynccontextmanager,
    contextmanager,
    nullcontext,
    suppress,
)
from datetime import datetime
from typing import Any, TypeVar

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.pq import TransactionStatus
except ImportError as error:  # pragma: no cover - exercised where psycopg is missing
    raise ImportError(
        "salesprocess.storage.postgres_async needs psycopg 3: pip install 'salesprocess[postgres]'"
    ) from error

try:
    from psycopg_pool import AsyncConnectionPool
except ImportError:  # pragma: no cover - a single AsyncConnection still works
    AsyncConnectionPool = None  # type: ignore[assignment,misc]

from salesprocess.account import Account, Channel, unchecked_copy
from salesprocess.errors import ConflictError, NotFound, StorageError, ValidationError
from salesprocess.reports import FlowPeriod, Funnel, RevenueReport
from salesprocess.reports.flow import FlowPeriodName
from salesprocess.reports.stages import StageTime
from salesprocess.stage import Stage
from salesprocess.storage import readmodel
from salesprocess.storage.paging import PAGE_SIZE, Key
from salesprocess.storage.postgres import (
    _CHANGE_COLUMNS,
    _COLUMNS,
    _DROP_ROWS,
    _FILL,
    _ID_BY,
    _INSERT,
    _INSERT_CHANGE,
    _INSERT_PURCHASE,
    _LOCK_KEY,
    _PURCHASE_COLUMNS,
    _PUT_TALLY,
    _READ,
    _STATE,
    _TALLY_COLUMNS,
    _UNIQUE,
    _UPDATE,
    COUNT_BY_STAGE,
    DIALECT,
    FILLED_BY,
    MIGRATIONS,
    SCHEMA_VERSION,
    STAGE_FIRST,
    STAGE_NEXT,
    TABLES,
    TAIL_PURCHASES,
    TAIL_STAMPS,
    _full_row,
    _key,
    _plan,
    _tally_rows,
    _unkey,
    conflict_named,
)
from salesprocess.storage.protocol import (
    AfterCommit,
    call_all,
    require_account,
    require_callback,
    require_new,
    require_one_key,
    require_page,
    require_version,
    stale_write,
)
from salesprocess.storage.readmodel import Plan
from salesprocess.storage.serialise import loads, remember
from salesprocess.storage.sqlite import SQLReports

__all__ = ["AsyncPostgresRepository"]

_T = TypeVar("_T")
_Connection = psycopg.AsyncConnection[Any]
_Cursor = psycopg.AsyncCursor[Any]

#: Every stored tally of one account (a save prefetches them with the row it locks).
_ALL_TALLIES = (
    "SELECT currency, units, purchases, first_day, last_day, min_exponent "
    "FROM salesprocess_purchase_tallies WHERE account_id = %s"
)
_FAILED = "the connection's transaction has failed: roll it back before using the repository"
_names = itertools.count()


class _Block:
    """The ``atomic()`` block a task has open: its connection and what waits for its commit."""

    __slots__ = ("after_commit", "connection")

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection
        self.after_commit = AfterCommit()


class AsyncPostgresRepository:
    """Accounts in PostgreSQL for async code, through an ``AsyncConnectionPool`` or connection.

    See the module documentation for connections, transactions and round trips.
    """

    def __init__(self, pool_or_connection: Any) -> None:
        self._pool: Any = None
        self._connection: _Connection | None = None
        if AsyncConnectionPool is not None and isinstance(pool_or_connection, AsyncConnectionPool):
            self._pool = pool_or_connection
        elif isinstance(pool_or_connection, psycopg.AsyncConnection):
            self._connection = pool_or_connection
        else:
            raise ValidationError(
                "AsyncPostgresRepository takes a psycopg_pool.AsyncConnectionPool or a "
                f"psycopg.AsyncConnection, not {type(pool_or_connection).__name__}",
                field="pool_or_connection",
            )
        self._lock = asyncio.Lock()  # the shared connection's turn (no pool)
        self._block: contextvars.ContextVar[_Block | None] = contextvars.ContextVar(
            f"salesprocess_pg_block_{next(_names)}", default=None
        )
        self._checked = False
        self._memo = readmodel.Memo()

    def __repr__(self) -> str:
        over = "a pool" if self._pool is not None else "one connection"
        return f"<AsyncPostgresRepository over {over}>"

    # --- plumbing: the one choke point -------------------------------------------------------

    @asynccontextmanager
    async def _using(self, what: str, *, check: bool = True) -> AsyncIterator[_Connection]:
        """Yield the task's connection; translate every driver error (the choke point)."""
        try:
            async with self._connected() as connection:
                if check and not self._checked:
                    await self._check(connection)
                yield connection
        except pg_errors.UniqueViolation as exc:
            raise ConflictError(f"{what}: {exc.diag.message_detail or exc}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL: {what} failed: {exc}") from exc
        except UnicodeEncodeError as exc:
            raise ValidationError(
                f"{what}: text that is not valid Unicode cannot be stored ({exc.reason})"
            ) from exc

    @asynccontextmanager
    async def _connected(self) -> AsyncIterator[_Connection]:
        block = self._block.get()
        if block is not None:  # inside this task's atomic() block: its transaction
            if block.connection.info.transaction_status == TransactionStatus.INERROR:
                raise StorageError(_FAILED)
            yield block.connection
        elif self._pool is not None:
            async with self._pool.connection() as connection:
                yield connection
        else:
            async with self._lock:
                connection = self._connection
                assert connection is not None
                if connection.closed:
                    raise StorageError("PostgreSQL repository's connection is closed")
                if connection.info.transaction_status == TransactionStatus.INERROR:
                    raise StorageError(_FAILED)
                yield connection

    async def _check(self, connection: _Connection) -> None:
        """Check, once per repository, that the database has the schema this version reads."""
        version = await _version(connection)
        if version != SCHEMA_VERSION:
            if version is not None and version > SCHEMA_VERSION:
                raise StorageError(
                    f"the database has salesprocess schema version {version}, written by a "
                    f"newer salesprocess; this version reads up to {SCHEMA_VERSION}: upgrade "
                    "salesprocess"
                )
            raise StorageError(
                f"the database has salesprocess schema version {version}, this version needs "
                f"{SCHEMA_VERSION}: run `await repository.migrate()` first"
            )
        self._checked = True

    @staticmethod
    def _writing(connection: _Connection) -> AbstractAsyncContextManager[Any]:
        """Return the transaction a write runs in: its own, or a savepoint in the open one."""
        status = connection.info.transaction_status
        if status == TransactionStatus.INERROR:
            raise StorageError(_FAILED)
        if status == TransactionStatus.IDLE and connection.autocommit:
            return _pipelined(connection)
        return _in_pipeline(connection)

    # --- schema -----------------------------------------------------------------------------

    async def migrate(self) -> int:
        """Create the tables, or run the missing forward migrations; return the schema version.

        Safe to run from several app servers at once (an advisory lock orders them). Refuses a
        database written by a newer salesprocess, or a ``salesprocess_accounts`` table that is
        not ours, with ``StorageError``.
        """
        async with self._using("preparing the schema", check=False) as connection:
            version = await _version(connection)
            if version != SCHEMA_VERSION:
                async with connection.transaction():
                    await self._migrate(connection)
        self._checked = True
        return SCHEMA_VERSION

    async def _migrate(self, connection: _Connection) -> None:
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        version = await _version(connection)
        if version is None:
            cursor = await connection.execute(
                "SELECT to_regclass('salesprocess_accounts') IS NOT NULL"
            )
            taken = await cursor.fetchone()
            if taken and taken[0]:
                raise StorageError(
                    "table salesprocess_accounts exists but has no salesprocess schema "
                    "version: it is not ours, refusing to touch it"
                )
            await connection.execute("CREATE TABLE salesprocess_schema (version integer)")
            await connection.execute("INSERT INTO salesprocess_schema VALUES (0)")
            version = 0
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"the database has salesprocess schema version {version}, written by a newer "
                f"salesprocess; this version reads up to {SCHEMA_VERSION}: upgrade salesprocess"
            )
        for reached, step in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in step:
                await connection.execute(statement)
            if reached in FILLED_BY:
                await self._fill_read_model(connection)
        await connection.execute("UPDATE salesprocess_schema SET version = %s", (SCHEMA_VERSION,))

    async def _fill_read_model(self, connection: _Connection) -> None:
        """Fill the read model from every account's JSON (as the sync adapter's migration)."""
        after: str | None = None
        while True:
            cursor = await connection.execute(
                "SELECT id, data::text FROM salesprocess_accounts "  # noqa: S608 - our own names
                + ("" if after is None else "WHERE id > %s ")
                + "ORDER BY id LIMIT 1000",
                () if after is None else (after,),
            )
            rows = await cursor.fetchall()
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
            async with connection.cursor() as writer:
                await writer.executemany(_FILL, progress)
                await _copy(writer, purchases, history, tallies)

    # --- writes -----------------------------------------------------------------------------

    async def add(self, account: Account) -> Account:
        """Store a new account at version 1 (one round trip, pipelined)."""
        account = require_new(account)
        stored = unchecked_copy(account, version=1)
        plan = _plan(stored, 1)
        async with self._using(f"adding account {account.id}") as connection:
            try:
                async with self._writing(connection), connection.cursor() as cursor:
                    await cursor.execute(_INSERT, _full_row(stored, 1, plan), prepare=False)
                    await _append(cursor, _key(account.id), plan)
            except pg_errors.UniqueViolation:
                raise await self._conflict(connection, [account], new=True) from None
        self._written(stored, plan)
        return stored

    async def add_many(self, accounts: Iterable[Account]) -> int:
        """Store many new accounts with ``COPY``, all or nothing; return how many."""
        batch: list[Account] = []
        purchases: list[tuple[object, ...]] = []
        history: list[tuple[object, ...]] = []
        tallies: list[tuple[object, ...]] = []
        async with self._using("adding accounts") as connection:
            if connection.info.transaction_status == TransactionStatus.INERROR:
                raise StorageError(_FAILED)
            try:
                # COPY cannot be pipelined; a bulk load's round trips do not matter
                async with connection.transaction(), connection.cursor() as cursor:
                    async with cursor.copy(
                        f"COPY salesprocess_accounts ({_COLUMNS}) FROM STDIN"
                    ) as copy:
                        for account in accounts:
                            batch.append(require_new(account))
                            plan = _plan(account, 1, stamp=0)
                            await copy.write_row(_full_row(account, 1, plan))
                            history.extend(plan.history)
                            if plan.purchases:
                                purchases.extend(plan.purchases)
                                tallies.extend(_tally_rows(_key(account.id), plan))
                    await _copy(cursor, purchases, history, tallies)
            except pg_errors.UniqueViolation:
                raise await self._conflict(connection, batch, new=True) from None
        return len(batch)

    async def save(self, account: Account, *, expected_version: int) -> Account:
        """Replace the stored account if it is still at ``expected_version``.

        Two round trips (pipelined): the row's state locked ``FOR UPDATE`` with its tallies,
        then the ``UPDATE``, the rows it appends and the commit.
        """
        account = require_account(account)
        expected_version = require_version(expected_version)
        stored = unchecked_copy(account, version=expected_version + 1)
        key = _key(account.id)
        async with self._using(f"saving account {account.id}") as connection:
            try:
                async with (
                    self._writing(connection),
                    connection.cursor() as cursor,
                    connection.cursor() as tally_cursor,
                ):
                    await cursor.execute(_STATE, (key,), prepare=False)
                    await tally_cursor.execute(_ALL_TALLIES, (key,), prepare=False)
                    state = await cursor.fetchone()
                    known = {
                        row[0]: readmodel.Tally(*row[1:]) for row in await tally_cursor.fetchall()
                    }
                    if state is None:
                        raise NotFound(f"no account with id {account.id!r}")
                    if state[0] != expected_version:
                        raise stale_write(account.id, state[0], expected_version)
                    plan = _plan(
                        stored,
                        expected_version + 1,
                        state=state,
                        stored=self._memo.get(account.id, state[1]),
                        known_tallies=lambda wanted: {c: known[c] for c in wanted if c in known},
                    )
                    row = _full_row(stored, stored.version, plan)
                    await cursor.execute(_UPDATE, (*row[1:], key, expected_version), prepare=False)
                    if plan.rewrite:
                        for statement in _DROP_ROWS:
                            await cursor.execute(statement, {"id": key}, prepare=False)
                    await _append(cursor, key, plan)
            except pg_errors.UniqueViolation:
                raise await self._conflict(connection, [account], new=False) from None
        self._written(stored, plan)
        return stored

    def _written(self, stored: Account, plan: Plan) -> None:
        """Remember what was written: the next read of it in this process decodes nothing."""
        self._memo.put(stored.id, plan.progress[-1], stored)
        remember(plan.data, plan.prefix)

    async def _conflict(
        self, connection: _Connection, accounts: list[Account], *, new: bool
    ) -> ConflictError:
        """Name the first uniqueness rule ``accounts`` break (after the rollback)."""
        stored_ids: set[str] = set()
        if new:
            cursor = await connection.execute(
                "SELECT id FROM salesprocess_accounts WHERE id = ANY(%s)",
                ([_key(a.id) for a in accounts],),
            )
            stored_ids = {row[0] for row in await cursor.fetchall()}
        owners: dict[str, dict[str, str]] = {}
        for kind, _shown in _UNIQUE:
            values = [_key(v) for a in accounts if (v := getattr(a, kind)) is not None]
            cursor = await connection.execute(
                f"SELECT {kind}, id FROM salesprocess_accounts "  # noqa: S608 - kind is ours
                f"WHERE {kind} = ANY(%s)",
                (values,),
            )
            owners[kind] = {row[0]: row[1] for row in await cursor.fetchall()}
        return conflict_named(accounts, new=new, stored_ids=stored_ids, owners=owners)

    # --- reads ------------------------------------------------------------------------------

    async def _accounts(
        self, rows: list[tuple[Any, ...]], what: str, *, remember: bool = False
    ) -> list[Account]:
        """Return the accounts of ``rows`` (as ``_READ`` selects them), rows joined back in."""
        steps = readmodel.assembling(
            [(_unkey(row[0]), *row[1:]) for row in rows], self._memo, DIALECT, remember=remember
        )
        answer: Any = None
        try:
            while True:
                kind, ids = steps.send(answer)
                keys = [_key(account_id) for account_id in ids]
                async with self._using(what) as connection:
                    if kind == "tails":
                        answer = await _tails(connection, keys)
                    else:
                        cursor = await connection.execute(f"{_READ} WHERE id = ANY(%s)", (keys,))
                        answer = [(_unkey(row[0]), *row[1:]) for row in await cursor.fetchall()]
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _one(self, what: str, column: str, value: str) -> Account | None:
        if not isinstance(value, str):
            return None  # no account has a key that is not text (as in the other adapters)
        async with self._using(what) as connection:
            cursor = await connection.execute(f"{_READ} WHERE {column} = %s", (_key(value),))
            row = await cursor.fetchone()
        if row is None:
            return None
        found = readmodel.quick(self._memo, (_unkey(row[0]), *row[1:]))
        return found if found is not None else (await self._accounts([row], what, remember=True))[0]

    async def get(self, account_id: str) -> Account:
        """Return the stored account or raise ``NotFound`` (one round trip)."""
        found = await self._one(f"reading account {account_id}", "id", account_id)
        if found is None:
            raise NotFound(f"no account with id {account_id!r}")
        return found

    async def find_by_email(self, email: str) -> Account | None:
        """Return the account with this normalised email, if any."""
        return await self._one("finding by email", "email", email)

    async def find_by_phone(self, phone: str) -> Account | None:
        """Return the account with this normalised phone number, if any."""
        return await self._one("finding by phone", "phone", phone)

    async def find_by_referral_code(self, code: str) -> Account | None:
        """Return the account whose (already normalised) referral code is ``code``, if any."""
        return await self._one("finding by referral code", "referral_code", code)

    async def find_id(
        self,
        *,
        email: str | None = None,
        phone: str | None = None,
        referral_code: str | None = None,
    ) -> str | None:
        """Return the id of the account holding this email, phone or referral code, if any."""
        kind, value = require_one_key(email, phone, referral_code)
        query, what = _ID_BY[kind]
        async with self._using(what) as connection:
            cursor = await connection.execute(query, (_key(value),))
            row = await cursor.fetchone()
        return None if row is None else _unkey(row[0])

    async def with_stage(self, stage: Stage) -> AsyncIterator[Account]:
        """Yield the accounts at ``stage`` (a ``Stage`` or its name), oldest first.

        Read in pages of 256 as the iterator advances (keyset pagination).
        """
        name = str(Stage(stage))
        what = f"listing stage {name}"
        after: Key | None = None
        while True:
            async with self._using(what) as connection:
                if after is None:
                    cursor = await connection.execute(STAGE_FIRST, (name, PAGE_SIZE))
                else:
                    cursor = await connection.execute(STAGE_NEXT, (name, *after, PAGE_SIZE))
                page = await cursor.fetchall()
            for account in await self._accounts([row[1:] for row in page], what):
                yield account
            if len(page) < PAGE_SIZE:
                return
            after = (page[-1][0], page[-1][1])

    async def count_by_stage(self) -> Mapping[Stage, int]:
        """Return how many accounts are at each stage (one ``GROUP BY``)."""
        async with self._using("counting by stage") as connection:
            cursor = await connection.execute(COUNT_BY_STAGE)
            rows = await cursor.fetchall()
        return {Stage(stage): int(count) for stage, count in rows}

    async def page(self, *, after: str | None = None, limit: int = 1000) -> list[Account]:
        """Return up to ``limit`` accounts with ids greater than ``after``, by id."""
        require_page(after, limit)
        async with self._using("paging accounts") as connection:
            if after is None:
                cursor = await connection.execute(f"{_READ} ORDER BY id LIMIT %s", (limit,))
            else:
                cursor = await connection.execute(
                    f"{_READ} WHERE id > %s ORDER BY id LIMIT %s", (_key(after), limit)
                )
            rows = await cursor.fetchall()
        return await self._accounts(rows, "paging accounts")

    # --- reports ----------------------------------------------------------------------------

    async def _report(self, answer: Callable[[SQLReports], _T]) -> _T:
        """Run the sync adapter's report code in a thread over one snapshot awaited here."""
        loop = asyncio.get_running_loop()
        async with self._using("answering a report") as connection:
            idle = connection.info.transaction_status == TransactionStatus.IDLE
            async with connection.transaction():
                if idle:
                    await connection.execute(
                        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"
                    )
                token = self._block.set(_Block(connection))  # the snapshot serves every read

                async def fetch(query: str, params: tuple[object, ...]) -> list[Any]:
                    cursor = await connection.execute(query, params)
                    return await cursor.fetchall()

                def wait(coroutine: Any) -> Any:
                    return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

                @contextmanager
                def reader() -> Iterator[readmodel.Fetch]:
                    yield lambda query, params: wait(fetch(query, tuple(params)))

                def accounts() -> list[Account]:
                    return wait(self._every_account())  # type: ignore[no-any-return]

                reports = SQLReports(reader, DIALECT, TABLES, accounts)
                try:
                    return await asyncio.to_thread(answer, reports)
                finally:
                    self._block.reset(token)

    async def _every_account(self) -> list[Account]:
        found: list[Account] = []
        after: str | None = None
        while True:
            page = await self.page(after=after, limit=1000)
            found.extend(page)
            if len(page) < 1000:
                return found
            after = page[-1].id

    async def report_revenue(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> RevenueReport:
        """Answer :func:`salesprocess.reports.revenue` in SQL; see :class:`SQLReports`."""
        return await self._report(lambda reports: reports.revenue(since, until))

    async def report_funnel(
        self,
        *,
        as_of: datetime,
        channel: Channel | str | None = None,
        campaign: str | None = None,
    ) -> Funnel:
        """Answer :func:`salesprocess.reports.funnel` in SQL; see :class:`SQLReports`."""
        return await self._report(lambda reports: reports.funnel(as_of, channel, campaign))

    async def report_time_in_stage(self, *, as_of: datetime) -> Mapping[Stage, StageTime]:
        """Answer :func:`salesprocess.reports.time_in_stage` in SQL; see :class:`SQLReports`."""
        return await self._report(lambda reports: reports.time_in_stage(as_of))

    async def report_lead_flow(
        self,
        *,
        period: FlowPeriodName = "week",
        target: int | None = None,
        as_of: datetime | None = None,
    ) -> list[FlowPeriod]:
        """Answer :func:`salesprocess.reports.lead_flow` in SQL; see :class:`SQLReports`."""
        return await self._report(lambda reports: reports.lead_flow(period, target, as_of))

    # --- transactions -----------------------------------------------------------------------

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[None]:
        """Run the block in one transaction of this task (a savepoint when nested)."""
        block = self._block.get()
        if block is not None:  # nested: a savepoint on the task's connection
            async with self._using("a nested block", check=False) as connection:
                mark = block.after_commit.mark()
                try:
                    async with _transaction(connection):
                        yield
                except BaseException:
                    block.after_commit.discard(mark)
                    raise
            return
        async with self._using("a transaction") as connection:
            block = _Block(connection)
            token = self._block.set(block)
            try:
                async with _transaction(connection):
                    yield
            finally:
                self._block.reset(token)
        call_all(block.after_commit.take())

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` now, or when this task's outermost ``atomic()`` block commits."""
        checked = require_callback(callback)
        block = self._block.get()
        if block is None:
            call_all([checked])
        else:
            block.after_commit.register(checked, nullcontext(), lambda: True)


@asynccontextmanager
async def _pipelined(connection: _Connection) -> AsyncIterator[None]:
    """Run the block in a transaction whose ``BEGIN`` and ``COMMIT`` travel with its statements.

    On an autocommit connection with no transaction open, the block's statements are sent in
    one pipeline between ``BEGIN`` and ``COMMIT``: the round trips are the block's own reads,
    plus one for the rest. If anything fails the transaction is rolled back.
    """
    try:
        async with connection.pipeline():
            await connection.execute("BEGIN", prepare=False)
            yield
            await connection.execute("COMMIT", prepare=False)
    except BaseException:
        if not connection.closed and connection.info.transaction_status in (
            TransactionStatus.INTRANS,
            TransactionStatus.INERROR,
        ):
            with suppress(psycopg.Error):  # the connection broke: the first error says why
                await connection.execute("ROLLBACK")
        raise


def _transaction(connection: _Connection) -> AbstractAsyncContextManager[Any]:
    """Return ``atomic()``'s transaction: its own, or a savepoint in the open one.

    Not pipelined: a block may run any statement, ``COPY`` included.
    """
    if connection.info.transaction_status == TransactionStatus.INERROR:
        raise StorageError(_FAILED)
    return connection.transaction()


@asynccontextmanager
async def _in_pipeline(connection: _Connection) -> AsyncIterator[None]:
    """Run the block in a savepoint of the open transaction (or psycopg's own), pipelined."""
    async with connection.pipeline(), connection.transaction():
        yield


async def _version(connection: _Connection) -> int | None:
    cursor = await connection.execute("SELECT to_regclass('salesprocess_schema') IS NOT NULL")
    exists = await cursor.fetchone()
    if not exists or not exists[0]:
        return None
    cursor = await connection.execute("SELECT max(version) FROM salesprocess_schema")
    row = await cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0])


async def _tails(connection: _Connection, keys: list[str]) -> readmodel.Tails:
    """Return the purchase rows and stamps of the accounts ``keys`` name (one round trip)."""
    purchases: dict[str, list[tuple[object, ...]]] = {}
    async with connection.pipeline(), connection.cursor() as bought, connection.cursor() as now:
        await bought.execute(TAIL_PURCHASES, (keys,), prepare=False)
        await now.execute(TAIL_STAMPS, (keys,), prepare=False)
        for key, *row in await bought.fetchall():
            purchases.setdefault(_unkey(key), []).append(tuple(row))
        stamps = {_unkey(key): stamp for key, stamp in await now.fetchall()}
    return purchases, stamps


async def _append(cursor: _Cursor, key: str, plan: Plan) -> None:
    """Write the rows ``plan`` adds: stage changes, purchases, and the touched tallies.

    Statements sent in a pipeline are never prepared: when a pipeline aborts (a unique
    violation), psycopg may take a statement the server skipped for prepared, and the next use
    of it would fail (``prepared statement "_pg3_4" does not exist``).
    """
    if plan.history:
        for change in plan.history:
            await cursor.execute(_INSERT_CHANGE, change, prepare=False)
    if plan.purchases:
        for purchase in plan.purchases:
            await cursor.execute(_INSERT_PURCHASE, purchase, prepare=False)
        for tally in _tally_rows(key, plan):
            await cursor.execute(_PUT_TALLY, tally, prepare=False)


async def _copy(
    cursor: _Cursor,
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
            async with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    await copy.write_row(row)
