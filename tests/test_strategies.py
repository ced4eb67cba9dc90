"""salesprocess.strategies: every public strategy yields valid values of its type."""

from __future__ import annotations

import typing
from datetime import UTC, datetime
from decimal import Decimal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis.strategies import SearchStrategy

import salesprocess as sp
from salesprocess import strategies
from salesprocess.contact import normalise_email, normalise_phone
from salesprocess.lifecycle import Lifecycle, Transitions
from salesprocess.money import ISO_4217_CODES

TABLE = Transitions.of(Lifecycle)
BUILT_IN = (
    sp.Stage.PROSPECT,
    sp.Stage.QUALIFIED,
    sp.Stage.CUSTOMER,
    sp.Stage.REPEAT,
    sp.Stage.REFERRER,
    sp.Stage.DISQUALIFIED,
    sp.Stage.CHURNED,
)


def check_account(account: sp.Account) -> None:
    """Everything a generated account promises."""
    assert isinstance(account, sp.Account)
    assert account.stage in BUILT_IN
    assert account.history
    assert account.stage is account.history[-1].to_stage
    first = account.history[0]
    assert (first.from_stage, first.to_stage, first.event) == (None, sp.Stage.PROSPECT, "capture")
    assert first.at == account.created_at
    for previous, change in zip(account.history, account.history[1:], strict=False):
        assert change.from_stage is previous.to_stage
        assert change.to_stage in TABLE.targets(change.from_stage, change.event)
        assert change.at >= previous.at
    assert account.email is not None or account.phone is not None
    assert account.created_at.utcoffset() is not None
    assert account.version == 0
    currencies = {p.amount.currency for p in account.purchases}
    assert len(currencies) <= 1
    if account.stage is sp.Stage.REPEAT:
        assert len({p.at.astimezone(UTC).date() for p in account.purchases}) >= 2
    # the account survives re-validation: it is what the constructor would build
    assert attrs.evolve(account) == account


@given(strategies.accounts())
def test_accounts_are_valid(account):
    """accounts() yields accounts whose history replays to their stage."""
    check_account(account)


@pytest.mark.parametrize("stage", BUILT_IN)
def test_accounts_at_each_stage(stage):
    """accounts(stage) yields accounts at exactly that stage."""

    @settings(max_examples=15)
    @given(strategies.accounts(stage))
    def check(account: sp.Account) -> None:
        assert account.stage is stage
        check_account(account)

    check()


def test_accounts_refuse_unknown_stage():
    """accounts() knows only the built-in stages."""

    @given(strategies.accounts(sp.Stage("stage_strategies_unknown")))
    def draw(account: sp.Account) -> None:
        raise AssertionError("unreachable")

    with pytest.raises(ValueError, match="built-in stages"):
        draw()


@given(strategies.aware_datetimes())
def test_aware_datetimes_are_aware_and_in_bounds(moment):
    """aware_datetimes() yields aware datetimes within the default bounds."""
    assert isinstance(moment, datetime)
    assert moment.utcoffset() is not None
    assert datetime(2000, 1, 1, tzinfo=UTC) <= moment <= datetime(2100, 1, 1, tzinfo=UTC)


@given(
    strategies.aware_datetimes(
        min_value=datetime(2026, 1, 1, tzinfo=UTC), max_value=datetime(2026, 1, 2, tzinfo=UTC)
    )
)
def test_aware_datetimes_respect_bounds(moment):
    """aware_datetimes(min, max) stays within the given instants."""
    assert datetime(2026, 1, 1, tzinfo=UTC) <= moment <= datetime(2026, 1, 2, tzinfo=UTC)


@given(strategies.currencies())
def test_currencies_are_iso_codes(code):
    """currencies() yields ISO 4217 codes Money accepts."""
    assert code in ISO_4217_CODES
    assert sp.Money(0, code).currency == code


@given(strategies.money())
def test_money_is_valid(money):
    """money() yields non-negative Money with at most two decimal places."""
    assert isinstance(money, sp.Money)
    assert isinstance(money.amount, Decimal)
    assert money.amount.is_finite()
    assert Decimal(0) <= money.amount <= Decimal(10**9)
    assert money.amount == money.amount.quantize(Decimal("0.01"))
    assert money.currency in ISO_4217_CODES


@given(strategies.money(currency="JPY", min_value=Decimal(-5), max_value=Decimal(5)))
def test_money_respects_currency_and_bounds(money):
    """money(currency=, min_value=, max_value=) honours its arguments."""
    assert money.currency == "JPY"
    assert Decimal(-5) <= money.amount <= Decimal(5)


@given(strategies.emails())
def test_emails_are_normalised(email):
    """emails() yields addresses already in normalised form."""
    assert normalise_email(email) == email


@given(strategies.phones())
def test_phones_are_normalised(phone):
    """phones() yields numbers already in normalised form."""
    assert normalise_phone(phone) == phone


@given(strategies.sources())
def test_sources_are_valid(source):
    """sources() yields Sources; only referrals name a referrer."""
    assert isinstance(source, sp.Source)
    assert isinstance(source.channel, sp.Channel)
    assert (source.referred_by is not None) == (source.channel is sp.Channel.REFERRAL)
    assert source.campaign is None or source.campaign.strip()


@given(strategies.json_values())
def test_json_values_are_accepted_as_attributes(value):
    """json_values() yields values account attributes accept."""
    frozen = sp.Attributes.freeze({"value": value})
    assert "value" in frozen


@given(strategies.attributes())
def test_attributes_are_accepted(attributes):
    """attributes() yields text-keyed mappings an account accepts."""
    assert all(isinstance(key, str) for key in attributes)
    frozen = sp.Attributes.freeze(attributes)
    assert set(frozen) == set(attributes)
    if "employees" in attributes:
        assert isinstance(attributes["employees"], int)
        assert attributes["employees"] >= 1


@pytest.mark.parametrize("name", strategies.__all__)
def test_every_public_strategy_is_typed_and_returns_a_strategy(name):
    """Each public strategy has a docstring, a return annotation and returns a SearchStrategy."""
    function = getattr(strategies, name)
    assert (function.__doc__ or "").strip()
    strategy = function()
    assert isinstance(strategy, SearchStrategy)
    if name != "accounts":  # a composite: hypothesis wraps it
        hints = typing.get_type_hints(function)
        assert "return" in hints
        assert typing.get_origin(hints["return"]) is SearchStrategy


@given(strategies.accounts())
def test_preferences_come_in_the_order_they_were_learned(account):
    """Generated preferences are in time order, as learn_preference keeps them."""
    moments = [preference.at for preference in account.preferences]
    assert moments == sorted(moments)
