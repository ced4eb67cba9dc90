"""Argument checks shared by the whole library, written once.

The same few checks guard nearly every public entry point: an ``int`` that is not a ``bool``
(``True`` is an ``int`` to Python, but no count of anything), a float that is not a ``Decimal``
in disguise, text that is not blank. Written out by hand at each call site they drifted apart
in wording, and each copy put the offending value into its message with a bare ``repr()``,
which can raise or run to megabytes. Here each check exists once, refuses with a
:class:`~salesprocess.errors.ValidationError` whose ``field`` names the input, and shows the
value through :func:`shown`, which never raises and stays short.

The ``*_validator`` functions are the same checks in the shape ``attrs.field(validator=...)``
calls, ``(instance, attribute, value)``, naming the field after ``attribute.name``. This module
imports nothing but the standard library and :mod:`salesprocess.errors`, so any module of the
library may use it.

>>> require_int(3, "count", low=1, high=10)
3
>>> require_int(True, "count")
Traceback (most recent call last):
...
salesprocess.errors.ValidationError: count must be an int, not bool True
>>> shown("a" * 1_000_000).endswith("aaa…' (1000000 characters)")
True
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from numbers import Real
from typing import Any, Final, Protocol, TypeVar

from salesprocess.errors import SalesProcessError, ValidationError

__all__ = [
    "Validator",
    "bool_validator",
    "clipped",
    "instance_validator",
    "int_validator",
    "optional_text",
    "optional_text_validator",
    "require_bool",
    "require_instance",
    "require_int",
    "require_items",
    "require_number",
    "require_str",
    "require_text",
    "shown",
    "str_validator",
    "text_validator",
    "unencodable",
]

_T = TypeVar("_T")


class _Named(Protocol):
    """What a validator reads of an ``attrs.Attribute``: its name."""

    @property
    def name(self) -> str: ...


#: An ``attrs`` validator: called with the instance, the attribute and the value. The value is
#: ``Any`` so that attrs' type inference leaves the field's declared type alone.
Validator = Callable[[Any, _Named, Any], None]


def shown(value: object, limit: int = 80) -> str:
    """Return ``repr(value)`` fit for an error message: it never raises and stays short.

    A ``repr()`` that raises gives ``<TypeName object>``; one longer than ``limit`` characters
    is cut, ending in ``…``, and says how long the value was.

    >>> shown("Acme")
    "'Acme'"
    >>> shown("a" * 1000, limit=10)
    "'aaaaaaa…' (1000 characters)"
    >>> shown(list(range(100)), limit=10)
    '[0, 1, 2,… (repr of 390 characters)'
    """
    if isinstance(value, str):
        return _shown_text(value, limit)
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the error being reported
        return f"<{type(value).__name__[:limit]} object>"
    if len(text) <= limit:
        return text
    return f"{text[: max(limit - 1, 0)]}… (repr of {len(text)} characters)"


def clipped(text: str, limit: int = 80) -> str:
    """Return ``text`` as it is, or its start and its length if longer than ``limit``.

    For text a message shows unquoted (an account's name or id): :func:`shown` quotes.

    >>> clipped("Acme")
    'Acme'
    >>> clipped("a" * 1000, limit=10)
    'aaaaaaaaa… (1000 characters)'
    """
    if str.__len__(text) <= limit:
        return text
    return f"{str.__getitem__(text, slice(max(limit - 1, 0)))}… ({str.__len__(text)} characters)"


def _shown_text(value: str, limit: int) -> str:
    # str's own methods: a str subclass may override repr, len or slicing.
    size = str.__len__(value)
    cut = min(size, limit)
    text = str.__repr__(str.__getitem__(value, slice(cut)))
    if cut == size and len(text) <= limit:
        return text
    excess = len(text) + 1 - limit  # the ellipsis takes one more character
    if excess > 0:  # each character takes at least one in the repr: dropping `excess` is enough
        text = str.__repr__(str.__getitem__(value, slice(max(cut - excess, 0))))
    return f"{text[:-1]}…{text[-1]} ({size} characters)"


#: A UTF-16 surrogate code point: Python text may hold one alone, but no UTF-8 encoder (nor
#: SQLite, PostgreSQL, a JSON writer or a terminal) takes it.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def unencodable(text: str) -> bool:
    r"""Whether ``text`` holds a lone surrogate, which no UTF-8 encoder (nor a database) takes.

    Checked once, where text enters the library, so that every adapter gets the same answer
    (the in-memory store would keep such text; SQLite and PostgreSQL cannot). Costs nothing
    for ASCII text: ``str.isascii`` reads a flag CPython keeps.

    >>> unencodable("Zoë 🍣"), unencodable("\ud800")
    (False, True)
    """
    return not text.isascii() and _SURROGATE.search(text) is not None


def _not_unicode(value: str, field: str) -> ValidationError:
    return ValidationError(
        f"{field} must be valid Unicode text, got {shown(value)} (a lone surrogate)", field=field
    )


def _kind(value: object) -> str:
    return f"{type(value).__name__} {shown(value)}"


def _span(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" of at least {low}"
    if high is not None:
        return f" of at most {high}"
    return ""


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in set('aeiou') else 'a'} {noun}"


def require_int(
    value: object, field: str, *, low: int | None = None, high: int | None = None
) -> int:
    """Return ``value`` if it is an ``int`` from ``low`` to ``high`` (each bound optional).

    ``bool`` is refused although it is an ``int``; so are floats (even ``1.0``), ``Decimal``
    and anything else. A refusal is a ``ValidationError`` naming ``field`` and the value.

    >>> require_int(1.0, "limit")
    Traceback (most recent call last):
    ...
    salesprocess.errors.ValidationError: limit must be an int, not float 1.0
    >>> require_int(0, "limit", low=1, high=1000)
    Traceback (most recent call last):
    ...
    salesprocess.errors.ValidationError: limit must be an int from 1 to 1000, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{field} must be an int, not {_kind(value)}", field=field)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValidationError(
            f"{field} must be an int{_span(low, high)}, got {shown(value)}", field=field
        )
    return value


def require_number(
    value: object,
    field: str,
    *,
    low: float | None = None,
    high: float | None = None,
    positive: bool = False,
    kinds: type | tuple[type, ...] = Real,
) -> float:
    """Return ``value`` as a ``float`` if it is a finite real number from ``low`` to ``high``.

    ``bool`` is refused, and so are NaN, the infinities, ``Decimal`` (not a ``numbers.Real``)
    and anything that is not a number. ``positive`` refuses zero and below; ``kinds`` narrows
    the number types accepted (``(int, float)``, say).

    >>> require_number(0.25, "threshold", low=0, high=1)
    0.25
    >>> require_number(0, "weight", positive=True)
    Traceback (most recent call last):
    ...
    salesprocess.errors.ValidationError: weight must be a positive finite number, got 0
    """
    finite = "" if low is not None and high is not None else "finite "
    wanted = f"a {'positive ' if positive else ''}{finite}number{_span(low, high)}"
    if isinstance(value, bool) or not isinstance(value, Real) or not isinstance(value, kinds):
        raise ValidationError(f"{field} must be {wanted}, not {_kind(value)}", field=field)
    try:
        number = float(value)
    except OverflowError:  # an int or Fraction too large for a float is no finite number here
        number = math.inf
    if (
        not math.isfinite(number)
        or (positive and number <= 0)
        or (low is not None and number < low)
        or (high is not None and number > high)
    ):
        raise ValidationError(f"{field} must be {wanted}, got {shown(value)}", field=field)
    return number


def require_text(value: object, field: str) -> str:
    r"""Return ``value`` if it is a ``str`` holding more than white space.

    Text holding a lone surrogate (``"\ud800"``) is refused too: no database can store it.

    >>> require_text("  ", "name")
    Traceback (most recent call last):
    ...
    salesprocess.errors.ValidationError: name must be non-empty text, got '  '
    """
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{field} must be non-empty text, got {shown(value)}", field=field)
    if unencodable(value):
        raise _not_unicode(value, field)
    return value


def require_str(value: object, field: str) -> str:
    """Return ``value`` if it is a ``str`` (empty allowed) without a lone surrogate.

    >>> require_str("", "notes")
    ''
    >>> require_str(b"notes", "notes")
    Traceback (most recent call last):
    ...
    salesprocess.errors.ValidationError: notes must be a str, not bytes b'notes'
    """
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a str, not {_kind(value)}", field=field)
    if unencodable(value):
        raise _not_unicode(value, field)
    return value


def optional_text(value: object, field: str) -> str | None:
    """Return ``value`` if it is ``None`` or non-empty text (see :func:`require_text`)."""
    return None if value is None else require_text(value, field)


def require_bool(value: object, field: str) -> bool:
    """Return ``value`` if it is ``True`` or ``False``; ``1``, ``"yes"`` and the rest are refused.

    >>> require_bool(1, "passed")
    Traceback (most recent call last):
    ...
    salesprocess.errors.ValidationError: passed must be a bool, not int 1
    """
    if not isinstance(value, bool):
        raise ValidationError(f"{field} must be a bool, not {_kind(value)}", field=field)
    return value


def require_instance(value: object, field: str, kind: type[_T]) -> _T:
    """Return ``value`` if it is an instance of ``kind``.

    A ``bool`` passes only when ``kind`` is ``bool``: it is an ``int``, but no count.

    >>> require_instance(5, "account", str)
    Traceback (most recent call last):
    ...
    salesprocess.errors.ValidationError: account must be a str, not int 5
    """
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ValidationError(
            f"{field} must be {_a(kind.__name__)}, not {_kind(value)}", field=field
        )
    return value


# The validators run for every record built, decoded accounts included: each tests the
# common, valid case inline and calls its ``require_*`` only to raise the error.


def text_validator(_instance: object, attribute: _Named, value: Any) -> None:
    """``attrs`` validator: the field holds non-empty text (see :func:`require_text`)."""
    if not isinstance(value, str) or not value.strip() or unencodable(value):
        require_text(value, attribute.name)


def optional_text_validator(_instance: object, attribute: _Named, value: Any) -> None:
    """``attrs`` validator: the field holds ``None`` or non-empty text."""
    if value is not None and (
        not isinstance(value, str) or not value.strip() or unencodable(value)
    ):
        require_text(value, attribute.name)


def str_validator(_instance: object, attribute: _Named, value: Any) -> None:
    """``attrs`` validator: the field holds a ``str``, empty or not (see :func:`require_str`)."""
    if not isinstance(value, str) or unencodable(value):
        require_str(value, attribute.name)


def bool_validator(_instance: object, attribute: _Named, value: Any) -> None:
    """``attrs`` validator: the field holds a ``bool`` (see :func:`require_bool`)."""
    if not isinstance(value, bool):
        require_bool(value, attribute.name)


def int_validator(low: int | None = None, high: int | None = None) -> Validator:
    """Return an ``attrs`` validator: the field holds an int from ``low`` to ``high``."""
    lowest = -math.inf if low is None else low
    highest = math.inf if high is None else high

    def check(_instance: object, attribute: _Named, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
            require_int(value, attribute.name, low=low, high=high)

    return check


def instance_validator(kind: type) -> Validator:
    """Return an ``attrs`` validator: the field holds a ``kind`` (see :func:`require_instance`)."""
    refuse_bool = kind is not bool

    def check(_instance: object, attribute: _Named, value: Any) -> None:
        if not isinstance(value, kind) or (refuse_bool and isinstance(value, bool)):
            require_instance(value, attribute.name, kind)

    return check


def require_items(value: object, field: str) -> Iterator[Any]:
    """Return an iterator over ``value``, a collection of items (a list, a generator, ...).

    ``None``, text, bytes and a single mapping are refused: each is a common slip for a list of
    them. So is an object whose ``__iter__`` fails (the original error is the cause). An
    exception the items' own source raises while they are read (a generator whose file went
    away) is the caller's, and reaches the caller unchanged.

    >>> list(require_items((1, 2), "rows"))
    [1, 2]
    >>> require_items("abc", "account_ids")
    Traceback (most recent call last):
    ...
    salesprocess.errors.ValidationError: account_ids must be a collection of items, not str 'abc'
    """
    if isinstance(value, str | bytes | bytearray | Mapping) or not isinstance(value, Iterable):
        raise ValidationError(
            f"{field} must be a collection of items, not {_kind(value)}", field=field
        )
    try:
        return iter(value)
    except SalesProcessError:
        raise
    except Exception as exc:
        raise ValidationError(
            f"{field} could not be read: its __iter__ raised {type(exc).__name__}", field=field
        ) from exc
