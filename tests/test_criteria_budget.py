"""The evaluation budget of criteria, and what an evaluation lets escape (issue 13)."""

from __future__ import annotations

import contextlib
import pickle
import warnings

import pytest

from salesprocess import Budget, Criteria
from salesprocess.errors import CriteriaError, ValidationError
from salesprocess.jsonlogic import DEFAULT_BUDGET, _generate, _to_code, compile_logic


def nest(op: str, depth: int, items: object, leaf: object) -> object:
    doc = leaf
    for _ in range(depth):
        doc = {op: [items, doc]}
    return doc


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "100", None, 10**13])
def test_a_budget_takes_positive_ints_only(bad):
    with pytest.raises(ValidationError, match="steps must be an int") as caught:
        Budget(steps=bad)
    assert caught.value.field == "steps"
    with pytest.raises(ValidationError, match="size must be an int"):
        Budget(size=bad)


def test_compile_logic_refuses_a_budget_that_is_no_budget():
    with pytest.raises(ValidationError, match="budget must be a Budget") as caught:
        compile_logic(True, budget=100)  # type: ignore[arg-type]
    assert caught.value.field == "budget"


def test_nested_iterations_over_literals_are_refused_when_loaded():
    """Four nested maps over 100 items (10**8 evaluations) never run: the count is known."""
    with pytest.raises(CriteriaError, match="budget of 100000 steps") as caught:
        Criteria.from_dict(nest("map", 4, list(range(100)), {"var": ""}), name="k", version="1")
    assert caught.value.path == "$.map[1].map"  # the first iteration over the budget
    with pytest.raises(CriteriaError, match="budget") as caught:
        compile_logic(nest("none", 3, list(range(1000)), False))
    assert caught.value.path == "$.none[1].none"


def test_a_bigger_budget_lets_the_same_document_run():
    """The budget is per Criteria: what the default refuses, a bigger one answers correctly."""
    document = nest("map", 2, list(range(400)), 1)  # 160,000 evaluations
    with pytest.raises(CriteriaError, match="budget"):
        Criteria.from_dict(document, name="k", version="1")
    roomy = Criteria.from_dict(document, name="k", version="1", budget=Budget(steps=300_000))
    result = roomy.apply({})
    assert isinstance(result, list)
    assert len(result) == 400
    assert result[0] == [1] * 400
    assert roomy.budget == Budget(steps=300_000)


def test_an_iteration_over_the_data_is_charged_as_it_runs():
    """The data decides the length: the meter refuses it at the array's path, while running."""
    criteria = Criteria.from_dict(
        {"all": [{"var": "purchases"}, {">": [{"var": "amount"}, 0]}]}, name="p", version="1"
    )
    assert criteria.apply({"purchases": [{"amount": 5}] * 1000}) is True
    with pytest.raises(CriteriaError, match="budget of 100000 steps") as caught:
        criteria.apply({"purchases": [{"amount": 5}] * 200_000})
    assert caught.value.path == "$.all[0]"
    assert caught.value.error_type is None  # no error of the specification: no try catches it
    small = Criteria.from_dict(criteria.document, name="p", version="1", budget=Budget(steps=50))
    with pytest.raises(CriteriaError, match="budget of 50 steps"):
        small.apply({"purchases": [{"amount": 5}] * 100})


def test_quadratic_string_building_is_stopped():
    """reduce + cat over the data: its steps, then the size of the string, are bounded."""
    document = {
        "reduce": [{"var": "xs"}, {"cat": [{"var": "accumulator"}, {"var": "current"}]}, ""]
    }
    criteria = Criteria.from_dict(document, name="r", version="1")
    assert criteria.apply({"xs": ["a", "b", "c"]}) == "abc"
    with pytest.raises(CriteriaError, match="budget of 100000 steps") as caught:
        criteria.apply({"xs": ["a"] * 10**6})
    assert caught.value.path == "$.reduce[0]"
    with pytest.raises(CriteriaError, match="budget's size of 100000") as caught:
        Criteria.from_dict({"cat": [{"var": "s"}, {"var": "s"}]}, name="c", version="1").apply(
            {"s": "x" * 60_000}
        )
    assert caught.value.path == "$.cat"


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"in": ["needle", {"var": "s"}]}, "$.in"),
        ({"substr": [{"var": "s"}, 1]}, "$.substr"),
        ({"merge": [{"var": "xs"}, {"var": "xs"}]}, "$.merge"),
        ({"max": {"var": "xs"}}, "$.max"),
        ({"missing": {"var": "xs"}}, "$.missing"),
        ({"var": {"var": "s"}}, "$.var"),
    ],
)
def test_operations_on_big_values_from_the_data_are_refused(document, path):
    data = {"s": "ab" * 100_000, "xs": list(range(150_000))}
    with pytest.raises(CriteriaError, match="budget") as caught:  # its size, or the steps
        compile_logic(document)(data)
    assert caught.value.path == path
    compile_logic(document, budget=Budget(steps=10**6, size=10**6))(data)  # within a bigger one


def test_a_try_does_not_catch_the_budget():
    document = {"try": [{"some": [{"var": "xs"}, {"==": [{"var": ""}, -1]}]}, "fallback"]}
    run = compile_logic(document)
    assert run({"xs": [1, 2]}) is False
    with pytest.raises(CriteriaError, match="budget"):
        run({"xs": list(range(200_000))})


def test_number_text_longer_than_a_thousand_characters_is_not_a_number():
    """Parsing costs the text's length; no JSON number needs that many characters."""
    run = compile_logic({"<": [{"var": "x"}, 5]})
    assert run({"x": " " * 900 + "4"}) is True
    with pytest.raises(CriteriaError) as caught:
        run({"x": "1" * 1001})
    assert caught.value.error_type == "NaN"
    assert compile_logic({"<": [{"var": "x"}, None]})({"x": "1" * 10**6}) is False


def test_documents_whose_cost_the_data_cannot_change_have_no_meter():
    """The hot path stays as it was: only where the data decides a cost is a meter made."""
    screening = {
        "and": [
            {"in": [{"var": "industry"}, ["retail", "logistics"]]},
            {">=": [{"var": "employees"}, 50]},
            {"!": {"var": "do_not_call"}},
            {"some": [[1, 2, 3], {"==": [{"var": ""}, 2]}]},
        ]
    }
    source, _ = _generate(screening, 64, 10_000)
    assert "(data, None, [" not in source  # the entry that makes a meter
    source, _ = _generate({"some": [{"var": "xs"}, True]}, 64, 10_000)
    assert "(data, None, [" in source


def test_criteria_keep_their_budget_through_pickle_and_compare_without_it():
    budget = Budget(steps=500, size=50)
    criteria = Criteria.from_json('{"cat": [{"var": "s"}]}', name="b", version="1", budget=budget)
    copy = pickle.loads(pickle.dumps(criteria))
    assert copy.budget == budget
    with pytest.raises(CriteriaError, match="size of 50"):
        copy.apply({"s": "x" * 51})
    assert copy == Criteria.from_dict(criteria.document, name="b", version="1")
    assert Budget() == DEFAULT_BUDGET


# -- what evaluate() lets escape --------------------------------------------------------------


class BrokenFacts:
    def facts(self) -> dict[str, object]:
        raise RuntimeError("facts are down")


class BrokenText:
    def __str__(self) -> str:
        raise RuntimeError("no text")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class BrokenGetattr:
    def __getattr__(self, name: str) -> object:
        raise RuntimeError(name)


@pytest.mark.parametrize("method", ["evaluate", "judge", "explain", "apply"])
def test_what_the_subject_raises_becomes_a_criteria_error(method):
    """facts(), __getattr__ and a value's __str__ failing: a CriteriaError on every path."""
    criteria = Criteria.from_dict({"var": "x"}, name="v", version="1")
    for subject in (BrokenFacts(), BrokenGetattr(), {"x": BrokenText()}):
        if method == "apply" and not isinstance(subject, dict):
            continue  # apply takes the data itself, not a subject with facts()
        with contextlib.suppress(CriteriaError):  # nothing else may escape
            getattr(criteria, method)(subject)
    with pytest.raises(CriteriaError, match="facts are down"):
        criteria.evaluate(BrokenFacts())
    with pytest.raises(CriteriaError, match="RuntimeError"):
        criteria.evaluate({"x": BrokenText()})
    assert criteria.passes(BrokenFacts()) is False
    assert criteria.passes({"x": BrokenText()}) is False


def test_an_exception_whose_text_fails_still_becomes_a_criteria_error():
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    class Raises:
        def facts(self) -> object:
            raise Unprintable

    with pytest.raises(CriteriaError, match="Unprintable"):
        Criteria.from_dict(True, name="v", version="1").evaluate(Raises())


# -- big literals -------------------------------------------------------------------------------


def test_big_string_literals_are_not_copied_into_the_clause_text_or_the_source():
    """50 literals of 100 KB: clause texts show each by its start; the source names constants."""
    literals = [chr(65 + i % 26) * 100_000 for i in range(50)]
    document = {"and": [{"==": [{"var": "note"}, text]} for text in literals]}
    criteria = Criteria.from_dict(document, name="big", version="1")
    assert all(len(text) < 200 for text in criteria.clauses)
    assert "... (100000 characters)" in criteria.clauses[0]
    source, constants = _generate(document, 64, 10_000)
    assert len(source) < 20_000
    assert any(value is literals[0] for value in constants.values())  # bound, not copied
    assert criteria.apply({"note": literals[0]}) is False
    explained = criteria.explain({"note": "A" * 100_000})
    assert len(explained) < 200 * 52


def test_long_literal_arrays_are_listed_by_their_start():
    criteria = Criteria.from_dict(
        {"in": [{"var": "code"}, list(range(5000))]}, name="codes", version="1"
    )
    assert criteria.clauses[0] == "code in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, ... (5000 items)]"


# -- degenerate documents under warnings as errors ----------------------------------------------

DEGENERATE = [
    ({"===": [{"and": []}, True]}, False),
    ({"===": [{"!": []}, True]}, True),
    ({"===": [{"if": []}, None]}, True),
    ({"!==": [{"or": []}, False]}, False),
    ({"==": [{"!!": []}, None]}, True),  # null == false
    ({"===": [{"+": []}, True]}, False),
    ({"===": [{"*": []}, 1]}, True),
    ({"===": [{"cat": []}, ""]}, True),
    ({"===": [{"??": []}, None]}, True),
    ({"===": [{"merge": []}, True]}, False),
    ({"===": [{"preserve": {}}, True]}, False),
    ({"in": [{"and": []}, [False, 0]]}, True),
    ({"!": {"!": {"and": []}}}, False),
]


@pytest.mark.parametrize(("document", "expected"), DEGENERATE)
def test_degenerate_documents_compile_under_warnings_as_errors(document, expected):
    """Documents that fold to constants (``0 is True``) load and answer; none is "too complex"."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compile_logic(document)(None) is expected


def test_code_the_compiler_warns_about_is_still_compiled():
    """Should a template ever put a literal beside ``is``, warnings-as-errors refuse nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        namespace: dict[str, object] = {}
        exec(_to_code("def _f0(data):\n    return 0 is True\n"), namespace)
    assert namespace["_f0"](None) is False  # type: ignore[operator]


def test_an_error_about_a_megabyte_of_data_costs_what_one_about_a_word_does():
    """Error messages show values through a bounded repr, even inside an iteration."""
    data = {"notes": "x" * 1_000_000, "rows": [list(range(1000))] * 1000, "items": [1] * 500}
    document = {"map": [{"var": "items"}, {"try": [{"+": [{"val": [[2]]}, 1]}, 0]}]}
    assert compile_logic(document)(data) == [0] * 500
    with pytest.raises(CriteriaError) as caught:
        compile_logic({"+": [{"var": ""}, 1]})(data)
    assert len(str(caught.value)) < 120
    criteria = Criteria.from_dict({"==": [{"var": "rows"}, 1]}, name="r", version="1")
    assert len(criteria.explain(data)) < 600
