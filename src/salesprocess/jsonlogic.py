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

**Semantics.** Values behave as in JavaScript, like the reference implementation
``json-logic-js``, and the whole JSON Logic compatibility suite (``json-logic/compat-tables``,
``compatible.json``) passes:

* ``==`` / ``!=`` are JavaScript's loose equality (``1 == "1"``, ``null == 0`` is false),
  ``===`` / ``!==`` strict equality; arrays and objects are equal only to themselves. All four
  take exactly two operands (see below).
* ``<``, ``<=``, ``>``, ``>=`` compare two strings as strings (by code point) and anything else as
  numbers; a value that is not a number (``"n/a"``, an object) makes the comparison false, it
  never raises. With three or more operands they chain: ``{"<": [0, x, 10]}`` is a "between".
* Truthiness: ``false``, ``null``, ``0``, ``NaN``, ``""`` and the empty array are falsy;
  everything else (``"0"``, ``{}``) is truthy. ``and`` / ``or`` return the deciding operand.
* Arithmetic (``+ - * / %``, ``max``, ``min``) coerces strings, booleans and ``null`` to numbers.
  Integers stay integers while exact (``{"/": [4, 2]}`` is ``2``); beyond 2**53 they become
  floats, as JavaScript stores them. Where JavaScript would produce ``NaN`` (``"abc" + 1``, an
  array or object as an operand) or divide by zero, evaluation raises :class:`CriteriaError`,
  as the JSON Logic community suites specify, instead of letting ``NaN`` leak into results
  (a float overflow still gives infinity, as in JavaScript).
* ``decimal.Decimal`` values in the data are numbers, and exact: where a Decimal meets a float,
  in a comparison (``<`` ... ``>=``, ``==``, ``===``, ``!=``, ``!==``, ``in``), in arithmetic or
  in ``max`` / ``min``, the float stands for the decimal number it is written as (its shortest
  repr), so ``0.1`` equals ``Decimal("0.1")`` and ``10000.1 >= Decimal("10000.1")``, never
  their binary approximations. Arithmetic keeps them Decimal (``1.2`` becomes
  ``Decimal("1.2")``); ints compare with them exactly as they are.
* Values that are not JSON types behave as their JSON primitive: other real numbers as numbers,
  ``date`` / ``datetime`` / ``time`` as their ISO 8601 text (so they compare with ISO date
  strings), ``Enum`` members as their value, sets as arrays, anything else as ``str(value)``.
* ``var`` reads any :class:`~collections.abc.Mapping` (a fast path for ``dict``) and sequences by
  index (``"items.0.qty"``); a key that is present with the value ``None`` gives ``None``, only an
  absent one gives the default. Strings are not indexed.
* An operand that is not an array is one operand (``{"!": {"var": "x"}}``), as in json-logic-js.

**Operators:** ``var``, ``missing``, ``missing_some``, ``if``, ``?:``, ``==``, ``===``,
``!=``, ``!==``, ``!``, ``!!``, ``or``, ``and``, ``>``, ``>=``, ``<``, ``<=``, ``max``, ``min``,
``+``, ``-``, ``*``, ``/``, ``%``, ``map``, ``filter``, ``reduce``, ``all``, ``none``, ``some``,
``merge``, ``in``, ``cat``, ``substr``. Arities are checked at load time; where implementations
disagree on extra operands (``{"/": [8, 2, 2]}``) the community standard is followed: the
operation folds left. The equality operators (``==``, ``===``, ``!=``, ``!==``) are the exception:
json-logic-js ignores a third operand while other implementations chain, so ``{"==": [1, 1, 2]}``
would silently mean ``true`` or ``false`` depending on the engine; it is refused at load time.
``{"and": []}`` and ``{"or": []}`` are ``false``.

**Limits:** a document may nest at most ``max_depth`` containers deep (default 64) and hold at most
``max_nodes`` values (default 10,000); both are checked before anything deeper is looked at, so a
hostile document costs little.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from numbers import Integral, Real
from typing import Any, Final, NamedTuple

from salesprocess.errors import CriteriaError, ValidationError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_NODES",
    "OPERATORS",
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


def _primitive(kind: int, v: Any) -> tuple[int, Any]:
    if kind == _ARR:
        return _STR, to_string(v)
    if kind == _OBJ:
        return _STR, "[object Object]"
    return kind, v


def _rel(a: object, b: object) -> tuple[Any, Any] | None:
    """Operands of JavaScript's relational comparison, or ``None`` when one is NaN."""
    ka, x = _primitive(*_norm(a))
    kb, y = _primitive(*_norm(b))
    if ka == _STR and kb == _STR:
        return x, y
    if ka != _NUM:
        x = _num(x)
    if kb != _NUM:
        y = _num(y)
    if _is_nan(x) or _is_nan(y):
        return None
    if (x.__class__ is float) is not (y.__class__ is float):
        return _mix(x, y)
    return x, y


def _lt(a: Any, b: Any) -> bool:
    if type(a) in _NUMT and type(b) in _NUMT:
        return bool(a < b)
    p = _rel(a, b)
    return p is not None and bool(p[0] < p[1])


def _le(a: Any, b: Any) -> bool:
    if type(a) in _NUMT and type(b) in _NUMT:
        return bool(a <= b)
    p = _rel(a, b)
    return p is not None and bool(p[0] <= p[1])


def _gt(a: Any, b: Any) -> bool:
    if type(a) in _NUMT and type(b) in _NUMT:
        return bool(a > b)
    p = _rel(a, b)
    return p is not None and bool(p[0] > p[1])


def _ge(a: Any, b: Any) -> bool:
    if type(a) in _NUMT and type(b) in _NUMT:
        return bool(a >= b)
    p = _rel(a, b)
    return p is not None and bool(p[0] >= p[1])


def _seq(a: object, b: object) -> bool:
    """JavaScript's ``===``."""
    ka, x = _norm(a)
    kb, y = _norm(b)
    if ka != kb:
        return False
    if ka in (_ARR, _OBJ):
        return a is b
    if ka == _NUM:
        return _num_eq(x, y)
    return bool(x == y)


def _leq(a: object, b: object) -> bool:  # noqa: PLR0911 - the steps of JavaScript's ==
    """JavaScript's ``==`` (the Abstract Equality Comparison)."""
    ka, x = _norm(a)
    kb, y = _norm(b)
    if ka == kb:
        if ka in (_ARR, _OBJ):
            return a is b
        if ka == _NUM:
            return _num_eq(x, y)
        return bool(x == y)
    if _NULL in (ka, kb):
        return False
    if ka == _BOOL:
        return _leq(int(x), y)
    if kb == _BOOL:
        return _leq(x, int(y))
    if ka == _NUM and kb == _STR:
        return _num_eq(x, _parse_num(y))
    if ka == _STR and kb == _NUM:
        return _num_eq(_parse_num(x), y)
    if ka in (_ARR, _OBJ) and kb in (_NUM, _STR):
        return _leq(_primitive(ka, x)[1], y)
    if kb in (_ARR, _OBJ) and ka in (_NUM, _STR):
        return _leq(x, _primitive(kb, y)[1])
    return False


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


def _show(value: object) -> str:
    try:
        text = repr(value)
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
        raise CriteriaError(f"cannot do arithmetic on {_show(value)}", path=path)
    x = _parse_num(v) if kind == _STR else v
    if _is_nan(x):
        raise CriteriaError(f"{_show(value)} is not a number", path=path)
    if x.__class__ is int and not -_SAFE <= x <= _SAFE:
        return _to_float(x)
    return x


def _step(r: Any, path: str) -> Any:
    """Normalise an arithmetic result: big ints become floats, NaN raises."""
    if r.__class__ is int:
        return r if -_SAFE <= r <= _SAFE else _to_float(r)
    if _is_nan(r):
        raise CriteriaError("the result is not a number", path=path)
    return r


def _arith_failed(error: ArithmeticError, path: str) -> CriteriaError:
    return CriteriaError(f"arithmetic failed: {type(error).__name__}", path=path)


def _tonum(value: object, path: str) -> Any:
    return _anum(value, path)


def _plus(args: tuple[object, ...], path: str) -> Any:
    try:
        r = _anum(args[0], path)
        for a in args[1:]:
            x, y = _mix(r, _anum(a, path))
            r = _step(x + y, path)
        return _step(r, path)
    except ArithmeticError as e:
        raise _arith_failed(e, path) from e


def _times(args: tuple[object, ...], path: str) -> Any:
    try:
        r = _anum(args[0], path)
        for a in args[1:]:
            x, y = _mix(r, _anum(a, path))
            r = _step(x * y, path)
        return _step(r, path)
    except ArithmeticError as e:
        raise _arith_failed(e, path) from e


def _neg(value: object, path: str) -> Any:
    try:
        return _step(-_anum(value, path), path)
    except ArithmeticError as e:
        raise _arith_failed(e, path) from e


def _minus(args: tuple[object, ...], path: str) -> Any:
    try:
        r = _anum(args[0], path)
        for a in args[1:]:
            x, y = _mix(r, _anum(a, path))
            r = _step(x - y, path)
        return r
    except ArithmeticError as e:
        raise _arith_failed(e, path) from e


def _div(args: tuple[object, ...], path: str) -> Any:
    try:
        r = _anum(args[0], path)
        for a in args[1:]:
            x, y = _mix(r, _anum(a, path))
            if y == 0:
                raise CriteriaError("division by zero", path=path)
            if x.__class__ is int and y.__class__ is int:
                q, rem = divmod(x, y)
                r = q if rem == 0 else x / y
            else:
                r = _step(x / y, path)
        return r
    except ArithmeticError as e:
        raise _arith_failed(e, path) from e


def _mod(args: tuple[object, ...], path: str) -> Any:
    try:
        r = _anum(args[0], path)
        for a in args[1:]:
            x, y = _mix(r, _anum(a, path))
            if y == 0:
                raise CriteriaError("modulo by zero", path=path)
            if x.__class__ is int and y.__class__ is int:
                m = abs(x) % abs(y)
                r = -m if x < 0 else m  # JavaScript: the sign of the dividend
            elif isinstance(x, Decimal) or isinstance(y, Decimal):
                r = _step(Decimal(x) % Decimal(y), path)  # Decimal's % takes the dividend's sign
            else:
                try:
                    r = math.fmod(x, y)
                except ValueError:  # fmod(inf, y)
                    raise CriteriaError("the result is not a number", path=path) from None
        return r
    except ArithmeticError as e:
        raise _arith_failed(e, path) from e


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
    if _lt(length, 0):
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


def _map(fn: CompiledLogic, items: object) -> list[object]:
    return [fn(x) for x in _items(items)]


def _filter(fn: CompiledLogic, items: object) -> list[object]:
    return [x for x in _items(items) if _T(fn(x))]


def _all(fn: CompiledLogic, items: object) -> bool:
    seen = False
    for x in _items(items):
        if not _T(fn(x)):
            return False
        seen = True
    return seen  # JSON Logic: "all" of an empty array is false


def _some(fn: CompiledLogic, items: object) -> bool:
    return any(_T(fn(x)) for x in _items(items))


def _none(fn: CompiledLogic, items: object) -> bool:
    return not any(_T(fn(x)) for x in _items(items))


def _reduce(fn: CompiledLogic, items: object, initial: object) -> object:
    acc = initial
    for x in _items(items):
        acc = fn({"current": x, "accumulator": acc})
    return acc


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
    if _ge(len(keys) - len(missing), need):
        return []
    return missing


class _EmptyObject:
    """The frozen form of ``{}`` inside a constant; thawed into a new dict each time."""

    __slots__ = ()


_EMPTY: Final = _EmptyObject()


def _thaw(value: object) -> object:
    """Return a fresh, mutable copy of a frozen constant (tuples become lists)."""
    if value.__class__ is tuple:
        return [_thaw(v) for v in value]
    if value is _EMPTY:
        return {}
    return value


class _EvaluationFailed(CriteriaError):
    """An unexpected error from the data (a broken Mapping, a cycle) during evaluation."""


def _wrap(error: Exception) -> CriteriaError:
    if isinstance(error, RecursionError):
        return _EvaluationFailed("evaluation failed: the data is nested too deeply")
    return _EvaluationFailed(f"evaluation failed: {type(error).__name__}: {error}")


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
    "_thaw": _thaw,
    "_wrap": _wrap,
}

# --------------------------------------------------------------------------------------------
# Compiler: validate the document and generate Python source from fixed templates.
# --------------------------------------------------------------------------------------------

_MANY: Final = 1 << 30
# (fewest, most) operands; "and", "or", "if" and "?:" also need their operands as an array.
_ARITY: Final[dict[str, tuple[int, int]]] = {
    "var": (0, 2),
    "missing": (0, _MANY),
    "missing_some": (2, 2),
    "if": (0, _MANY),
    "?:": (0, _MANY),
    "==": (2, 2),
    "===": (2, 2),
    "!=": (2, 2),
    "!==": (2, 2),
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
}
_ARRAY_ONLY: Final = frozenset({"and", "or", "if", "?:"})

OPERATORS: Final = frozenset(_ARITY)
"""The operator names :func:`compile_logic` accepts."""

_SPLIT_DEPTH: Final = 8  # JSON levels per generated function before spilling into another
_CHAIN: Final = 32  # and/or/if operands per generated function before spilling
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
_ITERATORS: Final = {"map": "_map", "filter": "_filter", "all": "_all", "some": "_some"}
_ITERATORS_BOOL: Final = frozenset({"all", "some", "none"})


def _key_path(parent: str, key: str) -> str:
    if _IDENT.fullmatch(key):
        return f"{parent}.{key}"
    escaped = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"{parent}['{escaped}']"


class _NoConst:
    __slots__ = ()


_NOCONST: Final = _NoConst()


class _Code(NamedTuple):
    """Generated source for one node: an atomic Python expression."""

    src: str
    is_bool: bool = False  # the expression always yields a bool
    value: object = _NOCONST  # the frozen constant, when the node is a literal


class _Unit:
    """One generated function: ``def _f<n>(data): return <expression>``."""

    __slots__ = ("depth0", "name", "temps", "uses_get")

    def __init__(self, name: str, depth0: int) -> None:
        self.name = name
        self.depth0 = depth0
        self.temps = 0
        self.uses_get = False

    def temp(self) -> str:
        self.temps += 1
        return f"_t{self.temps}"


def _is_number_const(value: object) -> bool:
    return value.__class__ is int or value.__class__ is float


class _Compiler:
    """Validate a JSON Logic document and translate it into Python source.

    Safety: the generated source is assembled only from the fixed templates in this class,
    identifiers made of a fixed prefix and a counter (``_k3``, ``_t2``, ``_f1``) and Python
    operators. Every literal and every variable name from the document is stored in
    ``self.consts`` and reaches the code as the name of a constant, never as source text, so no
    document can inject code. The code runs with empty builtins and sees only ``_RUNTIME``.
    """

    def __init__(self, max_depth: int, max_nodes: int) -> None:
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.nodes = 0
        self.consts: dict[str, object] = {}
        self.units: list[str] = []
        self.n_units = 0

    def const(self, value: object) -> str:
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name

    # -- units ---------------------------------------------------------------------------

    def unit(
        self, build: Callable[[_Unit], _Code], depth: int, *, entry: bool = False
    ) -> tuple[str, _Code]:
        u = _Unit(f"_f{self.n_units}", depth)
        self.n_units += 1
        code = build(u)
        body = []
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
        if entry:
            lines = [f"def {u.name}(data):", "    try:"]
            lines += [f"        {line}" for line in body]
            lines += [
                "    except _CriteriaError:",
                "        raise",
                "    except Exception as e:",
                "        raise _wrap(e) from e",
            ]
        else:
            lines = [f"def {u.name}(data):"] + [f"    {line}" for line in body]
        self.units.append("\n".join(lines))
        return u.name, code

    def call_unit(self, build: Callable[[_Unit], _Code], depth: int) -> _Code:
        name, code = self.unit(build, depth)
        return _Code(f"{name}(data)", code.is_bool)

    # -- nodes ---------------------------------------------------------------------------

    def count(self, path: str, depth: int) -> None:
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise CriteriaError(f"the document has more than {self.max_nodes} values", path=path)
        if depth > self.max_depth:
            raise CriteriaError(
                f"the document nests deeper than {self.max_depth} levels", path=path
            )

    def expr(self, node: object, path: str, depth: int, u: _Unit) -> _Code:  # noqa: PLR0911
        self.count(path, depth)
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
        if isinstance(node, (list, tuple)):
            return self.array(node, path, depth, u)
        if isinstance(node, Mapping):
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
                return self.call_unit(lambda nu: self.operation(node, path, depth, nu), depth)
            return self.operation(node, path, depth, u)
        if isinstance(node, (str, int)) and not isinstance(node, bool):  # str/int subclasses
            plain = str.__str__(node) if isinstance(node, str) else int(node)
            return _Code(self.const(plain), False, plain)
        raise CriteriaError(f"{type(node).__name__} is not a JSON value", path=path)

    def array(self, node: Sequence[object], path: str, depth: int, u: _Unit) -> _Code:
        codes = [self.expr(e, f"{path}[{i}]", depth + 1, u) for i, e in enumerate(node)]
        if all(c.value is not _NOCONST for c in codes):
            frozen = tuple(c.value for c in codes)
            k = self.const(frozen)
            nested = any(v.__class__ is tuple or v is _EMPTY for v in frozen)
            return _Code(f"_thaw({k})" if nested else f"list({k})", False, frozen)
        return _Code("[" + "".join(f"{c.src}, " for c in codes) + "]")

    def operation(  # noqa: PLR0912 - validation, then one dispatch per operator family
        self, node: Mapping[object, object], path: str, depth: int, u: _Unit
    ) -> _Code:
        ((op, args),) = node.items()
        if not isinstance(op, str):
            raise CriteriaError(f"an object key must be a string, not {_show(op)}", path=path)
        op_path = _key_path(path, op)
        if op not in _ARITY:
            raise CriteriaError(f"unknown operator {op!r}", path=op_path)
        if isinstance(args, (list, tuple)):
            self.count(op_path, depth + 1)
            nodes = list(args)
            paths = [f"{op_path}[{i}]" for i in range(len(nodes))]
            arg_depth = depth + 2
        elif op in _ARRAY_ONLY:
            raise CriteriaError(f"{op!r} needs an array of operands", path=op_path)
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
            raise CriteriaError(
                f"{op!r} takes {expected} {count} operand{'' if count == 1 else 's'}, "
                f"got {len(nodes)}",
                path=op_path,
            )
        if op in ("and", "or"):
            if not nodes:
                return _Code("False", True, _NOCONST)
            return self.and_or(op == "and", nodes, paths, arg_depth, u)
        if op in ("if", "?:"):
            return self.if_chain(nodes, paths, arg_depth, u)
        if op in _ITERATORS or op in ("none", "reduce"):
            return self.iterate(op, nodes, paths, depth=arg_depth, u=u)
        codes = [self.expr(n, p, arg_depth, u) for n, p in zip(nodes, paths, strict=True)]
        return self.simple(op, codes, op_path, u)

    def simple(self, op: str, codes: list[_Code], op_path: str, u: _Unit) -> _Code:  # noqa: PLR0911, PLR0912
        srcs = "".join(f"{c.src}, " for c in codes)
        if op == "var":
            return self.var(codes, u)
        if op in _REL_OPS:
            return self.chain(codes, u, lambda a, b: self.relation(op, a, b, u))
        if op in ("==", "==="):
            return _Code(self.equality(op == "===", codes[0], codes[1], u), True)
        if op in ("!=", "!=="):
            return _Code(f"(not {self.equality(op == '!==', codes[0], codes[1], u)})", True)
        if op in ("!", "!!"):
            if not codes:
                return _Code("True" if op == "!" else "False", True)
            return self.truth(codes[0], negate=op == "!", u=u)
        if op == "in":
            return self.membership(codes[0], codes[1], u)
        if op in _ARITH:
            path = self.const(op_path)
            if not codes:
                return _Code("0" if op == "+" else "1")
            if len(codes) == 1 and op in ("+", "-", "/"):
                one = codes[0].src
                template = {"+": "_tonum({}, {})", "-": "_neg({}, {})", "/": "_div((1, {}), {})"}
                return _Code(template[op].format(one, path))
            return _Code(f"{_ARITH[op]}(({srcs}), {path})")
        if op == "cat":
            return _Code(f"_cat(({srcs}))" if codes else "''")
        if op == "substr":
            return _Code(f"_substr({srcs})")
        if op == "merge":
            return _Code(f"_merge(({srcs}))" if codes else "[]")
        if op == "missing":
            return _Code(f"_missing(data, ({srcs}))")
        if op == "missing_some":
            return _Code(f"_missing_some(data, {srcs})")
        raise AssertionError(op)  # pragma: no cover - every operator is handled above

    # -- operators -------------------------------------------------------------------------

    def var(self, codes: list[_Code], u: _Unit) -> _Code:
        if not codes:
            return _Code("data")
        path = codes[0].value
        default = codes[1].src if len(codes) > 1 else None
        if path is None or (path.__class__ is str and path == ""):
            return _Code("data")
        if path is _NOCONST or path.__class__ is tuple or path is _EMPTY:
            return _Code(f"_var(data, {codes[0].src}, {default or 'None'})")
        parts = to_string(path).split(".")
        u.uses_get = True
        first = self.const(parts[0])
        if len(parts) == 1:
            return _Code(f"g({first})" if default is None else f"g({first}, {default})")
        rest = self.const(tuple(parts[1:]))
        return _Code(f"_dig(g({first}, _MISS), {rest}, {default or 'None'})")

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

    def relation(self, op: str, a: _Code, b: _Code, u: _Unit) -> str:
        pyop, helper = _REL_OPS[op]
        if a.value is _NOCONST and b.value is not _NOCONST:
            guard = self.guard(b.value)
            if guard:
                t = u.temp()
                return (
                    f"({t} {pyop} {b.src} if ({t} := {a.src}).__class__ {guard} "
                    f"else {helper}({t}, {b.src}))"
                )
        if b.value is _NOCONST and a.value is not _NOCONST:
            guard = self.guard(a.value)
            if guard:
                t = u.temp()
                return (
                    f"({a.src} {pyop} {t} if ({t} := {b.src}).__class__ {guard} "
                    f"else {helper}({a.src}, {t}))"
                )
        return f"{helper}({a.src}, {b.src})"

    @staticmethod
    def guard(value: object) -> str | None:
        """Return the type test under which Python's operator gives JavaScript's answer."""
        if _is_number_const(value):
            return "in _NUMT"
        if value.__class__ is str:
            return "is str"
        return None

    def equality(self, strict: bool, a: _Code, b: _Code, u: _Unit) -> str:
        helper = "_seq" if strict else "_leq"
        if a.value is not _NOCONST and b.value is _NOCONST:
            a, b = b, a  # equality is symmetric and a constant has no effects
        if a.value is _NOCONST and b.value is not _NOCONST:
            if b.value is None:
                return f"({a.src} is None)"
            if strict and b.value.__class__ is bool:
                return f"({a.src} is {b.src})"
            guard = self.guard(b.value)
            if guard:
                t = u.temp()
                return (
                    f"({t} == {b.src} if ({t} := {a.src}).__class__ {guard} "
                    f"else {helper}({t}, {b.src}))"
                )
        return f"{helper}({a.src}, {b.src})"

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
            candidates = tuple(v for v in value if not (v.__class__ is tuple or v is _EMPTY))
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

    def and_or(
        self, is_and: bool, nodes: list[object], paths: list[str], depth: int, u: _Unit
    ) -> _Code:
        """Generate ``and`` / ``or``: the deciding operand, as in JavaScript.

        Long operand lists become a balanced tree of generated functions (``and`` is
        associative), so neither Python's parser nor the compiler's stack grows with them.
        """
        if len(nodes) <= _CHAIN:
            codes = [self.expr(n, p, depth, u) for n, p in zip(nodes, paths, strict=True)]
        else:
            codes = [
                self.call_unit(
                    lambda nu, g=g: self.and_or(  # type: ignore[misc]
                        is_and, [nodes[i] for i in g], [paths[i] for i in g], depth, nu
                    ),
                    depth,
                )
                for g in self.groups(len(nodes))
            ]
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
        self, op: str, nodes: list[object], paths: list[str], *, depth: int, u: _Unit
    ) -> _Code:
        items = self.expr(nodes[0], paths[0], depth, u)
        if items.value is not _NOCONST and items.value.__class__ is not tuple:
            raise CriteriaError(f"{op!r} needs an array to go through", path=paths[0])
        fn, _ = self.unit(lambda nu: self.expr(nodes[1], paths[1], depth, nu), depth)
        if op == "reduce":
            initial = self.expr(nodes[2], paths[2], depth, u).src if len(nodes) > 2 else "None"
            return _Code(f"_reduce({fn}, {items.src}, {initial})")
        helper = _ITERATORS.get(op, "_none")
        return _Code(f"{helper}({fn}, {items.src})", op in _ITERATORS_BOOL)


def _generate(rule: object, max_depth: int, max_nodes: int) -> tuple[str, dict[str, object]]:
    """Return the generated source and its constants (exposed for tests and debugging)."""
    compiler = _Compiler(max_depth, max_nodes)
    try:
        compiler.unit(lambda u: compiler.expr(rule, "$", 0, u), 0, entry=True)
    except CriteriaError:
        raise
    except RecursionError:  # pragma: no cover - the depth limit keeps the stack shallow
        raise CriteriaError("the document is too complex to compile") from None
    except Exception as e:  # a Python-built document whose Mapping or sequence fails to read
        raise CriteriaError(f"the document cannot be read: {type(e).__name__}: {e}") from e
    return "\n\n".join(reversed(compiler.units)) + "\n", compiler.consts


def compile_logic(
    rule: object, *, max_depth: int = DEFAULT_MAX_DEPTH, max_nodes: int = DEFAULT_MAX_NODES
) -> CompiledLogic:
    """Validate a JSON Logic document and compile it into a function of the data.

    ``rule`` is the parsed JSON (``dict``, ``list``, ``str``, numbers, ``bool``, ``None``).
    Everything that is wrong with it raises :class:`~salesprocess.errors.CriteriaError` here,
    naming the JSON path of the fault: an unknown operator, a wrong number of operands, an
    object with several keys where an operation belongs, a value that is not JSON, nesting
    deeper than ``max_depth`` or more than ``max_nodes`` values.

    The returned function takes the data (any Mapping, a sequence, a scalar) and returns the
    JSON Logic result. It raises only :class:`CriteriaError`: for arithmetic that has no number
    as its result (``NaN``, division by zero) and for failures of the data itself.

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
    source, consts = _generate(rule, max_depth, max_nodes)
    namespace: dict[str, object] = {"__builtins__": {}, **_RUNTIME, **consts}
    try:
        code = compile(source, "<json-logic>", "exec")
    except (RecursionError, MemoryError, SyntaxError) as e:  # pragma: no cover - limits prevent
        raise CriteriaError("the document is too complex to compile") from e
    # The source comes only from the templates above (see _Compiler); no document text is in it.
    exec(code, namespace)  # noqa: S102
    entry = namespace["_f0"]
    assert callable(entry)
    return entry
