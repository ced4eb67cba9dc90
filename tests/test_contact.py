"""Contact normalisation: the same person is recognised twice; nonsense is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import salesprocess as sp
from salesprocess import strategies
from salesprocess.contact import normalise_email, normalise_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Buyer@Acme.example", "buyer@acme.example"),
        ("  buyer@acme.example\n", "buyer@acme.example"),
        ("BUYER@ACME.EXAMPLE", "buyer@acme.example"),
        ("first.last+tag@sub.acme.co.uk", "first.last+tag@sub.acme.co.uk"),
    ],
)
def test_email_is_lower_cased_and_trimmed(raw, expected):
    """An email is stored lower-cased and without surrounding space."""
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "buyer",
        "buyer@",
        "@acme.example",
        "buyer@acme",
        "buyer@@acme.example",
        "buyer@ac@me.example",
        "bu yer@acme.example",
        "buyer@acme .example",
        "buyer@.example",
        "buyer@acme.",
        "buyer@acme..example",
        "a" * 250 + "@acme.example",
    ],
)
def test_malformed_email_is_refused(bad):
    """Text not shaped like name@domain.tld is refused with field='email'."""
    with pytest.raises(sp.ValidationError) as info:
        normalise_email(bad)
    assert info.value.field == "email"


@pytest.mark.parametrize("bad", [None, 42, b"buyer@acme.example"])
def test_non_text_email_is_refused(bad):
    """An email must be text."""
    with pytest.raises(sp.ValidationError) as info:
        normalise_email(bad)
    assert info.value.field == "email"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+49 30 1234567", "+49301234567"),
        ("(030) 123-4567", "0301234567"),
        ("030/123.45.67", "0301234567"),
        (" +1 (555) 010-9999 ", "+15550109999"),
        ("12345", "12345"),
        ("123456789012345", "123456789012345"),
        ("+123456789012345", "+123456789012345"),
    ],
)
def test_phone_is_reduced_to_digits(raw, expected):
    """Separators are dropped and a leading + is kept for international numbers."""
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "+49 30 CALL-NOW",
        "030 123 456 x12",
        "phone",
        "+",
        "",
        "++49301234567",
        "49+301234567",
        "\u0660\u0663\u0660\u0661\u0662\u0663\u0664\u0665",  # Arabic-Indic digits: not ASCII
        "030_1234567",
    ],
)
def test_phone_with_letters_or_other_characters_is_refused(bad):
    """Anything but digits and separators (after an optional leading +) is refused."""
    with pytest.raises(sp.ValidationError) as info:
        normalise_phone(bad)
    assert info.value.field == "phone"


@pytest.mark.parametrize(
    "bad", ["1234", "+49 12", "12-34", "1234567890123456", "+49 301 234 567 890 123"]
)
def test_phone_too_short_or_too_long_is_refused(bad):
    """Fewer than 5 or more than 15 digits cannot be a phone number."""
    with pytest.raises(sp.ValidationError, match="digits") as info:
        normalise_phone(bad)
    assert info.value.field == "phone"


@pytest.mark.parametrize("bad", [None, 4930123456, ["+49"]])
def test_non_text_phone_is_refused(bad):
    """A phone number must be text."""
    with pytest.raises(sp.ValidationError) as info:
        normalise_phone(bad)
    assert info.value.field == "phone"


def _recase(text: str, flips: list[bool]) -> str:
    return "".join(
        ch.upper() if flip else ch
        for ch, flip in zip(text, flips + [False] * len(text), strict=False)
    )


@given(strategies.emails(), st.lists(st.booleans()), st.sampled_from(["", " ", "\t", "  \n"]))
def test_email_normalisation_undoes_case_and_padding(email, flips, pad):
    """Any re-cased, padded spelling of a normalised email normalises back to it."""
    assert normalise_email(pad + _recase(email, flips) + pad) == email


@given(st.one_of(st.emails(), strategies.emails(), st.text(max_size=40)))
def test_email_normalisation_is_idempotent(raw):
    """Normalising a normalised email changes nothing."""
    try:
        once = normalise_email(raw)
    except sp.ValidationError:
        return
    assert normalise_email(once) == once


_SEPARATORS = st.sampled_from([" ", "-", ".", "/", "(", ")", "  "])


@st.composite
def _spelled_phones(draw: st.DrawFn) -> tuple[str, str]:
    """A normalised phone number and a way a person might write it."""
    phone = draw(strategies.phones())
    head, digits = ("+", phone[1:]) if phone.startswith("+") else ("", phone)
    parts = [head]
    for digit in digits:
        if draw(st.booleans()):
            parts.append(draw(_SEPARATORS))
        parts.append(digit)
    return phone, " " * draw(st.integers(0, 2)) + "".join(parts)


@given(_spelled_phones())
def test_phone_normalisation_undoes_separators(pair):
    """Any spelling with separators normalises to the same digits."""
    phone, spelled = pair
    assert normalise_phone(spelled) == phone


@given(st.one_of(strategies.phones(), st.text(alphabet="+0123456789 -./()x", max_size=24)))
def test_phone_normalisation_is_idempotent(raw):
    """Normalising a normalised phone number changes nothing."""
    try:
        once = normalise_phone(raw)
    except sp.ValidationError:
        return
    assert normalise_phone(once) == once
