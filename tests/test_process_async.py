"""AsyncSalesProcess: the sync facade's commands and reports, awaited, with the same answers."""

from __future__ import annotations

import asyncio
import gc
import inspect
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import salesprocess as sp
from salesprocess.testing import Awaiting

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
CRITERIA = sp.Criteria.from_dict({"!!": {"var": "fit"}}, name="fit", version="1")


class _Undo(Exception):
    """Raised by a caller's block to roll it back."""


def _public(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and callable(member)
    }


def test_every_command_and_report_is_a_coroutine_with_the_same_signature():
    """Each public method of SalesProcess has an async twin taking the same arguments."""
    sync, awaited = _public(sp.SalesProcess), _public(sp.AsyncSalesProcess)
    assert sync.keys() == awaited.keys()
    for name, method in sync.items():
        if name == "subscribe":
            assert not inspect.iscoroutinefunction(awaited[name])
            continue
        assert inspect.iscoroutinefunction(awaited[name]), name
        ours, theirs = inspect.signature(awaited[name]), inspect.signature(method)
        assert list(ours.parameters) == list(theirs.parameters), name
        assert awaited[name].__doc__, name


def _wired(kind: type, repository: Any = None) -> tuple[Any, list[sp.DomainEvent]]:
    counter = itertools.count(1)
    clock = sp.FixedClock(T0)
    sales = kind(
        repository, criteria=CRITERIA, clock=clock, id_factory=lambda: f"id-{next(counter):03d}",
        code_factory=lambda: f"CODE{next(counter):04d}",
    )  # fmt: skip
    seen: list[sp.DomainEvent] = []
    sales.subscribe(seen.append)
    return sales, seen


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _story(sales: Any) -> list[Any]:
    """A quarter's work, through either facade: the answers of every command and report."""
    call: Callable[..., Any] = lambda name, *args, **kwargs: _maybe(  # noqa: E731
        getattr(sales, name)(*args, **kwargs)
    )
    out: list[Any] = []
    acme = await call("capture_lead", "Acme", email="buyer@acme.example", channel="inbound_inquiry",
                      attributes={"fit": True})  # fmt: skip
    beta = await call("capture_lead", "Beta", phone="+49 30 1234567", channel="marketing_list",
                      attributes={"fit": False})  # fmt: skip
    out += [acme, beta, await call("capture", "Acme again", email="BUYER@acme.example",
                                   phone="+49 40 7654321", channel="referral")]  # fmt: skip
    out.append(await call("screen_all", at=T0 + timedelta(hours=1)))
    out.append(await call("record_call", acme.id, sp.CallOutcome.INTERESTED, notes="lathes",
                          at=T0 + timedelta(hours=2)))  # fmt: skip
    out.append(await call("call_list", limit=5, at=T0 + timedelta(hours=3)))
    out.append(await call("qualify", acme.id, at=T0 + timedelta(hours=3)))
    out.append(await call("record_purchase", acme.id, sp.Money("120.00", "EUR"),
                          at=T0 + timedelta(days=1), reference="INV-1"))  # fmt: skip
    out.append(await call("record_purchase", acme.id, sp.Money("80.00", "EUR"),
                          at=T0 + timedelta(days=3)))  # fmt: skip
    request = await call("ask_for_referrals", acme.id, wanted=3, at=T0 + timedelta(days=3))
    out.append(request)
    out.append(await call("record_referral", acme.id, "Gamma", email="g@gamma.example",
                          request=request.id, at=T0 + timedelta(days=4)))  # fmt: skip
    cards = await call("issue_referral_cards", acme.id, count=5, at=T0 + timedelta(days=4))
    out.append(cards)
    out.append(await call("capture", "Delta", email="d@delta.example",
                          referral_code=cards.code, at=T0 + timedelta(days=5)))  # fmt: skip
    out.append(await call("disqualify", beta.id, "no budget", at=T0 + timedelta(days=5)))
    out.append(await call("learn_preference", acme.id, "equipment_strategy",
                          "repair_over_upgrade", at=T0 + timedelta(days=6)))  # fmt: skip
    asset = await call("register_asset", acme.id, model="L-200", installed=T0.date(),
                       expected_life_years=10, at=T0 + timedelta(days=6))  # fmt: skip
    out.append(asset)
    out.append(await call("recommend_service", acme.id, asset.id,
                          repair_cost=sp.Money("100", "EUR"),
                          replacement_cost=sp.Money("1000", "EUR"), on=T0.date()))  # fmt: skip
    out.append(await call("import_leads", [{"name": "Eps", "email": "e@eps.example"},
                                           {"name": "Acme", "email": "buyer@acme.example"}],
                          channel="marketing_list", campaign="expo"))  # fmt: skip
    out.append(await call("import_purchases", [
        {"amount": sp.Money("5.00", "EUR"), "at": T0 + timedelta(days=7), "reference": "S-1",
         "email": "walkin@shop.example"},
        {"amount": sp.Money("7.00", "EUR"), "at": T0 + timedelta(days=8), "reference": "S-2",
         "account_id": acme.id},
    ]))  # fmt: skip
    with pytest.raises(sp.NotFound):
        await call("record_call", "nobody", sp.CallOutcome.NO_ANSWER)
    with pytest.raises(sp.InvalidTransition):
        await call("churn", beta.id, "gone", at=T0 + timedelta(days=10))
    as_of = T0 + timedelta(days=30)
    out += [
        await call("get", acme.id),
        await call("find", phone="+49 30 1234567"),
        await call("revenue"),
        await call("repeat_summary", as_of=as_of),
        await call("rfm", as_of=as_of),
        await call("funnel", as_of=as_of),
        await call("lead_flow", period="week", target=2, as_of=as_of),
        await call("time_in_stage", as_of=as_of),
        await call("referral_stats"),
        await call("stage_counts"),
    ]
    return out


def test_the_async_facade_answers_what_the_sync_one_answers():
    """The same quarter through both facades: equal answers, stored accounts and events."""
    sales, seen = _wired(sp.SalesProcess)
    expected = asyncio.run(_story(sales))
    asales, aseen = _wired(sp.AsyncSalesProcess)
    assert asyncio.run(_story(asales)) == expected
    assert aseen == seen
    stored = list(sales.repository.page())
    assert asyncio.run(asales.repository.page()) == stored


def test_the_async_facade_on_postgres_answers_what_the_sync_one_answers(postgres_schema):
    """The quarter on AsyncPostgresRepository (reports answered in SQL) equals in-memory sync."""
    psycopg_pool = pytest.importorskip("psycopg_pool")
    from salesprocess.storage.postgres_async import AsyncPostgresRepository  # noqa: PLC0415

    sales, seen = _wired(sp.SalesProcess)
    expected = asyncio.run(_story(sales))

    async def run() -> tuple[list[Any], list[sp.DomainEvent]]:
        async with psycopg_pool.AsyncConnectionPool(
            postgres_schema(), kwargs={"autocommit": True}, max_size=4, open=False
        ) as pool:
            repository = AsyncPostgresRepository(pool)
            await repository.migrate()
            asales, aseen = _wired(sp.AsyncSalesProcess, repository)
            return await _story(asales), aseen

    answers, aseen = asyncio.run(run())
    assert answers == expected
    assert aseen == seen


def test_events_wait_for_the_callers_block_and_vanish_with_its_rollback():
    """Inside the caller's atomic(): published when it commits, never if it rolls back."""
    awaiting = Awaiting()
    try:
        asales, seen = _wired(sp.AsyncSalesProcess)

        async def scenario() -> None:
            lead = await asales.capture_lead("Acme", email="a@acme.example", channel="referral")
            seen.clear()

            async def undone() -> None:
                async with asales.repository.atomic():
                    await asales.qualify(lead.id, override="walk-in")
                    assert seen == []
                    raise _Undo

            with pytest.raises(_Undo):
                await undone()
            assert seen == []
            assert (await asales.get(lead.id)).stage is sp.Stage.PROSPECT
            async with asales.repository.atomic():
                await asales.qualify(lead.id, override="walk-in")
                assert seen == []
            assert [type(event) for event in seen] == [sp.AccountQualified]

        awaiting(scenario())
    finally:
        awaiting.close()


def test_concurrent_commands_on_one_account_all_land_through_retries(postgres_schema):
    """Tasks recording calls at once on one account (a pool): each lands, one version each."""
    psycopg_pool = pytest.importorskip("psycopg_pool")
    from salesprocess.storage.postgres_async import AsyncPostgresRepository  # noqa: PLC0415

    async def run() -> tuple[sp.Account, list[int]]:
        async with psycopg_pool.AsyncConnectionPool(
            postgres_schema(), kwargs={"autocommit": True}, max_size=4, open=False
        ) as pool:
            repository = AsyncPostgresRepository(pool)
            await repository.migrate()
            asales = sp.AsyncSalesProcess(repository, max_retries=10)
            lead = await asales.capture_lead("Acme", email="a@acme.example", channel="referral")
            done = await asyncio.gather(
                *(asales.record_call(lead.id, sp.CallOutcome.NO_ANSWER) for _ in range(6))
            )
            return await asales.get(lead.id), sorted(account.version for account in done)

    final, versions = asyncio.run(run())
    assert versions == list(range(2, 8))
    assert len(final.calls) == 6
    assert final.version == 7


def test_a_sync_repository_is_refused_by_the_async_facade():
    """Wiring a sync store into the async facade fails at once, naming the argument."""
    with pytest.raises(sp.ValidationError) as refused:
        sp.AsyncSalesProcess(sp.storage.InMemoryRepository())  # type: ignore[arg-type]
    assert refused.value.field == "repository"


def test_an_async_repository_is_refused_by_the_sync_facade():
    """The other way round: an async store in SalesProcess fails at once too."""
    with pytest.raises(sp.ValidationError, match="AsyncSalesProcess") as refused:
        sp.SalesProcess(sp.storage.AsyncInMemoryRepository())  # type: ignore[arg-type]
    assert refused.value.field == "repository"


class _Slow(sp.storage.AsyncInMemoryRepository):
    """An async store whose saves give the loop away, as a database's round trips do."""

    async def save(self, account: sp.Account, *, expected_version: int) -> sp.Account:
        await asyncio.sleep(0.001)
        return await super().save(account, expected_version=expected_version)

    async def write_all(self, accounts: Any) -> Any:
        await asyncio.sleep(0.001)
        return await super().write_all(accounts)


def test_an_async_screen_leaves_the_collector_on_for_other_tasks_and_when_cancelled():
    """The sync screens pause the cyclic collector; the async one must not pause the loop's.

    Another task sees the collector on while ``screen_all`` runs; a screen cancelled halfway
    leaves it on, and its steps are closed (their cleanup ran) when the task ends.
    """
    repository = _Slow()
    sales, _seen = _wired(sp.AsyncSalesProcess, repository)

    async def scenario() -> tuple[list[bool], bool]:
        for number in range(40):
            await sales.capture_lead(
                f"Lead {number}", email=f"lead{number}@x.example", channel="cold_outreach",
                attributes={"fit": number % 2},
            )  # fmt: skip
        states: list[bool] = []
        screen = asyncio.create_task(sales.screen_all(at=T0 + timedelta(days=1)))

        async def watch() -> None:
            while not screen.done():
                states.append(gc.isenabled())
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.01)
        screen.cancel()
        with pytest.raises(asyncio.CancelledError):
            await screen
        await watcher
        return states, gc.isenabled()

    assert gc.isenabled()
    states, after = asyncio.run(scenario())
    assert states
    assert all(states)
    assert after
