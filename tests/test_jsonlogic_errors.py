"""JSON Logic errors: every fault is a CriteriaError that names where it is."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal

import pytest

import salesprocess.criteria as criteria_module
from salesprocess.criteria import Criteria
from salesprocess.errors import CriteriaError, ValidationError
from salesprocess.jsonlogic import Budget, _EvaluationFailed, _generate, compile_logic


def load(document: object) -> Criteria:
    return Criteria.from_dict(document, name="test", version="1")


def nested(depth: int, op: str = "!") -> object:
    """Build ``{op: {op: ... true}}`` iteratively, ``depth`` operations deep."""
    document: object = True
    for _ in range(depth):
        document = {op: document}
    return document


# -- load time --------------------------------------------------------------------------------


def test_malformed_json_names_line_and_column():
    """Malformed JSON text is reported with its line and column."""
    with pytest.raises(CriteriaError) as caught:
        Criteria.from_json('{"and": [\n  true,\n  ]\n}', name="t", version="1")
    assert "line 3, column 3" in str(caught.value)
    assert caught.value.path == "$"


def test_malformed_json_file_names_the_file(tmp_path):
    """A malformed criteria file is reported with its path, line and column."""
    path = tmp_path / "criteria.json"
    path.write_text('{"and": [{"var": "x"} {"var": "y"}]}', encoding="utf-8")
    with pytest.raises(CriteriaError) as caught:
        Criteria.from_json(path, name="t", version="1")
    message = str(caught.value)
    assert str(path) in message
    assert "line 1, column 23" in message


def test_missing_file_is_a_criteria_error(tmp_path):
    """A criteria file that does not exist raises CriteriaError naming it."""
    path = tmp_path / "nope.json"
    with pytest.raises(CriteriaError, match=r"nope\.json"):
        Criteria.from_json(str(path), name="t", version="1")


def test_undecodable_file_is_a_criteria_error(tmp_path):
    """A criteria file that is not UTF-8 raises CriteriaError."""
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"==": [{"var": "city"}, "K\xf6ln"]}')
    with pytest.raises(CriteriaError, match="cannot read criteria file"):
        Criteria.from_json(path, name="t", version="1")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"!": NaN}', "NaN is not JSON"),
        ('{"and": [], "and": [true]}', "appears twice"),
        ("   ", "empty"),
    ],
)
def test_json_that_is_not_strict_json_is_refused(text, words):
    """NaN literals, duplicate keys and empty text are refused at load time."""
    with pytest.raises(CriteriaError, match=words):
        Criteria.from_json(text, name="t", version="1")


def test_unknown_operator_names_its_path():
    """An unknown operator is refused with the path of the operation."""
    with pytest.raises(CriteriaError) as caught:
        load({"and": [True, {"or": [False, {"between": [1, 2, 3]}]}]})
    assert caught.value.path == "$.and[1].or[1].between"
    assert "unknown operator 'between'" in str(caught.value)
    assert caught.value.error_type == "Unknown Operator"


def test_wrong_arity_names_its_path():
    """Too few operands are refused with the path of the operation's operands."""
    document = {"and": [True, True, {">=": [{"var": "employees"}]}]}
    with pytest.raises(CriteriaError) as caught:
        load(document)
    assert caught.value.path == "$.and[2]['>=']"
    assert "'>=' takes at least 2 operands, got 1" in str(caught.value)
    assert caught.value.error_type == "Invalid Arguments"


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"!": [1, 2]}, "$['!']"),
        ({"!=": [1]}, "$['!=']"),
        ({"in": ["a"]}, "$.in"),
        ({"var": ["a", 1, 2]}, "$.var"),
        ({"substr": ["abc"]}, "$.substr"),
        ({"missing_some": [1]}, "$.missing_some"),
        ({"reduce": [[1]]}, "$.reduce"),
        ({"%": [1]}, "$['%']"),
        ({"-": []}, "$['-']"),
        ({"max": []}, "$.max"),
        ({"and": True}, "$.and"),
        ({"if": "apple"}, "$.if"),
        ({"map": [None, {"var": ""}]}, "$.map[0]"),
        ({"map": [{"var": "xs"}, None]}, "$.map[1]"),
        ({"filter": [{"var": "xs"}, None]}, "$.filter[1]"),
        ({"all": [None, True]}, "$.all[0]"),
        ({"some": ["abc", True]}, "$.some[0]"),
        ({"<": 5}, "$['<']"),
        ({"==": {"var": "pair"}}, "$['==']"),
        ({"??": "a"}, "$['??']"),
        ({"map": {"preserve": [[1], {"var": ""}]}}, "$.map"),
        ({"throw": []}, "$.throw"),
    ],
)
def test_other_arity_and_argument_faults(document, path):
    """Each operator's operand count and shape is checked at load time: Invalid Arguments."""
    with pytest.raises(CriteriaError) as caught:
        load(document)
    assert caught.value.path == path
    assert caught.value.error_type == "Invalid Arguments"
    assert caught.value.error_value == {"type": "Invalid Arguments"}


def test_invalid_arguments_are_refused_even_where_never_evaluated():
    """A fault the document itself shows is refused at load time, in any branch (not lazily)."""
    with pytest.raises(CriteriaError) as caught:
        load({"if": [True, 1, {"%": [1]}]})
    assert caught.value.path == "$.if[2]['%']"
    assert caught.value.error_type == "Invalid Arguments"


def test_division_with_no_operands_is_refused():
    """{"/": []} is refused at load time, as the standard says."""
    with pytest.raises(CriteriaError) as caught:
        load({"if": [True, {"/": []}, 0]})
    assert caught.value.path == "$.if[1]['/']"


def test_object_with_two_keys_is_not_an_operation():
    """An object with several keys where an operation belongs is refused, with its path."""
    with pytest.raises(CriteriaError) as caught:
        load({"or": [{"var": "a", "==": [1, 1]}]})
    assert caught.value.path == "$.or[0]"
    assert "exactly one key" in str(caught.value)
    assert caught.value.error_type is None


def test_preserved_values_are_checked_like_any_other():
    """preserve keeps any JSON as it is (several keys too), but refuses what is not JSON."""
    assert load({"preserve": {"a": 1, "b": [{"var": "x"}]}}).apply({}) == {
        "a": 1,
        "b": [{"var": "x"}],
    }
    with pytest.raises(CriteriaError) as caught:
        load({"preserve": {"a": [1, {"b": float("nan")}]}})
    assert caught.value.path == "$.preserve.a[1].b"
    with pytest.raises(CriteriaError, match="key must be a string") as caught:
        load({"and": [{"preserve": {"a": {2: 3}}}]})
    assert caught.value.path == "$.and[0].preserve.a"
    with pytest.raises(CriteriaError, match="deeper than 64 levels"):
        load({"preserve": nested(70, "x")})


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"!": float("nan")}, "not a JSON number"),
        ({"+": [float("inf")]}, "not a JSON number"),
        ({"!": Decimal("sNaN")}, "not a JSON number"),
        ({"in": ["a", {"a", "b"}]}, "set is not a JSON value"),
        ({"==": [{"var": "x"}, b"bytes"]}, "bytes is not a JSON value"),
        ({1: [1, 2]}, "key must be a string"),
    ],
)
def test_values_that_are_not_json_are_refused(document, words):
    """Python values with no JSON form are refused at load time."""
    with pytest.raises(CriteriaError, match=words):
        load(document)


@pytest.mark.parametrize("depth", [65, 1_000, 10_000])
def test_too_deep_is_a_criteria_error_not_a_recursion_error(depth):
    """A document nested beyond the limit is refused, however deep, without RecursionError."""
    with pytest.raises(CriteriaError) as caught:
        load(nested(depth))
    assert caught.value.path.startswith("$['!']['!']")
    assert "deeper than 64 levels" in str(caught.value)


def test_the_depth_limit_is_exact():
    """64 levels of nesting compile; 65 do not."""
    document: object = 1
    for _ in range(64):
        document = [document]
    assert load(document).apply(None) is not None
    with pytest.raises(CriteriaError):
        load([document])


def test_deep_json_text_is_a_criteria_error():
    """JSON text too deep for the parser itself is refused as CriteriaError."""
    with pytest.raises(CriteriaError, match="nests too deeply"):
        Criteria.from_json("[" * 200_000 + "]" * 200_000, name="t", version="1")


def test_too_many_nodes_names_where_the_limit_was_passed():
    """A document with more values than the limit is refused at the value that passed it."""
    document = {"or": [{"==": [{"var": f"v{i}"}, i]} for i in range(5_000)]}
    with pytest.raises(CriteriaError) as caught:
        load(document)
    assert "more than 10000 values" in str(caught.value)
    assert caught.value.path.startswith("$.or[1999]")


def test_limits_are_tunable_and_validated():
    """compile_logic takes tighter limits and refuses nonsense ones."""
    with pytest.raises(CriteriaError, match="more than 3 values"):
        compile_logic({"+": [1, 2, 3]}, max_nodes=3)
    with pytest.raises(CriteriaError, match="deeper than 1 levels"):
        compile_logic({"!": {"!": True}}, max_depth=1)
    with pytest.raises(ValidationError):
        compile_logic(True, max_depth=10_000)
    with pytest.raises(ValidationError):
        compile_logic(True, max_nodes=0)


def test_criteria_error_is_a_value_error():
    """CriteriaError is caught by generic ValueError handlers too."""
    with pytest.raises(ValueError, match="unknown operator"):
        load({"nope": []})


@pytest.mark.parametrize("op", ["==", "===", "!=", "!=="])
@pytest.mark.parametrize("count", [0, 1])
def test_equality_takes_at_least_two_operands(op, count):
    """Equality with fewer than two operands is refused, naming the operation's path."""
    with pytest.raises(CriteriaError) as caught:
        load({"and": [True, {op: [1] * count}]})
    assert caught.value.path == f"$.and[1]['{op}']"
    assert f"'{op}' takes at least 2 operands, got {count}" in str(caught.value)
    assert caught.value.error_type == "Invalid Arguments"


@pytest.mark.parametrize(
    ("document", "result"),
    [
        ({"==": [1, "1", True]}, True),
        ({"==": [1, 1, 2]}, False),
        ({"===": [2, 2, 2.0]}, True),
        ({"!=": [1, 2, 1]}, True),  # pairwise: 1 != 2 and 2 != 1
        ({"!=": [1, 2, 2]}, False),
        ({"!==": [1, "1", 1]}, True),
    ],
)
def test_equality_with_more_operands_chains_pairwise(document, result):
    """The specification chains equality like the comparisons (earlier refused at load time)."""
    assert load(document).apply(None) is result


@pytest.mark.parametrize(
    "document",
    [
        {"==": [1, 2, {"throw": "not lazy"}]},
        {"!=": [1, 1, {"throw": "not lazy"}]},
        {"<": [2, 1, {"throw": "not lazy"}]},
        {"and": [0, {"throw": "not lazy"}]},
        {"or": [1, {"throw": "not lazy"}]},
        {"??": [0, {"throw": "not lazy"}]},
        {"if": [False, {"throw": "not lazy"}, 1]},
        {"try": [1, {"throw": "not lazy"}]},
    ],
)
def test_operands_that_are_not_needed_are_not_evaluated(document):
    """Chains, and/or, ??, if and try stop evaluating as soon as the result is known."""
    load(document).apply(None)


def test_a_huge_integer_in_json_text_is_read_not_a_value_error():
    """An integer with more digits than int() reads from text loads as an exact Decimal."""
    digits = "1" * 5_000
    criteria = Criteria.from_json(f'{{"==": [1, {digits}]}}', name="t", version="1")
    assert criteria.document == {"==": [1, Decimal(digits)]}
    assert criteria.apply(None) is False
    assert Criteria.from_json(digits, name="t", version="1").apply(None) == Decimal(digits)
    again = Criteria.from_json(criteria.to_json(), name="t", version="1")
    assert again == criteria


def test_malformed_json_with_a_huge_integer_names_line_and_column():
    """Malformed text holding a huge integer is still reported with its line and column."""
    with pytest.raises(CriteriaError, match="line 2, column 5005"):
        Criteria.from_json("[\n  1" + "0" * 5_000 + " 2]", name="t", version="1")


def test_any_failure_while_parsing_text_is_a_criteria_error(monkeypatch):
    """A parse failure other than JSONDecodeError is wrapped as CriteriaError, never leaked."""

    def broken(text: str) -> int:
        raise ValueError("no digits today")

    monkeypatch.setattr(criteria_module, "_parse_int", broken)
    with pytest.raises(CriteriaError, match="no digits today") as caught:
        Criteria.from_json('{"==": [1, 1]}', name="t", version="1")
    assert caught.value.path == "$"


def test_from_dict_with_a_huge_python_int_loads_evaluates_and_writes():
    """A Python int too long for str() loads, evaluates, describes and writes as JSON."""
    huge = 10**5_000
    criteria = load({"and": [{"<": [{"var": "x"}, huge]}, {"==": [{"var": "x"}, huge]}]})
    assert criteria.apply({"x": huge}) is False
    assert criteria.apply({"x": huge - 1}) is False
    assert criteria.clauses == ("x < Infinity", "x == Infinity")
    text = criteria.to_json()
    assert "1" + "0" * 5_000 in text
    assert Criteria.from_json(text, name="test", version="1").apply({"x": huge}) is False


class ExplodingMapping(Mapping[str, object]):
    """A Mapping that claims one key but cannot produce its items."""

    def __getitem__(self, key: str) -> object:
        raise RuntimeError("storage went away")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("storage went away")

    def __len__(self) -> int:
        return 1


def test_a_document_mapping_that_fails_to_read_is_a_criteria_error():
    """A Python-built document whose Mapping raises is refused with CriteriaError."""
    with pytest.raises(CriteriaError, match="storage went away") as caught:
        load({"and": [True, ExplodingMapping()]})
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_huge_int_keys_are_reported_not_raised():
    """An object key too long to print still gives a CriteriaError message."""
    with pytest.raises(CriteriaError, match="key must be a string"):
        load({10**5_000: 1})
    with pytest.raises(CriteriaError, match="exactly one key"):
        load({10**5_000: 1, 2: 3})


# -- evaluation time --------------------------------------------------------------------------


def test_division_by_zero_at_evaluation_names_its_path():
    """Dividing by zero raises CriteriaError with the path of the division."""
    criteria = load({"and": [True, {">": [{"/": [{"var": "revenue"}, {"var": "staff"}]}, 10]}]})
    with pytest.raises(CriteriaError) as caught:
        criteria.apply({"revenue": 100, "staff": 0})
    assert caught.value.path == "$.and[1]['>'][0]['/']"
    assert criteria.apply({"revenue": 100, "staff": 5}) is True


@pytest.mark.parametrize(
    ("document", "data", "words"),
    [
        ({"%": [{"var": "x"}, 0]}, {"x": 5}, "modulo by zero"),
        ({"+": [{"var": "x"}, 1]}, {"x": "many"}, "'many' is not a number"),
        ({"*": [{"var": "x"}, 2]}, {"x": {"a": 1}}, "cannot do arithmetic"),
        ({"-": [{"var": "x"}, {"var": "x"}]}, {"x": float("inf")}, "not a number"),
        ({"max": [{"var": "x"}, 2]}, {"x": [1, 2]}, "cannot do arithmetic"),
    ],
)
def test_arithmetic_without_a_number_raises(document, data, words):
    """Arithmetic that has no number as its result raises CriteriaError, never NaN."""
    with pytest.raises(CriteriaError, match=words):
        load(document).apply(data)


def test_comparisons_with_data_that_is_no_number_raise_nan():
    """Comparing a number with text that is no number, an array or an object is NaN.

    This was false (as in json-logic-js) before the engine followed the specification.
    """
    criteria = load({">=": [{"var": "employees"}, 50]})
    for value in ("n/a", {"a": 1}, [1, 2]):
        with pytest.raises(CriteriaError) as caught:
            criteria.apply({"employees": value})
        assert caught.value.error_type == "NaN"
        assert caught.value.path == "$['>=']"
    for value in (None, float("nan"), "7", False):
        assert criteria.apply({"employees": value}) is False
    assert load({"<": [{"var": "x"}, "abc"]}).apply({}) is False  # null against text


@pytest.mark.parametrize(
    ("document", "data", "error_type", "path"),
    [
        ({"/": [{"var": "x"}, 0]}, {"x": 1}, "NaN", "$['/']"),
        ({"+": [1, {"var": "x"}]}, {"x": "abc"}, "NaN", "$['+']"),
        ({"==": [{"var": "x"}, 1]}, {"x": "abc"}, "NaN", "$['==']"),
        ({"==": [{"var": "x"}, "EU"]}, {"x": 5}, "NaN", "$['==']"),
        ({"==": [{"var": "x"}, []]}, {"x": []}, "NaN", "$['==']"),
        ({"-": {"var": "xs"}}, {"xs": []}, "Invalid Arguments", "$['-']"),
        ({"max": {"var": "xs"}}, {"xs": []}, "Invalid Arguments", "$.max"),
        ({"all": [{"var": "xs"}, True]}, {}, "Invalid Arguments", "$.all[0]"),
        ({"none": [{"var": "xs"}, True]}, {"xs": "abc"}, "Invalid Arguments", "$.none[0]"),
        ({"throw": "Not an admin"}, None, "Not an admin", "$.throw"),
        ({"throw": {"var": "e"}}, {"e": {"type": "Gone", "code": 410}}, "Gone", "$.throw"),
        ({"throw": 404}, None, 404, "$.throw"),
    ],
)
def test_evaluation_errors_carry_the_specification_error_type(document, data, error_type, path):
    """Each error at evaluation is a CriteriaError with error_type and the operation's path."""
    with pytest.raises(CriteriaError) as caught:
        load(document).apply(data)
    assert caught.value.error_type == error_type
    assert caught.value.path == path
    assert caught.value.error_value["type"] == error_type


def test_a_thrown_object_is_the_error_value():
    """A thrown object reaches error_value whole, and a try fallback reads it as its data."""
    data = {"e": {"type": "Gone", "code": 410}}
    with pytest.raises(CriteriaError) as caught:
        load({"throw": {"var": "e"}}).apply(data)
    assert caught.value.error_value == {"type": "Gone", "code": 410}
    fallback = load({"try": [{"throw": {"var": "e"}}, {"cat": [{"var": "type"}, {"var": "code"}]}]})
    assert fallback.apply(data) == "Gone410"


def test_try_catches_specification_errors_only():
    """try catches NaN, Invalid Arguments and thrown errors, never a failure of the data."""
    assert load({"try": [{"/": [1, {"var": "x"}]}, {"val": "type"}]}).apply({"x": 0}) == "NaN"
    assert load({"try": [{"some": [{"var": "x"}, 1]}, {"val": "type"}]}).apply({}) == (
        "Invalid Arguments"
    )
    with pytest.raises(CriteriaError, match="database went away") as caught:
        load({"try": [{"var": "x"}, 1]}).apply(BrokenMapping())
    assert caught.value.error_type is None
    with pytest.raises(CriteriaError) as caught:
        load({"try": [{"throw": "first"}, {"throw": "second"}]}).apply(None)
    assert caught.value.error_type == "second"


HUGE_DATA = [10**5_000, -(10**5_000), Decimal("1e999999999"), Decimal("-1e-999999999")]
EVERY_USE = [
    {"==": [{"var": "x"}, 1]},
    {"===": [{"var": "x"}, 1.5]},
    {"!=": [{"var": "x"}, "1"]},
    {"<": [0.5, {"var": "x"}, 2]},
    {">=": [{"var": "x"}, "7"]},
    {"in": [{"var": "x"}, [1, 2.5, "x"]]},
    {"in": [{"var": "x"}, "12345"]},
    {"+": [{"var": "x"}, 0.1]},
    {"-": [{"var": "x"}, 1]},
    {"*": [{"var": "x"}, 2.5]},
    {"/": [{"var": "x"}, 3]},
    {"/": [1, {"var": "x"}]},
    {"%": [{"var": "x"}, 7]},
    {"%": [7, {"var": "x"}]},
    {"max": [{"var": "x"}, 0.1]},
    {"min": [{"var": "x"}, 0.1]},
    {"cat": [{"var": "x"}]},
    {"substr": ["abcdef", {"var": "x"}]},
    {"substr": ["abcdef", 1, {"var": "x"}]},
    {"var": {"var": "x"}},
    {"missing_some": [{"var": "x"}, ["a"]]},
    {"!!": {"var": "x"}},
]


@pytest.mark.parametrize("value", HUGE_DATA, ids=["big", "-big", "dec-huge", "dec-tiny"])
@pytest.mark.parametrize("document", EVERY_USE, ids=[next(iter(d)) for d in EVERY_USE])
def test_huge_numbers_in_the_data_give_a_result_or_a_criteria_error(document, value):
    """Huge ints and extreme Decimals in the data never escape as other errors or hang."""
    try:
        load(document).apply({"x": value})
    except _EvaluationFailed as error:  # the catch-all would mean an unhandled case
        raise AssertionError(f"unexpected failure: {error.__cause__!r}") from error
    except CriteriaError:
        pass


class BrokenMapping(Mapping[str, object]):
    """A Mapping whose lookups fail with something other than KeyError."""

    def __getitem__(self, key: str) -> object:
        raise RuntimeError("database went away")

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_a_failing_data_mapping_becomes_a_criteria_error():
    """An error raised by the data itself surfaces as CriteriaError, with the cause kept."""
    with pytest.raises(CriteriaError, match="database went away") as caught:
        load({"var": "x"}).apply(BrokenMapping())
    assert isinstance(caught.value.__cause__, RuntimeError)


ROOMY = Budget(steps=10**7, size=10**6)


def test_cyclic_data_becomes_a_criteria_error():
    """Data that contains itself is stopped by the size budget before anything reads it."""
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(CriteriaError, match="budget's size of 100000") as caught:
        load({"cat": [{"var": "x"}]}).apply({"x": cycle})  # measured before it is read
    assert caught.value.path == "$.cat"


def test_deeply_nested_data_becomes_a_criteria_error():
    """Data nested deeper than Python's stack is reported as CriteriaError, not RecursionError."""
    data: object = "leaf"
    for _ in range(100_000):
        data = [data]
    with pytest.raises(CriteriaError, match="budget's size"):
        load({"cat": [{"var": "x"}]}).apply({"x": data})
    with pytest.raises(CriteriaError, match="nested too deeply"):
        compile_logic({"cat": [{"var": "x"}]}, budget=ROOMY)({"x": data})


# -- no code injection ------------------------------------------------------------------------

HOSTILE = [
    "__import__('os').system('echo pwned')",
    "'); import os; ('",
    '"""\nimport os\n"""',
    "\\",
    "g(_k0) or True",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_document_text_never_reaches_the_generated_source(text):
    """Strings from the document are constants, never part of the generated Python source."""
    document = {
        "and": [
            {"==": [{"var": text}, text]},
            {"in": [text, [text, "x"]]},
            {"var": [text, text]},
            {"cat": [text, {"var": "x"}]},
        ]
    }
    source, constants = _generate(document, 64, 10_000)
    assert text not in source
    assert text in constants.values()
    run = compile_logic(document)
    assert run.__globals__["__builtins__"] == {}
    assert compile_logic({"cat": [text, {"var": "x"}]})({"x": text}) == text + text
    assert compile_logic({"in": [{"var": "x"}, [text]]})({"x": text}) is True
