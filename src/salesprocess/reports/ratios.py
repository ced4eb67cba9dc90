"""Rates in reports: exact fractions as ``Decimal``, rounded once, whatever the caller's context."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation, localcontext
from typing import Final

__all__ = ["PLACES", "mean", "ratio"]

#: Rates are rounded to 4 places (0.1234 is 12.34%).
PLACES: Final = Decimal("0.0001")

#: Our own decimal context for the rates, whatever the caller's traps and precision.
_CONTEXT: Final = Context(prec=28, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation])


def ratio(part: int | Decimal, whole: int | Decimal) -> Decimal:
    """Return ``part / whole`` rounded to :data:`PLACES` (``whole`` must not be 0).

    >>> ratio(1, 3)
    Decimal('0.3333')
    """
    with localcontext(_CONTEXT):
        return (Decimal(part) / Decimal(whole)).quantize(PLACES)


def mean(total: Decimal, count: int, exponent: int) -> Decimal:
    """Return ``total / count`` rounded half-even to ``exponent`` (the amounts' own places).

    >>> mean(Decimal("10.00"), 3, -2)
    Decimal('3.33')
    """
    with localcontext(_CONTEXT):
        return (total / count).quantize(Decimal(1).scaleb(exponent))
