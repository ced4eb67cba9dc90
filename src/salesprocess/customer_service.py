"""Customer service: repair or replace, decided with what the customer values.

During the sale we learn what each customer cares about and keep it in the account's service
profile (:class:`~salesprocess.account.Preference`), beside the equipment it runs
(:class:`~salesprocess.account.Asset`). When a piece breaks, service has two offers to make, a
repair or a replacement, and the profile says which one this customer wants to hear first: a
shop that keeps machines running for decades should not be pushed into an upgrade, and one that
always wants the latest should not be sold a fourth repair.

The decision is pluggable: any object with :meth:`ServicePolicy.recommend` is a policy.
:class:`RepairOrReplacePolicy` is the reference one.

>>> from datetime import UTC, date, datetime
>>> from salesprocess.account import Account, Asset, Preference, Source
>>> lathe = Asset("lathe-1", "Lathe L-200", installed=date(2015, 5, 1), expected_life_years=20)
>>> shop = Account("a-1", "Acme", Source("referral"), datetime(2026, 1, 5, tzinfo=UTC),
...                assets=(lathe,),
...                preferences=(Preference("equipment_strategy", "repair_over_upgrade",
...                                        datetime(2026, 1, 7, tzinfo=UTC),
...                                        evidence="Keeps machines running 15+ years"),))
>>> rec = RepairOrReplacePolicy().recommend(
...     shop, lathe, repair_cost=Money("9000.00", "EUR"),
...     replacement_cost=Money("14000.00", "EUR"), on=date(2026, 11, 2))
>>> rec.action
<ServiceAction.REPAIR: 'repair'>
>>> print(rec.explain())
REPAIR Lathe L-200 (lathe-1) of account a-1
- age: 11.5 of 20 years, 42.5% of its life left
- repair 9000.00 EUR is 64.3% of a replacement at 14000.00 EUR
- the life left is worth 5944.96 EUR: repair up to that
- preference equipment_strategy = repair_over_upgrade, learned 2026-01-07: "Keeps machines running 15+ years"
- so repair up to the larger of that and 80% of a replacement: 11200.00 EUR
- decided: repair 9000.00 EUR <= limit 11200.00 EUR
"""  # noqa: E501 - a doctest's expected output is one line

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import date
from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import Final, Protocol, runtime_checkable

import attrs

from salesprocess.account import Account, Asset
from salesprocess.checks import require_items, require_text, shown
from salesprocess.errors import CurrencyMismatch, ValidationError
from salesprocess.money import Money

__all__ = [
    "RepairOrReplacePolicy",
    "ServiceAction",
    "ServicePolicy",
    "ServiceRecommendation",
]


class ServiceAction(enum.StrEnum):
    """What service offers for a broken asset."""

    REPAIR = "repair"
    REPLACE = "replace"


@attrs.frozen
class ServiceRecommendation:
    """A policy's answer for one broken asset, with the reasons that decided it.

    ``reasons`` are lines for a person: the figures compared and the preference applied.
    """

    account_id: str
    asset_id: str
    action: ServiceAction
    repair_cost: Money
    replacement_cost: Money
    reasons: tuple[str, ...]
    asset_model: str = ""

    def explain(self) -> str:
        """Return the recommendation and, one line each, the figures and preference behind it."""
        label = f"{self.asset_model} ({self.asset_id})" if self.asset_model else self.asset_id
        head = f"{self.action.name} {label} of account {self.account_id}"
        return "\n".join([head, *(f"- {reason}" for reason in self.reasons)])


@runtime_checkable
class ServicePolicy(Protocol):
    """Decides between repairing and replacing a customer's broken asset."""

    def recommend(
        self,
        account: Account,
        asset: Asset,
        *,
        repair_cost: Money,
        replacement_cost: Money,
        on: date,
    ) -> ServiceRecommendation:
        """Return the offer to make for ``asset`` of ``account``, broken on ``on``."""
        ...


def _share(_instance: object, attribute: attrs.Attribute[Decimal], value: object) -> None:
    # A Decimal, not a float: 0.8 is not exactly four fifths, and the limit is money.
    if not isinstance(value, Decimal) or not value.is_finite() or not 0 <= value <= 1:
        raise ValidationError(
            f"{attribute.name} must be a Decimal from 0 to 1, got {shown(value)}",
            field=attribute.name,
        )


_TENTH: Final = Decimal("0.1")
_DAYS_PER_YEAR: Final = Decimal("365.25")


def _percent(value: Decimal) -> str:
    text = str((value * 100).quantize(_TENTH, ROUND_HALF_EVEN))
    return f"{text.removesuffix('.0')}%"


def _texts(value: object, field: str) -> frozenset[str]:
    # A lone string would become a set of its letters: refuse it, as any non-text member.
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError(
            f"{field} must be a set of preference values (text), got {shown(value)}", field=field
        )
    items = list(require_items(value, field))
    if not all(isinstance(item, str) and item.strip() for item in items):
        raise ValidationError(f"{field} must hold non-empty text, got {shown(items)}", field=field)
    return frozenset(items)


def _repair_minded(value: object) -> frozenset[str]:
    return _texts(value, "repair_minded")


def _upgrade_minded(value: object) -> frozenset[str]:
    return _texts(value, "upgrade_minded")


def _key(_instance: object, _attribute: object, value: object) -> None:
    require_text(value, "preference_key")


@attrs.frozen
class RepairOrReplacePolicy:
    """Repair while it costs no more than the asset's remaining life is worth, as preferred.

    The baseline: an asset that has used ``a`` of its ``n`` expected years has ``(n - a) / n``
    of a replacement's value left, and a repair costing more than that buys less than a new
    one would. The customer's answer under ``preference_key`` then moves the limit:

    - a value in ``repair_minded`` (``"repair_over_upgrade"``, ``"keep_running"``): repair up to
      the larger of the baseline and ``repair_minded_share`` of a replacement (80%), so even
      an old asset is repaired while that is the cheaper offer by enough;
    - a value in ``upgrade_minded`` (``"upgrade_over_repair"``, ``"latest_equipment"``):
      repair only up to the smaller of the baseline and ``upgrade_minded_share`` (10%);
    - anything else, or no answer: the baseline alone.

    Every figure is rounded to the smallest unit the two costs are written in (cents for
    ``"900.00"``), and the decision compares the repair with the limit as printed.
    """

    preference_key: str = attrs.field(default="equipment_strategy", validator=_key)
    repair_minded: frozenset[str] = attrs.field(
        default=frozenset({"repair_over_upgrade", "keep_running"}), converter=_repair_minded
    )
    upgrade_minded: frozenset[str] = attrs.field(
        default=frozenset({"upgrade_over_repair", "latest_equipment"}),
        converter=_upgrade_minded,
    )
    repair_minded_share: Decimal = attrs.field(default=Decimal("0.8"), validator=_share)
    upgrade_minded_share: Decimal = attrs.field(default=Decimal("0.1"), validator=_share)

    def __attrs_post_init__(self) -> None:
        both = self.repair_minded & self.upgrade_minded
        if both:
            raise ValidationError(
                f"{sorted(both)} cannot be both repair-minded and upgrade-minded",
                field="upgrade_minded",
            )

    def recommend(
        self,
        account: Account,
        asset: Asset,
        *,
        repair_cost: Money,
        replacement_cost: Money,
        on: date,
    ) -> ServiceRecommendation:
        """Return REPAIR or REPLACE for ``asset``, with the figures and preference that decided."""
        _check_costs(repair_cost, replacement_cost)
        if type(on) is not date:
            raise ValidationError(
                f"on must be a datetime.date, not {type(on).__name__}", field="on"
            )
        if on < asset.installed:
            raise ValidationError(
                f"asset {asset.id} was installed on {asset.installed.isoformat()}, after "
                f"{on.isoformat()}",
                field="on",
            )
        repair, replacement = repair_cost.amount, replacement_cost.amount
        exponent = min(0, _exponent(repair), _exponent(replacement))
        unit = Decimal((0, (1,), exponent))
        # Our own context, not the caller's: enough digits for the costs at that unit, the
        # widest exponents, and no trap on the rounding that figures for people need.
        digits = max(repair.adjusted(), replacement.adjusted(), 0) - exponent + 12
        context = Context(
            prec=max(28, digits),
            rounding=ROUND_HALF_EVEN,
            Emin=MIN_EMIN,
            Emax=MAX_EMAX,
            traps=[InvalidOperation, DivisionByZero, Overflow],
        )
        with localcontext(context):
            return self._decide(
                account,
                asset,
                repair_cost=repair_cost,
                replacement_cost=replacement_cost,
                on=on,
                unit=unit,
            )

    def _decide(
        self,
        account: Account,
        asset: Asset,
        *,
        repair_cost: Money,
        replacement_cost: Money,
        on: date,
        unit: Decimal,
    ) -> ServiceRecommendation:
        currency = replacement_cost.currency
        replacement = replacement_cost.amount

        def money(amount: Decimal) -> Money:
            # Down to the unit: a repair (a whole number of units) is within the rounded limit
            # exactly when it is within the exact one, so the printed limit decides.
            return Money(amount.quantize(unit, ROUND_FLOOR), currency)

        life = Decimal(asset.expected_life_years)
        age = Decimal((on - asset.installed).days) / _DAYS_PER_YEAR
        left = max(Decimal(0), life - age) / life
        baseline = money(replacement * left)
        reasons = [
            f"age: {age.quantize(_TENTH)} of {asset.expected_life_years} years, "
            f"{_percent(left)} of its life left",
            f"repair {repair_cost} is {_percent(repair_cost.amount / replacement)} of a "
            f"replacement at {replacement_cost}",
            f"the life left is worth {baseline}: repair up to that",
        ]
        limit = baseline
        preference = account.preference(self.preference_key)
        if preference is None:
            reasons.append(f"no preference {self.preference_key} learned: the baseline decides")
        else:
            # Quote what showed the preference: the service profile is the customer's own words.
            evidence = "" if preference.evidence is None else f': "{_quoted(preference.evidence)}"'
            reasons.append(
                f"preference {preference.key} = {preference.value}, "
                f"learned {preference.at.date().isoformat()}{evidence}"
            )
            if preference.value in self.repair_minded:
                limit = max(baseline, money(replacement * self.repair_minded_share))
                reasons.append(
                    f"so repair up to the larger of that and "
                    f"{_percent(self.repair_minded_share)} of a replacement: {limit}"
                )
            elif preference.value in self.upgrade_minded:
                limit = min(baseline, money(replacement * self.upgrade_minded_share))
                reasons.append(
                    f"so repair only up to the smaller of that and "
                    f"{_percent(self.upgrade_minded_share)} of a replacement: {limit}"
                )
            else:
                reasons.append("a value this policy does not weigh: the baseline decides")
        repair = repair_cost <= limit
        reasons.append(f"decided: repair {repair_cost} {'<=' if repair else '>'} limit {limit}")
        return ServiceRecommendation(
            account_id=account.id,
            asset_id=asset.id,
            action=ServiceAction.REPAIR if repair else ServiceAction.REPLACE,
            repair_cost=repair_cost,
            replacement_cost=replacement_cost,
            reasons=tuple(reasons),
            asset_model=asset.model,
        )


#: How much of a preference's evidence an explanation quotes.
_QUOTE: Final = 120


def _quoted(evidence: str) -> str:
    text = " ".join(evidence.split())
    return text if len(text) <= _QUOTE else f"{text[: _QUOTE - 1]}…"


def _exponent(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)  # Money holds finite amounts only
    return exponent


def _cost(value: object, field: str) -> Money:
    if not isinstance(value, Money):
        raise ValidationError(
            f"{field} must be Money, not {type(value).__name__} {shown(value)}", field=field
        )
    if value.is_negative:
        raise ValidationError(f"{field} cannot be negative: {value}", field=field)
    return value


def _check_costs(repair_cost: object, replacement_cost: object) -> None:
    repair = _cost(repair_cost, "repair_cost")
    replacement = _cost(replacement_cost, "replacement_cost")
    if repair.currency != replacement.currency:
        raise CurrencyMismatch(
            f"cannot weigh a repair in {repair.currency} against a replacement in "
            f"{replacement.currency}",
            field="repair_cost",
        )
    if replacement.amount == 0:
        raise ValidationError(
            "replacement_cost must be above zero: a free replacement needs no decision",
            field="replacement_cost",
        )
