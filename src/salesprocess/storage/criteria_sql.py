r"""The criteria prefilter (:mod:`salesprocess.criteria_sql`) in SQLite's and PostgreSQL's SQL.

Each :class:`~salesprocess.criteria_sql.Test` becomes a ``CASE`` over the JSON type of the
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
from decimal import Decimal
from typing import Final

from salesprocess.account import Screening
from salesprocess.criteria_sql import (
    Compare,
    Kind,
    NonEmpty,
    OneOf,
    Outcome,
    Prefilter,
    Test,
    outcome_holds,
    render,
)
from salesprocess.storage.serialise import converter

__all__ = ["Params", "postgres_where", "screening_json", "sqlite_where"]

_SAFE: Final = 2**53 - 1


class Params(dict[str, object]):
    """Named parameters of one statement, named ``p0``, ``p1``, ... as they are added."""

    def add(self, value: object) -> str:
        """Add ``value``; return its name."""
        name = f"p{len(self)}"
        self[name] = value
        return name


def _fixed(outcome: Outcome, must: bool) -> str | None:
    held = outcome_holds(outcome, must)
    return None if held is None else ("1" if held else "0")


def _otherwise(outcome: Outcome, must: bool) -> str:
    """Return the fixed verdict, or keep the row when the SQL cannot judge exactly."""
    fixed = _fixed(outcome, must)
    return fixed if fixed is not None else ("0" if must else "1")


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


def _text_test(value: str, outcome: Compare | OneOf, params: Params, mark: str) -> str:
    if isinstance(outcome, OneOf):
        texts = [t for t in outcome.literals if isinstance(t, str)]
        if not texts:
            return "0"
        return f"{value} IN ({', '.join(mark.format(params.add(t)) for t in texts)})"
    return f"{value} {outcome.op} {mark.format(params.add(outcome.literal))}"


def _sqlite_test(leaf: Test, must: bool, params: Params, column: str) -> str:
    path = ":" + params.add(_sqlite_path(leaf.path))
    value = f"json_extract({column}, {path})"
    branches = []
    for kind, label in (("missing", "missing"), ("null", "null"), ("true", "true"),
                        ("false", "false")):  # fmt: skip
        branches.append(f"WHEN '{label}' THEN {_otherwise(leaf.outcome(kind), must)}")  # type: ignore[arg-type]
    number = leaf.outcome("number")
    if isinstance(number, Compare | OneOf):
        exact = _integer_test(value, number, params)
        guard = f"typeof({value}) = 'integer' AND {value} BETWEEN -{_SAFE} AND {_SAFE}"
        keep = "0" if must else "1"
        branches.append(f"WHEN 'integer' THEN CASE WHEN {guard} THEN {exact} ELSE {keep} END")
        branches.append(f"WHEN 'real' THEN {keep}")
    else:
        branches.append(f"WHEN 'integer' THEN {_otherwise(number, must)}")
        branches.append(f"WHEN 'real' THEN {_otherwise(number, must)}")
    text = leaf.outcome("text")
    if isinstance(text, Compare | OneOf):
        branches.append(f"WHEN 'text' THEN {_text_test(value, text, params, ':{}')}")
    else:
        branches.append(f"WHEN 'text' THEN {_otherwise(text, must)}")
    array = leaf.outcome("array")
    if isinstance(array, NonEmpty):
        branches.append(f"WHEN 'array' THEN json_array_length({column}, {path}) > 0")
    else:
        branches.append(f"WHEN 'array' THEN {_otherwise(array, must)}")
    branches.append(f"WHEN 'object' THEN {_otherwise(leaf.outcome('object'), must)}")
    kind = f"coalesce(json_type({column}, {path}), 'missing')"
    return f"CASE {kind} {' '.join(branches)} ELSE {'0' if must else '1'} END"


def sqlite_where(
    check: Prefilter, column: str = "data", *, must: bool = False, params: Params | None = None
) -> tuple[str, dict[str, object]]:
    """Return ``check`` as an SQLite expression over ``column`` and its named parameters.

    The expression is 1 for every row whose account the criteria may pass (``must``: surely
    pass). ``params`` collects the parameters of several expressions of one statement.
    """
    params = Params() if params is None else params
    sql = render(check, lambda leaf, m: _sqlite_test(leaf, m, params, column), must=must)
    return sql, dict(params)


# -- PostgreSQL ------------------------------------------------------------------------------


def _pg_number(outcome: Compare | OneOf, value: str, params: Params) -> str:
    def literal(n: object) -> str:
        exact = Decimal(repr(n)) if isinstance(n, float) else n
        return f"%({params.add(exact)})s::numeric"

    if isinstance(outcome, OneOf):
        numbers = [n for n in outcome.literals if not isinstance(n, str)]
        if not numbers:
            return "FALSE"
        return f"{value} IN ({', '.join(literal(n) for n in numbers)})"
    return f"{value} {outcome.op} {literal(outcome.literal)}"


def _pg_bool(sql: str) -> str:
    return {"1": "TRUE", "0": "FALSE"}.get(sql, sql)


def _postgres_test(leaf: Test, must: bool, params: Params, column: str) -> str:
    path = f"%({params.add(['attributes', *leaf.path])})s::text[]"
    found = f"({column} #> {path})"
    raw = f"({column} #>> {path})"
    keep = "FALSE" if must else "TRUE"

    def otherwise(kind: Kind) -> str:
        return _pg_bool(_otherwise(leaf.outcome(kind), must))

    branches = [
        f"WHEN 'missing' THEN {otherwise('missing')}",
        f"WHEN 'null' THEN {otherwise('null')}",
        f"WHEN 'boolean' THEN CASE WHEN {raw} = 'true' THEN {otherwise('true')} "
        f"ELSE {otherwise('false')} END",
    ]
    number = leaf.outcome("number")
    if isinstance(number, Compare | OneOf):
        exact = _pg_number(number, f"{raw}::numeric", params)
        branches.append(
            f"WHEN 'number' THEN CASE WHEN abs({raw}::numeric) <= {_SAFE} THEN {exact} "
            f"ELSE {keep} END"
        )
    else:
        branches.append(f"WHEN 'number' THEN {otherwise('number')}")
    text = leaf.outcome("text")
    if isinstance(text, Compare | OneOf):
        exact = _pg_bool(_text_test(f'{raw} COLLATE "C"', text, params, "%({})s"))
        branches.append(
            f"WHEN 'string' THEN CASE WHEN strpos({found}::text, '\\u') = 0 THEN {exact} "
            f"ELSE {keep} END"
        )
    else:
        branches.append(f"WHEN 'string' THEN {otherwise('text')}")
    array = leaf.outcome("array")
    if isinstance(array, NonEmpty):
        branches.append(f"WHEN 'array' THEN json_array_length({found}) > 0")
    else:
        branches.append(f"WHEN 'array' THEN {otherwise('array')}")
    branches.append(f"WHEN 'object' THEN {otherwise('object')}")
    kind = f"coalesce(json_typeof({found}), 'missing')"
    return f"CASE {kind} {' '.join(branches)} ELSE {keep} END"


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
        lambda leaf, m: _postgres_test(leaf, m, params, column),
        true="TRUE",
        false="FALSE",
        must=must,
    )
    return sql, dict(params)


def screening_json(screening: Screening) -> str:
    """Return a screening as the JSON an account's ``screenings`` array holds it in."""
    return json.dumps(converter.unstructure(screening), ensure_ascii=False, separators=(",", ":"))
