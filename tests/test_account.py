"""Account and its records: validated on construction, immutable, cheaply evolved."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import salesprocess as sp
from salesprocess import strategies
from salesprocess.account import unchecked_advance, unchecked_copy, unchecked_history_entry

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
BUILT_IN = (
    sp.Stage.PROSPECT,
    sp.Stage.QUALIFIED,
    sp.Stage.CUSTOMER,
    sp.Stage.REPEAT,
    sp.Stage.REFERRER,
    sp.Stage.DISQUALIFIED,
    sp.Stage.CHURNED,
)


def make_account(**overrides: object) -> sp.Account:
    fields: dict[str, object] = {
        "id": "acct-1",
        "name": "Acme Tools GmbH",
        "source": sp.Source(sp.Channel.MARKETING_LIST, "spring-expo"),
        "created_at": T0,
        "email": "Buyer@Acme.example",
        "phone": "+49 30 1234567",
        "attributes": {"industry": "manufacturing", "employees": 120},
    }
    fields.update(overrides)
    return sp.Account(**fields)  # type: ignore[arg-type]


# -- construction ------------------------------------------------------------------------------


def test_account_normalises_contacts_and_defaults_to_prospect():
    """A new account has normalised contacts, prospect stage, version 0 and empty records."""
    account = make_account()
    assert account.email == "buyer@acme.example"
    assert account.phone == "+49301234567"
    assert account.stage is sp.Stage.PROSPECT
    assert account.version == 0
    assert account.history == account.purchases == account.calls == account.screenings == ()
    assert account.do_not_contact is False
    assert account.last_change_at == T0


def test_naive_created_at_is_refused():
    """created_at without a time zone is refused, naming the field."""
    with pytest.raises(sp.ValidationError, match="naive") as info:
        make_account(created_at=datetime(2026, 1, 5))
    assert info.value.field == "created_at"


@pytest.mark.parametrize("name", ["", "   ", None, 42])
def test_empty_or_non_text_name_is_refused(name):
    """An account needs a non-empty name."""
    with pytest.raises(sp.ValidationError) as info:
        make_account(name=name)
    assert info.value.field == "name"


def test_empty_id_is_refused():
    """An account needs a non-empty id."""
    with pytest.raises(sp.ValidationError) as info:
        make_account(id="")
    assert info.value.field == "id"


def test_bad_email_is_refused():
    """A malformed email fails the account's construction."""
    with pytest.raises(sp.ValidationError) as info:
        make_account(email="buyer-at-acme")
    assert info.value.field == "email"


def test_bad_phone_is_refused():
    """A phone with letters fails the account's construction."""
    with pytest.raises(sp.ValidationError) as info:
        make_account(phone="call me")
    assert info.value.field == "phone"


@pytest.mark.parametrize(
    ("attributes", "path"),
    [
        ({"tags": {"a", "b"}}, "attributes.tags"),
        ({"ratio": float("nan")}, "attributes.ratio"),
        ({"ratio": float("inf")}, "attributes.ratio"),
        ({"nested": {"deep": [1, 2, float("-inf")]}}, "attributes.nested.deep[2]"),
        ({"when": datetime(2026, 1, 1, tzinfo=UTC)}, "attributes.when"),
        ({"blob": b"bytes"}, "attributes.blob"),
        ({"money": sp.Money("1", "EUR")}, "attributes.money"),
    ],
)
def test_non_json_attributes_are_refused_with_the_path(attributes, path):
    """Values JSON cannot hold are refused, and the message names where they are."""
    with pytest.raises(sp.ValidationError) as info:
        make_account(attributes=attributes)
    assert path in str(info.value)
    assert info.value.field == path


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity")])
def test_non_finite_decimal_attributes_are_refused(value):
    """A NaN or infinite Decimal is no more a JSON number than a float NaN is."""
    with pytest.raises(sp.ValidationError) as info:
        make_account(attributes={"budget": value})
    assert "attributes.budget" in str(info.value)


def test_attribute_keys_must_be_text():
    """Attribute mappings need text keys."""
    with pytest.raises(sp.ValidationError, match="keys must be text"):
        make_account(attributes={1: "one"})
    with pytest.raises(sp.ValidationError, match=r"attributes\.outer keys"):
        make_account(attributes={"outer": {2: "two"}})


def test_attributes_must_be_a_mapping():
    """Attributes given as a list are refused."""
    with pytest.raises(sp.ValidationError, match="mapping"):
        make_account(attributes=[("industry", "retail")])


def test_attributes_are_read_only_nested_too():
    """Nothing reachable from an account's attributes can be changed in place."""
    account = make_account(attributes={"tags": ["a", "b"], "address": {"city": "Berlin"}, "n": 1})
    attributes = account.attributes
    assert isinstance(attributes, sp.Attributes)
    assert attributes["tags"] == ("a", "b")
    assert isinstance(attributes["address"], sp.Attributes)
    with pytest.raises(TypeError):
        attributes["n"] = 2
    with pytest.raises(TypeError):
        del attributes["n"]
    with pytest.raises(TypeError):
        attributes.update(n=3)
    with pytest.raises(TypeError):
        attributes.pop("n")
    with pytest.raises(TypeError):
        attributes.popitem()
    with pytest.raises(TypeError):
        attributes.setdefault("x", 1)
    with pytest.raises(TypeError):
        attributes.clear()
    with pytest.raises(TypeError):
        attributes |= {"n": 4}
    with pytest.raises(TypeError):
        attributes["address"]["city"] = "Hamburg"
    with pytest.raises(AttributeError):
        attributes["tags"].append("c")
    assert account.attributes == {"tags": ("a", "b"), "address": {"city": "Berlin"}, "n": 1}


def test_caller_changes_to_the_input_do_not_reach_the_account():
    """Mutating the dict passed in later does not change the account."""
    given_attributes = {"tags": ["a"], "address": {"city": "Berlin"}}
    account = make_account(attributes=given_attributes)
    given_attributes["tags"].append("b")
    given_attributes["address"]["city"] = "Hamburg"
    given_attributes["new"] = True
    assert account.attributes == {"tags": ("a",), "address": {"city": "Berlin"}}


def test_attributes_built_directly_are_frozen_too():
    """An Attributes built by hand still reaches the account with nothing mutable inside."""
    account = make_account(attributes=sp.Attributes({"tags": ["a"], "ratio": 0.5}))
    with pytest.raises(AttributeError):
        account.attributes["tags"].append("b")
    assert account.attributes["tags"] == ("a",)


def test_attributes_built_directly_are_validated():
    """An Attributes built by hand with a non-JSON value is refused like a plain dict."""
    with pytest.raises(sp.ValidationError, match=r"attributes\.tags"):
        make_account(attributes=sp.Attributes({"tags": {"a", "b"}}))


def test_accounts_are_immutable_and_hashable():
    """An account cannot be changed in place; equal accounts hash alike."""
    account = make_account()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        account.stage = sp.Stage.CUSTOMER  # type: ignore[misc]
    assert hash(account) == hash(make_account())
    assert account == make_account()


def test_account_pickles():
    """An account survives a pickle round trip with interned stages."""
    account = make_account(
        stage="qualified",
        history=(sp.HistoryEntry(None, sp.Stage.PROSPECT, "capture", T0),),
    )
    loaded = pickle.loads(pickle.dumps(account))
    assert loaded == account
    assert loaded.stage is sp.Stage.QUALIFIED
    assert loaded.history[0].to_stage is sp.Stage.PROSPECT


def test_account_copies():
    """copy.copy and copy.deepcopy of an account (with attributes) give an equal account."""
    account = make_account(attributes={"industry": "retail", "tags": ["a"], "address": {"c": 1}})
    assert copy.copy(account) == account
    assert copy.deepcopy(account) == account
    assert copy.deepcopy(account.attributes) == account.attributes


def test_stage_is_converted_and_checked():
    """A stage given as text becomes the interned Stage; a bad one is refused."""
    assert make_account(stage="customer").stage is sp.Stage.CUSTOMER
    with pytest.raises(sp.ValidationError):
        make_account(stage="Customer")
    with pytest.raises(sp.ValidationError):
        make_account(stage=3)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("history", [sp.HistoryEntry(None, sp.Stage.PROSPECT, "capture", T0)]),
        ("history", ("not a change",)),
        ("purchases", (sp.Money("1", "EUR"),)),
        ("calls", ("no",)),
        ("screenings", (None,)),
    ],
)
def test_record_fields_must_be_tuples_of_their_type(field, value):
    """History, purchases, calls and screenings are tuples of their record type."""
    with pytest.raises(sp.ValidationError) as info:
        make_account(**{field: value})
    assert info.value.field == field


@pytest.mark.parametrize("version", [-1, True, 1.0, "1"])
def test_version_must_be_a_non_negative_int(version):
    """version counts writes: a non-negative int."""
    with pytest.raises(sp.ValidationError) as info:
        make_account(version=version)
    assert info.value.field == "version"


@pytest.mark.parametrize(
    ("field", "value"), [("do_not_contact", "yes"), ("do_not_contact", 1), ("source", "referral")]
)
def test_wrongly_typed_fields_raise_validation_error(field, value):
    """A wrongly typed field is a ValidationError naming it, like every other bad input."""
    with pytest.raises(sp.ValidationError) as info:
        make_account(**{field: value})
    assert info.value.field == field


def test_call_notes_must_be_text():
    """Call notes are text; anything else is a ValidationError naming the field."""
    with pytest.raises(sp.ValidationError) as info:
        sp.Call(sp.CallOutcome.NO_ANSWER, T0, None)  # type: ignore[arg-type]
    assert info.value.field == "notes"


def test_last_change_at_follows_history():
    """last_change_at is the latest history entry's time."""
    later = T0 + timedelta(days=3)
    account = make_account(
        history=(
            sp.HistoryEntry(None, sp.Stage.PROSPECT, "capture", T0),
            sp.HistoryEntry(sp.Stage.PROSPECT, sp.Stage.QUALIFIED, "qualify", later),
        ),
        stage=sp.Stage.QUALIFIED,
    )
    assert account.last_change_at == later


# -- facts -------------------------------------------------------------------------------------


def test_facts_merge_attributes_and_named_fields():
    """facts() holds the attributes and the account's own fields, which win on a clash."""
    account = make_account(
        attributes={"industry": "manufacturing", "stage": "won", "do_not_contact": False},
        do_not_contact=True,
    )
    facts = account.facts()
    assert facts["industry"] == "manufacturing"
    assert facts["stage"] == "prospect"
    assert type(facts["stage"]) is str
    assert facts["do_not_contact"] is True
    assert facts["id"] == "acct-1"
    assert facts["name"] == "Acme Tools GmbH"
    assert facts["email"] == "buyer@acme.example"
    assert facts["phone"] == "+49301234567"
    assert facts["source"] == {
        "channel": "marketing_list",
        "campaign": "spring-expo",
        "referred_by": None,
    }
    assert set(facts) == {
        "industry",
        "stage",
        "do_not_contact",
        "id",
        "name",
        "email",
        "phone",
        "source",
    }


def test_facts_do_not_leak_into_the_account():
    """Changing the returned facts leaves the account alone."""
    account = make_account()
    facts = dict(account.facts())
    facts["industry"] = "retail"
    assert account.facts()["industry"] == "manufacturing"


# -- the unchecked copies of the hot path --------------------------------------------------


_CHANGES = st.fixed_dictionaries(
    {},
    optional={
        "id": st.uuids().map(lambda u: u.hex),
        "name": st.text(min_size=1, max_size=20).filter(str.strip),
        "source": strategies.sources(),
        "created_at": strategies.aware_datetimes(),
        "email": st.none() | strategies.emails(),
        "phone": st.none() | strategies.phones(),
        "attributes": strategies.attributes().map(sp.Attributes.freeze),
        "stage": st.sampled_from(BUILT_IN),
        "history": strategies.accounts().map(lambda a: a.history),
        "purchases": strategies.accounts().map(lambda a: a.purchases),
        "calls": st.lists(
            st.builds(
                sp.Call,
                st.sampled_from([o for o in sp.CallOutcome if o is not sp.CallOutcome.CALL_BACK]),
                strategies.aware_datetimes(),
                st.text(max_size=10),
            ),
            max_size=3,
        ).map(tuple),
        "screenings": st.lists(
            st.builds(
                sp.Screening,
                strategies.aware_datetimes(),
                st.just("crit"),
                st.just("v1"),
                st.booleans(),
            ),
            max_size=3,
        ).map(tuple),
        "do_not_contact": st.booleans(),
        "version": st.integers(min_value=0, max_value=10**6),
    },
)


@settings(max_examples=60)
@given(strategies.accounts(), _CHANGES)
def test_fast_evolve_equals_attrs_evolve(account, changes):
    """account.evolve gives the same account as attrs.evolve for any valid changes."""
    before = [getattr(account, field.name) for field in attrs.fields(sp.Account)]
    fast = unchecked_copy(account, **changes)
    slow = attrs.evolve(account, **changes)
    assert type(fast) is sp.Account
    assert fast == slow
    for field in attrs.fields(sp.Account):
        assert getattr(fast, field.name) == getattr(slow, field.name)
    assert all(
        getattr(account, field.name) is value
        for field, value in zip(attrs.fields(sp.Account), before, strict=True)
    )


@given(strategies.accounts(), st.sampled_from(BUILT_IN), st.integers(1, 4))
def test_fast_advance_equals_attrs_evolve(account, stage, keep):
    """account.advance sets exactly the stage and history."""
    history = account.history[:keep]
    assert unchecked_advance(account, stage, history) == attrs.evolve(
        account, stage=stage, history=history
    )


@given(
    st.none() | st.sampled_from(BUILT_IN),
    st.sampled_from(BUILT_IN),
    st.sampled_from(["qualify", "purchase", "nurture_lead"]),
    strategies.aware_datetimes(),
    st.none() | st.text(min_size=1, max_size=5).filter(str.strip),
    st.none() | st.text(min_size=1, max_size=5).filter(str.strip),
)
def test_fast_stage_change_equals_constructor(from_stage, to_stage, event, at, actor, reason):
    """account.unchecked_history_entry builds the same record as HistoryEntry(...)."""
    assert unchecked_history_entry(
        from_stage, to_stage, event, at, actor, reason
    ) == sp.HistoryEntry(from_stage, to_stage, event, at, actor, reason)


# -- records -----------------------------------------------------------------------------------


def test_call_back_needs_callback_at():
    """A CALL_BACK outcome without a time to call back is refused."""
    with pytest.raises(sp.ValidationError) as info:
        sp.Call(sp.CallOutcome.CALL_BACK, T0)
    assert info.value.field == "callback_at"
    call = sp.Call(sp.CallOutcome.CALL_BACK, T0, callback_at=T0 + timedelta(days=1))
    assert call.callback_at == T0 + timedelta(days=1)


def test_callback_at_only_goes_with_call_back():
    """callback_at on another outcome is refused."""
    with pytest.raises(sp.ValidationError) as info:
        sp.Call(sp.CallOutcome.INTERESTED, T0, callback_at=T0)
    assert info.value.field == "callback_at"


def test_naive_callback_at_is_refused():
    """callback_at must be timezone-aware."""
    with pytest.raises(sp.ValidationError) as info:
        sp.Call(sp.CallOutcome.CALL_BACK, T0, callback_at=datetime(2026, 1, 6))
    assert info.value.field == "callback_at"


def test_call_outcome_text_is_converted():
    """A call outcome may be given as its value."""
    assert sp.Call("interested", T0).outcome is sp.CallOutcome.INTERESTED


def test_naive_call_time_is_refused():
    """A call's time must be timezone-aware."""
    with pytest.raises(sp.ValidationError) as info:
        sp.Call(sp.CallOutcome.NO_ANSWER, datetime(2026, 1, 6))
    assert info.value.field == "at"


def test_negative_purchase_is_refused():
    """A purchase cannot be negative."""
    with pytest.raises(sp.ValidationError, match="negative") as info:
        sp.Purchase(sp.Money("-0.01", "EUR"), T0)
    assert info.value.field == "amount"


def test_zero_purchase_is_allowed():
    """A free sample is still an order."""
    purchase = sp.Purchase(sp.Money("0", "EUR"), T0, "sample-1")
    assert purchase.amount == sp.Money.zero("EUR")
    assert purchase.reference == "sample-1"


def test_purchase_amount_must_be_money():
    """A bare number is not a purchase amount."""
    with pytest.raises(sp.ValidationError) as info:
        sp.Purchase(Decimal(10), T0)
    assert info.value.field == "amount"


def test_source_validates_channel_and_texts():
    """Source converts the channel and refuses empty campaign or referrer."""
    assert sp.Source("referral", None, "acct-9").channel is sp.Channel.REFERRAL
    with pytest.raises(sp.ValidationError, match="cold_outreach, marketing_list"):
        sp.Source("billboard")
    with pytest.raises(sp.ValidationError):
        sp.Source(sp.Channel.REFERRAL, "")
    with pytest.raises(sp.ValidationError):
        sp.Source(sp.Channel.REFERRAL, None, "  ")


def test_stage_change_needs_aware_time():
    """A history entry's time must be timezone-aware."""
    with pytest.raises(sp.ValidationError):
        sp.HistoryEntry(None, sp.Stage.PROSPECT, "capture", datetime(2026, 1, 5))


# -- Stage -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", BUILT_IN)
def test_stage_is_interned(stage):
    """Stage(name) is the very object of the built-in constant."""
    assert sp.Stage(str(stage)) is stage
    assert getattr(sp.Stage, str(stage).upper()) is stage
    assert repr(stage) == f"Stage.{str(stage).upper()}"


def test_stage_prospect_identity():
    """Stage('prospect') is Stage.PROSPECT, and a stage equals its text."""
    assert sp.Stage("prospect") is sp.Stage.PROSPECT
    assert sp.Stage.PROSPECT == "prospect"
    assert isinstance(sp.Stage.PROSPECT, str)


def test_new_stage_is_interned_too():
    """A stage a subclass adds is interned on first use."""
    first = sp.Stage("nurture_test_stage")
    assert sp.Stage("nurture_test_stage") is first
    assert repr(first) == "Stage('nurture_test_stage')"


@pytest.mark.parametrize("stage", [*BUILT_IN, sp.Stage("nurture_pickled")])
def test_pickling_and_copying_keep_stage_identity(stage):
    """Pickle, copy and deepcopy give back the interned object."""
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(stage, protocol)) is stage
    assert copy.copy(stage) is stage
    assert copy.deepcopy(stage) is stage


@pytest.mark.parametrize(
    "bad", ["Prospect", "PROSPECT", "", "two words", "1st", "pro-spect", "prospect ", 5, None]
)
def test_bad_stage_names_are_refused(bad):
    """A stage is a lower-case identifier."""
    with pytest.raises(sp.ValidationError) as info:
        sp.Stage(bad)
    assert info.value.field == "stage"


def test_stage_cannot_be_subclassed():
    """Stage is final: interning relies on one class."""
    assert getattr(sp.Stage, "__final__", False) is True


# -- clock ---------------------------------------------------------------------------------------


def test_fixed_clock_stands_still_and_advances():
    """A FixedClock returns its moment and moves only forward."""
    clock = sp.FixedClock(T0)
    assert clock.now() == T0
    assert clock.advance(hours=2) == T0 + timedelta(hours=2)
    assert clock.now() == T0 + timedelta(hours=2)
    with pytest.raises(sp.ValidationError):
        clock.advance(seconds=-1)
    with pytest.raises(sp.ValidationError):
        sp.FixedClock(datetime(2026, 1, 5))
    assert isinstance(clock, sp.Clock)
    assert isinstance(sp.SystemClock(), sp.Clock)
    assert sp.SystemClock().now().utcoffset() == timedelta(0)


def test_utc_day_is_judged_in_utc():
    """The UTC day of a moment ignores the local offset."""
    from salesprocess.clock import utc_day  # noqa: PLC0415

    late_local = datetime(2026, 3, 2, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert utc_day(late_local).isoformat() == "2026-03-01"


# -- review regressions ----------------------------------------------------------------------


def test_attributes_cannot_be_refilled_through_init():
    """Calling __init__ again on frozen attributes changes nothing."""
    attributes = sp.Attributes({"tier": "gold"})
    attributes.__init__({"tier": "platinum", "injected": True})
    assert attributes == {"tier": "gold"}


@pytest.mark.parametrize(
    "value", [10**100, -(10**100), 10**5000], ids=["1e100", "-1e100", "1e5000"]
)
def test_huge_attribute_integers_are_refused(value):
    """An integer of more than 100 digits is refused: no JSON reader or writer chokes on it."""
    with pytest.raises(sp.ValidationError, match="more than 100 digits") as info:
        sp.Attributes({"n": value})
    assert info.value.field == "attributes.n"


def test_deeply_nested_attributes_are_refused_not_a_recursion_error():
    """Attributes nested far too deep get a ValidationError, never a RecursionError."""
    nested: dict[str, object] = {}
    inner = nested
    for _ in range(5000):
        inner["k"] = {}
        inner = inner["k"]  # type: ignore[assignment]
    with pytest.raises(sp.ValidationError, match="nests deeper than 32 levels"):
        sp.Attributes(nested)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"actor": 5}, "actor"),
        ({"reason": ""}, "reason"),
        ({"event": ""}, "event"),
        ({"to_stage": 3}, "stage"),
        ({"from_stage": "Not A Stage"}, "stage"),
    ],
)
def test_stage_change_fields_are_validated(kwargs, field):
    """A history entry refuses values storage could not read back."""
    fields = {"from_stage": None, "to_stage": "prospect", "event": "capture", "at": T0}
    fields.update(kwargs)
    with pytest.raises(sp.ValidationError) as info:
        sp.HistoryEntry(**fields)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"criteria": 5}, "criteria"), ({"version": ""}, "version"), ({"passed": "yes"}, "passed")],
)
def test_screening_fields_are_validated(kwargs, field):
    """A screening record refuses values storage could not read back."""
    fields = {"at": T0, "criteria": "EU", "version": "1", "passed": True}
    fields.update(kwargs)
    with pytest.raises(sp.ValidationError) as info:
        sp.Screening(**fields)
    assert info.value.field == field
