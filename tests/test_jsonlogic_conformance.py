"""JSON Logic conformance: every case of the json-logic/compat-tables suites (48 files).

The suites are vendored under ``tests/data/jsonlogic/suites`` (see ``ATTRIBUTION.md``). A case
is ``{"description", "rule", "data"?, "result"}`` or, for an error, ``{..., "error": {"type"}}``:
the result must be equal (booleans told from numbers), and an error must be a ``CriteriaError``
whose ``error_type`` is the specification's (``NaN``, ``Invalid Arguments``, a thrown value),
raised when the criteria are loaded or when they are applied.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from salesprocess.criteria import Criteria
from salesprocess.errors import CriteriaError

SUITES = Path(__file__).parent / "data" / "jsonlogic" / "suites"
FILES: list[str] = json.loads((SUITES / "index.json").read_text(encoding="utf-8"))
CASES = [
    (name, i, case)
    for name in FILES
    for i, case in enumerate(
        c for c in json.loads((SUITES / name).read_text(encoding="utf-8")) if isinstance(c, dict)
    )
]

# How many cases each file holds, as published with the suites (1,138 in all).
EXPECTED_COUNTS = {
    "compatible.json": 278,
    "arithmetic/plus.json": 32,
    "arithmetic/plus.extra.json": 3,
    "arithmetic/multiply.json": 28,
    "arithmetic/multiply.extra.json": 3,
    "arithmetic/minus.json": 22,
    "arithmetic/minus.extra.json": 3,
    "arithmetic/divide.json": 31,
    "arithmetic/divide.extra.json": 3,
    "arithmetic/modulo.json": 31,
    "arithmetic/modulo.extra.json": 2,
    "comparison/greaterThan.json": 35,
    "comparison/greaterThanEquals.json": 28,
    "comparison/lessThan.json": 45,
    "comparison/lessThanEquals.json": 20,
    "comparison/softEquals.json": 35,
    "comparison/softNotEquals.json": 34,
    "comparison/strictEquals.json": 31,
    "comparison/strictNotEquals.json": 30,
    "control/and.json": 25,
    "control/if.json": 44,
    "control/or.json": 24,
    "control/not.json": 23,
    "control/doublebang.json": 23,
    "string/in.json": 8,
    "string/cat.json": 9,
    "string/substr.json": 12,
    "array/map.json": 14,
    "array/filter.json": 12,
    "array/reduce.json": 9,
    "array/merge.json": 8,
    "array/all.json": 12,
    "array/some.json": 13,
    "array/none.json": 13,
    "truthiness.json": 13,
    "additional.json": 4,
    "coalesce.json": 15,
    "chained.json": 7,
    "iterators.extra.json": 34,
    "exists.json": 8,
    "scopes.json": 4,
    "throw.json": 3,
    "try.json": 18,
    "try.extra.json": 1,
    "val.json": 13,
    "val.extra.json": 3,
    "val-compat.json": 60,
    "var.extra.json": 12,
}


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


def test_the_suites_are_complete():
    """All 48 files are vendored, with 1,138 cases between them."""
    counts = {name: sum(1 for n, _, _ in CASES if n == name) for name in FILES}
    assert counts == EXPECTED_COUNTS
    assert len(FILES) == 48
    assert len(CASES) == 1_138


@pytest.mark.parametrize(
    "case", [c for _, _, c in CASES], ids=[f"{n}#{i} {c['description']}" for n, i, c in CASES]
)
def test_case(case):
    """The compiled criteria give the suite's result, or raise its error type."""
    if "error" in case:
        with pytest.raises(CriteriaError) as caught:
            Criteria.from_dict(case["rule"], name="conformance", version="1").apply(
                case.get("data")
            )
        assert caught.value.error_type == case["error"]["type"]
        assert caught.value.path.startswith("$")
    else:
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
