"""What referring has brought: referrals, conversions and the K-factor.

A good sales process feeds itself: customers are asked for names, or handed business cards that
carry their referral code, and every lead they bring is attributed to them. The records of it
live on the referrer's account (:class:`~salesprocess.account.Referral`,
:class:`~salesprocess.account.ReferralRequest`, :class:`~salesprocess.account.ReferralCards`);
:func:`referral_stats` derives the figures from them.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Final

import attrs

from salesprocess.reports.ratios import ratio

if TYPE_CHECKING:
    from salesprocess.account import Account

__all__ = ["ReferralReport", "ReferralStats", "referral_report", "referral_stats"]


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


_NONE: Final = Decimal("0.0000")


def _stats(referrals: int, converted: int, customers: int) -> ReferralStats:
    return ReferralStats(
        referrals=referrals,
        converted=converted,
        conversion_rate=ratio(converted, referrals) if referrals else None,
        k_factor=ratio(converted, customers) if customers else _NONE,
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
    won = {i for ids in referred_by.values() for i in ids}
    seed = len((bought | referred_by.keys()) - won)
    return referral_report(referred_by, bought, seed)


def referral_report(
    referred_by: Mapping[str, Sequence[str]], bought: Container[str], seed: int
) -> ReferralReport:
    """Return the report of :func:`referral_stats` from what it counts.

    ``referred_by`` maps each account holding referrals to the ids of the new leads they
    brought; ``bought`` holds (at least) those of them that made a purchase; ``seed`` is the
    number of accounts that bought or referred, less those a referral brought. The SQL
    adapters count these in SQL and build the report here, as the walk does.
    """
    by_referrer = {
        referrer: _stats(len(ids), sum(1 for i in ids if i in bought), 1)
        for referrer, ids in sorted(referred_by.items())
    }
    total = sum(stats.referrals for stats in by_referrer.values())
    converted = sum(stats.converted for stats in by_referrer.values())
    return ReferralReport(_stats(total, converted, seed), by_referrer)
