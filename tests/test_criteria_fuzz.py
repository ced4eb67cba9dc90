"""Criteria fuzz: random documents over every operator, on random data, within the budget.

Whatever the document and the data, compiling and evaluating gives a value or a
:class:`CriteriaError`, and the work done stays within the budget. The work is measured
independently of the library's own step counter: a profiler counts the Python function calls
an evaluation makes (every item an iteration goes through is at least one call), and the count
must stay within a fixed multiple of the budget's steps. Hypothesis is steered (``target``)
towards the documents that make the most calls; the slowest one found is printed at the end of
the module (``pytest -s``). The wall-clock claim (100 ms) is measured by
``benchmarks/bench_criteria_budget.py``, not here.

Runs a bounded number of examples; ``pytest --hypothesis-profile=long`` runs many more.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from salesprocess.criteria import Criteria
from salesprocess.errors import CriteriaError
from salesprocess.jsonlogic import OPERATORS, Budget, _EvaluationFailed

BUDGET = Budget(steps=5_000, size=5_000)  # small, so that hostile documents meet it quickly
CALLS_PER_STEP = 12  # Python calls one step may make (a comparison: _lt, _rel, _norm, ...)
CALLS_FIXED = 200  # the entry, the meter, building an error

KEYS = ["n", "s", "xs", "big", "nested", "", "current", "accumulator", "xs.0"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.sampled_from(["1e3", " 7 ", "0x1F", "abc", "-0"]),
)
# Literals whose size varies over orders of magnitude: the killers are made of these.
big_arrays = st.integers(0, 1_500).map(lambda n: list(range(n)))
big_strings = st.integers(0, 20_000).map(lambda n: "ab" * n)
variables = st.builds(lambda k: {"var": k}, st.sampled_from(KEYS)) | st.just(
    {"val": [[1], "index"]}
)
arrays_to_go_through = st.one_of(
    big_arrays,
    st.just({"var": "xs"}),
    st.just({"var": "big"}),
    st.just({"var": "nested"}),
    st.just({"merge": [{"var": "xs"}, {"var": "big"}]}),
)
ITERATORS = ["map", "filter", "all", "some", "none"]


def _operations(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    operands = st.lists(children, max_size=3)
    return st.one_of(
        st.builds(lambda op, args: {op: args}, st.sampled_from(sorted(OPERATORS)), operands),
        st.builds(lambda op, arg: {op: arg}, st.sampled_from(sorted(OPERATORS)), children),
        st.builds(
            lambda op, a, b: {op: [a, b]},
            st.sampled_from(ITERATORS),
            arrays_to_go_through,
            children,
        ),
        st.builds(lambda a, b, c: {"reduce": [a, b, c]}, arrays_to_go_through, children, children),
        st.builds(lambda a: {"cat": [{"var": "accumulator"}, a]}, children),
        st.builds(lambda a, b: {"in": [a, b]}, children, big_strings | st.just({"var": "s"})),
        st.builds(lambda a, b: {"substr": [a, b]}, big_strings | st.just({"var": "s"}), children),
    )


documents = st.recursive(scalars | variables | big_arrays | big_strings, _operations, max_leaves=10)
data = st.fixed_dictionaries(
    {
        "n": st.integers() | st.floats(allow_nan=False),
        "s": big_strings,
        "xs": st.lists(scalars, max_size=30),
        "big": big_arrays,
        "nested": st.integers(0, 40).map(lambda n: [[list(range(n))] * n] * n),
    }
)


class _Slowest:
    seconds = 0.0
    calls = 0
    document: object = None


SLOWEST = _Slowest()


def _calls_made(run: Any, subject: object) -> tuple[int, object]:
    """Evaluate with a profiler counting Python calls; return (calls, result or error)."""
    calls = 0

    def count(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(count)
    try:
        outcome: object = run(subject)
    except CriteriaError as error:
        outcome = error
    finally:
        sys.setprofile(None)
    return calls, outcome


@pytest.fixture(scope="module", autouse=True)
def _report_slowest() -> Iterator[None]:
    yield
    shown = json.dumps(SLOWEST.document)
    shown = shown if len(shown) <= 400 else f"{shown[:400]}... ({len(shown)} characters)"
    print(
        f"\nslowest criteria document: {SLOWEST.seconds * 1000:.1f} ms, "
        f"{SLOWEST.calls} calls, budget {BUDGET}: {shown}"
    )


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(document=documents, subject=data)
def test_any_document_gives_a_value_or_a_criteria_error_within_the_budget(document, subject):
    """A value or a CriteriaError, never another exception; the work stays within the budget."""
    try:
        criteria = Criteria.from_dict(document, name="fuzz", version="1", budget=BUDGET)
    except CriteriaError as error:
        refused: CriteriaError | None = error
    else:
        refused = None
    if refused is not None:
        assert refused.path is None or refused.path.startswith("$")
        return
    calls, outcome = _calls_made(criteria.apply, subject)
    seconds = float("inf")
    for _ in range(3):  # timed again without the profiler, which slows it; best of 3 (noise)
        started = time.perf_counter()
        with contextlib.suppress(CriteriaError):
            criteria.apply(subject)
        seconds = min(seconds, time.perf_counter() - started)
    if isinstance(outcome, _EvaluationFailed):  # the catch-all would mean an unhandled case
        raise AssertionError(f"unexpected failure: {outcome.__cause__!r}") from outcome
    target(float(calls), label="calls")
    assert calls <= CALLS_PER_STEP * BUDGET.steps + CALLS_FIXED, (calls, document)
    if seconds > SLOWEST.seconds:
        SLOWEST.seconds, SLOWEST.calls, SLOWEST.document = seconds, calls, document
    for judged in (criteria.evaluate, criteria.judge, criteria.passes):
        with contextlib.suppress(CriteriaError):  # and nothing else
            judged(subject)
