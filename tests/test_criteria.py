"""Criteria: marketing's JSON Logic, loaded once, evaluated and explained per account."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Iterator, Mapping
from decimal import Decimal

import attrs
import pytest

import salesprocess as sp
from salesprocess import criteria as criteria_module
from salesprocess.criteria import ClauseResult, Criteria, Explanation
from salesprocess.errors import CriteriaError, ValidationError
from salesprocess.rules import QualificationRule, RuleResult, all_of, attribute_rule

EU_MID_MARKET = {
    "and": [
        {"in": [{"var": "industry"}, ["manufacturing", "logistics"]]},
        {">=": [{"var": "employees"}, 50]},
        {"==": [{"var": "source.channel"}, "marketing_list"]},
        {"!": {"var": "do_not_contact"}},
    ]
}
GOOD = {
    "industry": "manufacturing",
    "employees": 120,
    "do_not_contact": False,
    "source": {"channel": "marketing_list", "campaign": "spring-expo", "referred_by": None},
}


@pytest.fixture
def criteria() -> Criteria:
    return Criteria.from_dict(EU_MID_MARKET, name="EU mid-market", version="2026-Q4")


class Account:
    """Stands in for salesprocess.Account: anything with facts() is a subject."""

    def __init__(self, **facts: object) -> None:
        self._facts = facts

    def facts(self) -> Mapping[str, object]:
        return self._facts


class ReadOnlyView(Mapping[str, object]):
    """A Mapping that is not a dict, like an account's facts view."""

    def __init__(self, data: dict[str, object]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> object:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


# -- loading ----------------------------------------------------------------------------------


def test_from_json_text_and_from_dict_agree(criteria):
    """JSON text and the parsed dict make equal criteria."""
    text = json.dumps(EU_MID_MARKET)
    assert Criteria.from_json(text, name="EU mid-market", version="2026-Q4") == criteria


def test_from_json_reads_a_file_by_path_or_str(tmp_path, criteria):
    """A pathlib.Path or a str path names a criteria file."""
    path = tmp_path / "eu.json"
    path.write_text(json.dumps(EU_MID_MARKET, indent=2), encoding="utf-8")
    assert Criteria.from_json(path, name="EU mid-market", version="2026-Q4") == criteria
    assert Criteria.from_json(str(path), name="EU mid-market", version="2026-Q4") == criteria


def test_json_scalars_are_text_not_paths():
    """A str that is valid JSON, like "true" or "17", is JSON text."""
    assert Criteria.from_json("true", name="all", version="1").apply({}) is True
    assert Criteria.from_json(" 17 ", name="n", version="1").apply({}) == 17


def test_the_document_is_a_plain_copy():
    """Changing the dict after loading changes neither the document nor the behaviour."""
    document = {"and": [{">": [{"var": "x"}, 1]}]}
    criteria = Criteria.from_dict(document, name="x", version="1")
    document["and"].append(False)
    assert criteria.document == {"and": [{">": [{"var": "x"}, 1]}]}
    assert criteria.apply({"x": 2}) is True


def test_tuples_in_a_python_document_become_lists():
    """A document built in Python may use tuples; it is stored as JSON lists."""
    criteria = Criteria.from_dict({"in": [{"var": "x"}, ("a", "b")]}, name="x", version="1")
    assert criteria.document == {"in": [{"var": "x"}, ["a", "b"]]}
    assert criteria.apply({"x": "b"}) is True


@pytest.mark.parametrize(("name", "version"), [("", "1"), ("x", " "), (None, "1"), ("x", 2)])
def test_name_and_version_are_required(name, version):
    """Criteria need a non-empty name and version."""
    with pytest.raises(ValidationError):
        Criteria.from_dict(True, name=name, version=version)


def test_equality_hashing_pickling_and_evolve(criteria):
    """Criteria are values: equal by content, hashable, picklable, evolvable."""
    twin = Criteria.from_dict(EU_MID_MARKET, name="EU mid-market", version="2026-Q4")
    assert criteria == twin
    assert hash(criteria) == hash(twin)
    restored = pickle.loads(pickle.dumps(criteria))
    assert restored == criteria
    assert restored.apply(GOOD) is True
    assert copy.deepcopy(criteria).apply(GOOD) is True
    newer = attrs.evolve(criteria, version="2027-Q1")
    assert newer.version == "2027-Q1"
    assert newer.apply(GOOD) is True
    assert newer != criteria


def test_to_json_round_trips(criteria):
    """to_json writes the document; loading it again gives equal criteria."""
    again = Criteria.from_json(criteria.to_json(indent=2), name=criteria.name, version="2026-Q4")
    assert again == criteria


def test_decimal_literals_are_written_as_numbers():
    """A Decimal in a Python document is written to JSON as a number."""
    criteria = Criteria.from_dict({">": [{"var": "x"}, Decimal("2.5")]}, name="x", version="1")
    assert criteria.to_json() == '{">": [{"var": "x"}, 2.5]}'


def test_to_json_writes_decimals_with_their_exact_digits():
    """to_json writes a Decimal's own digits, never the float it would round to."""
    document = {"and": [{">": [{"var": "x"}, Decimal("12345678901234567.89")]}, Decimal("0.10")]}
    criteria = Criteria.from_dict(document, name="x", version="1")
    assert criteria.to_json() == ('{"and": [{">": [{"var": "x"}, 12345678901234567.89]}, 0.10]}')
    assert "12345678901234567.89" in criteria.to_json(indent=2)


def test_decimals_round_trip_through_json_text_exactly():
    """from_json(to_json()) keeps every Decimal's value; one a float would round stays Decimal."""
    big = Decimal("12345678901234567.89")
    criteria = Criteria.from_dict(
        {"and": [{">=": [{"var": "x"}, big]}, {"<": [{"var": "y"}, Decimal("0.10")]}]},
        name="x",
        version="1",
    )
    again = Criteria.from_json(criteria.to_json(), name="x", version="1")
    (first, second) = again.document["and"]  # type: ignore[index]
    assert first[">="][1] == big
    assert isinstance(first[">="][1], Decimal)
    assert second["<"][1] == 0.1
    assert isinstance(second["<"][1], float)
    for x in (big, big - Decimal("0.01"), big + 1):
        for y in (Decimal("0.1"), Decimal("0.09"), Decimal("0.1000000000000000000001")):
            data = {"x": x, "y": y}
            assert again.apply(data) is criteria.apply(data)


def test_from_json_reads_numbers_without_losing_digits():
    """JSON numbers become ints, floats that hold them as written, or exact Decimals."""
    document = Criteria.from_json(
        "[7, 0.1, 2.50, 1e3, 12345678901234567.89, 1e400, 0.1000000000000000000001]",
        name="n",
        version="1",
    ).document
    assert document == [
        7,
        0.1,
        2.5,
        1000.0,
        Decimal("12345678901234567.89"),
        Decimal("1e400"),
        Decimal("0.1000000000000000000001"),
    ]
    assert [type(v) for v in document] == [int, float, float, float, Decimal, Decimal, Decimal]  # type: ignore[union-attr]


# -- evaluating -------------------------------------------------------------------------------


def test_apply_returns_the_raw_result():
    """apply returns whatever the document computes, not just a verdict."""
    criteria = Criteria.from_dict({"*": [{"var": "seats"}, 12]}, name="price", version="1")
    assert criteria.apply({"seats": 10}) == 120


def test_evaluate_passes_on_a_truthy_result(criteria):
    """evaluate passes when the result is truthy, with score 1.0 and the criteria's name."""
    result = criteria.evaluate(GOOD)
    assert result == RuleResult(
        passed=True, reason="meets 'EU mid-market' (2026-Q4)", score=1.0, rule="EU mid-market"
    )


def test_evaluate_names_the_failed_clauses_with_values(criteria):
    """A failed evaluation says which clauses failed and what the account's values were."""
    result = criteria.evaluate({**GOOD, "employees": 12, "do_not_contact": True})
    assert not result.passed
    assert result.score == 0.0
    assert result.reason == (
        "does not meet 'EU mid-market' (2026-Q4): employees >= 50 (employees: 12); "
        "not do_not_contact (do_not_contact: True)"
    )


def test_truthiness_is_json_logic_truthiness():
    """An empty list fails and the string "0" passes, as in JSON Logic."""
    criteria = Criteria.from_dict({"var": "tags"}, name="tagged", version="1")
    assert not criteria.evaluate({"tags": []}).passed
    assert criteria.evaluate({"tags": "0"}).passed


def test_subjects_with_facts_and_mapping_views(criteria):
    """Objects with facts() and Mappings that are not dicts are evaluated alike."""
    assert criteria.evaluate(Account(**GOOD)).passed
    assert criteria.evaluate(ReadOnlyView(GOOD)).passed
    assert criteria.judge(Account(**GOOD)).passed


def test_decimal_budgets_compare_numerically():
    """Decimal amounts in the data compare exactly with JSON numbers."""
    criteria = Criteria.from_dict({">": [{"var": "budget"}, 10000]}, name="b", version="1")
    assert criteria.evaluate({"budget": Decimal("10000.01")}).passed
    assert not criteria.evaluate({"budget": Decimal("10000.00")}).passed


@pytest.mark.parametrize(
    ("document", "data"),
    [
        ({">=": [{"var": "budget"}, 10000.1]}, {"budget": Decimal("10000.1")}),
        ({"<=": [{"var": "budget"}, 10000.1]}, {"budget": Decimal("10000.1")}),
        ({"<": [10000.09, {"var": "budget"}, 10000.11]}, {"budget": Decimal("10000.1")}),
        ({"==": [{"var": "rate"}, 0.1]}, {"rate": Decimal("0.1")}),
        ({"==": [0.1, {"var": "rate"}]}, {"rate": Decimal("0.1")}),
        ({"==": [{"var": "rate"}, "0.1"]}, {"rate": Decimal("0.1")}),
        ({"===": [{"var": "rate"}, 0.1]}, {"rate": Decimal("0.1")}),
        ({"!": {"!=": [{"var": "rate"}, 0.1]}}, {"rate": Decimal("0.1")}),
        ({"!": {"!==": [{"var": "rate"}, 0.1]}}, {"rate": Decimal("0.1")}),
        ({"==": [{"var": "rate"}, {"var": "float"}]}, {"rate": Decimal("0.1"), "float": 0.1}),
        ({">=": [{"var": "rate"}, "0.3"]}, {"rate": Decimal("0.3")}),
        ({"in": [{"var": "rate"}, [0.2, 0.1]]}, {"rate": Decimal("0.1")}),
        ({"==": [{"max": [{"var": "rate"}, 0.1]}, {"var": "rate"}]}, {"rate": Decimal("0.1")}),
        ({"==": [{"min": [{"var": "rate"}, 0.1]}, {"var": "rate"}]}, {"rate": Decimal("0.1")}),
        ({"==": [{"+": [{"var": "rate"}, 0.2]}, 0.3]}, {"rate": Decimal("0.1")}),
        ({">=": [{"var": "rate"}, Decimal("0.1")]}, {"rate": 0.1}),
    ],
)
def test_decimal_data_meets_float_literals_as_written(document, data):
    """A float literal meets Decimal data as the number written, not as its binary value."""
    assert Criteria.from_dict(document, name="d", version="1").apply(data) is True


def test_decimal_comparisons_stay_strict():
    """The exact comparison still tells apart Decimals that differ in the last digit."""
    criteria = Criteria.from_dict({">=": [{"var": "budget"}, 10000.1]}, name="b", version="1")
    assert criteria.apply({"budget": Decimal("10000.09999")}) is False
    assert criteria.apply({"budget": Decimal("10000.10001")}) is True
    rate = Criteria.from_dict({"==": [{"var": "rate"}, 0.1]}, name="r", version="1")
    assert rate.apply({"rate": Decimal("0.1000000000000000055511151231257827")}) is False
    assert rate.apply({"rate": 0.1}) is True


def test_max_and_min_with_a_decimal_give_exact_decimals():
    """max and min over a Decimal and floats compare and return the floats as written."""
    largest = Criteria.from_dict({"max": [{"var": "a"}, 0.1, 0.3]}, name="m", version="1")
    assert largest.apply({"a": Decimal("0.2")}) == Decimal("0.3")
    assert isinstance(largest.apply({"a": Decimal("0.2")}), Decimal)
    assert largest.apply({"a": 0.2}) == 0.3


def test_huge_int_data_is_shown_not_raised():
    """An int too long to print still gets a reason and an explanation, not a ValueError."""
    criteria = Criteria.from_dict(
        {"and": [{"<": [{"var": "budget"}, 100]}, True]}, name="b", version="1"
    )
    huge = 10**5000
    result = criteria.evaluate({"budget": huge})
    assert not result.passed
    assert "budget: <int of 5001 digits>" in result.reason
    assert "<int of 5001 digits>" in criteria.explain({"budget": huge})


def test_criteria_are_a_qualification_rule(criteria):
    """Criteria satisfy the QualificationRule protocol and combine with code rules."""
    assert isinstance(criteria, QualificationRule)
    policy = all_of(criteria, attribute_rule("budget", lambda amount: amount > 0))
    assert policy.evaluate({**GOOD, "budget": 5}).passed
    assert not policy.evaluate(GOOD).passed


def test_runtime_errors_raise_from_evaluate():
    """A document that divides by zero on this account raises CriteriaError from evaluate."""
    criteria = Criteria.from_dict(
        {">": [{"/": [{"var": "revenue"}, {"var": "staff"}]}, 1000]}, name="r", version="1"
    )
    with pytest.raises(CriteriaError, match="division by zero"):
        criteria.evaluate({"revenue": 1, "staff": 0})


# -- explaining -------------------------------------------------------------------------------


def test_explain_gives_one_clause_per_operand_of_the_top_and(criteria):
    """Each operand of the top-level and is a clause with its text, values and verdict."""
    explanation = criteria.judge({**GOOD, "employees": 12})
    assert isinstance(explanation, Explanation)
    assert not explanation.passed
    assert [c.text for c in explanation] == [
        "industry in ['manufacturing', 'logistics']",
        "employees >= 50",
        "source.channel == 'marketing_list'",
        "not do_not_contact",
    ]
    assert explanation[1] == ClauseResult("employees >= 50", {"employees": 12}, False)
    assert [c.passed for c in explanation] == [True, False, True, True]
    assert explanation.failed == (explanation[1],)
    assert len(explanation) == 4


def test_explain_renders_for_a_person(criteria):
    """str() of an explanation is a headline and one line per clause."""
    assert criteria.explain({**GOOD, "employees": 12}) == (
        "EU mid-market (2026-Q4): not met\n"
        "  pass  industry in ['manufacturing', 'logistics']  (industry: 'manufacturing')\n"
        "  FAIL  employees >= 50  (employees: 12)\n"
        "  pass  source.channel == 'marketing_list'  (source.channel: 'marketing_list')\n"
        "  pass  not do_not_contact  (do_not_contact: False)"
    )


def test_a_document_without_top_and_is_one_clause():
    """Any top-level operation other than and/or is a single clause."""
    criteria = Criteria.from_dict({"<=": [50, {"var": "employees"}, 5000]}, name="m", version="1")
    (clause,) = criteria.judge({"employees": 9000})
    assert clause == ClauseResult("50 <= employees <= 5000", {"employees": 9000}, False)


def test_or_clauses_are_explained_each():
    """The operands of a top-level or are clauses too; the verdict is the whole document's."""
    criteria = Criteria.from_dict(
        {"or": [{"==": [{"var": "region"}, "EU"]}, {">": [{"var": "budget"}, 100]}]},
        name="o",
        version="1",
    )
    explanation = criteria.judge({"region": "US", "budget": 500})
    assert explanation.passed
    assert [c.passed for c in explanation] == [False, True]


def test_a_clause_that_fails_to_evaluate_is_reported_not_raised():
    """explain reports a clause's evaluation error on that clause instead of raising."""
    criteria = Criteria.from_dict(
        {"and": [{"var": "ok"}, {">": [{"/": [1, {"var": "staff"}]}, 0]}]}, name="e", version="1"
    )
    explanation = criteria.judge({"ok": False, "staff": 0})
    assert not explanation.passed
    assert explanation[1].error is not None
    assert "division by zero" in explanation[1].error
    assert "[error: division by zero" in str(explanation[1])


class BrokenFacts(Mapping[str, object]):
    """Facts whose every lookup fails, as a view over a lost database connection would."""

    def __getitem__(self, key: str) -> object:
        raise ConnectionError("gone")

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_unreadable_facts_are_criteria_errors_everywhere(criteria):
    """Facts that raise on lookup: CriteriaError from evaluate, failed clauses in explain."""
    with pytest.raises(CriteriaError, match="gone"):
        criteria.evaluate(BrokenFacts())
    explanation = criteria.judge(BrokenFacts())
    assert not explanation.passed
    assert all(c.error and "gone" in c.error for c in explanation)
    assert all(c.actual == {} for c in explanation)


def test_clause_results_are_immutable_values():
    """A ClauseResult's actual values cannot be changed, and it is hashable."""
    clause = ClauseResult("x > 1", {"x": 2}, True)
    with pytest.raises(TypeError):
        clause.actual["x"] = 3  # type: ignore[index]
    assert hash(clause) == hash(ClauseResult("x > 1", {"x": 5}, True))


@pytest.mark.parametrize(
    ("document", "text"),
    [
        ({"var": ["employees", 0]}, "employees (default 0)"),
        ({"!!": [{"var": "email"}]}, "!!(email)"),
        ({"some": [{"var": "tags"}, {"==": [{"var": ""}, "vip"]}]}, "some(tags, it == 'vip')"),
        ({"all": [{"var": "orders"}, {">": [{"var": "total"}, 0]}]}, "all(orders, it.total > 0)"),
        ({"if": [{"var": "a"}, 1, {"var": "b"}, 2, 3]}, "if a then 1 elif b then 2 else 3"),
        ({"+": [{"var": "a"}, {"*": [2, {"var": "b"}]}]}, "a + (2 * b)"),
        ({"missing": ["email", "phone"]}, "missing('email', 'phone')"),
        ({"in": ["@acme", {"var": "email"}]}, "'@acme' in email"),
        ({"==": [{"var": "vip"}, True]}, "vip == true"),
        ({"-": [{"var": "a"}]}, "-a"),
        ({"val": ["source", "channel"]}, "source.channel"),
        ({"map": [{"val": "orders"}, {"val": [[2], "rate"]}]}, "map(orders, ^2.rate)"),
        ({"exists": ["source", "channel"]}, "exists(source.channel)"),
        ({"??": [{"var": "mobile"}, {"var": "phone"}, "none"]}, "mobile ?? phone ?? 'none'"),
        ({"==": [{"var": "a"}, {"var": "b"}, 1]}, "a == b == 1"),
        ({"in": [{"var": "x"}, {"preserve": {"a": [1]}}]}, "x in {'a': [1]}"),
    ],
)
def test_clause_texts(document, text):
    """Each operator reads naturally in a clause's text."""
    assert Criteria.from_dict(document, name="t", version="1").clauses == (text,)


def test_variables_lists_what_the_criteria_read(criteria):
    """variables lists the data paths read at the top level, not inside map scopes."""
    assert criteria.variables == ("industry", "employees", "source.channel", "do_not_contact")
    inner = Criteria.from_dict(
        {"and": [{"some": [{"var": "tags"}, {"var": "x"}]}, {"missing": ["email"]}]},
        name="t",
        version="1",
    )
    assert inner.variables == ("tags", "email")
    spec = Criteria.from_dict(
        {
            "and": [
                {"val": ["source", "channel"]},
                {"exists": "email"},
                {"try": [{"var": "budget"}, {"var": "type"}]},
                {"preserve": {"var": "not read"}},
                {"val": "a.b"},  # one key with a dot: not shown as a dotted path
            ]
        },
        name="t",
        version="1",
    )
    assert spec.variables == ("source.channel", "email", "budget")


def test_specification_errors_reach_evaluate_and_explain():
    """An error of the specification raises from evaluate and is reported by explain."""
    criteria = Criteria.from_dict(
        {"and": [{">=": [{"var": "employees"}, 50]}, {"var": "ok"}]}, name="s", version="1"
    )
    with pytest.raises(CriteriaError) as caught:
        criteria.evaluate({"employees": "n/a", "ok": True})
    assert caught.value.error_type == "NaN"
    explanation = criteria.judge({"employees": "n/a", "ok": True})
    assert not explanation.passed
    assert explanation[0].error is not None
    assert "cannot compare 'n/a' with 50" in explanation[0].error


@pytest.mark.parametrize(
    ("source", "says"),
    [
        (None, "not NoneType"),
        (5, "not int"),
        (b"\xff\xfe", "not UTF-8"),
        ("\x00", "embedded null byte"),
        ("\ud800", "cannot read criteria file"),
        ("/dev/zero", "not a regular file"),
        ("no such file.json", "No such file"),
    ],
)
def test_from_json_refuses_what_is_neither_json_text_nor_a_readable_file(source, says):
    """Wrong types, bad bytes, odd paths and devices: a CriteriaError, never a hang or crash."""
    with pytest.raises(sp.CriteriaError, match=says):
        sp.Criteria.from_json(source, name="n", version="1")


def test_from_json_reads_bytes_and_refuses_oversized_files(tmp_path):
    """UTF-8 bytes are JSON text; a file over MAX_FILE_BYTES is refused before it is read."""
    assert sp.Criteria.from_json(b'{"==": [1, 1]}', name="n", version="1").apply({}) is True
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b"1," * (criteria_module.MAX_FILE_BYTES // 2) + b"1]")
    with pytest.raises(sp.CriteriaError, match="more than"):
        sp.Criteria.from_json(big, name="n", version="1")
