"""The async adapters keep every promise of the storage protocol (the async contract kit)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

import salesprocess as sp
from salesprocess.storage import AsyncAccountRepository, AsyncInMemoryRepository
from salesprocess.testing import AsyncReadsManyContract, Awaiting

psycopg = pytest.importorskip("psycopg", reason="needs the postgres extra")
psycopg_pool = pytest.importorskip("psycopg_pool", reason="needs the postgres extra")

from salesprocess.storage.postgres import SCHEMA_VERSION  # noqa: E402
from salesprocess.storage.postgres_async import AsyncPostgresRepository  # noqa: E402

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


class TestAsyncInMemoryRepository(AsyncReadsManyContract):
    """Every promise of the protocol, for AsyncInMemoryRepository."""

    async def make_async_repository(self) -> AsyncAccountRepository:
        return AsyncInMemoryRepository()


async def _pool(dsn: str, **options: Any) -> Any:
    pool = psycopg_pool.AsyncConnectionPool(
        dsn, kwargs={"autocommit": True}, min_size=1, max_size=4, open=False, **options
    )
    await pool.open()
    return pool


class TestAsyncPostgresOnPool(AsyncReadsManyContract):
    """Every promise of the protocol, for AsyncPostgresRepository over an AsyncConnectionPool."""

    @pytest.fixture(autouse=True)
    def _schemas(self, postgres_schema: Callable[[], str]) -> None:
        self.new_schema = postgres_schema
        self.pools: dict[int, Any] = {}

    async def make_async_repository(self) -> AsyncAccountRepository:
        pool = await _pool(self.new_schema())
        repository = AsyncPostgresRepository(pool)
        await repository.migrate()
        self.pools[id(repository)] = pool
        return repository

    async def dispose_async_repository(self, repository: AsyncAccountRepository) -> None:
        await self.pools.pop(id(repository)).close()


class TestAsyncPostgresOnOneConnection(AsyncReadsManyContract):
    """Every promise of the protocol, for AsyncPostgresRepository sharing one AsyncConnection."""

    @pytest.fixture(autouse=True)
    def _schemas(self, postgres_schema: Callable[[], str]) -> None:
        self.new_schema = postgres_schema
        self.connections: dict[int, Any] = {}

    async def make_async_repository(self) -> AsyncAccountRepository:
        connection = await psycopg.AsyncConnection.connect(self.new_schema(), autocommit=True)
        repository = AsyncPostgresRepository(connection)
        await repository.migrate()
        self.connections[id(repository)] = connection
        return repository

    async def dispose_async_repository(self, repository: AsyncAccountRepository) -> None:
        await self.connections.pop(id(repository)).close()


# -- PostgreSQL: schema, errors, connections ------------------------------------------------------


@pytest.fixture
def awaiting():
    runner = Awaiting()
    yield runner
    runner.close()


def test_a_database_without_the_schema_is_refused_until_migrated(postgres_schema, awaiting):
    """The first call checks the schema once; migrate() creates it (and is idempotent).

    As the sync adapter's, migrate() answers the version the database had.
    """

    async def scenario() -> None:
        pool = await _pool(postgres_schema())
        try:
            bare = AsyncPostgresRepository(pool)
            with pytest.raises(sp.StorageError, match="migrate"):
                await bare.get("acc-1")
            assert await AsyncPostgresRepository(pool).migrate() == 0
            assert await AsyncPostgresRepository(pool).migrate() == SCHEMA_VERSION
            with pytest.raises(sp.NotFound):
                await bare.get("acc-1")
        finally:
            await pool.close()

    awaiting(scenario())


def test_anything_but_a_pool_or_an_async_connection_is_refused(postgres_dsn):
    """A DSN or a sync connection is a ValidationError naming the argument."""
    with pytest.raises(sp.ValidationError) as refused:
        AsyncPostgresRepository(postgres_dsn)
    assert refused.value.field == "pool_or_connection"
    with psycopg.connect(postgres_dsn) as connection, pytest.raises(sp.ValidationError):
        AsyncPostgresRepository(connection)


def test_a_dropped_connection_is_a_storage_error_and_the_pool_recovers(postgres_schema, awaiting):
    """The server ends every connection: the call raises StorageError, the next one works."""

    async def scenario() -> None:
        dsn = postgres_schema()
        pool = await _pool(dsn, check=psycopg_pool.AsyncConnectionPool.check_connection)
        try:
            asales = sp.AsyncSalesProcess(AsyncPostgresRepository(pool))
            await asales.repository.migrate()  # type: ignore[attr-defined]
            lead = await asales.capture_lead("Acme", email="a@acme.example", channel="referral")
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as admin:
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND backend_type = 'client backend'"
                )
            await asyncio.sleep(0.05)
            try:
                again = await asales.get(lead.id)
            except sp.StorageError:
                again = await asales.get(lead.id)  # the pool replaced the broken connection
            assert again == lead
        finally:
            await pool.close()

    awaiting(scenario())


def test_a_closed_pool_is_a_storage_error(postgres_schema, awaiting):
    """A pool closed under the repository: StorageError, not a raw psycopg error."""

    async def scenario() -> None:
        pool = await _pool(postgres_schema())
        repository = AsyncPostgresRepository(pool)
        await repository.migrate()
        await pool.close()
        with pytest.raises(sp.StorageError, match="PostgreSQL"):
            await repository.get("acc-1")

    awaiting(scenario())


def test_an_exhausted_pool_is_a_storage_error(postgres_schema, awaiting):
    """Every connection held and none freed in time: StorageError; the holder's work stands."""

    async def scenario() -> None:
        pool = psycopg_pool.AsyncConnectionPool(
            postgres_schema(), kwargs={"autocommit": True}, min_size=1, max_size=1,
            timeout=0.2, open=False,
        )  # fmt: skip
        await pool.open()
        try:
            repository = AsyncPostgresRepository(pool)
            await repository.migrate()
            asales = sp.AsyncSalesProcess(repository)
            async with repository.atomic():  # holds the only connection
                lead = await asales.capture_lead("Acme", email="a@acme.example", channel="referral")
                other = contextvars.Context()  # a task of its own, not one started in the block
                with pytest.raises(sp.StorageError):
                    await asyncio.create_task(asales.get(lead.id), context=other)
            assert await asales.get(lead.id) == lead
        finally:
            await pool.close()

    awaiting(scenario())


def test_both_adapters_read_what_the_other_wrote(postgres_schema, awaiting):
    """The async adapter uses the sync one's tables: each reads the other's accounts."""
    from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415

    dsn = postgres_schema()

    async def write() -> sp.Account:
        pool = await _pool(dsn)
        try:
            repository = AsyncPostgresRepository(pool)
            await repository.migrate()
            asales = sp.AsyncSalesProcess(repository)
            lead = await asales.capture_lead("Acme", email="a@acme.example", channel="referral")
            await asales.qualify(lead.id, override="walk-in")
            return await asales.record_purchase(lead.id, sp.Money("12.50", "EUR"))
        finally:
            await pool.close()

    bought = awaiting(write())
    with PostgresRepository(dsn) as sync:
        sales = sp.SalesProcess(sync)
        assert sales.get(bought.id) == bought
        again = sales.record_purchase(bought.id, sp.Money("1.00", "EUR"))

    async def read() -> sp.Account:
        pool = await _pool(dsn)
        try:
            return await sp.AsyncSalesProcess(AsyncPostgresRepository(pool)).get(bought.id)
        finally:
            await pool.close()

    assert awaiting(read()) == again


def test_refused_pipelined_writes_leave_no_statement_half_prepared(postgres_schema, awaiting):
    """Saves refused as stale and adds refused as taken, again and again: later adds work.

    psycopg prepares a statement from its sixth use; one prepared inside a pipeline that ends
    in a refusal could be taken for prepared while the server had dropped it, and the next add
    would fail with "prepared statement does not exist" (the contract's machine found it).
    """

    def account(account_id: str, name: str = "Acme") -> sp.Account:
        return sp.Account(account_id, name, sp.Source(sp.Channel.REFERRAL), T0)

    async def scenario() -> None:
        connection = await psycopg.AsyncConnection.connect(postgres_schema(), autocommit=True)
        try:
            repository = AsyncPostgresRepository(connection)
            await repository.migrate()
            stored = await repository.add(account("a"))
            for _ in range(7):
                assert [a.id async for a in repository.with_stage(sp.Stage.PROSPECT)] == ["a"]
                await repository.count_by_stage()
            for _ in range(2):
                with pytest.raises(sp.StaleWrite):
                    await repository.save(stored.with_changes(name="Old"), expected_version=0)
            stored = await repository.save(stored.with_changes(name="New"), expected_version=1)
            for _ in range(5):
                with pytest.raises(sp.ConflictError, match="already stored"):
                    await repository.add(account("a"))
                with pytest.raises(sp.StaleWrite):
                    await repository.save(stored.with_changes(name="Old"), expected_version=0)
                await repository.count_by_stage()
            assert (await repository.add(account("g"))).version == 1
            assert (await repository.get("a")).name == "New"
        finally:
            await connection.close()

    awaiting(scenario())
