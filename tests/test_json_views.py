"""JSON views: every public value to plain JSON and back, valid against its JSON Schema."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import salesprocess as sp
from salesprocess import reports, strategies
from salesprocess.commands.purchases import PurchaseRow
from salesprocess.events import stage_event
from salesprocess.imports import LeadImport

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
EUR = sp.Money("12.00", "EUR")
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CRITERIA = sp.Criteria.from_json(
    '{"and": [{">=": [{"var": "employees"}, 50]},'
    '         {"in": [{"var": "industry"}, ["logistics", "energy"]]},'
    '         {"!=": [{"var": "region"}, "APAC"]}]}',
    name="EU mid-market",
    version="2026-Q4",
)

# Every class the views cover, so that each has a JSON Schema and every field in its view.
COVERED: tuple[type, ...] = (
    sp.Account, sp.Source, sp.HistoryEntry, sp.Purchase, sp.Call, sp.Screening,
    sp.ReferralRequest, sp.Referral, sp.ReferralCards, sp.Preference, sp.Asset, sp.Money,
    sp.DomainEvent, sp.LeadCaptured, sp.ContactDetailsAdded, sp.StageChanged,
    sp.AccountQualified, sp.AccountDisqualified, sp.AccountRecycled, sp.AccountConverted,
    sp.AccountBecameRepeat, sp.AccountBecameReferrer, sp.AccountChurned, sp.AccountWonBack,
    sp.PurchaseRecorded, sp.CallRecorded, sp.LeadScreened, sp.ReferralRequested,
    sp.ReferralRecorded, sp.ReferralCardsIssued, sp.PreferenceLearned, sp.AssetRegistered,
    sp.QualificationReport, sp.ClauseResult, sp.Explanation, sp.ServiceRecommendation,
    sp.LeadCapture, sp.PurchaseRow, sp.PurchaseImport, LeadImport, sp.RowError,
    sp.ReferralReport, sp.ReferralStats, sp.Revenue, sp.RevenueReport, sp.RepeatRow, sp.RfmRow,
    sp.Funnel, sp.Rung, sp.FlowPeriod, sp.StageTime,
)  # fmt: skip


@functools.cache
def validator(kind: Any, mode: str = "view") -> jsonschema.Draft202012Validator:
    schema = sp.json_schema(kind, mode=mode)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def assert_plain(doc: object, path: str = "$") -> None:
    """Only JSON's own types, exactly (a str subclass such as Stage is not one)."""
    kind = type(doc)
    if kind is dict:
        for key, item in doc.items():  # type: ignore[attr-defined]
            assert type(key) is str, f"{path}: key {key!r}"
            assert_plain(item, f"{path}.{key}")
    elif kind is list:
        for index, item in enumerate(doc):  # type: ignore[arg-type]
            assert_plain(item, f"{path}[{index}]")
    else:
        assert kind in (str, int, float, bool, type(None)), f"{path}: {kind.__name__}"


def is_record(kind: object) -> bool:
    return isinstance(kind, type) and (attrs.has(kind) or hasattr(kind, "_fields"))


def field_names(kind: type) -> set[str]:
    if hasattr(kind, "_fields"):  # a named tuple
        return set(kind._fields)
    names = {field.name for field in attrs.fields(kind) if field.init}
    return names | {"type"} if issubclass(kind, sp.DomainEvent) else names


def check(value: object, kind: Any = None) -> dict[str, Any] | list[Any] | Any:
    """The view is plain JSON, json.dumps writes it, it fits its schema, and it reads back."""
    kind = type(value) if kind is None else kind
    doc = sp.to_json(value)
    assert_plain(doc)
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc
    validator(kind).validate(doc)
    validator(kind, "input").validate(doc)
    if is_record(kind):
        assert set(doc) == field_names(type(value)), "every field, defaults too"
    back = sp.from_json(kind, doc)
    assert back == value
    assert type(back) is type(value)
    assert sp.to_json(back) == doc
    return doc


# --- strategies for the values salesprocess.strategies does not generate itself ---------------

moments = strategies.aware_datetimes()


@st.composite
def calls(draw: st.DrawFn) -> sp.Call:
    outcome = draw(st.sampled_from(sp.CallOutcome))
    back = draw(moments) if outcome is sp.CallOutcome.CALL_BACK else None
    return sp.Call(outcome, draw(moments), draw(st.text(max_size=20)), back)


screenings = st.builds(
    sp.Screening, moments, st.just("EU mid-market"), st.just("2026-Q4"), st.booleans()
)


def account_parts(account: sp.Account) -> list[object]:
    return [
        account.source, *account.history, *account.purchases, *account.calls,
        *account.screenings, *account.referral_requests, *account.referrals,
        *account.referral_cards, *account.preferences, *account.assets,
        *(purchase.amount for purchase in account.purchases),
    ]  # fmt: skip


@st.composite
def events(draw: st.DrawFn) -> list[sp.DomainEvent]:
    account = draw(strategies.accounts())
    at, who = account.created_at, account.id
    made: list[sp.DomainEvent] = [
        sp.DomainEvent(who, at),
        sp.LeadCaptured(who, at, account.source),
        sp.ContactDetailsAdded(who, at, account.email, account.phone),
        sp.CallRecorded(who, at, draw(calls())),
        sp.LeadScreened(who, at, draw(screenings)),
        *(stage_event(who, entry) for entry in account.history),
        *(sp.StageChanged(who, entry.at, entry) for entry in account.history),
        *(sp.PurchaseRecorded(who, p.at, p) for p in account.purchases),
        *(sp.ReferralRequested(who, r.at, r) for r in account.referral_requests),
        *(sp.ReferralRecorded(who, r.at, r) for r in account.referrals),
        *(sp.ReferralCardsIssued(who, c.at, c) for c in account.referral_cards),
        *(sp.PreferenceLearned(who, p.at, p) for p in account.preferences),
        *(sp.AssetRegistered(who, at, a) for a in account.assets),
    ]
    return made


rows = st.builds(
    sp.RowError,
    st.integers(min_value=1, max_value=10**6),
    st.text(min_size=1, max_size=30),
    st.none() | st.sampled_from(["amount", "at", "email"]),
)
purchase_rows = st.builds(
    PurchaseRow,
    strategies.money(),
    moments,
    st.none() | st.text("abc123", min_size=1, max_size=8),
    st.just("a-1"),
    st.none() | strategies.emails(),
    st.none() | strategies.phones(),
    st.none() | st.text("abc ", min_size=1, max_size=8).filter(str.strip),
)


# --- round trips -------------------------------------------------------------------------------


@SLOW
@given(strategies.accounts())
def test_accounts_and_their_parts_round_trip(account):
    """An account, and each part of it, reads back equal from its view, which fits its schema."""
    check(account)
    for part in account_parts(account):
        check(part)


@SLOW
@given(
    strategies.money(min_value=Decimal(-(10**6))),
    strategies.sources(),
    strategies.preferences(),
    strategies.assets(),
    strategies.aware_datetimes(),
    st.builds(sp.Attributes, strategies.attributes()),
    strategies.json_values(),
)
def test_every_strategy_value_round_trips(money, source, preference, asset, moment, facts, value):
    """Every value salesprocess.strategies generates reads back from its view."""
    for each in (money, source, preference, asset, facts):
        check(each)
    assert check(moment) == moment.isoformat()
    check(sp.Attributes({"value": value}))


@given(
    strategies.emails(),
    strategies.phones(),
    strategies.currencies(),
    strategies.referral_codes(),
)
def test_text_strategies_are_their_own_view(email, phone, currency, code):
    """Emails, phones, currency codes and referral codes are strings, as they are."""
    for text in (email, phone, currency, code):
        assert check(text) == text


@SLOW
@given(events())
def test_domain_events_round_trip_by_their_type(made):
    """Each event's view names its class; DomainEvent reads any of them back as that class."""
    for event in made:
        doc = check(event)
        assert next(iter(doc)) == "type"
        assert doc["type"] == type(event).__name__
        assert sp.from_json(sp.DomainEvent, doc) == event
        assert type(sp.from_json(sp.DomainEvent, doc)) is type(event)
        validator(sp.DomainEvent).validate(doc)


@settings(SLOW, max_examples=20)
@given(st.lists(strategies.accounts(), max_size=4, unique_by=lambda a: a.id))
def test_reports_round_trip(accounts):
    """The read side's reports, and lists and mappings of their rows, read back."""
    as_of = datetime(2100, 1, 1, tzinfo=UTC)
    check(reports.referral_stats(accounts))
    check(reports.revenue(accounts))
    check(reports.funnel(accounts, as_of=as_of))
    check(reports.repeat_summary(accounts, as_of=as_of), list[sp.RepeatRow])
    check(reports.lead_flow(accounts, period="month", target=1), list[sp.FlowPeriod])
    check(reports.time_in_stage(accounts, as_of=as_of), dict[sp.Stage, sp.StageTime])
    for currency in {p.amount.currency for a in accounts for p in a.purchases}:
        check(reports.rfm(accounts, as_of=as_of, currency=currency), list[sp.RfmRow])


@SLOW
@given(strategies.accounts(), moments, rows, purchase_rows, st.booleans())
def test_answers_round_trip(account, moment, row, purchase_row, new):
    """Qualification reports, service advice, captures, purchase rows and import results."""
    explanation = CRITERIA.judge(account)
    check(explanation)
    for clause in explanation:
        check(clause)
    check(
        sp.QualificationReport(
            account.id, CRITERIA.name, CRITERIA.version, moment, explanation.passed,
            explanation.clauses,
        )
    )  # fmt: skip
    for asset in account.assets:
        advice = sp.RepairOrReplacePolicy().recommend(
            account,
            asset,
            repair_cost=sp.Money("900.00", "EUR"),
            replacement_cost=sp.Money("4000.00", "EUR"),
            on=asset.installed + timedelta(days=400),
        )
        check(advice)
    check(sp.LeadCapture(account, new))
    check(purchase_row)
    check(sp.PurchaseImport(3, 2, 1, (account.id,), (row,)))
    check(LeadImport(3, 1, 1, (row,)))


# --- the documented shapes --------------------------------------------------------------------


def _account(**changes: Any) -> sp.Account:
    account = sp.Account(
        "a-1", "Acme", sp.Source("inbound_inquiry", campaign="expo"), T0,
        email="buyer@acme.example",
        attributes={"industry": "logistics", "budget": Decimal("1.10"), "$ref": ["x"]},
        history=(sp.HistoryEntry(None, sp.Stage.PROSPECT, "capture", T0),),
    )  # fmt: skip
    return account.with_changes(**changes) if changes else account


def test_usage_section_5():
    """USAGE section 5: json.dumps(sp.to_json(acct)) and sp.json_schema(sp.Account) work."""
    sales = sp.SalesProcess()
    acct = sales.capture_lead("Acme Tools", email="buyer@acme.example", channel="inbound_inquiry")
    doc = sp.to_json(acct)
    text = json.dumps(doc)
    assert json.loads(text)["email"] == "buyer@acme.example"
    schema = sp.json_schema(sp.Account)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    validator(sp.Account).validate(doc)


def test_money_is_an_exact_string_and_its_currency():
    """Money is {"amount": "12.00", "currency": "EUR"}: digits kept, never a float."""
    assert sp.to_json(sp.Money("12.00", "EUR")) == {"amount": "12.00", "currency": "EUR"}
    assert sp.to_json(sp.Money("1E+3", "JPY")) == {"amount": "1000", "currency": "JPY"}
    assert sp.to_json(sp.Money("-0.10", "EUR"))["amount"] == "-0.10"
    assert sp.from_json(sp.Money, {"amount": "1.10", "currency": "EUR"}).amount.as_tuple() == (
        Decimal("1.10").as_tuple()
    )


def test_datetimes_keep_their_offset_and_dates_are_iso():
    """A datetime is ISO 8601 with its offset; read back, it is the same instant and offset."""
    berlin = timezone(timedelta(hours=1))
    moment = datetime(2026, 1, 5, 9, 30, 15, 250, tzinfo=berlin)
    assert sp.to_json(moment) == "2026-01-05T09:30:15.000250+01:00"
    assert sp.from_json(datetime, "2026-01-05T09:30:15.000250+01:00").utcoffset() == timedelta(
        hours=1
    )
    assert sp.from_json(datetime, "2026-01-05T08:30:00Z") == datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    asset = sp.Asset("lathe-1", "Lathe", installed=date(2015, 5, 1), expected_life_years=20)
    assert sp.to_json(asset)["installed"] == "2015-05-01"


def test_every_field_is_present_defaults_too():
    """No field is left out because it holds its default."""
    doc = sp.to_json(_account())
    assert list(doc) == [field.name for field in attrs.fields(sp.Account)]
    assert (doc["purchases"], doc["phone"], doc["version"]) == ([], None, 0)
    assert (doc["stage"], doc["do_not_contact"]) == ("prospect", False)
    assert doc["source"] == {"channel": "inbound_inquiry", "campaign": "expo", "referred_by": None}


def test_attributes_tag_decimals_and_escape_dollar_keys():
    """Attributes are JSON values; a Decimal is tagged, a $ key of the user's doubled."""
    doc = sp.to_json(_account())
    assert doc["attributes"] == {
        "industry": "logistics",
        "budget": {"$decimal": "1.10"},
        "$$ref": ["x"],
    }
    assert sp.from_json(sp.Account, doc).attributes["$ref"] == ("x",)


def test_rates_are_strings_and_mappings_are_objects_keyed_by_code_or_stage():
    """Decimal rates are strings; per-currency and per-stage figures are objects by key."""
    bought = _account(
        stage=sp.Stage.CUSTOMER,
        purchases=(sp.Purchase(EUR, T0), sp.Purchase(EUR, T0 + timedelta(days=2))),
    )
    revenue = sp.to_json(reports.revenue([bought]))
    assert list(revenue) == ["by_currency"]
    eur = revenue["by_currency"]["EUR"]
    assert eur["total"] == {"amount": "24.00", "currency": "EUR"}
    assert eur["repeat_customer_rate"] == "1.0000"
    funnel = sp.to_json(reports.funnel([bought], as_of=T0 + timedelta(days=9)))
    assert funnel["now"] == {"prospect": 1}  # by its history, which says prospect
    assert funnel["ladder"][0] == {
        "stage": "prospect",
        "now": 1,
        "reached": 1,
        "conversion": "0.0000",
    }
    (week,) = sp.to_json(reports.lead_flow([bought], target=2))
    assert week["new_leads"] == {
        "cold_outreach": 0,
        "marketing_list": 0,
        "inbound_inquiry": 1,
        "referral": 0,
    }


def test_durations_are_iso_8601():
    """A timedelta is an ISO 8601 duration in days, hours, minutes and seconds."""
    shapes = {
        timedelta(0): "PT0S",
        timedelta(days=3): "P3D",
        timedelta(days=3, hours=4, minutes=30): "P3DT4H30M",
        timedelta(seconds=1, microseconds=500_000): "PT1.5S",
        timedelta(microseconds=1): "PT0.000001S",
        -timedelta(days=1, hours=2): "-P1DT2H",
    }
    for length, text in shapes.items():
        assert sp.to_json(length) == text
        assert sp.from_json(timedelta, text) == length
    stay = sp.StageTime(sp.Stage.PROSPECT, 2, timedelta(days=3), timedelta(days=4, hours=12))
    assert sp.to_json(stay) == {"stage": "prospect", "stays": 2, "median": "P3D", "p90": "P4DT12H"}


def test_enums_and_stages_are_strings():
    """Channels, outcomes, actions and stages are their plain string values."""
    call = sp.Call(sp.CallOutcome.CALL_BACK, T0, "later", T0 + timedelta(days=1))
    doc = sp.to_json(call)
    assert doc["outcome"] == "call_back"
    assert type(doc["outcome"]) is str
    assert type(sp.to_json(sp.Stage.CUSTOMER)) is str
    assert sp.to_json(sp.ServiceAction.REPAIR) == "repair"


def test_inputs_may_leave_out_fields_with_a_default():
    """from_json fills in defaults; the input schema says which fields may be left out."""
    row = sp.from_json(
        sp.PurchaseRow,
        {"amount": {"amount": "5.00", "currency": "EUR"}, "at": "2026-01-05T09:30:00+00:00",
         "email": "Buyer@Acme.example"},
    )  # fmt: skip
    assert row == sp.PurchaseRow(sp.Money("5.00", "EUR"), T0, email="buyer@acme.example")
    schema = sp.json_schema(sp.PurchaseRow, mode="input")
    assert schema["required"] == ["amount", "at"]
    assert schema["properties"]["name"]["default"] is None
    assert sp.json_schema(sp.PurchaseRow)["required"] == [f.name for f in attrs.fields(PurchaseRow)]


@pytest.mark.parametrize("kind", COVERED, ids=lambda kind: kind.__name__)
def test_every_covered_class_has_a_valid_schema(kind):
    """Each public value class has a JSON Schema 2020-12 document, titled and self-contained."""
    for mode in ("view", "input"):
        schema = sp.json_schema(kind, mode=mode)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$id"].startswith("urn:salesprocess:json:")
        assert "oneOf" in schema or schema["title"] == kind.__name__
        text = json.dumps(schema)
        named = {ref.split('"')[0] for ref in text.split("#/$defs/")[1:]}
        assert named <= set(schema.get("$defs", {}))


def test_schemas_embed_in_another_schema():
    """A schema embedded in a larger one resolves its own references (it has an $id)."""
    account = sp.json_schema(sp.Account)
    for wrapper in (
        {"$ref": "#/$defs/Account", "$defs": {"Account": account}},
        {"type": "object", "properties": {"data": account}},
    ):
        checker = jsonschema.Draft202012Validator(wrapper)
        view = sp.to_json(_account())
        document = view if "$ref" in wrapper else {"data": view}
        checker.validate(document)
        assert not checker.is_valid({**view, "stage": 3} if "$ref" in wrapper else {"data": 3})


def test_schemas_hoist_into_openapi_components():
    """With ref_prefix, references point into components/schemas, where $defs then go."""
    schema = sp.json_schema(sp.Account, ref_prefix="#/components/schemas/")
    assert "$id" not in schema
    components = {**schema.pop("$defs"), "Account": schema}
    openapi = {"openapi": "3.1.0", "components": {"schemas": components}}
    checker = jsonschema.Draft202012Validator({**openapi, "$ref": "#/components/schemas/Account"})
    view = sp.to_json(_account(purchases=(sp.Purchase(EUR, T0),)))
    checker.validate(view)
    view["purchases"][0]["amount"]["amount"] = 12.0
    assert not checker.is_valid(view)
    with pytest.raises(sp.ValidationError) as caught:
        sp.json_schema(sp.Account, ref_prefix="components")
    assert caught.value.field == "ref_prefix"


def test_domain_event_schema_is_the_union_of_the_events():
    """json_schema(DomainEvent) accepts every event's view, and only with its own type."""
    event = sp.AccountQualified(
        "a-1", T0, sp.HistoryEntry(sp.Stage.PROSPECT, sp.Stage.QUALIFIED, "qualify", T0)
    )
    doc = sp.to_json(event)
    validator(sp.DomainEvent).validate(doc)
    assert not validator(sp.DomainEvent).is_valid({**doc, "type": "Nope"})
    assert not validator(sp.AccountQualified).is_valid({**doc, "type": "AccountChurned"})


# --- bad input ----------------------------------------------------------------------------------


def _refused(kind: Any, document: object) -> sp.ValidationError:
    with pytest.raises(sp.ValidationError) as caught:
        sp.from_json(kind, document)
    return caught.value


def _bought() -> dict[str, Any]:
    purchases = tuple(sp.Purchase(EUR, T0 + timedelta(days=d)) for d in range(3))
    return sp.to_json(_account(purchases=purchases))


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda d: d["purchases"][2]["amount"].update(amount=12.5), "purchases[2].amount.amount",
         "string of digits"),
        (lambda d: d["purchases"][1]["amount"].update(amount="12,50"),
         "purchases[1].amount.amount", "decimal number"),
        (lambda d: d["purchases"][0]["amount"].update(currency="eur"),
         "purchases[0].amount.currency", "did you mean 'EUR'"),
        (lambda d: d["purchases"][0]["amount"].update(amount="-1.00"), "purchases[0].amount",
         "cannot be negative"),
        (lambda d: d["purchases"][1].update(at="2026-01-05T09:30:00"), "purchases[1].at",
         "no UTC offset"),
        (lambda d: d["history"][0].update(at="yesterday"), "history[0].at", "ISO 8601"),
        (lambda d: d["source"].update(channel="fax"), "source.channel", "unknown Channel"),
        (lambda d: d.update(stage="Prospect"), "stage", "lower-case identifier"),
        (lambda d: d.update(stage=None), "stage", "expected a string"),
        (lambda d: d.pop("name"), "name", "required field missing"),
        (lambda d: d.update(nickname="A"), "nickname", "unknown field"),
        (lambda d: d.update(version="1"), "version", "expected an integer"),
        (lambda d: d.update(do_not_contact=0), "do_not_contact", "true or false"),
        (lambda d: d.update(purchases={}), "purchases", "expected an array"),
        (lambda d: d.update(email="not an address"), "email", "not an address"),
        (lambda d: d["attributes"].update(size={"$decimal": 1.5}), "attributes.size.$decimal",
         "string of digits"),
        (lambda d: d["attributes"].update(size={"$eq": 1}), "attributes.size.$eq", "unknown tag"),
        (lambda d: d.update(calls=[{"outcome": "call_back", "at": "2026-01-05T09:30:00+00:00"}]),
         "calls[0].callback_at", "needs callback_at"),
        (lambda d: d.update(referrals=[{"account_id": "b", "at": "2026-01-05T09:30:00+00:00",
                                        "code": "!"}]), "referrals[0].code", "referral code"),
    ],
)  # fmt: skip
def test_bad_input_names_the_json_path(change, field, words):
    """Each fault is a ValidationError whose field is the JSON path, with a message saying why."""
    doc = _bought()
    change(doc)
    error = _refused(sp.Account, doc)
    assert error.field == field
    assert words in str(error)


def test_bad_documents_name_the_document_itself():
    """A document of the wrong kind is refused at $."""
    for document in ([], "acct", None, 3):
        assert _refused(sp.Account, document).field == "$"
    assert _refused(sp.Money, {"amount": 1, "currency": "EUR"}).field == "amount"


def test_every_fault_is_listed_the_first_is_the_field():
    """All faults are in the message; field names the first."""
    doc = _bought()
    doc.pop("name")
    doc["purchases"][1]["at"] = "2026-01-05"
    error = _refused(sp.Account, doc)
    assert error.field == "name"
    assert "purchases[1].at" in str(error)


def test_bad_events_and_rows():
    """An unknown event type, a mapping key and a purchase row naming no customer."""
    event = sp.to_json(sp.LeadCaptured("a-1", T0, sp.Source("referral")))
    assert _refused(sp.DomainEvent, {**event, "type": "LeadLost"}).field == "type"
    assert _refused(sp.AccountQualified, event).field == "type"
    assert _refused(sp.LeadCaptured, {k: v for k, v in event.items() if k != "type"}).field == (
        "type"
    )
    flow = sp.to_json(reports.lead_flow([_account()]))[0]
    flow["new_leads"]["fax"] = 1
    assert _refused(sp.FlowPeriod, flow).field == "new_leads.fax"
    row = {"amount": {"amount": "5.00", "currency": "EUR"}, "at": "2026-01-05T09:30:00+00:00"}
    assert _refused(sp.PurchaseRow, row).field == "account_id"
    report = sp.to_json(reports.revenue([_account(purchases=(sp.Purchase(EUR, T0),))]))
    report["by_currency"]["EUR"]["repeat_share"] = 0.5
    assert _refused(sp.RevenueReport, report).field == "by_currency.EUR.repeat_share"
    assert _refused(dict[sp.Stage, sp.StageTime], {"prospect": {}}).field.startswith("prospect.")
    assert _refused(timedelta, "P1M").field == "$"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


def _paths(doc: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [path]
    if isinstance(doc, dict):
        for key, item in doc.items():
            found += _paths(item, (*path, key))
    elif isinstance(doc, list):
        for index, item in enumerate(doc):
            found += _paths(item, (*path, index))
    return found


@SLOW
@given(strategies.accounts(), st.data())
def test_any_change_is_read_or_refused_never_leaked(account, data):
    """Put any JSON anywhere in a view: from_json answers or raises ValidationError, only; and a
    document its input schema refuses is always refused."""
    doc = copy.deepcopy(sp.to_json(account))
    path = data.draw(st.sampled_from(_paths(doc)[1:]))
    replacement = data.draw(json_values)
    target: Any = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = replacement
    field = None
    try:
        sp.from_json(sp.Account, doc)
    except sp.ValidationError as error:
        field = error.field
        assert field
    if field is None:
        assert validator(sp.Account, "input").is_valid(doc), "the schema refuses what was read"


def test_to_json_refuses_what_has_no_view():
    """A value of no public type is a TypeError (a programming error, not bad input)."""
    with pytest.raises(TypeError, match="no JSON view"):
        sp.to_json(object())
    with pytest.raises(TypeError, match="no JSON Schema"):
        sp.json_schema(sp.SalesProcess)
    with pytest.raises(TypeError, match="no JSON view to read"):
        sp.from_json(sp.SalesProcess, {})


def test_faults_in_a_top_level_array_are_rooted():
    """A fault in a list read at the top is at $[index]."""
    assert _refused(list[sp.RfmRow], [{}, 3]).field == "$[0].account_id"
    assert _refused(list[int], [1, True]).field == "$[1]"


def test_to_json_of_a_mapping_with_non_text_keys_is_refused():
    """JSON objects have text keys."""
    with pytest.raises(TypeError, match="mapping key"):
        sp.to_json({1: "a"})


def test_views_are_json_ready_for_mappings_of_rows():
    """time_in_stage's mapping (Stage keys) is an object keyed by stage name."""
    stays: Mapping[sp.Stage, sp.StageTime] = {
        sp.Stage.PROSPECT: sp.StageTime(sp.Stage.PROSPECT, 1, timedelta(days=1), timedelta(days=1))
    }
    doc = sp.to_json(stays)
    assert list(doc) == ["prospect"]
    assert type(next(iter(doc))) is str
