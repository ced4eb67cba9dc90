"""Rules in code: results, the protocol, predicates and the combinators."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesprocess.errors import ValidationError
from salesprocess.rules import (
    AtLeast,
    QualificationRule,
    Rule,
    RuleResult,
    all_of,
    any_of,
    at_least,
    attribute_rule,
    facts_of,
    not_,
    rule,
    weighted,
)

YES = rule("yes", lambda facts: True)
NO = rule("no", lambda facts: False)
BUDGET = attribute_rule("budget", lambda amount: amount > 10_000)
EU = attribute_rule("region", lambda region: region == "EU", description="based in the EU")


class Account:
    """Stands in for salesprocess.Account."""

    def __init__(self, **facts: object) -> None:
        self._facts = facts

    def facts(self) -> dict[str, object]:
        return self._facts


class HasPhone:
    """A rule written as a plain class, with no base class."""

    name = "has phone"

    def evaluate(self, account: Any) -> RuleResult:
        passed = bool(facts_of(account).get("phone"))
        return RuleResult(
            passed=passed, reason="phone on file", score=float(passed), rule=self.name
        )


# -- RuleResult -------------------------------------------------------------------------------


@pytest.mark.parametrize("score", [-0.1, 1.01, float("nan"), "0.5", True, None])
def test_result_score_must_be_from_0_to_1(score):
    """A score outside 0..1, NaN or not a number is a ValidationError naming the field."""
    with pytest.raises(ValidationError) as caught:
        RuleResult(passed=True, reason="x", score=score, rule="r")
    assert caught.value.field == "score"


def test_result_fields_are_validated():
    """passed must be a bool and reason a str."""
    with pytest.raises(ValidationError):
        RuleResult(passed=1, reason="x", score=1.0, rule="r")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RuleResult(passed=True, reason=None, score=1.0, rule="r")  # type: ignore[arg-type]


def test_result_score_is_a_float():
    """An int score is kept as a float."""
    assert RuleResult(passed=False, reason="x", score=0, rule="r").score == 0.0


def test_result_renders_with_its_children():
    """str() is one line; render() adds the children, indented."""
    result = all_of(YES, NO, name="both").evaluate({})
    assert str(result) == "FAIL  both: 1 of 2 met; not met: no: not met"
    assert result.render().splitlines()[1:] == ["  pass  yes: yes: met", "  FAIL  no: no: not met"]


# -- the protocol and leaf rules --------------------------------------------------------------


def test_any_class_with_name_and_evaluate_is_a_rule():
    """The protocol is structural: a plain class qualifies and combines."""
    assert isinstance(HasPhone(), QualificationRule)
    assert not isinstance(object(), QualificationRule)
    assert all_of(HasPhone(), YES).evaluate({"phone": "+49 30 1234567"}).passed


def test_rules_read_facts_from_mappings_or_facts_objects():
    """A rule takes a facts Mapping or any object with facts()."""
    assert BUDGET.evaluate({"budget": 20_000}).passed
    assert BUDGET.evaluate(Account(budget=20_000)).passed


def test_facts_of_refuses_other_subjects():
    """A subject that is neither a Mapping nor has facts() is a ValidationError."""
    with pytest.raises(ValidationError, match="cannot read facts"):
        BUDGET.evaluate(["budget", 1])


def test_rule_wraps_a_predicate_and_works_as_decorator():
    """rule() makes a Rule from a function, directly or as a decorator."""

    @rule("enterprise", description="more than 1000 employees")
    def enterprise(facts):
        return facts.get("employees", 0) > 1000

    assert isinstance(enterprise, Rule)
    result = enterprise.evaluate({"employees": 5000})
    assert (result.passed, result.reason, result.score) == (
        True,
        "more than 1000 employees: met",
        1.0,
    )
    assert enterprise.evaluate({}).reason == "more than 1000 employees: not met"


def test_attribute_rule_reports_the_value_it_read():
    """An attribute rule's reason shows the value, or that it is missing."""
    assert BUDGET.evaluate({"budget": 500}).reason == "budget: not met (budget=500)"
    assert BUDGET.evaluate({"budget": None}).reason == "budget: not met (budget missing)"
    assert EU.evaluate({"region": "EU"}).reason == "based in the EU: met (region='EU')"


def test_attribute_rule_does_not_call_its_test_on_missing_values():
    """Absent, None or blank values fail without calling the test (no TypeError)."""
    for facts in ({}, {"budget": None}, {"budget": "  "}):
        assert not BUDGET.evaluate(facts).passed


def test_attribute_rule_aliases_and_default_test():
    """Aliases are read in order; without a test any present value passes."""
    pain = attribute_rule("pain", aliases=("need", "challenges"))
    assert pain.evaluate({"challenges": "downtime"}).reason == "pain: met (challenges='downtime')"
    assert not pain.evaluate({}).passed


def test_predicate_errors_propagate():
    """A rule in code that breaks raises: bugs are not hidden as a failed rule."""
    with pytest.raises(TypeError):
        BUDGET.evaluate({"budget": "lots"})


# -- combinators ------------------------------------------------------------------------------


def test_all_of():
    """all_of passes only when all pass; it scores the mean and lists what failed."""
    result = all_of(YES, BUDGET).evaluate({"budget": 50})
    assert (result.passed, result.score) == (False, 0.5)
    assert result.reason == "1 of 2 met; not met: budget: not met (budget=50)"
    assert result.rule == "all_of(yes, budget)"
    assert [c.rule for c in result.children] == ["yes", "budget"]
    assert all_of(YES, YES, name="twice").evaluate({}).reason == "all 2 met"


def test_any_of():
    """any_of passes when one passes; it scores the best child."""
    result = any_of(NO, EU).evaluate({"region": "EU"})
    assert (result.passed, result.score) == (True, 1.0)
    assert result.reason == "met: based in the EU: met (region='EU')"
    none = any_of(NO, EU).evaluate({})
    assert none.reason == "none met: no: not met; based in the EU: not met (region missing)"


def test_at_least():
    """at_least(n) passes when n or more pass."""
    rules = (YES, NO, BUDGET)
    assert at_least(2, *rules).evaluate({"budget": 20_000}).passed
    result = at_least(2, *rules).evaluate({})
    assert not result.passed
    assert result.reason.startswith("1 of 3 met (needs 2); not met: no: not met; budget")
    assert result.score == pytest.approx(1 / 3)


def test_not():
    """not_ inverts the verdict and the score."""
    result = not_(BUDGET).evaluate({"budget": 20_000})
    assert (result.passed, result.score, result.rule) == (False, 0.0, "not budget")
    assert result.reason == "not (budget: met (budget=20000))"


def test_weighted_mapping_and_pairs():
    """weighted scores the passing share of the weight and passes at the threshold."""
    policy = weighted({BUDGET: 3, EU: 1}, threshold=0.75)
    assert policy.evaluate({"budget": 20_000}).passed
    result = policy.evaluate({"region": "EU"})
    assert (result.passed, result.score) == (False, 0.25)
    assert result.reason == (
        "score 0.25 (threshold 0.75); met: region; not met: budget: not met (budget missing)"
    )
    pairs = weighted([(BUDGET, 1.5), (EU, 0.5)], threshold=0.5, name="fit")
    assert pairs.evaluate({"budget": 20_000}).score == 0.75
    assert pairs.name == "fit"


def test_combinators_nest():
    """Combinators take combinators; each level keeps its children's results."""
    policy = any_of(all_of(BUDGET, EU), not_(NO), name="policy")
    result = policy.evaluate({})
    assert result.passed
    assert [c.rule for c in result.children] == ["all_of(budget, region)", "not no"]
    assert isinstance(policy, QualificationRule)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (all_of, "rules"),
        (lambda: any_of(YES, "not a rule"), "rules"),  # type: ignore[arg-type]
        (lambda: at_least(0, YES), "required"),
        (lambda: at_least(2, YES), "required"),
        (lambda: at_least(True, YES), "required"),  # type: ignore[arg-type]
        (lambda: weighted({YES: 0}, threshold=0.5), "weights"),
        (lambda: weighted({YES: -1}, threshold=0.5), "weights"),
        (lambda: weighted({YES: float("inf")}, threshold=0.5), "weights"),
        (lambda: weighted({YES: 1}, threshold=1.5), "threshold"),
        (lambda: weighted({YES: 1}, threshold=-0.1), "threshold"),
        (lambda: weighted({}, threshold=0.5), "rules"),
        (lambda: rule("", lambda f: True), "name"),
    ],
)
def test_combinator_arguments_are_validated(build, field):
    """Bad arguments raise ValidationError naming the field."""
    with pytest.raises(ValidationError) as caught:
        build()
    assert caught.value.field == field


@given(outcomes=st.lists(st.booleans(), min_size=1, max_size=8), data=st.data())
def test_at_least_agrees_with_counting(outcomes, data):
    """at_least(n) passes exactly when n or more children pass; all_of/any_of are its ends."""
    rules = [YES if ok else NO for ok in outcomes]
    required = data.draw(st.integers(1, len(rules)))
    result = AtLeast(required, rules).evaluate({})
    assert result.passed == (sum(outcomes) >= required)
    assert result.score == pytest.approx(sum(outcomes) / len(outcomes))
    assert all_of(*rules).evaluate({}).passed == all(outcomes)
    assert any_of(*rules).evaluate({}).passed == any(outcomes)
    assert not_(all_of(*rules)).evaluate({}).passed == (not all(outcomes))
