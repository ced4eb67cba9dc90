"""JSON Logic, compiled once into a Python function.

Marketing writes prospect criteria as JSON Logic (https://jsonlogic.com), the format that
query-builder UIs export. A screen runs the same criteria over thousands of accounts, so this
module validates a document *once* and turns it into a plain Python function: evaluating it never
walks the JSON again, and every mistake the document can make is reported at load time as a
:class:`~salesprocess.errors.CriteriaError` that names the JSON path of the fault.

>>> rule = compile_logic({"and": [{">=": [{"var": "employees"}, 50]},
...                               {"in": [{"var": "industry"}, ["retail", "logistics"]]}]})
>>> rule({"employees": 120, "industry": "retail"})
True
>>> rule({"employees": "12", "industry": "retail"})
False
>>> compile_logic({"and": [True, {">=": [1]}]})
Traceback (most recent call last):
...
salesprocess.errors.CriteriaError: '>=' takes at least 2 operands, got 1 (at $.and[1]['>='])
>>> from decimal import Decimal
>>> compile_logic({">=": [{"var": "budget"}, 10000.1]})({"budget": Decimal("10000.1")})
True

**Semantics.** The JSON Logic specification as the community compatibility suites
(``json-logic/compat-tables``, all 48 files, 1,138 cases) define it; where they are silent,
values behave as in JavaScript, like the classic ``json-logic-js``:

* Errors are values of the specification: ``NaN`` (arithmetic or a comparison without a number),
  ``Invalid Arguments`` (operands of the wrong number or kind) and whatever ``throw`` throws.
  Evaluation raises them as :class:`CriteriaError` with ``error_type`` set (``"NaN"``,
  ``"Invalid Arguments"``, the thrown type); ``try`` catches them. What the document itself
  shows to be invalid (``{"%": [1]}``, ``{"and": true}``) is refused at load time, with
  ``error_type`` ``"Invalid Arguments"``, wherever it stands.
* ``<``, ``<=``, ``>``, ``>=`` compare two strings as strings (by code point) and anything else
  as numbers (``"5"`` is 5, ``true`` 1, ``null`` 0). A string that is not a number against a
  number, or an array or object on either side, is ``NaN``; against ``null`` it is simply false.
  With three or more operands they chain (``{"<": [0, x, 10]}`` is a "between") and stop at the
  first false pair without evaluating the rest.
* ``==`` / ``!=`` are loose equality: numbers, numeric strings and booleans meet as numbers
  (``1 == "1"``, ``1 == true``), ``null`` equals ``null``, ``0`` and ``false``; a string that is
  not a number against a number or boolean, or an array or object, is ``NaN``. ``===`` /
  ``!==`` are strict (no coercion; arrays and objects are equal only to themselves). All four
  chain pairwise, lazily, like the comparisons.
* Truthiness: ``false``, ``null``, ``0``, ``NaN``, ``""`` and the empty array are falsy;
  everything else (``"0"``, ``{}``) is truthy. ``and`` / ``or`` return the deciding operand and
  evaluate no further; ``{"and": []}`` and ``{"or": []}`` are ``false``. ``??`` returns the first
  operand that is not ``null``.
* Arithmetic (``+ - * / %``, ``max``, ``min``) coerces strings, booleans and ``null`` to numbers.
  Integers stay integers while exact (``{"/": [4, 2]}`` is ``2``); beyond 2**53 they become
  floats, as JavaScript stores them. ``NaN`` (``"abc" + 1``, an array or object as an operand,
  division or modulo by zero) raises (a float overflow still gives infinity, as in JavaScript).
* ``decimal.Decimal`` values in the data are numbers, and exact: where a Decimal meets a float,
  in a comparison (``<`` ... ``>=``, ``==``, ``===``, ``!=``, ``!==``, ``in``), in arithmetic or
  in ``max`` / ``min``, the float stands for the decimal number it is written as (its shortest
  repr), so ``0.1`` equals ``Decimal("0.1")`` and ``10000.1 >= Decimal("10000.1")``, never
  their binary approximations. Arithmetic keeps them Decimal (``1.2`` becomes
  ``Decimal("1.2")``); ints compare with them exactly as they are.
* Values that are not JSON types behave as their JSON primitive: other real numbers as numbers,
  ``date`` / ``datetime`` / ``time`` as their ISO 8601 text (so they compare with ISO date
  strings), ``Enum`` members as their value, sets as arrays, anything else as ``str(value)``.
* ``var`` reads a dotted path (``"items.0.qty"``) through any :class:`~collections.abc.Mapping`
  (a fast path for ``dict``) and sequences by index; a key present with the value ``None``
  gives ``None``, only an absent one gives the default. Strings are not indexed. ``val`` takes
  the path as a list of keys, never split at dots (``{"val": ["a", "b.c"]}``); a first element
  ``[n]`` climbs ``n`` scopes: inside ``map``, ``filter``, ``reduce``, ``all``, ``some`` and
  ``none`` level 1 is the iteration (``{"index": i}``) and level 2 the data the iteration was
  called on, and so on up; inside a ``try`` fallback the data is the error object and level 2
  the data of the ``try``; levels beyond the top give the top. ``exists`` tells whether a
  ``val`` path is present (even as ``null``).
* ``map``, ``filter`` and ``reduce`` over ``null`` (or anything that is not an array) give
  ``[]`` / the initial value; ``all``, ``some`` and ``none`` raise ``Invalid Arguments`` there.
  ``all`` of an empty array is false.
* An operand that is not an array is one operand (``{"!": {"var": "x"}}``, as in json-logic-js),
  except that the arithmetic operators, ``max``, ``min``, ``cat``, ``merge``, ``missing``,
  ``val`` and ``exists`` take their operand list from logic (``{"max": {"var": "prices"}}``
  is the largest price). ``if``, ``?:``, ``??``, ``and``, ``or``, the comparisons and the
  iterators need a literal array of operands. ``preserve`` returns its argument unevaluated.

**Operators:** ``var``, ``val``, ``exists``, ``missing``, ``missing_some``, ``if``, ``?:``,
``??``, ``==``, ``===``, ``!=``, ``!==``, ``!``, ``!!``, ``or``, ``and``, ``>``, ``>=``, ``<``,
``<=``, ``max``, ``min``, ``+``, ``-``, ``*``, ``/``, ``%``, ``map``, ``filter``, ``reduce``,
``all``, ``none``, ``some``, ``merge``, ``in``, ``cat``, ``substr``, ``throw``, ``try``,
``preserve``. Arities are checked at load time; where implementations disagree on extra
operands (``{"/": [8, 2, 2]}``) the community standard is followed: the operation folds left.

**Limits:** a document may nest at most ``max_depth`` containers deep (default 64) and hold at most
``max_nodes`` values (default 10,000); both are checked before anything deeper is looked at, so a
hostile document costs little. What one evaluation may cost is bounded by a :class:`Budget` (steps
and size): counted at compile time where the document decides (iterations over literal arrays),
by a meter at run time where the data does (iterations over its arrays, the size of text and
arrays read or built); going over is a :class:`CriteriaError` naming the path. Text longer than
1,000 characters is not read as a number (``NaN``): no JSON number needs that many.

>>> compile_logic({"map": [list(range(1000)), {"map": [list(range(1000)), 1]}]})
Traceback (most recent call last):
...
salesprocess.errors.CriteriaError: the document needs more than the budget of 100000 steps (at least ...) (at $.map)
"""  # noqa: E501

from __future__ import annotations

import math
import re
import reprlib
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from numbers import Integral, Real
from types import CodeType
from typing import Any, Final, NamedTuple

import attrs

from salesprocess.errors import CriteriaError, ValidationError

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_NODES",
    "OPERATORS",
    "Budget",
    "CompiledLogic",
    "compile_logic",
    "lookup",
    "to_string",
    "truthy",
]

CompiledLogic = Callable[[object], object]
"""What :func:`compile_logic` returns: a function from data to the JSON Logic result."""

DEFAULT_MAX_DEPTH: Final = 64
"""How many containers deep a document may nest, by default."""

DEFAULT_MAX_NODES: Final = 10_000
"""How many JSON values (objects, arrays and scalars) a document may hold, by default."""

_MAX_DEPTH_CAP: Final = 256  # beyond this the compiler itself would need a deep Python stack

# --------------------------------------------------------------------------------------------
# Runtime: JavaScript-like values. Everything here is called by the generated code.
# --------------------------------------------------------------------------------------------

_NULL, _BOOL, _NUM, _STR, _ARR, _OBJ = range(6)
_NAN: Final = math.nan
_INF: Final = math.inf
_SAFE: Final = 2**53  # JavaScript's largest exact integer
_NUMT: Final[frozenset[type]] = frozenset({int, float})
_NOT_INDEXABLE = (str, bytes, bytearray, memoryview)


class _Missing:
    """The marker for "no such key" (JavaScript's ``undefined``), distinct from ``None``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISS: Final = _Missing()


def _norm(v: object) -> tuple[int, Any]:  # noqa: PLR0911 - one branch per JSON type
    """Return the JavaScript type of ``v`` and ``v`` as that type's Python value."""
    c = v.__class__
    if c is str:
        return _STR, v
    if c is int or c is float:
        return _NUM, v
    if c is bool:
        return _BOOL, v
    if v is None:
        return _NULL, None
    if c is list or c is tuple:
        return _ARR, v
    if c is dict:
        return _OBJ, v
    return _norm_foreign(v)


def _norm_foreign(v: object) -> tuple[int, Any]:  # noqa: PLR0911 - one branch per kind
    """Classify a value that is not a plain JSON type (see the module docstring)."""
    if isinstance(v, str):
        return _STR, str.__str__(v)
    if isinstance(v, Decimal):
        return _NUM, (_NAN if v.is_nan() else v)
    if isinstance(v, int):  # IntEnum, IntFlag and other int subclasses
        return _NUM, int(v)
    if isinstance(v, float):
        return _NUM, float(v)
    if isinstance(v, Enum):
        return _norm(v.value)
    if isinstance(v, Integral):
        return _NUM, int(v)
    if isinstance(v, Real):
        return _NUM, float(v)
    if isinstance(v, (datetime, date, time)):
        return _STR, v.isoformat()
    if isinstance(v, Mapping):
        return _OBJ, v
    if isinstance(v, (Sequence, AbstractSet)) and not isinstance(v, _NOT_INDEXABLE):
        return _ARR, v
    return _STR, str(v)


def truthy(value: object) -> bool:  # noqa: PLR0911 - fast paths first
    """Return whether JSON Logic counts ``value`` as true.

    Falsy are ``False``, ``None``, zero, ``NaN``, the empty string and the empty array; an empty
    object and the string ``"0"`` are truthy (unlike in Python).

    >>> [truthy(v) for v in (0, "0", "", [], {}, None, "no")]
    [False, True, False, False, True, False, True]
    """
    if value is True:
        return True
    if value is False or value is None:
        return False
    c = value.__class__
    if c is str or c is int or c is list or c is tuple:
        return bool(value)
    if c is float:
        return value != 0.0 and not math.isnan(value)  # type: ignore[arg-type]
    if c is dict:
        return True
    kind, v = _norm(value)
    if kind == _NUM:
        return not _is_nan(v) and bool(v != 0)
    if kind in (_STR, _ARR):
        return len(v) > 0
    return kind == _OBJ or (kind == _BOOL and bool(v))


_T = truthy


def _js_digits(negative: bool, digits: str, point: int) -> str:
    """Format ``0.digits * 10**point`` as JavaScript's ``Number.prototype.toString`` does."""
    sign = "-" if negative else ""
    k = len(digits)
    if k <= point <= 21:
        return sign + digits + "0" * (point - k)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    e = point - 1
    exp = ("e+" if e >= 0 else "e-") + str(abs(e))
    if k == 1:
        return sign + digits + exp
    return sign + digits[0] + "." + digits[1:] + exp


def _is_nan(x: Any) -> bool:
    """Tell whether a number (float or Decimal) is NaN."""
    return bool(x != x)  # noqa: PLR0124 - NaN is the one value unequal to itself


def _float_str(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if x in (_INF, -_INF):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) < _SAFE:
        return str(int(x))
    mantissa, _, exponent = repr(x).partition("e")  # repr is the shortest round trip, as in JS
    negative = mantissa.startswith("-")
    whole, _, fraction = mantissa.lstrip("-").partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    return _js_digits(negative, stripped.rstrip("0"), point)


def _decimal_str(d: Decimal) -> str:
    if d.is_nan():
        return "NaN"
    if d.is_infinite():
        return "-Infinity" if d.is_signed() else "Infinity"
    if d.is_zero():
        return "0"
    sign, digit_tuple, exponent = d.as_tuple()
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    point = len(digits) + int(exponent)
    return _js_digits(bool(sign), digits.rstrip("0"), point)


def _to_float(i: int) -> float:
    try:
        return float(i)
    except OverflowError:
        return _INF if i > 0 else -_INF


def _num_str(x: Any) -> str:
    if x.__class__ is int:
        return str(x) if -(10**21) < x < 10**21 else _float_str(_to_float(x))
    if isinstance(x, Decimal):
        return _decimal_str(x)
    return _float_str(float(x))


def to_string(value: object) -> str:
    """Return ``value`` as JavaScript's ``String(value)`` would (used by ``cat`` and ``in``).

    >>> [to_string(v) for v in (None, True, 1.0, 0.5, 1e21, [1, [2, None]], {})]
    ['null', 'true', '1', '0.5', '1e+21', '1,2,', '[object Object]']
    """
    kind, v = _norm(value)
    if kind == _STR:
        return str(v)
    if kind == _NUM:
        return _num_str(v)
    if kind == _BOOL:
        return "true" if v else "false"
    if kind == _NULL:
        return "null"
    if kind == _ARR:
        return ",".join("" if e is None else to_string(e) for e in v)
    return "[object Object]"


_JS_SPACE: Final = " \t\n\v\f\r\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"  # noqa: E501
# Possessive quantifiers: no backtracking, so a long hostile string costs linear time.
_INT_TEXT: Final = re.compile(r"[+-]?+[0-9]++")
_DEC_TEXT: Final = re.compile(
    r"[+-]?+(?:Infinity|(?:[0-9]++(?:\.[0-9]*+)?+|\.[0-9]++)(?:[eE][+-]?+[0-9]++)?+)"
)
_RADIX_TEXT: Final = {
    "x": (16, re.compile(r"[0-9a-fA-F]++")),
    "o": (8, re.compile(r"[0-7]++")),
    "b": (2, re.compile(r"[01]++")),
}


def _parse_num(text: str) -> int | float:
    """JavaScript's ``Number(text)``: decimal, ``Infinity``, ``0x``/``0o``/``0b``; else NaN."""
    if len(text) > _MAX_NUMBER_TEXT:  # parsing costs its length, and no JSON number needs it
        return _NAN
    t = text.strip(_JS_SPACE)
    if not t:
        return 0
    if _INT_TEXT.fullmatch(t):
        return int(t) if len(t) <= 16 else float(t)
    if _DEC_TEXT.fullmatch(t):
        return float(t)
    if len(t) > 2 and t[0] == "0" and t[1] in "xXoObB":
        base, pattern = _RADIX_TEXT[t[1].lower()]
        if pattern.fullmatch(t, 2):
            n = int(t[2:], base)
            return n if n <= _SAFE else _to_float(n)
    return _NAN


def _num(value: object) -> Any:
    """JavaScript's ``Number(value)``: int, float or Decimal; NaN when it is not a number."""
    kind, v = _norm(value)
    if kind == _NUM:
        return v
    if kind == _STR:
        return _parse_num(v)
    if kind == _BOOL:
        return 1 if v else 0
    if kind == _NULL:
        return 0
    if kind == _ARR:
        return _parse_num(to_string(v))
    return _NAN


# -- comparison -------------------------------------------------------------------------------


def _mix(x: Any, y: Any) -> tuple[Any, Any]:
    """Make a float and a Decimal meet as Decimals (through the float's shortest repr).

    A float stands for the decimal number it is written as (``0.1`` is ``Decimal("0.1")``, not
    the binary value ``0.1000000000000000055...``), so comparisons and arithmetic with Decimal
    amounts are exact. Callers test ``(x.__class__ is float) is not (y.__class__ is float)``
    first, which keeps the float-and-int paths free of the Decimal checks.
    """
    if x.__class__ is float and isinstance(y, Decimal):
        return Decimal(repr(x)), y
    if y.__class__ is float and isinstance(x, Decimal):
        return x, Decimal(repr(y))
    return x, y


def _num_eq(x: Any, y: Any) -> bool:
    """Compare two numbers (int, float or Decimal) for equality, a Decimal exactly."""
    if (x.__class__ is float) is not (y.__class__ is float):
        x, y = _mix(x, y)
    return bool(x == y)


_NAN_TYPE: Final = "NaN"
_INVALID: Final = "Invalid Arguments"


def _nan_error(message: str, path: str) -> CriteriaError:
    """Make the specification's ``NaN`` error: no number where one is needed."""
    return CriteriaError(message, path=path, error_type=_NAN_TYPE)


def _invalid(message: str, path: str) -> CriteriaError:
    """Make the specification's ``Invalid Arguments`` error: operands of a wrong number or kind."""
    return CriteriaError(message, path=path, error_type=_INVALID)


def _as_number(kind: int, v: Any) -> Any:
    """Return a scalar as a number for comparisons: strings parsed (NaN if not a number)."""
    if kind == _STR:
        return _parse_num(v)
    if kind == _BOOL:
        return 1 if v else 0
    if kind == _NULL:
        return 0
    return v


def _incomparable(a: object, b: object, path: str) -> CriteriaError:
    return _nan_error(f"cannot compare {_show(a)} with {_show(b)}", path)


def _rel(a: object, b: object, path: str) -> tuple[Any, Any] | None:
    """Operands of a relational comparison, or ``None`` when the answer is simply false.

    Two strings compare as strings; otherwise both are numbers. An array or object, or a string
    that is not a number (unless the other side is ``null``), is the ``NaN`` error.
    """
    ka, x = _norm(a)
    kb, y = _norm(b)
    if ka == _STR and kb == _STR:
        return x, y
    if ka >= _ARR or kb >= _ARR:
        raise _incomparable(a, b, path)
    if ka != _NUM:
        x = _as_number(ka, x)
    if kb != _NUM:
        y = _as_number(kb, y)
    if _is_nan(x) or _is_nan(y):
        if (ka == _STR and _is_nan(x)) or (kb == _STR and _is_nan(y)):
            if _NULL in (ka, kb):
                return None
            raise _incomparable(a, b, path)
        return None  # a NaN number in the data: false, as IEEE 754 says
    if (x.__class__ is float) is not (y.__class__ is float):
        return _mix(x, y)
    return x, y


def _lt(a: Any, b: Any, path: str) -> bool:
    if type(a) in _NUMT and type(b) in _NUMT:
        return bool(a < b)
    p = _rel(a, b, path)
    return p is not None and bool(p[0] < p[1])


def _le(a: Any, b: Any, path: str) -> bool:
    if type(a) in _NUMT and type(b) in _NUMT:
        return bool(a <= b)
    p = _rel(a, b, path)
    return p is not None and bool(p[0] <= p[1])


def _gt(a: Any, b: Any, path: str) -> bool:
    if type(a) in _NUMT and type(b) in _NUMT:
        return bool(a > b)
    p = _rel(a, b, path)
    return p is not None and bool(p[0] > p[1])


def _ge(a: Any, b: Any, path: str) -> bool:
    if type(a) in _NUMT and type(b) in _NUMT:
        return bool(a >= b)
    p = _rel(a, b, path)
    return p is not None and bool(p[0] >= p[1])


def _seq(a: object, b: object) -> bool:
    """Strict equality (``===``): same JSON type and value; containers only to themselves."""
    ka, x = _norm(a)
    kb, y = _norm(b)
    if ka != kb:
        return False
    if ka in (_ARR, _OBJ):
        return a is b
    if ka == _NUM:
        return _num_eq(x, y)
    return bool(x == y)


def _leq(a: object, b: object, path: str) -> bool:
    """Loose equality (``==``) as the specification has it.

    Same types compare as they are; ``null`` equals ``null``, ``0`` and ``false`` (and no
    string); numbers, strings and booleans otherwise meet as numbers. An array or object, or a
    string that is not a number against a number or boolean, is the ``NaN`` error.
    """
    ka, x = _norm(a)
    kb, y = _norm(b)
    if ka >= _ARR or kb >= _ARR:
        raise _nan_error(f"cannot test {_show(a)} and {_show(b)} for equality", path)
    if ka == kb:
        return _num_eq(x, y) if ka == _NUM else bool(x == y)
    if _NULL in (ka, kb):
        kind, other = (kb, y) if ka == _NULL else (ka, x)
        if kind == _NUM:
            return _num_eq(other, 0)
        return kind == _BOOL and not other
    x = _as_number(ka, x)
    y = _as_number(kb, y)
    if (ka == _STR and _is_nan(x)) or (kb == _STR and _is_nan(y)):
        raise _nan_error(f"cannot test {_show(a)} and {_show(b)} for equality", path)
    return _num_eq(x, y)


def _in_arr(needle: object, haystack: Iterable[object]) -> bool:
    if needle.__class__ is str:
        for e in haystack:
            if e.__class__ is str:
                if e == needle:
                    return True
            elif _seq(needle, e):
                return True
        return False
    return any(_seq(needle, e) for e in haystack)


def _in_str(needle: object, haystack: str) -> bool:
    return to_string(needle) in haystack


def _in(needle: object, haystack: object) -> bool:
    kind, h = _norm(haystack)
    if kind == _STR:
        return to_string(needle) in h
    if kind == _ARR:
        return _in_arr(needle, h)
    return False


# -- arithmetic -------------------------------------------------------------------------------


# Error messages show values through a bounded repr: a message about a megabyte of data must
# cost no more than one about a number (an error inside an iteration is made once per item).
_REPR: Final = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 64
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = 8
_REPR.maxdict = 6
_REPR.maxlevel = 3


def _show(value: object) -> str:
    try:
        text = _REPR.repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _anum(value: object, path: str) -> Any:
    """Return an arithmetic operand: int (within +-2**53), float or Decimal; raise on NaN."""
    c = value.__class__
    if c is int:
        return value if -_SAFE <= value <= _SAFE else _to_float(value)  # type: ignore[operator, arg-type]
    if c is float and not math.isnan(value):  # type: ignore[arg-type]
        return value
    kind, v = _norm(value)
    if kind == _BOOL:
        return 1 if v else 0
    if kind == _NULL:
        return 0
    if kind in (_ARR, _OBJ):
        raise _nan_error(f"cannot do arithmetic on {_show(value)}", path)
    x = _parse_num(v) if kind == _STR else v
    if _is_nan(x):
        raise _nan_error(f"{_show(value)} is not a number", path)
    if x.__class__ is int and not -_SAFE <= x <= _SAFE:
        return _to_float(x)
    return x


def _step(r: Any, path: str) -> Any:
    """Normalise an arithmetic result: big ints become floats, NaN raises."""
    if r.__class__ is int:
        return r if -_SAFE <= r <= _SAFE else _to_float(r)
    if _is_nan(r):
        raise _nan_error("the result is not a number", path)
    return r


def _arith_failed(error: ArithmeticError, path: str) -> CriteriaError:
    return _nan_error(f"arithmetic failed: {type(error).__name__}", path)


def _tonum(value: object, path: str) -> Any:
    return _anum(value, path)


def _fold(args: tuple[object, ...], path: str, combine: Callable[[Any, Any, str], Any]) -> Any:
    """Combine the operands left to right (JavaScript's order), each made a number first."""
    try:
        r = _anum(args[0], path)
        for a in args[1:]:
            x, y = _mix(r, _anum(a, path))
            r = combine(x, y, path)
        return _step(r, path)
    except ArithmeticError as e:
        raise _arith_failed(e, path) from e


def _add(x: Any, y: Any, path: str) -> Any:
    return _step(x + y, path)


def _multiply(x: Any, y: Any, path: str) -> Any:
    return _step(x * y, path)


def _subtract(x: Any, y: Any, path: str) -> Any:
    return _step(x - y, path)


def _divide(x: Any, y: Any, path: str) -> Any:
    if y == 0:
        raise _nan_error("division by zero", path)
    if x.__class__ is int and y.__class__ is int:
        q, rem = divmod(x, y)
        return q if rem == 0 else x / y
    return _step(x / y, path)


def _remainder(x: Any, y: Any, path: str) -> Any:
    if y == 0:
        raise _nan_error("modulo by zero", path)
    if x.__class__ is int and y.__class__ is int:
        m = abs(x) % abs(y)
        return -m if x < 0 else m  # JavaScript: the sign of the dividend
    if isinstance(x, Decimal) or isinstance(y, Decimal):
        return _step(Decimal(x) % Decimal(y), path)  # Decimal's % takes the dividend's sign
    try:
        return math.fmod(x, y)
    except ValueError:  # fmod(inf, y)
        raise _nan_error("the result is not a number", path) from None


def _plus(args: tuple[object, ...], path: str) -> Any:
    return _fold(args, path, _add) if args else 0


def _times(args: tuple[object, ...], path: str) -> Any:
    return _fold(args, path, _multiply) if args else 1


def _neg(value: object, path: str) -> Any:
    try:
        return _step(-_anum(value, path), path)  # not 0 - x: negation keeps -0.0
    except ArithmeticError as e:
        raise _arith_failed(e, path) from e


def _minus(args: tuple[object, ...], path: str) -> Any:
    return _neg(args[0], path) if len(args) == 1 else _fold(args, path, _subtract)


def _div(args: tuple[object, ...], path: str) -> Any:
    return _fold(args if len(args) != 1 else (1, args[0]), path, _divide)


def _mod(args: tuple[object, ...], path: str) -> Any:
    return _fold(args, path, _remainder)


def _spread(value: object) -> tuple[object, ...]:
    """Operands computed by logic: an array is the operand list, anything else one operand."""
    kind, v = _norm(value)
    return tuple(v) if kind == _ARR else (value,)


def _at_least(args: tuple[object, ...], fewest: int, path: str) -> tuple[object, ...]:
    """Check the number of operands computed by logic (``{"-": {"var": "list"}}``)."""
    if len(args) < fewest:
        raise _invalid(
            f"takes at least {fewest} operand{'' if fewest == 1 else 's'}, got {len(args)}", path
        )
    return args


def _operands(args: tuple[object, ...], path: str) -> list[Any]:
    """Return the operands of ``max`` / ``min``; with a Decimal among them, floats as Decimals."""
    values = [_anum(a, path) for a in args]
    for v in values:
        if v.__class__ is not int and v.__class__ is not float:  # so a Decimal
            return [Decimal(repr(x)) if x.__class__ is float else x for x in values]
    return values


def _max(args: tuple[object, ...], path: str) -> Any:
    try:
        return max(_operands(args, path))
    except ArithmeticError as e:
        raise _arith_failed(e, path) from e


def _min(args: tuple[object, ...], path: str) -> Any:
    try:
        return min(_operands(args, path))
    except ArithmeticError as e:
        raise _arith_failed(e, path) from e


# -- strings and arrays -----------------------------------------------------------------------


def _cat(args: tuple[object, ...]) -> str:
    return "".join("" if a is None else to_string(a) for a in args)


def _to_int(value: object) -> int:
    """JavaScript's ToIntegerOrInfinity, with infinities as huge ints."""
    x = _num(value)
    if _is_nan(x):
        return 0
    if not -(2**62) < x < 2**62:  # infinities, and huge Decimals int() would expand digit by digit
        return 2**62 if x > 0 else -(2**62)
    return int(x)


def _substr(source: object, start: object, length: object = _MISS) -> str:
    """``String.prototype.substr`` as json-logic-js uses it (a negative length trims the end)."""
    s = to_string(source)
    n = len(s)
    st = _to_int(start)
    st = max(n + st, 0) if st < 0 else min(st, n)
    if length is _MISS:
        return s[st:]
    if _num(length) < 0:  # NaN is not
        rest = s[st:]
        keep = len(rest) + _to_int(length)
        return rest[: max(keep, 0)]
    return s[st : st + min(max(_to_int(length), 0), n - st)]


def _merge(args: tuple[object, ...]) -> list[object]:
    out: list[object] = []
    for a in args:
        kind, v = _norm(a)
        if kind == _ARR:
            out.extend(v)
        else:
            out.append(a)
    return out


def _items(value: object) -> Iterable[object]:
    kind, v = _norm(value)
    return v if kind == _ARR else ()


def _array(value: object, path: str) -> Iterable[object]:
    """Return the array ``all`` / ``some`` / ``none`` go through, else Invalid Arguments."""
    kind, v = _norm(value)
    if kind != _ARR:
        raise _invalid(f"needs an array to go through, not {_show(value)}", path)
    return v  # type: ignore[no-any-return]


# An iteration whose logic climbs scopes (``{"val": [[1], "index"]}``) is called with a frame
# for each item: ``({"index": i}, data the iteration was called on, that data's own frame)``.
# ``scope`` is that ``(data, up)``, or None when the logic never climbs (the fast path).
_Scope = tuple[object, object] | None
_Logic = Callable[..., object]


def _map(fn: _Logic, items: object, scope: _Scope = None) -> list[object]:
    if scope is None:
        return [fn(x) for x in _items(items)]
    data, up = scope
    return [fn(x, ({"index": i}, data, up)) for i, x in enumerate(_items(items))]


def _filter(fn: _Logic, items: object, scope: _Scope = None) -> list[object]:
    if scope is None:
        return [x for x in _items(items) if _T(fn(x))]
    data, up = scope
    return [x for i, x in enumerate(_items(items)) if _T(fn(x, ({"index": i}, data, up)))]


def _tests(fn: _Logic, items: Iterable[object], scope: _Scope) -> Iterator[bool]:
    if scope is None:
        return (_T(fn(x)) for x in items)
    data, up = scope
    return (_T(fn(x, ({"index": i}, data, up))) for i, x in enumerate(items))


def _all(fn: _Logic, items: object, path: str, scope: _Scope = None) -> bool:
    seen = False
    for passed in _tests(fn, _array(items, path), scope):
        if not passed:
            return False
        seen = True
    return seen  # JSON Logic: "all" of an empty array is false


def _some(fn: _Logic, items: object, path: str, scope: _Scope = None) -> bool:
    return any(_tests(fn, _array(items, path), scope))


def _none(fn: _Logic, items: object, path: str, scope: _Scope = None) -> bool:
    return not any(_tests(fn, _array(items, path), scope))


def _reduce(fn: _Logic, items: object, initial: object, scope: _Scope = None) -> object:
    acc = initial
    if scope is None:
        for x in _items(items):
            acc = fn({"current": x, "accumulator": acc})
        return acc
    data, up = scope
    for i, x in enumerate(_items(items)):
        acc = fn({"current": x, "accumulator": acc}, ({"index": i}, data, up))
    return acc


# -- errors -----------------------------------------------------------------------------------


def _throw(value: object, path: str) -> object:
    """``throw``: a string is the error's type; an object is the error itself."""
    kind, v = _norm(value)
    if kind == _OBJ:
        error_type = v.get("type", value)
        error_value = value
    else:
        error_type = v if kind == _STR else value
        error_value = {"type": error_type}
    raise CriteriaError(
        f"thrown: {_show(error_type)}", path=path, error_type=error_type, error_value=error_value
    )


def _try(arms: tuple[_Logic, ...], data: object, up: object) -> object:
    """``try``: the first arm that raises no specification error gives the result.

    Each later arm runs on the previous arm's error object (``{"type": "NaN"}``, a thrown
    object) as its data, one scope below the ``try``'s own data. Errors that are no
    specification error (a failure of the data itself) are never caught.
    """
    error: CriteriaError | None = None
    for arm in arms:
        try:
            if error is None:
                return arm(data, up)
            return arm(error.error_value, (None, data, up))
        except CriteriaError as e:
            if e.error_value is None:
                raise
            error = e
    if error is None:  # pragma: no cover - the compiler never makes a try without arms
        return None
    raise error


# -- variables --------------------------------------------------------------------------------


def _index(key: str, size: int) -> int:
    """Return the array index a path component names, or -1 (only "0", "1", ... count)."""
    if key.isascii() and key.isdigit() and len(key) < 19 and (key == "0" or key[0] != "0"):
        i = int(key)
        return i if i < size else -1
    return -1


def _child(value: Any, key: str) -> object:
    c = value.__class__
    if c is dict:
        return value.get(key, _MISS)
    if c is list or c is tuple:
        i = _index(key, len(value))
        return value[i] if i >= 0 else _MISS
    if isinstance(value, Mapping):
        return value.get(key, _MISS)
    if isinstance(value, Sequence) and not isinstance(value, _NOT_INDEXABLE):
        i = _index(key, len(value))
        return value[i] if i >= 0 else _MISS
    return _MISS


def _dig(value: object, parts: tuple[str, ...], default: object) -> object:
    if value is _MISS:
        return default
    for p in parts:
        if value is None:
            return default
        value = _child(value, p)
        if value is _MISS:
            return default
    return value


def lookup(data: object, path: object, default: object = None) -> object:
    """Return what ``{"var": [path, default]}`` gives for ``data``.

    ``path`` is a dotted string (``"source.channel"``, ``"items.0"``), a number, or ``None`` /
    ``""`` for the whole data. An absent key gives ``default``; a key present with ``None``
    gives ``None``.

    >>> lookup({"source": {"channel": "referral"}}, "source.channel")
    'referral'
    >>> lookup({"a": [10, 20]}, "a.1"), lookup({"a": None}, "a", 0), lookup({}, "a", 0)
    (20, None, 0)
    """
    if path is None or (isinstance(path, str) and path == ""):
        return data
    value = data
    for p in to_string(path).split("."):
        if value is None:
            return default
        value = _child(value, p)
        if value is _MISS:
            return default
    return value


_var = lookup


def _climb(data: object, up: Any, level: int) -> object:
    """Return the data ``level`` scopes up.

    Level 1 is the iteration (``null`` in a ``try`` fallback), 2 the data the iteration was
    called on, 3 the iteration around that, and so on; levels beyond the top give the top.
    """
    while level > 0 and up is not None:
        if level == 1:
            return up[0]
        data, up = up[1], up[2]
        level -= 2
    return data


def _level(first: object) -> int | None:
    """Return the scope level a ``val`` path starts with (``[[2], "x"]``), or None."""
    kind, v = _norm(first)
    if kind == _ARR and len(v) == 1:
        return abs(_to_int(v[0]))
    return None


def _key(segment: object) -> str:
    return segment if segment.__class__ is str else to_string(_thaw(segment))


def _walk(value: object, segments: Iterable[object], missing: object) -> object:
    """Follow ``val`` path segments (``null`` segments are skipped); ``missing`` if absent."""
    for s in segments:
        if s is None:
            continue
        if value is None:
            return missing
        value = _child(value, _key(s))
        if value is _MISS:
            return missing
    return value


def _path(data: object, up: object, path: object, missing: object) -> object:
    if path is None:
        return data
    kind, v = _norm(path)
    if kind != _ARR:
        return _walk(data, (path,), missing)
    segments = tuple(v)
    if segments:
        level = _level(segments[0])
        if level is not None:
            data = _climb(data, up, level)
            segments = segments[1:]
    return _walk(data, segments, missing)


def _val(data: object, up: object, path: object) -> object:
    """``val`` with a path computed at evaluation time."""
    return _path(data, up, path, None)


def _scoped(data: object, up: object, level: int, keys: tuple[str, ...]) -> object:
    """``val`` with a constant scope level and keys (``{"val": [[1], "index"]}``)."""
    return _walk(_climb(data, up, level), keys, None)


def _exists(data: object, up: object, path: object) -> bool:
    """``exists``: whether the ``val`` path is present in the data, even as ``null``."""
    return _path(data, up, path, _MISS) is not _MISS


def _no_get(key: str, default: object = None) -> object:
    return default


def _getter(data: object) -> Callable[..., object]:
    """``data.get`` for data that is not a Mapping: index a sequence, else nothing is there."""
    if isinstance(data, Sequence) and not isinstance(data, _NOT_INDEXABLE):
        seq = data

        def get(key: str, default: object = None) -> object:
            i = _index(key, len(seq))
            return seq[i] if i >= 0 else default

        return get
    return _no_get


def _missing(data: object, args: tuple[object, ...]) -> list[object]:
    keys: Iterable[object] = args
    if args:
        kind, first = _norm(args[0])
        if kind == _ARR:
            keys = first
    out: list[object] = []
    for key in keys:
        value = lookup(data, key)
        if value is None or (isinstance(value, str) and value == ""):
            out.append(key)
    return out


def _missing_some(data: object, need: object, options: object) -> list[object]:
    kind, opts = _norm(options)
    keys = tuple(opts) if kind == _ARR else (options,)
    missing = _missing(data, (keys,))
    wanted = _num(need)
    if not _is_nan(wanted) and len(keys) - len(missing) >= wanted:
        return []
    return missing


class _EmptyObject:
    """The frozen form of ``{}`` inside a constant; thawed into a new dict each time."""

    __slots__ = ()


_EMPTY: Final = _EmptyObject()


class _FrozenObject(tuple[tuple[str, object], ...]):
    """The frozen form of an object under ``preserve``: its (key, frozen value) pairs."""

    __slots__ = ()


def _is_container(value: object) -> bool:
    """Tell whether a frozen constant is an array or object (new each time it is thawed)."""
    return value.__class__ is tuple or value.__class__ is _FrozenObject or value is _EMPTY


def _thaw(value: object) -> object:
    """Return a fresh, mutable copy of a frozen constant (tuples become lists)."""
    if value.__class__ is tuple:
        return [_thaw(v) for v in value]
    if value is _EMPTY:
        return {}
    if value.__class__ is _FrozenObject:
        return {k: _thaw(v) for k, v in value}
    return value


class _EvaluationFailed(CriteriaError):
    """An unexpected error from the data (a broken Mapping, a cycle) during evaluation."""


def _wrap(error: Exception) -> CriteriaError:
    if isinstance(error, RecursionError):
        return _EvaluationFailed("evaluation failed: the data is nested too deeply")
    try:
        text = str(error)
    except Exception:  # an exception whose own text fails must still be reported
        text = "(its message cannot be shown)"
    if len(text) > 200:
        text = f"{text[:180]}... ({len(text)} characters)"
    return _EvaluationFailed(f"evaluation failed: {type(error).__name__}: {text}")


# -- the budget ---------------------------------------------------------------------------------
# A document's cost is counted in steps: one per operation or value the compiler generates code
# for, times the number of items of every iteration around it, plus the size of the strings and
# arrays that operations on the data read or build (one step per _SIZE_PER_STEP characters or
# elements). What the document alone decides is counted when it is compiled; what the data
# decides (the length of an array from the data, a string's size) is charged to a meter while
# the document runs. A document whose every cost is known at compile time gets no meter at all,
# so the hot path of an ordinary screen is the same code as without a budget.

_SIZE_PER_STEP: Final = 16
# A step is about a microsecond of work. Every JSON value of the document is one; an operation
# adds these, measured per item of an iteration (benchmarks/bench_criteria_budget.py): raising
# and catching a specification error costs tens of microseconds, a key ``missing`` looks up a few.
_OPERATION_STEPS: Final = 4
_OPERAND_STEPS: Final = {
    "throw": 20,
    "try": 10,
    "missing": 4,
    "missing_some": 4,
    "in": 3,  # a Decimal needle meets each element through _norm
    "cat": 4,  # text of numbers is made digit by digit, as JavaScript writes it
    "substr": 4,
    "+": 2,  # a float meeting a Decimal is converted through its text
    "-": 2,
    "*": 2,
    "/": 2,
    "%": 2,
    "max": 2,
    "min": 2,
}
_MAX_NUMBER_TEXT: Final = 1_000  # longer text is not read as a number: no JSON number needs it


@attrs.frozen
class Budget:
    """How much work one evaluation of a criteria document may do.

    ``steps`` bounds the work; a step is about a microsecond: each value of the document is
    one, each operation a few more (``throw``, ``try`` and ``missing`` many more), times the
    items of every ``map``, ``filter``, ``reduce``, ``all``, ``some`` and ``none`` around it,
    plus one step per element and per 16 characters of the strings and arrays that ``cat``,
    ``merge``, ``substr``, ``in`` and computed operand lists read or build. ``size`` bounds one
    such string or array (characters, or elements counted through nested arrays). What the
    document alone decides (the length of a literal array it iterates) is checked when it is
    compiled; what the data decides, while it runs. Exceeding either raises
    :class:`~salesprocess.errors.CriteriaError` naming the JSON path of the operation.

    >>> Budget()
    Budget(steps=100000, size=100000)
    >>> Budget(steps=0)
    Traceback (most recent call last):
    ...
    salesprocess.errors.ValidationError: steps must be an int from 1 to 10**12 (got 0)
    """

    steps: int = attrs.field(default=100_000, validator=lambda _i, a, v: _check_limit(a.name, v))
    size: int = attrs.field(default=100_000, validator=lambda _i, a, v: _check_limit(a.name, v))


def _check_limit(name: str, value: object) -> None:
    if value.__class__ is not int or not 1 <= value <= 10**12:
        raise ValidationError(
            f"{name} must be an int from 1 to 10**12 (got {_show(value)})", field=name
        )


DEFAULT_BUDGET: Final = Budget()
"""The budget a document gets unless it is given another: 100,000 steps, values of 100,000."""


# What is left of one evaluation's budget: ``[steps left, steps, size]``, a list the entry of a
# metered document makes from constants (cheaper than an object).
_Meter = list[int]
_LEFT, _STEPS, _SIZE = 0, 1, 2


def _over_steps(m: _Meter, path: str) -> CriteriaError:
    return CriteriaError(
        f"the evaluation needs more than the budget of {m[_STEPS]} steps", path=path
    )


def _charge(m: _Meter, steps: int, path: str) -> None:
    m[_LEFT] -= steps
    if m[_LEFT] < 0:
        raise _over_steps(m, path)


def _measure(value: object, m: _Meter, path: str) -> int:
    """Return the size of a value (characters of text, elements through nested arrays).

    The walk stops as soon as the size passes the budget's, so measuring costs at most that.
    Each element walked is charged a step (it is Python-level work, as reading it later is);
    characters are copied in C, one step per ``_SIZE_PER_STEP``.
    """
    limit = m[_SIZE]
    if value.__class__ is str and len(value) <= limit:
        n = len(value)
        _charge(m, 1 + n // _SIZE_PER_STEP, path)
        return n
    chars = 0
    elements = 0
    stack = [value]
    while stack:
        v = stack.pop()
        elements += 1
        c = v.__class__
        if c is str:
            chars += len(v)  # type: ignore[arg-type]
        elif c is list or c is tuple:
            if elements + chars + len(v) <= limit:  # type: ignore[arg-type]
                stack.extend(v)  # type: ignore[arg-type]
            else:
                elements += len(v)  # type: ignore[arg-type]
        elif not (c is int or c is float or c is bool or v is None or c is dict):
            kind, n = _norm(v)
            if kind == _STR:
                chars += len(n)
            elif kind == _ARR:
                if elements + chars + len(n) <= limit:
                    stack.extend(n)
                else:
                    elements += len(n)
        if elements + chars > limit:  # the evaluation ends here: no need to charge the walk
            raise CriteriaError(f"a value is larger than the budget's size of {limit}", path=path)
    _charge(m, elements + chars // _SIZE_PER_STEP, path)
    return elements + chars


def _sized(values: tuple[object, ...], m: _Meter, path: str) -> tuple[object, ...]:
    """Measure operands together (their sizes add up, as in ``cat``); return them."""
    total = 0
    for v in values:
        total += _measure(v, m, path)
        if total > m[_SIZE]:
            raise CriteriaError(
                f"the result would be larger than the budget's size of {m[_SIZE]}", path=path
            )
    return values


def _cat_m(args: tuple[object, ...], m: _Meter, path: str) -> str:
    total = 0
    for a in args:
        if a.__class__ is not str:
            return _cat(_sized(args, m, path))
        total += len(a)
    if total > m[_SIZE]:
        return _cat(_sized(args, m, path))  # which names the fault
    _charge(m, 1 + total // _SIZE_PER_STEP, path)
    return "".join(args)  # type: ignore[arg-type]


def _merge_m(args: tuple[object, ...], m: _Meter, path: str) -> list[object]:
    return _merge(_sized(args, m, path))


def _substr_m(m: _Meter, path: str, *args: object) -> str:
    return _substr(*_sized(args, m, path))


def _in_m(needle: object, haystack: object, m: _Meter, path: str) -> bool:
    if needle.__class__ is str and haystack.__class__ is str:
        n = len(haystack) + len(needle)
        if n <= m[_SIZE]:
            _charge(m, 1 + n // _SIZE_PER_STEP, path)
            return needle in haystack
    _measure(haystack, m, path)
    _measure(needle, m, path)
    return _in(needle, haystack)


def _spread_m(value: object, m: _Meter, path: str) -> tuple[object, ...]:
    _measure(value, m, path)
    return _spread(value)


def _var_m(data: object, path: object, default: object, m: _Meter, where: str) -> object:
    _measure(path, m, where)
    return lookup(data, path, default)


def _val_m(data: object, up: object, path: object, m: _Meter, where: str) -> object:
    _measure(path, m, where)
    return _val(data, up, path)


def _exists_m(data: object, up: object, path: object, m: _Meter, where: str) -> bool:
    _measure(path, m, where)
    return _exists(data, up, path)


def _missing_m(data: object, args: tuple[object, ...], m: _Meter, path: str) -> list[object]:
    _sized(args, m, path)
    keys = len(args)
    if args:
        kind, first = _norm(args[0])
        if kind == _ARR:
            keys = len(first)
    _charge(m, _OPERAND_STEPS["missing"] * keys, path)
    return _missing(data, args)


def _missing_some_m(
    data: object, need: object, options: object, m: _Meter, path: str
) -> list[object]:
    _sized((need, options), m, path)
    return _missing_some(data, need, options)


def _run_items(value: object, m: _Meter, cost: int, path: str) -> Sequence[object] | None:
    """Return the array an iteration goes through (None if it is no array), charged."""
    kind, v = _norm(value)
    if kind != _ARR:
        return None
    if cost:
        _charge(m, len(v) * cost, path)
    return v  # type: ignore[no-any-return]


def _map_m(fn: _Logic, items: object, m: _Meter, cost: int, path: str, scope: _Scope) -> object:  # noqa: PLR0917 - called positionally by the generated code
    v = _run_items(items, m, cost, path)
    if v is None:
        return []
    if scope is None:
        return [fn(x, None, m) for x in v]
    data, up = scope
    return [fn(x, ({"index": i}, data, up), m) for i, x in enumerate(v)]


def _filter_m(fn: _Logic, items: object, m: _Meter, cost: int, path: str, scope: _Scope) -> object:  # noqa: PLR0917 - called positionally by the generated code
    v = _run_items(items, m, cost, path)
    if v is None:
        return []
    if scope is None:
        return [x for x in v if _T(fn(x, None, m))]
    data, up = scope
    return [x for i, x in enumerate(v) if _T(fn(x, ({"index": i}, data, up), m))]


def _tests_m(  # noqa: PLR0917 - called positionally by the generated code
    fn: _Logic, items: object, m: _Meter, cost: int, path: str, scope: _Scope
) -> Iterator[bool]:
    v = _run_items(items, m, cost, path)
    if v is None:
        raise _invalid(f"needs an array to go through, not {_show(items)}", path)
    if scope is None:
        return (_T(fn(x, None, m)) for x in v)
    data, up = scope
    return (_T(fn(x, ({"index": i}, data, up), m)) for i, x in enumerate(v))


def _all_m(fn: _Logic, items: object, m: _Meter, cost: int, path: str, scope: _Scope) -> bool:  # noqa: PLR0917 - called positionally by the generated code
    seen = False
    for passed in _tests_m(fn, items, m, cost, path, scope):
        if not passed:
            return False
        seen = True
    return seen


def _some_m(fn: _Logic, items: object, m: _Meter, cost: int, path: str, scope: _Scope) -> bool:  # noqa: PLR0917 - called positionally by the generated code
    return any(_tests_m(fn, items, m, cost, path, scope))


def _none_m(fn: _Logic, items: object, m: _Meter, cost: int, path: str, scope: _Scope) -> bool:  # noqa: PLR0917 - called positionally by the generated code
    return not any(_tests_m(fn, items, m, cost, path, scope))


def _reduce_m(  # noqa: PLR0917 - called positionally by the generated code
    fn: _Logic, items: object, initial: object, m: _Meter, cost: int, path: str, scope: _Scope
) -> object:
    acc = initial
    v = _run_items(items, m, cost, path)
    if v is None:
        return acc
    if scope is None:
        for x in v:
            acc = fn({"current": x, "accumulator": acc}, None, m)
        return acc
    data, up = scope
    for i, x in enumerate(v):
        acc = fn({"current": x, "accumulator": acc}, ({"index": i}, data, up), m)
    return acc


def _try_m(arms: tuple[_Logic, ...], data: object, up: object, m: _Meter) -> object:
    """``try`` in a metered document: as :func:`_try`, each arm given the meter."""
    error: CriteriaError | None = None
    for arm in arms:
        try:
            if error is None:
                return arm(data, up, m)
            return arm(error.error_value, (None, data, up), m)
        except CriteriaError as e:
            if e.error_value is None:
                raise
            error = e
    if error is None:  # pragma: no cover - the compiler never makes a try without arms
        return None
    raise error


# The names the generated code may use. Nothing else is reachable from it: its builtins are
# empty, and every value from the document arrives as a ``_k<n>`` constant (see _Compiler).
_RUNTIME: Final[dict[str, object]] = {
    "_Mapping": Mapping,
    "_NUMT": _NUMT,
    "_MISS": _MISS,
    "_CriteriaError": CriteriaError,
    "Exception": Exception,
    "isinstance": isinstance,
    "list": list,
    "str": str,
    "dict": dict,
    "_T": _T,
    "_getter": _getter,
    "_dig": _dig,
    "_var": _var,
    "_lt": _lt,
    "_le": _le,
    "_gt": _gt,
    "_ge": _ge,
    "_leq": _leq,
    "_seq": _seq,
    "_in": _in,
    "_in_arr": _in_arr,
    "_in_str": _in_str,
    "_tonum": _tonum,
    "_plus": _plus,
    "_times": _times,
    "_neg": _neg,
    "_minus": _minus,
    "_div": _div,
    "_mod": _mod,
    "_max": _max,
    "_min": _min,
    "_cat": _cat,
    "_substr": _substr,
    "_merge": _merge,
    "_map": _map,
    "_filter": _filter,
    "_all": _all,
    "_some": _some,
    "_none": _none,
    "_reduce": _reduce,
    "_missing": _missing,
    "_missing_some": _missing_some,
    "_spread": _spread,
    "_at_least": _at_least,
    "_val": _val,
    "_scoped": _scoped,
    "_exists": _exists,
    "_throw": _throw,
    "_try": _try,
    "_thaw": _thaw,
    "_wrap": _wrap,
    "_charge": _charge,
    "_cat_m": _cat_m,
    "_merge_m": _merge_m,
    "_substr_m": _substr_m,
    "_in_m": _in_m,
    "_spread_m": _spread_m,
    "_var_m": _var_m,
    "_val_m": _val_m,
    "_exists_m": _exists_m,
    "_missing_m": _missing_m,
    "_missing_some_m": _missing_some_m,
    "_map_m": _map_m,
    "_filter_m": _filter_m,
    "_all_m": _all_m,
    "_some_m": _some_m,
    "_none_m": _none_m,
    "_reduce_m": _reduce_m,
    "_try_m": _try_m,
}

# --------------------------------------------------------------------------------------------
# Compiler: validate the document and generate Python source from fixed templates.
# --------------------------------------------------------------------------------------------

_MANY: Final = 1 << 30
# (fewest, most) operands.
_ARITY: Final[dict[str, tuple[int, int]]] = {
    "var": (0, 2),
    "val": (0, _MANY),
    "exists": (0, _MANY),
    "missing": (0, _MANY),
    "missing_some": (2, 2),
    "if": (0, _MANY),
    "?:": (0, _MANY),
    "??": (0, _MANY),
    "==": (2, _MANY),
    "===": (2, _MANY),
    "!=": (2, _MANY),
    "!==": (2, _MANY),
    "!": (0, 1),
    "!!": (0, 1),
    "or": (0, _MANY),
    "and": (0, _MANY),
    ">": (2, _MANY),
    ">=": (2, _MANY),
    "<": (2, _MANY),
    "<=": (2, _MANY),
    "max": (1, _MANY),
    "min": (1, _MANY),
    "+": (0, _MANY),
    "-": (1, _MANY),
    "*": (0, _MANY),
    "/": (1, _MANY),
    "%": (2, _MANY),
    "map": (2, 2),
    "filter": (2, 2),
    "reduce": (2, 3),
    "all": (2, 2),
    "none": (2, 2),
    "some": (2, 2),
    "merge": (0, _MANY),
    "in": (2, 2),
    "cat": (0, _MANY),
    "substr": (2, 3),
    "throw": (1, 1),
    "try": (0, _MANY),
    "preserve": (0, _MANY),  # its argument is a value, not operands (see _Compiler.literal)
}
# Operators whose operands must be written as an array: lazy ones, comparisons, iterators.
_ARRAY_ONLY: Final = frozenset(
    {"and", "or", "if", "?:", "??", "==", "===", "!=", "!==", "<", "<=", ">", ">="}
    | {"map", "filter", "reduce", "all", "none", "some"}
)
# Operators that take their operand list from logic: {"max": {"var": "prices"}}.
_CHAINED: Final = frozenset(
    {"+", "-", "*", "/", "%", "max", "min", "cat", "merge", "missing", "val", "exists"}
)

OPERATORS: Final = frozenset(_ARITY)
"""The operator names :func:`compile_logic` accepts."""

_SPLIT_DEPTH: Final = 8  # JSON levels per generated function before spilling into another
_CHAIN: Final = 32  # and/or/if/?? operands per generated function before spilling
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REL_OPS: Final = {"<": ("<", "_lt"), "<=": ("<=", "_le"), ">": (">", "_gt"), ">=": (">=", "_ge")}
_ARITH: Final = {
    "+": "_plus",
    "*": "_times",
    "-": "_minus",
    "/": "_div",
    "%": "_mod",
    "max": "_max",
    "min": "_min",
}
_FEWEST_COMPUTED: Final = {"-": 1, "/": 1, "%": 2, "max": 1, "min": 1}
_ITERATORS: Final = {"map": "_map", "filter": "_filter", "all": "_all", "some": "_some"}
_QUANTIFIERS: Final = frozenset({"all", "some", "none"})
_UNKNOWN: Final = "Unknown Operator"


# Operators whose work grows with the size of their operands: metered when the data decides them.
_SIZED: Final = frozenset(
    {"var", "val", "exists", "in", "substr", "cat", "merge", "missing", "missing_some"}
)


def _operand_count(op: str, args: object) -> int:
    """How many operands an operator works through: ``missing``'s keys may be one array."""
    if not isinstance(args, (list, tuple)):
        return 1
    if op == "missing" and len(args) == 1 and isinstance(args[0], (list, tuple)):
        return len(args[0])
    if op == "missing_some" and len(args) == 2 and isinstance(args[1], (list, tuple)):
        return len(args[1])
    if op == "in" and len(args) == 2 and isinstance(args[1], (list, tuple)):
        return len(args[1])  # a needle that is no text is compared with each element
    return len(args)


def _data_sized(op: str, codes: list[_Code]) -> bool:
    """Tell whether the data decides the size of what ``op`` reads or builds."""
    if op == "var":
        return bool(codes) and codes[0].value is _NOCONST  # the default costs nothing more
    if op == "in" and codes[1].value.__class__ is tuple:
        return False  # a literal array: a set lookup, or one comparison per literal element
    return any(c.value is _NOCONST for c in codes)


def _key_path(parent: str, key: str) -> str:
    if _IDENT.fullmatch(key):
        return f"{parent}.{key}"
    escaped = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"{parent}['{escaped}']"


def _refuse(message: str, path: str) -> CriteriaError:
    """Make a load-time refusal of operands the specification calls Invalid Arguments."""
    return CriteriaError(message, path=path, error_type=_INVALID)


class _NoConst:
    __slots__ = ()


_NOCONST: Final = _NoConst()


class _NeedsMeter(Exception):
    """Raised while compiling without a meter when the data decides part of the cost."""


class _Code(NamedTuple):
    """Generated source for one node: an atomic Python expression."""

    src: str
    is_bool: bool = False  # the expression always yields a bool
    value: object = _NOCONST  # the frozen constant, when the node is a literal


class _Unit:
    """One generated function: ``def _f<n>(data[, up]): return <expression>``.

    ``up`` is the scope above ``data`` (see ``_climb``); a unit takes it only when something in
    it climbs scopes or calls a unit that does.
    """

    __slots__ = ("depth0", "name", "temps", "uses_get", "uses_up")

    def __init__(self, name: str, depth0: int) -> None:
        self.name = name
        self.depth0 = depth0
        self.temps = 0
        self.uses_get = False
        self.uses_up = False

    def temp(self) -> str:
        self.temps += 1
        return f"_t{self.temps}"


def _is_number_const(value: object) -> bool:
    return value.__class__ is int or value.__class__ is float


def _is_logic(node: object) -> bool:
    """Tell whether an operand written without an array is logic (an operation)."""
    return isinstance(node, Mapping) and len(node) > 0


class _Compiler:
    """Validate a JSON Logic document and translate it into Python source.

    Safety: the generated source is assembled only from the fixed templates in this class,
    identifiers made of a fixed prefix and a counter (``_k3``, ``_t2``, ``_f1``) and Python
    operators. Every literal and every variable name from the document is stored in
    ``self.consts`` and reaches the code as the name of a constant, never as source text, so no
    document can inject code. The code runs with empty builtins and sees only ``_RUNTIME``.
    """

    def __init__(self, max_depth: int, max_nodes: int, budget: Budget, *, metered: bool) -> None:
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.budget = budget
        # Metered: every unit takes ``(data, up, m)``, ``m`` the evaluation's _Meter, and ``_f0``
        # is a wrapper that makes the meter; the helpers ending in ``_m`` charge it.
        self.metered = metered
        self.cost = 0  # steps known at compile time (see Budget)
        self.nodes = 0
        self.consts: dict[str, object] = {}
        self.units: list[str] = []
        self.n_units = 1 if metered else 0

    def meter(self) -> None:
        """Note that the data decides part of the cost: the document needs a meter."""
        if not self.metered:
            raise _NeedsMeter

    def over_budget(self, path: str) -> None:
        if self.cost > self.budget.steps:
            raise CriteriaError(
                f"the document needs more than the budget of {self.budget.steps} steps "
                f"(at least {self.cost})",
                path=path,
            )

    def const(self, value: object) -> str:
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name

    # -- units ---------------------------------------------------------------------------

    def unit(
        self,
        build: Callable[[_Unit], _Code],
        depth: int,
        *,
        entry: bool = False,
        with_up: bool = False,
    ) -> tuple[str, _Code, _Unit]:
        """Generate one function; ``with_up`` gives it the ``up`` parameter even if unused."""
        u = _Unit(f"_f{self.n_units}", depth)
        self.n_units += 1
        code = build(u)
        body = []
        if entry and u.uses_up and not self.metered:
            body.append("up = None")
        if u.uses_get:  # ``g`` reads a key of the data; plain dicts take the fastest branch
            body += [
                "if data.__class__ is dict:",
                "    g = data.get",
                "elif isinstance(data, _Mapping):",
                "    g = data.get",
                "else:",
                "    g = _getter(data)",
            ]
        body.append(f"return {code.src}")
        params = "data, up" if with_up or (u.uses_up and not entry) else "data"
        if self.metered:
            params = "data, up, m"
        if entry and not self.metered:
            lines = [f"def {u.name}({params}):", "    try:"]
            lines += [f"        {line}" for line in body]
            lines += [
                "    except _CriteriaError:",
                "        raise",
                "    except Exception as e:",
                "        raise _wrap(e) from e",
            ]
        else:
            lines = [f"def {u.name}({params}):"] + [f"    {line}" for line in body]
        self.units.append("\n".join(lines))
        return u.name, code, u

    def call_unit(self, build: Callable[[_Unit], _Code], depth: int, u: _Unit) -> _Code:
        """Generate a function for part of ``u``'s expression, in the same scope, and call it."""
        name, code, nu = self.unit(build, depth)
        if self.metered:
            u.uses_up = u.uses_up or nu.uses_up
            return _Code(f"{name}(data, up, m)", code.is_bool)
        if nu.uses_up:
            u.uses_up = True
            return _Code(f"{name}(data, up)", code.is_bool)
        return _Code(f"{name}(data)", code.is_bool)

    # -- nodes ---------------------------------------------------------------------------

    def count(self, path: str, depth: int) -> None:
        self.nodes += 1
        self.cost += 1
        if self.nodes > self.max_nodes:
            raise CriteriaError(f"the document has more than {self.max_nodes} values", path=path)
        if depth > self.max_depth:
            raise CriteriaError(
                f"the document nests deeper than {self.max_depth} levels", path=path
            )

    def scalar(self, node: object, path: str) -> _Code | None:
        """Return the code of a JSON scalar, or None if ``node`` is a container."""
        c = node.__class__
        if node is None:
            return _Code("None", False, None)
        if c is bool:
            return _Code("True" if node else "False", True, node)
        if c is str or c is int:
            return _Code(self.const(node), False, node)
        if c is float or isinstance(node, (Decimal, float)):
            finite = node.is_finite() if isinstance(node, Decimal) else math.isfinite(node)  # type: ignore[arg-type]
            if not finite:
                raise CriteriaError(f"{node!r} is not a JSON number", path=path)
            return _Code(self.const(node), False, node)
        if isinstance(node, (list, tuple, Mapping)):
            return None
        if isinstance(node, (str, int)) and not isinstance(node, bool):  # str/int subclasses
            plain = str.__str__(node) if isinstance(node, str) else int(node)
            return _Code(self.const(plain), False, plain)
        raise CriteriaError(f"{type(node).__name__} is not a JSON value", path=path)

    def expr(self, node: object, path: str, depth: int, u: _Unit) -> _Code:
        self.count(path, depth)
        code = self.scalar(node, path)
        if code is not None:
            return code
        if isinstance(node, (list, tuple)):
            return self.array(node, path, depth, u)
        assert isinstance(node, Mapping)
        if len(node) == 0:
            return _Code("{}", False, _EMPTY)
        if len(node) > 1:
            keys = ", ".join(_show(k) for k in list(node)[:4])
            raise CriteriaError(
                f"an operation is an object with exactly one key; this one has "
                f"{len(node)} ({keys})",
                path=path,
            )
        if depth - u.depth0 >= _SPLIT_DEPTH:
            return self.call_unit(lambda nu: self.operation(node, path, depth, nu), depth, u)
        return self.operation(node, path, depth, u)

    def array(self, node: Sequence[object], path: str, depth: int, u: _Unit) -> _Code:
        codes = [self.expr(e, f"{path}[{i}]", depth + 1, u) for i, e in enumerate(node)]
        if all(c.value is not _NOCONST for c in codes):
            # Scalars are copied in C, not one by one; arrays and objects are thawed one by one.
            flat = sum(1 for c in codes if not _is_container(c.value))
            self.cost -= flat - flat // _SIZE_PER_STEP
            return self.frozen_code(tuple(c.value for c in codes))
        return _Code("[" + "".join(f"{c.src}, " for c in codes) + "]")

    def frozen_code(self, frozen: object) -> _Code:
        """Return the code that gives a fresh copy of a frozen constant."""
        if frozen.__class__ is tuple:
            k = self.const(frozen)
            nested = any(_is_container(v) for v in frozen)
            return _Code(f"_thaw({k})" if nested else f"list({k})", False, frozen)
        if frozen is _EMPTY:
            return _Code("{}", False, frozen)
        return _Code(f"_thaw({self.const(frozen)})", False, frozen)

    def freeze(self, node: object, path: str, depth: int) -> object:
        """Validate a value kept as it is (``preserve``) and return its frozen form."""
        self.count(path, depth)
        code = self.scalar(node, path)
        if code is not None:
            return code.value
        if isinstance(node, (list, tuple)):
            return tuple(self.freeze(e, f"{path}[{i}]", depth + 1) for i, e in enumerate(node))
        assert isinstance(node, Mapping)
        if len(node) == 0:
            return _EMPTY
        pairs = []
        for key, value in node.items():
            if not isinstance(key, str):
                raise CriteriaError(f"an object key must be a string, not {_show(key)}", path=path)
            plain = str.__str__(key)
            pairs.append((plain, self.freeze(value, _key_path(path, plain), depth + 1)))
        return _FrozenObject(pairs)

    def operation(  # noqa: PLR0911, PLR0912 - validation, then one dispatch per operator family
        self, node: Mapping[object, object], path: str, depth: int, u: _Unit
    ) -> _Code:
        ((op, args),) = node.items()
        if not isinstance(op, str):
            raise CriteriaError(f"an object key must be a string, not {_show(op)}", path=path)
        op_path = _key_path(path, op)
        if op not in _ARITY:
            raise CriteriaError(f"unknown operator {op!r}", path=op_path, error_type=_UNKNOWN)
        self.cost += _OPERATION_STEPS + _OPERAND_STEPS.get(op, 0) * _operand_count(op, args)
        if op == "preserve":
            return self.frozen_code(self.freeze(args, op_path, depth + 1))
        if isinstance(args, (list, tuple)):
            self.count(op_path, depth + 1)
            nodes = list(args)
            paths = [f"{op_path}[{i}]" for i in range(len(nodes))]
            arg_depth = depth + 2
        elif op in _ARRAY_ONLY:
            raise _refuse(f"{op!r} needs an array of operands", op_path)
        elif op in _CHAINED and _is_logic(args):
            return self.computed(op, args, op_path, depth + 1, u)
        else:
            nodes, paths, arg_depth = [args], [op_path], depth + 1
        fewest, most = _ARITY[op]
        if not fewest <= len(nodes) <= most:
            if fewest == most:
                expected, count = "exactly", fewest
            elif most == _MANY:
                expected, count = "at least", fewest
            elif fewest == 0:
                expected, count = "at most", most
            else:
                expected, count = f"{fewest} to", most
            raise _refuse(
                f"{op!r} takes {expected} {count} operand{'' if count == 1 else 's'}, "
                f"got {len(nodes)}",
                op_path,
            )
        if op in ("and", "or"):
            if not nodes:
                return _Code("False", True, _NOCONST)
            return self.and_or(op == "and", nodes, paths, arg_depth, u)
        if op in ("if", "?:"):
            return self.if_chain(nodes, paths, arg_depth, u)
        if op == "??":
            return self.coalesce(nodes, paths, arg_depth, u)
        if op == "try":
            return self.attempt(nodes, paths, arg_depth, u)
        if op in _ITERATORS or op in ("none", "reduce"):
            return self.iterate(op, op_path, nodes, paths, depth=arg_depth, u=u)
        codes = [self.expr(n, p, arg_depth, u) for n, p in zip(nodes, paths, strict=True)]
        return self.simple(op, codes, op_path, u)

    def computed(self, op: str, node: object, op_path: str, depth: int, u: _Unit) -> _Code:
        """Generate an operator whose operand list is computed by logic."""
        code = self.expr(node, op_path, depth, u)
        self.meter()  # the data decides how many operands there are
        path = self.const(op_path)
        if op == "val":
            u.uses_up = True
            return _Code(f"_val_m(data, up, {code.src}, m, {path})")
        if op == "exists":
            u.uses_up = True
            return _Code(f"_exists_m(data, up, {code.src}, m, {path})", True)
        spread = f"_spread_m({code.src}, m, {path})"
        if op == "cat":
            return _Code(f"_cat_m({spread}, m, {path})")
        if op == "merge":
            return _Code(f"_merge_m({spread}, m, {path})")
        if op == "missing":
            return _Code(f"_missing_m(data, {spread}, m, {path})")
        fewest = _FEWEST_COMPUTED.get(op, 0)
        if fewest:
            spread = f"_at_least({spread}, {self.const(fewest)}, {path})"
        return _Code(f"{_ARITH[op]}({spread}, {path})")

    def simple(self, op: str, codes: list[_Code], op_path: str, u: _Unit) -> _Code:  # noqa: PLR0911, PLR0912
        srcs = "".join(f"{c.src}, " for c in codes)
        if op in _SIZED and _data_sized(op, codes):
            return self.sized(op, codes, op_path, u)
        if op == "var":
            return self.var(codes, u)
        if op == "val":
            return self.val(codes, u)
        if op == "exists":
            return self.exists(codes, u)
        if op in _REL_OPS:
            path = self.const(op_path)
            return self.chain(codes, u, lambda a, b: self.relation(op, a, b, u, path))
        if op in ("==", "===", "!=", "!=="):
            path = self.const(op_path)
            strict = op in ("===", "!==")
            if op in ("==", "==="):
                return self.chain(codes, u, lambda a, b: self.equality(strict, a, b, u, path))
            return self.chain(
                codes, u, lambda a, b: f"(not {self.equality(strict, a, b, u, path)})"
            )
        if op in ("!", "!!"):
            if not codes:
                return _Code("True" if op == "!" else "False", True)
            return self.truth(codes[0], negate=op == "!", u=u)
        if op == "in":
            return self.membership(codes[0], codes[1], u)
        if op in _ARITH:
            path = self.const(op_path)
            if not codes:
                empty = 0 if op == "+" else 1
                return _Code(self.const(empty), False, empty)
            if len(codes) == 1 and op in ("+", "-", "/"):
                one = codes[0].src
                template = {"+": "_tonum({}, {})", "-": "_neg({}, {})", "/": "_div((1, {}), {})"}
                return _Code(template[op].format(one, path))
            return _Code(f"{_ARITH[op]}(({srcs}), {path})")
        if op == "cat":
            return _Code(f"_cat(({srcs}))") if codes else _Code(self.const(""), False, "")
        if op == "substr":
            return _Code(f"_substr({srcs})")
        if op == "merge":
            return _Code(f"_merge(({srcs}))" if codes else "[]")
        if op == "missing":
            return _Code(f"_missing(data, ({srcs}))")
        if op == "missing_some":
            return _Code(f"_missing_some(data, {srcs})")
        if op == "throw":
            return _Code(f"_throw({codes[0].src}, {self.const(op_path)})")
        raise AssertionError(op)  # pragma: no cover - every operator is handled above

    def sized(self, op: str, codes: list[_Code], op_path: str, u: _Unit) -> _Code:  # noqa: PLR0911
        """Generate an operator whose cost grows with operands the data decides (metered)."""
        self.meter()
        srcs = "".join(f"{c.src}, " for c in codes)
        path = self.const(op_path)
        if op == "var":
            default = codes[1].src if len(codes) > 1 else "None"
            return _Code(f"_var_m(data, {codes[0].src}, {default}, m, {path})")
        if op == "val":
            u.uses_up = True
            return _Code(f"_val_m(data, up, [{srcs}], m, {path})")
        if op == "exists":
            u.uses_up = True
            return _Code(f"_exists_m(data, up, ({srcs}), m, {path})", True)
        if op == "in":
            return _Code(f"_in_m({codes[0].src}, {codes[1].src}, m, {path})", True)
        if op == "substr":
            return _Code(f"_substr_m(m, {path}, {srcs})")
        if op == "missing_some":
            return _Code(f"_missing_some_m(data, {srcs}m, {path})")
        if op == "missing":
            return _Code(f"_missing_m(data, ({srcs}), m, {path})")
        return _Code(f"{(op == 'cat' and '_cat_m') or '_merge_m'}(({srcs}), m, {path})")

    # -- operators -------------------------------------------------------------------------

    def var(self, codes: list[_Code], u: _Unit) -> _Code:
        if not codes:
            return _Code("data")
        path = codes[0].value
        default = codes[1].src if len(codes) > 1 else None
        if path is None or (path.__class__ is str and path == ""):
            return _Code("data")
        if path is _NOCONST or _is_container(path):
            return _Code(f"_var(data, {codes[0].src}, {default or 'None'})")
        parts = to_string(path).split(".")
        u.uses_get = True
        first = self.const(parts[0])
        if len(parts) == 1:
            return _Code(f"g({first})" if default is None else f"g({first}, {default})")
        rest = self.const(tuple(parts[1:]))
        return _Code(f"_dig(g({first}, _MISS), {rest}, {default or 'None'})")

    def val(self, codes: list[_Code], u: _Unit) -> _Code:
        """Generate ``val``: keys never split at dots; ``[[n], ...]`` climbs ``n`` scopes."""
        if any(c.value is _NOCONST for c in codes):
            u.uses_up = True
            return _Code("_val(data, up, [" + "".join(f"{c.src}, " for c in codes) + "])")
        segments = [c.value for c in codes]
        level = _level(_thaw(segments[0])) if segments else None
        if level is not None:
            segments = segments[1:]
        keys = tuple(_key(s) for s in segments if s is not None)
        if level is not None:
            u.uses_up = True
            return _Code(f"_scoped(data, up, {self.const(level)}, {self.const(keys)})")
        if not keys:
            return _Code("data")
        u.uses_get = True
        first = self.const(keys[0])
        if len(keys) == 1:
            return _Code(f"g({first})")
        return _Code(f"_dig(g({first}, _MISS), {self.const(keys[1:])}, None)")

    def exists(self, codes: list[_Code], u: _Unit) -> _Code:
        srcs = "".join(f"{c.src}, " for c in codes)
        first = codes[0].value if codes else None
        climbs = first is _NOCONST or (first.__class__ is tuple and len(first) == 1)
        if climbs or any(c.value is _NOCONST for c in codes):
            u.uses_up = True
            return _Code(f"_exists(data, up, ({srcs}))", True)
        return _Code(f"_exists(data, None, ({srcs}))", True)

    def chain(self, codes: list[_Code], u: _Unit, pair: Callable[[_Code, _Code], str]) -> _Code:
        """Generate ``a op b op c``: inner operands are evaluated once, the chain stops early."""
        tests = []
        prev = codes[0]
        for i, cur in enumerate(codes[1:], start=1):
            if i < len(codes) - 1 and cur.value is _NOCONST:
                t = u.temp()
                tests.append(pair(prev, _Code(f"({t} := {cur.src})")))
                prev = _Code(t)
            else:
                tests.append(pair(prev, cur))
                prev = cur
        return _Code(tests[0] if len(tests) == 1 else "(" + " and ".join(tests) + ")", True)

    def relation(self, op: str, a: _Code, b: _Code, u: _Unit, path: str) -> str:
        pyop, helper = _REL_OPS[op]
        if a.value is _NOCONST and b.value is not _NOCONST:
            guard = self.guard(b.value)
            if guard:
                t = u.temp()
                return (
                    f"({t} {pyop} {b.src} if ({t} := {a.src}).__class__ {guard} "
                    f"else {helper}({t}, {b.src}, {path}))"
                )
        if b.value is _NOCONST and a.value is not _NOCONST:
            guard = self.guard(a.value)
            if guard:
                t = u.temp()
                return (
                    f"({a.src} {pyop} {t} if ({t} := {b.src}).__class__ {guard} "
                    f"else {helper}({a.src}, {t}, {path}))"
                )
        return f"{helper}({a.src}, {b.src}, {path})"

    @staticmethod
    def guard(value: object) -> str | None:
        """Return the type test under which Python's operator gives the specification's answer."""
        if _is_number_const(value):
            return "in _NUMT"
        if value.__class__ is str:
            return "is str"
        return None

    def equality(self, strict: bool, a: _Code, b: _Code, u: _Unit, path: str) -> str:
        call = "_seq({}, {})" if strict else "_leq({}, {}, " + path + ")"
        if a.value is not _NOCONST and b.value is _NOCONST:
            a, b = b, a  # equality is symmetric and a constant has no effects
        if a.value is _NOCONST and b.value is not _NOCONST:
            if b.value is None:
                if strict:
                    return f"({a.src} is None)"
                t = u.temp()
                return f"(({t} := {a.src}) is None or {call.format(t, 'None')})"
            if strict and b.value.__class__ is bool:
                return f"({a.src} is {b.src})"
            guard = self.guard(b.value)
            if guard:
                t = u.temp()
                return (
                    f"({t} == {b.src} if ({t} := {a.src}).__class__ {guard} "
                    f"else {call.format(t, b.src)})"
                )
        return call.format(a.src, b.src)

    def truth(self, code: _Code, *, negate: bool, u: _Unit) -> _Code:
        if code.is_bool:
            return _Code(f"(not {code.src})" if negate else code.src, True)
        t = u.temp()
        if negate:
            return _Code(
                f"(({t} := {code.src}) is False or {t} is None or "
                f"({t} is not True and not _T({t})))",
                True,
            )
        return _Code(
            f"(({t} := {code.src}) is True or ({t} is not False and {t} is not None and _T({t})))",
            True,
        )

    def membership(self, needle: _Code, haystack: _Code, u: _Unit) -> _Code:
        value = haystack.value
        if value.__class__ is tuple:
            # Arrays and objects inside a literal are new each time: nothing is === to them.
            candidates = tuple(v for v in value if not _is_container(v))
            k = self.const(candidates)
            if candidates and all(v.__class__ is str for v in candidates):
                fast = self.const(frozenset(candidates))
                t = u.temp()
                return _Code(
                    f"({t} in {fast} if ({t} := {needle.src}).__class__ is str "
                    f"else _in_arr({t}, {k}))",
                    True,
                )
            return _Code(f"_in_arr({needle.src}, {k})", True)
        if value.__class__ is str:
            return _Code(f"_in_str({needle.src}, {haystack.src})", True)
        return _Code(f"_in({needle.src}, {haystack.src})", True)

    def groups(self, size: int) -> list[range]:
        """Split ``range(size)`` into at most ``_CHAIN`` consecutive groups."""
        step = -(-size // _CHAIN)
        return [range(i, min(i + step, size)) for i in range(0, size, step)]

    def operand_codes(
        self,
        nodes: list[object],
        paths: list[str],
        depth: int,
        u: _Unit,
        group: Callable[[list[object], list[str], _Unit], _Code],
    ) -> list[_Code]:
        """Return the codes of a lazy operator's operands; long lists spill into groups.

        ``group`` generates one group (the same operator over some of the operands), so that
        neither Python's parser nor the compiler's stack grows with the list.
        """
        if len(nodes) <= _CHAIN:
            return [self.expr(n, p, depth, u) for n, p in zip(nodes, paths, strict=True)]
        return [
            self.call_unit(
                lambda nu, g=g: group([nodes[i] for i in g], [paths[i] for i in g], nu),  # type: ignore[misc]
                depth,
                u,
            )
            for g in self.groups(len(nodes))
        ]

    def and_or(
        self, is_and: bool, nodes: list[object], paths: list[str], depth: int, u: _Unit
    ) -> _Code:
        """Generate ``and`` / ``or``: the deciding operand, as in JavaScript."""
        codes = self.operand_codes(
            nodes, paths, depth, u, lambda n, p, nu: self.and_or(is_and, n, p, depth, nu)
        )
        if all(c.is_bool for c in codes):
            joined = (" and " if is_and else " or ").join(c.src for c in codes)
            return _Code(f"({joined})", True)
        pieces = []
        for c in codes[:-1]:
            if c.is_bool:
                pieces.append(f"False if not {c.src} else" if is_and else f"True if {c.src} else")
            else:
                t = u.temp()
                test = "not _T" if is_and else "_T"
                pieces.append(f"{t} if {test}({t} := {c.src}) else")
        return _Code("(" + " ".join(pieces) + " " + codes[-1].src + ")")

    def coalesce(self, nodes: list[object], paths: list[str], depth: int, u: _Unit) -> _Code:
        """Generate ``??``: the first operand that is not ``null`` (evaluating no further)."""
        if not nodes:
            return _Code("None", False, None)
        codes = self.operand_codes(
            nodes, paths, depth, u, lambda n, p, nu: self.coalesce(n, p, depth, nu)
        )
        pieces = []
        for c in codes[:-1]:
            t = u.temp()
            pieces.append(f"{t} if ({t} := {c.src}) is not None else")
        return _Code("(" + " ".join(pieces) + " " + codes[-1].src + ")")

    def attempt(self, nodes: list[object], paths: list[str], depth: int, u: _Unit) -> _Code:
        """Generate ``try``: each operand a function, the later ones run on the error."""
        if not nodes:
            return _Code("None", False, None)
        if len(nodes) == 1:
            return self.expr(nodes[0], paths[0], depth, u)
        arms = []
        climbs = False
        for node, path in zip(nodes, paths, strict=True):
            name, _, nu = self.unit(
                lambda nu, node=node, path=path: self.expr(node, path, depth, nu),  # type: ignore[misc]
                depth,
                with_up=True,
            )
            arms.append(name)
            climbs = climbs or nu.uses_up
        if climbs:
            u.uses_up = True
        helper, meter = ("_try_m", ", m") if self.metered else ("_try", "")
        return _Code(f"{helper}(({', '.join(arms)},), data, {'up' if climbs else 'None'}{meter})")

    def if_chain(self, nodes: list[object], paths: list[str], depth: int, u: _Unit) -> _Code:
        """Generate ``if`` / ``?:``: condition, value, condition, value, ..., [else]."""
        if not nodes:
            return _Code("None")
        if len(nodes) == 1:
            return self.expr(nodes[0], paths[0], depth, u)
        pairs = [(i, i + 1) for i in range(0, len(nodes) - 1, 2)]
        otherwise = len(nodes) - 1 if len(nodes) % 2 else None
        return self.if_pairs(nodes, paths, pairs, otherwise, depth=depth, u=u)

    def if_pairs(
        self,
        nodes: list[object],
        paths: list[str],
        pairs: list[tuple[int, int]],
        otherwise: int | None,
        *,
        depth: int,
        u: _Unit,
    ) -> _Code:
        """Generate the first value whose condition holds, else ``nodes[otherwise]``.

        ``otherwise`` -1 means "no match" is ``_MISS``, for a group inside a longer chain; long
        chains become a balanced tree of such groups.
        """
        pieces = []
        all_bool = True
        if len(pairs) <= _CHAIN:
            for c, v in pairs:
                cond = self.expr(nodes[c], paths[c], depth, u)
                then = self.expr(nodes[v], paths[v], depth, u)
                test = cond.src if cond.is_bool else f"_T({cond.src})"
                pieces.append(f"{then.src} if {test} else")
                all_bool = all_bool and then.is_bool
        else:
            for g in self.groups(len(pairs)):
                group = [pairs[i] for i in g]
                sub = self.call_unit(
                    lambda nu, group=group: self.if_pairs(  # type: ignore[misc]
                        nodes, paths, group, -1, depth=depth, u=nu
                    ),
                    depth,
                    u,
                )
                t = u.temp()
                pieces.append(f"{t} if ({t} := {sub.src}) is not _MISS else")
            all_bool = False
        if otherwise is None:
            tail = _Code("None")
        elif otherwise < 0:
            tail = _Code("_MISS")
        else:
            tail = self.expr(nodes[otherwise], paths[otherwise], depth, u)
        return _Code("(" + " ".join(pieces) + " " + tail.src + ")", all_bool and tail.is_bool)

    def iterate(
        self, op: str, op_path: str, nodes: list[object], paths: list[str], *, depth: int, u: _Unit
    ) -> _Code:
        items = self.expr(nodes[0], paths[0], depth, u)
        if items.value is not _NOCONST and items.value.__class__ is not tuple:
            raise _refuse(f"{op!r} needs an array to go through", paths[0])
        if op in ("map", "filter", "reduce") and nodes[1] is None:
            raise _refuse(f"{op!r} needs logic to apply, not null", paths[1])
        before = self.cost
        fn, _, nu = self.unit(lambda nu: self.expr(nodes[1], paths[1], depth, nu), depth)
        each = self.cost - before  # the steps of one item (counted once so far)
        literal = items.value.__class__ is tuple
        if literal:  # the document alone says how many items: count them all now
            self.cost += each * (len(items.value) - 1)  # type: ignore[arg-type]
            self.over_budget(op_path)
        else:
            self.meter()  # the data says how many: the meter counts them as it runs
        if self.metered:
            return self.iterate_metered(
                op=op,
                items=items,
                fn=fn,
                each=0 if literal else each,
                nu=nu,
                u=u,
                nodes=nodes,
                paths=paths,
                depth=depth,
            )
        scope = ""
        if nu.uses_up:  # the logic climbs scopes: each item gets a frame
            u.uses_up = True
            scope = ", (data, up)"
        if op == "reduce":
            initial = self.expr(nodes[2], paths[2], depth, u).src if len(nodes) > 2 else "None"
            return _Code(f"_reduce({fn}, {items.src}, {initial}{scope})")
        if op in _QUANTIFIERS:
            helper = _ITERATORS.get(op, "_none")
            return _Code(f"{helper}({fn}, {items.src}, {self.const(paths[0])}{scope})", True)
        return _Code(f"{_ITERATORS[op]}({fn}, {items.src}{scope})")

    def iterate_metered(
        self,
        *,
        op: str,
        items: _Code,
        fn: str,
        each: int,
        nu: _Unit,
        u: _Unit,
        nodes: list[object],
        paths: list[str],
        depth: int,
    ) -> _Code:
        """Generate an iteration that charges ``each`` steps per item from the data."""
        scope = "None"
        if nu.uses_up:
            u.uses_up = True
            scope = "(data, up)"
        # The path of the array: what the data made too long, or what is no array.
        tail = f"m, {self.const(each)}, {self.const(paths[0])}, {scope}"
        if op == "reduce":
            initial = self.expr(nodes[2], paths[2], depth, u).src if len(nodes) > 2 else "None"
            return _Code(f"_reduce_m({fn}, {items.src}, {initial}, {tail})")
        return _Code(f"_{op}_m({fn}, {items.src}, {tail})", op in _QUANTIFIERS)


def _generate(
    rule: object, max_depth: int, max_nodes: int, budget: Budget = DEFAULT_BUDGET
) -> tuple[str, dict[str, object]]:
    """Return the generated source and its constants (exposed for tests and debugging).

    A document whose cost the data can change is compiled again with a meter (see Budget).
    """
    try:
        try:
            compiler = _compile(rule, max_depth, max_nodes, budget, metered=False)
        except _NeedsMeter:
            compiler = _compile(rule, max_depth, max_nodes, budget, metered=True)
    except CriteriaError:
        raise
    except RecursionError:  # pragma: no cover - the depth limit keeps the stack shallow
        raise CriteriaError("the document is too complex to compile") from None
    except Exception as e:  # a Python-built document whose Mapping or sequence fails to read
        raise CriteriaError(f"the document cannot be read: {type(e).__name__}: {e}") from e
    return "\n\n".join(reversed(compiler.units)) + "\n", compiler.consts


def _compile(
    rule: object, max_depth: int, max_nodes: int, budget: Budget, *, metered: bool
) -> _Compiler:
    compiler = _Compiler(max_depth, max_nodes, budget, metered=metered)
    top, _, _ = compiler.unit(lambda u: compiler.expr(rule, "$", 0, u), 0, entry=True)
    compiler.over_budget("$")
    if metered:
        left = budget.steps - compiler.cost  # what is known now is charged up front
        meter = (
            f"[{compiler.const(left)}, {compiler.const(budget.steps)}, "
            f"{compiler.const(budget.size)}]"
        )
        compiler.units.append(
            "\n".join(
                [
                    "def _f0(data):",
                    "    try:",
                    f"        return {top}(data, None, {meter})",
                    "    except _CriteriaError:",
                    "        raise",
                    "    except Exception as e:",
                    "        raise _wrap(e) from e",
                ]
            )
        )
    return compiler


def compile_logic(
    rule: object,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
    budget: Budget = DEFAULT_BUDGET,
) -> CompiledLogic:
    """Validate a JSON Logic document and compile it into a function of the data.

    ``rule`` is the parsed JSON (``dict``, ``list``, ``str``, numbers, ``bool``, ``None``).
    Everything that is wrong with it raises :class:`~salesprocess.errors.CriteriaError` here,
    naming the JSON path of the fault: an unknown operator, a wrong number or kind of operands
    (``error_type`` ``"Invalid Arguments"``, even in a branch that would never run), an
    object with several keys where an operation belongs, a value that is not JSON, nesting
    deeper than ``max_depth`` or more than ``max_nodes`` values.

    The returned function takes the data (any Mapping, a sequence, a scalar) and returns the
    JSON Logic result. It raises only :class:`CriteriaError`: for the errors of the
    specification (``error_type`` ``"NaN"``, ``"Invalid Arguments"`` or a thrown type: a
    division by zero, text that is no number compared with a number, a ``throw`` no ``try``
    caught) and, with ``error_type`` None, for failures of the data itself.

    >>> between = compile_logic({"<=": [50, {"var": "employees"}, 5000]})
    >>> between({"employees": 120}), between({"employees": 9000}), between({})
    (True, False, False)
    >>> compile_logic({"/": [{"var": "revenue"}, {"var": "employees"}]})({"revenue": 10})
    Traceback (most recent call last):
    ...
    salesprocess.errors.CriteriaError: division by zero (at $['/'])
    """
    if not isinstance(max_depth, int) or not 1 <= max_depth <= _MAX_DEPTH_CAP:
        raise ValidationError(
            f"max_depth must be an int from 1 to {_MAX_DEPTH_CAP}", field="max_depth"
        )
    if not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValidationError("max_nodes must be a positive int", field="max_nodes")
    if not isinstance(budget, Budget):
        raise ValidationError(f"budget must be a Budget, not {_show(budget)}", field="budget")
    source, consts = _generate(rule, max_depth, max_nodes, budget)
    namespace: dict[str, object] = {"__builtins__": {}, **_RUNTIME, **consts}
    code = _to_code(source)
    # The source comes only from the templates above (see _Compiler); no document text is in it.
    exec(code, namespace)  # noqa: S102
    entry = namespace["_f0"]
    assert callable(entry)
    return entry


def _to_code(source: str) -> CodeType:
    """Compile generated source; a warning the compiler gives (under ``-W error``) is no fault.

    The templates never put a literal beside ``is`` (document values are named constants), so
    no SyntaxWarning is expected; should one arise under warnings-as-errors, the code is
    compiled again with that warning silenced, rather than the document refused.
    """
    try:
        return compile(source, "<json-logic>", "exec")
    except SyntaxError:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            try:
                return compile(source, "<json-logic>", "exec")
            except (RecursionError, MemoryError, SyntaxError) as e:  # pragma: no cover
                raise CriteriaError("the document cannot be compiled") from e
    except (RecursionError, MemoryError) as e:  # pragma: no cover - the limits prevent it
        raise CriteriaError("the document is too complex to compile") from e
