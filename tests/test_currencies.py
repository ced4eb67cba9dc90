"""Account currency: a house currency, and one currency per account fixed by its first purchase.

A purchase the rule refuses raises ``CurrencyMismatch`` and stores nothing: one at a time, in
a batch, in an import; on every adapter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import salesprocess as sp
from salesprocess.commands.purchases import Loaded, PurchaseRow, record_purchases
from salesprocess.errors import BadRows, CurrencyMismatch, ValidationError
from salesprocess.imports import import_purchases

T0 = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)


def customer(sales: sp.SalesProcess, name: str = "acme") -> sp.Account:
    lead = sales.capture_lead(name, channel="inbound_inquiry", email=f"{name}@example.com")
    return sales.qualify(lead.id, override="walk-in purchase", at=T0)


def test_the_first_purchase_fixes_the_accounts_currency(any_repository: Any) -> None:
    """A USD purchase on a EUR customer is refused: CurrencyMismatch, nothing stored."""
    sales = sp.SalesProcess(any_repository, clock=sp.FixedClock(T0))
    seen: list[sp.DomainEvent] = []
    sales.subscribe(seen.append)
    account = customer(sales)
    sales.record_purchase(account.id, sp.Money("10.00", "EUR"), at=T0 + timedelta(days=1))
    before = sales.get(account.id)
    published = len(seen)
    with pytest.raises(CurrencyMismatch, match="its currency is EUR") as caught:
        sales.record_purchase(account.id, sp.Money("12.00", "USD"), at=T0 + timedelta(days=2))
    assert isinstance(caught.value, ValidationError)
    assert (caught.value.field, caught.value.expected, caught.value.given) == (
        "amount",
        "EUR",
        "USD",
    )
    assert sales.get(account.id) == before
    assert sales.get(account.id).version == before.version
    assert len(seen) == published
    after = sales.record_purchase(account.id, sp.Money("3.00", "EUR"), at=T0 + timedelta(days=3))
    assert [p.amount.currency for p in after.purchases] == ["EUR", "EUR"]


def test_a_house_currency_refuses_every_other(any_repository: Any) -> None:
    """With a house currency, even a first purchase in another currency is refused."""
    sales = sp.SalesProcess(any_repository, clock=sp.FixedClock(T0), currency="CHF")
    assert sales.currency_rule == sp.CurrencyRule(house="CHF")
    account = customer(sales)
    with pytest.raises(CurrencyMismatch, match="the house currency is CHF"):
        sales.record_purchase(account.id, sp.Money("10.00", "EUR"))
    assert sales.get(account.id).purchases == ()
    assert sales.get(account.id).stage is sp.Stage.QUALIFIED
    assert sales.record_purchase(account.id, sp.Money("10.00", "CHF")).stage is sp.Stage.CUSTOMER


def test_the_rule_is_checked_when_the_process_is_made() -> None:
    """A bad house currency or rule fails at construction, naming the field."""
    with pytest.raises(ValidationError, match="did you mean 'EUR'") as caught:
        sp.SalesProcess(currency="eur")
    assert caught.value.field == "currency"
    with pytest.raises(ValidationError, match="currency must be a CurrencyRule"):
        sp.SalesProcess(currency=978)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        sp.CurrencyRule(per_account="yes")  # type: ignore[arg-type]


def test_a_known_reference_in_another_currency_is_a_conflict_not_a_mismatch() -> None:
    """The same invoice again with another amount is the reference rule's ConflictError."""
    sales = sp.SalesProcess(clock=sp.FixedClock(T0))
    account = customer(sales)
    sales.record_purchase(account.id, sp.Money("10.00", "EUR"), reference="INV-1")
    with pytest.raises(sp.ConflictError, match="INV-1"):
        sales.record_purchase(account.id, sp.Money("10.00", "USD"), reference="INV-1")


def test_an_import_refuses_rows_in_another_currency() -> None:
    """import_purchases: a walk-in's first row fixes its currency; other rows are bad rows."""
    sales = sp.SalesProcess(clock=sp.FixedClock(T0))
    rows = [
        {"email": "walk@example.com", "amount": sp.Money("5.00", "EUR"), "at": T0},
        {"email": "walk@example.com", "amount": sp.Money("6.00", "USD"), "at": T0},
        {"email": "walk@example.com", "amount": sp.Money("7.00", "EUR"), "at": T0},
    ]
    with pytest.raises(BadRows, match=r"row 2: .*its currency is EUR") as caught:
        sales.import_purchases(rows)
    assert [(row.position, row.field) for row in caught.value.rows] == [(2, "amount")]
    assert sales.find(email="walk@example.com") is None  # all or nothing: nothing stored
    done = sales.import_purchases(rows, all_or_nothing=False)
    assert (done.recorded, [row.position for row in done.rejected]) == (2, [2])
    stored = sales.find(email="walk@example.com")
    assert stored is not None
    assert [p.amount for p in stored.purchases] == [
        sp.Money("5.00", "EUR"),
        sp.Money("7.00", "EUR"),
    ]


def test_the_batch_command_applies_the_rule_it_is_given() -> None:
    """record_purchases (the batch decision) takes the rule; a permissive one lets rows mix."""
    sales = sp.SalesProcess(clock=sp.FixedClock(T0))
    account = customer(sales)
    sales.record_purchase(account.id, sp.Money("1.00", "EUR"))
    loaded = Loaded({("id", account.id): sales.get(account.id)}, {})
    row = PurchaseRow(sp.Money("2.00", "USD"), T0 + timedelta(days=1), account_id=account.id)
    rows = [(1, row)]
    strict = record_purchases(
        loaded, T0, transitions=sales.transitions, rows=rows, channel=sp.Channel.REFERRAL
    )
    assert (strict.result.recorded, len(strict.result.rejected), strict.writes) == (0, 1, ())
    loose = record_purchases(
        loaded,
        T0,
        transitions=sales.transitions,
        rows=rows,
        channel=sp.Channel.REFERRAL,
        currency=sp.CurrencyRule(per_account=False),
    )
    assert loose.result.recorded == 1
    assert [p.amount.currency for p in loose.writes[0].purchases] == ["EUR", "USD"]


def test_import_purchases_checks_its_rule_argument() -> None:
    """The import's currency argument is a CurrencyRule or None."""
    sales = sp.SalesProcess(clock=sp.FixedClock(T0))
    with pytest.raises(ValidationError, match="currency"):
        import_purchases(
            sales._uow,
            [],
            transitions=sales.transitions,
            new_id=lambda: "x",
            currency="EUR",  # type: ignore[arg-type]
        )


CURRENCIES = st.sampled_from(["EUR", "USD", "CHF"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    attempts=st.lists(st.tuples(CURRENCIES, st.booleans()), min_size=1, max_size=12),
    house=st.none() | CURRENCIES,
    per_account=st.booleans(),
)
def test_every_stored_purchase_keeps_the_rule(
    attempts: list[tuple[str, bool]], house: str | None, per_account: bool
) -> None:
    """Whatever is tried, what is stored keeps the rule, and a refusal changes nothing.

    Stored purchases are all in the house currency if there is one, else (per account) all in
    the first one's; a purchase is refused exactly when the rule says so.
    """
    rule = sp.CurrencyRule(house=house, per_account=per_account)
    sales = sp.SalesProcess(clock=sp.FixedClock(T0), currency=rule)
    account = customer(sales)
    moment = T0
    for currency, with_reference in attempts:
        moment += timedelta(hours=1)
        before = sales.get(account.id)
        expected = house or (
            before.purchases[0].amount.currency if per_account and before.purchases else None
        )
        reference = f"R{moment.timestamp():.0f}" if with_reference else None
        amount = sp.Money("1.50", currency)
        if expected is not None and currency != expected:
            with pytest.raises(CurrencyMismatch):
                sales.record_purchase(account.id, amount, at=moment, reference=reference)
            assert sales.get(account.id) == before
        else:
            after = sales.record_purchase(account.id, amount, at=moment, reference=reference)
            assert after.purchases[-1].amount == amount
    stored = [p.amount.currency for p in sales.get(account.id).purchases]
    if house is not None:
        assert set(stored) <= {house}
    elif per_account:
        assert len(set(stored)) <= 1
    else:
        assert stored == [currency for currency, _ in attempts]
