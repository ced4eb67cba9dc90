"""Money: exact Decimal amounts in one ISO 4217 currency."""

from __future__ import annotations

import operator
import pickle
from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import salesprocess as sp
from salesprocess import strategies
from salesprocess.money import ISO_4217_CODES

EUR = strategies.money(currency="EUR", min_value=Decimal(-(10**9)))


def test_decimal_arithmetic_is_exact():
    """Cent values add up exactly where floats would drift."""
    total = sp.Money("0.10", "EUR") + sp.Money("0.20", "EUR")
    assert total == sp.Money("0.30", "EUR")
    assert total.amount == Decimal("0.30")
    assert isinstance(total.amount, Decimal)


@pytest.mark.parametrize(
    ("given_amount", "expected"),
    [
        ("12000.00", Decimal("12000.00")),
        (" 12.5 ", Decimal("12.5")),
        (42, Decimal(42)),
        (0, Decimal(0)),
        (Decimal("-3.75"), Decimal("-3.75")),
        ("1e3", Decimal(1000)),
    ],
)
def test_str_int_and_decimal_are_accepted(given_amount, expected):
    """A decimal string, an int or a Decimal becomes the exact Decimal amount."""
    money = sp.Money(given_amount, "EUR")
    assert isinstance(money.amount, Decimal)
    assert money.amount == expected
    assert money.currency == "EUR"


@pytest.mark.parametrize("bad", [1.5, 0.1, 12000.0, float("nan")])
def test_float_is_refused(bad):
    """A float amount is refused with a ValidationError naming the amount field."""
    with pytest.raises(sp.ValidationError, match="float") as info:
        sp.Money(bad, "EUR")
    assert info.value.field == "amount"


@pytest.mark.parametrize("bad", [True, False])
def test_bool_is_refused(bad):
    """True and False are not amounts, although bool is an int subclass."""
    with pytest.raises(sp.ValidationError) as info:
        sp.Money(bad, "EUR")
    assert info.value.field == "amount"


@pytest.mark.parametrize(
    "bad",
    [
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "-inf",
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
    ],
)
def test_non_finite_amounts_are_refused(bad):
    """NaN and infinities, as strings or Decimals, are refused."""
    with pytest.raises(sp.ValidationError, match="finite") as info:
        sp.Money(bad, "EUR")
    assert info.value.field == "amount"


@pytest.mark.parametrize("bad", ["twelve", "", "1,50", "12 EUR", None, [1], b"12"])
def test_non_numbers_are_refused(bad):
    """Text that is no decimal number, and other types, are refused."""
    with pytest.raises(sp.ValidationError) as info:
        sp.Money(bad, "EUR")
    assert info.value.field == "amount"


def test_lower_case_currency_is_refused_with_a_hint():
    """A lower-case code is refused, and the message suggests the upper-case one."""
    with pytest.raises(sp.ValidationError, match="did you mean 'EUR'") as info:
        sp.Money("1", "eur")
    assert info.value.field == "currency"


@pytest.mark.parametrize("bad", ["EURO", "XXX", "ABC", "", "E", " EUR", None, 978])
def test_unknown_currency_is_refused(bad):
    """Codes outside ISO 4217 (and non-text codes) are refused."""
    with pytest.raises(sp.ValidationError, match="ISO 4217") as info:
        sp.Money("1", bad)
    assert info.value.field == "currency"


def test_iso_codes_are_upper_case_three_letters():
    """The currency table holds only three upper-case letters per code."""
    assert {"EUR", "USD", "JPY", "GBP", "CHF"} <= ISO_4217_CODES
    assert all(len(code) == 3 and code.isalpha() and code.isupper() for code in ISO_4217_CODES)


def test_arithmetic_within_one_currency():
    """Add, subtract, negate, multiply and divide stay in the currency."""
    a = sp.Money("12000.00", "EUR")
    b = sp.Money("800", "EUR")
    assert a + b == sp.Money("12800", "EUR")
    assert a - b == sp.Money("11200", "EUR")
    assert -b == sp.Money("-800", "EUR")
    assert (-b).is_negative
    assert not b.is_negative
    assert b * 3 == sp.Money("2400", "EUR")
    assert 3 * b == sp.Money("2400", "EUR")
    assert b * Decimal("0.5") == sp.Money("400", "EUR")
    assert b / 4 == sp.Money("200", "EUR")
    assert sp.Money.zero("EUR") == sp.Money("0", "EUR")
    assert sp.Money.zero("EUR") + b == b


def test_multiplying_by_float_or_bool_is_refused():
    """Scaling by a float or a bool is not defined."""
    money = sp.Money("10", "EUR")
    with pytest.raises(TypeError):
        money * 1.5
    with pytest.raises(TypeError):
        money * True
    with pytest.raises(TypeError):
        money / 2.0


def test_division_by_zero_is_refused():
    """Dividing money by zero raises a ValidationError."""
    with pytest.raises(sp.ValidationError):
        sp.Money("10", "EUR") / 0


def test_equality_compares_value_not_representation():
    """1.10 EUR equals 1.1 EUR, and equal money hashes alike."""
    assert sp.Money("1.10", "EUR") == sp.Money("1.1", "EUR")
    assert hash(sp.Money("1.10", "EUR")) == hash(sp.Money("1.1", "EUR"))
    assert sp.Money("1", "EUR") != sp.Money("1", "USD")
    assert sp.Money("1", "EUR") != "1 EUR"
    assert len({sp.Money("1.10", "EUR"), sp.Money("1.1", "EUR"), sp.Money("1.1", "USD")}) == 2


def test_ordering_within_one_currency():
    """Amounts in one currency order by value."""
    small, big = sp.Money("1.5", "EUR"), sp.Money("2", "EUR")
    assert small < big
    assert small <= big
    assert big > small
    assert big >= small
    assert small <= sp.Money("1.50", "EUR")
    assert max([small, big]) == big


@pytest.mark.parametrize("op", [operator.add, operator.sub])
def test_mixing_currencies_in_arithmetic_raises(op):
    """Adding or subtracting two currencies raises CurrencyMismatch naming both."""
    with pytest.raises(sp.CurrencyMismatch, match="EUR vs USD") as info:
        op(sp.Money("1", "EUR"), sp.Money("1", "USD"))
    assert isinstance(info.value, sp.ValidationError)
    assert isinstance(info.value, sp.SalesProcessError)


@pytest.mark.parametrize("op", [operator.lt, operator.le, operator.gt, operator.ge])
def test_mixing_currencies_in_comparisons_raises(op):
    """Ordering amounts of two currencies raises CurrencyMismatch."""
    with pytest.raises(sp.CurrencyMismatch):
        op(sp.Money("1", "EUR"), sp.Money("2", "USD"))


@pytest.mark.parametrize("op", [operator.lt, operator.le, operator.gt, operator.ge])
def test_ordering_against_a_non_money_raises_type_error(op):
    """Comparing Money with a plain number is a TypeError, as for any unorderable pair."""
    with pytest.raises(TypeError):
        op(sp.Money("1", "EUR"), 2)


def test_adding_a_non_money_raises_type_error():
    """Money plus a plain number is a TypeError, never an implicit currency."""
    with pytest.raises(TypeError):
        sp.Money("1", "EUR") + 1
    with pytest.raises(TypeError):
        1 + sp.Money("1", "EUR")


def test_money_is_immutable_and_pickles():
    """Money cannot be changed in place and survives a pickle round trip."""
    money = sp.Money("19.99", "EUR")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        money.amount = Decimal(1)  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(money)) == money


def test_repr_and_str():
    """repr round-trips the exact amount; str reads as amount and code."""
    money = sp.Money("12800.00", "EUR")
    assert repr(money) == "Money('12800.00', 'EUR')"
    assert str(money) == "12800.00 EUR"
    assert eval(repr(money), {"Money": sp.Money}) == money


@given(EUR, EUR, EUR)
def test_addition_is_associative_within_a_currency(a, b, c):
    """(a + b) + c == a + (b + c) for amounts of one currency."""
    assert (a + b) + c == a + (b + c)


@given(EUR, EUR)
def test_addition_is_commutative_within_a_currency(a, b):
    """a + b == b + a for amounts of one currency."""
    assert a + b == b + a


@given(strategies.currencies().flatmap(lambda c: st.tuples(*[strategies.money(currency=c)] * 2)))
def test_adding_then_subtracting_gives_back_the_start(pair):
    """a + b - b == a, exactly, in any currency."""
    a, b = pair
    assert a + b - b == a
    assert (a + b - b).currency == a.currency


@given(
    strategies.currencies().flatmap(
        lambda c: st.tuples(st.just(c), st.lists(strategies.money(currency=c), max_size=8))
    )
)
def test_sum_never_changes_currency(drawn):
    """Summing amounts of one currency from zero gives that currency and the exact total."""
    currency, amounts = drawn
    total = sum(amounts, sp.Money.zero(currency))
    assert total.currency == currency
    assert total.amount == sum((m.amount for m in amounts), Decimal(0))


@given(strategies.money(), strategies.money())
def test_different_currencies_never_combine(a, b):
    """Any two amounts either share a currency or refuse to add."""
    if a.currency == b.currency:
        assert (a + b).currency == a.currency
    else:
        with pytest.raises(sp.CurrencyMismatch):
            a + b
