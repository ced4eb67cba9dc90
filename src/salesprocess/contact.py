"""Contact details, normalised so that the same person is recognised twice.

Duplicate detection compares normalised values: an email lower-cased, a phone number reduced to
its digits (with a leading ``+`` when written in international form). Shapes that cannot be a
real address or number are refused rather than stored.
"""

from __future__ import annotations

import re

from salesprocess.checks import shown, unencodable
from salesprocess.errors import ValidationError

__all__ = ["normalise_email", "normalise_phone"]

# Deliberately a shape check, not RFC 5322: one @, no spaces, a dotted domain. Anything finer
# belongs to a mail server's answer, not to a lead form.
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
_PHONE_SEPARATORS = re.compile(r"[\s\-./()]")


def normalise_email(value: str) -> str:
    """Return ``value`` lower-cased and trimmed; refuse anything not shaped like an address.

    >>> normalise_email(" Buyer@Acme.example ")
    'buyer@acme.example'
    """
    if not isinstance(value, str):
        raise ValidationError(f"email must be text, not {type(value).__name__}", field="email")
    email = value.strip().lower()
    if len(email) > 254 or not _EMAIL.fullmatch(email) or unencodable(email):
        raise ValidationError(
            f"email {shown(value)} is not an address (expected name@domain.tld)", field="email"
        )
    return email


def normalise_phone(value: str) -> str:
    """Return the digits of ``value``, keeping a leading ``+`` for international numbers.

    Spaces, dashes, dots, slashes and parentheses are separators; anything else is refused.

    >>> normalise_phone("+49 30 1234567")
    '+49301234567'
    >>> normalise_phone("(030) 123-4567")
    '0301234567'
    """
    if not isinstance(value, str):
        raise ValidationError(f"phone must be text, not {type(value).__name__}", field="phone")
    text = value.strip()
    international = text.startswith("+")
    digits = _PHONE_SEPARATORS.sub("", text[1:] if international else text)
    if not digits.isascii() or not digits.isdigit():
        raise ValidationError(
            f"phone {shown(value)} holds characters other than digits and separators", field="phone"
        )
    # E.164 caps a number at 15 digits; fewer than 5 cannot reach anyone.
    if not 5 <= len(digits) <= 15:
        raise ValidationError(
            f"phone {shown(value)} has {len(digits)} digits; expected 5 to 15", field="phone"
        )
    return f"+{digits}" if international else digits
