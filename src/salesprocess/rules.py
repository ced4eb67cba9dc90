"""Qualification rules as code, and the combinators that build policies from them.

Marketing criteria are data (:class:`~salesprocess.criteria.Criteria`); sales policies are often
easier to say in Python. Both meet in one small protocol: anything with a ``name`` and an
``evaluate(account) -> RuleResult`` method is a :class:`QualificationRule`. Rules combine with
:func:`all_of`, :func:`any_of`, :func:`at_least`, :func:`not_` and :func:`weighted`, and every
result says *why*, so a person can read the decision.

A rule reads an account's *facts*: a Mapping of the account's attributes and named fields. Rules
take either such a Mapping or any object with a ``facts()`` method returning one (an ``Account``).

>>> big_budget = attribute_rule("budget", lambda amount: amount > 10_000)
>>> decision_maker = attribute_rule("role", lambda role: role in {"CEO", "CFO"})
>>> policy = all_of(big_budget, decision_maker, name="enterprise")
>>> result = policy.evaluate({"budget": 25_000, "role": "CTO"})
>>> result.passed, result.score
(False, 0.5)
>>> print(result.reason)
1 of 2 met; not met: role: not met (role='CTO')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Protocol, overload, runtime_checkable

import attrs

from salesprocess.checks import (
    bool_validator,
    instance_validator,
    require_int,
    require_items,
    require_number,
    require_text,
    shown,
    text_validator,
)
from salesprocess.errors import ValidationError

__all__ = [
    "AllOf",
    "AnyOf",
    "AtLeast",
    "AttributeRule",
    "Not",
    "QualificationRule",
    "Rule",
    "RuleResult",
    "Weighted",
    "all_of",
    "any_of",
    "at_least",
    "attribute_rule",
    "facts_of",
    "not_",
    "rule",
    "weighted",
]

Facts = Mapping[str, object]


_check_bool: Final = bool_validator
_check_text: Final = instance_validator(str)
_check_name: Final = text_validator


def _to_results(value: Iterable[RuleResult]) -> tuple[RuleResult, ...]:
    return tuple(value)


def _to_names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(require_text(name, "aliases") for name in require_items(value, "aliases"))


def _to_score(value: object) -> float:
    return require_number(value, "score", low=0, high=1)


@attrs.frozen
class RuleResult:
    """The verdict of one rule on one account, with the reason a person reads.

    ``score`` (0 to 1) says how much of the rule was met, for ranking: a leaf rule scores 1.0 or
    0.0, a combinator blends its children's scores. ``children`` holds the results the verdict
    was built from (empty for a leaf rule).

    >>> RuleResult(passed=True, reason="budget: met", score=1.0, rule="budget")
    RuleResult(passed=True, reason='budget: met', score=1.0, rule='budget', children=())
    >>> RuleResult(passed=True, reason="?", score=1.5, rule="budget")
    Traceback (most recent call last):
    ...
    salesprocess.errors.ValidationError: score must be a number from 0 to 1, got 1.5
    """

    passed: bool = attrs.field(validator=_check_bool)
    reason: str = attrs.field(validator=_check_text)
    score: float = attrs.field(converter=_to_score)
    rule: str = attrs.field(validator=_check_text)
    children: tuple[RuleResult, ...] = attrs.field(default=(), converter=_to_results)

    def __str__(self) -> str:
        return f"{'pass' if self.passed else 'FAIL'}  {self.rule}: {self.reason}"

    def render(self, indent: str = "  ") -> str:
        """Return this result and, indented below it, the results it was built from.

        >>> print(all_of(rule("a", lambda f: True), rule("b", lambda f: False)).evaluate({})
        ...       .render())
        FAIL  all_of(a, b): 1 of 2 met; not met: b: not met
          pass  a: a: met
          FAIL  b: b: not met
        """
        lines = [str(self)]
        for child in self.children:
            lines += [indent + line for line in child.render(indent).splitlines()]
        return "\n".join(lines)


@runtime_checkable
class QualificationRule(Protocol):
    """Anything that judges an account: a ``name`` and ``evaluate(account) -> RuleResult``.

    :class:`~salesprocess.criteria.Criteria`, every rule in this module and the frameworks in
    :mod:`salesprocess.frameworks` are QualificationRules; so is any class of yours with these
    two members.
    """

    @property
    def name(self) -> str:
        """Return the rule's name, shown in results and reports."""
        ...

    def evaluate(self, account: Any) -> RuleResult:
        """Judge ``account`` (a facts Mapping, or an object with ``facts()``)."""
        ...


def facts_of(account: object) -> Facts:
    """Return the facts a rule reads: ``account.facts()`` if it has one, else the Mapping itself.

    >>> facts_of({"budget": 5})
    {'budget': 5}
    >>> facts_of(42)
    Traceback (most recent call last):
    ...
    salesprocess.errors.ValidationError: cannot read facts from int: pass a Mapping or an object with facts()
    """  # noqa: E501
    facts = getattr(account, "facts", None)
    if callable(facts):
        account = facts()
    if isinstance(account, Mapping):
        return account
    raise ValidationError(
        f"cannot read facts from {type(account).__name__}: pass a Mapping or an object with "
        "facts()",
        field="account",
    )


def _verdict(passed: bool) -> str:
    return "met" if passed else "not met"


@attrs.frozen
class Rule:
    """A rule from a plain predicate over the facts: ``predicate(facts) -> bool``.

    ``description`` says in words what the predicate asks; reasons use it (or the name).
    Exceptions from the predicate propagate: a rule in code that breaks is a bug to see.
    """

    name: str = attrs.field(validator=_check_name)
    predicate: Callable[[Facts], object] = attrs.field()
    description: str | None = None

    def evaluate(self, account: Any) -> RuleResult:
        """Run the predicate on the account's facts."""
        passed = bool(self.predicate(facts_of(account)))
        return RuleResult(
            passed=passed,
            reason=f"{self.description or self.name}: {_verdict(passed)}",
            score=1.0 if passed else 0.0,
            rule=self.name,
        )


@overload
def rule(
    name: str, predicate: Callable[[Facts], object], *, description: str | None = None
) -> Rule: ...
@overload
def rule(
    name: str, predicate: None = None, *, description: str | None = None
) -> Callable[[Callable[[Facts], object]], Rule]: ...
def rule(
    name: str,
    predicate: Callable[[Facts], object] | None = None,
    *,
    description: str | None = None,
) -> Rule | Callable[[Callable[[Facts], object]], Rule]:
    """Make a :class:`Rule` from a predicate over the facts; also works as a decorator.

    >>> referred = rule("referred", lambda facts: facts.get("source", {}).get("referred_by"))
    >>> referred.evaluate({"source": {"referred_by": "acct-1"}}).passed
    True
    >>> @rule("EU", description="based in the EU")
    ... def in_eu(facts):
    ...     return facts.get("region") == "EU"
    >>> in_eu.evaluate({"region": "US"}).reason
    'based in the EU: not met'
    """
    if predicate is not None:
        return Rule(name, predicate, description)

    def decorate(fn: Callable[[Facts], object]) -> Rule:
        return Rule(name, fn, description)

    return decorate


def _missing_value(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@attrs.frozen
class AttributeRule:
    """A rule on one attribute of the facts: ``test(value) -> bool``.

    An attribute that is absent, ``None`` or blank text fails the rule without calling ``test``
    (the reason says it is missing). ``aliases`` are other attribute names to read, in order,
    when ``attribute`` is missing. Without a ``test``, any non-missing value passes.
    """

    attribute: str = attrs.field(validator=_check_name)
    test: Callable[[Any], object] | None = None
    name: str = attrs.field(default=attrs.Factory(lambda self: self.attribute, takes_self=True))
    description: str | None = None
    aliases: tuple[str, ...] = attrs.field(default=(), converter=_to_names)

    def value_of(self, facts: Facts) -> tuple[str, object]:
        """Return the attribute name that was found (or the main one) and its value."""
        for key in (self.attribute, *self.aliases):
            value = facts.get(key)
            if not _missing_value(value):
                return key, value
        return self.attribute, None

    def evaluate(self, account: Any) -> RuleResult:
        """Read the attribute and test it."""
        key, value = self.value_of(facts_of(account))
        what = self.description or self.name
        if _missing_value(value):
            return RuleResult(
                passed=False, reason=f"{what}: not met ({key} missing)", score=0.0, rule=self.name
            )
        passed = True if self.test is None else bool(self.test(value))
        return RuleResult(
            passed=passed,
            reason=f"{what}: {_verdict(passed)} ({key}={value!r})",
            score=1.0 if passed else 0.0,
            rule=self.name,
        )


def attribute_rule(
    attribute: str,
    test: Callable[[Any], object] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    aliases: Iterable[str] = (),
) -> AttributeRule:
    """Make an :class:`AttributeRule`: ``test`` the value of one attribute of the facts.

    >>> budget = attribute_rule("budget", lambda amount: amount > 10_000)
    >>> budget.evaluate({"budget": 25_000}).reason
    'budget: met (budget=25000)'
    >>> budget.evaluate({}).reason
    'budget: not met (budget missing)'
    """
    return AttributeRule(
        attribute,
        test,
        name=attribute if name is None else name,
        description=description,
        aliases=aliases,  # the converter checks them and makes a tuple
    )


# -- combinators ----------------------------------------------------------------------------


def _check_rules(rules: Iterable[object], *, fewest: int = 1) -> tuple[QualificationRule, ...]:
    checked = tuple(require_items(rules, "rules"))
    for r in checked:
        if not isinstance(r, QualificationRule):
            raise ValidationError(
                f"{shown(r)} is not a QualificationRule (it needs name and evaluate(account))",
                field="rules",
            )
    if len(checked) < fewest:
        raise ValidationError(f"give at least {fewest} rule(s), got {len(checked)}", field="rules")
    return checked


def _to_rule(rule: QualificationRule) -> QualificationRule:
    return _check_rules([rule])[0]


def _names(rules: Iterable[QualificationRule]) -> str:
    return ", ".join(r.name for r in rules)


def _not_met(results: Iterable[RuleResult]) -> str:
    return "; ".join(r.reason for r in results if not r.passed)


def _mean(results: tuple[RuleResult, ...]) -> float:
    return sum(r.score for r in results) / len(results)


@attrs.frozen
class AllOf:
    """Passes when every rule passes; scores the mean of their scores."""

    rules: tuple[QualificationRule, ...] = attrs.field(converter=_check_rules)
    name: str = attrs.field(
        default=attrs.Factory(lambda self: f"all_of({_names(self.rules)})", takes_self=True)
    )

    def evaluate(self, account: Any) -> RuleResult:
        """Evaluate every rule (for the reasons and score), pass if all pass."""
        results = tuple(r.evaluate(account) for r in self.rules)
        met = sum(r.passed for r in results)
        passed = met == len(results)
        if passed:
            reason = f"all {met} met"
        else:
            reason = f"{met} of {len(results)} met; not met: {_not_met(results)}"
        return RuleResult(
            passed=passed, reason=reason, score=_mean(results), rule=self.name, children=results
        )


@attrs.frozen
class AnyOf:
    """Passes when at least one rule passes; scores the best of their scores."""

    rules: tuple[QualificationRule, ...] = attrs.field(converter=_check_rules)
    name: str = attrs.field(
        default=attrs.Factory(lambda self: f"any_of({_names(self.rules)})", takes_self=True)
    )

    def evaluate(self, account: Any) -> RuleResult:
        """Evaluate every rule, pass if one passes."""
        results = tuple(r.evaluate(account) for r in self.rules)
        winners = [r.reason for r in results if r.passed]
        reason = "met: " + "; ".join(winners) if winners else "none met: " + _not_met(results)
        return RuleResult(
            passed=bool(winners),
            reason=reason,
            score=max(r.score for r in results),
            rule=self.name,
            children=results,
        )


@attrs.frozen
class AtLeast:
    """Passes when at least ``required`` of the rules pass; scores the mean of their scores."""

    required: int = attrs.field()
    rules: tuple[QualificationRule, ...] = attrs.field(converter=_check_rules)
    name: str = attrs.field(
        default=attrs.Factory(
            lambda self: f"at_least({self.required}, {_names(self.rules)})", takes_self=True
        )
    )

    def __attrs_post_init__(self) -> None:
        require_int(self.required, "required", low=1, high=len(self.rules))

    def evaluate(self, account: Any) -> RuleResult:
        """Evaluate every rule, pass if enough pass."""
        results = tuple(r.evaluate(account) for r in self.rules)
        met = sum(r.passed for r in results)
        reason = f"{met} of {len(results)} met (needs {self.required})"
        if met < len(results):
            reason += f"; not met: {_not_met(results)}"
        return RuleResult(
            passed=met >= self.required,
            reason=reason,
            score=_mean(results),
            rule=self.name,
            children=results,
        )


@attrs.frozen
class Not:
    """Passes when the rule fails; scores one minus its score."""

    rule: QualificationRule = attrs.field(converter=_to_rule)
    name: str = attrs.field(
        default=attrs.Factory(lambda self: f"not {self.rule.name}", takes_self=True)
    )

    def evaluate(self, account: Any) -> RuleResult:
        """Evaluate the rule and invert the verdict."""
        inner = self.rule.evaluate(account)
        return RuleResult(
            passed=not inner.passed,
            reason=f"not ({inner.reason})",
            score=1.0 - inner.score,
            rule=self.name,
            children=(inner,),
        )


def _check_weights(
    weights: Mapping[QualificationRule, float] | Iterable[tuple[QualificationRule, float]],
) -> tuple[tuple[QualificationRule, float], ...]:
    pairs = tuple(
        weights.items() if isinstance(weights, Mapping) else require_items(weights, "weights")
    )
    if not all(isinstance(pair, tuple | list) and len(pair) == 2 for pair in pairs):
        raise ValidationError(
            "weights must be a mapping from rule to weight, or (rule, weight) pairs",
            field="weights",
        )
    rules = _check_rules(r for r, _ in pairs)
    checked = []
    for r, w in zip(rules, (w for _, w in pairs), strict=True):
        try:
            checked.append((r, require_number(w, "weights", positive=True)))
        except ValidationError as exc:
            raise ValidationError(f"{exc} (the weight of {r.name})", field="weights") from None
    return tuple(checked)


def _check_threshold(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    require_number(value, "threshold", low=0, high=1)


@attrs.frozen
class Weighted:
    """Scores the share of the total weight whose rules pass; passes at ``threshold`` or more."""

    weights: tuple[tuple[QualificationRule, float], ...] = attrs.field(converter=_check_weights)
    threshold: float = attrs.field(validator=_check_threshold)
    name: str = attrs.field(
        default=attrs.Factory(
            lambda self: f"weighted({_names(r for r, _ in self.weights)})", takes_self=True
        )
    )

    def evaluate(self, account: Any) -> RuleResult:
        """Evaluate every rule and weigh the ones that pass."""
        results = tuple(r.evaluate(account) for r, _ in self.weights)
        total = sum(w for _, w in self.weights)
        earned = sum(w for (_, w), res in zip(self.weights, results, strict=True) if res.passed)
        score = min(earned / total, 1.0)
        passed = score >= self.threshold
        reason = f"score {score:.2f} (threshold {self.threshold:.2f})"
        met = [res.rule for res in results if res.passed]
        if met:
            reason += "; met: " + ", ".join(met)
        if len(met) < len(results):
            reason += f"; not met: {_not_met(results)}"
        return RuleResult(
            passed=passed, reason=reason, score=score, rule=self.name, children=results
        )


def all_of(*rules: QualificationRule, name: str | None = None) -> AllOf:
    """Combine rules: pass when every one passes.

    >>> yes, no = rule("yes", lambda f: True), rule("no", lambda f: False)
    >>> all_of(yes, no).evaluate({}).reason
    '1 of 2 met; not met: no: not met'
    """
    return AllOf(rules) if name is None else AllOf(rules, name)


def any_of(*rules: QualificationRule, name: str | None = None) -> AnyOf:
    """Combine rules: pass when at least one passes.

    >>> yes, no = rule("yes", lambda f: True), rule("no", lambda f: False)
    >>> any_of(yes, no).evaluate({}).reason
    'met: yes: met'
    """
    return AnyOf(rules) if name is None else AnyOf(rules, name)


def at_least(required: int, *rules: QualificationRule, name: str | None = None) -> AtLeast:
    """Combine rules: pass when at least ``required`` of them pass.

    >>> yes, no = rule("yes", lambda f: True), rule("no", lambda f: False)
    >>> at_least(1, yes, no).evaluate({}).passed
    True
    >>> at_least(3, yes, no)
    Traceback (most recent call last):
    ...
    salesprocess.errors.ValidationError: required must be an int from 1 to 2, got 3
    """
    return AtLeast(required, rules) if name is None else AtLeast(required, rules, name)


def not_(rule: QualificationRule, *, name: str | None = None) -> Not:
    """Invert a rule: pass when it fails.

    >>> blocked = attribute_rule("do_not_contact", lambda flag: flag is True)
    >>> not_(blocked).evaluate({"do_not_contact": False}).passed
    True
    """
    return Not(rule) if name is None else Not(rule, name)


def weighted(
    weights: Mapping[QualificationRule, float] | Iterable[tuple[QualificationRule, float]],
    *,
    threshold: float,
    name: str | None = None,
) -> Weighted:
    """Combine rules by weight: score = passing weight / total weight; pass at ``threshold``.

    ``weights`` is a Mapping from rule to weight, or ``(rule, weight)`` pairs; weights must be
    positive and ``threshold`` is from 0 to 1.

    >>> budget = attribute_rule("budget", lambda amount: amount > 10_000)
    >>> eu = attribute_rule("region", lambda region: region == "EU")
    >>> result = weighted({budget: 3, eu: 1}, threshold=0.7).evaluate({"budget": 20_000})
    >>> result.passed, result.score
    (True, 0.75)
    """
    return Weighted(weights, threshold) if name is None else Weighted(weights, threshold, name)
