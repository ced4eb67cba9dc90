"""RFM: recency, frequency and monetary scores, and the segment they put a customer in.

Scores are quintiles within the customers scored together (1 worst, 5 best), so a segment says
where a customer stands among the others, not against a fixed threshold. Segments follow the
widely used map of the recency (R) and frequency (F) scores, :data:`SEGMENTS`:

- R 4-5: F 1 ``new`` (R 5) or ``promising`` (R 4), F 2-3 ``potential``, F 4-5 ``champions``
  (R 5) or ``loyal`` (R 4);
- R 3: F 1-2 ``about to sleep``, F 3 ``need attention``, F 4-5 ``loyal``;
- R 1-2: F 1-2 ``hibernating`` (R 2) or ``lost`` (R 1), F 3-4 ``at risk``, F 5 ``can't lose``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Final

import attrs

from salesprocess.account import Account
from salesprocess.clock import require_aware, utc_day
from salesprocess.errors import ValidationError
from salesprocess.reports.revenue import purchases_between

__all__ = ["SEGMENTS", "RfmRow", "quintile", "rfm", "segment"]

#: The segment of each (recency score, frequency score), as the module documentation shows.
SEGMENTS: Final[Mapping[tuple[int, int], str]] = {
    (r, f): name
    for r, row in zip(
        (5, 4, 3, 2, 1),
        (
            ("new", "potential", "potential", "champions", "champions"),
            ("promising", "potential", "potential", "loyal", "loyal"),
            ("about to sleep", "about to sleep", "need attention", "loyal", "loyal"),
            ("hibernating", "hibernating", "at risk", "at risk", "can't lose"),
            ("lost", "lost", "at risk", "at risk", "can't lose"),
        ),
        strict=True,
    )
    for f, name in zip((1, 2, 3, 4, 5), row, strict=True)
}


def segment(recency_score: int, frequency_score: int) -> str:
    """Return the segment of a customer's recency and frequency scores (1 to 5 each).

    >>> segment(5, 5), segment(1, 1), segment(2, 4)
    ('champions', 'lost', 'at risk')
    """
    return SEGMENTS[recency_score, frequency_score]


def quintile(value: Decimal | int, ordered: Sequence[Decimal | int]) -> int:
    """Return 1 to 5: the fifth of ``ordered`` that ``value`` falls in, at or below it.

    ``ordered`` is every value scored together, sorted; the score is ``ceil(5 * k / n)`` where
    ``k`` of the ``n`` values are at most ``value``. So ten distinct values score 1, 1, 2, 2,
    ..., 5, 5; equal values share a score; and the best value always scores 5.

    >>> quintile(10, [1, 2, 3, 4, 10]), quintile(1, [1, 2, 3, 4, 10]), quintile(1, [1, 2])
    (5, 1, 3)
    """
    at_most = bisect.bisect_right(ordered, value)
    return (5 * at_most + len(ordered) - 1) // len(ordered)


@attrs.frozen
class RfmRow:
    """One customer's RFM figures, scores and segment; see :func:`rfm`."""

    account_id: str
    recency_days: int
    frequency: int
    monetary: Decimal
    r: int
    f: int
    m: int
    segment: str


def rfm(
    accounts: Iterable[Account], *, as_of: datetime, currency: str | None = None
) -> list[RfmRow]:
    """Return the RFM row of every customer with a purchase (in ``currency``) up to ``as_of``.

    - ``recency_days``: UTC calendar days from the last purchase to ``as_of``;
    - ``frequency``: UTC calendar days with a purchase;
    - ``monetary``: the amount bought, in ``currency``;
    - ``r``, ``f``, ``m``: :func:`quintile` scores among all the customers scored (for ``r``
      fewer days is better, so it ranks the negated recency), and ``segment`` from ``r`` and
      ``f`` (see the module documentation).

    Amounts are never converted: with purchases in several currencies, name the one to score
    (``ValidationError`` otherwise). Rows come sorted by account id.
    """
    end = utc_day(require_aware(as_of, "as_of"))
    days: dict[str, set[date]] = {}
    monetary: dict[str, Decimal] = {}
    currencies: set[str] = set()
    for account, purchase in purchases_between(accounts, None, None):
        day = utc_day(purchase.at)
        if day > end:
            continue
        currencies.add(purchase.amount.currency)
        if currency is None or purchase.amount.currency == currency:
            days.setdefault(account.id, set()).add(day)
            monetary[account.id] = monetary.get(account.id, Decimal(0)) + purchase.amount.amount
    if currency is None and len(currencies) > 1:
        raise ValidationError(
            f"purchases are in {', '.join(sorted(currencies))}: name the currency to score "
            "(amounts are never converted)",
            field="currency",
        )
    recency = {account_id: (end - max(bought)).days for account_id, bought in days.items()}
    frequency = {account_id: len(bought) for account_id, bought in days.items()}
    by_r = sorted(-elapsed for elapsed in recency.values())
    by_f, by_m = sorted(frequency.values()), sorted(monetary.values())
    rows = []
    for account_id in sorted(days):
        r = quintile(-recency[account_id], by_r)
        f = quintile(frequency[account_id], by_f)
        rows.append(
            RfmRow(
                account_id,
                recency[account_id],
                frequency[account_id],
                monetary[account_id],
                r,
                f,
                quintile(monetary[account_id], by_m),
                segment(r, f),
            )
        )
    return rows
