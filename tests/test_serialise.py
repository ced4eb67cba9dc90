"""Accounts survive JSON exactly, and foreign JSON is refused with a clear StorageError."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from salesprocess import strategies
from salesprocess.account import (
    Account,
    Asset,
    Attributes,
    Call,
    CallOutcome,
    HistoryEntry,
    Purchase,
    Source,
    unchecked_copy,
)
from salesprocess.errors import StorageError, ValidationError
from salesprocess.money import Money
from salesprocess.stage import Stage
from salesprocess.storage import serialise
from salesprocess.storage.serialise import (
    DecodeCache,
    converter,
    dumps,
    from_json_value,
    loads,
)
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


def _bare(value: Account) -> Account:
    """``value`` cut down to a lead as a capture makes it: the shape dumps_lead writes itself."""
    first = value.history[0] if value.history else HistoryEntry(None, value.stage, "capture", T0)
    return unchecked_copy(
        value, history=(first,), purchases=(), calls=(), screenings=(), do_not_contact=False,
        referral_code=None, referral_requests=(), referrals=(), referral_cards=(),
        preferences=(), assets=(),
    )  # fmt: skip


@ROUND_TRIP
@given(_accounts(), st.integers(min_value=1, max_value=2**31 - 1))
def test_dumps_lead_writes_what_dumps_writes(value: Account, version: int) -> None:
    """dumps_lead is dumps, character for character: for a bare lead and for any account."""
    lead = _bare(value)
    assert serialise.dumps_lead(lead, version=version) == dumps(lead, version=version)
    assert serialise.dumps_lead(value, version=version) == dumps(value, version=version)
    assert_same_account(
        loads(serialise.dumps_lead(lead, version=1)), unchecked_copy(lead, version=1)
    )


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
            HistoryEntry(None, Stage.PROSPECT, "capture", fixed),
            HistoryEntry(None, Stage.PROSPECT, "capture", ambiguous),
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
        (("referral_code",), "ab", "must be 4 to 32 letters and digits"),
        (("referral_code",), 1234, "expected a string, got int 1234 @ $.referral_code"),
        (("assets", 0, "installed"), "2015-05-01T00:00:00", "not an ISO 8601 date"),
        (("assets", 0, "installed"), 20150501, "expected an ISO 8601 date string"),
        (("assets", 0, "expected_life_years"), 0, "must be an int from 1 to 200"),
        (("referral_cards", 0, "count"), "250", "expected an integer"),
        (("referrals", 0, "new"), "yes", "expected true or false"),
        (("referral_requests", 0, "surprise"), 1, "unknown fields ['surprise']"),
        (("preferences", 0, "at"), "2026-01-05", "has no UTC offset"),
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


# --- the new parts: referrals, preferences, assets ----------------------------------------------


def test_install_dates_are_iso_dates_and_the_new_parts_are_written() -> None:
    """An asset's install date is written as YYYY-MM-DD; the referral parts appear by name."""
    data = document(_full_account())
    assert data["assets"][0]["installed"] == "2015-05-01"
    assert data["referral_code"] == "K7M4PQ2X"
    assert data["referrals"][1] == {
        "account_id": "acc-known",
        "at": "2026-01-12T09:30:00+00:00",
        "new": False,
    }
    loaded = loads(dumps(_full_account()))
    assert type(loaded.assets[0].installed) is date
    assert loaded.assets[1].installed == date(2024, 2, 29)


#: An account as salesprocess wrote it before referral codes, referrals, cards, preferences
#: and assets existed (schema 2 rows hold exactly this kind of text).
_WRITTEN_BEFORE_REFERRALS = (
    '{"id":"acc-old","name":"Old Customer GmbH","source":{"channel":"inbound_inquiry"},'
    '"created_at":"2025-06-01T09:00:00+02:00[Europe/Berlin]","attributes":{"employees":40},'
    '"stage":"customer","email":"old@customer.example","history":['
    '{"from_stage":null,"to_stage":"prospect","event":"capture",'
    '"at":"2025-06-01T09:00:00+02:00[Europe/Berlin]"},'
    '{"from_stage":"prospect","to_stage":"qualified","event":"qualify",'
    '"at":"2025-06-02T10:00:00+00:00","reason":"override"},'
    '{"from_stage":"qualified","to_stage":"customer","event":"purchase",'
    '"at":"2025-06-03T10:00:00+00:00"}],'
    '"purchases":[{"amount":{"amount":"1200.50","currency":"EUR"},'
    '"at":"2025-06-03T10:00:00+00:00"}],"version":4}'
)


def test_data_written_before_the_referral_fields_loads_with_their_defaults() -> None:
    """A stored account from before referrals, preferences and assets reads with the defaults."""
    loaded = loads(_WRITTEN_BEFORE_REFERRALS)
    assert loaded.referral_code is None
    assert loaded.referral_requests == ()
    assert loaded.referrals == ()
    assert loaded.referral_cards == ()
    assert loaded.preferences == ()
    assert loaded.assets == ()
    assert loaded.preference("equipment_strategy") is None
    assert (loaded.id, loaded.stage, loaded.version) == ("acc-old", Stage.CUSTOMER, 4)
    assert loaded.purchases == (
        Purchase(Money("1200.50", "EUR"), datetime(2025, 6, 3, 10, tzinfo=UTC)),
    )
    # written again, it is the same text: the defaults add nothing to it
    assert dumps(loaded) == _WRITTEN_BEFORE_REFERRALS
    # and it can take the new parts like any account
    extended = attrs.evolve(
        loaded,
        referral_code="k7m4-pq2x",
        assets=(Asset("asset-1", "Press 3000", date(2015, 5, 1), 20),),
    )
    assert_same_account(extended, loads(dumps(extended)))


def test_lifecycle_accounts_carry_the_new_parts_and_round_trip() -> None:
    """strategies.accounts() draws referral codes, cards, requests, referrals, preferences, assets.

    Each of them shows up (``find`` fails if the strategy never draws it) and round-trips.
    """
    wanted = {
        "a referrer's referral with its code": lambda a: any(r.code for r in a.referrals),
        "cards and a request": lambda a: a.referral_cards and a.referral_requests,
        "preferences and assets": lambda a: len(a.preferences) > 1 and a.assets,
    }
    for what, has in wanted.items():
        example = find(
            strategies.accounts(),
            lambda value, has=has: bool(has(value)),
            settings=settings(max_examples=5000, database=None, phases=[Phase.generate]),
        )
        assert has(example), what
        assert_same_account(example, loads(dumps(example)))


# --- the decode cache ---------------------------------------------------------------------------


def test_the_decode_cache_returns_the_account_decoded_before() -> None:
    """A second read of the same text is a hit: the same account object, nothing decoded."""
    cache = DecodeCache(maxsize=4)
    text = dumps(_full_account())
    first = cache(text)
    assert_same_account(_full_account(), first)
    assert cache(text) is first
    assert cache.cache_info() == serialise.CacheInfo(hits=1, misses=1, maxsize=4, currsize=1)


def test_remembered_accounts_are_returned_without_decoding() -> None:
    """remember(text, account) makes the next read of ``text`` return ``account`` itself."""
    cache = DecodeCache(maxsize=4)
    value = _full_account()
    text = dumps(value)
    cache.remember(text, value)
    assert cache(text) is value
    assert cache.cache_info().misses == 0


def test_the_decode_cache_forgets_the_least_recently_used() -> None:
    """Past maxsize the entry used least lately goes; a hit or a remember makes one recent."""
    cache = DecodeCache(maxsize=2)
    texts = [dumps(account(attributes={"index": index})) for index in range(3)]
    a = cache(texts[0])
    b = cache(texts[1])
    assert cache(texts[0]) is a  # a is now the most recent; b the least
    c = cache(texts[2])  # b goes
    assert cache(texts[0]) is a
    assert cache(texts[2]) is c
    assert cache(texts[1]) is not b  # decoded afresh: an equal, new account
    assert cache(texts[1]) == b
    info = cache.cache_info()
    assert (info.currsize, info.maxsize) == (2, 2)
    cache.remember(texts[0], a)  # a most recent again: the next miss evicts texts[2]
    cache(texts[2])
    assert cache(texts[0]) is a


def test_cache_clear_empties_the_cache_and_resets_the_counts() -> None:
    """cache_clear() forgets every entry (the next read decodes) and zeroes hits and misses."""
    cache = DecodeCache(maxsize=4)
    text = dumps(account())
    first = cache(text)
    cache(text)
    cache.cache_clear()
    assert cache.cache_info() == serialise.CacheInfo(hits=0, misses=0, maxsize=4, currsize=0)
    assert cache(text) is not first


def test_the_shared_cache_keeps_the_lru_cache_interface() -> None:
    """cached_loads is called with text and has cache_clear() and cache_info(), as before."""
    text = dumps(account(attributes={"shared": True}))
    serialise.cached_loads.cache_clear()
    loaded = serialise.cached_loads(text)
    assert serialise.cached_loads(text) is loaded
    assert serialise.cached_loads.cache_info().hits == 1
    assert serialise.cached_loads.maxsize == 2048
    value = account(attributes={"remembered": True})
    serialise.remember(dumps(value), value)
    assert serialise.cached_loads(dumps(value)) is value
    serialise.cached_loads.cache_clear()
    assert serialise.cached_loads.cache_info().currsize == 0


def test_a_text_that_is_not_an_account_is_not_cached() -> None:
    """A read that raises StorageError caches nothing, and raises again on the next read."""
    cache = DecodeCache(maxsize=4)
    for _ in range(2):
        with pytest.raises(StorageError):
            cache('{"id": "a"}')
    assert cache.cache_info().currsize == 0


@pytest.mark.parametrize("maxsize", [0, -1, 1.5, True, None, "2"])
def test_a_cache_size_that_is_not_a_positive_int_is_refused(maxsize: object) -> None:
    """DecodeCache(maxsize) needs a positive int."""
    with pytest.raises(ValidationError) as raised:
        DecodeCache(maxsize=maxsize)  # type: ignore[arg-type]
    assert raised.value.field == "maxsize"


def test_the_decode_cache_is_safe_to_share_between_threads() -> None:
    """Threads reading and remembering through one small cache get equal accounts, never wrong."""
    cache = DecodeCache(maxsize=8)
    values = [account(attributes={"index": index}) for index in range(40)]
    texts = [dumps(value) for value in values]
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(offset: int) -> None:
        try:
            start.wait(timeout=10)
            for round_ in range(300):
                index = (round_ * 7 + offset) % len(values)
                if round_ % 3 == 0:
                    cache.remember(texts[index], values[index])
                assert cache(texts[index]) == values[index]
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    info = cache.cache_info()
    assert info.currsize <= 8
    assert info.hits + info.misses == 4 * 300
