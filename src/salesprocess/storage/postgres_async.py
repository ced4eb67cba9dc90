"""PostgreSQL storage for async apps: psycopg's ``AsyncConnection`` or ``AsyncConnectionPool``.

The tables, statements, row layout, decoding and read model are
:mod:`salesprocess.storage.postgres`'s: each call is one of that module's talks (the
statements it needs, without I/O), which this adapter awaits where the sync one calls. A
database written by one adapter is read by the other. ``AsyncPostgresRepository`` takes

- a :class:`psycopg_pool.AsyncConnectionPool` (``pip install 'salesprocess[postgres]'``): each
  call borrows a connection for its statements and gives it back, so many tasks run at once;
  a connection that broke is dropped by the pool and the next call gets a fresh one. Make the
  pool with ``kwargs={"autocommit": True}``: a read is then one round trip (otherwise the pool
  wraps it in ``BEGIN`` ... ``COMMIT``);
- or one :class:`psycopg.AsyncConnection`, shared by every task in turn.

The schema is created or migrated by an explicit ``await repository.migrate()`` (once, at
deployment, or at the app's start); the first call of each repository object checks, once, that
the database has the schema this version reads, and raises ``StorageError`` if not.

Round trips, as in the sync adapter: a read is one statement; a save of an account this
repository read is one (else it reads the row ``FOR UPDATE`` first, in a pipelined
transaction); an add is one; ``write_all`` (a command's several writes) is two, ``BEGIN`` and
its statements in one pipeline, then ``COMMIT``; ``holders`` (a command's accounts) is one. So
a command is at most three.

Transactions: ``async with repository.atomic():`` holds one connection for the task that
opened it (a pooled one, or the shared one, which other tasks then wait for) in one
transaction; nested blocks are savepoints. Inside a block the task's calls read and write in
its transaction; other tasks do not see its writes before it commits. ``after_commit``
callbacks wait for the task's outermost block to commit and are dropped if it rolls back.

Every driver error reaches the caller through one choke point: a unique violation as
``ConflictError``, anything else (the pool exhausted or closed, the connection dropped, the
server gone) as ``StorageError``; a transaction is then whole or absent.

The reports (``revenue``, ``funnel``, ``lead_flow``, ``time_in_stage``, ``referral_stats``)
are answered in SQL by the sync adapter's report code
(:class:`~salesprocess.storage.sqlite.SQLReports`), run in a worker thread whose queries are
awaited on the event loop in one ``REPEATABLE READ`` snapshot.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    asynccontextmanager,
    contextmanager,
    nullcontext,
    suppress,
)
from datetime import datetime
from typing import Any, TypeVar

# psycopg comes with the postgres extra; without it, salesprocess.storage.postgres (imported
# below) refuses with the line that installs it
import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

try:
    from psycopg_pool import AsyncConnectionPool
except ImportError:  # pragma: no cover - psycopg_pool comes with the postgres extra
    AsyncConnectionPool = None  # type: ignore[assignment,misc]

from salesprocess.account import Account, Channel, unchecked_copy
from salesprocess.checks import require_items, shown
from salesprocess.errors import ConflictError, NotFound, StorageError, ValidationError
from salesprocess.reports import FlowPeriod, Funnel, RevenueReport
from salesprocess.reports.flow import FlowPeriodName
from salesprocess.reports.referrals import ReferralReport
from salesprocess.reports.stages import StageTime
from salesprocess.stage import Stage
from salesprocess.storage import readmodel
from salesprocess.storage.paging import PAGE_SIZE, Key
from salesprocess.storage.postgres import (
    CHECKED,
    COUNT_BY_STAGE,
    DIALECT,
    ID_BY,
    IN_ERROR,
    REFERRERS,
    SCHEMA_VERSION,
    SCHEMA_VERSION_QUERY,
    TABLES,
    Ask,
    BatchWrite,
    SharedMemo,
    Talk,
    adding,
    append_save,
    appended,
    asking,
    batch_refused,
    batch_writes,
    decoding,
    first_conflict,
    foreign_tables,
    ids_ask,
    key_of,
    migrating,
    new_account,
    page_ask,
    reading_holders,
    reading_many,
    reading_one,
    remember_written,
    rewriting,
    schema_refused,
    schema_version,
    stage_page,
    unkey,
)
from salesprocess.storage.protocol import (
    AfterCommit,
    Holders,
    call_all,
    require_account,
    require_callback,
    require_ids,
    require_keys,
    require_one_key,
    require_page,
    require_version,
)
from salesprocess.storage.sqlite import SQLReports

__all__ = ["AsyncPostgresRepository"]

_T = TypeVar("_T")
_Connection = psycopg.AsyncConnection[Any]
_names = itertools.count()


class _Block:
    """The ``atomic()`` block a task has open: its connection and what waits for its commit."""

    __slots__ = ("after_commit", "connection", "open")

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection
        self.after_commit = AfterCommit()
        # A task started inside the block inherits it (context variables are copied) and may
        # outlive it: once closed, the block is no block, its connection back in the pool.
        self.open = True


async def _talk(connection: _Connection, steps: Talk[_T], *, prepare: bool | None = None) -> _T:
    """Run ``steps`` on ``connection``: await each statement asked, send back its rows.

    In a pipeline, pass ``prepare=False``: when a pipeline aborts (a unique violation),
    psycopg may take a statement the server skipped for prepared, and the next use of it
    would fail (``prepared statement "_pg3_4" does not exist``).
    """
    rows: Any = None
    try:
        while True:
            ask = steps.send(rows)
            rows = []
            if ask.kind == "rows":
                cursor = await connection.execute(ask.sql, ask.params, prepare=prepare)
                rows = await cursor.fetchall()
            elif ask.kind == "do":
                await connection.execute(ask.sql, ask.params, prepare=prepare)
            elif ask.kind == "many":
                async with connection.cursor() as cursor:
                    await cursor.executemany(ask.sql, ask.params)
            else:
                async with connection.cursor() as cursor, cursor.copy(ask.sql) as copy:
                    for row in ask.params:
                        await copy.write_row(row)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


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
        self._memo = SharedMemo()

    def __repr__(self) -> str:
        over = "a pool" if self._pool is not None else "one connection"
        return f"<AsyncPostgresRepository over {over}>"

    # --- plumbing: the one choke point -------------------------------------------------------

    def _current(self) -> _Block | None:
        """Return this task's open ``atomic()`` block, if any (see ``_Block.open``)."""
        block = self._block.get()
        return block if block is not None and block.open else None

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
        block = self._current()
        if block is not None:  # inside this task's atomic() block: its transaction
            if block.connection.info.transaction_status == TransactionStatus.INERROR:
                raise StorageError(IN_ERROR)
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
                    raise StorageError(IN_ERROR)
                yield connection

    async def _check(self, connection: _Connection) -> None:
        """Check that the database has the schema this version reads: once per pool or connection.

        In autocommit a missing table costs nothing but the error; inside a transaction the
        check asks the catalogue first, so as not to abort it.
        """
        owner = self._pool if self._pool is not None else self._connection
        if CHECKED.get(owner):
            self._checked = True
            return
        status = connection.info.transaction_status
        if status == TransactionStatus.IDLE and connection.autocommit:
            try:
                rows = await _talk(connection, asking(Ask(SCHEMA_VERSION_QUERY)))
                version = None if not rows or rows[0][0] is None else int(rows[0][0])
            except pg_errors.UndefinedTable:
                version = None
        else:
            version = await _talk(connection, schema_version())
        foreign = version is None and await _talk(connection, foreign_tables())
        refused = schema_refused(version, foreign)
        if refused is not None:
            raise refused
        CHECKED[owner] = True
        self._checked = True

    # --- schema -----------------------------------------------------------------------------

    async def migrate(self) -> int:
        """Create the tables, or migrate them forward to ``SCHEMA_VERSION``; return the old one.

        The version the database had is returned (0 for one without salesprocess tables).
        Safe to run from several app servers at once (an advisory lock orders them). Refuses a
        database written by a newer salesprocess, or a ``salesprocess_accounts`` table that is
        not ours, with ``StorageError``.
        """
        async with self._using("migrating the schema", check=False) as connection:
            version = await _talk(connection, schema_version())
            found = version or 0
            if version != SCHEMA_VERSION:
                async with connection.transaction():
                    found = await _talk(connection, migrating())
        CHECKED[self._pool if self._pool is not None else self._connection] = True
        self._checked = True
        return found

    # --- writes -----------------------------------------------------------------------------

    async def _conflict(
        self, connection: _Connection, accounts: list[Account], *, new: bool
    ) -> ConflictError:
        """Name the first uniqueness rule ``accounts`` break (after the rollback)."""
        return await _talk(connection, first_conflict(accounts, new=new))

    async def add(self, account: Account) -> Account:
        """Store a new account at version 1: one statement (``ON CONFLICT DO NOTHING``)."""
        stored, plan, ask = new_account(account)
        async with self._using(f"adding account {account.id}") as connection:
            rows = await _talk(connection, asking(ask))
            if not rows or not rows[0][0]:
                raise await self._conflict(connection, [account], new=True)
        remember_written(self._memo, stored, plan)
        return stored

    async def add_many(self, accounts: Iterable[Account]) -> int:
        """Store many new accounts with ``COPY``, all or nothing; return how many."""
        accounts = list(require_items(accounts, "accounts"))
        async with self._using("adding accounts") as connection:
            try:
                # COPY cannot be pipelined; a bulk load's round trips do not matter
                async with _transaction(connection):
                    batch = await _talk(connection, adding(accounts))
            except pg_errors.UniqueViolation:
                raise await self._conflict(connection, accounts, new=True) from None
        return len(batch)

    async def save(self, account: Account, *, expected_version: int) -> Account:
        """Replace the stored account if it is still at ``expected_version``.

        One statement for an account this repository read at the stored row's stamp; else the
        row's state is read ``FOR UPDATE`` first, in a transaction whose ``BEGIN`` and
        ``COMMIT`` travel with the statements.
        """
        account = require_account(account)
        expected_version = require_version(expected_version)
        stored = unchecked_copy(account, version=expected_version + 1)
        async with self._using(f"saving account {account.id}") as connection:
            try:
                plan = await self._append_only(connection, stored, expected_version)
                if plan is None:
                    async with _writing(connection):
                        plan = await _talk(
                            connection,
                            rewriting(self._memo, stored, expected_version),
                            prepare=False,
                        )
            except pg_errors.UniqueViolation:
                raise await self._conflict(connection, [stored], new=False) from None
        remember_written(self._memo, stored, plan)
        return stored

    async def _append_only(
        self, connection: _Connection, stored: Account, expected_version: int
    ) -> Any:
        """Save ``stored`` in one statement if it extends the account read at a known stamp."""
        saving = append_save(self._memo, stored, expected_version)
        if saving is None:
            return None
        plan, ask, same_keys = saving
        status = connection.info.transaction_status
        alone = same_keys or (status == TransactionStatus.IDLE and connection.autocommit)
        async with nullcontext() if alone else connection.transaction():
            rows = await _talk(connection, asking(ask))
        return plan if appended(stored, expected_version, rows) else None

    async def write_all(self, accounts: Sequence[Account]) -> list[Account]:
        """Store ``accounts`` all or nothing: each new one added, each other saved.

        On an autocommit connection outside a block, when every save extends an account read
        here: ``BEGIN`` and the statements in one round trip, ``COMMIT`` in a second.
        Otherwise in an ``atomic()`` block, one call each.
        """
        accounts = [require_account(a, "accounts") for a in require_items(accounts, "accounts")]
        planned = batch_writes(self._memo, accounts) if self._current() is None else None
        if planned is not None:
            async with self._using("writing accounts") as connection:
                status = connection.info.transaction_status
                if status == TransactionStatus.IDLE and connection.autocommit:
                    try:
                        refused = await _pipelined(connection, planned)
                    except pg_errors.UniqueViolation:  # a save took a key: name it
                        saved = [account for account in accounts if account.version]
                        raise await self._conflict(connection, saved, new=False) from None
                    if refused == "conflict":
                        added = [account for account in accounts if not account.version]
                        raise await self._conflict(connection, added, new=True)
                    if refused is None:
                        for stored, plan, _ask, _expected in planned:
                            remember_written(self._memo, stored, plan)
                        return [stored for stored, *_rest in planned]
        async with self.atomic():
            return [
                await self.save(account, expected_version=account.version)
                if account.version
                else await self.add(account)
                for account in accounts
            ]

    # --- reads ------------------------------------------------------------------------------

    async def holders(
        self,
        *,
        account_id: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        referral_code: str | None = None,
    ) -> Holders:
        """Return the accounts holding this id, email, phone and referral code: one statement."""
        keys = {"id": account_id, "email": email, "phone": phone, "referral_code": referral_code}
        async with self._using("reading accounts") as connection:
            found = await _talk(connection, reading_holders(self._memo, keys))
        return Holders(found["id"], found["email"], found["phone"], found["referral_code"])

    async def _accounts(self, rows: list[tuple[Any, ...]], what: str) -> list[Account]:
        """Return the accounts of ``rows`` (as ``_READ`` selects them), rows joined back in."""
        async with self._using(what) as connection:
            return await _talk(connection, decoding(self._memo, rows, remember=False))

    async def _one(self, what: str, column: str, value: str) -> Account | None:
        if not isinstance(value, str):
            return None  # no account has a key that is not text (as in the other adapters)
        async with self._using(what) as connection:
            return await _talk(connection, reading_one(self._memo, column, value))

    async def get(self, account_id: str) -> Account:
        """Return the stored account or raise ``NotFound`` (one round trip)."""
        found = await self._one(f"reading account {shown(account_id)}", "id", account_id)
        if found is None:
            raise NotFound(f"no account with id {shown(account_id)}")
        return found

    async def get_many(self, account_ids: Iterable[str]) -> dict[str, Account]:
        """Return ``{id: account}`` for the stored ones among ``account_ids``: one ``SELECT``."""
        wanted = require_ids(account_ids)
        async with self._using("reading accounts") as connection:
            return await _talk(connection, reading_many(self._memo, wanted))

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
        query, what = ID_BY[kind]
        async with self._using(what) as connection:
            rows = await _talk(connection, asking(Ask(query, (key_of(value),))))
        return None if not rows else unkey(rows[0][0])

    async def find_ids(self, kind: str, values: Iterable[str]) -> dict[str, str]:
        """Return ``{value: id}`` for the ``values`` an account holds as its ``kind``."""
        wanted = require_keys(kind, values)
        async with self._using(f"finding ids by {kind.replace('_', ' ')}") as connection:
            rows = await _talk(connection, asking(ids_ask(kind, wanted)))
        return {unkey(value): unkey(account_id) for value, account_id in rows}

    async def with_stage(self, stage: Stage) -> AsyncIterator[Account]:
        """Yield the accounts at ``stage`` (a ``Stage`` or its name), oldest first.

        Read in pages of 256 as the iterator advances (keyset pagination).
        """
        name = str(Stage(stage))
        what = f"listing stage {name}"
        after: Key | None = None
        while True:
            async with self._using(what) as connection:
                page = await _talk(connection, asking(stage_page(name, "TRUE", {}, after)))
            for account in await self._accounts([row[1:] for row in page], what):
                yield account
            if len(page) < PAGE_SIZE:
                return
            after = (page[-1][0], page[-1][1])

    async def count_by_stage(self) -> Mapping[Stage, int]:
        """Return how many accounts are at each stage (one ``GROUP BY``)."""
        async with self._using("counting by stage") as connection:
            rows = await _talk(connection, asking(Ask(COUNT_BY_STAGE)))
        return {Stage(stage): int(count) for stage, count in rows}

    async def page(self, *, after: str | None = None, limit: int = 1000) -> list[Account]:
        """Return up to ``limit`` accounts with ids greater than ``after``, by id."""
        require_page(after, limit)
        async with self._using("paging accounts") as connection:
            rows = await _talk(connection, asking(page_ask(after, limit)))
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
                snapshot = _Block(connection)  # the snapshot serves every read
                token = self._block.set(snapshot)

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

                reports = SQLReports(reader, DIALECT, TABLES, accounts, REFERRERS)
                try:
                    return await asyncio.to_thread(answer, reports)
                finally:
                    snapshot.open = False
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

    async def report_referral_stats(self) -> ReferralReport:
        """Answer :func:`salesprocess.reports.referral_stats` in SQL; see :class:`SQLReports`."""
        return await self._report(lambda reports: reports.referral_stats())

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
        block = self._current()
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
                block.open = False
                self._block.reset(token)
        call_all(block.after_commit.take())

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` now, or when this task's outermost ``atomic()`` block commits."""
        checked = require_callback(callback)
        block = self._current()
        if block is None:
            call_all([checked])
        else:
            block.after_commit.register(checked, nullcontext(), lambda: True)


async def _pipelined(connection: _Connection, planned: list[BatchWrite]) -> str | None:
    """Run a batch's statements in one transaction, ``BEGIN`` travelling with them.

    One round trip for ``BEGIN`` and the statements, one for ``COMMIT`` (or ``ROLLBACK``, when
    the batch was refused: see :func:`~salesprocess.storage.postgres.batch_refused`).
    """
    try:
        async with connection.pipeline() as pipeline:
            await connection.execute("BEGIN", prepare=False)
            cursors = [
                await connection.execute(ask.sql, ask.params, prepare=False)
                for _stored, _plan, ask, _expected in planned
            ]
            await pipeline.sync()
            try:
                refused = batch_refused(planned, [await cursor.fetchall() for cursor in cursors])
            except BaseException:
                await connection.execute("ROLLBACK", prepare=False)
                raise
            await connection.execute("ROLLBACK" if refused else "COMMIT", prepare=False)
    except BaseException:
        await _rolled_back(connection)
        raise
    return refused


async def _rolled_back(connection: _Connection) -> None:
    """Roll back what a failed block left open (a broken connection: the first error says why)."""
    if not connection.closed and connection.info.transaction_status in (
        TransactionStatus.INTRANS,
        TransactionStatus.INERROR,
    ):
        with suppress(psycopg.Error):
            await connection.execute("ROLLBACK")


@asynccontextmanager
async def _writing(connection: _Connection) -> AsyncIterator[None]:
    """Run a write's block in a transaction; ``BEGIN`` and ``COMMIT`` travel with it if idle.

    On an autocommit connection with no transaction open, the block's statements are sent in
    one pipeline between ``BEGIN`` and ``COMMIT``: the round trips are the block's own reads,
    plus one for the rest. Else a savepoint of the open transaction, pipelined.
    """
    status = connection.info.transaction_status
    if status == TransactionStatus.INERROR:
        raise StorageError(IN_ERROR)
    if status == TransactionStatus.IDLE and connection.autocommit:
        try:
            async with connection.pipeline():
                await connection.execute("BEGIN", prepare=False)
                yield
                await connection.execute("COMMIT", prepare=False)
        except BaseException:
            await _rolled_back(connection)
            raise
        return
    async with connection.pipeline(), connection.transaction():
        yield


def _transaction(connection: _Connection) -> AbstractAsyncContextManager[Any]:
    """Return ``atomic()``'s transaction: its own, or a savepoint in the open one.

    Not pipelined: a block may run any statement, ``COPY`` included.
    """
    if connection.info.transaction_status == TransactionStatus.INERROR:
        raise StorageError(IN_ERROR)
    return connection.transaction()
