"""Accounts as JSON text, exactly: what the SQL adapters keep in their ``data`` column.

Why a converter and not hand-written ``to_dict``/``from_dict`` code: the account is a tree of
attrs classes that will grow (referrals, preferences, assets). A ``cattrs`` converter derives a
specialised (un)structuring function for every attrs class from its fields, once, so a field
added to :class:`~salesprocess.account.Account` or to one of its parts round-trips with no change
here. Only the leaf types that JSON cannot hold natively get a hook:

- ``Decimal`` (money amounts) is written as its string, ``"12.50"``, never as a float, so the
  exponent is kept too (``Decimal("1.10")`` comes back as ``1.10``, not ``1.1``).
- An aware ``datetime`` is written in ISO 8601 with its UTC offset. A ``zoneinfo.ZoneInfo``
  zone is kept by its IANA key in the RFC 9557 suffix, ``"2026-03-29T01:30:00+01:00[Europe/
  Berlin]"``: it comes back with the same wall time, zone and offset. If the zone is missing on
  the reading machine, or its rules changed so that the wall time and offset no longer agree,
  the instant wins: the value comes back at the stored offset (converted to the zone when it
  exists). Any other ``tzinfo`` (a fixed ``timezone``, pytz, dateutil) is kept as its offset.
  A naive datetime is refused.
- A ``date`` (an asset's install date) is written as ``"2015-05-01"``.
- ``Stage`` is written as its name; ``Channel`` and ``CallOutcome`` as their values.
- :class:`~salesprocess.account.Attributes` hold any JSON value. Mappings stay mappings and
  tuples become arrays. A ``Decimal`` value is written as the tagged object
  ``{"$decimal": "1.10"}``; so that a user's own mapping can never be read as a tag, every key
  that starts with ``$`` is escaped by doubling the ``$`` on the way out and undoubling it on
  the way in. A stored object with a single-``$`` key other than ``$decimal`` is foreign.

Reading is strict: text that is not JSON (or nests too deeply to read), a missing field, an
unknown field (say, written by a newer salesprocess), or a value of the wrong type raises
:class:`~salesprocess.errors.StorageError` naming the field, e.g. ``$.history[0].at``. Fields
with a default may be absent, so data written before a field was added still loads. Writing an
account that holds a value no JSON writer can write (an integer of thousands of digits, values
nested thousands deep) raises :class:`~salesprocess.errors.ValidationError` naming the field.

>>> from datetime import UTC, datetime
>>> from salesprocess.account import Account, Source
>>> account = Account("a-1", "Acme", Source("referral"), datetime(2026, 1, 5, tzinfo=UTC),
...                   attributes={"employees": 40, "budget": Decimal("1.10")})
>>> text = dumps(account)
>>> loads(text) == account
True
>>> loads('{"id": "a-1", "name": 5}')  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
salesprocess.errors.StorageError: stored account a-1 is not a valid account: expected a ...
"""

from __future__ import annotations

import importlib
import json
import math
import threading
import types
import typing
from collections import OrderedDict
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from contextlib import suppress
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Final, NamedTuple, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import cattrs
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.fns import identity
from cattrs.gen import make_dict_unstructure_fn, override

from salesprocess.account import Account, Attributes, HistoryEntry, Referral, Source
from salesprocess.checks import clipped, require_int
from salesprocess.errors import SalesProcessError, StorageError, ValidationError
from salesprocess.stage import Stage

__all__ = [
    "DECIMAL_TAG",
    "ENCODER",
    "CacheInfo",
    "DecodeCache",
    "cached_loads",
    "converter",
    "created_key",
    "dumps",
    "dumps_lead",
    "encode_json",
    "from_json_value",
    "loads",
    "misfiled",
    "moment_from_text",
    "moment_text",
    "referrals_of",
    "remember",
    "to_json_value",
]

#: The key of the one-key object that stands for a ``Decimal`` inside account attributes.
DECIMAL_TAG: Final = "$decimal"

_NONE_TYPE: Final = type(None)
# Attribute values that JSON holds as they are (exact types: subclasses take the slow path).
_PLAIN: Final = frozenset({str, int, float, bool, _NONE_TYPE})


class _Refused(ValueError):
    """A stored value has the wrong JSON type or shape (becomes a StorageError)."""


# --- leaf hooks -------------------------------------------------------------------------------


def _datetime_to_text(value: datetime) -> str:
    text = value.isoformat()
    zone = value.tzinfo
    if isinstance(zone, ZoneInfo) and zone.key is not None:
        return f"{text}[{zone.key}]"
    return text


@lru_cache(maxsize=256)
def _zone(key: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _datetime_from_text(value: object, _type: object = None) -> datetime:
    if type(value) is not str:
        raise _Refused(f"expected an ISO 8601 datetime string, got {_describe(value)}")
    try:
        if value[-1:] != "]":
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise _Refused(f"datetime {value!r} has no UTC offset")
            return moment
        text, _, key = value[:-1].partition("[")
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        if isinstance(exc, _Refused):
            raise
        raise _Refused(f"{value!r} is not an ISO 8601 datetime") from None
    offset = moment.utcoffset()
    if offset is None:
        raise _Refused(f"datetime {value!r} has no UTC offset")
    zone = _zone(key)
    if zone is None:
        return moment  # zone unknown here: keep the instant at its stored offset
    local = moment.replace(tzinfo=zone)
    if local.utcoffset() == offset:
        return local
    local = local.replace(fold=1)
    if local.utcoffset() == offset:
        return local
    return moment.astimezone(zone)  # the zone's rules changed: the instant wins


def moment_text(moment: datetime) -> str:
    """Return an aware datetime as :func:`dumps` writes it (ISO 8601, offset, IANA zone key)."""
    return _datetime_to_text(moment)


def moment_from_text(text: str) -> datetime:
    """Return the datetime :func:`moment_text` wrote; ``StorageError`` if ``text`` is not one."""
    try:
        return _datetime_from_text(text)
    except _Refused as exc:
        raise StorageError(f"a stored moment is not valid: {exc}") from None


def _date_from_text(value: object, _type: object = None) -> date:
    if type(value) is not str:
        raise _Refused(f"expected an ISO 8601 date string, got {_describe(value)}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _Refused(f"{value!r} is not an ISO 8601 date") from None


def _decimal_from_text(value: object, _type: object = None) -> Decimal:
    if type(value) is not str:
        raise _Refused(f"expected a decimal number as a string, got {_describe(value)}")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise _Refused(f"{value!r} is not a decimal number") from None


def _stage_from_text(value: object, _type: object = None) -> Stage:
    if type(value) is not str:
        raise _Refused(f"expected a stage name, got {_describe(value)}")
    return Stage(value)


def _strict_str(value: object, _type: object = None) -> str:
    if type(value) is not str:
        raise _Refused(f"expected a string, got {_describe(value)}")
    return value


def _strict_int(value: object, _type: object = None) -> int:
    if type(value) is not int:
        raise _Refused(f"expected an integer, got {_describe(value)}")
    return value


def _strict_float(value: object, _type: object = None) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise _Refused(f"expected a number, got {_describe(value)}")


def _strict_bool(value: object, _type: object = None) -> bool:
    if type(value) is not bool:
        raise _Refused(f"expected true or false, got {_describe(value)}")
    return value


def _describe(value: object) -> str:
    kind = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
    if value is None:
        return "null"
    text = repr(value)
    return f"{kind} {text[:40]}{'...' if len(text) > 40 else ''}"


# --- attributes -------------------------------------------------------------------------------


def _attributes_to_json(value: Attributes) -> Any:
    for key, item in value.items():
        if key[:1] == "$" or type(item) not in _PLAIN:
            return _mapping_to_json(value)
    return value  # only plain JSON values under plain keys: json writes it as it is


def _mapping_to_json(value: Mapping[str, object]) -> dict[str, object]:
    return {
        (f"${key}" if key[:1] == "$" else key): _value_to_json(item) for key, item in value.items()
    }


def _value_to_json(value: object) -> object:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if isinstance(value, bool | int | float | str):  # subclasses: keep the JSON kind
        return value
    if isinstance(value, Decimal):
        return {DECIMAL_TAG: str(value)}
    if isinstance(value, Mapping):
        return _mapping_to_json(value)
    if isinstance(value, tuple | list):
        return [_value_to_json(item) for item in value]
    raise TypeError(f"attribute value of type {kind.__name__} is not JSON")


def _attributes_from_json(value: object, _type: object = None) -> Attributes:
    if type(value) is not dict:
        raise _Refused(f"expected an object of attributes, got {_describe(value)}")
    result = _mapping_from_json(value, "attributes")
    if not isinstance(result, Attributes):
        raise _Refused(f"attributes must be an object, got the tagged value {value!r}")
    return result


def _mapping_from_json(value: dict[str, object], path: str) -> Attributes | Decimal:
    for key, item in value.items():
        if key[:1] == "$" or type(item) is dict or type(item) is list:
            break
    else:
        return Attributes(value)  # nothing to decode: no tags, no arrays, no nested objects
    if DECIMAL_TAG in value:
        text = value[DECIMAL_TAG]
        if len(value) != 1 or type(text) is not str:
            raise _Refused(f"{path}: a {DECIMAL_TAG} tag must be alone and hold a string")
        try:
            return Decimal(text)
        except InvalidOperation:
            raise _Refused(f"{path}: {text!r} is not a decimal number") from None
    items: list[tuple[str, object]] = []
    for key, item in value.items():
        if key[:1] == "$":
            if key[1:2] != "$":
                raise _Refused(f"{path}: unknown tag {key!r} (keys starting with $ are escaped)")
            key = key[1:]  # noqa: PLW2901 - undo the escape
        items.append((key, _value_from_json(item, f"{path}.{key}")))
    return Attributes(items)


def _value_from_json(value: object, path: str) -> object:
    kind = type(value)
    if kind is dict:
        return _mapping_from_json(cast("dict[str, object]", value), path)
    if kind is list:
        return tuple(
            _value_from_json(item, f"{path}[{i}]")
            for i, item in enumerate(cast("list[object]", value))
        )
    return value


# --- containers -------------------------------------------------------------------------------
# cattrs' own hooks for these are generic (a generator per tuple, a dispatch per element); these
# factories resolve the element's hook once and give the generated code a plain comprehension.


def _optional_inner(kind: object) -> object | None:
    if typing.get_origin(kind) not in (types.UnionType, typing.Union):
        return None
    args = typing.get_args(kind)
    if len(args) != 2 or _NONE_TYPE not in args:
        return None
    inner: object = args[0] if args[1] is _NONE_TYPE else args[1]
    return inner


def _tuple_item(kind: object) -> object | None:
    if typing.get_origin(kind) is not tuple:
        return None
    args = typing.get_args(kind)
    return args[0] if len(args) == 2 and args[1] is Ellipsis else None


def _optional_unstructure(made: cattrs.Converter) -> Callable[[Any], Any]:
    def factory(kind: Any) -> Callable[[Any], Any]:
        inner = made.get_unstructure_hook(_optional_inner(kind))
        if inner is identity:
            return identity  # the generated code then reads the field directly
        return lambda value: None if value is None else inner(value)

    return factory


def _optional_structure(made: cattrs.Converter) -> Callable[[Any], Any]:
    def factory(kind: Any) -> Callable[[Any, Any], Any]:
        inner_type = _optional_inner(kind)
        inner = made.get_structure_hook(inner_type)
        return lambda value, _type: None if value is None else inner(value, inner_type)

    return factory


def _tuple_unstructure(made: cattrs.Converter) -> Callable[[Any], Any]:
    def factory(kind: Any) -> Callable[[Any], Any]:
        item = made.get_unstructure_hook(_tuple_item(kind))
        if item is identity:
            return list
        return lambda value: [item(element) for element in value] if value else []

    return factory


def _tuple_structure(made: cattrs.Converter) -> Callable[[Any], Any]:
    def factory(kind: Any) -> Callable[[Any, Any], Any]:
        item_type = _tuple_item(kind)
        item = made.get_structure_hook(item_type)

        def structure(value: object, _type: object) -> tuple[Any, ...]:
            if type(value) is not list:
                raise _Refused(f"expected an array, got {_describe(value)}")
            if not value:
                return ()
            try:
                return tuple([item(element, item_type) for element in value])
            except Exception:
                raise _item_errors(value, item, item_type, kind) from None

        return structure

    return factory


def _item_errors(
    value: list[Any], item: Callable[[Any, Any], Any], item_type: Any, kind: Any
) -> IterableValidationError:
    """Structure each item again, collecting its error noted with its index (for $.x[3])."""
    errors: list[Exception] = []
    for index, element in enumerate(value):
        try:
            item(element, item_type)
        except Exception as exc:
            note = IterableValidationNote(f"Structuring {kind} @ index {index}", index, item_type)
            exc.__notes__ = [*getattr(exc, "__notes__", []), note]
            errors.append(exc)
    return IterableValidationError(f"While structuring {kind!r}", errors, kind)


# --- the converter ----------------------------------------------------------------------------


def _make_converter() -> cattrs.Converter:
    # Defaults are left out of the text (a missing field reads as its default, which is also how
    # data written before a field existed loads); that keeps rows small and encoding quick.
    # Sets (a frozenset a future field may hold) become arrays: JSON has no sets.
    made = cattrs.Converter(
        forbid_extra_keys=True,
        detailed_validation=True,
        omit_if_default=True,
        unstruct_collection_overrides={AbstractSet: list},
    )
    made.register_unstructure_hook(datetime, _datetime_to_text)
    made.register_structure_hook(datetime, _datetime_from_text)
    made.register_unstructure_hook(date, date.isoformat)
    made.register_structure_hook(date, _date_from_text)
    made.register_unstructure_hook(Decimal, str)
    made.register_structure_hook(Decimal, _decimal_from_text)
    made.register_unstructure_hook(Stage, identity)  # a str: JSON writes its name
    made.register_structure_hook(Stage, _stage_from_text)
    made.register_unstructure_hook(Attributes, _attributes_to_json)
    made.register_structure_hook(Attributes, _attributes_from_json)
    made.register_structure_hook(str, _strict_str)
    made.register_structure_hook(int, _strict_int)
    made.register_structure_hook(float, _strict_float)
    made.register_structure_hook(bool, _strict_bool)
    made.register_unstructure_hook_factory(
        lambda kind: _optional_inner(kind) is not None, _optional_unstructure(made)
    )
    made.register_structure_hook_factory(
        lambda kind: _optional_inner(kind) is not None, _optional_structure(made)
    )
    made.register_unstructure_hook_factory(
        lambda kind: _tuple_item(kind) is not None, _tuple_unstructure(made)
    )
    made.register_structure_hook_factory(
        lambda kind: _tuple_item(kind) is not None, _tuple_structure(made)
    )
    # The stage is always written: it is the one field a reader should never have to infer.
    # Attributes too: comparing them with their default would build an empty one per call.
    made.register_unstructure_hook(
        Account,
        make_dict_unstructure_fn(
            Account,
            made,
            _cattrs_omit_if_default=True,
            stage=override(omit_if_default=False),
            attributes=override(omit_if_default=False),
        ),
    )
    return made


#: The converter between an :class:`~salesprocess.account.Account` and JSON-ready values.
#: Register hooks on it for a new leaf type an extended account carries.
converter: Final[cattrs.Converter] = _make_converter()

_unstructure_account = converter.get_unstructure_hook(Account)
_structure_account = converter.get_structure_hook(Account)


def _not_json(value: object) -> object:
    raise TypeError(f"a value of type {type(value).__name__} cannot be written as JSON")


_encode: Callable[[object], str] = json.JSONEncoder(
    ensure_ascii=False,
    check_circular=False,
    allow_nan=False,
    separators=(",", ":"),
    default=_not_json,
).encode
# JSONEncoder.encode builds a new C encoder on every call; build it once (same settings) when
# this interpreter has the C accelerator. That is a tenth of the cost of a small account.


def _c_encoder() -> Callable[[object, int], Any] | None:
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython has it
        return None
    try:  # the private signature of CPython 3.11 to 3.14; anything else keeps encode()
        made: Callable[[object, int], Any] = make(
            None, _not_json, json.encoder.encode_basestring, None, ":", ",", False, False, False
        )
        made({"probe": [1, 0.5, None, True, "x"]}, 0)
    except (TypeError, ValueError):  # pragma: no cover
        return None
    return made


_c_encode = _c_encoder()
if _c_encode is not None:  # pragma: no branch
    _c_encode_call = _c_encode

    def _encode_fast(value: object) -> str:
        return "".join(_c_encode_call(value, 0))

    _encode = _encode_fast


def _optional_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:  # pragma: no cover - depends on the environment
        return None


#: Which JSON writer :func:`dumps` uses: ``"orjson"`` when that package is installed (it
#: writes the same JSON values about five times faster than the standard library), else
#: ``"json"``. Reading always uses the standard library, which keeps big integers exact.
ENCODER: str = "json"
_encode_stdlib = _encode
_orjson = _optional_module("orjson")
if _orjson is not None:
    ENCODER = "orjson"
    _orjson_dumps = _orjson.dumps
    _OrjsonError = _orjson.JSONEncodeError

    def _encode_orjson(value: object) -> str:
        try:
            text: str = _orjson_dumps(value).decode()
            return text
        except _OrjsonError:  # an int beyond 64 bits, a str or float subclass, a surrogate
            return _encode_stdlib(value)

    _encode = _encode_orjson
_decode = json.JSONDecoder().decode


def encode_json(value: object) -> str:
    """Return JSON values (as :func:`to_json_value` gives them) as the text :func:`dumps` writes."""
    return _encode(value)


def to_json_value(account: Account) -> dict[str, Any]:
    """Return ``account`` as a dict of JSON values (what :func:`dumps` encodes)."""
    result: dict[str, Any] = _unstructure_account(account)
    return result


def dumps(account: Account, *, version: int | None = None) -> str:
    """Return ``account`` as compact JSON text that :func:`loads` turns back into it exactly.

    ``version``, when given, is written instead of ``account.version``: an adapter storing a
    new account at version 1 need not copy the account first.
    """
    try:
        value = _unstructure_account(account)
        if version is not None:
            value["version"] = version
        return _encode(value)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, SalesProcessError):
            raise
        # An int whose text is beyond the interpreter's digit limit, or nesting beyond its
        # recursion limit: name the field rather than leak the writer's error.
        raise _unwritable(account, exc) from None


def dumps_lead(account: Account, *, version: int) -> str:
    """Return ``dumps(account, version=version)``: the same text, sooner for a bare lead.

    A lead as a capture makes it (one history entry; no purchase, call, screening, referral,
    code, preference or asset; not do-not-contact) is a bulk load's every row: its value is
    built here from its fields, in the order and with the omissions of the converter's, rather
    than by the generic walk. Any other account is written by :func:`dumps`.
    """
    history = account.history
    if (
        type(account) is not Account
        or len(history) != 1
        or account.purchases
        or account.calls
        or account.screenings
        or account.do_not_contact
        or account.referral_code is not None
        or account.referral_requests
        or account.referrals
        or account.referral_cards
        or account.preferences
        or account.assets
        or type(history[0]) is not HistoryEntry
        or type(account.source) is not Source
    ):
        return dumps(account, version=version)
    entry = history[0]
    source = account.source
    created = _datetime_to_text(account.created_at)
    origin: dict[str, object] = {"channel": source.channel.value}
    if source.campaign is not None:
        origin["campaign"] = source.campaign
    if source.referred_by is not None:
        origin["referred_by"] = source.referred_by
    change: dict[str, object] = {
        "from_stage": entry.from_stage,
        "to_stage": entry.to_stage,
        "event": entry.event,
        "at": created if entry.at is account.created_at else _datetime_to_text(entry.at),
    }
    if entry.actor is not None:
        change["actor"] = entry.actor
    if entry.reason is not None:
        change["reason"] = entry.reason
    value: dict[str, object] = {
        "id": account.id,
        "name": account.name,
        "source": origin,
        "created_at": created,
        "attributes": _attributes_to_json(account.attributes),
        "stage": account.stage,
    }
    if account.email is not None:
        value["email"] = account.email
    if account.phone is not None:
        value["phone"] = account.phone
    value["history"] = [change]
    value["version"] = version
    try:
        return _encode(value)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, SalesProcessError):
            raise
        raise _unwritable(account, exc) from None


def _unwritable(account: Account, exc: BaseException) -> ValidationError:
    where = "attributes"
    with suppress(RecursionError):  # nested too deeply to walk: name the attributes
        where = _unwritable_path(account.attributes, "attributes") or where
    return ValidationError(
        f"account {account.id}: {where} cannot be written as JSON: {exc}", field=where
    )


def _unwritable_path(value: object, path: str) -> str | None:
    """Return the path of the first value under ``value`` that JSON writers refuse, if any."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            int.__repr__(value)
        except ValueError:
            return path
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, Mapping):
        items: typing.Iterable[tuple[str, object]] = (
            (f"{path}.{key}", item) for key, item in value.items()
        )
    elif isinstance(value, tuple | list):
        items = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for where, item in items:
        found = _unwritable_path(item, where)
        if found is not None:
            return found
    return None


def from_json_value(value: object) -> Account:
    """Return the account ``value`` (a decoded JSON object) describes.

    Raises ``StorageError`` naming what is wrong when it does not describe one.
    """
    if type(value) is not dict:
        raise StorageError(f"a stored account must be a JSON object, got {_describe(value)}")
    try:
        account: Account = _structure_account(value, Account)
    except (cattrs.BaseValidationError, SalesProcessError, ValueError, TypeError) as exc:
        raise _refusal(value, exc) from None
    except RecursionError:
        raise _refusal(value, ValueError("its values nest too deeply")) from None
    return account


def misfiled(key: str, account: Account) -> StorageError:
    """Return the error for a row stored under ``key`` whose data holds another account.

    Served as it is, the account would be saved back to its own id's row: a write to the wrong
    account. Such a row was written by hand, or the data is damaged.
    """
    return StorageError(
        f"the row of account {clipped(key)} holds account {clipped(account.id)}: the stored "
        "data is damaged or was edited by hand"
    )


def loads(text: str | bytes) -> Account:
    """Return the account that ``text`` (written by :func:`dumps`) holds.

    Raises ``StorageError`` naming what is wrong when ``text`` is not JSON or not an account.
    """
    try:
        value = _decode(text) if type(text) is str else json.loads(text)
    except (ValueError, TypeError) as exc:
        raise StorageError(f"a stored account is not JSON text: {exc}") from None
    except RecursionError:
        raise StorageError("a stored account nests too deeply to be read as JSON") from None
    return from_json_value(value)


def referrals_of(text: str) -> tuple[Referral, ...]:
    """Return the referrals of the account ``text`` (written by :func:`dumps`) holds.

    Only that part is decoded: a report reading the referrals of many accounts need not
    build each whole account. Raises ``StorageError`` as :func:`loads` does.
    """
    try:
        value = _decode(text)
    except (ValueError, TypeError) as exc:
        raise StorageError(f"a stored account is not JSON text: {exc}") from None
    except RecursionError:
        raise StorageError("a stored account nests too deeply to be read as JSON") from None
    if type(value) is not dict:
        raise StorageError(f"a stored account is not a JSON object: {_describe(value)}")
    try:
        found: tuple[Referral, ...] = converter.structure(
            value.get("referrals", []), tuple[Referral, ...]
        )
    except Exception as exc:  # cattrs raises many kinds; each means a bad row
        raise StorageError(f"the referrals of a stored account cannot be read: {exc}") from None
    return found


class CacheInfo(NamedTuple):
    """How the decode cache has fared: the fields of ``functools.lru_cache``'s ``cache_info()``."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


class DecodeCache:
    """Accounts decoded lately, by the JSON text they were decoded from (least recently used go).

    Decoding is most of the cost of reading an account, and an app reads the same unchanged
    accounts again and again. The same text always decodes to an equal account, accounts are
    immutable, and a stored account's text changes whenever it does (its version is in it), so
    the adapters share decoded accounts through one cache, :data:`cached_loads`.

    Unlike ``functools.lru_cache`` it can be told a pair it did not decode itself
    (:meth:`remember`): an adapter that has just written an account has both its text and the
    account at hand, so the next read of it in this process costs no decoding at all. Safe to
    share between threads: one lock guards the entries (decoding runs outside it).
    """

    __slots__ = ("_entries", "_hits", "_lock", "_misses", "maxsize")

    def __init__(self, maxsize: int = 2048) -> None:
        self.maxsize: Final = require_int(maxsize, "maxsize", low=1)
        self._entries: OrderedDict[str, Account] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def __call__(self, text: str) -> Account:
        """Return :func:`loads` of ``text``, reusing the account decoded from it lately."""
        entries = self._entries
        with self._lock:
            account = entries.get(text)
            if account is not None:
                entries.move_to_end(text)
                self._hits += 1
                return account
            self._misses += 1
        account = loads(text)  # outside the lock: two threads may decode alike, both correctly
        self.remember(text, account)
        return account

    def remember(self, text: str, account: Account) -> None:
        """Keep ``account`` as what ``text`` decodes to, the most recently used entry.

        ``text`` must be what :func:`dumps` wrote for ``account`` (so that it decodes to an
        equal account): that is the one thing the cache relies on.
        """
        entries = self._entries
        with self._lock:
            entries[text] = account
            entries.move_to_end(text)
            if len(entries) > self.maxsize:
                entries.popitem(last=False)

    def cache_clear(self) -> None:
        """Forget every entry and reset the counts."""
        with self._lock:
            self._entries.clear()
            self._hits = self._misses = 0

    def cache_info(self) -> CacheInfo:
        """Return the hits and misses since the last clear, the size limit and the size."""
        with self._lock:
            return CacheInfo(self._hits, self._misses, self.maxsize, len(self._entries))

    def __repr__(self) -> str:
        return f"<DecodeCache: {self.cache_info()}>"


#: Decode stored text into an account, sharing the accounts decoded (or written, see
#: :func:`remember`) lately: the last 2048 texts. Called like :func:`loads` with a ``str``;
#: ``cached_loads.cache_clear()`` empties it (benchmarks do, to time decoding).
cached_loads: Final = DecodeCache(maxsize=2048)


def remember(text: str, account: Account) -> None:
    """Prime :data:`cached_loads`: ``text`` (what :func:`dumps` wrote) holds ``account``.

    The adapters call it after writing an account, so that the next read of it in this process
    returns the account written instead of decoding the text again.
    """
    cached_loads.remember(text, account)


def _refusal(value: dict[str, Any], exc: BaseException) -> StorageError:
    name = value.get("id")
    who = f"stored account {name}" if type(name) is str else "a stored account"
    if isinstance(exc, cattrs.BaseValidationError):
        problems = "; ".join(cattrs.transform_error(exc, format_exception=_format_problem))
    else:
        problems = str(exc)
    return StorageError(f"{who} is not a valid account: {problems}")


def _format_problem(exc: BaseException, _type: type | None) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown fields {sorted(exc.extra_fields)} (written by a newer salesprocess?)"
    return str(exc) or type(exc).__name__


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def created_key(moment: datetime) -> int:
    """Return ``moment`` as integer microseconds since 1970-01-01 UTC.

    The SQL adapters keep ``created_at`` in this form beside the JSON, so that accounts sort by
    instant whatever offset each was captured in.

    >>> created_key(datetime(1970, 1, 1, 1, tzinfo=UTC))
    3600000000
    """
    return (moment - _EPOCH) // _MICROSECOND
