"""Referral codes: what a business card carries so that a lead names its referrer.

A code is what a person types from a card, so it is forgiving in what it takes and strict in
what it keeps: case, spaces and dashes do not matter (``"k7m4-pq2x"`` is ``"K7M4PQ2X"``), and
what is left must be 4 to 32 letters and digits.

>>> normalise_referral_code(" k7m4-pq2x ")
'K7M4PQ2X'
>>> len(new_referral_code())
8
"""

from __future__ import annotations

import re
import secrets
from typing import Final

from salesprocess.checks import shown
from salesprocess.errors import ValidationError

__all__ = ["CODE_ALPHABET", "new_referral_code", "normalise_referral_code"]

#: The letters of a generated code: digits and capitals without 0/O, 1/I/L, which are misread
#: from a printed card. Eight of them give 32**8 (about 10**12) codes.
CODE_ALPHABET: Final = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

_CODE: Final = re.compile(r"[A-Z0-9]{4,32}")
_SEPARATORS: Final = re.compile(r"[\s\-]")


def normalise_referral_code(value: object) -> str:
    """Return ``value`` upper-cased without spaces and dashes; refuse anything else odd.

    >>> normalise_referral_code("ab-1")
    Traceback (most recent call last):
    ...
    salesprocess.errors.ValidationError: referral code 'ab-1' must be 4 to 32 letters and digits
    """
    if not isinstance(value, str):
        raise ValidationError(
            f"referral code must be text, not {type(value).__name__}", field="referral_code"
        )
    code = _SEPARATORS.sub("", value).upper()
    if not code.isascii() or not _CODE.fullmatch(code):
        raise ValidationError(
            f"referral code {shown(value)} must be 4 to 32 letters and digits",
            field="referral_code",
        )
    return code


def new_referral_code() -> str:
    """Return a fresh random code of 8 characters from :data:`CODE_ALPHABET`.

    Codes are random rather than derived from the account, so that a card reveals nothing and
    cannot be guessed from another; storage keeps them unique.
    """
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
