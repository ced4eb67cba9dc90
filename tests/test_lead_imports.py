"""Lead imports: a list of leads captured a batch at a time, never doubled."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import salesprocess as sp
from salesprocess.clock import require_aware
from salesprocess.commands.leads import lead_builder, new_lead

T0 = datetime(2026, 2, 1, 9, tzinfo=UTC)


@pytest.fixture
def sales(any_repository) -> sp.SalesProcess:
    return sp.SalesProcess(any_repository, clock=sp.FixedClock(T0))


def test_a_list_is_captured_once_whatever_its_repeats(sales):
    """Rows repeating a lead (in the file or in the store) are recognised, never doubled."""
    known = sales.capture_lead("Known", email="known@x.example", channel="cold_outreach")
    done = sales.import_leads(
        [
            {"name": "Acme", "email": "Buyer@Acme.example"},
            {"name": "Acme again", "email": "buyer@acme.example", "phone": "+49 30 111"},
            {"name": "Known", "email": "KNOWN@x.example"},
            {"name": "Beta", "phone": "+49 30 222", "attributes": {"employees": 120}},
        ],
        channel="marketing_list",
        campaign="spring-expo",
    )
    assert (done.rows, done.captured, done.known, done.rejected) == (4, 2, 2, ())
    acme = sales.find(email="buyer@acme.example")
    assert acme is not None
    assert (acme.phone, acme.source.campaign, acme.version) == ("+4930111", "spring-expo", 1)
    assert sales.get(known.id) == known
    beta = sales.find(phone="+4930222")
    assert beta is not None
    assert beta.attributes["employees"] == 120
    again = sales.import_leads(
        [{"name": "Acme", "email": "buyer@acme.example"}], channel="marketing_list"
    )
    assert (again.captured, again.known) == (0, 1)
    assert sum(sales.stage_counts().values()) == 3


def test_bad_rows_stop_the_whole_list_and_are_all_named(sales):
    """All or nothing: every bad row by position, nothing stored, nothing published."""
    seen: list[sp.DomainEvent] = []
    sales.subscribe(seen.append)
    rows = [
        {"name": "Good", "email": "good@x.example"},
        {"name": "", "email": "blank@x.example"},
        {"name": "No contact"},
        {"name": "Odd", "email": "not an email"},
        {"name": "Typo", "emial": "t@x.example"},
    ]
    with pytest.raises(sp.BadRows) as info:
        sales.import_leads(rows, channel="marketing_list")
    assert [row.position for row in info.value.rows] == [2, 3, 4, 5]
    assert "emial" in info.value.rows[3].message
    assert sum(sales.stage_counts().values()) == 0
    assert seen == []
    kept = sales.import_leads(rows, channel="marketing_list", all_or_nothing=False)
    assert (kept.captured, [row.position for row in kept.rejected]) == (1, [2, 3, 4, 5])


def test_a_row_whose_name_cannot_be_shown_is_a_bad_row_not_a_crash(sales):
    """A name whose repr raises, on a row with no contact: the row is named, nothing stored.

    Found by the hostile-input fuzz: the "neither email nor phone" message showed the name
    with ``repr()``.
    """

    class Unshowable:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    rows = [{"name": "Good", "email": "good@x.example"}, {"name": Unshowable()}]
    with pytest.raises(sp.BadRows) as info:
        sales.import_leads(rows, channel="marketing_list")
    assert [row.position for row in info.value.rows] == [2]
    assert "neither email nor phone" in info.value.rows[0].message
    assert sum(sales.stage_counts().values()) == 0


def test_a_row_contradicting_a_known_lead_is_refused_not_merged(sales):
    """A known phone with another email is the same refusal capture() gives."""
    sales.capture_lead("A", email="a@x.example", phone="+4930111", channel="cold_outreach")
    with pytest.raises(sp.BadRows, match=r"whose email is a@x\.example"):
        sales.import_leads(
            [{"name": "A", "email": "b@x.example", "phone": "+49 30 111"}], channel="referral"
        )


_TEXT = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["", " ", "a@b.cd"]))
_CONTACT = st.one_of(
    st.none(),
    st.sampled_from(["Buyer@Acme.example", "no email", "+49 30 1234567", "12", "(030) 1234"]),
    st.text(max_size=12),
    st.integers(),
)


@settings(max_examples=300, deadline=None)
@given(
    name=st.one_of(st.text(max_size=12), st.integers(), st.none()),
    email=_CONTACT,
    phone=_CONTACT,
    campaign=st.one_of(_TEXT, st.integers(), st.just(lead_keep := object())),
    attributes=st.one_of(
        st.none(),
        st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=4), max_size=3),
        st.just(["not", "a", "mapping"]),
    ),
    at=st.one_of(st.none(), st.just(T0), st.just(datetime(2026, 2, 1, 9)), st.just("2026-02-01")),
    channel=st.sampled_from(list(sp.Channel)),
    default=st.one_of(st.none(), st.just("spring-expo")),
)
def test_the_bulk_builder_makes_what_new_lead_makes(
    name, email, phone, campaign, attributes, at, channel, default
):
    """lead_builder's lead equals new_lead's for the same row, or both refuse it alike."""
    ids = iter(range(10))

    def built(make):
        try:
            return make()
        except sp.SalesProcessError as error:
            return type(error), str(error)

    def slow():
        return new_lead(
            f"id-{next(ids)}", name, channel, email=email, phone=phone,
            campaign=default if campaign is lead_keep else campaign, attributes=attributes,
            stage=sp.Stage.PROSPECT, at=T0 if at is None else require_aware(at), actor=None,
        )  # fmt: skip

    expected = built(slow)
    ids = iter(range(10))
    build = lead_builder(
        channel, campaign=default, stage=sp.Stage.PROSPECT, new_id=lambda: f"id-{next(ids)}",
        moment=lambda given: T0 if given is None else require_aware(given),
    )  # fmt: skip
    row = {"email": email, "phone": phone, "attributes": attributes, "at": at}
    if campaign is not lead_keep:
        row["campaign"] = campaign
    assert built(lambda: build(name, **row)) == expected


def test_progress_hears_of_every_row_in_order(sales):
    """progress(done, total): from the rows read to all of them, never backwards."""
    heard: list[tuple[int, int]] = []
    rows = [{"name": f"Lead {i}", "email": f"lead{i}@list.example"} for i in range(2500)]
    rows[7] = {"name": "No contact"}
    done = sales.import_leads(
        rows, channel="marketing_list", all_or_nothing=False, progress=lambda *p: heard.append(p)
    )
    assert done.captured == 2499
    assert heard[0] == (1, 2500)  # the bad row is decided once read
    assert heard[-1] == (2500, 2500)
    assert all(total == 2500 for _, total in heard)
    assert [d for d, _ in heard] == sorted(d for d, _ in heard)
    assert len(heard) == 1 + 3  # and after each of the three batches
    purchases: list[tuple[int, int]] = []
    sales.import_purchases(
        [{"email": "lead1@list.example", "amount": sp.Money("5", "EUR"), "at": T0,
          "reference": "R-1"}],
        progress=lambda *p: purchases.append(p), all_or_nothing=False,
    )  # fmt: skip
    assert purchases[-1] == (1, 1)
    with pytest.raises(sp.ValidationError, match="progress"):
        sales.import_leads(rows[:1], channel="referral", progress="loud")


def test_a_bulk_import_pauses_the_collector_and_restores_it(sales):
    """Both bulk imports run with the cyclic collector paused and leave it as they found it.

    On after an import that succeeds, one that refuses its rows and one whose progress
    callback breaks; off after one that started with it off.
    """
    states: list[bool] = []

    def watch(done: int, total: int) -> None:
        states.append(gc.isenabled())

    rows = [{"name": f"Lead {n}", "email": f"lead{n}@x.example"} for n in range(3)]
    sales.import_leads(rows, channel="marketing_list", progress=watch)
    sales.import_purchases(
        [
            {
                "email": "walkin@x.example",
                "name": "Walk-in",
                "amount": sp.Money("10.00", "EUR"),
                "at": T0,
                "reference": "r1",
            }
        ],
        progress=watch,
    )
    assert states
    assert not any(states)
    assert gc.isenabled()
    with pytest.raises(sp.BadRows):
        sales.import_leads([{"name": "No contact"}], channel="marketing_list")
    assert gc.isenabled()

    def broken(done: int, total: int) -> None:
        raise RuntimeError(f"progress {done}/{total}")

    with pytest.raises(RuntimeError, match="progress"):
        sales.import_leads(rows, channel="marketing_list", progress=broken)
    assert gc.isenabled()
    gc.disable()
    try:
        sales.import_leads(rows, channel="marketing_list")
        assert not gc.isenabled()
    finally:
        gc.enable()


class _CountingReads(sp.storage.InMemoryRepository):
    """The in-memory store, counting ``get`` and ``get_many`` calls."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = {"get": 0, "get_many": 0}

    def get(self, account_id: str) -> sp.Account:
        self.reads["get"] += 1
        return super().get(account_id)

    def get_many(self, account_ids: Iterable[str]) -> dict[str, sp.Account]:
        self.reads["get_many"] += 1
        return super().get_many(account_ids)


class _AsyncCountingReads(sp.storage.AsyncInMemoryRepository):
    """The async in-memory store, counting ``get`` and ``get_many`` calls."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = {"get": 0, "get_many": 0}

    async def get(self, account_id: str) -> sp.Account:
        self.reads["get"] += 1
        return await super().get(account_id)

    async def get_many(self, account_ids: Iterable[str]) -> dict[str, sp.Account]:
        self.reads["get_many"] += 1
        return await super().get_many(account_ids)


def test_a_list_read_again_reads_its_known_accounts_once_a_batch() -> None:
    """Both facades read a batch's known accounts with one get_many, never a get each."""
    rows = [{"name": f"Lead {n}", "email": f"lead{n}@x.example"} for n in range(1500)]
    store = _CountingReads()
    sales = sp.SalesProcess(store, clock=sp.FixedClock(T0))
    sales.import_leads(rows, channel="marketing_list")
    store.reads.update(get=0, get_many=0)
    assert sales.import_leads(rows, channel="marketing_list").known == 1500
    assert store.reads == {"get": 0, "get_many": 2}  # two batches of at most 1,000

    async def again() -> dict[str, int]:
        inner = _AsyncCountingReads()
        asales = sp.AsyncSalesProcess(inner, clock=sp.FixedClock(T0))
        await asales.import_leads(rows, channel="marketing_list")
        inner.reads.update(get=0, get_many=0)
        assert (await asales.import_leads(rows, channel="marketing_list")).known == 1500
        return inner.reads

    assert asyncio.run(again()) == {"get": 0, "get_many": 2}
