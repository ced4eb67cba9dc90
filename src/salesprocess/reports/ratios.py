"""Rates in reports: exact fractions as ``Decimal``, rounded once, whatever the caller's context."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Final

__all__ = ["PLACES", "mean", "ratio"]

#: Rates are rounded to 4 places (0.1234 is 12.34%).
PLACES: Final = Decimal("0.0001")

#: Our own decimal context for the rates, whatever the caller's traps and precision (its
#: methods are called directly: a ``localcontext`` block per figure costs more than the sum).
_CONTEXT: Final = Context(prec=28, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation])


def ratio(part: int | Decimal, whole: int | Decimal) -> Decimal:
    """Return ``part / whole`` rounded to :data:`PLACES` (``whole`` must not be 0).

    >>> ratio(1, 3)
    Decimal('0.3333')
    """
    return _CONTEXT.divide(Decimal(part), Decimal(whole)).quantize(PLACES, context=_CONTEXT)


def mean(total: Decimal, count: int) -> Decimal:
    """Return ``total / count`` rounded half-even to ``total``'s own places.

    A sum of amounts keeps its finest addend's places, so the mean has the amounts' places.

    >>> mean(Decimal("10.00"), 3)
    Decimal('3.33')
    """
    return _CONTEXT.divide(total, count).quantize(total, context=_CONTEXT)
