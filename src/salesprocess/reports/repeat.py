"""Repeat purchase summary: the inputs of BG/NBD and Gamma-Gamma models, per customer.

The figures are those of the ``lifetimes`` library's ``summary_data_from_transaction_data``,
so the rows can be fed to its ``BetaGeoFitter`` and ``GammaGammaFitter`` (or any model that
reads the same columns) as they are; a test checks equality with ``lifetimes`` itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Final, Literal, NamedTuple

from salesprocess.account import Account, Purchase
from salesprocess.checks import shown
from salesprocess.clock import require_aware, utc_day
from salesprocess.errors import ValidationError
from salesprocess.reports.ratios import mean

__all__ = ["PERIODS", "Period", "RepeatRow", "period_index", "repeat_summary"]

#: A period, as pandas spells it: a UTC calendar day, or a week (Monday to Sunday). Months are
#: left out: lifetimes cannot compute them on pandas 2 and later (``np.timedelta64(1, "M")``).
Period = Literal["D", "W"]
PERIODS: Final = ("D", "W")

_MONDAY: Final = date(2024, 1, 1)  # any Monday: weeks are counted from one
_MONDAY_ORDINAL: Final = _MONDAY.toordinal()
_ZERO: Final = Decimal(0)


def period_index(day: date, period: Period) -> int:
    """Return the number of ``day``'s period, so that periods subtract as pandas' do.

    >>> period_index(date(2026, 6, 1), "D") - period_index(date(2026, 3, 1), "D")
    92
    >>> period_index(date(2026, 3, 2), "W") - period_index(date(2026, 3, 1), "W")  # Sun, Mon
    1
    """
    if period == "D":
        return day.toordinal()
    return (day.toordinal() - _MONDAY_ORDINAL) // 7


def _period(value: object) -> Period:
    if isinstance(value, str) and value in PERIODS:
        return value  # type: ignore[return-value]
    raise ValidationError(
        f"period must be one of {', '.join(PERIODS)} (day, week), got {shown(value)}",
        field="period",
    )


class RepeatRow(NamedTuple):
    """One customer's repeat purchase figures in one currency; see :func:`repeat_summary`.

    A named tuple, immutable like every report value, so that a list of rows loads straight
    into a DataFrame (``pandas.DataFrame(rows)``) for a BG/NBD or Gamma-Gamma model.
    """

    account_id: str
    currency: str
    frequency: int
    recency: int
    T: int
    monetary_value: Decimal


def repeat_summary(
    accounts: Iterable[Account], *, as_of: datetime, period: Period = "D"
) -> list[RepeatRow]:
    """Return one row per customer and currency, as ``lifetimes`` defines the columns.

    Purchases are grouped into periods (``period``: ``"D"`` UTC calendar days, ``"W"`` weeks
    from Monday to Sunday); purchases in a period after ``as_of``'s
    are left out, and so are accounts with none before. For each customer and currency:

    - ``frequency``: the periods with a purchase, less the first: the *repeat* periods;
    - ``recency``: periods from the first purchase's to the last purchase's;
    - ``T``: periods from the first purchase's to ``as_of``'s;
    - ``monetary_value``: the mean, over the repeat periods, of the amount bought in each
      (0 when ``frequency`` is 0), rounded half-even to the places of the amounts it averages.

    Zero-value purchases count like any other, as in ``lifetimes``. Rows come sorted by
    account id, then currency; no purchase at all gives no row. Raises ``ValidationError`` for
    an unknown ``period``, a naive ``as_of``, or an ``as_of`` before every purchase.

    >>> from datetime import UTC
    >>> from salesprocess.account import Purchase, Source
    >>> from salesprocess.money import Money
    >>> def bought(month, day, amount):
    ...     return Purchase(Money(amount, "EUR"), datetime(2026, month, day, tzinfo=UTC))
    >>> acme = Account("a", "Acme", Source("referral"), datetime(2026, 1, 5, tzinfo=UTC),
    ...                purchases=(bought(3, 1, "12000.00"), bought(6, 1, "800.00")))
    >>> repeat_summary([acme], as_of=datetime(2026, 12, 31, tzinfo=UTC))
    [RepeatRow(account_id='a', currency='EUR', frequency=1, recency=92, T=305, monetary_value=Decimal('800.00'))]
    """  # noqa: E501 - a doctest's expected output is one line
    unit = _period(period)
    end = period_index(utc_day(require_aware(as_of, "as_of")), unit)
    weekly = unit == "W"
    rows: list[RepeatRow] = []
    seen_any = False
    for account in accounts:
        purchases = account.purchases
        if not purchases:
            continue
        seen_any = True
        row = _one_currency(account.id, purchases, end, weekly)
        if row is not None:
            if row is not _NOTHING:
                rows.append(row)
            continue
        # Several currencies: currency -> period -> amount bought in it.
        spent: dict[str, dict[int, Decimal]] = {}
        for purchase in purchases:
            index = _index(purchase.at, weekly)
            if index > end:
                break
            amount = purchase.amount
            periods = spent.setdefault(amount.currency, {})
            periods[index] = periods[index] + amount.amount if index in periods else amount.amount
        for currency, periods in spent.items():
            rows.append(_row(account.id, currency, periods, end))
    if not rows and seen_any:
        raise ValidationError(
            f"as_of {as_of.isoformat()} is before every purchase: nothing to summarise",
            field="as_of",
        )
    rows.sort(key=attrgetter("account_id", "currency"))
    return rows


def _index(at: datetime, weekly: bool) -> int:
    # The report's hot path: a day is the datetime's own ordinal once in UTC, no date made.
    day = (at if at.tzinfo is UTC else at.astimezone(UTC)).toordinal()
    return (day - _MONDAY_ORDINAL) // 7 if weekly else day


#: What _one_currency answers for an account with no purchase up to as_of.
_NOTHING: Final = RepeatRow("", "", 0, 0, 0, Decimal(0))


def _one_currency(
    account_id: str, purchases: tuple[Purchase, ...], end: int, weekly: bool
) -> RepeatRow | None:
    """Return the row of an account that buys in one currency, in one pass; ``None`` if not.

    Purchases are kept in time order, so periods only grow: the periods are counted as they
    change, and everything after the first period is repeat business. No dict, no list.
    """
    currency = purchases[0].amount.currency
    first = last = _index(purchases[0].at, weekly)
    if first > end:
        return _NOTHING
    periods = 1
    repeat = _ZERO
    for purchase in purchases[1:]:
        amount = purchase.amount
        if amount.currency != currency:
            return None
        index = _index(purchase.at, weekly)
        if index > end:
            break
        if index != last:
            periods += 1
            last = index
        if index != first:
            repeat += amount.amount
    if periods == 1:
        return RepeatRow(account_id, currency, 0, 0, end - first, _ZERO)
    return RepeatRow(account_id, currency, periods - 1, last - first, end - first,
                     mean(repeat, periods - 1))  # fmt: skip


def _row(account_id: str, currency: str, periods: dict[int, Decimal], end: int) -> RepeatRow:
    ordered = sorted(periods)
    first = ordered[0]
    if len(ordered) == 1:
        return RepeatRow(account_id, currency, 0, 0, end - first, _ZERO)
    repeat = [periods[index] for index in ordered[1:]]
    # A sum keeps its finest addend's places: the total carries the averaged amounts' places.
    total = sum(repeat, _ZERO)
    value = mean(total, len(repeat))
    return RepeatRow(account_id, currency, len(repeat), ordered[-1] - first, end - first, value)
