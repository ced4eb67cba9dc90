"""JSON Logic conformance: every case of the json-logic/compat-tables compatibility suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from salesprocess.criteria import Criteria

SUITE = Path(__file__).parent / "data" / "jsonlogic" / "compatible.json"
CASES = [case for case in json.loads(SUITE.read_text(encoding="utf-8")) if isinstance(case, dict)]


def same(actual: object, expected: object) -> bool:
    """JSON equality that tells booleans from numbers (``True`` is not ``1`` here)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, (int, float)):
        return isinstance(actual, (int, float)) and actual == expected
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(same(a, e) for a, e in zip(actual, expected, strict=True))
        )
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(same(actual[k], expected[k]) for k in expected)
        )
    return type(actual) is type(expected) and actual == expected


def test_the_suite_has_all_278_cases():
    """The vendored suite is complete: 278 cases besides its comment strings."""
    assert len(CASES) == 278


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{i:03d} {case['description']}" for i, case in enumerate(CASES)]
)
def test_case(case):
    """The compiled criteria give the suite's expected result for the rule and data."""
    criteria = Criteria.from_dict(case["rule"], name="conformance", version="1")
    assert same(criteria.apply(case.get("data")), case["result"])


@pytest.mark.parametrize(
    ("actual", "expected", "equal"),
    [
        (1, 1.0, True),
        (True, 1, False),
        ([1, True], [1, True], True),
        ({"a": 0}, {"a": False}, False),
    ],
)
def test_comparison_tells_booleans_from_numbers(actual, expected, equal):
    """The suite's comparison is strict about booleans but not about 1 versus 1.0."""
    assert same(actual, expected) is equal
