"""The shared argument checks: what they accept, what they refuse, and how they say so."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesprocess.checks import (
    bool_validator,
    instance_validator,
    int_validator,
    optional_text,
    optional_text_validator,
    require_bool,
    require_instance,
    require_int,
    require_number,
    require_text,
    shown,
    text_validator,
)
from salesprocess.errors import ValidationError


class BrokenRepr:
    """An object whose repr raises, as a half-built or buggy object's may."""

    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


class Sneaky(str):
    """A str subclass whose repr and len lie: shown() must not trust them."""

    __slots__ = ()

    def __repr__(self) -> str:
        raise RuntimeError("no")

    def __len__(self) -> int:
        return 10**6


# -- shown -------------------------------------------------------------------------------------


def test_shown_is_repr_for_short_values():
    """A short value is shown exactly as repr() shows it."""
    assert shown("Acme") == "'Acme'"
    assert shown(42) == "42"
    assert shown(None) == "None"


def test_shown_survives_a_repr_that_raises():
    """A value whose repr() raises is shown by its type name instead."""
    assert shown(BrokenRepr()) == "<BrokenRepr object>"


def test_shown_cuts_a_long_string_and_states_its_length():
    """A 1 MB string is shown as its start, an ellipsis and its length."""
    text = shown("a" * 1_000_000)
    assert len(text) < 120
    assert text.startswith("'aaa")
    assert text.endswith("…' (1000000 characters)")


def test_shown_cuts_a_long_repr_and_states_its_length():
    """Any other value with a long repr is cut the same way."""
    text = shown(list(range(10_000)))
    assert text.startswith("[0, 1, 2")
    assert text.endswith(f"… (repr of {len(repr(list(range(10_000))))} characters)")
    assert len(text) < 120


def test_shown_counts_characters_not_escapes():
    """A string of escaped characters stays within the limit and reports its real length."""
    text = shown("\x00" * 1000, limit=20)
    assert text.endswith("…' (1000 characters)")
    assert len(text.split(" (")[0]) <= 20


def test_shown_ignores_a_str_subclass_s_own_repr_and_len():
    """A str subclass is shown as the text it holds, whatever its repr and len claim."""
    assert shown(Sneaky("hi")) == "'hi'"


@given(st.from_type(type).flatmap(st.from_type) | st.builds(BrokenRepr) | st.text())
def test_shown_never_raises_and_stays_short(value):
    """For any value, shown() returns a str of bounded length."""
    text = shown(value)
    assert isinstance(text, str)
    assert len(text) <= 80 + 40


@given(st.text(), st.integers(min_value=0, max_value=200))
def test_shown_text_fits_its_limit(value, limit):
    """Text is shown whole when its repr fits, else cut to the limit plus the stated length."""
    text = shown(value, limit)
    if len(repr(value)) <= limit:
        assert text == repr(value)
    else:
        head, _, size = text.rpartition(" (")
        assert size == f"{len(value)} characters)"
        assert len(head) <= max(limit, 3)


# -- require_int -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False, 1.0, Decimal(1), Fraction(1), "1", None])
def test_require_int_refuses_what_is_not_an_int(value):
    """bool, float (even 1.0), Decimal, Fraction, text and None are not ints."""
    with pytest.raises(ValidationError, match=r"^count must be an int, not ") as caught:
        require_int(value, "count")
    assert caught.value.field == "count"
    assert type(value).__name__ in str(caught.value)


@pytest.mark.parametrize(
    ("value", "low", "high", "message"),
    [
        (0, 1, 10, "count must be an int from 1 to 10, got 0"),
        (11, 1, 10, "count must be an int from 1 to 10, got 11"),
        (-1, 0, None, "count must be an int of at least 0, got -1"),
        (6, None, 5, "count must be an int of at most 5, got 6"),
    ],
)
def test_require_int_refuses_values_out_of_bounds(value, low, high, message):
    """An int outside [low, high] is refused, naming the bounds and the value."""
    with pytest.raises(ValidationError) as caught:
        require_int(value, "count", low=low, high=high)
    assert str(caught.value) == message
    assert caught.value.field == "count"


def test_require_int_accepts_the_bounds_themselves():
    """Both bounds are inclusive."""
    assert require_int(1, "count", low=1, high=10) == 1
    assert require_int(10, "count", low=1, high=10) == 10


def test_require_int_message_of_a_broken_value_is_clean():
    """A value whose repr raises still gives a clean ValidationError."""
    with pytest.raises(ValidationError) as caught:
        require_int(BrokenRepr(), "count")
    assert str(caught.value) == "count must be an int, not BrokenRepr <BrokenRepr object>"


def test_require_int_message_of_a_huge_value_is_short():
    """A 1 MB string gives a short message that states its length."""
    with pytest.raises(ValidationError) as caught:
        require_int("9" * 1_000_000, "count")
    assert len(str(caught.value)) < 200
    assert "(1000000 characters)" in str(caught.value)


_BOUND = st.none() | st.integers(min_value=-100, max_value=100)


@given(
    st.integers() | st.booleans() | st.floats() | st.decimals() | st.text() | st.none(),
    _BOUND,
    _BOUND,
)
def test_require_int_accepts_exactly_the_ints_in_range(value, low, high):
    """require_int returns the value iff it is a non-bool int within the bounds given."""
    ok = (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (low is None or value >= low)
        and (high is None or value <= high)
    )
    if ok:
        assert require_int(value, "n", low=low, high=high) is value
    else:
        with pytest.raises(ValidationError) as caught:
            require_int(value, "n", low=low, high=high)
        assert caught.value.field == "n"


# -- require_number ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, "0.5", Decimal("0.5"), None, 1j])
def test_require_number_refuses_what_is_not_a_real_number(value):
    """bool, text, Decimal, None and complex are not real numbers."""
    with pytest.raises(ValidationError, match=r"^score must be a number from 0 to 1, not"):
        require_number(value, "score", low=0, high=1)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400, Fraction(10**400)])
def test_require_number_refuses_what_is_not_finite(value):
    """NaN, the infinities and numbers too large for a float are refused."""
    with pytest.raises(ValidationError, match=r"^weight must be a finite number, got "):
        require_number(value, "weight")


def test_require_number_positive_refuses_zero():
    """positive=True refuses zero and below."""
    assert require_number(Fraction(1, 4), "weight", positive=True) == 0.25
    for value in (0, -1, -0.0):
        with pytest.raises(ValidationError, match="must be a positive finite number, got"):
            require_number(value, "weight", positive=True)


def test_require_number_kinds_narrow_the_types():
    """kinds narrows the accepted number types; the bounds still apply."""
    assert require_number(3, "timeout", low=0, high=10, kinds=(int, float)) == 3.0
    with pytest.raises(ValidationError, match=r"not Fraction Fraction\(1, 2\)"):
        require_number(Fraction(1, 2), "timeout", low=0, high=10, kinds=(int, float))


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.booleans())
def test_require_number_accepts_exactly_finite_numbers_in_range(value):
    """require_number returns float(value) iff it is a non-bool finite number in [0, 1]."""
    ok = not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1
    if ok:
        assert require_number(value, "score", low=0, high=1) == float(value)
    else:
        with pytest.raises(ValidationError):
            require_number(value, "score", low=0, high=1)


# -- text, bool, instances ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "   ", "\t\n", None, 5, b"name"])
def test_require_text_refuses_blank_and_non_text(value):
    """Empty or blank text, and anything that is not a str, is refused."""
    with pytest.raises(ValidationError, match=r"^name must be non-empty text, got ") as caught:
        require_text(value, "name")
    assert caught.value.field == "name"


def test_require_text_returns_the_text_unchanged():
    """Text with content is returned as given, white space and all."""
    assert require_text(" Acme ", "name") == " Acme "


def test_optional_text_allows_none_only():
    """optional_text passes None, checks everything else as text."""
    assert optional_text(None, "campaign") is None
    assert optional_text("spring", "campaign") == "spring"
    with pytest.raises(ValidationError, match="campaign must be non-empty text"):
        optional_text("", "campaign")


@pytest.mark.parametrize("value", [1, 0, "yes", None, 1.0])
def test_require_bool_refuses_everything_but_bools(value):
    """Only True and False are bools; 1, 0 and "yes" are not."""
    with pytest.raises(ValidationError, match=r"^passed must be a bool, not "):
        require_bool(value, "passed")
    assert require_bool(False, "passed") is False


def test_require_instance_refuses_bool_as_int():
    """A bool is refused as an instance of anything but bool."""
    assert require_instance(3, "count", int) == 3
    with pytest.raises(ValidationError, match=r"^count must be an int, not bool True$"):
        require_instance(True, "count", int)
    assert require_instance(True, "flag", bool) is True


def test_require_instance_names_the_type_with_an_article():
    """The message reads "a str", "an Account"."""
    with pytest.raises(ValidationError, match=r"^email must be a str, not int 5$"):
        require_instance(5, "email", str)
    with pytest.raises(ValidationError, match=r"^x must be an Exception, not"):
        require_instance(5, "x", Exception)


# -- attrs validators --------------------------------------------------------------------------


@attrs.frozen
class Example:
    """A record checked by every validator adapter."""

    name: str = attrs.field(validator=text_validator)
    note: str | None = attrs.field(default=None, validator=optional_text_validator)
    flag: bool = attrs.field(default=False, validator=bool_validator)
    count: int = attrs.field(default=1, validator=int_validator(1, 10))
    label: str = attrs.field(default="", validator=instance_validator(str))


def test_validators_accept_good_values():
    """Good values pass every validator adapter."""
    assert Example("x", "n", True, 10, "").count == 10


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": " "}, "name"),
        ({"note": ""}, "note"),
        ({"flag": 1}, "flag"),
        ({"count": 0}, "count"),
        ({"count": True}, "count"),
        ({"label": 3}, "label"),
    ],
)
def test_validators_name_the_attribute(changes, field):
    """A validator adapter refuses with the attribute's name as the field."""
    with pytest.raises(ValidationError) as caught:
        Example(**{"name": "x", **changes})
    assert caught.value.field == field
    assert str(caught.value).startswith(field)


_ANYTHING = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.decimals()


@given(_ANYTHING)
def test_validators_agree_with_their_checks(value):
    """Each validator refuses exactly what its require_* function refuses."""
    attribute = attrs.fields(Example).count
    pairs = [
        (text_validator, lambda v: require_text(v, "count")),
        (optional_text_validator, lambda v: optional_text(v, "count")),
        (bool_validator, lambda v: require_bool(v, "count")),
        (int_validator(1, 10), lambda v: require_int(v, "count", low=1, high=10)),
        (int_validator(low=0), lambda v: require_int(v, "count", low=0)),
        (instance_validator(int), lambda v: require_instance(v, "count", int)),
    ]
    for validator, check in pairs:
        assert _outcome(validator, None, attribute, value) == _outcome(check, value)


def _outcome(function, *args):
    """Return the message of the ValidationError that function(*args) raises, or None."""
    try:
        function(*args)
    except ValidationError as exc:
        return str(exc)
    return None
