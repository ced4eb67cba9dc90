r"""The criteria prefilter (:mod:`salesprocess.criteria_sql`) in SQLite's and PostgreSQL's SQL.

Each :class:`~salesprocess.criteria_sql.Leaf` becomes a ``CASE`` over the JSON type of the
stored value, so a comparison only ever meets values of the type it is exact for:

- SQLite reads ``json_type`` / ``json_extract`` of the ``data`` column. A number is compared
  in SQL only when SQLite holds it as an integer within 2**53 (SQLite's own text-to-double
  conversion is not guaranteed to round as Python's does, so a stored real is left to
  Python); text compares by UTF-8 bytes, which is code point order, as in Python.
- PostgreSQL reads the ``json`` column with ``#>`` / ``#>>``. Numbers compare as ``numeric``,
  exactly as written (within 2**53, where a float's shortest text and its binary value order
  alike); text compares in the ``"C"`` collation (code point order), unless its JSON text holds
  a ``\\u`` escape, which is left to Python.

Every expression is NULL-free (each ``CASE`` has an ``ELSE``), so a ``NOT`` never turns an
unknown into a rejection. Literals travel as named parameters, collected in ``params``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Final, Literal, TypeVar, cast

from salesprocess.account import Screening
from salesprocess.criteria_sql import (
    Compare,
    Kind,
    Leaf,
    NonEmpty,
    OneOf,
    Outcome,
    Prefilter,
    outcome_holds,
    render,
    render_verdict,
)
from salesprocess.storage.serialise import converter

__all__ = [
    "NUL_ESCAPE",
    "Params",
    "postgres_where",
    "screening_json",
    "sqlite_verdict",
    "sqlite_where",
    "verdicts",
]

_Rendered = TypeVar("_Rendered")
_SAFE: Final = 2**53 - 1
#: A PostgreSQL condition: the ``json`` column holds a ``\u0000`` escape somewhere.
NUL_ESCAPE: Final = "strpos({}::text, '\\u0000') > 0"


class Params(dict[str, object]):
    """Named parameters of one statement, named ``p0``, ``p1``, ... as they are added."""

    def add(self, value: object) -> str:
        """Add ``value``; return its name."""
        name = f"p{len(self)}"
        self[name] = value
        return name


def _otherwise(outcome: Outcome, truthy: bool) -> str:
    """Return whether a fixed outcome is surely ``truthy``; an exact test is not sure here."""
    held = outcome_holds(outcome, truthy)
    return "1" if held else "0"


def _sure(exact: str, truthy: bool) -> str:
    """Return the exact test ``exact`` (never NULL) as: surely ``truthy``."""
    if exact in ("0", "1"):
        return exact if truthy else ("1" if exact == "0" else "0")
    return exact if truthy else f"NOT ({exact})"


def _unless_nul(
    test: Callable[[Leaf, bool, Params, str], str],
    leaf: Leaf,
    must: bool,
    params: Params,
    column: str,
    *,
    unsure: str,
) -> str:
    """Return ``test``'s SQL for ``leaf``, or "not sure" if a parameter of it holds NUL.

    Neither database compares such text as JSON Logic does (PostgreSQL text cannot hold NUL;
    SQLite's JSON functions and comparisons stop short of it), so the leaf is left to Python,
    as a row holding NUL is.
    """
    start = len(params)
    sql = test(leaf, must, params, column)
    added = [f"p{i}" for i in range(start, len(params))]
    if any(_holds_nul(params[name]) for name in added):
        for name in added:
            del params[name]
        return unsure
    return sql


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    return isinstance(value, list) and any(_holds_nul(item) for item in value)


# -- SQLite ----------------------------------------------------------------------------------


def _sqlite_path(path: tuple[str, ...]) -> str:
    return "$.attributes" + "".join(f'."{key}"' for key in path)  # keys are identifiers


def _integer_test(value: str, outcome: Compare | OneOf, params: Params) -> str:
    """``outcome`` on an integer ``value`` (the literal made an integer bound where needed)."""
    if isinstance(outcome, OneOf):
        whole = [
            int(n) for n in outcome.literals if isinstance(n, int | float) and float(n).is_integer()
        ]
        if not whole:
            return "0"
        return f"{value} IN ({', '.join(':' + params.add(n) for n in whole)})"
    literal, op = outcome.literal, outcome.op
    assert isinstance(literal, int | float)
    if isinstance(literal, float) and not literal.is_integer():
        if op in ("=", "!="):
            return "0" if op == "=" else "1"
        bound = math.floor(literal) if op in ("<", "<=") else math.ceil(literal)
        op = {"<": "<=", "<=": "<=", ">": ">=", ">=": ">="}[op]  # type: ignore[assignment]
        literal = bound
    return f"{value} {op} :{params.add(int(literal))}"


def _integer_range(
    value: str, outcome: Compare | OneOf, params: Params, truthy: bool
) -> str | None:
    """Return an order comparison on an integer ``value`` as one ``BETWEEN``, or ``None``.

    The safe integers (within 2**53) for which ``outcome`` surely is ``truthy`` form one
    range, so the range check and the comparison are one test that reads ``value`` once (the
    guard and the comparison each read it: 0.6 us a read). Other outcomes give ``None``.
    """
    if not (isinstance(outcome, Compare) and outcome.op in ("<", "<=", ">", ">=")):
        return None
    literal, op = outcome.literal, outcome.op
    assert isinstance(literal, int | float)
    if op in (">", ">="):  # holds from the least integer above (or at) the literal up
        least = math.floor(literal) + 1 if op == ">" else math.ceil(literal)
        low, high = (least, _SAFE) if truthy else (-_SAFE, least - 1)
    else:  # holds up to the greatest integer below (or at) the literal
        greatest = math.ceil(literal) - 1 if op == "<" else math.floor(literal)
        low, high = (-_SAFE, greatest) if truthy else (greatest + 1, _SAFE)
    low, high = max(low, -_SAFE), min(high, _SAFE)
    if low > high:
        return "0"
    return f"{value} BETWEEN :{params.add(low)} AND :{params.add(high)}"


def _text_test(value: str, outcome: Compare | OneOf, params: Params, mark: str) -> str:
    if isinstance(outcome, OneOf):
        texts = [t for t in outcome.literals if isinstance(t, str)]
        if not texts:
            return "0"
        return f"{value} IN ({', '.join(mark.format(params.add(t)) for t in texts)})"
    return f"{value} {outcome.op} {mark.format(params.add(outcome.literal))}"


def _case(kind: str, branches: list[tuple[str, str]], missing: str) -> str:
    """Return ``CASE kind WHEN label THEN sql ... ELSE missing END``, short.

    The labels that give what ``missing`` gives are left to the ``ELSE``: a missing value's
    kind is NULL, which no ``WHEN`` matches.
    """
    whens = " ".join(f"WHEN '{label}' THEN {sql}" for label, sql in branches if sql != missing)
    return f"CASE {kind} {whens} ELSE {missing} END" if whens else missing


def _sqlite_test(leaf: Leaf, must: bool, params: Params, column: str) -> str:
    """Return the SQL that ``leaf`` surely evaluates to a ``must`` (truthy or falsy) value."""
    path = ":" + params.add(_sqlite_path(leaf.path))
    value = f"json_extract({column}, {path})"
    keep = "0"  # a value the SQL cannot judge exactly: nothing is sure
    branches = [
        (label, _otherwise(leaf.outcome(label), must)) for label in ("null", "true", "false")
    ]
    number = leaf.outcome("number")
    if isinstance(number, Compare | OneOf):
        # An integer beyond 2**53 (or beyond 64 bits, which SQLite reads as a real) is left
        # to Python: the range check fails for it.
        ranged = _integer_range(value, number, params, must)
        if ranged is None:
            exact = _sure(_integer_test(value, number, params), must)
            guard = f"{value} BETWEEN -{_SAFE} AND {_SAFE}"
            ranged = f"CASE WHEN {guard} THEN {exact} ELSE {keep} END"
        branches.append(("integer", ranged))
        branches.append(("real", keep))
    else:
        branches.append(("integer", _otherwise(number, must)))
        branches.append(("real", _otherwise(number, must)))
    text = leaf.outcome("text")
    if isinstance(text, Compare | OneOf):
        branches.append(("text", _sure(_text_test(value, text, params, ":{}"), must)))
    else:
        branches.append(("text", _otherwise(text, must)))
    array = leaf.outcome("array")
    if isinstance(array, NonEmpty):
        branches.append(("array", _sure(f"json_array_length({column}, {path}) > 0", must)))
    else:
        branches.append(("array", _otherwise(array, must)))
    branches.append(("object", _otherwise(leaf.outcome("object"), must)))
    missing = _otherwise(leaf.outcome("missing"), must)
    return _case(f"json_type({column}, {path})", branches, missing)


def _sqlite_leaf_verdict(leaf: Leaf, params: Params, column: str) -> str:
    """Return SQL that is 1 where ``leaf`` is surely truthy, 0 surely falsy, NULL elsewhere.

    One ``CASE`` over the value's JSON type, reading the value once per comparison: what
    :func:`_sqlite_test` answers for both truthiness, in one evaluation.
    """
    path = ":" + params.add(_sqlite_path(leaf.path))
    value = f"json_extract({column}, {path})"

    def fixed(kind: Kind) -> str:
        outcome = leaf.outcome(kind)
        for truthy, literal in ((True, "1"), (False, "0")):
            if outcome_holds(outcome, truthy):
                return literal
        return "NULL"

    branches = [(label, fixed(label)) for label in ("null", "true", "false")]
    number = leaf.outcome("number")
    if isinstance(number, Compare | OneOf):
        surely = _integer_range(value, number, params, True)
        if surely is None:
            exact = _integer_test(value, number, params)
            guard = f"{value} BETWEEN -{_SAFE} AND {_SAFE}"
            branches.append(("integer", f"CASE WHEN {guard} THEN {exact} END"))
        else:
            rules_out = _integer_range(value, number, params, False)
            whens = " ".join(
                f"WHEN {test} THEN {verdict}"
                for test, verdict in ((surely, "1"), (rules_out, "0"))
                if test != "0"
            )
            branches.append(("integer", f"CASE {whens} END" if whens else "NULL"))
        branches.append(("real", "NULL"))
    else:
        branches.append(("integer", fixed("number")))
        branches.append(("real", fixed("number")))
    text = leaf.outcome("text")
    if isinstance(text, Compare | OneOf):
        branches.append(("text", f"({_text_test(value, text, params, ':{}')})"))
    else:
        branches.append(("text", fixed("text")))
    if isinstance(leaf.outcome("array"), NonEmpty):
        branches.append(("array", f"(json_array_length({column}, {path}) > 0)"))
    else:
        branches.append(("array", fixed("array")))
    branches.append(("object", fixed("object")))
    return _case(f"json_type({column}, {path})", branches, fixed("missing"))


def sqlite_where(
    check: Prefilter, column: str = "data", *, must: bool = False, params: Params | None = None
) -> tuple[str, dict[str, object]]:
    """Return ``check`` as an SQLite expression over ``column`` and its named parameters.

    The expression is 1 for every row whose account the criteria may pass (``must``: surely
    pass). ``params`` collects the parameters of several expressions of one statement.
    """
    params = Params() if params is None else params
    sql = render(
        check,
        lambda leaf, m: _unless_nul(_sqlite_test, leaf, m, params, column, unsure="0"),
        must=must,
    )
    return sql, dict(params)


def sqlite_verdict(check: Prefilter, column: str = "data") -> tuple[str, dict[str, object]]:
    """Return ``check``'s certain verdict as an SQLite expression over ``column``.

    1 where the criteria surely pass, 0 where they surely fail, NULL elsewhere
    (:func:`~salesprocess.criteria_sql.render_verdict`), with its named parameters.
    """

    def rendered() -> tuple[str, dict[str, object]]:
        params = Params()
        sql = render_verdict(
            check,
            lambda leaf, m: _unless_nul(_sqlite_test, leaf, m, params, column, unsure="0"),
            leaf_verdict=lambda leaf: _unless_nul(
                lambda lf, _m, ps, col: _sqlite_leaf_verdict(lf, ps, col),
                leaf, True, params, column, unsure="NULL",
            ),
        )  # fmt: skip
        return sql, dict(params)

    return _recent(check, f"sqlite verdict over {column}", rendered)


# -- PostgreSQL ------------------------------------------------------------------------------


def _pg_number(outcome: Compare | OneOf, value: str, params: Params) -> str:
    def literal(n: object) -> str:
        exact = Decimal(repr(n)) if isinstance(n, float) else n
        return f"%({params.add(exact)})s::numeric"

    if isinstance(outcome, OneOf):
        numbers = [n for n in outcome.literals if not isinstance(n, str)]
        if not numbers:
            return "0"
        return f"{value} IN ({', '.join(literal(n) for n in numbers)})"
    return f"{value} {outcome.op} {literal(outcome.literal)}"


def _pg_bool(sql: str) -> str:
    return {"1": "TRUE", "0": "FALSE"}.get(sql, sql)


def _postgres_test(leaf: Leaf, must: bool, params: Params, column: str) -> str:
    path = f"%({params.add(['attributes', *leaf.path])})s::text[]"
    found = f"({column} #> {path})"
    raw = f"({column} #>> {path})"
    keep = "FALSE"  # a value the SQL cannot judge exactly: nothing is sure

    def otherwise(kind: Kind) -> str:
        return _pg_bool(_otherwise(leaf.outcome(kind), must))

    true, false = otherwise("true"), otherwise("false")
    branches = [
        ("null", otherwise("null")),
        (
            "boolean",
            true if true == false else f"CASE WHEN {raw} = 'true' THEN {true} ELSE {false} END",
        ),
    ]
    number = leaf.outcome("number")
    if isinstance(number, Compare | OneOf):
        exact = _pg_bool(_sure(_pg_number(number, f"{raw}::numeric", params), must))
        branches.append(
            ("number", f"CASE WHEN abs({raw}::numeric) <= {_SAFE} THEN {exact} ELSE {keep} END")
        )
    else:
        branches.append(("number", otherwise("number")))
    text = leaf.outcome("text")
    if isinstance(text, Compare | OneOf):
        exact = _pg_bool(_sure(_text_test(f'{raw} COLLATE "C"', text, params, "%({})s"), must))
        branches.append(
            ("string", f"CASE WHEN strpos({found}::text, '\\u') = 0 THEN {exact} ELSE {keep} END")
        )
    else:
        branches.append(("string", otherwise("text")))
    array = leaf.outcome("array")
    if isinstance(array, NonEmpty):
        branches.append(("array", _sure(f"json_array_length({found}) > 0", must)))
    else:
        branches.append(("array", otherwise("array")))
    branches.append(("object", otherwise("object")))
    return _case(f"json_typeof({found})", branches, otherwise("missing"))


def postgres_where(
    check: Prefilter, column: str = "data", *, must: bool = False, params: Params | None = None
) -> tuple[str, dict[str, object]]:
    """Return ``check`` as a PostgreSQL condition over the ``json`` ``column``, with parameters.

    The condition is true for every row whose account the criteria may pass (``must``: surely
    pass). ``params`` collects the parameters of several conditions of one statement.
    """
    params = Params() if params is None else params
    sql = render(
        check,
        lambda leaf, m: _unless_nul(_postgres_test, leaf, m, params, column, unsure="FALSE"),
        true="TRUE",
        false="FALSE",
        must=must,
    )
    if sql in ("TRUE", "FALSE"):
        return sql, dict(params)
    # PostgreSQL's JSON functions refuse a whole document holding a \u0000 escape (text cannot
    # hold NUL): such a row is not judged in SQL, but kept for Python.
    unsure = "FALSE" if must else "TRUE"
    return f"CASE WHEN {NUL_ESCAPE.format(column)} THEN {unsure} ELSE ({sql}) END", dict(params)


def screening_json(screening: Screening) -> str:
    """Return a screening as the JSON an account's ``screenings`` array holds it in."""
    return json.dumps(converter.unstructure(screening), ensure_ascii=False, separators=(",", ":"))


#: The last few renderings, by the identity of the prefilter and what was rendered: a bulk
#: screen asks for the same one once per page.
_RECENT: list[tuple[Prefilter, str, object]] = []


def _recent(check: Prefilter, kind: str, render: Callable[[], _Rendered]) -> _Rendered:
    """Return ``render()``, or what it returned lately for this very ``check`` and ``kind``."""
    for seen, seen_kind, rendered in list(_RECENT):
        if seen is check and seen_kind == kind:
            return cast("_Rendered", rendered)
    fresh = render()
    _RECENT[:] = [(check, kind, fresh), *_RECENT[:7]]
    return fresh


def verdicts(
    check: Prefilter, dialect: Literal["sqlite", "postgres"]
) -> tuple[str, str, dict[str, object]]:
    """Return ``check`` as "may pass" and "surely passes" in ``dialect``, with their parameters."""

    def rendered() -> tuple[str, str, dict[str, object]]:
        params = Params()
        where = sqlite_where if dialect == "sqlite" else postgres_where
        may, _ = where(check, params=params)
        must, _ = where(check, must=True, params=params)
        return may, must, dict(params)

    return _recent(check, f"{dialect} verdicts", rendered)
