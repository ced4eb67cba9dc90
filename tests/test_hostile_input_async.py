"""Hostile input through ``AsyncSalesProcess``: the same calls, the same refusals, nothing stored.

Every public command of ``SalesProcess`` is fed the calls of tests/hostile_calls.py through the
async facade (each coroutine awaited to its end by a bridge), on the async in-memory store and
on PostgreSQL over an ``AsyncConnectionPool``. The async facade runs the very checks the sync
one runs (they live once, in ``salesprocess.use_cases`` and ``salesprocess.report_requests``),
so a call refused by one is refused by the other with the same error type, and a refusal
stores and publishes nothing. The table of commands is the sync facade's: a command the async
facade lacks fails here.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given

import salesprocess as sp
from hostile_calls import (
    CRITERIA,
    T0,
    World,
    broken_calls,
    commands,
    describe,
    judge,
    seed,
)
from salesprocess.storage import AsyncInMemoryRepository, InMemoryRepository
from salesprocess.testing import Awaiting, BlockingRepository
from test_hostile_input import _HOSTILE, PUBLIC


class Bridge:
    """``AsyncSalesProcess`` called as ``SalesProcess`` is: each coroutine awaited to its end.

    ``repository`` is the async store seen through a blocking bridge, so that the judge can
    read what is stored before and after each call.
    """

    def __init__(self, asales: sp.AsyncSalesProcess, awaiting: Awaiting) -> None:
        self.asales = asales
        self.awaiting = awaiting
        self.repository = BlockingRepository(asales.repository, awaiting)

    def __getattr__(self, name: str) -> Any:
        member = getattr(self.asales, name)
        if not inspect.iscoroutinefunction(member):
            return member  # subscribe: a plain method in both facades

        def awaited(*args: Any, **kwargs: Any) -> Any:
            return self.awaiting(member(*args, **kwargs))

        return awaited


def async_world(inner: Any, awaiting: Awaiting) -> World:
    """Seed ``inner`` as tests/hostile_calls.py seeds a store; return the async facade's world."""
    seeded = seed(BlockingRepository(inner, awaiting))
    counter = itertools.count()
    asales = sp.AsyncSalesProcess(
        inner, criteria=CRITERIA, clock=sp.FixedClock(T0), id_factory=lambda: f"aid-{next(counter)}"
    )
    world = World(Bridge(asales, awaiting), seeded.ids)  # type: ignore[arg-type]
    asales.subscribe(world.events.append)
    return world


@pytest.fixture
def awaiting() -> Iterator[Awaiting]:
    runner = Awaiting()
    yield runner
    runner.close()


@pytest.fixture(params=["async-memory", "async-postgres"])
def async_store(request: pytest.FixtureRequest, awaiting: Awaiting) -> Iterator[Any]:
    """Both async adapters we ship, in turn."""
    if request.param == "async-memory":
        yield AsyncInMemoryRepository()
        return
    psycopg_pool = pytest.importorskip("psycopg_pool", reason="needs the postgres extra")
    from salesprocess.storage.postgres import AsyncPostgresRepository  # noqa: PLC0415

    dsn = request.getfixturevalue("postgres_schema")()

    async def opened() -> Any:
        pool = psycopg_pool.AsyncConnectionPool(
            dsn, kwargs={"autocommit": True}, min_size=1, max_size=2, open=False
        )
        await pool.open()
        return pool

    pool = awaiting(opened())
    repository = AsyncPostgresRepository(pool)
    awaiting(repository.migrate())
    yield repository
    awaiting(pool.close())


def test_the_async_facade_has_every_command_the_sync_one_has() -> None:
    """The bridge reaches a coroutine (or subscribe) for every public command."""
    asales = sp.AsyncSalesProcess()
    for name in PUBLIC:
        member = getattr(asales, name)
        assert name == "subscribe" or inspect.iscoroutinefunction(member), name


@pytest.mark.parametrize("name", PUBLIC)
def test_the_async_facade_refuses_hostile_calls_cleanly(
    async_store: Any, awaiting: Awaiting, name: str
) -> None:
    """Valid or hostile, an awaited call succeeds or is refused cleanly, changing nothing."""
    world = async_world(async_store, awaiting)
    broken = broken_calls(world, name, _HOSTILE)
    assert not broken, "\n\n".join(broken[:3])


@pytest.mark.parametrize("name", PUBLIC)
def test_both_facades_refuse_the_same_calls_with_the_same_errors(
    awaiting: Awaiting, name: str
) -> None:
    """The same call on two equal stores: the same outcome, the same error type."""
    sync_world = seed(InMemoryRepository())
    twin = async_world(AsyncInMemoryRepository(), awaiting)
    assert sync_world.ids == twin.ids
    mismatches: list[str] = []

    @_HOSTILE
    @given(call=commands(sync_world)[name]())
    def attempt(call: Any) -> None:
        sync = judge(sync_world, name, call)
        async_ = judge(twin, name, call)
        kinds = [type(verdict.error) for verdict in (sync, async_)]
        if sync.outcome is not async_.outcome or kinds[0] is not kinds[1]:
            mismatches.append(
                f"{name}{describe(call)}: sync {sync.outcome.value} {kinds[0].__name__}, "
                f"async {async_.outcome.value} {kinds[1].__name__}"
            )

    attempt()
    assert not mismatches, "\n".join(mismatches[:5])
