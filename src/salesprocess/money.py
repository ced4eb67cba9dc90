"""Money: an exact ``Decimal`` amount in one ISO 4217 currency.

Floats are refused because binary fractions cannot hold most cent values exactly, and a sales
ledger that drifts by a cent is wrong. Arithmetic is defined only within one currency; mixing
currencies raises :class:`~salesprocess.errors.CurrencyMismatch` rather than guessing a rate.

>>> from salesprocess.money import Money
>>> Money("12000.00", "EUR") + Money("800", "EUR")
Money('12800.00', 'EUR')
>>> Money("1.10", "EUR") == Money("1.1", "EUR")
True
"""

from __future__ import annotations

from decimal import (
    Clamped,
    Context,
    Decimal,
    DecimalException,
    InvalidOperation,
    Overflow,
    Rounded,
    Subnormal,
)
from typing import Final

import attrs

from salesprocess.checks import shown
from salesprocess.errors import CurrencyMismatch, ValidationError

__all__ = ["ISO_4217_CODES", "MAX_DIGITS", "MAX_MAGNITUDE", "Money"]

#: The amounts Money holds: zero, or a size from ``1E-64`` to below ``1E+64``
#: (``MAX_MAGNITUDE``), written in at most ``MAX_DIGITS`` significant digits. Far beyond any
#: ledger, and wide enough for the quotients that dividing a cent gives; but bounded: a
#: ``Decimal`` such as ``9e999999999999999999`` overflows at the first product, and one such as
#: ``1e-999999999`` makes exact arithmetic size its work (and memory) from the exponent.
MAX_MAGNITUDE: Final = 64
MAX_DIGITS: Final = 128

# Checking an amount is adding it to zero in a context of the bounds that traps what falls
# outside: a fifth of the cost of reading its exponent with as_tuple().
_BOUNDS: Final = Context(
    prec=MAX_DIGITS,
    Emax=MAX_MAGNITUDE - 1,
    Emin=-MAX_MAGNITUDE,
    traps=[Overflow, Subnormal, Rounded, Clamped, InvalidOperation],
)

#: ISO 4217 currency codes in use (list of 2025, with the precious-metal and fund codes; XXX,
#: "no currency", excluded). Kept as data so that a typo such as "EURO" or a lower-case "eur"
#: is refused at the boundary instead of splitting a revenue report.
ISO_4217_CODES: Final[frozenset[str]] = frozenset(
    # A word list reads better than 180 quoted strings.
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN
    ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD
    JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT
    MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG
    QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XCD
    XCG XDR XOF XPD XPF XPT XSU XUA YER ZAR ZMW ZWG
    """.split()  # noqa: SIM905
)


def _to_decimal(value: object) -> Decimal:
    # bool is an int subclass; True dollars is a bug, not an amount.
    if isinstance(value, bool | float):
        raise ValidationError(
            f"amount must be a Decimal, an int or a decimal string, not {type(value).__name__} "
            f"{shown(value)}: floats cannot hold money exactly (write Money('{value}', ...))",
            field="amount",
        )
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            raise ValidationError(
                f"amount {shown(value)} is not a decimal number", field="amount"
            ) from None
    else:
        raise ValidationError(
            f"amount must be a Decimal, an int or a decimal string, not {type(value).__name__}",
            field="amount",
        )
    if not amount.is_finite():
        raise ValidationError(f"amount must be finite, not {shown(value)}", field="amount")
    try:
        _BOUNDS.plus(amount)  # only to check: plus() would turn -0 into 0
    except DecimalException:
        raise ValidationError(
            f"amount {shown(value)} is out of range: Money holds zero or a size from "
            f"1E-{MAX_MAGNITUDE} to below 1E+{MAX_MAGNITUDE}, in at most {MAX_DIGITS} "
            "significant digits",
            field="amount",
        ) from None
    return amount


def _refused(operation: str, exc: ArithmeticError) -> ValidationError:
    # decimal's Overflow, InvalidOperation, ... (or a trap of the caller's context): an operand
    # the arithmetic cannot take.
    return ValidationError(
        f"cannot {operation}: {type(exc).__name__} in the decimal arithmetic", field="amount"
    )


def _check_currency(_instance: object, _attribute: object, code: str) -> None:
    if not isinstance(code, str) or code not in ISO_4217_CODES:
        hint = ""
        if isinstance(code, str) and code.strip().upper() in ISO_4217_CODES:
            hint = f" (did you mean {shown(code.strip().upper())}?)"
        raise ValidationError(
            f"currency {shown(code)} is not an ISO 4217 code{hint}", field="currency"
        )


@attrs.frozen(eq=False, repr=False)
class Money:
    """An exact amount of one currency.

    ``amount`` accepts a ``Decimal``, an ``int`` or a decimal string; a ``float`` is refused.
    Equality and ordering compare the numeric value (``1.10 == 1.1``) within one currency;
    ordering across currencies raises :class:`~salesprocess.errors.CurrencyMismatch`.
    """

    amount: Decimal = attrs.field(converter=_to_decimal)
    currency: str = attrs.field(validator=_check_currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Return nothing of ``currency``: the start of a sum."""
        return cls(Decimal(0), currency)

    def _same(self, other: Money, operation: str) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatch(
                f"cannot {operation} {self} and {other}: currencies differ "
                f"({self.currency} vs {other.currency})",
                field="currency",
            )

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "add")
        try:
            amount = self.amount + other.amount
        except ArithmeticError as exc:
            raise _refused(f"add {self} and {other}", exc) from None
        return Money(amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "subtract")
        try:
            amount = self.amount - other.amount
        except ArithmeticError as exc:
            raise _refused(f"subtract {other} from {self}", exc) from None
        return Money(amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: int | Decimal) -> Money:
        if isinstance(factor, bool) or not isinstance(factor, int | Decimal):
            return NotImplemented
        try:
            amount = self.amount * factor
        except ArithmeticError as exc:
            raise _refused(f"multiply {self} by {shown(factor)}", exc) from None
        return Money(amount, self.currency)

    __rmul__ = __mul__

    def __truediv__(self, divisor: int | Decimal) -> Money:
        if isinstance(divisor, bool) or not isinstance(divisor, int | Decimal):
            return NotImplemented
        if isinstance(divisor, Decimal) and divisor.is_snan():
            raise ValidationError("cannot divide money by a signalling NaN", field="divisor")
        if divisor == 0:
            raise ValidationError("cannot divide money by zero", field="divisor")
        try:
            amount = self.amount / divisor
        except ArithmeticError as exc:
            raise _refused(f"divide {self} by {shown(divisor)}", exc) from None
        return Money(amount, self.currency)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        return self.currency == other.currency and self.amount == other.amount

    def __hash__(self) -> int:
        return hash((self.amount, self.currency))

    def __lt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.amount >= other.amount

    def __repr__(self) -> str:
        return f"Money({str(self.amount)!r}, {self.currency!r})"

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"

    @property
    def is_negative(self) -> bool:
        """Whether the amount is below zero."""
        return self.amount < 0
