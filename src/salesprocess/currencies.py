"""Which currency a purchase may be in: a house currency, and one currency per account.

``Money`` never converts, and revenue is reported per currency. An account whose purchases mix
currencies has no lifetime value, no average order, no RFM monetary score of its own; and a
USD invoice on a customer who always paid in EUR is far more often a slip in a shop's export
than a real change. So by default an account's currency is fixed by its first purchase: a
purchase in another currency is refused with :class:`~salesprocess.errors.CurrencyMismatch`
and nothing is stored. A business that sells in one currency names it as the house currency,
and every purchase must then be in it; one that really bills a customer in several turns the
per-account rule off.

>>> import salesprocess as sp
>>> rule = sp.CurrencyRule(house="EUR")
>>> rule.check("acme", (), sp.Money("12.00", "USD"))
Traceback (most recent call last):
...
salesprocess.errors.CurrencyMismatch: account acme: a purchase of 12.00 USD is refused: ...

The rule is a pure decision over the account's purchases; the commands that record purchases
(:mod:`salesprocess.commands.purchases`) apply it, one purchase or a batch at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from salesprocess.account import Purchase
from salesprocess.checks import instance_validator
from salesprocess.errors import CurrencyMismatch, ValidationError
from salesprocess.money import Money

__all__ = ["CurrencyRule"]


def _house(_instance: object, _attribute: object, code: str | None) -> None:
    if code is not None:
        Money(0, code)  # the ISO 4217 check, with its hint


@attrs.frozen
class CurrencyRule:
    """Which currencies a purchase on an account may be in.

    ``house``: the one currency every purchase must be in (``None``: no house currency).
    ``per_account``: an account's currency is fixed by its first purchase (default ``True``);
    ``False`` lets one account buy in several currencies.
    """

    house: str | None = attrs.field(default=None, validator=_house)
    per_account: bool = attrs.field(default=True, validator=instance_validator(bool))

    @classmethod
    def of(cls, value: CurrencyRule | str | None) -> CurrencyRule:
        """Return the rule ``value`` names: a rule, a house currency code, or ``None`` (default).

        What :class:`~salesprocess.process.SalesProcess` takes as ``currency``.
        """
        if value is None:
            return cls()
        if isinstance(value, CurrencyRule):
            return value
        if isinstance(value, str):
            return cls(house=value)
        raise ValidationError(
            f"currency must be a CurrencyRule, an ISO 4217 code or None, not "
            f"{type(value).__name__}",
            field="currency",
        )

    def currency_of(self, purchases: Sequence[Purchase]) -> str | None:
        """Return the currency the next purchase must be in, given an account's ``purchases``.

        The house currency, else (per account) the first purchase's; ``None``: any.
        """
        if self.house is not None:
            return self.house
        if self.per_account and purchases:
            return purchases[0].amount.currency
        return None

    def check(self, account_id: str, purchases: Sequence[Purchase], amount: Money) -> None:
        """Refuse ``amount`` on the account ``account_id`` holding ``purchases``, if it must.

        Raises :class:`~salesprocess.errors.CurrencyMismatch` (``field="amount"``, with the
        currency ``expected`` and the one ``given``).
        """
        expected = self.currency_of(purchases)
        if expected is None or amount.currency == expected:
            return
        why = (
            f"the house currency is {expected}"
            if self.house is not None
            else f"its currency is {expected}, fixed by its first purchase"
        )
        raise CurrencyMismatch(
            f"account {account_id}: a purchase of {amount} is refused: {why}",
            field="amount",
            expected=expected,
            given=amount.currency,
        )
