"""Screening in bulk: the same records, events and reports as one by one, in batches."""

from __future__ import annotations

import gc
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import salesprocess as sp
from salesprocess import screening

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
CRITERIA = sp.Criteria.from_dict(
    {"and": [{"in": [{"var": "industry"}, ["manufacturing", "logistics"]]},
             {">=": [{"var": "employees"}, 50]}]},
    name="EU mid-market", version="2026-Q4",
)  # fmt: skip

_attributes = st.fixed_dictionaries(
    {},
    optional={
        "industry": st.sampled_from(["manufacturing", "logistics", "food", ""]),
        "employees": st.one_of(st.integers(-5, 500), st.text(max_size=3), st.none()),
    },
)


def process(repository: Any = None) -> tuple[sp.SalesProcess, list[sp.DomainEvent]]:
    counter = itertools.count(1)
    sales = sp.SalesProcess(
        repository, criteria=CRITERIA, clock=sp.FixedClock(T0),
        id_factory=lambda: f"id-{next(counter):04d}",
    )  # fmt: skip
    seen: list[sp.DomainEvent] = []
    sales.subscribe(seen.append)
    return sales, seen


def fill(sales: sp.SalesProcess, leads: list[dict[str, object]], qualified: set[int]) -> None:
    for number, attributes in enumerate(leads):
        lead = sales.capture_lead(f"Lead {number}", email=f"l{number}@x.example",
                                  channel="cold_outreach", attributes=attributes,
                                  at=T0 + timedelta(minutes=number))  # fmt: skip
        if number in qualified:
            sales.qualify(lead.id, override="walk-in", at=T0 + timedelta(hours=5))


@settings(max_examples=40, deadline=None)
@given(st.lists(_attributes, max_size=25), st.sets(st.integers(0, 24)), st.integers(1, 7))
def test_screen_all_equals_screening_one_by_one(leads, qualified, batch):
    """On random prospects: the stored accounts, events and reports of both are equal."""
    moment = T0 + timedelta(days=1)
    one, seen_one = process()
    fill(one, leads, qualified)
    prospects = list(one.repository.with_stage(sp.Stage.PROSPECT))
    seen_one.clear()
    expected = [one.screen(account.id, at=moment) for account in prospects]
    bulk, seen_bulk = process()
    fill(bulk, leads, qualified)
    seen_bulk.clear()
    accounts = list(bulk.repository.with_stage(sp.Stage.PROSPECT))
    reports = screening.screen_accounts(
        bulk._uow, accounts, criteria=CRITERIA, stage=sp.Stage.PROSPECT, moment=moment,
        batch_size=batch,
    )  # fmt: skip
    assert reports == expected
    assert [r.explain() for r in reports] == [r.explain() for r in expected]
    assert seen_bulk == seen_one
    assert list(bulk.repository.page()) == list(one.repository.page())


def test_screen_all_reports_progress_and_many_screens_named_accounts(any_repository):
    """progress(done, total) after each batch; screen_many screens the ids given, any stage."""
    sales, seen = process(any_repository)
    fill(sales, [{"industry": "logistics", "employees": 80}] * 5, qualified={4})
    ticks: list[tuple[int, int]] = []
    reports = screening.screen_accounts(
        sales._uow, list(sales.repository.with_stage(sp.Stage.PROSPECT)), criteria=CRITERIA,
        stage=sp.Stage.PROSPECT, moment=T0 + timedelta(days=1), progress=lambda *t: ticks.append(t),
        batch_size=3,
    )  # fmt: skip
    assert ticks == [(3, 4), (4, 4)]
    assert [r.passed for r in reports] == [True] * 4
    assert sum(isinstance(e, sp.LeadScreened) for e in seen) == 4
    (qualified,) = [a for a in sales.repository.page() if a.stage is sp.Stage.QUALIFIED]
    (report,) = sales.screen_many([qualified.id], at=T0 + timedelta(days=2))
    assert (report.account_id, report.passed) == (qualified.id, True)
    assert "pass  employees >= 50" in report.explain()


def test_a_bulk_screen_earlier_than_a_last_screening_stores_nothing():
    """Refused whole, before anything is stored."""
    sales, seen = process()
    fill(sales, [{"industry": "food"}] * 3, qualified=set())
    first = list(sales.repository.page())
    sales.screen(first[1].id, at=T0 + timedelta(days=3))
    seen.clear()
    before = list(sales.repository.page())
    with pytest.raises(sp.ValidationError) as info:
        sales.screen_all(at=T0 + timedelta(days=2))
    assert info.value.field == "at"
    assert list(sales.repository.page()) == before
    assert seen == []


def test_screen_many_takes_each_id_once_and_refuses_a_bare_string():
    """An id named twice is screened once; a str is no list of ids."""
    sales, _ = process()
    fill(sales, [{"industry": "logistics", "employees": 80}], qualified=set())
    (lead,) = sales.repository.page()
    (report,) = sales.screen_many([lead.id, lead.id], at=T0 + timedelta(days=1))
    assert report.passed
    with pytest.raises(sp.ValidationError):
        sales.screen_many(lead.id)


def test_a_bulk_screen_makes_no_cyclic_garbage_and_restores_the_collector(any_repository):
    """The collector is paused for the whole screen (nothing cyclic per prospect) and resumes.

    With the collector off, what a screen leaves for it to find does not grow with the
    prospects screened; after the screen, and after one a progress callback breaks, the
    collector is on again.
    """
    sales, _seen = process(any_repository)
    fill(sales, [{"industry": "logistics", "employees": 80}, {"industry": "food"}] * 3, set())
    found = []
    for day in (1, 2, 3):  # a warm-up; six prospects; thirty-six
        if day == 3:
            for number in range(30):
                sales.capture_lead(
                    f"More {number}", email=f"more{number}@x.example", channel="cold_outreach",
                    attributes={"industry": "food"}, at=T0 + timedelta(hours=1, minutes=number),
                )  # fmt: skip
        gc.collect()
        gc.disable()
        try:
            reports = sales.screen_all(at=T0 + timedelta(days=day))
            del reports
            found.append(gc.collect())
        finally:
            gc.enable()
    assert found[2] == found[1]  # what it leaves does not grow with the prospects
    states: list[bool] = []

    def broken(done: int, total: int) -> None:
        states.append(gc.isenabled())
        raise RuntimeError(f"progress {done}/{total}")

    with pytest.raises(RuntimeError, match="progress"):
        sales.screen_all(at=T0 + timedelta(days=4), progress=broken)
    assert states == [False]
    assert gc.isenabled()
    assert sum(r.passed for r in sales.screen_all(at=T0 + timedelta(days=5))) == 3


def test_sqlite_records_each_verdict_its_own_screening(tmp_path):
    """screen_out appends ``passed`` where the prefilter surely passes, ``failed`` where it
    surely fails, even when the two records differ in more than their verdict."""
    from salesprocess.account import Screening  # noqa: PLC0415
    from salesprocess.criteria_sql import prefilter  # noqa: PLC0415

    with sp.storage.SQLiteRepository(tmp_path / "screened.db") as repository:
        sales, _ = process(repository)
        fill(sales, [{"industry": "logistics", "employees": 80}, {"industry": "food"}], set())
        passed = Screening(T0 + timedelta(days=1), "A", "1", True)
        failed = Screening(T0 + timedelta(days=2, hours=3), "B", "2", False)
        page = repository.screen_out(
            prefilter(CRITERIA), stage=sp.Stage.PROSPECT, passed=passed, failed=failed,
            after=None, limit=10,
        )  # fmt: skip
        assert page.undecided == ()
        good, bad = (repository.get(account_id) for account_id in page.order)
        assert (good.screenings, bad.screenings) == ((passed,), (failed,))
        assert (good.version, bad.version) == (2, 2)
        assert repository.latest_screening(stage=sp.Stage.PROSPECT) == failed.at
