"""Accounts survive JSON exactly, and foreign JSON is refused with a clear StorageError."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import HealthCheck, given, settings

from salesprocess import strategies
from salesprocess.account import Account, Attributes, Call, CallOutcome, Source, StageChange
from salesprocess.errors import StorageError, ValidationError
from salesprocess.stage import Stage
from salesprocess.storage import serialise
from salesprocess.storage.serialise import converter, dumps, from_json_value, loads
from salesprocess.testing import _accounts, _full_account, assert_same_account

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
ROUND_TRIP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def account(**fields: Any) -> Account:
    return Account("acc-1", "Acme", Source("referral"), T0, **fields)


def document(value: Account) -> dict[str, Any]:
    return json.loads(dumps(value))


@ROUND_TRIP
@given(_accounts())
def test_any_account_round_trips_exactly(value: Account) -> None:
    """Every valid account (hostile text, every JSON type, any zone) comes back exactly."""
    assert_same_account(value, loads(dumps(value)))


@ROUND_TRIP
@given(strategies.accounts())
def test_lifecycle_accounts_round_trip_exactly(value: Account) -> None:
    """Accounts built by replaying commands (salesprocess.strategies) come back exactly."""
    assert_same_account(value, loads(dumps(value)))


@ROUND_TRIP
@given(_accounts())
def test_both_json_writers_write_the_same_values(value: Account) -> None:
    """The JSON writer in use (orjson if installed) and the stdlib's write the same values."""
    unstructured = serialise.to_json_value(value)
    fast, standard = serialise._encode(unstructured), serialise._encode_stdlib(unstructured)
    assert json.loads(fast) == json.loads(standard)
    assert_same_account(loads(fast), loads(standard))


def test_the_full_account_round_trips() -> None:
    """An account with every part filled in comes back exactly, at its version."""
    value = attrs.evolve(_full_account(), version=7)
    assert_same_account(value, loads(dumps(value)))
    assert loads(dumps(value, version=8)).version == 8


def test_decimal_amounts_are_strings_with_their_exponent() -> None:
    """Money amounts are written as strings and keep trailing zeros."""
    data = document(_full_account())
    assert data["purchases"][0]["amount"] == {"amount": "1200.10", "currency": "EUR"}


def test_datetimes_keep_offset_and_zone() -> None:
    """Fixed offsets are written as offsets; zoneinfo zones by name (RFC 9557 suffix)."""
    fixed = datetime(2026, 1, 5, 9, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    ambiguous = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN)
    value = account(
        history=(
            StageChange(None, Stage.PROSPECT, "capture", fixed),
            StageChange(None, Stage.PROSPECT, "capture", ambiguous),
        )
    )
    data = document(value)
    assert data["history"][0]["at"] == "2026-01-05T09:30:00+05:30"
    assert data["history"][1]["at"] == "2026-10-25T02:30:00+01:00[Europe/Berlin]"
    loaded = loads(dumps(value)).history[1].at
    assert loaded.tzinfo is BERLIN
    assert loaded.fold == 1
    assert loaded.utcoffset() == timedelta(hours=1)


def test_an_unknown_zone_keeps_the_instant_at_the_stored_offset() -> None:
    """A zone missing on the reading machine falls back to the stored offset."""
    data = document(account())
    data["created_at"] = "2026-01-05T10:30:00+01:00[Mars/Olympus_Mons]"
    loaded = from_json_value(data).created_at
    assert loaded == T0
    assert loaded.utcoffset() == timedelta(hours=1)


def test_changed_zone_rules_keep_the_instant() -> None:
    """If a zone's offset no longer matches the stored one, the instant wins over wall time."""
    data = document(account())
    data["created_at"] = "2026-07-01T12:00:00+05:00[Europe/Berlin]"  # Berlin is +02:00 then
    loaded = from_json_value(data).created_at
    assert loaded == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    assert loaded.tzinfo is BERLIN


def test_decimal_attributes_are_tagged_and_user_keys_escaped() -> None:
    """Decimals in attributes become tags; a user's own $-keys can never be read as one."""
    attributes = {
        "budget": Decimal("1.10"),
        "$decimal": "1.10",
        "nested": {"$decimal": "2.5"},
        "$$": [Decimal("-0")],
    }
    data = document(account(attributes=attributes))
    assert data["attributes"] == {
        "budget": {"$decimal": "1.10"},
        "$$decimal": "1.10",
        "nested": {"$$decimal": "2.5"},
        "$$$": [{"$decimal": "-0"}],
    }
    loaded = loads(dumps(account(attributes=attributes))).attributes
    assert loaded["nested"] == {"$decimal": "2.5"}
    assert isinstance(loaded["nested"], Attributes)
    assert loaded["$$"] == (Decimal("-0"),)


def test_plain_attributes_are_written_as_they_are() -> None:
    """Attributes with only plain JSON values need no rewriting and read back as Attributes."""
    loaded = loads(dumps(account(attributes={"employees": 40, "tags": ["a", "b"]})))
    assert loaded.attributes == {"employees": 40, "tags": ("a", "b")}
    assert isinstance(loaded.attributes, Attributes)


def test_defaults_are_left_out_and_read_back() -> None:
    """Fields at their default are not written (except stage); missing fields read as default."""
    data = document(account())
    assert "calls" not in data
    assert "do_not_contact" not in data
    assert data["stage"] == "prospect"
    assert from_json_value({k: v for k, v in data.items() if k != "attributes"}) == account()


@attrs.frozen
class Referral:
    """A part an account may gain later."""

    account_id: str
    at: datetime
    reward: Decimal


@attrs.frozen
class ExtendedAccount:
    """An account with fields the serialiser has never heard of."""

    account: Account
    referrals: tuple[Referral, ...] = ()
    preferences: frozenset[str] = frozenset()


def test_the_converter_is_generic_over_new_fields() -> None:
    """An extended account (a field added later) round-trips with no serialiser change."""
    value = ExtendedAccount(
        account(calls=(Call(CallOutcome.INTERESTED, T0, "ok"),)),
        (Referral("acc-2", T0.astimezone(BERLIN), Decimal("50.00")),),
        frozenset({"email"}),
    )
    text = json.dumps(converter.unstructure(value))
    assert converter.structure(json.loads(text), ExtendedAccount) == value
    assert '"reward":"50.00"' in text.replace(" ", "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not json", "not JSON text"),
        ("[1, 2]", "must be a JSON object"),
        ('{"id": "a"}', "required field missing @ $.name"),
        ('{"id": 5, "name": "n"}', "expected a string, got int 5 @ $.id"),
    ],
)
def test_foreign_text_is_refused(text: str, expected: str) -> None:
    """Text that is not an account raises StorageError saying what is wrong."""
    with pytest.raises(StorageError, match=expected.replace("$", r"\$").replace("[", r"\[")):
        loads(text)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("surprise",), 1, "unknown fields ['surprise']"),
        (("history", 0, "at"), "2026-01-05T09:30:00", "has no UTC offset @ $.history[0].at"),
        (("history", 0, "at"), "yesterday", "not an ISO 8601 datetime"),
        (("history", 0, "to_stage"), "Not A Stage", "lower-case identifier"),
        (("history", 0, "surprise"), 1, "unknown fields ['surprise']"),
        (("stage",), 7, "expected a stage name"),
        (("source", "channel"), "carrier pigeon", "unknown channel"),
        (("version",), "1", "expected an integer"),
        (("version",), True, "expected an integer"),
        (("do_not_contact",), 0, "expected true or false"),
        (("purchases",), {}, "expected an array"),
        (("purchases", 0, "amount", "amount"), 12.5, "decimal number as a string"),
        (("purchases", 0, "amount", "amount"), "twelve", "not a decimal number"),
        (("purchases", 0, "amount", "amount"), "-5", "cannot be negative"),
        (("attributes",), [], "expected an object of attributes"),
        (("attributes",), {"$decimal": "1"}, "must be an object"),
        (("attributes",), {"x": {"$evil": 1}}, "unknown tag '$evil'"),
        (("attributes",), {"x": {"$decimal": 1}}, "must be alone and hold a string"),
        (("attributes",), {"x": {"$decimal": "1", "y": 2}}, "must be alone"),
        (("attributes",), {"x": {"$decimal": "one"}}, "is not a decimal number"),
        (("email",), "not an email", "not an address"),
        (("name",), " ", "name must be non-empty text"),
    ],
)
def test_foreign_documents_are_refused_naming_the_fault(
    path: tuple[str | int, ...], value: object, expected: str
) -> None:
    """A document with a wrong, missing or unknown part raises StorageError naming it."""
    data = document(_full_account())
    target: Any = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(StorageError) as raised:
        loads(json.dumps(data))
    assert expected in str(raised.value)
    assert "acc-full" in str(raised.value)


def test_bytes_are_read_too() -> None:
    """loads() accepts UTF-8 bytes as well as text."""
    value = _full_account()
    assert loads(dumps(value).encode()) == value


def test_values_json_cannot_hold_are_refused_when_writing() -> None:
    """A value that is not JSON (smuggled past Attributes) raises TypeError on writing."""
    smuggled = Attributes()
    dict.__setitem__(smuggled, "when", T0)
    with pytest.raises(TypeError, match="datetime"):
        dumps(account(attributes=smuggled))


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_json_nested_too_deeply_to_decode_raises_storage_error(depth: int) -> None:
    """A stored row whose JSON nests beyond the recursion limit raises StorageError."""
    text = '{"id": "a-1", "attributes": {"x": ' + "[" * depth + "]" * depth + "}}"
    with pytest.raises(StorageError, match="too deeply"):
        loads(text)
    with pytest.raises(StorageError, match="too deeply"):
        loads(text.encode())


def test_json_nested_too_deeply_to_structure_raises_storage_error() -> None:
    """Attributes nested deep enough to exhaust the stack while decoding raise StorageError."""
    data = document(_full_account())
    nested: object = 1
    for _ in range(5_000):
        nested = [nested]
    data["attributes"] = {"x": nested}
    with pytest.raises(StorageError, match="acc-full"):
        from_json_value(data)


def test_an_integer_json_writers_refuse_raises_validation_error_naming_it() -> None:
    """dumps() of an int beyond the digit limit (smuggled past Attributes) names its field."""
    inner = Attributes()
    dict.__setitem__(inner, "big", 10**5000)
    smuggled = Attributes()
    dict.__setitem__(smuggled, "facts", (1, inner))
    with pytest.raises(ValidationError) as raised:
        dumps(account(attributes=smuggled))
    assert raised.value.field == "attributes.facts[1].big"
    assert "attributes.facts[1].big" in str(raised.value)


def test_attributes_nested_too_deeply_to_write_raise_validation_error() -> None:
    """dumps() of attributes nested beyond the recursion limit raises ValidationError."""
    nested: object = 1
    for _ in range(5_000):
        nested = (nested,)
    smuggled = Attributes()
    dict.__setitem__(smuggled, "deep", nested)
    with pytest.raises(ValidationError) as raised:
        dumps(account(attributes=smuggled))
    assert raised.value.field == "attributes"
