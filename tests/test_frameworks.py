"""Frameworks: BANT, CHAMP, ANUM and MEDDIC as ready and tunable rules."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from salesprocess import frameworks
from salesprocess.criteria import Criteria
from salesprocess.errors import ValidationError
from salesprocess.frameworks import (
    ANUM,
    BANT,
    CHAMP,
    MEDDIC,
    amount_of,
    anum,
    bant,
    budget_rule,
    champ,
    is_established,
    meddic,
    timeline_rule,
)
from salesprocess.rules import AtLeast, QualificationRule, all_of

QUALIFIED_BANT = {"budget": 25_000, "authority": "CFO", "need": "three lathes", "timeline": 3}


class Money:
    """Stands in for salesprocess.Money: an object with an amount."""

    def __init__(self, amount: str) -> None:
        self.amount = Decimal(amount)


@pytest.mark.parametrize("framework", [BANT, CHAMP, ANUM, MEDDIC])
def test_ready_frameworks_are_rules(framework):
    """Each ready framework is a QualificationRule named after itself."""
    assert isinstance(framework, QualificationRule)
    assert isinstance(framework, AtLeast)
    assert framework.name in {"BANT", "CHAMP", "ANUM", "MEDDIC"}


def test_bant_passes_on_three_of_four_by_default():
    """BANT passes with any three of budget, authority, need and timeline."""
    assert BANT.evaluate(QUALIFIED_BANT).passed
    missing_timeline = {**QUALIFIED_BANT, "timeline": None}
    result = BANT.evaluate(missing_timeline)
    assert result.passed
    assert result.score == 0.75
    assert result.reason == "3 of 4 met (needs 3); not met: timeline within 12 months: not met " + (
        "(timeline missing)"
    )
    assert not BANT.evaluate({"budget": 1, "need": True}).passed


def test_bant_components_are_listed_in_the_result():
    """The result keeps one child per component, in order."""
    result = BANT.evaluate(QUALIFIED_BANT)
    assert [c.rule for c in result.children] == ["budget", "authority", "need", "timeline"]
    assert all(c.passed for c in result.children)


def test_bant_can_be_tuned():
    """bant() sets the count, the minimum budget, the roles and the timeline horizon."""
    strict = bant(
        required=4,
        min_budget=Decimal("50000"),
        authority_roles={"CEO", "CFO"},
        max_timeline_months=6,
    )
    assert not strict.evaluate(QUALIFIED_BANT).passed
    assert strict.evaluate({**QUALIFIED_BANT, "budget": "60k"}).passed
    assert not strict.evaluate({**QUALIFIED_BANT, "budget": "60k", "authority": "intern"}).passed
    assert not strict.evaluate({**QUALIFIED_BANT, "budget": "60k", "timeline": 9}).passed


@pytest.mark.parametrize(
    ("budget", "passed"),
    [
        (True, True),
        (False, False),
        (25_000, True),
        (0, False),
        (-5, False),
        ("15,000 EUR", True),
        ("$50k", True),
        ("approved", True),
        ("no", False),
        (Money("1200.00"), True),
        (Decimal("NaN"), False),
    ],
)
def test_budget_values(budget, passed):
    """A budget passes when confirmed or a positive amount; text that says no fails."""
    assert budget_rule().evaluate({"budget": budget}).passed is passed


def test_a_minimum_budget_needs_an_amount():
    """With a minimum, only amounts at or above it pass; "approved" is not enough."""
    rule = budget_rule(min_budget=10_000)
    assert rule.evaluate({"budget": Money("10000")}).passed
    assert not rule.evaluate({"budget": "approved"}).passed
    assert rule.evaluate({"budget": True}).passed


@pytest.mark.parametrize(
    ("timeline", "passed"),
    [(3, True), (0, True), (13, False), (-1, False), ("Q3 2026", True), (date(2026, 9, 1), True)],
)
def test_timeline_values(timeline, passed):
    """A timeline is set text or a date, or a number of months within the horizon."""
    assert timeline_rule().evaluate({"timeline": timeline}).passed is passed


def test_champ_reads_its_attributes_and_aliases():
    """CHAMP reads challenges, authority, money and prioritization, with documented aliases."""
    lead = {"pain": "downtime", "authority": True, "budget": "20k", "priority": "high"}
    result = CHAMP.evaluate(lead)
    assert result.passed
    assert result.score == 1.0
    assert [c.rule for c in result.children] == [
        "challenges",
        "authority",
        "money",
        "prioritization",
    ]
    assert not champ(required=4).evaluate({**lead, "priority": "no"}).passed


def test_anum_reads_authority_need_urgency_money():
    """ANUM passes on three of authority, need, urgency and money."""
    assert ANUM.evaluate({"authority": "VP", "need": True, "urgency": "this quarter"}).passed
    assert not ANUM.evaluate({"authority": "VP", "urgency": "n/a", "money": 0}).passed
    assert (
        not anum(authority_roles=["CEO"])
        .evaluate({"authority": "VP", "need": True, "urgency": True})
        .passed
    )


def test_meddic_needs_all_six_by_default():
    """MEDDIC passes when all six components are established; meddic() relaxes it."""
    deal = {
        "metrics": "cut downtime 20%",
        "economic_buyer": "CFO",
        "decision_criteria": ["price", "uptime"],
        "decision_process": "board in May",
        "identify_pain": "lathe failures",
        "champion": "plant manager",
    }
    assert MEDDIC.evaluate(deal).passed
    no_champion = {**deal, "champion": "unknown"}
    assert not MEDDIC.evaluate(no_champion).passed
    assert meddic(required=5).evaluate(no_champion).passed


@pytest.mark.parametrize(
    ("value", "established"),
    [
        (True, True),
        (False, False),
        (None, False),
        ("yes", True),
        ("N/A", False),
        ("  no ", False),
        ("unknown", False),
        (0, False),
        (0.5, True),
        (Decimal(0), False),
        ([], False),
        (["x"], True),
        ({}, False),
        (date(2026, 1, 1), True),
    ],
)
def test_is_established(value, established):
    """Present-and-not-a-no: the rule behind most components."""
    assert is_established(value) is established


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("15000", Decimal(15000)),
        ("15,000.50", Decimal("15000.50")),
        ("EUR 1200", Decimal(1200)),
        ("1.2m", Decimal("1200000.0")),
        ("€ 80k", Decimal(80000)),
        ("approx 5k", None),
        ("", None),
    ],
)
def test_amount_of_text(text, amount):
    """Amounts are read from the ways CRMs and spreadsheets write them."""
    assert amount_of(text) == amount


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: bant(required=5), "required"),
        (lambda: bant(required=0), "required"),
        (lambda: meddic(required=7), "required"),
        (lambda: bant(min_budget=-1), "min_budget"),
        (lambda: bant(min_budget="lots"), "min_budget"),
        (lambda: bant(max_timeline_months=-1), "max_timeline_months"),
        (lambda: bant(authority_roles="CEO"), "roles"),
    ],
)
def test_tuning_arguments_are_validated(build, field):
    """Nonsense settings are a ValidationError naming the setting."""
    with pytest.raises(ValidationError) as caught:
        build()
    assert caught.value.field == field


def test_frameworks_combine_with_criteria():
    """A framework and marketing's criteria combine into one policy."""
    criteria = Criteria.from_dict({">=": [{"var": "employees"}, 50]}, name="size", version="1")
    policy = all_of(criteria, frameworks.BANT, name="qualified")
    assert policy.evaluate({**QUALIFIED_BANT, "employees": 120}).passed
    assert not policy.evaluate({**QUALIFIED_BANT, "employees": 12}).passed
