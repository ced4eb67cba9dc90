"""Criteria as a database prefilter: which stored prospects *may* pass, decided without Python.

A bulk screen or a call list over a large store should not decode every prospect to find the
few that pass. :func:`prefilter` translates a :class:`~salesprocess.criteria.Criteria` into a
small predicate tree over the stored attributes, neutral to any SQL dialect; each SQL adapter
renders it (SQLite with ``json_type``/``json_extract``, PostgreSQL with its ``json``
operators), and :func:`may_pass` is the same predicate in Python, the reference an adapter
must agree with.

**The guarantee.** The prefilter never rules out a prospect the criteria pass: the database
picks a superset, and the criteria themselves judge each prospect picked. It is *exact* where
the type of the stored value makes JSON Logic's answer certain, and keeps the row (for Python
to judge) wherever it is not. Every comparison is guarded by the JSON type of the value it
reads, so JavaScript's loose equality and truthiness corners (``"5" == 5``, ``"0"`` truthy,
``[]`` falsy, a missing variable against ``null``) are either translated exactly or left to
Python, never guessed.

What translates: ``and``, ``or``, ``!``, ``!!``, ``if`` / ``?:``, the comparisons ``==``,
``!=``, ``===``, ``!==``, ``<``, ``<=``, ``>``, ``>=`` (chained too) between a ``var`` and a
scalar literal, ``in`` of a ``var`` in a literal array of scalars, a ``var`` alone (its
truthiness), and literals. A ``var`` translates when its path is made of identifier-like keys
(``industry``, ``address.country``) naming an attribute rather than one of the account's own
fields (``id``, ``name``, ``email``, ``phone``, ``stage``, ``do_not_contact``, ``source``),
with an optional scalar default. Everything else is *unknown*: the rows it would decide are
kept for Python. A document that translates to nothing useful is still screened, all in
Python.

>>> from salesprocess.criteria import Criteria
>>> rule = Criteria.from_dict({"and": [{">=": [{"var": "employees"}, 50]},
...                                    {"==": [{"var": "region"}, "EU"]}]},
...                           name="mid-market", version="1")
>>> check = prefilter(rule)
>>> may_pass(check, {"employees": 120, "region": "EU"}), may_pass(check, {"employees": 12})
(True, False)
>>> may_pass(check, {"employees": "120", "region": "EU"})  # a numeric string: Python decides
True
>>> translates(prefilter(Criteria.from_dict({"missing": ["x"]}, name="n", version="1")))
False
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Literal, TypeAlias

import attrs

from salesprocess.criteria import ACCOUNT_FIELDS, Criteria
from salesprocess.errors import CriteriaError
from salesprocess.jsonlogic import compile_logic, truthy

__all__ = [
    "ACCOUNT_FIELDS",
    "ERROR",
    "KINDS",
    "NESTED_VERDICTS",
    "UNKNOWN",
    "AllOf",
    "AnyOf",
    "Compare",
    "Const",
    "Kind",
    "Leaf",
    "NonEmpty",
    "Not",
    "OneOf",
    "Outcome",
    "Prefilter",
    "Value",
    "kind_of",
    "may_pass",
    "must_pass",
    "outcome_holds",
    "prefilter",
    "render",
    "render_verdict",
    "translates",
]

#: The JSON kinds a stored value can have; ``missing`` is no value at the path.
Kind = Literal["missing", "null", "true", "false", "number", "text", "array", "object"]
KINDS: Final[tuple[Kind, ...]] = (
    "missing", "null", "true", "false", "number", "text", "array", "object",
)  # fmt: skip


#: A scalar literal a translated comparison holds: an int, a finite float or text.
Value: TypeAlias = int | float | str


@attrs.frozen
class Compare:
    """The stored value compared with ``literal``: ``value <op> literal``.

    For a number, ``literal`` is an int or a float and the comparison is numeric; for text,
    ``literal`` is text compared by code point (as Python and JSON Logic compare strings).
    """

    op: Literal["=", "!=", "<", "<=", ">", ">="]
    literal: Value


@attrs.frozen
class OneOf:
    """The stored value equals one of ``literals`` (numbers for a number, text for text)."""

    literals: tuple[Value, ...]


@attrs.frozen
class NonEmpty:
    """The stored array has at least one element."""


#: An outcome the criteria's answer cannot be known from, in SQL: keep the row for Python.
UNKNOWN: Final = "unknown"
#: An outcome where JSON Logic raises an error (the criteria then fail the prospect).
ERROR: Final = "error"

#: What a :class:`Leaf` gives for one kind of stored value.
Outcome: TypeAlias = bool | Literal["unknown", "error"] | Compare | OneOf | NonEmpty


def _outcomes(given: Mapping[Kind, Outcome]) -> Mapping[Kind, Outcome]:
    return dict(given)


@attrs.frozen
class Leaf:
    """A clause over one stored value: its outcome for each kind of value found at ``path``.

    ``path`` is the attribute's keys (``("address", "country")``); a kind not in
    ``outcomes`` is :data:`UNKNOWN`.
    """

    path: tuple[str, ...]
    outcomes: Mapping[Kind, Outcome] = attrs.field(converter=_outcomes)

    def outcome(self, kind: Kind) -> Outcome:
        """Return the outcome for a stored value of ``kind``."""
        return self.outcomes.get(kind, UNKNOWN)


@attrs.frozen
class Const:
    """A clause whose outcome needs no data: ``True``, ``False``, :data:`UNKNOWN`, :data:`ERROR`."""

    outcome: bool | Literal["unknown", "error"]


@attrs.frozen
class Not:
    """The clause is falsy."""

    operand: Prefilter


@attrs.frozen
class AllOf:
    """Every operand is truthy (``and``; no operands: false, as JSON Logic has it)."""

    operands: tuple[Prefilter, ...]


@attrs.frozen
class AnyOf:
    """Some operand is truthy (``or``)."""

    operands: tuple[Prefilter, ...]


#: The predicate tree: is the criteria's result truthy for this prospect?
Prefilter: TypeAlias = Const | Not | AllOf | AnyOf | Leaf


# -- translating -------------------------------------------------------------------------------

_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MISSING_VALUE: Final = object()
_SAFE: Final = 2**53  # beyond this a number's JSON text and its Python value may part ways
_EQUALITY: Final = frozenset({"==", "!=", "===", "!=="})
_RELATIONS: Final = {"<": "<", "<=": "<=", ">": ">", ">=": ">="}
_FLIPPED: Final = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!=",
                   "===": "===", "!==": "!=="}  # fmt: skip
_UNKNOWN_NODE: Final = Const(UNKNOWN)


def prefilter(criteria: Criteria) -> Prefilter:
    """Return the prefilter of ``criteria``: true for every prospect the criteria may pass."""
    return _node(criteria.document)


def _operation(node: object) -> tuple[str, list[object]] | None:
    if isinstance(node, Mapping) and len(node) == 1:
        ((op, args),) = node.items()
        return str(op), list(args) if isinstance(args, list | tuple) else [args]
    return None


def _scalar(node: object) -> bool:
    if node is None or isinstance(node, bool | str):
        return True
    if isinstance(node, int):
        return abs(node) < _SAFE
    return isinstance(node, float) and math.isfinite(node) and abs(node) < _SAFE


def _node(node: object) -> Prefilter:  # noqa: PLR0911 - one branch per operator family
    operation = _operation(node)
    if operation is None:
        if isinstance(node, Mapping | list | tuple):
            return _UNKNOWN_NODE if node else Const(bool(isinstance(node, Mapping)))
        return Const(truthy(node))
    op, args = operation
    if op == "var":
        return _variable(args, _truthiness, node)
    if op in ("!", "!!") and len(args) == 1:
        inner = _node(args[0])
        return Not(inner) if op == "!" else inner
    if op in ("and", "or") and isinstance(node[op], list | tuple):  # type: ignore[index]
        parts = tuple(_node(a) for a in args)
        return (AllOf if op == "and" else AnyOf)(parts) if parts else Const(False)
    if op in ("if", "?:") and isinstance(node[op], list | tuple):  # type: ignore[index]
        return _conditional(args)
    if (op in _EQUALITY or op in _RELATIONS) and isinstance(node[op], list | tuple):  # type: ignore[index]
        if len(args) < 2:
            return _UNKNOWN_NODE
        return _chain(op, args)
    if op == "in" and len(args) == 2 and isinstance(node[op], list | tuple):  # type: ignore[index]
        return _membership(args[0], args[1])
    return _UNKNOWN_NODE


def _conditional(args: list[object]) -> Prefilter:
    """``if c1 then a1 elif c2 then a2 ... else e``: truthy when the branch taken is."""
    if not args:
        return Const(False)
    if len(args) == 1:
        return _node(args[0])
    condition, then, rest = _node(args[0]), _node(args[1]), args[2:]
    otherwise = _conditional(rest) if rest else Const(False)
    return AnyOf((AllOf((condition, then)), AllOf((Not(condition), otherwise))))


def _chain(op: str, args: list[object]) -> Prefilter:
    pairs = tuple(_compare(op, a, b) for a, b in itertools.pairwise(args))
    return pairs[0] if len(pairs) == 1 else AllOf(pairs)


def _args(node: object) -> list[object]:
    operation = _operation(node)
    return [] if operation is None else operation[1]


def _is_var(node: object) -> bool:
    operation = _operation(node)
    return operation is not None and operation[0] == "var"


def _compare(op: str, left: object, right: object) -> Prefilter:
    clause = {op: [left, right]}
    if _is_var(left) and _scalar(right):
        return _variable(_args(left), lambda kind: _rule(kind, op, right), clause)
    if _is_var(right) and _scalar(left):
        flipped = _FLIPPED[op]
        return _variable(_args(right), lambda kind: _rule(kind, flipped, left), clause)
    if _scalar(left) and _scalar(right):
        return Const(_evaluate({op: [left, right]}, {}))
    return _UNKNOWN_NODE


def _membership(needle: object, haystack: object) -> Prefilter:
    if not (_is_var(needle) and isinstance(haystack, list | tuple)):
        return _UNKNOWN_NODE
    if not all(_scalar(item) for item in haystack):
        return _UNKNOWN_NODE
    numbers = tuple(i for i in haystack if isinstance(i, int | float) and not isinstance(i, bool))
    texts = tuple(i for i in haystack if isinstance(i, str))

    def rule(kind: Kind) -> Outcome:
        if kind == "number":
            return OneOf(numbers) if numbers else False
        if kind == "text":
            return OneOf(texts) if texts else False
        if kind == "array":
            return False  # an array is strictly equal to no literal
        return UNKNOWN

    return _variable(_args(needle), rule, {"in": [needle, haystack]})


def _path(args: list[object]) -> tuple[tuple[str, ...], object] | None:
    """Return a ``var``'s attribute path and default, or None if it cannot be translated."""
    if not args or len(args) > 2 or not isinstance(args[0], str):
        return None
    default = args[1] if len(args) == 2 else None
    if not _scalar(default):
        return None
    keys = tuple(args[0].split("."))
    if not all(_KEY.fullmatch(k) for k in keys) or keys[0] in ACCOUNT_FIELDS:
        return None
    return keys, default


def _variable(args: list[object], rule: Callable[[Kind], Outcome], clause: object) -> Prefilter:
    """Return a :class:`Leaf` of a ``var`` by ``rule``, the kinds of one value judged in Python.

    ``clause`` is the JSON Logic the test stands for: evaluated on a missing value, ``null``,
    ``true`` and ``false``, it gives those outcomes exactly, defaults and all.
    """
    found = _path(args)
    if found is None:
        return _UNKNOWN_NODE
    path = found[0]
    outcomes: dict[Kind, Outcome] = {}
    for kind, value in (
        ("missing", _MISSING_VALUE), ("null", None), ("true", True), ("false", False),
    ):  # fmt: skip
        data: dict[str, object] = {} if value is _MISSING_VALUE else {path[-1]: value}
        for key in reversed(path[:-1]):
            data = {key: data}
        outcomes[kind] = _evaluate(clause, data)  # type: ignore[index]
    for kind in ("number", "text", "array", "object"):
        outcomes[kind] = rule(kind)  # type: ignore[index, arg-type]
    return Leaf(path, outcomes)


def _evaluate(document: object, data: object) -> bool | Literal["error"]:
    try:
        return truthy(compile_logic(document)(data))
    except CriteriaError:
        return ERROR


def _truthiness(kind: Kind) -> Outcome:
    if kind == "number":
        return Compare("!=", 0)
    if kind == "text":
        return Compare("!=", "")
    if kind == "array":
        return NonEmpty()
    return UNKNOWN  # an object may be a stored Decimal (a number) in Python


def _rule(kind: Kind, op: str, literal: object) -> Outcome:  # noqa: PLR0911
    """Return the outcome of ``value <op> literal`` for a stored value of ``kind``."""
    if kind == "object":
        return UNKNOWN  # a tagged Decimal is an object in JSON and a number in Python
    if kind == "array":
        if op in ("===", "!=="):
            return op == "!=="
        return ERROR  # an array in a loose or relational comparison is NaN
    strict = op in ("===", "!==")
    if kind == "text":
        if isinstance(literal, str):
            return Compare(_sql_op(op), literal)
        if strict:
            return op == "!=="
        if literal is None and op in ("==", "!="):
            return op == "!="  # null equals no string
        return UNKNOWN  # a string meets a number as JavaScript parses it: left to Python
    # a number
    if strict:
        if isinstance(literal, int | float) and not isinstance(literal, bool):
            return Compare(_sql_op(op), literal)
        return op == "!=="
    number = _coerced(literal)
    if number is None:
        return UNKNOWN
    if number == "error":
        return ERROR
    return Compare(_sql_op(op), number)


def _coerced(literal: object) -> Value | Literal["error"] | None:  # noqa: PLR0911
    """Return a literal as a number meets it loosely: ERROR for NaN, None if unsure."""
    if literal is None:
        return 0
    if isinstance(literal, bool):
        return int(literal)
    if isinstance(literal, int | float):
        return literal
    if isinstance(literal, str):
        from salesprocess.jsonlogic import _parse_num  # noqa: PLC0415 - JavaScript's Number()

        parsed = _parse_num(literal)
        if isinstance(parsed, float) and math.isnan(parsed):
            return "error"
        if not math.isfinite(parsed) or abs(parsed) >= _SAFE:
            return None
        return parsed
    return None


def _sql_op(op: str) -> Literal["=", "!=", "<", "<=", ">", ">="]:
    return {"==": "=", "===": "=", "!=": "!=", "!==": "!="}.get(op, op)  # type: ignore[return-value]


# -- the reference: the prefilter in Python ----------------------------------------------------


def kind_of(value: object) -> Kind:  # noqa: PLR0911 - one per kind
    """Return the JSON kind a stored attribute value has (``missing`` for the marker)."""
    if value is _MISSING_VALUE:
        return "missing"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float) and type(value) in (int, float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "array"
    return "object"  # a mapping, or a Decimal (stored as a tagged object)


def _at(facts: Mapping[str, object], path: tuple[str, ...]) -> object:
    value: object = facts
    for key in path:
        if not isinstance(value, Mapping):
            return _MISSING_VALUE
        value = value.get(key, _MISSING_VALUE)
        if value is _MISSING_VALUE:
            return value
    return value


def _holds(outcome: Outcome, value: object, truthy: bool) -> bool:
    """Whether ``outcome`` on ``value`` is surely ``truthy`` (evaluated, and without error)."""
    if outcome is True or outcome is False:
        return outcome is truthy
    if outcome in (UNKNOWN, ERROR):
        return False
    return _exactly(outcome, value) is truthy  # type: ignore[arg-type]


def _exactly(outcome: Compare | OneOf | NonEmpty, value: object) -> bool:  # noqa: PLR0911
    if isinstance(outcome, NonEmpty):
        return len(value) > 0  # type: ignore[arg-type]
    if isinstance(outcome, OneOf):
        return any(value == literal for literal in outcome.literals)
    a, b = value, outcome.literal
    op = outcome.op
    if op == "=":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if op == "<":
        return bool(a < b)  # type: ignore[operator]
    if op == "<=":
        return bool(a <= b)  # type: ignore[operator]
    if op == ">":
        return bool(a > b)  # type: ignore[operator]
    return bool(a >= b)  # type: ignore[operator]


def _exact(number: object) -> bool:
    """Whether every store compares ``number`` exactly: an int within 2**53 (a real may not be)."""
    return type(number) is int and -_SAFE < number < _SAFE


def _judge(node: Prefilter, facts: Mapping[str, object], truthy: bool) -> bool:
    """Whether ``node`` is surely ``truthy`` on ``facts``: evaluated without error, so."""
    if isinstance(node, Leaf):
        value = _at(facts, node.path)
        kind = kind_of(value)
        outcome = node.outcome(kind)
        if kind == "number" and isinstance(outcome, Compare | OneOf) and not _exact(value):
            outcome = UNKNOWN
        return _holds(outcome, value, truthy)
    if isinstance(node, Const):
        return _holds(node.outcome, None, truthy)
    if isinstance(node, Not):
        return _judge(node.operand, facts, not truthy)
    deciding = not isinstance(node, AllOf)  # an AND stops at a falsy operand, an OR at a truthy
    for operand in node.operands:
        if _judge(operand, facts, deciding):
            return truthy is deciding
        if not _judge(operand, facts, not deciding):
            return False  # unknown, or an error: nothing is sure
    return truthy is not deciding


def may_pass(check: Prefilter, facts: Mapping[str, object]) -> bool:
    """Return whether the prospect whose stored attributes are ``facts`` may pass.

    ``False`` means the criteria surely do not pass it (they evaluate, without error, to a
    falsy value); ``True`` that they may. It is the reference for the stores: each selects
    every prospect the criteria pass and none that ``may_pass`` rules out. Numbers are
    compared here only when they are ints within 2**53 (as SQLite can); a store that compares
    more exactly (PostgreSQL's ``numeric``) may select fewer.
    """
    return not _judge(check, facts, truthy=False)


def must_pass(check: Prefilter, facts: Mapping[str, object]) -> bool:
    """Return whether the criteria surely pass the prospect whose attributes are ``facts``.

    ``True`` means they evaluate, without error, to a truthy value: no evaluation in Python is
    needed. Where the types make the answer certain, ``must_pass`` equals :func:`may_pass`
    (and the criteria's verdict).
    """
    return _judge(check, facts, truthy=True)


def translates(node: Prefilter) -> bool:
    """Return whether any part of ``node`` translates (else SQL would keep every row)."""
    return _translated(node)


def _translated(node: Prefilter) -> bool:
    if isinstance(node, Leaf):
        return True
    if isinstance(node, Const):
        return node.outcome != UNKNOWN
    if isinstance(node, Not):
        return _translated(node.operand)
    return any(_translated(p) for p in node.operands)


def render(
    check: Prefilter,
    test: Callable[[Leaf, bool], str],
    *,
    true: str = "1",
    false: str = "0",
    must: bool = False,
) -> str:
    """Return ``check`` as SQL; ``test(leaf, truthy)`` renders a :class:`Leaf` in a dialect.

    ``test(leaf, truthy)`` must select the rows where the leaf surely evaluates, without error,
    to a truthy (``truthy``) or falsy value. The result selects the rows the criteria may
    pass (those not surely falsy), or with ``must`` those they surely pass. ``and`` / ``or``
    are rendered with their short-circuit, so an error in an operand that JSON Logic never
    evaluates changes nothing. Constants fold away.
    """
    folded = _render(check, test, must, (false, true))
    if not must:
        folded = (not folded) if isinstance(folded, bool) else f"NOT ({folded})"
    if folded is True:
        return true
    if folded is False:
        return false
    return folded


def render_verdict(
    check: Prefilter,
    test: Callable[[Leaf, bool], str],
    *,
    true: str = "1",
    false: str = "0",
    unknown: str = "NULL",
    leaf_verdict: Callable[[Leaf], str] | None = None,
) -> str:
    """Return SQL for the verdict ``check`` makes certain: ``true``, ``false`` or ``unknown``.

    ``true`` where the criteria surely pass, ``false`` where they surely fail, ``unknown``
    (for Python to judge) elsewhere: one expression where ``must`` and "not may" from
    :func:`render` would evaluate the operands before the deciding one twice. ``test`` is
    :func:`render`'s.

    ``leaf_verdict``, when given, returns SQL that is 1 where a leaf is surely truthy, 0 where
    it is surely falsy and NULL elsewhere, reading the value once: each operand is then
    evaluated once, as a ``CASE`` over its own verdict (``test`` evaluates a leaf once to ask
    whether it surely does not decide, then again to ask whether it surely decides). Used for
    checks of at most :data:`NESTED_VERDICTS` nodes, since each operand nests a ``CASE``.
    """
    literals = {True: true, False: false, None: unknown}
    if leaf_verdict is not None and _size(check) <= NESTED_VERDICTS:
        return _nested_verdict(check, leaf_verdict, literals)
    return _verdict(check, test, literals, (false, true))


#: The most nodes a check may have for :func:`render_verdict` to nest its operands' verdicts
#: (SQLite refuses expressions nested 1,000 deep).
NESTED_VERDICTS: Final = 64


def _size(node: Prefilter) -> int:
    if isinstance(node, Not):
        return 1 + _size(node.operand)
    if isinstance(node, AllOf | AnyOf):
        return 1 + sum(_size(operand) for operand in node.operands)
    return 1


_OWN: Final = {True: "1", False: "0", None: "NULL"}


def _nested_verdict(
    node: Prefilter, leaf_verdict: Callable[[Leaf], str], literals: dict[bool | None, str]
) -> str:
    """Return the verdict of ``node`` as ``literals`` name them, each operand evaluated once.

    The first operand that is not surely undecided gives the verdict: its own if it surely
    decides, else none; when every operand is surely undecided, the other verdict (as
    :func:`_verdict` renders it).
    """
    if isinstance(node, Not):
        flipped = {True: literals[False], False: literals[True], None: literals[None]}
        return _nested_verdict(node.operand, leaf_verdict, flipped)
    if isinstance(node, Const):
        sure = [truthy for truthy in (True, False) if _holds(node.outcome, None, truthy)]
        return literals[sure[0] if sure else None]
    if isinstance(node, Leaf):
        return _named(leaf_verdict(node), literals)
    deciding = isinstance(node, AnyOf)
    verdict = literals[not deciding]
    for operand in reversed(node.operands):
        own = _nested_verdict(operand, leaf_verdict, _OWN)
        if own in _FIXED:
            if _FIXED[own] is not (not deciding):
                verdict = literals[_FIXED[own]]
        elif verdict == literals[not deciding]:  # the last operand that may decide
            verdict = _named(own, literals)
        else:
            verdict = (
                f"CASE {own} WHEN {_OWN[not deciding]} THEN {verdict} "
                f"WHEN {_OWN[deciding]} THEN {literals[deciding]} ELSE {literals[None]} END"
            )
    return verdict


_FIXED: Final = {literal: verdict for verdict, literal in _OWN.items()}


def _named(own: str, literals: dict[bool | None, str]) -> str:
    """Return a verdict given as 1, 0 or NULL (``own``) as ``literals`` name them."""
    if own in _FIXED:
        return literals[_FIXED[own]]
    if literals == _OWN:
        return own
    return (
        f"CASE {own} WHEN 1 THEN {literals[True]} WHEN 0 THEN {literals[False]} "
        f"ELSE {literals[None]} END"
    )


def _verdict(
    node: Prefilter,
    test: Callable[[Leaf, bool], str],
    literals: dict[bool | None, str],
    pairs: tuple[str, str],
) -> str:
    """Return the verdict of ``node`` as ``literals`` name them (swapped under a ``Not``).

    ``pairs`` are the dialect's false and true, for the conditions :func:`_render` writes.
    """

    def surely(truthy: bool) -> str | bool:
        return _render(node, test, truthy, pairs)

    if isinstance(node, Not):
        flipped = {True: literals[False], False: literals[True], None: literals[None]}
        return _verdict(node.operand, test, flipped, pairs)
    if not isinstance(node, AllOf | AnyOf):
        return _verdict_case(
            [(surely(True), literals[True]), (surely(False), literals[False])], literals
        )
    deciding = isinstance(node, AnyOf)
    # The first operand that is not surely undecided gives the verdict: its own if it surely
    # decides, else none; when every operand is surely undecided, the other verdict.
    whens: list[tuple[str | bool, str]] = []
    for operand in node.operands:
        undecided = _render(operand, test, not deciding, pairs)
        if undecided is True:
            continue
        decides = _render(operand, test, deciding, pairs)
        verdict = _verdict_case([(decides, literals[deciding])], literals)
        if undecided is False:
            whens.append((True, verdict))
            break
        whens.append((f"NOT ({undecided})", verdict))
    else:
        whens.append((True, literals[not deciding]))
    return _verdict_case(whens, literals)


def _verdict_case(whens: list[tuple[str | bool, str]], literals: dict[bool | None, str]) -> str:
    """Return ``CASE WHEN condition THEN result ... ELSE unknown END``, constants folded."""
    branches: list[str] = []
    for condition, result in whens:
        if condition is False:
            continue
        if condition is True:
            if not branches:
                return result
            return f"CASE {' '.join(branches)} ELSE {result} END"
        branches.append(f"WHEN ({condition}) THEN {result}")
    if not branches:
        return literals[None]
    return f"CASE {' '.join(branches)} ELSE {literals[None]} END"


def _both(parts: list[str | bool], conjunction: bool) -> str | bool:
    """Fold constants out of an AND (``conjunction``) or OR of rendered parts."""
    texts: list[str] = []
    for part in parts:
        if part is (not conjunction):
            return not conjunction
        if isinstance(part, str):
            texts.append(f"({part})")
    if not texts:
        return conjunction
    return (" AND " if conjunction else " OR ").join(texts)


def _render(
    node: Prefilter, test: Callable[[Leaf, bool], str], truthy: bool, literals: tuple[str, str]
) -> str | bool:
    if isinstance(node, Const):
        return _holds(node.outcome, None, truthy)
    if isinstance(node, Leaf):
        return test(node, truthy)
    if isinstance(node, Not):
        return _render(node.operand, test, not truthy, literals)
    deciding = not isinstance(node, AllOf)
    if truthy is not deciding:  # every operand surely does not decide
        return _both(
            [_render(o, test, not deciding, literals) for o in node.operands], conjunction=True
        )
    return _first_deciding(node.operands, test, deciding, literals)


def _first_deciding(
    operands: Sequence[Prefilter],
    test: Callable[[Leaf, bool], str],
    deciding: bool,
    literals: tuple[str, str],
) -> str | bool:
    """Return SQL for: some operand surely ``deciding``, and all before it surely not.

    As a CASE, the first operand not surely undecided is the one whose verdict counts: each
    operand is rendered (and evaluated) once, where OR-ing "D1", "N1 AND D2", "N1 AND N2 AND
    D3" ... repeats every operand for each later one, and nested ORs overflow the parser.
    """
    whens: list[tuple[str, str | bool]] = []
    last: str | bool = False  # no operand decides
    for operand in operands:
        undecided = _render(operand, test, not deciding, literals)
        if undecided is True:
            continue
        decides = _render(operand, test, deciding, literals)
        if undecided is False:
            last = decides
            break
        whens.append((undecided, decides))
    if not whens:
        return last
    if all(decides is True for _, decides in whens) and last is False:
        return _both([f"NOT ({n})" for n, _ in whens], conjunction=False)

    def literal(value: str | bool) -> str:
        return literals[value] if isinstance(value, bool) else f"({value})"

    branches = " ".join(f"WHEN NOT ({n}) THEN {literal(d)}" for n, d in whens)
    return f"CASE {branches} ELSE {literal(last)} END"


def outcome_holds(outcome: Outcome, truthy: bool) -> bool | None:
    """Return whether a fixed outcome is surely ``truthy`` (``None``: it needs the value)."""
    if isinstance(outcome, Compare | OneOf | NonEmpty):
        return None
    return _holds(outcome, None, truthy)
