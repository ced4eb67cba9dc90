"""Two implementations, one answer: every report an adapter answers in SQL equals the oracle.

Random histories (captures from every channel and a few campaigns, qualify overrides, purchases
in two currencies, zero amounts and several on one day among them, referrals, churn,
disqualification, recycling) are driven through the public ``SalesProcess`` API on every
adapter; then each report, for random arguments, must equal the pure function over every
stored account, to the last digit (``repr`` included: ``Decimal`` places, types, order), and
refuse bad arguments with the same ``ValidationError``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import salesprocess as sp
from salesprocess import reports
from salesprocess.storage.protocol import every_account
from salesprocess.testing import assert_reports_agree, assert_same_account

T0 = datetime(2026, 1, 5, 22, 0, tzinfo=UTC)  # two hours before a UTC midnight
CAMPAIGNS = (None, "spring", "autumn fair")
AMOUNTS = ("0", "0.00", "12.50", "12.5", "100", "0.01", "999999.99", "3.333")
ZONES = (UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=9)))
_counter = itertools.count()


def _ids() -> Callable[[], str]:
    prefix = f"r{next(_counter):04d}-"
    numbers = itertools.count()
    return lambda: f"{prefix}{next(numbers):03d}"


# One lead's journey: captured at ``start`` hours after T0 from a channel and campaign, maybe
# qualified an hour later, then steps, each some seconds after the one before.
WAITS = (0, 0, 60, 3600, 4 * 3600, 86400, 86400 + 60, 3 * 86400, 9 * 86400, 40 * 86400)
journeys = st.fixed_dictionaries(
    {
        "start": st.integers(min_value=-50, max_value=2000),
        "number": st.integers(min_value=0, max_value=1000),
        "qualify": st.sampled_from([True, True, True, False]),
        "steps": st.lists(
            st.tuples(
                st.sampled_from(
                    ["buy", "buy", "buy", "buy", "refer", "churn", "disqualify", "recycle",
                     "qualify"]
                ),
                st.integers(min_value=0, max_value=1000),
                st.sampled_from(WAITS),
            ),
            max_size=8,
        ),
    }
)  # fmt: skip

moments = st.integers(min_value=-20, max_value=400).map(
    lambda hours: T0 + timedelta(hours=hours * 7)
)


def _drive(sales: sp.SalesProcess, history: list[dict[str, Any]]) -> None:
    """Run each journey through the public API; steps the lifecycle refuses are skipped."""
    for journey in history:
        number = journey["number"]
        at = T0 + timedelta(hours=journey["start"])
        lead = sales.capture_lead(
            f"Lead {number}",
            email=f"lead{next(_counter)}@x.example",
            channel=list(sp.Channel)[number % 4],
            campaign=CAMPAIGNS[number % len(CAMPAIGNS)],
            at=at.astimezone(ZONES[number % len(ZONES)]),
        )
        if journey["qualify"]:
            at += timedelta(hours=1)
            sales.qualify(lead.id, override="walk-in", at=at)
        for what, value, wait in journey["steps"]:
            at += timedelta(seconds=wait)
            moment = at.astimezone(ZONES[value % len(ZONES)])
            try:
                if what == "buy":
                    currency = "EUR" if value % 3 else "USD"
                    amount = sp.Money(AMOUNTS[value % len(AMOUNTS)], currency)
                    sales.record_purchase(lead.id, amount, at=moment)
                elif what == "refer":
                    email = f"friend{next(_counter)}@x.example"
                    sales.record_referral(lead.id, f"Friend {value}", email=email, at=moment)
                elif what == "qualify":
                    sales.qualify(lead.id, override="walk-in", at=moment)
                elif what == "churn":
                    sales.churn(lead.id, "went elsewhere", at=moment)
                elif what == "disqualify":
                    sales.disqualify(lead.id, "no budget", at=moment)
                else:
                    sales.recycle(lead.id, "budget again", at=moment)
            except sp.SalesProcessError:
                continue


def _same(ours: object, oracle: object) -> None:
    assert ours == oracle
    assert repr(ours) == repr(oracle)


histories = st.lists(journeys, min_size=1, max_size=8)
queries = st.fixed_dictionaries(
    {
        "as_of": moments,
        "since": st.none() | moments,
        "width": st.none() | st.integers(min_value=1, max_value=400),
        "channel": st.none() | st.sampled_from([c.value for c in sp.Channel]),
        "campaign": st.none() | st.sampled_from(["spring", "autumn fair", "none such"]),
        "period": st.sampled_from(["week", "month"]),
        "target": st.none() | st.integers(min_value=0, max_value=3),
        "flow_as_of": st.none() | moments,
    }
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories, query=queries)
def test_each_report_equals_the_pure_function(
    any_repository: Any, history: list[Any], query: dict[str, Any]
) -> None:
    """revenue, funnel, lead_flow, time_in_stage (the facade's) equal the oracle everywhere."""
    clock = sp.FixedClock(T0 + timedelta(days=400))
    sales = sp.SalesProcess(repository=any_repository, clock=clock, id_factory=_ids())
    _drive(sales, history)
    accounts = list(every_account(any_repository))
    since = query["since"]
    until = None if query["width"] is None else (since or T0) + timedelta(hours=query["width"])
    _same(
        sales.revenue(since=since, until=until),
        reports.revenue(accounts, since=since, until=until),
    )
    _same(sales.revenue(), reports.revenue(accounts))
    funnel_args = {
        "as_of": query["as_of"],
        "channel": query["channel"],
        "campaign": query["campaign"],
    }
    _same(sales.funnel(**funnel_args), reports.funnel(accounts, **funnel_args))
    _same(sales.funnel(as_of=clock.now()), reports.funnel(accounts, as_of=clock.now()))
    flow_args = {"period": query["period"], "target": query["target"], "as_of": query["flow_as_of"]}
    _same(sales.lead_flow(**flow_args), reports.lead_flow(accounts, **flow_args))
    _same(
        sales.time_in_stage(as_of=query["as_of"]),
        reports.time_in_stage(accounts, as_of=query["as_of"]),
    )
    assert_reports_agree(any_repository, as_of=query["as_of"])


def test_bad_arguments_are_refused_alike(any_repository: Any) -> None:
    """The SQL answers refuse what the pure functions refuse, naming the same field."""
    clock = sp.FixedClock(T0)
    sales = sp.SalesProcess(repository=any_repository, clock=clock, id_factory=_ids())
    _drive(sales, [{"start": 0, "number": 1, "qualify": True, "steps": [("buy", 1, 60)]}])
    accounts = list(every_account(any_repository))
    naive = datetime(2026, 1, 5)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("revenue", {"since": T0, "until": T0}),
        ("revenue", {"since": naive}),
        ("revenue", {"until": "tomorrow"}),
        ("funnel", {"as_of": naive}),
        ("funnel", {"as_of": T0, "channel": "fax"}),
        ("funnel", {"as_of": "today"}),
        ("lead_flow", {"period": "day"}),
        ("lead_flow", {"target": -1}),
        ("lead_flow", {"target": True}),
        ("lead_flow", {"as_of": naive}),
        ("time_in_stage", {"as_of": naive}),
    ]
    for name, arguments in cases:
        with pytest.raises(sp.ValidationError) as expected:
            getattr(reports, name)(accounts, **arguments)
        with pytest.raises(sp.ValidationError) as raised:
            getattr(sales, name)(**arguments)
        assert (raised.value.field, str(raised.value)) == (
            expected.value.field,
            str(expected.value),
        )


def test_an_empty_store_answers_like_the_oracle(any_repository: Any) -> None:
    """No accounts: no currency, an empty funnel, no periods."""
    sales = sp.SalesProcess(repository=any_repository, clock=sp.FixedClock(T0))
    _same(sales.revenue(), reports.revenue([]))
    _same(sales.funnel(), reports.funnel([], as_of=T0))
    _same(sales.lead_flow(as_of=T0), reports.lead_flow([], as_of=T0))


def test_sums_beyond_the_sql_columns_are_added_up_exactly(any_repository: Any) -> None:
    """Amounts with finer places than SQLite's millionths, or beyond the caller's precision."""
    clock = sp.FixedClock(T0)
    sales = sp.SalesProcess(repository=any_repository, clock=clock, id_factory=_ids())
    lead = sales.capture_lead(
        "Fine", email=f"fine{next(_counter)}@x.example", channel="referral", at=T0
    )
    sales.qualify(lead.id, override="walk-in", at=T0)
    amounts = ("0.0000001", "12345678901234567890.123", "1E+3", "7.10", "0.000000000000000000001")
    for day, amount in enumerate(amounts):
        sales.record_purchase(lead.id, sp.Money(amount, "EUR"), at=T0 + timedelta(days=day))
    accounts = list(every_account(any_repository))
    _same(sales.revenue(), reports.revenue(accounts))
    _same(
        sales.revenue(since=T0 + timedelta(days=2)),
        reports.revenue(accounts, since=T0 + timedelta(days=2)),
    )
    import decimal  # noqa: PLC0415

    with decimal.localcontext(decimal.Context(prec=12)):  # the oracle's sums round here
        _same(sales.revenue(), reports.revenue(accounts))


def _histories_out_of_order() -> Iterator[sp.Account]:
    # Stored accounts need not come from the lifecycle: history out of time order, purchases
    # before their account, stages of a lifecycle of one's own.
    base = T0
    yield sp.Account(
        "odd-1",
        "Odd",
        sp.Source("referral", "spring"),
        base,
        stage=sp.Stage("nurture"),
        history=(
            sp.HistoryEntry(None, sp.Stage.PROSPECT, "capture", base + timedelta(days=5)),
            sp.HistoryEntry(sp.Stage.PROSPECT, sp.Stage.QUALIFIED, "qualify", base),
            sp.HistoryEntry(
                sp.Stage.QUALIFIED, sp.Stage("nurture"), "nurture", base + timedelta(days=9)
            ),
        ),
        purchases=(
            sp.Purchase(sp.Money("5", "EUR"), base + timedelta(days=3)),
            sp.Purchase(sp.Money("5.0", "EUR"), base - timedelta(days=2)),
            sp.Purchase(sp.Money("1", "EUR"), base + timedelta(days=3, hours=1)),
        ),
    )
    yield sp.Account("odd-2", "No history", sp.Source("cold_outreach"), base)


@pytest.mark.parametrize("days", [-3, 0, 1, 2, 4, 6, 10])
def test_stored_accounts_of_any_shape_are_answered_alike(any_repository: Any, days: int) -> None:
    """Histories out of time order and custom stages, stored directly: still the oracle's."""
    any_repository.add_many(_histories_out_of_order())
    sales = sp.SalesProcess(repository=any_repository, clock=sp.FixedClock(T0))
    accounts = list(every_account(any_repository))
    moment = T0 + timedelta(days=days)
    _same(sales.funnel(as_of=moment), reports.funnel(accounts, as_of=moment))
    _same(sales.revenue(since=moment), reports.revenue(accounts, since=moment))
    _same(sales.lead_flow(as_of=moment), reports.lead_flow(accounts, as_of=moment))
    _same(sales.time_in_stage(as_of=moment), reports.time_in_stage(accounts, as_of=moment))
    assert_reports_agree(any_repository, as_of=moment)


def test_a_save_that_rewrites_history_is_answered_alike(any_repository: Any) -> None:
    """A save whose account does not extend the stored one replaces its rows."""
    sales = sp.SalesProcess(repository=any_repository, clock=sp.FixedClock(T0))
    lead = sales.capture_lead("A", email=f"a{next(_counter)}@x.example", channel="referral", at=T0)
    lead = sales.qualify(lead.id, override="walk-in", at=T0 + timedelta(hours=1))
    bought = sales.record_purchase(lead.id, sp.Money("10", "EUR"), at=T0 + timedelta(days=1))
    rewritten = bought.with_changes(
        purchases=(sp.Purchase(sp.Money("3.30", "USD"), T0 + timedelta(days=2)),),
        history=bought.history[:1],
        stage=sp.Stage.PROSPECT,
    )
    any_repository.save(rewritten, expected_version=bought.version)
    accounts = list(every_account(any_repository))
    assert accounts[0].purchases == rewritten.purchases
    _same(sales.revenue(), reports.revenue(accounts))
    _same(sales.funnel(), reports.funnel(accounts, as_of=T0))
    assert_reports_agree(any_repository, as_of=T0 + timedelta(days=3))


def test_a_long_customer_reads_back_exactly(any_repository: Any) -> None:
    """Purchases appended one save at a time come back exactly, read from the rows."""
    clock = sp.FixedClock(T0)
    # Two currencies on one account: the per-account currency rule is turned off.
    sales = sp.SalesProcess(
        repository=any_repository, clock=clock, currency=sp.CurrencyRule(per_account=False)
    )
    lead = sales.capture_lead(
        "Long", email=f"long{next(_counter)}@x.example", channel="referral", at=T0
    )
    latest = sales.qualify(lead.id, override="walk-in")
    for number in range(60):
        clock.advance(hours=5)
        moment = clock.now().astimezone(ZONES[number % len(ZONES)])
        amount = sp.Money(Decimal(number) / 4, "EUR" if number % 2 else "USD")
        latest = sales.record_purchase(lead.id, amount, at=moment)
    memo = getattr(any_repository, "_memo", None)
    if memo is not None:
        memo.clear()  # read the rows, not what this repository remembers
    assert_same_account(latest, any_repository.get(lead.id))
    _same(sales.revenue(), reports.revenue(list(every_account(any_repository))))


def sample_accounts() -> list[sp.Account]:
    """Accounts of every kind, as the storage migration tests store them the old way."""
    t = T0
    berlin = sp.FixedClock(t).now().astimezone(timezone(timedelta(hours=2)))
    return [
        sp.Account(
            "m-buyer",
            "Buyer",
            sp.Source("inbound_inquiry", "spring"),
            t,
            email="buyer@x.example",
            stage=sp.Stage.REPEAT,
            referral_code="K7M4PQ2X",
            history=(
                sp.HistoryEntry(None, sp.Stage.PROSPECT, "capture", t),
                sp.HistoryEntry(sp.Stage.PROSPECT, sp.Stage.QUALIFIED, "qualify", berlin,
                                "ann", "walk-in"),
                sp.HistoryEntry(sp.Stage.QUALIFIED, sp.Stage.CUSTOMER, "purchase",
                                t + timedelta(days=1)),
                sp.HistoryEntry(sp.Stage.CUSTOMER, sp.Stage.REPEAT, "purchase",
                                t + timedelta(days=3)),
            ),
            purchases=(
                sp.Purchase(sp.Money("10.00", "EUR"), t + timedelta(days=1), "INV-1"),
                sp.Purchase(sp.Money("0", "USD"), t + timedelta(days=1, hours=1)),
                sp.Purchase(sp.Money("2.5", "EUR"), (t + timedelta(days=3)).astimezone(
                    timezone(-timedelta(hours=9)))),
            ),
        ),
        sp.Account(
            "m-lead",
            "Lead \x00 with a NUL",
            sp.Source("cold_outreach", "autumn fair"),
            t - timedelta(days=40),
            history=(sp.HistoryEntry(None, sp.Stage.PROSPECT, "capture", t - timedelta(days=40)),),
        ),
        sp.Account(
            "m-lost",
            "Lost",
            sp.Source("marketing_list"),
            t,
            stage=sp.Stage.DISQUALIFIED,
            history=(
                sp.HistoryEntry(None, sp.Stage.PROSPECT, "capture", t),
                sp.HistoryEntry(sp.Stage.PROSPECT, sp.Stage.DISQUALIFIED, "disqualify",
                                t + timedelta(hours=5), reason="no \x00 budget"),
            ),
        ),
        sp.Account("m-bare", "Bare", sp.Source("referral"), t + timedelta(days=2)),
    ]  # fmt: skip


def test_an_equal_but_differently_written_purchase_is_written_again(any_repository: Any) -> None:
    """A save whose stored purchases are equal but not the same objects rewrites them."""
    t = T0
    many = tuple(sp.Purchase(sp.Money("1.10", "EUR"), t + timedelta(hours=n)) for n in range(100))
    account = sp.Account("long", "Long", sp.Source("referral"), t, purchases=many)
    stored = any_repository.add(account)
    renamed = list(stored.purchases)
    renamed[50] = sp.Purchase(
        sp.Money("1.1", "EUR"), (t + timedelta(hours=50)).astimezone(ZONES[1])
    )
    assert renamed[50] == stored.purchases[50]  # equal, written differently
    saved = any_repository.save(
        stored.with_changes(purchases=(*renamed, many[0])), expected_version=1
    )
    memo = getattr(any_repository, "_memo", None)
    if memo is not None:
        memo.clear()
    assert_same_account(saved, any_repository.get("long"))


BERLIN = ZoneInfo("Europe/Berlin")
# 25 October 2026, 03:00 CEST becomes 02:00 CET: the hour from 02:00 happens twice.
FIRST = datetime(2026, 10, 25, 2, 40, tzinfo=BERLIN)  # 00:40 UTC
SECOND = datetime(2026, 10, 25, 2, 20, fold=1, tzinfo=BERLIN)  # 01:20 UTC: later, yet 02:20


@pytest.mark.parametrize(
    "as_of",
    [
        datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN),
        datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN),
        datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
        datetime(2026, 10, 26, 12, 0, tzinfo=BERLIN),
    ],
)
def test_moments_of_one_zone_compare_as_python_compares_them(
    any_repository: Any, as_of: datetime
) -> None:
    """Moments sharing a bound's zone compare by wall time, as in Python: the same answers."""
    history = (
        sp.HistoryEntry(None, sp.Stage.PROSPECT, "capture", FIRST),
        sp.HistoryEntry(sp.Stage.PROSPECT, sp.Stage.QUALIFIED, "qualify", SECOND),
        sp.HistoryEntry(sp.Stage.QUALIFIED, sp.Stage.CUSTOMER, "purchase", SECOND),
    )
    any_repository.add_many(
        [
            sp.Account(
                "dst",
                "DST",
                sp.Source("referral", "spring"),
                FIRST,
                stage=sp.Stage.CUSTOMER,
                history=history,
                purchases=(
                    sp.Purchase(sp.Money("5.00", "EUR"), FIRST),
                    sp.Purchase(sp.Money("7.00", "EUR"), SECOND),
                ),
            ),
            sp.Account("plain", "Plain", sp.Source("referral"), T0, history=history[:1]),
        ]
    )
    sales = sp.SalesProcess(repository=any_repository, clock=sp.FixedClock(as_of))
    accounts = list(every_account(any_repository))
    _same(sales.funnel(as_of=as_of), reports.funnel(accounts, as_of=as_of))
    _same(sales.revenue(since=as_of), reports.revenue(accounts, since=as_of))
    _same(sales.revenue(until=as_of), reports.revenue(accounts, until=as_of))
    _same(sales.lead_flow(as_of=as_of), reports.lead_flow(accounts, as_of=as_of))
    _same(sales.time_in_stage(as_of=as_of), reports.time_in_stage(accounts, as_of=as_of))
    assert_reports_agree(any_repository, as_of=as_of)


def _referral_store(draw: st.DrawFn) -> list[sp.Account]:
    """Accounts holding referrals of every kind: new and linked, to accounts stored or not."""
    prefix = f"x{next(_counter)}-"  # the store is the test's: each example adds to it
    names = st.sampled_from(["a", "b", "c", "d", "e", "f\x00g", "h'i"])
    ids = [prefix + i for i in draw(st.lists(names, min_size=1, max_size=7, unique=True))]
    accounts = []
    for number, account_id in enumerate(ids):
        referrals = tuple(
            sp.Referral(target, T0 + timedelta(hours=hour), new=new)
            for target, hour, new in draw(
                st.lists(
                    st.tuples(st.sampled_from([*ids, "gone"]), st.integers(0, 9), st.booleans()),
                    max_size=4,
                )
            )
        )
        bought = draw(st.booleans())
        attributes = {"referrals": "a key of the same name"} if draw(st.booleans()) else {}
        accounts.append(
            sp.Account(
                account_id, f"Account {number}", sp.Source("referral"), T0,
                attributes=attributes, referrals=referrals,
                purchases=(sp.Purchase(sp.Money("5", "EUR"), T0),) if bought else (),
            )
        )  # fmt: skip
    return accounts


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_referral_stats_of_any_store_are_the_oracles(any_repository: Any, data: Any) -> None:
    """Referrals new and linked, to stored accounts and to none, attributes named referrals.

    Each example adds its accounts to the store; the answer is compared over all of them.
    """
    any_repository.add_many(data.draw(st.composite(_referral_store)()))
    accounts = list(every_account(any_repository))
    sales = sp.SalesProcess(repository=any_repository, clock=sp.FixedClock(T0))
    _same(sales.referral_stats(), reports.referral_stats(accounts))
    if hasattr(any_repository, "report_referral_stats"):
        _same(any_repository.report_referral_stats(), reports.referral_stats(accounts))
