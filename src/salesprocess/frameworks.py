"""Ready-made qualification frameworks: BANT, CHAMP, ANUM and MEDDIC.

Sales teams qualify leads with a handful of well-known checklists. Each one here is an
:class:`~salesprocess.rules.AtLeast` rule over documented attribute names of the account's facts,
so it plugs in wherever a :class:`~salesprocess.rules.QualificationRule` goes, and its result
lists every component with the value it read.

Two spellings, one design:

* ``BANT``, ``CHAMP``, ``ANUM``, ``MEDDIC`` are ready rules with the defaults below;
* ``bant(...)``, ``champ(...)``, ``anum(...)``, ``meddic(...)`` build tuned ones
  (how many components must pass, a minimum budget, the roles that count as authority, ...).

>>> lead = {"budget": "50k", "authority": "CFO", "need": "replace three lathes"}
>>> BANT.evaluate(lead).passed           # 3 of 4 by default; timeline is missing
True
>>> bant(required=4).evaluate(lead).reason
'3 of 4 met (needs 4); not met: timeline within 12 months: not met (timeline missing)'

========  ===================================================================  ==========
name      attributes (aliases)                                                 passes on
========  ===================================================================  ==========
BANT      budget, authority, need, timeline                                    3 of 4
CHAMP     challenges (pain, need), authority, money (budget), prioritization   3 of 4
          (priority)
ANUM      authority, need, urgency, money (budget)                             3 of 4
MEDDIC    metrics, economic_buyer, decision_criteria, decision_process,        6 of 6
          identify_pain (pain), champion
========  ===================================================================  ==========

What makes a component pass:

* **established** (need, challenges, prioritization, urgency and every MEDDIC component): the
  value is present and not a "no": ``True``, non-empty text other than ``no``, ``false``,
  ``none``, ``n/a``, ``unknown``, ``0``, ``-`` (case-insensitive), a non-zero number, or a
  non-empty collection.
* **budget / money**: ``True`` (a budget is confirmed), or an amount above zero and at least
  ``min_budget``. Amounts may be numbers, ``Decimal``, objects with an ``amount`` (``Money``), or
  text such as ``"15000"``, ``"15,000 EUR"``, ``"$50k"``, ``"1.2m"``. Text that is not an amount
  (``"approved"``) counts only while ``min_budget`` is 0.
* **authority**: established; with ``authority_roles``, the value (a role, or a list of roles)
  must name one of them, case-insensitively. ``True`` always counts.
* **timeline**: established; a number is the months until the purchase and must be from 0 to
  ``max_timeline_months``. Dates count as set (no clock is read here).

An attribute that is absent, ``None`` or blank fails its component.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from decimal import Decimal, InvalidOperation
from numbers import Real
from typing import cast

from salesprocess.checks import require_number, shown
from salesprocess.errors import ValidationError
from salesprocess.rules import AtLeast, AttributeRule, at_least

__all__ = [
    "ANUM",
    "BANT",
    "CHAMP",
    "MEDDIC",
    "amount_of",
    "anum",
    "authority_rule",
    "bant",
    "budget_rule",
    "champ",
    "established",
    "is_established",
    "meddic",
    "timeline_rule",
]

_NO: frozenset[str] = frozenset(
    {"", "no", "n", "false", "none", "null", "n/a", "na", "unknown", "0", "-", "?"}
)
_AMOUNT = re.compile(
    r"(?:[A-Za-z]{3}|[$€£¥])?\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*([kKmM]?)\s*(?:[A-Za-z]{3}|[$€£¥])?"
)
_SCALE = {"": 1, "k": 1_000, "m": 1_000_000}


def is_established(value: object) -> bool:
    """Tell whether a qualification fact is present and not a "no".

    >>> [is_established(v) for v in (True, "yes", "Yes, Q3", "n/a", " No ", 0, 3, [], ["x"])]
    [True, True, True, False, False, False, True, False, True]
    """
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return value.strip().lower() not in _NO
    if isinstance(value, Decimal):
        return not value.is_nan() and value != 0
    if isinstance(value, Real):
        return not math.isnan(value) and value != 0
    if isinstance(value, (Mapping, AbstractSet, list, tuple)):
        return len(value) > 0
    return True


def amount_of(value: object) -> Decimal | None:  # noqa: PLR0911 - one branch per kind
    """Read an amount of money from a number, a ``Money``-like object or text; else ``None``.

    >>> amount_of("15,000 EUR"), amount_of("$50k"), amount_of(1.5), amount_of("approved")
    (Decimal('15000'), Decimal('50000'), Decimal('1.5'), None)
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        return None if value.is_nan() else value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return None if math.isnan(value) else Decimal(repr(value))
    if isinstance(value, str):
        match = _AMOUNT.fullmatch(value.strip().replace(",", "").replace("_", ""))
        if not match:
            return None
        try:
            return Decimal(match.group(1)) * _SCALE[match.group(2).lower()]
        except InvalidOperation:  # pragma: no cover - the pattern only admits numbers
            return None
    amount = getattr(value, "amount", None)
    return None if amount is None else amount_of(amount)


def _check_minimum(minimum: object) -> Decimal:
    amount = amount_of(minimum) if not isinstance(minimum, str) else None
    if amount is None or amount < 0 or not amount.is_finite():
        raise ValidationError(
            f"min_budget must be a number of at least 0, not {shown(minimum)}", field="min_budget"
        )
    return amount


def established(
    attribute: str, *, aliases: Iterable[str] = (), description: str | None = None
) -> AttributeRule:
    """Make a component rule that passes when the attribute :func:`is_established`.

    >>> established("champion").evaluate({"champion": "Dana (ops lead)"}).passed
    True
    """
    return AttributeRule(attribute, is_established, attribute, description, aliases=tuple(aliases))


def budget_rule(
    attribute: str = "budget", *, min_budget: object = 0, aliases: Iterable[str] = ()
) -> AttributeRule:
    """Make the budget component: ``True``, or an amount above 0 and at least ``min_budget``.

    >>> rule = budget_rule(min_budget=10_000)
    >>> [rule.evaluate({"budget": v}).passed for v in (True, "12k", 9_000, "approved")]
    [True, True, False, False]
    """
    minimum = _check_minimum(min_budget)

    def test(value: object) -> bool:
        if isinstance(value, bool):
            return value
        amount = amount_of(value)
        if amount is None:
            return minimum == 0 and is_established(value)
        return amount > 0 and amount >= minimum

    description = attribute if minimum == 0 else f"{attribute} >= {minimum}"
    return AttributeRule(attribute, test, attribute, description, aliases=tuple(aliases))


def authority_rule(
    attribute: str = "authority", *, roles: Iterable[str] | None = None
) -> AttributeRule:
    """Make the authority component: established, or naming one of ``roles``.

    >>> rule = authority_rule(roles={"CEO", "CFO", "Head of Operations"})
    >>> [rule.evaluate({"authority": v}).passed for v in ("cfo", ["intern", "CEO"], "intern")]
    [True, True, False]
    """
    if roles is None:
        return established(attribute)
    if isinstance(roles, str):
        raise ValidationError("roles must be a collection of role names", field="roles")
    wanted = frozenset(r.strip().lower() for r in roles)

    def test(value: object) -> bool:
        if isinstance(value, bool):
            return value
        named = [value] if isinstance(value, str) else value
        if not isinstance(named, (list, tuple, AbstractSet)):
            return False
        return any(isinstance(r, str) and r.strip().lower() in wanted for r in named)

    description = f"{attribute} in {sorted(wanted)}"
    return AttributeRule(attribute, test, attribute, description)


def timeline_rule(attribute: str = "timeline", *, max_months: float = 12) -> AttributeRule:
    """Make the timeline component: established; a number is months, from 0 to ``max_months``.

    >>> rule = timeline_rule(max_months=6)
    >>> [rule.evaluate({"timeline": v}).passed for v in ("Q3", 3, 9, "no")]
    [True, True, False, False]
    """
    require_number(max_months, "max_timeline_months", low=0)

    def test(value: object) -> bool:
        if isinstance(value, Decimal) and value.is_nan():
            return False
        if isinstance(value, (Real, Decimal)) and not isinstance(value, bool):
            # Real and Decimal compare with numbers, which the type stubs cannot say.
            return 0 <= cast("float", value) <= max_months
        return is_established(value)

    return AttributeRule(attribute, test, attribute, f"{attribute} within {max_months} months")


def bant(
    *,
    required: int = 3,
    min_budget: object = 0,
    authority_roles: Iterable[str] | None = None,
    max_timeline_months: float = 12,
    name: str = "BANT",
) -> AtLeast:
    """Build BANT: Budget, Authority, Need, Timeline; passes on ``required`` of the 4.

    >>> bant(min_budget=20_000).evaluate({"budget": 5_000, "authority": True, "need": True,
    ...                                   "timeline": 2}).reason
    '3 of 4 met (needs 3); not met: budget >= 20000: not met (budget=5000)'
    """
    components = (
        budget_rule("budget", min_budget=min_budget),
        authority_rule("authority", roles=authority_roles),
        established("need"),
        timeline_rule("timeline", max_months=max_timeline_months),
    )
    return at_least(required, *components, name=name)


def champ(
    *,
    required: int = 3,
    min_budget: object = 0,
    authority_roles: Iterable[str] | None = None,
    name: str = "CHAMP",
) -> AtLeast:
    """Build CHAMP: CHallenges, Authority, Money, Prioritization; passes on ``required`` of 4."""
    components = (
        established("challenges", aliases=("pain", "need")),
        authority_rule("authority", roles=authority_roles),
        budget_rule("money", min_budget=min_budget, aliases=("budget",)),
        established("prioritization", aliases=("priority",)),
    )
    return at_least(required, *components, name=name)


def anum(
    *,
    required: int = 3,
    min_budget: object = 0,
    authority_roles: Iterable[str] | None = None,
    name: str = "ANUM",
) -> AtLeast:
    """Build ANUM: Authority, Need, Urgency, Money; passes on ``required`` of the 4."""
    components = (
        authority_rule("authority", roles=authority_roles),
        established("need"),
        established("urgency"),
        budget_rule("money", min_budget=min_budget, aliases=("budget",)),
    )
    return at_least(required, *components, name=name)


def meddic(*, required: int = 6, name: str = "MEDDIC") -> AtLeast:
    """Build MEDDIC: Metrics, Economic buyer, Decision criteria, Decision process, Identify pain,
    Champion; passes on ``required`` of the 6 (all of them by default).
    """  # noqa: D205
    components = (
        established("metrics"),
        established("economic_buyer"),
        established("decision_criteria"),
        established("decision_process"),
        established("identify_pain", aliases=("pain",)),
        established("champion"),
    )
    return at_least(required, *components, name=name)


BANT: AtLeast = bant()
"""BANT with the defaults: 3 of budget, authority, need, timeline (12 months)."""

CHAMP: AtLeast = champ()
"""CHAMP with the defaults: 3 of challenges, authority, money, prioritization."""

ANUM: AtLeast = anum()
"""ANUM with the defaults: 3 of authority, need, urgency, money."""

MEDDIC: AtLeast = meddic()
"""MEDDIC with the defaults: all 6 components established."""
