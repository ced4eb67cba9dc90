"""Recurring revenue (USAGE section 2): purchases, imports, and the read side's reports."""

from __future__ import annotations

import itertools
import warnings
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import salesprocess as sp
from salesprocess import reports

CDNOW = Path(__file__).parent / "data" / "cdnow" / "cdnow_sample.txt"


def at(y: int, m: int, d: int, hour: int = 9) -> datetime:
    return datetime(y, m, d, hour, tzinfo=UTC)


def eur(amount: str) -> sp.Money:
    return sp.Money(amount, "EUR")


def counting() -> Any:
    counter = itertools.count(1)
    return lambda: f"id-{next(counter):05d}"


@pytest.fixture
def sales() -> sp.SalesProcess:
    return sp.SalesProcess(clock=sp.FixedClock(at(2026, 12, 31)), id_factory=counting())


def customer(sales: sp.SalesProcess, email: str = "buyer@acme.example") -> sp.Account:
    lead = sales.capture_lead("Acme", email=email, channel="marketing_list", at=at(2026, 1, 5))
    return sales.qualify(lead.id, override="walk-in", at=at(2026, 1, 7))


def cdnow_rows() -> list[sp.PurchaseRow]:
    rows = []
    for line in CDNOW.read_text(encoding="ascii").splitlines():
        customer_id, _sample, day, _cds, dollars = line.split()
        moment = datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC)
        rows.append(sp.PurchaseRow(sp.Money(dollars, "USD"), moment, account_id=f"cd{customer_id}"))
    return rows


def lifetimes_summary(rows: list[tuple[str, datetime, Decimal]], end: date, period: str) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandas as pd  # noqa: PLC0415
        from lifetimes.utils import summary_data_from_transaction_data  # noqa: PLC0415

        frame = pd.DataFrame(
            {
                "id": [r[0] for r in rows],
                "date": [r[1].astimezone(UTC).replace(tzinfo=None) for r in rows],
                "value": [float(r[2]) for r in rows],
            }
        )
        summary = summary_data_from_transaction_data(
            frame, "id", "date", monetary_value_col="value",
            observation_period_end=pd.Timestamp(end), freq=period,
        )  # fmt: skip
    return {
        str(i): (int(r["frequency"]), int(r["recency"]), int(r["T"]), float(r["monetary_value"]))
        for i, r in summary.iterrows()
    }


def ours(rows: list[sp.RepeatRow]) -> dict:
    return {r.account_id: (r.frequency, r.recency, r.T, float(r.monetary_value)) for r in rows}


def assert_same_summary(expected: dict, actual: dict) -> None:
    assert expected.keys() == actual.keys()
    for key, (frequency, recency, t, value) in expected.items():
        assert actual[key][:3] == (frequency, recency, t), key
        assert actual[key][3] == pytest.approx(value, abs=0.006), key  # ours rounds to the cent


# -- purchases ---------------------------------------------------------------------------------


def test_usage_section_2_as_written(sales):
    """Purchases with references, then revenue, the repeat summary and RFM, as USAGE shows."""
    acct = customer(sales)
    acct = sales.record_purchase(acct.id, eur("12000.00"), at=at(2026, 3, 1), reference="INV-1001")
    assert acct.stage is sp.Stage.CUSTOMER
    acct = sales.record_purchase(acct.id, eur("800.00"), at=at(2026, 6, 1), reference="INV-1002")
    assert acct.stage is sp.Stage.REPEAT
    again = sales.record_purchase(acct.id, eur("800.00"), at=at(2026, 6, 1), reference="INV-1002")
    assert len(again.purchases) == 2
    rev = sales.revenue()["EUR"]
    assert rev.total == eur("12800.00")
    assert (rev.repeat_revenue, rev.repeat_share) == (eur("12800.00"), Decimal("1.0000"))
    assert (rev.repeat_customer_rate, rev.average_order_value) == (Decimal(1), eur("6400.00"))
    (row,) = [r for r in sales.repeat_summary(as_of=at(2026, 12, 31)) if r.account_id == acct.id]
    assert (row.frequency, row.recency, row.T) == (1, 92, 305)
    assert row.monetary_value == Decimal("800.00")
    (scored,) = sales.rfm(as_of=at(2026, 12, 31))
    assert (scored.account_id, scored.frequency, scored.recency_days) == (acct.id, 2, 213)


def test_a_known_reference_is_recorded_once_and_publishes_nothing(sales):
    """The same reference and amount again: the account comes back unchanged, no event."""
    acct = customer(sales)
    acct = sales.record_purchase(acct.id, eur("10.00"), at=at(2026, 3, 1), reference="INV-1")
    seen: list[sp.DomainEvent] = []
    sales.subscribe(seen.append)
    again = sales.record_purchase(acct.id, eur("10"), at=at(2026, 3, 9), reference="INV-1")
    assert again == acct
    assert seen == []


def test_a_known_reference_with_another_amount_is_a_conflict(sales):
    """A reference names one purchase: another amount is a ConflictError, nothing changes."""
    acct = customer(sales)
    acct = sales.record_purchase(acct.id, eur("10.00"), at=at(2026, 3, 1), reference="INV-1")
    with pytest.raises(sp.ConflictError, match=r"INV-1 was recorded .* for 10\.00 EUR, not 11\.00"):
        sales.record_purchase(acct.id, eur("11.00"), at=at(2026, 3, 2), reference="INV-1")
    assert sales.get(acct.id) == acct


@pytest.mark.parametrize(
    ("amount", "moment", "field"),
    [
        (eur("-1.00"), at(2026, 3, 1), "amount"),
        (Decimal("1.00"), at(2026, 3, 1), "amount"),
        (eur("1.00"), datetime(2026, 3, 1), "at"),
        (eur("1.00"), at(2026, 1, 1), "at"),  # before the account existed
    ],
)
def test_bad_purchases_are_refused_and_store_nothing(sales, amount, moment, field):
    """Negative or bare amounts, naive moments, a moment before the account: refused."""
    acct = customer(sales)
    with pytest.raises(sp.ValidationError) as info:
        sales.record_purchase(acct.id, amount, at=moment)
    assert info.value.field == field
    assert sales.get(acct.id) == acct


def test_an_unknown_currency_is_refused():
    """Money refuses a code that is not ISO 4217."""
    with pytest.raises(sp.ValidationError, match="not an ISO 4217 code"):
        sp.Money("1.00", "EURO")


# -- imports -----------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path) -> Any:
    if request.param == "memory":
        yield sp.storage.InMemoryRepository()
        return
    with sp.storage.SQLiteRepository(tmp_path / "sales.db") as sqlite:
        yield sqlite


def test_the_cdnow_sample_imports_with_one_call(store):
    """6,919 real purchases: one account per customer, REPEAT as the days say, exact totals."""
    sales = sp.SalesProcess(store, clock=sp.FixedClock(at(1998, 7, 1)))
    rows = cdnow_rows()
    done = sales.import_purchases(rows)
    assert (done.rows, done.recorded, done.duplicates, done.rejected) == (6919, 6919, 0, ())
    days: dict[str, set[date]] = defaultdict(set)
    for row in rows:
        days[row.account_id].add(row.at.date())
    assert len(done.created) == len(days) == 2357
    counts = sales.stage_counts()
    assert counts[sp.Stage.REPEAT] == sum(1 for d in days.values() if len(d) > 1)
    assert counts[sp.Stage.CUSTOMER] == sum(1 for d in days.values() if len(d) == 1)
    total = sum((row.amount.amount for row in rows), Decimal(0))
    usd = sales.revenue()["USD"]
    assert usd.total == sp.Money(total, "USD")
    assert usd.purchases == 6919
    assert usd.customers == 2357
    walk_in = sales.get("cd00004")
    assert [entry.event for entry in walk_in.history] == [
        "capture",
        "qualify",
        "purchase",
        "purchase",
    ]
    assert "walk-in purchase" in (walk_in.history[1].reason or "")


@pytest.mark.parametrize("period", ["D", "W"])
def test_the_repeat_summary_of_cdnow_equals_lifetimes(period):
    """frequency, recency, T and monetary_value as lifetimes' own function computes them."""
    sales = sp.SalesProcess()
    rows = cdnow_rows()
    sales.import_purchases(rows)
    end = date(1997, 9, 30)  # within the data: later purchases are left out, as lifetimes does
    expected = lifetimes_summary(
        [(row.account_id or "", row.at, row.amount.amount) for row in rows], end, period
    )
    actual = ours(sales.repeat_summary(as_of=datetime(1997, 9, 30, 18, tzinfo=UTC), period=period))
    assert_same_summary(expected, actual)


_purchases = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(0, 400),  # days after 2025-01-01
        st.integers(0, 23),
        st.decimals(min_value=0, max_value=500, places=2),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(_purchases, st.integers(0, 500), st.sampled_from(["D", "W"]))
def test_the_repeat_summary_equals_lifetimes_on_random_histories(purchases, end_day, period):
    """On any purchase history and any end, the pure function agrees with lifetimes."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    moments = [(who, start + timedelta(days=d, hours=h), value) for who, d, h, value in purchases]
    accounts = []
    for who in sorted({m[0] for m in moments}):
        mine = sorted((m for m in moments if m[0] == who), key=lambda m: m[1])
        bought = tuple(sp.Purchase(sp.Money(v, "EUR"), t) for _, t, v in mine)
        accounts.append(sp.Account(who, who, sp.Source("referral"), start, purchases=bought))
    end = (start + timedelta(days=end_day)).date()
    as_of = datetime.combine(end, datetime.min.time(), UTC)
    expected = lifetimes_summary(moments, end, period)
    if not expected:  # every purchase falls after as_of's period
        with pytest.raises(sp.ValidationError, match="before every purchase"):
            reports.repeat_summary(accounts, as_of=as_of, period=period)
        return
    assert_same_summary(
        expected, ours(reports.repeat_summary(accounts, as_of=as_of, period=period))
    )


def test_an_import_with_bad_rows_stores_nothing_and_names_every_row(sales):
    """All or nothing: each bad row by position and reason; nothing stored or published."""
    acct = customer(sales)
    sales.record_purchase(acct.id, eur("5.00"), at=at(2026, 3, 1), reference="INV-1")
    seen: list[sp.DomainEvent] = []
    sales.subscribe(seen.append)
    before = {a.id: a for a in sales.repository.page()}
    rows: list[Any] = [
        {"amount": eur("1.00"), "at": at(2026, 4, 1), "email": "new@shop.example"},
        {"amount": 1.5, "at": at(2026, 4, 1), "account_id": acct.id},  # a float
        {"amount": eur("1.00"), "at": datetime(2026, 4, 1), "account_id": acct.id},
        {"amount": eur("1.00"), "at": at(2026, 4, 1)},  # nobody named
        {"amount": eur("9.00"), "at": at(2026, 4, 2), "account_id": acct.id, "reference": "INV-1"},
        {"amount": eur("1.00"), "at": at(2026, 2, 1), "account_id": acct.id},  # before INV-1
        {"amount": eur("1.00"), "at": at(2026, 4, 1), "colour": "red", "account_id": acct.id},
    ]
    with pytest.raises(sp.BadRows) as info:
        sales.import_purchases(rows)
    # Every bad row at once: those that cannot be read, and those the rules refuse.
    assert [row.position for row in info.value.rows] == [2, 3, 4, 5, 6, 7]
    assert {a.id: a for a in sales.repository.page()} == before
    assert seen == []
    rows = [rows[0], rows[4], rows[5]]
    with pytest.raises(sp.BadRows) as info:
        sales.import_purchases(rows)
    assert [row.position for row in info.value.rows] == [2, 3]
    assert "INV-1 was recorded" in info.value.rows[0].message
    assert info.value.rows[1].field == "at"
    assert {a.id: a for a in sales.repository.page()} == before
    assert seen == []


def test_an_import_may_keep_the_good_rows(sales):
    """With all_or_nothing=False the good rows land and the bad come back with their reasons."""
    acct = customer(sales)
    done = sales.import_purchases(
        [
            {"amount": eur("1.00"), "at": at(2026, 4, 1), "account_id": acct.id, "reference": "A"},
            {"amount": eur("1.00"), "at": at(2026, 4, 1), "account_id": acct.id, "reference": "A"},
            {"amount": eur("2.00"), "at": at(2026, 4, 2), "account_id": acct.id, "reference": "A"},
            {"amount": "2.00", "at": at(2026, 4, 2), "account_id": acct.id},
        ],
        all_or_nothing=False,
    )
    assert (done.recorded, done.duplicates) == (1, 1)
    assert [row.position for row in done.rejected] == [3, 4]
    assert [p.reference for p in sales.get(acct.id).purchases] == ["A"]


def test_importing_the_same_rows_twice_changes_nothing(sales):
    """Rows with references are idempotent: a second import records only duplicates."""
    rows = [
        sp.PurchaseRow(eur("3.00"), at(2026, 5, day), reference=f"R{day}", email="w@in.example")
        for day in (1, 2, 3)
    ]
    first = sales.import_purchases(rows)
    stored = list(sales.repository.page())
    second = sales.import_purchases(rows)
    assert (first.recorded, len(first.created)) == (3, 1)
    assert (second.recorded, second.duplicates, second.created) == (0, 3, ())
    assert list(sales.repository.page()) == stored
    (walk_in,) = stored
    assert (walk_in.email, walk_in.stage) == ("w@in.example", sp.Stage.REPEAT)


def test_a_prospect_cannot_buy_through_an_import_either(sales):
    """The rules of record_purchase hold: a known prospect's row is refused, not qualified."""
    lead = sales.capture_lead("P", email="p@p.example", channel="cold_outreach", at=at(2026, 1, 1))
    with pytest.raises(sp.BadRows, match="qualify it first"):
        sales.import_purchases([sp.PurchaseRow(eur("1.00"), at(2026, 2, 1), email="P@p.example")])
    assert sales.get(lead.id) == lead


# -- reports -----------------------------------------------------------------------------------


def test_reports_refuse_bad_arguments(sales):
    """Unknown periods, naive moments, an empty window and as_of before any data: refused."""
    acct = customer(sales)
    sales.record_purchase(acct.id, eur("1.00"), at=at(2026, 3, 1))
    cases = [
        (lambda: sales.repeat_summary(period="M"), "period"),
        (lambda: sales.repeat_summary(as_of=at(2026, 2, 1)), "as_of"),
        (lambda: sales.repeat_summary(as_of=datetime(2026, 4, 1)), "as_of"),
        (lambda: sales.revenue(since=at(2026, 4, 1), until=at(2026, 4, 1)), "since"),
        (lambda: sales.revenue(until=datetime(2026, 4, 1)), "until"),
        (lambda: sales.lead_flow(period="day"), "period"),
        (lambda: sales.lead_flow(target=-1), "target"),
        (lambda: sales.funnel(channel="fax"), "channel"),
        (lambda: sales.rfm(as_of=datetime(2026, 4, 1)), "as_of"),
    ]
    for call, field in cases:
        with pytest.raises(sp.ValidationError) as info:
            call()
        assert info.value.field == field


def test_revenue_keeps_currencies_apart_and_windows_purchases(sales):
    """Per currency, never converted; since is included, until is not."""
    a = customer(sales, "a@x.example")
    b = customer(sales, "b@x.example")
    sales.record_purchase(a.id, eur("10.00"), at=at(2026, 3, 1))
    sales.record_purchase(a.id, eur("20.00"), at=at(2026, 3, 1, 15))  # same day: not repeat
    sales.record_purchase(b.id, sp.Money("7", "USD"), at=at(2026, 3, 2))
    sales.record_purchase(b.id, sp.Money("3", "USD"), at=at(2026, 3, 5))
    everything = sales.revenue()
    assert list(everything) == ["EUR", "USD"]
    assert everything["EUR"].repeat_customers == 0
    assert everything["EUR"].repeat_share == Decimal("0.0000")
    assert str(everything["EUR"].repeat_revenue.amount) == "0.00"  # the total's places, not "0"
    assert everything["USD"].repeat_revenue == sp.Money("10", "USD")
    window = sales.revenue(since=at(2026, 3, 2), until=at(2026, 3, 5))
    assert list(window) == ["USD"]
    assert window["USD"].total == sp.Money("7", "USD")
    assert window["USD"].repeat_customer_rate == Decimal(0)


def test_the_funnel_counts_what_accounts_did(sales):
    """A referrer that bought twice counts as customer and repeat, whatever its stage."""
    a = customer(sales, "a@x.example")
    sales.record_purchase(a.id, eur("10.00"), at=at(2026, 3, 1))
    sales.record_referral(a.id, "Friend", email="f@x.example", at=at(2026, 3, 2))
    sales.record_purchase(a.id, eur("10.00"), at=at(2026, 3, 9))
    lost = sales.capture_lead("L", email="l@x.example", channel="cold_outreach", at=at(2026, 1, 5))
    sales.disqualify(lost.id, "no budget", at=at(2026, 1, 6))
    funnel = sales.funnel(as_of=at(2026, 12, 31))
    table = {r.stage: (r.now, r.reached, r.conversion) for r in (*funnel.ladder, *funnel.side)}
    assert table[sp.Stage.PROSPECT] == (1, 3, Decimal("0.3333"))
    assert table[sp.Stage.QUALIFIED] == (0, 1, Decimal(1))
    assert table[sp.Stage.CUSTOMER] == (0, 1, Decimal(1))
    assert table[sp.Stage.REPEAT] == (0, 1, Decimal(1))
    assert table[sp.Stage.REFERRER] == (1, 1, None)
    assert table[sp.Stage.DISQUALIFIED] == (1, 1, None)
    before = sales.funnel(as_of=at(2026, 3, 1, 12))
    assert before.rung(sp.Stage.REPEAT).reached == 0
    only_cold = sales.funnel(as_of=at(2026, 12, 31), channel="cold_outreach")
    assert only_cold.rung(sp.Stage.PROSPECT).reached == 1


def test_lead_flow_lists_every_week_and_flags_the_short_ones(sales):
    """Empty weeks are listed; a week under the target is flagged."""
    for day, email in ((5, "a@x.example"), (6, "b@x.example"), (21, "c@x.example")):
        lead = sales.capture_lead("L", email=email, channel="inbound_inquiry", at=at(2026, 1, day))
        if day == 6:
            sales.qualify(lead.id, override="walk-in", at=at(2026, 1, 7))
    weeks = sales.lead_flow(period="week", target=1)
    assert [(w.start.isoformat(), w.leads, w.qualified, w.below_target) for w in weeks] == [
        ("2026-01-05", 2, 1, False),
        ("2026-01-12", 0, 0, True),
        ("2026-01-19", 1, 0, True),
    ]
    (month,) = sales.lead_flow(period="month")
    assert (month.new_leads[sp.Channel.INBOUND_INQUIRY], month.below_target) == (3, None)


@pytest.mark.parametrize("period", ["week", "month"])
def test_lead_flow_ends_at_the_last_period_of_the_calendar(period):
    """A lead in the calendar's last week or month is listed; stepping past it is not tried."""
    late = sp.SalesProcess(clock=sp.FixedClock(datetime(9999, 12, 29, tzinfo=UTC)))
    late.capture_lead("Late", email="late@x.example", channel="referral")
    (row,) = late.lead_flow(period=period, as_of=datetime(9999, 12, 29, 12, tzinfo=UTC))
    assert (row.leads, row.start.year) == (1, 9999)


def test_time_in_stage_counts_completed_stays(sales):
    """Median and nearest-rank 90th percentile of the stays that ended."""
    for days in (1, 2, 3, 4, 10):
        lead = sales.capture_lead(
            "L", email=f"l{days}@x.example", channel="referral", at=at(2026, 1, 1)
        )
        sales.qualify(lead.id, override="walk-in", at=at(2026, 1, 1) + timedelta(days=days))
    stays = sales.time_in_stage(as_of=at(2026, 12, 31))
    prospect = stays[sp.Stage.PROSPECT]
    assert (prospect.stays, prospect.median_days, prospect.p90_days) == (5, 3.0, 10.0)
    assert sp.Stage.QUALIFIED not in stays  # still going: no length yet


@pytest.mark.parametrize("batch", [1, 1000])
def test_a_customer_named_two_ways_is_one_customer_whatever_the_batches(sales, batch):
    """Rows naming a customer by id and by email are decided together, in time order."""
    acct = customer(sales)
    rows = [
        sp.PurchaseRow(eur("2.00"), at(2026, 3, 10), reference="B", account_id=acct.id),
        sp.PurchaseRow(eur("1.00"), at(2026, 3, 5), reference="A", email="buyer@acme.example"),
    ]
    done = sales._uow  # the batch size is the library's own knob: call it through imports
    from salesprocess import imports  # noqa: PLC0415

    result = imports.import_purchases(
        done, rows, transitions=sales.transitions, new_id=lambda: "unused", batch_size=batch
    )
    assert (result.recorded, result.rejected) == (2, ())
    assert [p.reference for p in sales.get(acct.id).purchases] == ["A", "B"]
