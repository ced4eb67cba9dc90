"""Customer service (USAGE section 4): the service profile, assets, repair or replace."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import salesprocess as sp
from salesprocess.account import Account, Asset, Preference, Source


def at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


def eur(amount: str) -> sp.Money:
    return sp.Money(amount, "EUR")


@pytest.fixture
def sales() -> sp.SalesProcess:
    return sp.SalesProcess(clock=sp.FixedClock(at(2026, 11, 2)))


@pytest.fixture
def acct(sales: sp.SalesProcess) -> sp.Account:
    return sales.capture_lead(
        "Acme Tools GmbH", email="buyer@acme.example", channel="marketing_list", at=at(2026, 1, 5)
    )


def test_usage_section_4_as_written(sales, acct):
    """Learn a preference, register a lathe, and get a repair recommendation that explains."""
    sales.learn_preference(
        acct.id,
        "equipment_strategy",
        "repair_over_upgrade",
        evidence="Keeps machines running 15+ years",
        at=at(2026, 1, 7),
    )
    lathe = sales.register_asset(
        acct.id, model="Lathe L-200", installed=date(2015, 5, 1), expected_life_years=20
    )
    rec = sales.recommend_service(
        acct.id, lathe.id, repair_cost=eur("900.00"), replacement_cost=eur("14000.00")
    )
    assert rec.action is sp.ServiceAction.REPAIR
    text = rec.explain()
    assert "equipment_strategy = repair_over_upgrade" in text
    assert 'learned 2026-01-07: "Keeps machines running 15+ years"' in text  # the evidence
    assert "900.00 EUR" in text
    assert "14000.00 EUR" in text
    stored = sales.get(acct.id)
    assert stored.assets == (lathe,)
    assert stored.preference("equipment_strategy").evidence == "Keeps machines running 15+ years"


def test_the_latest_preference_wins_and_history_is_kept(sales, acct):
    """A later answer to the same question replaces the earlier one; both are kept."""
    sales.learn_preference(acct.id, "equipment_strategy", "upgrade_over_repair", at=at(2026, 1, 7))
    sales.learn_preference(acct.id, "equipment_strategy", "repair_over_upgrade", at=at(2026, 2, 7))
    stored = sales.get(acct.id)
    assert stored.preference("equipment_strategy").value == "repair_over_upgrade"
    assert [p.value for p in stored.preferences] == ["upgrade_over_repair", "repair_over_upgrade"]
    assert stored.preference("budget") is None


def test_preferences_are_recorded_in_order(sales, acct):
    """A preference dated before the last one is refused, and nothing is stored."""
    sales.learn_preference(acct.id, "k", "v", at=at(2026, 2, 7))
    before = sales.get(acct.id)
    with pytest.raises(sp.ValidationError, match="in order"):
        sales.learn_preference(acct.id, "k", "w", at=at(2026, 2, 6))
    assert sales.get(acct.id) == before


def test_commands_publish_their_events(sales, acct):
    """Learning a preference and registering an asset each publish one event."""
    seen: list[sp.DomainEvent] = []
    sales.subscribe(seen.append)
    sales.learn_preference(acct.id, "k", "v")
    asset = sales.register_asset(
        acct.id, model="Press", installed=date(2020, 1, 1), expected_life_years=10
    )
    assert [type(e) for e in seen] == [sp.PreferenceLearned, sp.AssetRegistered]
    assert seen[1].asset == asset


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"installed": datetime(2015, 5, 1, tzinfo=UTC)}, "installed"),
        ({"installed": "2015-05-01"}, "installed"),
        ({"expected_life_years": 0}, "expected_life_years"),
        ({"expected_life_years": -5}, "expected_life_years"),
        ({"installed": date(2026, 11, 3)}, "installed"),  # the day after it is registered
        ({"expected_life_years": True}, "expected_life_years"),
        ({"expected_life_years": 20.0}, "expected_life_years"),
        ({"model": "  "}, "model"),
    ],
)
def test_bad_assets_are_refused(sales, acct, kwargs, field):
    """Each malformed asset field is named, and the account is left as it was."""
    fields = {"model": "Lathe", "installed": date(2015, 5, 1), "expected_life_years": 20}
    fields.update(kwargs)
    with pytest.raises(sp.ValidationError) as caught:
        sales.register_asset(acct.id, **fields)
    assert caught.value.field == field
    assert sales.get(acct.id) == acct


def test_an_asset_installed_after_its_registration_is_refused(sales, acct):
    """An installation date after the day of ``at`` is refused; that very day is fine."""
    with pytest.raises(sp.ValidationError, match="installed on 2026-06-02, after the day"):
        sales.register_asset(
            acct.id, model="Press", installed=date(2026, 6, 2), expected_life_years=10,
            at=at(2026, 6, 1),
        )  # fmt: skip
    assert sales.get(acct.id) == acct
    made = sales.register_asset(
        acct.id, model="Press", installed=date(2026, 6, 1), expected_life_years=10,
        at=at(2026, 6, 1),
    )  # fmt: skip
    assert sales.get(acct.id).assets == (made,)


@pytest.mark.parametrize(
    ("key", "value", "field"), [("", "v", "key"), ("k", "", "value"), ("k", 3, "value")]
)
def test_bad_preferences_are_refused(sales, acct, key, value, field):
    """An empty key or a value that is not text is refused."""
    with pytest.raises(sp.ValidationError) as caught:
        sales.learn_preference(acct.id, key, value)
    assert caught.value.field == field


def test_recommending_for_an_unknown_asset_is_not_found(sales, acct):
    """An asset id the account does not have raises NotFound."""
    with pytest.raises(sp.NotFound, match="no asset 'nope'"):
        sales.recommend_service(acct.id, "nope", repair_cost=eur("1"), replacement_cost=eur("2"))


LATHE = Asset("lathe-1", "Lathe L-200", installed=date(2015, 5, 1), expected_life_years=20)
ON = date(2026, 11, 2)  # 11.5 years used: 42.5% of its life left, worth 5944.97... of 14000


def shop(value: str | None = None) -> Account:
    preferences = (
        () if value is None else (Preference("equipment_strategy", value, at(2026, 1, 7)),)
    )
    return Account(
        "a-1", "Acme", Source("referral"), at(2026, 1, 5), assets=(LATHE,), preferences=preferences
    )


def test_evidence_is_quoted_short_and_on_one_line():
    """A long or multi-line evidence is quoted on one line and cut, not pasted whole."""
    long = "said so\n\n" + "x" * 500
    preference = Preference("equipment_strategy", "keep_running", at(2026, 1, 7), long)
    account = attrs.evolve(shop(), preferences=(preference,))
    text = (
        sp.RepairOrReplacePolicy()
        .recommend(account, LATHE, repair_cost=eur("100"), replacement_cost=eur("14000"), on=ON)
        .explain()
    )
    (line,) = [line for line in text.splitlines() if "learned" in line]
    assert '"said so xxx' in line
    assert line.endswith('…"')
    assert len(line) < 220


def decide(
    account: Account, repair: str, policy: sp.ServicePolicy | None = None
) -> sp.ServiceAction:
    chosen = policy or sp.RepairOrReplacePolicy()
    rec = chosen.recommend(
        account, LATHE, repair_cost=eur(repair), replacement_cost=eur("14000"), on=ON
    )
    return rec.action


@pytest.mark.parametrize(
    ("preference", "repair", "action"),
    [
        (None, "5944", "repair"),  # within what the life left is worth (5944.97, down to 5944)
        (None, "5945", "replace"),
        ("repair_over_upgrade", "11200", "repair"),  # 80% of a replacement
        ("repair_over_upgrade", "11201", "replace"),
        ("upgrade_over_repair", "1400", "repair"),  # 10% of a replacement
        ("upgrade_over_repair", "1401", "replace"),
        ("something else", "5944", "repair"),  # not weighed: the baseline
        ("something else", "5945", "replace"),
    ],
)
def test_policy_limits(preference, repair, action):
    """The baseline is the value of the life left; preferences move the limit each way."""
    assert decide(shop(preference), repair) is sp.ServiceAction(action)


def test_a_worn_out_asset_is_replaced_unless_the_customer_keeps_things_running():
    """Past its expected life, any repair buys too little, except for a repair-minded shop."""
    old = date(2050, 1, 1)
    policy = sp.RepairOrReplacePolicy()
    plain = policy.recommend(
        shop(), LATHE, repair_cost=eur("10"), replacement_cost=eur("14000"), on=old
    )
    keen = policy.recommend(
        shop("keep_running"), LATHE, repair_cost=eur("10"), replacement_cost=eur("14000"), on=old
    )
    assert plain.action is sp.ServiceAction.REPLACE
    assert "0% of its life left" in plain.explain()
    assert keen.action is sp.ServiceAction.REPAIR


@given(
    repair=st.decimals(0, 100_000, places=2),
    replacement=st.decimals("0.01", 100_000, places=2),
    days=st.integers(0, 40 * 366),
    value=st.sampled_from([None, "repair_over_upgrade", "upgrade_over_repair", "other"]),
)
def test_preferences_only_ever_push_their_own_way(repair, replacement, days, value):
    """A repair-minded profile never turns a repair into a replacement, an upgrade-minded never
    the reverse; and a cheaper repair is never less likely to be chosen."""
    policy = sp.RepairOrReplacePolicy()
    on = date.fromordinal(LATHE.installed.toordinal() + days)

    def action(profile: str | None, cost: Decimal) -> sp.ServiceAction:
        return policy.recommend(
            shop(profile),
            LATHE,
            repair_cost=sp.Money(cost, "EUR"),
            replacement_cost=sp.Money(replacement, "EUR"),
            on=on,
        ).action

    base = action(None, repair)
    if base is sp.ServiceAction.REPAIR:
        assert action("repair_over_upgrade", repair) is sp.ServiceAction.REPAIR
        assert (
            action(value, repair / 2) is sp.ServiceAction.REPAIR or value == "upgrade_over_repair"
        )
    else:
        assert action("upgrade_over_repair", repair) is sp.ServiceAction.REPLACE
    if action(value, repair) is sp.ServiceAction.REPAIR:
        assert action(value, repair / 2) is sp.ServiceAction.REPAIR


@pytest.mark.parametrize(
    ("repair", "replacement", "error", "field"),
    [
        (eur("1"), sp.Money("2", "USD"), sp.CurrencyMismatch, "repair_cost"),
        (eur("-1"), eur("2"), sp.ValidationError, "repair_cost"),
        (eur("1"), eur("0"), sp.ValidationError, "replacement_cost"),
        (Decimal(1), eur("2"), sp.ValidationError, "repair_cost"),
        (eur("1"), 2.0, sp.ValidationError, "replacement_cost"),
    ],
)
def test_bad_costs_are_refused(repair, replacement, error, field):
    """Costs are non-negative Money of one currency, and a replacement costs something."""
    with pytest.raises(error) as caught:
        sp.RepairOrReplacePolicy().recommend(
            shop(), LATHE, repair_cost=repair, replacement_cost=replacement, on=ON
        )
    assert caught.value.field == field


def test_a_day_before_installation_is_refused():
    """An asset cannot break before it was installed."""
    with pytest.raises(sp.ValidationError, match="installed on 2015-05-01") as caught:
        sp.RepairOrReplacePolicy().recommend(
            shop(), LATHE, repair_cost=eur("1"), replacement_cost=eur("2"), on=date(2015, 4, 30)
        )
    assert caught.value.field == "on"


@pytest.mark.parametrize("share", [0.8, Decimal("1.5"), Decimal("-0.1"), Decimal("NaN")])
def test_policy_shares_are_exact_fractions(share):
    """A share is a Decimal from 0 to 1: floats and out-of-range values are refused."""
    with pytest.raises(sp.ValidationError) as caught:
        sp.RepairOrReplacePolicy(repair_minded_share=share)
    assert caught.value.field == "repair_minded_share"


def test_a_policy_of_your_own_decides(acct):
    """Any object with recommend() is a ServicePolicy, and SalesProcess uses the one given."""

    class AlwaysReplace:
        def recommend(self, account, asset, *, repair_cost, replacement_cost, on):
            return sp.ServiceRecommendation(
                account.id,
                asset.id,
                sp.ServiceAction.REPLACE,
                repair_cost,
                replacement_cost,
                (f"we always replace (asked on {on.isoformat()})",),
            )

    assert isinstance(AlwaysReplace(), sp.ServicePolicy)
    sales = sp.SalesProcess(service_policy=AlwaysReplace(), clock=sp.FixedClock(at(2026, 11, 2)))
    account = sales.capture_lead("Acme", email="a@acme.example", channel="cold_outreach")
    asset = sales.register_asset(
        account.id, model="Press", installed=date(2020, 1, 1), expected_life_years=10
    )
    rec = sales.recommend_service(
        account.id, asset.id, repair_cost=eur("1"), replacement_cost=eur("9")
    )
    assert rec.action is sp.ServiceAction.REPLACE
    assert rec.explain() == (
        f"REPLACE {asset.id} of account {account.id}\n- we always replace (asked on 2026-11-02)"
    )


def test_the_decision_compares_with_the_limit_it_prints():
    """The limit is rounded down to the costs' unit once; decision and text use that value."""
    asset = Asset("p-1", "Press", installed=date(2020, 1, 1), expected_life_years=1)
    account = Account("a-1", "Acme", Source("referral"), at(2020, 1, 1), assets=(asset,))
    on = date(2020, 1, 4)  # 3 days of 365.25 used: the life left is worth 991.786... of 1000
    policy = sp.RepairOrReplacePolicy()
    at_limit = policy.recommend(
        account, asset, repair_cost=eur("991.78"), replacement_cost=eur("1000.00"), on=on
    )
    assert at_limit.action is sp.ServiceAction.REPAIR
    assert at_limit.reasons[-1] == "decided: repair 991.78 EUR <= limit 991.78 EUR"
    above = policy.recommend(
        account, asset, repair_cost=eur("991.79"), replacement_cost=eur("1000.00"), on=on
    )
    assert above.reasons[-1] == "decided: repair 991.79 EUR > limit 991.78 EUR"


@given(
    repair=st.integers(0, 20_000),
    replacement=st.integers(1, 20_000),
    days=st.integers(0, 30 * 366),
    value=st.sampled_from([None, "repair_over_upgrade", "upgrade_over_repair"]),
)
def test_how_an_amount_is_written_does_not_change_the_decision(repair, replacement, days, value):
    """5945 and 5945.00 are the same money, so they get the same answer."""
    on = date.fromordinal(LATHE.installed.toordinal() + days)
    policy = sp.RepairOrReplacePolicy()

    def action(written: str) -> sp.ServiceAction:
        return policy.recommend(
            shop(value),
            LATHE,
            repair_cost=sp.Money(f"{repair}{written}", "EUR"),
            replacement_cost=sp.Money(f"{replacement}{written}", "EUR"),
            on=on,
        ).action

    assert action("") is action(".00") is action(".000")


def test_figures_keep_the_unit_the_costs_are_written_in():
    """Yen written without decimals stay without; the largest and smallest amounts work."""
    yen = sp.RepairOrReplacePolicy().recommend(
        shop(),
        LATHE,
        repair_cost=sp.Money("90000", "JPY"),
        replacement_cost=sp.Money("1400000", "JPY"),
        on=ON,
    )
    assert "the life left is worth 594496 JPY" in yen.explain()
    huge = sp.RepairOrReplacePolicy().recommend(
        shop(), LATHE, repair_cost=eur("1e62"), replacement_cost=eur("9.99e63"), on=ON
    )
    assert huge.action is sp.ServiceAction.REPAIR
    tiny = sp.RepairOrReplacePolicy().recommend(
        shop(), LATHE, repair_cost=eur("1E-64"), replacement_cost=eur("14000.00"), on=ON
    )
    assert tiny.action is sp.ServiceAction.REPAIR


def test_the_callers_decimal_context_does_not_matter():
    """A caller's low precision or trapped rounding changes neither answer nor figures."""
    import decimal  # noqa: PLC0415

    plain = sp.RepairOrReplacePolicy().recommend(
        shop(), LATHE, repair_cost=eur("900.00"), replacement_cost=eur("14000.00"), on=ON
    )
    strict = decimal.Context(prec=3, traps=[decimal.Inexact, decimal.Rounded])
    with decimal.localcontext(strict):
        odd = sp.RepairOrReplacePolicy().recommend(
            shop(), LATHE, repair_cost=eur("900.00"), replacement_cost=eur("14000.00"), on=ON
        )
    assert odd == plain


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"repair_minded": "keep_running"}, "repair_minded"),
        ({"upgrade_minded": ["latest", 5]}, "upgrade_minded"),
        ({"preference_key": 5}, "preference_key"),
        ({"preference_key": " "}, "preference_key"),
        ({"repair_minded": [["nested"]]}, "repair_minded"),
        ({"repair_minded": ["same"], "upgrade_minded": ["same"]}, "upgrade_minded"),
    ],
)
def test_policy_settings_are_checked(kwargs, field):
    """A lone string is not a set of values; keys and values are text."""
    with pytest.raises(sp.ValidationError) as caught:
        sp.RepairOrReplacePolicy(**kwargs)
    assert caught.value.field == field


def test_policy_settings_take_any_collection_of_values():
    """Lists and sets of values are kept as frozensets."""
    policy = sp.RepairOrReplacePolicy(repair_minded=["frugal"], upgrade_minded={"shiny"})
    assert policy.repair_minded == frozenset({"frugal"})
    assert decide(shop("frugal"), "11200", policy) is sp.ServiceAction.REPAIR
