"""Referrals: codes that carry a referrer's name, and what referring has brought.

A good sales process feeds itself: customers are asked for names, or handed business cards that
carry their referral code, and every lead they bring is attributed to them. The records of it
live on the referrer's account (:class:`~salesprocess.account.Referral`,
:class:`~salesprocess.account.ReferralRequest`, :class:`~salesprocess.account.ReferralCards`);
this module holds what is about referring itself: the shape of a code, and the figures
:func:`referral_stats` derives from the accounts.

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
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation, localcontext
from typing import TYPE_CHECKING, Final

import attrs

from salesprocess.errors import ValidationError

if TYPE_CHECKING:
    from salesprocess.account import Account

__all__ = [
    "CODE_ALPHABET",
    "ReferralReport",
    "ReferralStats",
    "new_referral_code",
    "normalise_referral_code",
    "referral_stats",
]

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
            f"referral code {value!r} must be 4 to 32 letters and digits", field="referral_code"
        )
    return code


def new_referral_code() -> str:
    """Return a fresh random code of 8 characters from :data:`CODE_ALPHABET`.

    Codes are random rather than derived from the account, so that a card reveals nothing and
    cannot be guessed from another; storage keeps them unique.
    """
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))


@attrs.frozen
class ReferralStats:
    """What referring brought: referrals, how many became customers, and the K-factor.

    ``referrals`` counts new leads brought (a referral of an account already known links it
    and is not counted); ``converted`` those that have made a purchase. ``conversion_rate`` is
    ``converted / referrals`` (``None`` with no referral). ``k_factor`` is the viral coefficient:
    customers won through referrals per account they grew from (for one referrer, that is its
    ``converted``; overall, see :func:`referral_stats`). Rates are ``Decimal`` fractions rounded
    to 4 places.
    """

    referrals: int
    converted: int
    conversion_rate: Decimal | None
    k_factor: Decimal


@attrs.frozen
class ReferralReport:
    """:func:`referral_stats` for the whole process and per referrer id (referrers only)."""

    overall: ReferralStats
    by_referrer: Mapping[str, ReferralStats]


_PLACES: Final = Decimal("0.0001")


#: Our own decimal context for the rates, whatever the caller's traps and precision.
_CONTEXT: Final = Context(prec=28, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation])


def _ratio(part: int, whole: int) -> Decimal:
    with localcontext(_CONTEXT):
        return (Decimal(part) / Decimal(whole)).quantize(_PLACES)


def _stats(referrals: int, converted: int, customers: int) -> ReferralStats:
    return ReferralStats(
        referrals=referrals,
        converted=converted,
        conversion_rate=_ratio(converted, referrals) if referrals else None,
        k_factor=_ratio(converted, customers) if customers else _ratio(0, 1),
    )


def referral_stats(accounts: Iterable[Account]) -> ReferralReport:
    """Return the referral figures of ``accounts`` (every account of the process, once).

    A referred lead counts as converted once it has a purchase. The overall K-factor divides
    the converted referrals by the seed they grew from: the accounts that bought or referred,
    except those a referral brought. So one referrer who won one customer has a K-factor of 1
    both on its own and overall, whether or not it has bought itself.

    >>> referral_stats([]).overall
    ReferralStats(referrals=0, converted=0, conversion_rate=None, k_factor=Decimal('0.0000'))
    """
    referred_by: dict[str, list[str]] = {}
    bought: set[str] = set()
    for account in accounts:
        if account.purchases:
            bought.add(account.id)
        brought = [referral.account_id for referral in account.referrals if referral.new]
        if account.referrals:
            referred_by[account.id] = brought
    by_referrer = {
        referrer: _stats(len(ids), sum(1 for i in ids if i in bought), 1)
        for referrer, ids in sorted(referred_by.items())
    }
    total = sum(stats.referrals for stats in by_referrer.values())
    converted = sum(stats.converted for stats in by_referrer.values())
    won = {i for ids in referred_by.values() for i in ids}
    seed = len((bought | referred_by.keys()) - won)
    return ReferralReport(_stats(total, converted, seed), by_referrer)
