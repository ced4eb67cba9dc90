"""Criteria as a database prefilter: sound (never drops a pass), exact where types are certain."""

from __future__ import annotations

import itertools
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import salesprocess as sp
from salesprocess.criteria_sql import (
    ERROR,
    UNKNOWN,
    Compare,
    Leaf,
    OneOf,
    may_pass,
    must_pass,
    prefilter,
    translates,
)
from salesprocess.storage import serialise
from salesprocess.storage.criteria_sql import postgres_where, sqlite_verdict, sqlite_where
from salesprocess.testing import _criteria_documents, _prospect_attributes

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
BENCH_RULE = {
    "and": [
        {"in": [{"var": "industry"}, ["manufacturing", "logistics", "retail"]]},
        {">=": [{"var": "employees"}, 50]},
        {"<=": [{"var": "employees"}, 5000]},
        {"==": [{"var": "region"}, "EU"]},
        {"!": {"var": "do_not_call"}},
        {">": [{"var": "budget"}, 10000]},
    ]
}


def criteria(document: object) -> sp.Criteria:
    return sp.Criteria.from_dict(document, name="test", version="1")


@settings(max_examples=400, deadline=None)
@given(document=_criteria_documents(), attributes=_prospect_attributes())
def test_the_prefilter_never_drops_a_pass_nor_passes_a_failure(document, attributes):
    """passes => may_pass, and must_pass => passes: both sides sound, on every corner."""
    rule = criteria(document)
    check = prefilter(rule)
    account = sp.Account("a-1", "Acme", sp.Source("referral"), T0, attributes=attributes)
    passed = rule.passes(account)
    if passed:
        assert may_pass(check, account.attributes)
    if must_pass(check, account.attributes):
        assert passed


@settings(max_examples=400, deadline=None)
@given(document=_criteria_documents(), attributes=_prospect_attributes())
def test_the_sqlite_verdict_is_the_reference_prefilters(document, attributes):
    """1 exactly where must_pass holds, 0 where may_pass does not, NULL elsewhere; and sound."""
    rule = criteria(document)
    check = prefilter(rule)
    account = sp.Account("a-1", "Acme", sp.Source("referral"), T0, attributes=attributes)
    sql, params = sqlite_verdict(check)
    with sqlite3.connect(":memory:") as db:
        (verdict,) = db.execute(
            f"SELECT {sql} FROM (SELECT :stored_account AS data)",
            {**params, "stored_account": serialise.dumps(account)},
        ).fetchone()
    db.close()
    facts = account.attributes
    expected = 1 if must_pass(check, facts) else 0 if not may_pass(check, facts) else None
    nul = "\\u0000" in serialise.dumps(account) or "\\x00" in repr(document)
    if not nul:  # text holding NUL is left to Python
        assert verdict == expected
    if verdict is not None:
        assert bool(verdict) is rule.passes(account)


_SAFE = 2**53 - 1


def _sqlite_answers(check: Any, account: sp.Account) -> tuple[object, ...]:
    """Return the verdict, "may pass" and "surely passes" SQLite gives ``account``."""
    verdict, verdict_params = sqlite_verdict(check)
    may, may_params = sqlite_where(check)
    must, must_params = sqlite_where(check, must=True)
    answers = []
    with sqlite3.connect(":memory:") as db:
        for sql, params in ((verdict, verdict_params), (may, may_params), (must, must_params)):
            (answer,) = db.execute(
                f"SELECT {sql} FROM (SELECT :stored_account AS data)",
                {**params, "stored_account": serialise.dumps(account)},
            ).fetchone()
            answers.append(answer)
    db.close()
    return tuple(answers)


@pytest.mark.parametrize("negated", [False, True])
@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
@pytest.mark.parametrize(
    "literal", [50, -3, 0, 2.5, -2.5, 7.0, _SAFE, -_SAFE, _SAFE + 1, 2**60, -(2**60), 1e300]
)
def test_an_integer_order_comparison_decides_exactly_at_its_boundaries(op, literal, negated):
    """Integers either side of the literal and of 2**53: the verdict is the reference's.

    Negated too, where what surely fails the comparison is what surely passes the criteria.
    """
    comparison = {op: [{"var": "n"}, literal]}
    rule = criteria({"!": comparison} if negated else comparison)
    check = prefilter(rule)
    values = {0, _SAFE, _SAFE + 1, -_SAFE, -_SAFE - 1, 2**64 + 1, -(2**64) - 1}
    if abs(literal) < 2**70:
        values |= {int(literal) + step for step in (-2, -1, 0, 1, 2)}
    for value in sorted(values):
        account = sp.Account("a-1", "Acme", sp.Source("referral"), T0, attributes={"n": value})
        facts = account.attributes
        expected = 1 if must_pass(check, facts) else 0 if not may_pass(check, facts) else None
        verdict, may, must = _sqlite_answers(check, account)
        assert verdict == expected, value
        assert (may, must) == (may_pass(check, facts), must_pass(check, facts)), value
        if verdict is not None:
            assert bool(verdict) is rule.passes(account), value


@settings(max_examples=200, deadline=None)
@given(
    industry=st.sampled_from(["manufacturing", "food", "retail", ""]),
    employees=st.integers(-10, 6000),
    region=st.sampled_from(["EU", "NA", "eu"]),
    do_not_call=st.booleans(),
    budget=st.integers(0, 20_000),
)
def test_where_the_types_are_certain_the_prefilter_decides_exactly(**attributes: Any):
    """Ints and text where the criteria compare ints and text: SQL alone gives the verdict."""
    rule = criteria(BENCH_RULE)
    check = prefilter(rule)
    verdict = rule.passes(attributes)
    assert may_pass(check, attributes) is verdict
    assert must_pass(check, attributes) is verdict


@pytest.mark.parametrize(
    ("document", "attributes", "may", "must"),
    [
        # truthiness: "" 0 [] falsy, "0" and {} truthy; a Decimal is left to Python
        ({"var": "x"}, {"x": ""}, False, False),
        ({"var": "x"}, {"x": 0}, False, False),
        ({"var": "x"}, {"x": []}, False, False),
        ({"var": "x"}, {"x": "0"}, True, True),
        ({"var": "x"}, {"x": {}}, True, False),
        ({"!": {"var": "x"}}, {"x": [0]}, False, False),
        # loose equality: a number meets a numeric string as a number, a word is an error
        ({"==": [{"var": "x"}, "5"]}, {"x": 5}, True, True),
        ({"==": [{"var": "x"}, 5]}, {"x": "5"}, True, False),  # text against a number: Python
        # NaN, an error: never "surely" anything, so Python judges it (and fails it)
        ({"==": [{"var": "x"}, "abc"]}, {"x": 5}, True, False),
        ({"!=": [{"var": "x"}, "abc"]}, {"x": 5}, True, False),
        ({"!": {"==": [{"var": "x"}, "abc"]}}, {"x": 5}, True, False),
        ({"===": [{"var": "x"}, "5"]}, {"x": 5}, False, False),
        # null, missing and defaults
        ({"==": [{"var": "x"}, None]}, {}, True, True),
        ({"==": [{"var": "x"}, None]}, {"x": None}, True, True),
        ({"==": [{"var": "x"}, 0]}, {"x": None}, True, True),  # null == 0
        ({"==": [{"var": "x"}, ""]}, {"x": None}, False, False),  # null equals no string
        ({"==": [{"var": ["x", 7]}, 7]}, {}, True, True),  # missing: the default
        ({"==": [{"var": ["x", 7]}, 7]}, {"x": None}, False, False),  # null is no default
        ({">": [{"var": "n.a"}, 1]}, {"n": {"a": 2}}, True, True),
        ({">": [{"var": "n.a"}, 1]}, {"n": "text"}, False, False),  # not there: null > 1
        # a real number and a big integer are compared in Python, not in SQL
        ({">": [{"var": "x"}, 1]}, {"x": 1.5}, True, False),
        ({">": [{"var": "x"}, 1]}, {"x": 2**60}, True, False),
        # the account's own fields are never read from attributes
        ({"==": [{"var": "name"}, "Acme"]}, {"name": "Other"}, True, False),
    ],
)
def test_corners(document, attributes, may, must):
    """JSON Logic's corners: what the prefilter may pass and surely passes."""
    rule = criteria(document)
    check = prefilter(rule)
    assert may_pass(check, attributes) is may
    assert must_pass(check, attributes) is must
    if must:
        assert rule.passes(attributes)
    if not may:
        assert not rule.passes(attributes)


def test_the_translation_reads_types_before_values():
    """A comparison holds an outcome per kind of stored value: JSON Logic's, not SQL's."""
    (leaf,) = [prefilter(criteria({">=": [{"var": "employees"}, 50]}))]
    assert isinstance(leaf, Leaf)
    assert leaf.path == ("employees",)
    assert leaf.outcome("number") == Compare(">=", 50)
    assert leaf.outcome("text") == UNKNOWN  # "60" >= 50 is true, "abc" >= 50 an error
    assert leaf.outcome("array") == ERROR
    assert leaf.outcome("missing") is False  # null >= 50
    member = prefilter(criteria({"in": [{"var": "x"}, ["a", 1, True]]}))
    assert isinstance(member, Leaf)
    assert member.outcome("text") == OneOf(("a",))
    assert member.outcome("number") == OneOf((1,))
    assert member.outcome("true") is True


@pytest.mark.parametrize(
    "document",
    [
        {"missing": ["industry"]},
        {">": [{"+": [{"var": "a"}, 1]}, 2]},
        {"==": [{"var": "a"}, {"var": "b"}]},
        {"some": [{"var": "tags"}, {"==": [{"var": ""}, "x"]}]},
        {"==": [{"var": "a.0"}, 1]},
    ],
)
def test_what_does_not_translate_is_left_to_python(document):
    """Untranslated criteria keep every row: SQL selects all, Python judges all."""
    check = prefilter(criteria(document))
    assert not translates(check)
    assert may_pass(check, {})
    assert not must_pass(check, {})
    assert sqlite_where(check)[0] == "1"
    assert postgres_where(check)[0] == "TRUE"


@pytest.mark.parametrize("operator", ["and", "or"])
def test_each_operand_is_rendered_once_however_many_there_are(operator):
    """The SQL grows with the operands, not with their square, and stays flat enough to parse.

    Three hundred clauses render to SQL about thirty times as long as ten do (a form that
    repeats the earlier operands for each later one would be about a thousand times).
    """

    def rendered(count: int) -> tuple[str, str]:
        document = {operator: [{">=": [{"var": f"a{i}"}, i]} for i in range(count)]}
        check = prefilter(criteria(document))
        return sqlite_where(check)[0], postgres_where(check)[0]

    for short, long in zip(rendered(10), rendered(300), strict=True):
        assert len(long) < 40 * len(short)


def test_a_long_conjunction_screens_in_sql_as_python_judges_it():
    """Three hundred clauses: SQLite's parser takes the prefilter, the verdicts are Python's."""
    document = {"and": [{">=": [{"var": f"a{i}"}, 0]} for i in range(300)]}
    rule = criteria(document)
    rows = [{f"a{i}": 1 for i in range(300)}]
    rows.append({**rows[0], "a150": -1})
    expected = _sales(None, rule)
    with sp.storage.SQLiteRepository(":memory:") as db:
        sales = _sales(db, rule)
        for process in (expected, sales):
            for number, attributes in enumerate(rows):
                process.capture_lead(
                    f"Lead {number}", email=f"l{number}@x.example", channel="cold_outreach",
                    attributes=attributes, at=T0 - timedelta(minutes=2 - number),
                )  # fmt: skip
        moment = T0 + timedelta(days=1)
        screened = sales.screen_all(at=moment)
        assert [r.passed for r in screened] == [True, False]
        assert screened == expected.screen_all(at=moment)


def _sales(repository: Any, rule: sp.Criteria) -> sp.SalesProcess:
    counter = itertools.count(1)
    return sp.SalesProcess(
        repository, criteria=rule, clock=sp.FixedClock(T0),
        id_factory=lambda: f"id-{next(counter):04d}",
    )  # fmt: skip


ROWS = [
    {"industry": "retail", "employees": 80, "region": "EU", "budget": 20_000},
    {"industry": "retail", "employees": "80", "region": "EU", "budget": 20_000},
    {"industry": "retail", "employees": 80.5, "region": "EU", "budget": 20_000},
    {"industry": "food", "employees": 80, "region": "EU", "budget": 20_000},
    {"industry": "retail", "employees": 80, "region": "EU", "budget": 20_000, "do_not_call": 1},
    {"industry": "retail", "employees": 80, "region": "EU", "budget": [1]},
    {},
]


@pytest.mark.parametrize(
    "document",
    [BENCH_RULE, {"or": [{"missing": ["budget"]}, {"==": [{"var": "region"}, "EU"]}]}],
)
def test_every_store_screens_and_lists_as_python_does(any_repository, document):
    """screen_all and call_list on each store equal the in-memory store's, translated or not."""
    rule = criteria(document)
    expected, sales = _sales(None, rule), _sales(any_repository, rule)
    for process in (expected, sales):
        for number, attributes in enumerate(ROWS):
            process.capture_lead(
                f"Lead {number}", email=f"l{number}@x.example", channel="cold_outreach",
                attributes=attributes, at=T0 - timedelta(minutes=len(ROWS) - number),
            )  # fmt: skip
    assert sales.call_list() == expected.call_list()
    moment = T0 + timedelta(days=1)
    screened, wanted = sales.screen_all(at=moment), expected.screen_all(at=moment)
    assert screened == wanted
    assert [r.explain() for r in screened] == [r.explain() for r in wanted]
    assert list(sales.repository.page()) == list(expected.repository.page())


def test_call_list_asks_the_store_for_the_prospects_that_may_pass(tmp_path):
    """On SQLite the call list reads only what the prefilter keeps, and still ranks exactly."""
    asked: list[object] = []

    class Counting(sp.storage.SQLiteRepository):
        def prospects_matching(self, check: Any, *, stage: sp.Stage) -> Any:
            asked.append(check)
            return super().prospects_matching(check, stage=stage)

    with Counting(tmp_path / "s.db") as repository:
        rule = criteria(BENCH_RULE)
        sales = _sales(repository, rule)
        for number, attributes in enumerate(ROWS):
            sales.capture_lead(f"Lead {number}", email=f"l{number}@x.example",
                               channel="cold_outreach", attributes=attributes)  # fmt: skip
        listed = sales.call_list()
        assert asked == [prefilter(rule)]
        assert [a.attributes for a in listed] == [
            a.attributes for a in repository.with_stage(sp.Stage.PROSPECT) if rule.passes(a)
        ]


def test_every_store_refuses_a_bulk_screen_earlier_than_a_last_screening(any_repository):
    """The check runs before anything is stored, on the stores that screen in SQL too.

    A later bulk screen then runs, reporting its progress.
    """
    sales = _sales(any_repository, criteria(BENCH_RULE))
    for number, attributes in enumerate(ROWS[:3]):
        sales.capture_lead(f"Lead {number}", email=f"l{number}@x.example",
                           channel="cold_outreach", attributes=attributes)  # fmt: skip
    first, second, _ = sales.repository.with_stage(sp.Stage.PROSPECT)
    sales.screen(second.id, at=T0 + timedelta(days=3))
    before = list(sales.repository.page())
    with pytest.raises(sp.ValidationError, match="earlier than the last screening of 1 "):
        sales.screen_all(at=T0 + timedelta(days=2))
    assert list(sales.repository.page()) == before
    ticks: list[tuple[int, int]] = []
    reports = sales.screen_all(at=T0 + timedelta(days=4), progress=lambda *t: ticks.append(t))
    assert ticks[-1] == (3, 3)
    assert [r.account_id for r in reports][:2] == [first.id, second.id]
    assert len(sales.get(second.id).screenings) == 2
