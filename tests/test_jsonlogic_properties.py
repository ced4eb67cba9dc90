"""JSON Logic properties: robustness on any input, and agreement with two other evaluators."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salesprocess.criteria import Criteria
from salesprocess.errors import CriteriaError
from salesprocess.jsonlogic import OPERATORS, CompiledLogic, _EvaluationFailed, compile_logic

json_logic = pytest.importorskip("json_logic", reason="the panzi-json-logic peer is not installed")

DETERMINISTIC = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

KEYS = ["a", "b", "c", "a.b", "", "0", "1", "x.0", "current", "accumulator"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    st.sampled_from([*KEYS, "1e3", " 7 ", "0x1F", "-0", "Infinity"]),
)


def json_values(leaves: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """Any JSON value, with a good share of one-key objects named after operators."""
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(max_size=4), children, max_size=3),
            st.builds(
                lambda op, args: {op: args},
                st.sampled_from([*sorted(OPERATORS), "nope", "log", "val"]),
                children | st.lists(children, max_size=4),
            ),
            st.builds(lambda key: {"var": key}, st.sampled_from(KEYS)),
        ),
        max_leaves=16,
    )


documents = json_values(scalars)
data_values = json_values(scalars | st.decimals() | st.sampled_from([Decimal("sNaN")]))


@DETERMINISTIC
@given(document=documents, data=data_values)
def test_any_document_on_any_data_gives_a_result_or_a_criteria_error(document, data):
    """Whatever the JSON, compiling and applying it yields a result or a deliberate error."""
    try:
        run = compile_logic(document)
    except CriteriaError as error:
        path = error.path
        assert path.startswith("$")
        return
    for subject in (data, {"a": data, "b": [data], "c": {"b": data}}):
        try:
            run(subject)
        except _EvaluationFailed as error:  # the catch-all would mean an unhandled case
            raise AssertionError(f"unexpected failure: {error.__cause__!r}") from error
        except CriteriaError:
            pass


python_documents = json_values(
    scalars
    | st.decimals()
    | st.just(Decimal("sNaN"))
    | st.frozensets(st.integers(), max_size=2)
    | st.binary(max_size=3)
).map(lambda doc: tuple(doc) if isinstance(doc, list) else doc)


@DETERMINISTIC
@given(document=python_documents, data=data_values)
def test_python_values_in_a_document_load_or_raise_criteria_error(document, data):
    """Decimals, tuples, sets or bytes in a Python-built document never escape as other errors."""
    try:
        run = compile_logic(document)
    except CriteriaError:
        return
    try:
        run(data)
    except _EvaluationFailed as error:
        raise AssertionError(f"unexpected failure: {error.__cause__!r}") from error
    except CriteriaError:
        pass


@DETERMINISTIC
@given(document=documents)
def test_criteria_keep_a_plain_copy_of_the_document(document):
    """A document that loads is kept as an equal plain-JSON copy that loads again."""
    try:
        criteria = Criteria.from_dict(document, name="p", version="1")
    except CriteriaError:
        return
    assert criteria.document == document
    assert Criteria.from_json(criteria.to_json(), name="p", version="1") == criteria


@DETERMINISTIC
@given(document=documents, indent=st.sampled_from([None, 0, 2]))
def test_to_json_writes_what_json_dumps_writes(document, indent):
    """Without Decimals, to_json gives exactly json.dumps's text."""
    try:
        criteria = Criteria.from_dict(document, name="p", version="1")
    except CriteriaError:
        return
    assert criteria.to_json(indent=indent) == json.dumps(criteria.document, indent=indent)


finite_decimals = st.decimals(allow_nan=False, allow_infinity=False)
decimal_documents = json_values(scalars | finite_decimals)


def same_number(before: object, after: object) -> bool:
    """Tell whether JSON text carried ``before`` to ``after`` without changing its value."""
    if isinstance(before, dict):
        return (
            isinstance(after, dict)
            and list(before) == list(after)
            and all(same_number(before[k], after[k]) for k in before)
        )
    if isinstance(before, list):
        return (
            isinstance(after, list)
            and len(before) == len(after)
            and all(same_number(b, a) for b, a in zip(before, after, strict=True))
        )
    if isinstance(before, (Decimal, float)) and not isinstance(before, bool):
        exact = Decimal(repr(before)) if isinstance(before, float) else before
        got = Decimal(repr(after)) if isinstance(after, float) else after
        return isinstance(got, (Decimal, int)) and not isinstance(got, bool) and exact == got
    return type(before) is type(after) and before == after


@DETERMINISTIC
@given(document=decimal_documents)
def test_numbers_round_trip_through_json_text_exactly(document):
    """from_json(to_json()) keeps every number's decimal value, Decimals included."""
    try:
        criteria = Criteria.from_dict(document, name="p", version="1")
    except CriteriaError:
        return
    again = Criteria.from_json(criteria.to_json(), name="p", version="1")
    assert same_number(criteria.document, again.document), (criteria.document, again.document)


COMPARE = {
    "==": lambda a, b: a == b,
    "===": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "!==": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
finite_floats = st.floats(allow_nan=False, allow_infinity=False)


@DETERMINISTIC
@given(
    op=st.sampled_from(sorted(COMPARE)),
    literal=finite_floats,
    amount=finite_decimals | finite_floats.map(lambda x: Decimal(repr(x))),
    flip=st.booleans(),
)
def test_decimal_data_compares_with_a_float_literal_as_written(op, literal, amount, flip):
    """A Decimal compares with a float literal as with Decimal(repr(literal)), both ways round."""
    operands: list[object] = [{"var": "amount"}, literal]
    if flip:
        operands.reverse()
    got = compile_logic({op: operands})({"amount": amount})
    exact = Decimal(repr(literal))
    want = COMPARE[op](exact, amount) if flip else COMPARE[op](amount, exact)
    assert got is want


# -- a reference interpreter for a subset, written straight from the specification's rules ---

STRINGS = ["", "0", "1", "2.5", " 7 ", "a", "EU", "true", "null"]
NUMBERS = st.sampled_from([0, 1, 2, -1, 7, 0.5, -2.25, 3.0])
# Few distinct values, so the tricky pairs (null and 0, "0" and false, "1" and true) come up.
literals = st.one_of(st.none(), st.booleans(), NUMBERS, st.sampled_from(STRINGS))
variables = st.sampled_from(["a", "b", "c", "missing"]).map(lambda key: {"var": key})
RELATIONS = ["==", "!=", "===", "!==", ">", ">=", "<", "<="]


def _operations(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    def op(name: str, args: st.SearchStrategy[list[object]]) -> st.SearchStrategy[object]:
        return args.map(lambda values: {name: values})

    return st.one_of(
        st.builds(lambda o, a, b: {o: [a, b]}, st.sampled_from(RELATIONS), children, children),
        st.builds(lambda o, a, b, c: {o: [a, b, c]}, st.sampled_from(RELATIONS), *[children] * 3),
        st.builds(lambda o, a: {o: [a]}, st.sampled_from(["!", "!!"]), children),
        op("and", st.lists(children, min_size=1, max_size=4)),
        op("or", st.lists(children, min_size=1, max_size=4)),
        op("if", st.lists(children, min_size=1, max_size=5)),
        st.builds(
            lambda needle, haystack: {"in": [needle, haystack]},
            children,
            st.lists(literals, max_size=4) | st.sampled_from(STRINGS),
        ),
        st.builds(
            lambda o, args: {o: args},
            st.sampled_from(["+", "-", "*"]),
            st.lists(children, min_size=1, max_size=3),
        ),
        op("cat", st.lists(children, max_size=3)),
    )


subset_rules = st.recursive(literals | variables, _operations, max_leaves=12)
subset_data = st.fixed_dictionaries({"a": literals, "b": literals, "c": literals})


class NoNumber(Exception):
    """The reference's "no number" error (the specification's NaN)."""


def r_truthy(v: object) -> bool:
    if v is None:
        return False
    if isinstance(v, (bool, str, list)):
        return bool(v)
    return v != 0 and not math.isnan(v)  # type: ignore[arg-type]


def r_str(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(int(v)) if float(v).is_integer() else repr(float(v))
    if isinstance(v, list):
        return ",".join("" if e is None else r_str(e) for e in v)
    return str(v)


def r_num(v: object) -> float:
    if v is None:
        return 0.0
    if isinstance(v, (bool, int, float)):
        return float(v)
    text = r_str(v).strip()
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        return math.nan


def r_kind(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    return "number" if isinstance(v, (int, float)) else "string"


def r_strict(a: object, b: object) -> bool:
    return r_kind(a) == r_kind(b) and a == b


def r_loose(a: object, b: object) -> bool:
    ka, kb = r_kind(a), r_kind(b)
    if ka == kb:
        return a == b
    if "null" in (ka, kb):  # null equals 0 and false too, never a string
        other, kind = (b, kb) if ka == "null" else (a, ka)
        return kind != "string" and r_num(other) == 0
    x, y = r_num(a), r_num(b)  # booleans and strings meet numbers as numbers
    if math.isnan(x) or math.isnan(y):
        raise NoNumber
    return x == y


def r_relation(op: str, a: object, b: object) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        x, y = a, b
    else:
        x, y = r_num(a), r_num(b)  # type: ignore[assignment]
        if math.isnan(x) or math.isnan(y):  # type: ignore[arg-type]
            if a is None or b is None:  # null against text that is no number: false
                return False
            raise NoNumber
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


def r_chain(
    test: Callable[[object, object], bool], args: list[object], data: dict[str, object]
) -> bool:
    """Compare neighbours left to right, evaluating no operand after the first false pair."""
    prev = reference(args[0], data)
    for arg in args[1:]:
        cur = reference(arg, data)
        if not test(prev, cur):
            return False
        prev = cur
    return True


def reference(rule: object, data: dict[str, object]) -> object:
    """Evaluate the subset as JavaScript json-logic does (short-circuiting like it)."""
    if not isinstance(rule, dict):
        return rule
    ((op, args),) = rule.items()
    if op == "var":
        return data.get(args)
    if op in ("and", "or"):
        value: object = None
        for arg in args:
            value = reference(arg, data)
            if r_truthy(value) != (op == "and"):
                return value
        return value
    if op == "if":
        for i in range(0, len(args) - 1, 2):
            if r_truthy(reference(args[i], data)):
                return reference(args[i + 1], data)
        return reference(args[-1], data) if len(args) % 2 else None
    if op in ("==", "!=", "===", "!=="):
        equal = r_loose if op in ("==", "!=") else r_strict
        negate = op.startswith("!")
        return r_chain(lambda x, y: equal(x, y) != negate, args, data)
    if op in ("<", "<=", ">", ">="):
        return r_chain(lambda x, y: r_relation(op, x, y), args, data)
    values = [reference(arg, data) for arg in args] if op != "in" else None
    if op == "in":
        needle, haystack = reference(args[0], data), args[1]
        if isinstance(haystack, str):
            return r_str(needle) in haystack
        return any(r_strict(needle, e) for e in haystack)
    assert values is not None
    if op in ("!", "!!"):
        return r_truthy(values[0]) == (op == "!!")
    if op == "cat":
        return "".join("" if v is None else r_str(v) for v in values)
    numbers = [r_num(v) for v in values]
    if any(math.isnan(n) for n in numbers):
        raise NoNumber
    if op == "-" and len(numbers) == 1:
        return -numbers[0]
    total = numbers[0]
    for n in numbers[1:]:
        total = total + n if op == "+" else total - n if op == "-" else total * n
    return total


def same(actual: object, expected: object) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return actual == expected
    return type(actual) is type(expected) and actual == expected


def outcome(run: CompiledLogic, data: dict[str, object]) -> object:
    try:
        return run(data)
    except CriteriaError:
        return NoNumber


def reference_outcome(rule: object, data: dict[str, object]) -> object:
    try:
        return reference(rule, data)
    except NoNumber:
        return NoNumber


@settings(DETERMINISTIC, max_examples=1_500)
@given(rule=subset_rules, data=subset_data)
def test_compiled_code_agrees_with_a_reference_interpreter(rule, data):
    """On comparisons, logic, in, arithmetic and cat, the compiled code matches the spec's rules."""
    run = compile_logic(rule)
    got, want = outcome(run, data), reference_outcome(rule, data)
    assert same(got, want), (rule, data, got, want)


# -- the panzi-json-logic peer, where it follows JavaScript ----------------------------------

peer_literals = st.booleans() | NUMBERS
peer_data = st.fixed_dictionaries({"a": peer_literals, "b": peer_literals, "c": peer_literals})
peer_variables = st.sampled_from(["a", "b", "c"]).map(lambda key: {"var": key})


def _peer_operations(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(
        st.builds(
            lambda o, a, b: {o: [a, b]},
            st.sampled_from(["==", "!=", ">", ">=", "<", "<="]),
            children,
            children,
        ),
        st.builds(
            lambda o, a, b, c: {o: [a, b, c]},
            st.sampled_from([">", ">=", "<", "<="]),
            *[children] * 3,
        ),
        st.builds(lambda o, a: {o: [a]}, st.sampled_from(["!", "!!"]), children),
        st.builds(
            lambda o, args: {o: args},
            st.sampled_from(["and", "or", "if"]),
            st.lists(children, min_size=1, max_size=4),
        ),
    )


peer_rules = st.recursive(peer_literals | peer_variables, _peer_operations, max_leaves=12)


@DETERMINISTIC
@given(rule=peer_rules, data=peer_data)
def test_compiled_code_agrees_with_panzi_json_logic(rule, data):
    """On comparisons and logic over numbers and booleans, we agree with panzi-json-logic."""
    ours = compile_logic(rule)(data)
    theirs = json_logic.jsonLogic(rule, data)
    assert same(ours, theirs), (rule, data, ours, theirs)
