"""JSON views and JSON Schemas of the public values, for web APIs and OpenAPI documents.

:func:`to_json` turns an account, a part of one, money, an event, a report or a command's
answer into plain JSON values (``dict``, ``list``, ``str``, ``int``, ``bool``, ``None``; a
``float`` only where a user put one into attributes); :func:`from_json` reads such a document
back, strictly; :func:`json_schema` describes it as a JSON Schema 2020-12 document.

One ``cattrs`` converter of this module's own does the work (it is not the storage
converter, :mod:`salesprocess.storage.serialise`, whose text is an internal format): it derives
the (un)structuring function of every attrs class and named tuple from its fields, and a hook
per leaf type says how that type looks in JSON. The schema is generated from the same fields
and the same leaf table, so a field added to a class shows in its view, its reading and its
schema at once.
The shapes:

- every field is present, defaults included; tuples are arrays;
- ``Money`` is ``{"amount": "12.00", "currency": "EUR"}``: the amount a string of its exact
  digits (never a float), the currency its ISO 4217 code;
- a ``Decimal`` (a rate, a monetary sum) is a string of digits: ``"0.7500"``;
- a ``datetime`` is ISO 8601 with its UTC offset: ``"2026-01-05T09:30:00+01:00"``; a
  ``date`` is ``"2026-01-05"``; a ``timedelta`` is an ISO 8601 duration in days, hours,
  minutes and seconds: ``"P3DT4H30M"`` (``"PT0S"`` for none, ``-`` before a negative one);
- a stage or an enum member is its string value: ``"prospect"``, ``"inbound_inquiry"``;
- a mapping keyed by stage, channel or currency is an object keyed by that string;
- account attributes (and a criteria clause's ``actual`` values) are the JSON values they
  hold; a ``Decimal`` among them is the one-key object ``{"$decimal": "1.10"}``, and a key of
  the user's own that starts with ``$`` is written with the ``$`` doubled, so that no user
  data can pass for the tag;
- a domain event carries its class name as ``"type"``, first: ``{"type": "AccountQualified",
  "account_id": ...}``, so that one reader, ``from_json(DomainEvent, document)``, answers
  any event as its own class.

>>> from salesprocess.money import Money
>>> to_json(Money("12.00", "EUR"))
{'amount': '12.00', 'currency': 'EUR'}
>>> from_json(Money, {"amount": "12.00", "currency": "EUR"})
Money('12.00', 'EUR')
>>> from_json(Money, {"amount": 12.5, "currency": "EUR"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
salesprocess.errors.ValidationError: not a valid Money: amount: expected a decimal number ...
"""

from __future__ import annotations

import enum
import functools
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Literal, TypeAlias, TypeVar, overload

import attrs
import cattrs
from cattrs.cols import namedtuple_dict_structure_factory, namedtuple_dict_unstructure_factory
from cattrs.errors import (
    AttributeValidationNote,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn

from salesprocess.account import MAX_ATTRIBUTE_DEPTH, Attributes
from salesprocess.checks import shown
from salesprocess.errors import ValidationError
from salesprocess.events import DomainEvent
from salesprocess.money import Money
from salesprocess.stage import Stage
from salesprocess.storage.serialise import DECIMAL_TAG

__all__ = ["DIALECT", "JSON", "from_json", "json_schema", "to_json"]

#: A JSON document as :func:`to_json` returns it and :func:`from_json` reads it: a ``dict``,
#: ``list``, ``str``, ``int``, ``float``, ``bool`` or ``None``, nested. Typed ``Any`` so that a
#: caller can index a view (``to_json(account)["stage"]``) without a cast.
JSON: TypeAlias = Any

#: The JSON Schema dialect :func:`json_schema` writes (the one OpenAPI 3.1 uses).
DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"

_T = TypeVar("_T")
_NONE_TYPE: Final = type(None)
_PLAIN: Final = frozenset({str, int, float, bool, _NONE_TYPE})


class _Fault(ValueError):
    """A JSON value of the wrong shape; ``where`` is its path below the hook that read it."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where


def _describe(value: object) -> str:
    if value is None:
        return "null"
    kind = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), f"a {type(value).__name__}")
    text = repr(value)
    return f"{kind} {text[:40]}{'...' if len(text) > 40 else ''}"


# --- leaf types: how each looks in JSON, how it is read back, and its schema ----------------

_DIGITS: Final = r"-?[0-9]+(\.[0-9]+)?"
_DATE: Final = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_OFFSET: Final = r"([+-][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?|Z)"
_DATETIME: Final = rf"{_DATE}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(\.[0-9]{{1,6}})?{_OFFSET}"
_DURATION: Final = r"-?P(?!$)([0-9]+D)?(T(?=[0-9])([0-9]+H)?([0-9]+M)?([0-9]+(\.[0-9]{1,6})?S)?)?"
_DURATION_PARTS: Final = re.compile(
    r"(-)?P(?:([0-9]+)D)?(?:T(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+)(?:\.([0-9]{1,6}))?S)?)?"
)
_IS_DIGITS: Final = re.compile(_DIGITS)
_IS_DATE: Final = re.compile(_DATE)
_IS_DATETIME: Final = re.compile(_DATETIME)
_IS_DURATION: Final = re.compile(_DURATION)


def _text(value: object) -> str:
    if type(value) is not str:
        raise _Fault(f"expected a string, got {_describe(value)}")
    return value


def _decimal_to_json(value: Decimal) -> str:
    # Written out in full, a Decimal such as 9e999999999999999999 would not fit in memory; the
    # library's own (Money, attributes) stay far inside this bound.
    if not value.is_finite() or not -_DIGITS_OUT < value.adjusted() < _DIGITS_OUT:
        raise ValidationError(
            f"the decimal {shown(value)} has no JSON view: only a finite one of less than "
            f"{_DIGITS_OUT} digits either side of the point",
            field="value",
        )
    return format(value, "f")  # the exact digits, never an exponent: "1E+3" is "1000"


_DIGITS_OUT: Final = 1000


def _decimal_from_json(value: object, _kind: object = None) -> Decimal:
    if type(value) is not str or _IS_DIGITS.fullmatch(value) is None:
        raise _Fault(
            f'expected a decimal number as a string of digits such as "12.00", '
            f"got {_describe(value)}"
        )
    return Decimal(value)


def _datetime_to_json(value: datetime) -> str:
    return value.isoformat()


def _datetime_from_json(value: object, _kind: object = None) -> datetime:
    text = _text(value)
    if _IS_DATETIME.fullmatch(text) is None:
        naive = re.fullmatch(rf"{_DATE}T[0-9:.]+", text) is not None
        raise _Fault(
            f"datetime {text!r} has no UTC offset (write it as 2026-01-05T09:30:00+01:00)"
            if naive
            else f"expected an ISO 8601 datetime with its UTC offset, got {_describe(value)}"
        )
    try:
        return datetime.fromisoformat(text)
    except ValueError as error:
        raise _Fault(f"{text!r} is not a datetime: {error}") from None


def _date_from_json(value: object, _kind: object = None) -> date:
    text = _text(value)
    if _IS_DATE.fullmatch(text) is None:
        raise _Fault(f"expected an ISO 8601 date such as 2026-01-05, got {_describe(value)}")
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise _Fault(f"{text!r} is not a date: {error}") from None


def _duration_to_json(value: timedelta) -> str:
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if value.microseconds:
        time += f"{seconds}.{value.microseconds:06d}".rstrip("0") + "S"
    elif seconds:
        time += f"{seconds}S"
    days = f"{value.days}D" if value.days else ""
    if not days and not time:
        return "PT0S"
    return f"{sign}P{days}{'T' if time else ''}{time}"


def _duration_from_json(value: object, _kind: object = None) -> timedelta:
    text = _text(value)
    parts = _DURATION_PARTS.fullmatch(text) if _IS_DURATION.fullmatch(text) else None
    if parts is None:
        raise _Fault(
            f"expected an ISO 8601 duration in days, hours, minutes and seconds such as "
            f"P3DT4H30M, got {_describe(value)}"
        )
    sign, days, hours, minutes, seconds, fraction = parts.groups()
    try:
        length = timedelta(
            days=int(days or 0),
            hours=int(hours or 0),
            minutes=int(minutes or 0),
            seconds=int(seconds or 0),
            microseconds=int((fraction or "").ljust(6, "0")),
        )
    except OverflowError:
        raise _Fault(f"duration {text!r} is too long") from None
    return -length if sign else length


def _stage_to_json(value: Stage) -> str:
    return str(value)  # an exact str, not the Stage subclass


def _stage_from_json(value: object, _kind: object = None) -> Stage:
    try:
        return Stage(_text(value))
    except ValidationError as error:
        raise _Fault(str(error)) from None


def _float_from_json(value: object, _kind: object = None) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise _Fault(f"expected a number, got {_describe(value)}")


def _strict(kind: type, wanted: str) -> Callable[[object, object], Any]:
    def structure(value: object, _kind: object = None) -> Any:
        if type(value) is not kind:
            raise _Fault(f"expected {wanted}, got {_describe(value)}")
        return value

    return structure


# --- JSON values: account attributes and criteria clause values -------------------------------


def _key_path(key: str) -> str:
    return f".{key}"


def _value_to_json(value: object) -> JSON:  # noqa: PLR0911 - one shape per kind of value
    kind = type(value)
    if kind in _PLAIN:
        return value
    if isinstance(value, Decimal):
        return {DECIMAL_TAG: _decimal_to_json(value)}
    if isinstance(value, Mapping):
        return _mapping_to_json(value)
    if isinstance(value, tuple | list):
        return [_value_to_json(item) for item in value]
    if isinstance(value, str) and not isinstance(value, enum.Enum):
        return str.__str__(value)
    if isinstance(value, int) and not isinstance(value, enum.Enum):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return to_json(value)  # a value of a richer type (a date, money, a stage) as its view


def _mapping_to_json(value: Mapping[str, object]) -> dict[str, JSON]:
    for key, item in value.items():
        if type(key) is not str or key[:1] == "$" or type(item) not in _PLAIN:
            break
    else:
        return dict(value)  # only plain values under plain keys: a copy is the view
    return {
        (f"${key}" if key[:1] == "$" else str(key)): _value_to_json(item)
        for key, item in value.items()
    }


def _value_from_json(value: object, where: str, depth: int) -> object:
    if depth > MAX_ATTRIBUTE_DEPTH:
        raise _Fault(f"nests deeper than {MAX_ATTRIBUTE_DEPTH} levels", where)
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is list:
        items = typing.cast("list[object]", value)
        return tuple(
            _value_from_json(item, f"{where}[{index}]", depth + 1)
            for index, item in enumerate(items)
        )
    if kind is not dict:
        raise _Fault(f"expected a JSON value, got {_describe(value)}", where)
    mapping = typing.cast("dict[str, object]", value)
    if DECIMAL_TAG in mapping:
        text = mapping[DECIMAL_TAG]
        if len(mapping) != 1:
            raise _Fault(f"a {DECIMAL_TAG} object holds that one key only", where)
        try:
            return _decimal_from_json(text)
        except _Fault as fault:
            raise _Fault(str(fault), f"{where}.{DECIMAL_TAG}") from None
    result: dict[str, object] = {}
    for key, item in mapping.items():
        if type(key) is not str:
            raise _Fault(f"keys must be strings, got {_describe(key)}", where)
        name = key
        if key[:1] == "$":
            if key[1:2] != "$":
                raise _Fault(
                    f"unknown tag {key!r}: a key of your own that starts with $ is written "
                    "with the $ doubled",
                    where + _key_path(key),
                )
            name = key[1:]
        result[name] = _value_from_json(item, where + _key_path(name), depth + 1)
    return result


def _attributes_to_json(value: Attributes) -> dict[str, JSON]:
    return _mapping_to_json(value)


def _attributes_from_json(value: object, _kind: object = None) -> Attributes:
    if type(value) is not dict:
        raise _Fault(f"expected an object, got {_describe(value)}")
    decoded = _value_from_json(value, "", 0)
    try:
        return Attributes.freeze(decoded, "")
    except ValidationError as error:
        raise _Fault(str(error), error.field or "") from None


def _any_from_json(value: object, _kind: object = None) -> object:
    decoded = _value_from_json(value, "", 0)
    if isinstance(decoded, dict):
        try:
            return Attributes.freeze(decoded, "")
        except ValidationError as error:
            raise _Fault(str(error), error.field or "") from None
    return decoded


# The schemas of the leaves, beside their hooks: the one place that says what each looks like.
_JSON_VALUE_NOTE: Final = (
    'JSON values; a Decimal is the object {"$decimal": "1.10"}, and a key of your own that '
    "starts with $ is written with the $ doubled."
)
_LEAVES: Final[dict[object, tuple[Callable[[Any], Any] | None, Callable[..., Any], JSON]]] = {
    str: (None, _strict(str, "a string"), {"type": "string"}),
    int: (None, _strict(int, "an integer"), {"type": "integer"}),
    bool: (None, _strict(bool, "true or false"), {"type": "boolean"}),
    float: (None, _float_from_json, {"type": "number"}),
    _NONE_TYPE: (None, _strict(_NONE_TYPE, "null"), {"type": "null"}),
    Decimal: (
        _decimal_to_json,
        _decimal_from_json,
        {
            "type": "string",
            "pattern": f"^{_DIGITS}$",
            "description": "A decimal number as a string of its exact digits.",
        },
    ),
    datetime: (
        _datetime_to_json,
        _datetime_from_json,
        {
            "type": "string",
            "format": "date-time",
            "pattern": f"^{_DATETIME}$",
            "description": "An ISO 8601 datetime with its UTC offset.",
        },
    ),
    date: (
        date.isoformat,
        _date_from_json,
        {"type": "string", "format": "date", "pattern": f"^{_DATE}$"},
    ),
    timedelta: (
        _duration_to_json,
        _duration_from_json,
        {
            "type": "string",
            "format": "duration",
            "pattern": f"^{_DURATION}$",
            "description": "An ISO 8601 duration in days, hours, minutes and seconds.",
        },
    ),
    Stage: (
        _stage_to_json,
        _stage_from_json,
        {
            "type": "string",
            "description": "A lifecycle stage: a lower-case identifier.",
            "examples": [str(stage) for stage in (Stage.PROSPECT, Stage.CUSTOMER)],
        },
    ),
    Attributes: (
        _attributes_to_json,
        _attributes_from_json,
        {"type": "object", "description": f"Facts about the account: {_JSON_VALUE_NOTE}"},
    ),
    object: (
        _value_to_json,
        _any_from_json,
        {"description": f"Any JSON value: {_JSON_VALUE_NOTE}"},
    ),
}
_LEAVES[Any] = _LEAVES[object]

#: Schemas of single fields that say more than their type: (class, field name) -> schema.
_FIELD_SCHEMAS: Final[dict[tuple[type, str], JSON]] = {
    (Money, "currency"): {
        "type": "string",
        "pattern": "^[A-Z]{3}$",
        "description": "An ISO 4217 currency code.",
    },
}


# --- type shapes the factories recognise ------------------------------------------------------


def _optional_inner(kind: object) -> object | None:
    if typing.get_origin(kind) not in (types.UnionType, typing.Union):
        return None
    args = typing.get_args(kind)
    if len(args) != 2 or _NONE_TYPE not in args:
        return None
    inner: object = args[0] if args[1] is _NONE_TYPE else args[1]
    return inner


def _sequence_item(kind: object) -> object | None:
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item: object = args[0]
        return item
    if origin in (list, Sequence) and len(args) == 1:
        only: object = args[0]
        return only
    return None


def _mapping_items(kind: object) -> tuple[object, object] | None:
    if typing.get_origin(kind) not in (dict, Mapping):
        return None
    args = typing.get_args(kind)
    return (args[0], args[1]) if len(args) == 2 else None


def _is_enum(kind: object) -> bool:
    return isinstance(kind, type) and issubclass(kind, enum.Enum)


def _is_event(kind: object) -> bool:
    return isinstance(kind, type) and issubclass(kind, DomainEvent)


def _is_named_tuple(kind: object) -> bool:
    return isinstance(kind, type) and issubclass(kind, tuple) and hasattr(kind, "_fields")


def _is_record(kind: object) -> bool:
    """Whether ``kind`` is a class of named fields: an attrs class or a named tuple."""
    return isinstance(kind, type) and (attrs.has(kind) or _is_named_tuple(kind))


_NO_DEFAULT: Final = object()


def _record_fields(record: type) -> list[tuple[str, object, object]]:
    """Return (name, type, default or ``_NO_DEFAULT``) for each field ``record`` is built from."""
    if _is_named_tuple(record):
        hints = typing.get_type_hints(record)
        defaults: dict[str, object] = getattr(record, "_field_defaults", {})
        names: tuple[str, ...] = getattr(record, "_fields", ())
        return [(name, hints[name], defaults.get(name, _NO_DEFAULT)) for name in names]
    found: list[tuple[str, object, object]] = []
    for spec in attrs.fields(attrs.resolve_types(record)):
        if not spec.init:
            continue
        default: object = spec.default
        if default is attrs.NOTHING:
            default = _NO_DEFAULT
        else:
            factory = getattr(default, "factory", None)  # an attrs.Factory
            if callable(factory) and not getattr(default, "takes_self", True):
                default = factory()
        found.append((spec.name, spec.type, default))
    return found


def _event_classes(kind: type[DomainEvent]) -> dict[str, type[DomainEvent]]:
    """``kind`` and every subclass of it, by the name their views carry as ``type``."""
    found: dict[str, type[DomainEvent]] = {}
    pending = [kind]
    while pending:
        current = pending.pop(0)
        found.setdefault(current.__name__, current)
        pending.extend(current.__subclasses__())
    return found


# --- the converter ----------------------------------------------------------------------------


def _enum_to_json(value: enum.Enum) -> JSON:
    return _value_to_json(value.value)


@functools.cache
def _enum_members(kind: type[enum.Enum]) -> tuple[dict[tuple[type, object], enum.Enum], str]:
    members = {(type(member.value), member.value): member for member in kind}
    return members, ", ".join(str(member.value) for member in kind)


def _enum_from_json(value: object, kind: type[enum.Enum]) -> enum.Enum:
    members, choices = _enum_members(kind)
    found = members.get((type(value), value)) if type(value) in _PLAIN else None
    if found is None:
        raise _Fault(f"unknown {kind.__name__} {_describe(value)}; expected one of {choices}")
    return found


def _optional_unstructure(made: cattrs.Converter) -> Callable[[Any], Callable[[Any], Any]]:
    def factory(kind: Any) -> Callable[[Any], Any]:
        inner = made.get_unstructure_hook(_optional_inner(kind))
        return lambda value: None if value is None else inner(value)

    return factory


def _optional_structure(made: cattrs.Converter) -> Callable[[Any], Callable[[Any, Any], Any]]:
    def factory(kind: Any) -> Callable[[Any, Any], Any]:
        inner_type = _optional_inner(kind)
        inner = made.get_structure_hook(inner_type)
        return lambda value, _kind: None if value is None else inner(value, inner_type)

    return factory


def _sequence_unstructure(made: cattrs.Converter) -> Callable[[Any], Callable[[Any], Any]]:
    def factory(kind: Any) -> Callable[[Any], Any]:
        item = made.get_unstructure_hook(_sequence_item(kind))
        return lambda value: [item(element) for element in value]

    return factory


def _noted(exc: Exception, index: int | str, kind: object) -> Exception:
    note = IterableValidationNote(f"Structuring {kind} @ {index!r}", index, kind)
    exc.__notes__ = [*getattr(exc, "__notes__", []), note]
    return exc


def _sequence_structure(made: cattrs.Converter) -> Callable[[Any], Callable[[Any, Any], Any]]:
    def factory(kind: Any) -> Callable[[Any, Any], Any]:
        item_type = _sequence_item(kind)
        item = made.get_structure_hook(item_type)
        build: Callable[[list[Any]], Any] = list if typing.get_origin(kind) is list else tuple

        def structure(value: object, _kind: object) -> Any:
            if type(value) is not list:
                raise _Fault(f"expected an array, got {_describe(value)}")
            result: list[Any] = []
            errors: list[Exception] = []
            for index, element in enumerate(typing.cast("list[object]", value)):
                try:
                    result.append(item(element, item_type))
                except Exception as exc:  # collected, each with its index
                    errors.append(_noted(exc, index, item_type))
            if errors:
                raise IterableValidationError(f"While structuring {kind!r}", errors, kind)
            return build(result)

        return structure

    return factory


def _key_to_json(key: object) -> str:
    if type(key) is str:
        return key
    if isinstance(key, enum.Enum):
        key = key.value
    if isinstance(key, str):
        return str.__str__(key)
    raise TypeError(f"a mapping key of type {type(key).__name__} has no JSON view")


def _mapping_unstructure(made: cattrs.Converter) -> Callable[[Any], Callable[[Any], Any]]:
    def factory(kind: Any) -> Callable[[Any], Any]:
        _, value_type = _mapping_items(kind) or (str, object)
        value_hook = made.get_unstructure_hook(value_type)
        return lambda value: {_key_to_json(k): value_hook(v) for k, v in value.items()}

    return factory


def _mapping_structure(made: cattrs.Converter) -> Callable[[Any], Callable[[Any, Any], Any]]:
    def factory(kind: Any) -> Callable[[Any, Any], Any]:
        key_type, value_type = _mapping_items(kind) or (str, object)
        key_hook = made.get_structure_hook(key_type)
        value_hook = made.get_structure_hook(value_type)

        def structure(value: object, _kind: object) -> dict[Any, Any]:
            if type(value) is not dict:
                raise _Fault(f"expected an object, got {_describe(value)}")
            result: dict[Any, Any] = {}
            errors: list[Exception] = []
            for key, item in typing.cast("dict[str, object]", value).items():
                try:
                    result[key_hook(key, key_type)] = value_hook(item, value_type)
                except Exception as exc:  # collected, each with its key
                    errors.append(_noted(exc, str(key), value_type))
            if errors:
                raise IterableValidationError(f"While structuring {kind!r}", errors, kind)
            return result

        return structure

    return factory


def _record_unstructure(made: cattrs.Converter) -> Callable[[Any], Callable[[Any], Any]]:
    def factory(kind: Any) -> Callable[[Any], Any]:
        if _is_named_tuple(kind):
            return namedtuple_dict_unstructure_factory(kind, made, False, True)
        fields = make_dict_unstructure_fn(kind, made)
        if not _is_event(kind):
            return fields
        name = kind.__name__
        return lambda value: {"type": name, **fields(value)}

    return factory


def _record_structure(made: cattrs.Converter) -> Callable[[Any], Callable[[Any, Any], Any]]:
    def factory(kind: Any) -> Callable[[Any, Any], Any]:
        if _is_named_tuple(kind):
            fields = namedtuple_dict_structure_factory(kind, made, True, True, True)
        else:
            fields = make_dict_structure_fn(
                kind, made, _cattrs_forbid_extra_keys=True, _cattrs_detailed_validation=True
            )
        if not _is_event(kind):

            def structure(value: object, _kind: object) -> Any:
                if type(value) is not dict:
                    raise _Fault(f"expected an object, got {_describe(value)}")
                return fields(value, kind)

            return structure

        def structure_event(value: object, _kind: object) -> Any:
            if type(value) is not dict:
                raise _Fault(f"expected an object, got {_describe(value)}")
            document = typing.cast("dict[str, object]", value)
            if "type" not in document:
                raise _Fault("required field missing", ".type")
            known = _event_classes(kind)
            name = document["type"]
            chosen = known.get(name) if type(name) is str else None
            if chosen is None:
                raise _Fault(
                    f"unknown event type {_describe(name)}; expected one of "
                    f"{', '.join(sorted(known))}",
                    ".type",
                )
            body = {key: item for key, item in document.items() if key != "type"}
            if chosen is kind:
                return fields(body, kind)
            return made.get_structure_hook(chosen)(value, chosen)

        return structure_event

    return factory


def _make_converter() -> cattrs.Converter:
    made = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    # Predicates, not classes: a class hook would also catch subclasses (str catches Stage and
    # every StrEnum), and the exact type is what decides here. Later registrations win.
    made.register_unstructure_hook_factory(_is_record, _record_unstructure(made))
    made.register_structure_hook_factory(_is_record, _record_structure(made))
    made.register_unstructure_hook_factory(
        lambda kind: _mapping_items(kind) is not None, _mapping_unstructure(made)
    )
    made.register_structure_hook_factory(
        lambda kind: _mapping_items(kind) is not None, _mapping_structure(made)
    )
    made.register_unstructure_hook_factory(
        lambda kind: _sequence_item(kind) is not None, _sequence_unstructure(made)
    )
    made.register_structure_hook_factory(
        lambda kind: _sequence_item(kind) is not None, _sequence_structure(made)
    )
    made.register_unstructure_hook_factory(
        lambda kind: _optional_inner(kind) is not None, _optional_unstructure(made)
    )
    made.register_structure_hook_factory(
        lambda kind: _optional_inner(kind) is not None, _optional_structure(made)
    )
    # cattrs consults hooks registered by class (a singledispatch, by the MRO) before any
    # predicate: its own str and int hooks would catch Stage and every StrEnum, so the leaves
    # and the enums are registered by class too; StrEnum and IntEnum come before str and int
    # in their members' MRO, Enum does not.
    for base in (enum.Enum, enum.StrEnum, enum.IntEnum):
        made.register_unstructure_hook(base, _enum_to_json)
        made.register_structure_hook(base, _enum_from_json)
    for kind, (dump, load, _schema) in _LEAVES.items():
        if kind is object or kind is Any:  # by class, it would catch every class
            assert dump is not None
            made.register_unstructure_hook_func(lambda t: t is object or t is Any, dump)
            made.register_structure_hook_func(lambda t: t is object or t is Any, load)
            continue
        if dump is not None:
            made.register_unstructure_hook(kind, dump)
        made.register_structure_hook(kind, load)
    return made


_converter: Final = _make_converter()
_unstructure_hook: Final = _converter.get_unstructure_hook


def to_json(value: object) -> JSON:
    """Return the JSON view of ``value``: plain JSON values, ready for ``json.dumps``.

    ``value`` is any public value (an account or a part of it, money, an event, a report, a
    command's answer), or a list, tuple or mapping of them (``sales.time_in_stage()``). The
    shapes are those of the module documentation; raises ``TypeError`` for a value with no
    JSON view.

    >>> from salesprocess.account import Source
    >>> to_json(Source("referral", campaign="expo"))
    {'channel': 'referral', 'campaign': 'expo', 'referred_by': None}
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if _is_record(kind) or (kind in _LEAVES and kind is not object) or _is_enum(kind):
        return _unstructure_hook(kind)(value)
    if kind is list or kind is tuple:
        return [to_json(item) for item in typing.cast("Sequence[object]", value)]
    if isinstance(value, Mapping):
        return {_key_to_json(key): to_json(item) for key, item in value.items()}
    raise TypeError(f"a value of type {kind.__name__} has no JSON view")


@overload
def from_json(kind: type[_T], document: object) -> _T: ...
@overload
def from_json(kind: Any, document: object) -> Any: ...
def from_json(kind: Any, document: object) -> Any:
    """Return the value of type ``kind`` that ``document`` (a :func:`to_json` view) describes.

    ``kind`` is a public class (``Account``, ``Money``, ``PurchaseRow``, a report, an event
    class, ``DomainEvent`` for any event by its ``type``) or a type such as
    ``list[RfmRow]``. Fields with a default may be left out (they take it). Reading is strict:
    a document that does not match :func:`json_schema` (``mode="input"``), an unknown field, an
    unknown enum value or stage, a datetime without offset, an amount that is a number and not
    a string, or a value the class itself refuses raises
    :class:`~salesprocess.errors.ValidationError`, whose ``field`` is the JSON path of the
    first fault (``purchases[2].amount.amount``; ``$`` for the document itself) and whose
    message lists every fault found.

    >>> from salesprocess.account import Source
    >>> from_json(Source, {"channel": "referral"})
    Source(channel=<Channel.REFERRAL: 'referral'>, campaign=None, referred_by=None)
    >>> from_json(Source, {"channel": "fax"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    salesprocess.errors.ValidationError: not a valid Source: channel: unknown Channel ...
    """
    try:
        hook = _converter.get_structure_hook(kind)
    except cattrs.StructureHandlerNotFoundError:
        raise TypeError(f"{_type_name(kind)} has no JSON view to read") from None
    try:
        return hook(document, kind)
    except RecursionError:
        raise ValidationError(
            f"not a valid {_type_name(kind)}: the document nests too deeply", field="$"
        ) from None
    except Exception as exc:  # every fault becomes one ValidationError
        faults = [(_rooted(path), message) for path, message in _faults(exc, "")]
        listed = "; ".join(f"{path}: {message}" for path, message in faults[:10])
        more = f"; and {len(faults) - 10} more" if len(faults) > 10 else ""
        raise ValidationError(
            f"not a valid {_type_name(kind)}: {listed}{more}", field=faults[0][0]
        ) from None


def _rooted(path: str) -> str:
    """Return ``path`` as shown: ``$`` for the document itself, ``$[2]`` in a top array."""
    return path if path and path[0] != "[" else f"${path}"


def _note_path(exc: BaseException) -> str:
    path = ""
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, AttributeValidationNote):
            path += f".{note.name}"
        elif isinstance(note, IterableValidationNote):
            path += f"[{note.index}]" if isinstance(note.index, int) else _key_path(note.index)
    return path


def _faults(exc: BaseException, path: str) -> Iterator[tuple[str, str]]:
    """Yield (JSON path, message) for each fault under ``exc``, found at ``path``."""
    if isinstance(exc, cattrs.BaseValidationError | BaseExceptionGroup):
        record = getattr(exc, "cl", None)
        for inner in exc.exceptions:
            where = path + _note_path(inner)
            if isinstance(inner, ValidationError) and not _note_path(inner):
                where += _constructor_field(record, inner.field)  # the class itself refused
            yield from _faults(inner, where)
        return
    if isinstance(exc, _Fault):
        yield (path + exc.where).lstrip("."), str(exc)
    elif isinstance(exc, ForbiddenExtraKeysError):
        extra = sorted(exc.extra_fields)
        yield f"{path}.{extra[0]}".lstrip("."), f"unknown field{'s' * (len(extra) > 1)} {extra}"
    elif isinstance(exc, KeyError):
        yield path.lstrip("."), "required field missing"
    else:
        yield path.lstrip("."), str(exc) or type(exc).__name__


def _constructor_field(record: object, field: str | None) -> str:
    """Return the path, below a class, of the field its constructor's error names."""
    if field is None or not _is_record(record):
        return ""
    names = [name for name, _, _ in _record_fields(typing.cast("type", record))]
    if field in names:
        return f".{field}"
    # A shared check names the value by what it is ("referral_code" for a Referral's code).
    close = [name for name in names if field.endswith(name) or name.endswith(field)]
    return f".{max(close, key=len)}" if close else ""


# --- JSON Schema ------------------------------------------------------------------------------


def _type_name(kind: object) -> str:
    if isinstance(kind, type):
        return kind.__name__
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is not None and args:
        inner = ", ".join("..." if arg is Ellipsis else _type_name(arg) for arg in args)
        return f"{_type_name(origin)}[{inner}]"
    return str(kind)


def _summary(kind: type) -> str | None:
    text = (kind.__doc__ or "").strip()
    if not text or text.startswith(f"{kind.__name__}("):  # attrs' generated signature
        return None
    return " ".join(text.split("\n\n", 1)[0].split())


class _Schemas:
    """Builds the schema of a type, collecting the classes it uses under ``$defs``."""

    def __init__(self, mode: Literal["view", "input"], ref_prefix: str) -> None:
        self.mode = mode
        self.ref_prefix = ref_prefix
        self.defs: dict[str, JSON] = {}
        self.names: dict[type, str] = {}

    def of(self, kind: object) -> JSON:  # noqa: PLR0911 - one shape per kind of type
        leaf = _LEAVES.get(kind)
        if leaf is not None:
            return dict(leaf[2])
        inner = _optional_inner(kind)
        if inner is not None:
            return {"anyOf": [self.of(inner), {"type": "null"}]}
        item = _sequence_item(kind)
        if item is not None:
            return {"type": "array", "items": self.of(item)}
        items = _mapping_items(kind)
        if items is not None:
            schema: JSON = {"type": "object", "additionalProperties": self.of(items[1])}
            if _is_enum(items[0]):
                schema["propertyNames"] = self.of(items[0])
            return schema
        if _is_enum(kind):
            values = [_enum_to_json(member) for member in typing.cast("type[enum.Enum]", kind)]
            return {"enum": values, "title": typing.cast("type", kind).__name__}
        if _is_record(kind):
            record = typing.cast("type", kind)
            if _is_event(record) and len(_event_classes(record)) > 1:
                return {"oneOf": [self.ref(each) for each in _event_classes(record).values()]}
            return self.ref(record)
        raise TypeError(f"{_type_name(kind)} has no JSON view, so no JSON Schema")

    def ref(self, record: type) -> JSON:
        name = self.names.get(record)
        if name is None:
            name = record.__name__
            if name in self.defs:  # two classes of one name: qualify the later one
                name = f"{record.__module__}.{record.__qualname__}"
            self.names[record] = name
            self.defs[name] = {}  # taken, before the fields (which may name this class again)
            self.defs[name] = self.body(record)
        return {"$ref": f"{self.ref_prefix}{name}"}

    def body(self, record: type) -> JSON:
        properties: dict[str, JSON] = {}
        required: list[str] = []
        if _is_event(record):
            properties["type"] = {"const": record.__name__}
            required.append("type")
        for name, kind, default in _record_fields(record):
            field = _FIELD_SCHEMAS.get((record, name))
            schema = dict(field) if field is not None else self.of(kind)
            if default is _NO_DEFAULT or self.mode == "view":
                required.append(name)
            else:
                schema = {**schema, "default": to_json(default)}
            properties[name] = schema
        body: JSON = {"title": record.__name__, "type": "object"}
        summary = _summary(record)
        if summary:
            body["description"] = summary
        body.update(properties=properties, required=required, additionalProperties=False)
        return body


def json_schema(
    kind: Any,
    *,
    mode: Literal["view", "input"] = "view",
    ref_prefix: str = "#/$defs/",
) -> dict[str, JSON]:
    """Return the JSON Schema (2020-12) of ``kind``'s JSON view, for OpenAPI 3.1 and validators.

    ``mode="view"`` (the default) describes what :func:`to_json` writes: every field is
    required. ``mode="input"`` describes what :func:`from_json` reads: a field with a default
    may be left out, and its ``default`` is given.

    The classes used inside are under ``$defs``, and the document has an ``$id``, so that its
    references resolve wherever it is embedded. For an OpenAPI document whose tools want every
    schema under ``components/schemas``, pass ``ref_prefix="#/components/schemas/"``: the
    references then point there (and there is no ``$id``); move the ``$defs`` entries there.

    >>> schema = json_schema(Money)
    >>> schema["required"], schema["properties"]["amount"]["type"]
    (['amount', 'currency'], 'string')
    """
    if not isinstance(mode, str) or mode not in ("view", "input"):
        raise ValidationError(f"mode must be 'view' or 'input', got {shown(mode)}", field="mode")
    if not isinstance(ref_prefix, str) or not ref_prefix.startswith("#"):
        raise ValidationError(
            "ref_prefix must be a JSON pointer fragment such as '#/$defs/', got "
            f"{shown(ref_prefix)}",
            field="ref_prefix",
        )
    schemas = _Schemas(mode, ref_prefix)
    root = schemas.of(kind)
    name = _type_name(kind)
    document: dict[str, JSON] = {"$schema": DIALECT}
    if ref_prefix == "#/$defs/":
        document["$id"] = _schema_id(name, mode)
    own = schemas.names.get(kind) if isinstance(kind, type) else None
    if own is not None and root == {"$ref": f"{ref_prefix}{own}"}:
        document.update(schemas.defs.pop(own))  # the class itself is the document
    else:
        document.update(root)
    if schemas.defs:
        document["$defs"] = schemas.defs
    return document


def _schema_id(name: str, mode: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
    return f"urn:salesprocess:json:{slug}{':input' if mode == 'input' else ''}"
