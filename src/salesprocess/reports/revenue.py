"""Revenue: what was sold, and how much of it came from customers who came back.

Repeat business is the base of growth, so the figure that matters beside the total is the part
of it that repeat customers bring. Every figure is per currency: amounts are never converted.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import attrs

from salesprocess.account import Account, Purchase
from salesprocess.clock import require_aware, utc_day
from salesprocess.errors import ValidationError
from salesprocess.money import Money
from salesprocess.reports.ratios import mean, ratio

__all__ = [
    "Revenue",
    "RevenueReport",
    "Tally",
    "purchases_between",
    "revenue",
    "revenue_figures",
    "tally",
    "window",
]


@attrs.frozen
class Revenue:
    """The revenue figures of one currency; see :func:`revenue` for the definitions."""

    currency: str
    total: Money
    repeat_revenue: Money
    repeat_share: Decimal | None
    purchases: int
    customers: int
    repeat_customers: int
    repeat_customer_rate: Decimal | None
    average_order_value: Money
    purchases_per_customer: Decimal


@attrs.frozen
class RevenueReport(Mapping[str, Revenue]):
    """:func:`revenue` per currency code, sorted by code: ``report["EUR"]``."""

    by_currency: Mapping[str, Revenue]

    def __getitem__(self, currency: str) -> Revenue:
        return self.by_currency[currency]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_currency)

    def __len__(self) -> int:
        return len(self.by_currency)


def window(since: object, until: object) -> tuple[datetime | None, datetime | None]:
    """Return the window ``[since, until)`` checked: each bound an aware datetime or ``None``.

    Raises ``ValidationError`` for a bound that is not an aware datetime, or ``since`` not
    before ``until``. Shared by :func:`revenue` and the SQL adapters that answer it.
    """
    start = None if since is None else require_aware(since, "since")
    end = None if until is None else require_aware(until, "until")
    if start is not None and end is not None and start >= end:
        raise ValidationError(
            f"since ({start.isoformat()}) must be before until ({end.isoformat()})",
            field="since",
        )
    return start, end


def purchases_between(
    accounts: Iterable[Account], since: datetime | None, until: datetime | None
) -> Iterator[tuple[Account, Purchase]]:
    """Yield each purchase made at or after ``since`` and before ``until`` (``None``: open).

    Raises ``ValidationError`` for a bound that is not an aware datetime, or ``since`` not
    before ``until``.
    """
    since, until = window(since, until)
    for account in accounts:
        for purchase in account.purchases:
            if (since is None or purchase.at >= since) and (until is None or purchase.at < until):
                yield account, purchase


def revenue(
    accounts: Iterable[Account], *, since: datetime | None = None, until: datetime | None = None
) -> RevenueReport:
    """Return the revenue of the purchases made from ``since`` up to (not including) ``until``.

    Per currency, counting only purchases in the window and in that currency:

    - ``total``: the sum of the amounts; ``purchases``: how many (zero-value ones included);
    - ``customers``: accounts with a purchase; ``repeat_customers``: accounts with purchases
      on two or more UTC calendar days;
    - ``repeat_revenue``: the total of the repeat customers' purchases (their first included),
      and ``repeat_share`` its part of ``total``;
    - ``repeat_customer_rate``: ``repeat_customers / customers``;
    - ``average_order_value``: ``total / purchases``, rounded half-even to the amounts' places;
    - ``purchases_per_customer``: ``purchases / customers``.

    Rates are ``Decimal`` fractions rounded to 4 places; ``repeat_share`` is ``None`` when the
    total is zero (free samples only). A currency with no purchase in the window is absent.

    >>> from datetime import UTC
    >>> from salesprocess.account import Source
    >>> def bought(day, amount):
    ...     return Purchase(Money(amount, "EUR"), datetime(2026, 3, day, tzinfo=UTC))
    >>> shop = Account("a", "A", Source("referral"), datetime(2026, 1, 1, tzinfo=UTC),
    ...                purchases=(bought(1, "100.00"), bought(2, "50.00")))
    >>> once = Account("b", "B", Source("referral"), datetime(2026, 1, 1, tzinfo=UTC),
    ...                purchases=(bought(1, "50.00"),))
    >>> eur = revenue([shop, once])["EUR"]
    >>> eur.total, eur.repeat_revenue, eur.repeat_share, eur.repeat_customer_rate
    (Money('200.00', 'EUR'), Money('150.00', 'EUR'), Decimal('0.7500'), Decimal('0.5000'))
    >>> eur.average_order_value, eur.purchases_per_customer
    (Money('66.67', 'EUR'), Decimal('1.5000'))
    """
    rows = (
        (account.id, purchase.amount.currency, purchase.amount.amount, utc_day(purchase.at))
        for account, purchase in purchases_between(accounts, since, until)
    )
    tallies = tally(rows)
    return RevenueReport(
        {currency: revenue_figures(currency, tallies[currency]) for currency in sorted(tallies)}
    )


class Tally(NamedTuple):
    """What :func:`revenue` adds up for one currency, before the rates are worked out."""

    total: Decimal
    repeat_revenue: Decimal
    purchases: int
    customers: int
    repeat_customers: int


def tally(rows: Iterable[tuple[str, str, Decimal, Hashable]]) -> dict[str, Tally]:
    """Add up ``(account id, currency, amount, UTC day)`` rows, per currency.

    A customer is a repeat customer in a currency with purchases on two or more days. The
    sums are ``Decimal`` sums in the caller's context, per account first (in the order of the
    rows), then over the accounts in the order they first appear: the exact order
    :func:`revenue` adds in, so an SQL adapter that feeds it its rows in account id order and
    position gives the same figures to the last digit, even where the context rounds.
    """
    # currency -> account id -> (total, purchases, days)
    tallies: dict[str, dict[str, tuple[Decimal, int, set[Hashable]]]] = {}
    for account_id, currency, amount, day in rows:
        per_account = tallies.setdefault(currency, {})
        total, count, days = per_account.get(account_id, (Decimal(0), 0, set()))
        days.add(day)
        per_account[account_id] = (total + amount, count + 1, days)
    return {currency: _tally(per_account) for currency, per_account in tallies.items()}


def _tally(per_account: Mapping[str, tuple[Decimal, int, set[Hashable]]]) -> Tally:
    total = sum((tally[0] for tally in per_account.values()), Decimal(0))
    repeat = sum((t[0] for t in per_account.values() if len(t[2]) > 1), Decimal(0))
    purchases = sum(tally[1] for tally in per_account.values())
    repeat_customers = sum(1 for tally in per_account.values() if len(tally[2]) > 1)
    return Tally(total, repeat, purchases, len(per_account), repeat_customers)


def revenue_figures(currency: str, tallied: Tally) -> Revenue:
    """Return the :class:`Revenue` of ``currency`` from its :class:`Tally`.

    ``total`` and ``repeat_revenue`` must carry the places the sums give (a ``Decimal`` sum
    keeps its finest addend's places): ``average_order_value`` is rounded to them.
    """
    total, repeat, purchases, customers, repeat_customers = tallied
    return Revenue(
        currency=currency,
        total=Money(total, currency),
        # No repeat customer sums to a bare 0; show it with the total's places (0.00 EUR).
        repeat_revenue=Money(repeat if repeat else total * 0, currency),
        repeat_share=ratio(repeat, total) if total else None,
        purchases=purchases,
        customers=customers,
        repeat_customers=repeat_customers,
        repeat_customer_rate=ratio(repeat_customers, customers),
        average_order_value=Money(mean(total, purchases), currency),
        purchases_per_customer=ratio(purchases, customers),
    )
