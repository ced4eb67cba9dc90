"""Revenue: what was sold, and how much of it came from customers who came back.

Repeat business is the base of growth, so the figure that matters beside the total is the part
of it that repeat customers bring. Every figure is per currency: amounts are never converted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal

import attrs

from salesprocess.account import Account, Purchase
from salesprocess.clock import require_aware, utc_day
from salesprocess.errors import ValidationError
from salesprocess.money import Money
from salesprocess.reports.ratios import mean, ratio

__all__ = ["Revenue", "RevenueReport", "purchases_between", "revenue"]


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


def purchases_between(
    accounts: Iterable[Account], since: datetime | None, until: datetime | None
) -> Iterator[tuple[Account, Purchase]]:
    """Yield each purchase made at or after ``since`` and before ``until`` (``None``: open).

    Raises ``ValidationError`` for a bound that is not an aware datetime, or ``since`` not
    before ``until``.
    """
    since = None if since is None else require_aware(since, "since")
    until = None if until is None else require_aware(until, "until")
    if since is not None and until is not None and since >= until:
        raise ValidationError(
            f"since ({since.isoformat()}) must be before until ({until.isoformat()})",
            field="since",
        )
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
    # currency -> account id -> (total, purchases, days)
    tallies: dict[str, dict[str, tuple[Decimal, int, set[date]]]] = {}
    for account, purchase in purchases_between(accounts, since, until):
        amount = purchase.amount
        per_account = tallies.setdefault(amount.currency, {})
        total, count, days = per_account.get(account.id, (Decimal(0), 0, set()))
        days.add(utc_day(purchase.at))
        per_account[account.id] = (total + amount.amount, count + 1, days)
    return RevenueReport(
        {currency: _figures(currency, tallies[currency]) for currency in sorted(tallies)}
    )


def _figures(currency: str, per_account: Mapping[str, tuple[Decimal, int, set[date]]]) -> Revenue:
    total = sum((tally[0] for tally in per_account.values()), Decimal(0))
    repeat = sum((t[0] for t in per_account.values() if len(t[2]) > 1), Decimal(0))
    purchases = sum(tally[1] for tally in per_account.values())
    customers = len(per_account)
    repeat_customers = sum(1 for tally in per_account.values() if len(tally[2]) > 1)
    return Revenue(
        currency=currency,
        total=Money(total, currency),
        repeat_revenue=Money(repeat, currency),
        repeat_share=ratio(repeat, total) if total else None,
        purchases=purchases,
        customers=customers,
        repeat_customers=repeat_customers,
        repeat_customer_rate=ratio(repeat_customers, customers),
        average_order_value=Money(mean(total, purchases), currency),
        purchases_per_customer=ratio(purchases, customers),
    )
