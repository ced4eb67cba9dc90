"""SalesProcess commands: the promises of USAGE sections 1 and 2, and every error they name."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

import salesprocess as sp
from salesprocess.storage import InMemoryRepository
from salesprocess.storage.protocol import Holders


def at(y: int, m: int, d: int, hour: int = 9) -> datetime:
    return datetime(y, m, d, hour, tzinfo=UTC)


# -- fakes -------------------------------------------------------------------------------------


CRITERIA = sp.Criteria.from_dict(
    {"in": [{"var": "industry"}, ["manufacturing", "logistics"]]},
    name="EU mid-market",
    version="2026-Q4",
)


class ScoreAttribute:
    """A user-written scoring rule: the account's ``score`` attribute, out of 100."""

    name = "score"

    def evaluate(self, account: sp.Account) -> sp.RuleResult:
        score = float(account.attributes.get("score", 0)) / 100
        return sp.RuleResult(passed=True, reason=f"score {score:.2f}", score=score, rule=self.name)


SCORING = ScoreAttribute()


class FlakyRepository:
    """An in-memory repository whose ``save`` loses the race a given number of times.

    ``interleave`` is run just before a losing save instead of raising directly: it writes a
    concurrent change through the inner repository, so the save that follows is really stale.
    """

    def __init__(
        self,
        failures: int,
        interleave: Callable[[InMemoryRepository, sp.Account], None] | None = None,
    ) -> None:
        self.inner = InMemoryRepository()
        self.failures = failures
        self.interleave = interleave
        self.save_calls = 0

    def save(self, account: sp.Account, *, expected_version: int) -> sp.Account:
        self.save_calls += 1
        if self.failures > 0:
            self.failures -= 1
            if self.interleave is None:
                raise sp.StaleWrite("simulated concurrent write")
            self.interleave(self.inner, account)
        return self.inner.save(account, expected_version=expected_version)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def counting_ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"acct-{next(counter):03d}"


@pytest.fixture
def clock() -> sp.FixedClock:
    return sp.FixedClock(at(2026, 1, 5))


@pytest.fixture
def sales(clock: sp.FixedClock) -> sp.SalesProcess:
    return sp.SalesProcess(
        criteria=CRITERIA, scoring=SCORING, clock=clock, id_factory=counting_ids()
    )


@pytest.fixture
def events(sales: sp.SalesProcess) -> list[sp.DomainEvent]:
    seen: list[sp.DomainEvent] = []
    sales.subscribe(seen.append)
    return seen


def capture(sales: sp.SalesProcess, name: str = "Acme Tools GmbH", **kwargs: Any) -> sp.Account:
    fields: dict[str, Any] = {
        "email": "Buyer@Acme.example",
        "phone": "+49 30 1234567",
        "channel": sp.Channel.MARKETING_LIST,
        "campaign": "spring-expo",
        "attributes": {"industry": "manufacturing", "employees": 120, "region": "EU"},
        "at": at(2026, 1, 5),
    }
    fields.update(kwargs)
    return sales.capture_lead(name=name, **fields)


def qualified(sales: sp.SalesProcess, **kwargs: Any) -> sp.Account:
    account = capture(sales, **kwargs)
    return sales.qualify(account.id, override="walk-in purchase", at=at(2026, 1, 6))


# -- section 1: capture ------------------------------------------------------------------------


def test_capture_lead_stores_a_normalised_prospect(sales, events):
    """A captured lead is a stored prospect with normalised contacts and its source."""
    account = capture(sales)
    assert account.stage is sp.Stage.PROSPECT
    assert account.email == "buyer@acme.example"
    assert account.phone == "+49301234567"
    assert account.source == sp.Source(sp.Channel.MARKETING_LIST, "spring-expo")
    assert account.attributes["employees"] == 120
    assert account.version == 1
    assert account.created_at == at(2026, 1, 5)
    assert account.history == (sp.HistoryEntry(None, sp.Stage.PROSPECT, "capture", at(2026, 1, 5)),)
    assert sales.get(account.id) == account
    assert events == [sp.LeadCaptured(account.id, at(2026, 1, 5), account.source)]


def test_capture_records_the_actor(sales):
    """The actor who captured a lead is kept in its first history entry."""
    account = capture(sales, actor="mia")
    assert account.history[0].actor == "mia"


def test_capturing_the_same_email_returns_the_known_account(sales, events):
    """A second capture with the same normalised email creates nothing and publishes nothing."""
    first = capture(sales)
    again = sales.capture_lead(
        name="Acme Tools", email="BUYER@acme.EXAMPLE ", channel=sp.Channel.INBOUND_INQUIRY
    )
    assert again.id == first.id
    assert again == first
    assert len(sales.repository) == 1
    assert len(events) == 1


def test_capturing_the_same_phone_returns_the_known_account(sales):
    """A second capture with the same normalised phone (another spelling) is the same lead."""
    first = capture(sales)
    again = sales.capture(name="Acme", phone="+49 (30) 123-4567", channel="referral")
    assert again == sp.LeadCapture(first, new=False)
    assert len(sales.repository) == 1


def test_capture_says_whether_the_lead_is_new(sales):
    """capture() answers the account and whether it was new: 201 or 200 for an API."""
    made = sales.capture("Zeta AG", email="z@zeta.example", channel="inbound_inquiry")
    assert made.new
    assert made.account == sales.get(made.account.id)
    again = sales.capture("Zeta", email="Z@zeta.example", channel="referral")
    assert again == sp.LeadCapture(made.account, new=False)


def test_a_known_phone_with_a_new_email_keeps_the_email(sales, clock):
    """A known lead's second capture adds the email it lacked, and says so in an event."""
    events: list[sp.ContactDetailsAdded] = []
    sales.subscribe(events.append, sp.ContactDetailsAdded)
    first = sales.capture_lead("Acme", phone="+49 30 1234567", channel="cold_outreach")
    again = sales.capture(
        "Acme", phone="+49 (30) 123-4567", email="Buyer@Acme.example", channel="referral"
    )
    assert not again.new
    assert again.account.email == "buyer@acme.example"
    assert again.account.version == first.version + 1
    assert sales.find(email="buyer@acme.example") == again.account
    assert events == [sp.ContactDetailsAdded(first.id, clock.now(), "buyer@acme.example", None)]


def test_a_known_phone_with_another_email_is_refused(sales):
    """Details that contradict the known account are refused, not dropped; nothing changes."""
    first = capture(sales)
    with pytest.raises(sp.ConflictError, match=r"whose email is buyer@acme\.example") as info:
        sales.capture_lead(
            name="Acme", phone="+49 (30) 123-4567", email="other@acme.example", channel="referral"
        )
    assert not isinstance(info.value, sp.StaleWrite)
    assert sales.get(first.id) == first
    assert len(sales.repository) == 1


def test_an_email_and_a_phone_of_two_accounts_are_refused(sales):
    """A lead whose email is one account's and phone another's is refused, naming both."""
    a = sales.capture_lead("A", email="a@x.example", channel="cold_outreach")
    b = sales.capture_lead("B", phone="+4930555", channel="cold_outreach")
    with pytest.raises(sp.ConflictError, match=f"{a.id}.*{b.id}"):
        sales.capture_lead("AB", email="a@x.example", phone="+4930555", channel="referral")
    assert (sales.get(a.id), sales.get(b.id)) == (a, b)


def test_capture_without_email_or_phone_is_refused(sales):
    """A lead needs an email or a phone."""
    with pytest.raises(sp.ValidationError, match="neither email nor phone") as info:
        sales.capture_lead(name="Ghost Ltd", channel=sp.Channel.COLD_OUTREACH)
    assert info.value.field == "email"
    assert len(sales.repository) == 0


def test_capture_with_only_a_phone_or_only_an_email(sales):
    """Either contact detail alone is enough."""
    by_phone = sales.capture_lead(name="A", phone="030 1234567", channel="cold_outreach")
    by_email = sales.capture_lead(name="B", email="b@b.example", channel="cold_outreach")
    assert (by_phone.email, by_phone.phone) == (None, "0301234567")
    assert (by_email.email, by_email.phone) == ("b@b.example", None)
    assert by_phone.id != by_email.id


def test_unknown_channel_is_refused_naming_the_channels(sales):
    """An unknown channel is refused; the message lists the channels there are."""
    with pytest.raises(sp.ValidationError) as info:
        capture(sales, channel="billboard")
    assert info.value.field == "channel"
    for channel in sp.Channel:
        assert channel.value in str(info.value)
    assert len(sales.repository) == 0


def test_channel_may_be_given_as_its_value(sales):
    """channel='inbound_inquiry' is the same as Channel.INBOUND_INQUIRY."""
    assert capture(sales, channel="inbound_inquiry").source.channel is sp.Channel.INBOUND_INQUIRY


def test_naive_datetime_is_refused(sales):
    """A naive datetime is refused at the command boundary."""
    with pytest.raises(sp.ValidationError, match="naive") as info:
        capture(sales, at=datetime(2026, 1, 5))
    assert info.value.field == "at"
    account = capture(sales)
    with pytest.raises(sp.ValidationError, match="naive"):
        sales.record_call(account.id, sp.CallOutcome.NO_ANSWER, at=datetime(2026, 1, 6))
    with pytest.raises(sp.ValidationError, match="naive"):
        sales.qualify(account.id, override="x", at=datetime(2026, 1, 6))
    assert sales.get(account.id) == account


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"phone": "call me maybe"}, "phone"),
        ({"attributes": {"tags": {"a"}}}, "attributes.tags"),
        ({"name": " "}, "name"),
    ],
)
def test_bad_lead_details_are_refused(sales, kwargs, field):
    """A malformed email, phone, attribute or name stores nothing."""
    with pytest.raises(sp.ValidationError) as info:
        capture(sales, **kwargs)
    assert info.value.field == field
    assert len(sales.repository) == 0


def test_fixed_clock_is_used_when_at_is_omitted(sales, clock):
    """Commands without at= take the time from the process's clock."""
    account = capture(sales, at=None)
    assert account.created_at == clock.now()
    clock.advance(days=1, hours=3)
    account = sales.record_call(account.id, sp.CallOutcome.INTERESTED)
    assert account.calls[-1].at == clock.now()
    clock.advance(minutes=5)
    account = sales.qualify(account.id, override="trade fair")
    assert account.history[-1].at == clock.now()
    clock.advance(days=2)
    account = sales.record_purchase(account.id, sp.Money("10", "EUR"))
    assert account.purchases[-1].at == clock.now()
    assert account.history[-1].at == clock.now()


def test_find_normalises_its_input(sales):
    """find() looks up by normalised email or phone."""
    account = capture(sales)
    assert sales.find(email=" BUYER@ACME.EXAMPLE") == account
    assert sales.find(phone="+49-30-1234567") == account
    assert sales.find(email="nobody@acme.example") is None
    assert sales.find() is None


def test_capture_race_returns_the_account_the_other_writer_stored(clock):
    """If another writer stores the same person between look-up and add, that account wins."""

    class Racing(InMemoryRepository):
        raced = False

        def _race(self, email: str | None) -> bool:
            if self.raced:
                return False
            self.raced = True
            other = sp.SalesProcess(self, clock=clock, id_factory=lambda: "other-writer")
            other.capture_lead(name="Acme (other desk)", email=email, channel="referral")
            return True

        def find_id(self, **key: str | None) -> str | None:
            return None if self._race(key["email"]) else super().find_id(**key)

        def holders(self, **keys: Any) -> Holders:  # the batched look-up: the same race
            return Holders(None, None, None, None) if self._race(keys["email"]) else (
                super().holders(**keys)
            )  # fmt: skip

    sales = sp.SalesProcess(Racing(), clock=clock, id_factory=lambda: "mine")
    account = sales.capture_lead(name="Acme", email="buyer@acme.example", channel="cold_outreach")
    assert account.id == "other-writer"
    assert len(sales.repository) == 1


# -- section 1: screen, call, qualify ---------------------------------------------------------


def test_screen_records_a_screening_and_explains(sales, events):
    """screen() evaluates the criteria, stores a screening and returns an explainable report."""
    account = capture(sales)
    report = sales.screen(account.id, at=at(2026, 1, 6))
    assert report.passed
    assert (report.account_id, report.criteria, report.version) == (
        account.id,
        "EU mid-market",
        "2026-Q4",
    )
    assert report.at == at(2026, 1, 6)
    text = report.explain()
    headline = text.splitlines()[0]
    for part in ("passed", "EU mid-market", "2026-Q4", account.id):
        assert part in headline
    assert "failed" not in headline
    assert "pass  industry in ['manufacturing', 'logistics']" in text
    assert "(industry: 'manufacturing')" in text
    stored = sales.get(account.id)
    assert stored.screenings == (sp.Screening(at(2026, 1, 6), "EU mid-market", "2026-Q4", True),)
    assert stored.version == 2
    assert isinstance(events[-1], sp.LeadScreened)
    assert events[-1].screening == stored.screenings[-1]


def test_failing_screen_is_reported(sales):
    """An account outside the criteria fails the screen, and the report says which clause."""
    account = capture(sales, attributes={"industry": "retail"})
    report = sales.screen(account.id, at=at(2026, 1, 6))
    assert not report.passed
    assert "FAIL  industry in ['manufacturing', 'logistics']  (industry: 'retail')" in (
        report.explain()
    )
    assert sales.get(account.id).screenings[-1].passed is False


def test_screen_without_criteria_is_refused(clock):
    """screen() and call_list() need criteria; without them a SalesProcessError says so."""
    sales = sp.SalesProcess(clock=clock)
    account = capture(sales)
    with pytest.raises(sp.SalesProcessError, match="criteria"):
        sales.screen(account.id)
    with pytest.raises(sp.SalesProcessError, match="criteria"):
        sales.call_list()
    assert sales.get(account.id) == account


def test_screen_all_screens_every_prospect(sales):
    """screen_all() screens each prospect (not other stages) and returns their reports."""
    a = capture(sales, "A", email="a@a.example", phone=None)
    b = capture(sales, "B", email="b@b.example", phone=None, attributes={"industry": "retail"})
    c = qualified(sales, name="C", email="c@c.example", phone=None)
    reports = sales.screen_all(at=at(2026, 1, 7))
    assert {(r.account_id, r.passed) for r in reports} == {(a.id, True), (b.id, False)}
    assert sales.get(c.id).screenings == ()


def test_usage_section_1_end_to_end(sales):
    """Capture, screen, a confirming call and qualify: the promised happy path."""
    account = capture(sales)
    assert sales.screen(account.id, at=at(2026, 1, 6)).passed
    called = sales.record_call(
        account.id, sp.CallOutcome.INTERESTED, notes="Needs three lathes by Q3", at=at(2026, 1, 7)
    )
    assert called.calls[-1] == sp.Call(
        sp.CallOutcome.INTERESTED, at(2026, 1, 7), "Needs three lathes by Q3"
    )
    account = sales.qualify(account.id, at=at(2026, 1, 7))
    assert account.stage is sp.Stage.QUALIFIED
    assert account.history[-1].reason is None
    assert sales.call_list(limit=50, at=at(2026, 1, 8)) == []


@pytest.mark.parametrize(
    ("setup", "missing"),
    [
        ("nothing", "a passing screen against the marketing criteria"),
        ("failed screen", "failed"),
        ("screen only", "a confirming call"),
        ("call before screen", "a confirming call"),
        ("not interested", "a confirming call"),
    ],
)
def test_qualify_refused_lists_what_is_missing_and_stores_nothing(sales, events, setup, missing):
    """Without a passing screen and a later INTERESTED call, qualify is refused, storing nothing."""
    attributes = {"industry": "retail" if setup == "failed screen" else "manufacturing"}
    account = capture(sales, attributes=attributes)
    if setup == "call before screen":
        sales.record_call(account.id, sp.CallOutcome.INTERESTED, at=at(2026, 1, 6))
    if setup != "nothing":
        sales.screen(account.id, at=at(2026, 1, 7))
    if setup == "not interested":
        sales.record_call(account.id, sp.CallOutcome.VOICEMAIL, at=at(2026, 1, 8))
    before = sales.get(account.id)
    published = len(events)
    with pytest.raises(sp.QualificationRefused) as info:
        sales.qualify(account.id, at=at(2026, 1, 9))
    error = info.value
    assert isinstance(error, sp.InvalidTransition)
    assert isinstance(error, sp.SalesProcessError)
    assert error.account_id == account.id
    assert error.stage is sp.Stage.PROSPECT
    assert error.event == "qualify"
    assert len(error.missing) == 1
    assert missing in error.missing[0]
    assert missing in str(error)
    assert "override=" in str(error)
    assert sales.get(account.id) == before
    assert len(events) == published


def test_qualify_with_override_keeps_the_reason_in_history(sales, events):
    """An override qualifies without screen or call; the reason and actor are kept."""
    account = capture(sales)
    account = sales.qualify(
        account.id, override="walk-in purchase", at=at(2026, 1, 6), actor="boss"
    )
    assert account.stage is sp.Stage.QUALIFIED
    change = account.history[-1]
    assert change.reason is not None
    assert "walk-in purchase" in change.reason
    assert change.actor == "boss"
    assert change.event == "qualify"
    assert isinstance(events[-1], sp.AccountQualified)
    assert events[-1].change == change


@pytest.mark.parametrize("override", ["", "   ", 42])
def test_empty_override_is_refused(sales, override):
    """An override needs a real reason."""
    account = capture(sales)
    with pytest.raises(sp.ValidationError) as info:
        sales.qualify(account.id, override=override)
    assert info.value.field == "override"
    assert sales.get(account.id) == account


def test_qualify_from_another_stage_is_invalid(sales):
    """A qualified lead cannot be qualified again, override or not."""
    account = qualified(sales)
    for override in (None, "again"):
        with pytest.raises(sp.InvalidTransition) as info:
            sales.qualify(account.id, override=override, at=at(2026, 1, 7))
        assert not isinstance(info.value, sp.QualificationRefused)
        assert info.value.stage is sp.Stage.QUALIFIED
    assert sales.get(account.id) == account


def test_fire_cannot_bypass_the_qualification_policy(sales):
    """fire(id, 'qualify') has no approval: it is refused."""
    account = capture(sales)
    with pytest.raises(sp.InvalidTransition, match="conditions"):
        sales.fire(account.id, "qualify")
    assert sales.get(account.id) == account


def test_custom_qualification_policy_decides(clock):
    """Any object with missing(account, at) is the qualification policy."""

    class NeedsBudget:
        def missing(self, account: sp.Account, when: datetime) -> tuple[str, ...]:
            return () if account.attributes.get("budget") else ("a budget",)

    sales = sp.SalesProcess(clock=clock, qualification_policy=NeedsBudget())
    assert isinstance(NeedsBudget(), sp.QualificationPolicy)
    poor = capture(sales, "Poor", email="p@p.example", phone=None)
    rich = capture(sales, "Rich", email="r@r.example", phone=None, attributes={"budget": 10})
    with pytest.raises(sp.QualificationRefused) as info:
        sales.qualify(poor.id)
    assert info.value.missing == ("a budget",)
    assert sales.qualify(rich.id).stage is sp.Stage.QUALIFIED


# -- calls -------------------------------------------------------------------------------------


def test_do_not_call_sets_do_not_contact_for_good(sales, events):
    """A DO_NOT_CALL outcome marks the account do-not-contact, and later calls keep the mark."""
    account = capture(sales)
    account = sales.record_call(account.id, sp.CallOutcome.DO_NOT_CALL, at=at(2026, 1, 6))
    assert account.do_not_contact is True
    assert isinstance(events[-1], sp.CallRecorded)
    assert events[-1].call.outcome is sp.CallOutcome.DO_NOT_CALL
    account = sales.record_call(account.id, sp.CallOutcome.INTERESTED, at=at(2026, 1, 7))
    assert account.do_not_contact is True
    assert [c.outcome for c in account.calls] == [
        sp.CallOutcome.DO_NOT_CALL,
        sp.CallOutcome.INTERESTED,
    ]


def test_other_outcomes_leave_contact_allowed(sales):
    """Outcomes other than DO_NOT_CALL do not set do_not_contact."""
    account = capture(sales)
    for outcome in sp.CallOutcome:
        if outcome in (sp.CallOutcome.DO_NOT_CALL, sp.CallOutcome.CALL_BACK):
            continue
        account = sales.record_call(account.id, outcome, at=at(2026, 1, 6))
        assert account.do_not_contact is False


def test_call_back_needs_a_time(sales):
    """CALL_BACK without callback_at is refused and stores nothing."""
    account = capture(sales)
    with pytest.raises(sp.ValidationError) as info:
        sales.record_call(account.id, sp.CallOutcome.CALL_BACK, at=at(2026, 1, 6))
    assert info.value.field == "callback_at"
    assert sales.get(account.id) == account


def test_a_call_back_before_the_call_is_refused(sales):
    """A call back due before the call itself is a ValidationError naming callback_at."""
    account = capture(sales)
    with pytest.raises(sp.ValidationError, match="is before the call") as info:
        sales.record_call(
            account.id, sp.CallOutcome.CALL_BACK, at=at(2026, 1, 6), callback_at=at(2026, 1, 5)
        )
    assert info.value.field == "callback_at"
    assert sales.get(account.id) == account
    same = sales.record_call(
        account.id, sp.CallOutcome.CALL_BACK, at=at(2026, 1, 6), callback_at=at(2026, 1, 6)
    )
    assert same.calls[-1].callback_at == at(2026, 1, 6)


def test_unknown_call_outcome_is_a_validation_error(sales):
    """An outcome that is no CallOutcome is a ValidationError naming the field, like a channel."""
    account = capture(sales)
    with pytest.raises(sp.ValidationError) as info:
        sales.record_call(account.id, "hung_up", at=at(2026, 1, 6))
    assert info.value.field == "outcome"
    assert sales.get(account.id) == account


def test_call_before_capture_is_refused(sales):
    """A call cannot predate the lead."""
    account = capture(sales)
    with pytest.raises(sp.ValidationError, match="before the lead was captured") as info:
        sales.record_call(account.id, sp.CallOutcome.NO_ANSWER, at=at(2026, 1, 4))
    assert info.value.field == "at"
    assert sales.get(account.id) == account


# -- call list ---------------------------------------------------------------------------------


def test_call_list_exclusions_and_ordering(sales):
    """Only callable prospects that pass the criteria, best score first, then oldest."""
    day = at(2026, 1, 5)

    def lead(name: str, hours: int, **attributes: object) -> sp.Account:
        attributes.setdefault("industry", "manufacturing")
        return sales.capture_lead(
            name=name,
            email=f"{name}@leads.example",
            channel="marketing_list",
            attributes=attributes,
            at=day + timedelta(hours=hours),
        )

    top = lead("top", 5, score=9)
    old_mid = lead("oldmid", 1, score=5)
    new_mid = lead("newmid", 2, score=5)
    plain = lead("plain", 0)
    lead("retail", 0, industry="retail", score=99)
    no_answer = lead("noanswer", 3, score=1)
    voicemail = lead("voicemail", 4, score=1)
    dnc = lead("dnc", 0, score=99)
    not_interested = lead("notinterested", 0, score=99)
    wrong = lead("wrong", 0, score=99)
    interested = lead("interested", 0, score=99)
    call_back = lead("callback", 0, score=50)
    buyer = lead("buyer", 0, score=99)

    call_at = day + timedelta(hours=6)
    sales.record_call(no_answer.id, sp.CallOutcome.NO_ANSWER, at=call_at)
    sales.record_call(voicemail.id, sp.CallOutcome.VOICEMAIL, at=call_at)
    sales.record_call(dnc.id, sp.CallOutcome.DO_NOT_CALL, at=call_at)
    sales.record_call(not_interested.id, sp.CallOutcome.NOT_INTERESTED, at=call_at)
    sales.record_call(wrong.id, sp.CallOutcome.WRONG_CONTACT, at=call_at)
    sales.record_call(interested.id, sp.CallOutcome.INTERESTED, at=call_at)
    sales.record_call(
        call_back.id, sp.CallOutcome.CALL_BACK, at=call_at, callback_at=day + timedelta(days=2)
    )
    sales.qualify(buyer.id, override="walk-in", at=call_at)

    before_due = sales.call_list(at=day + timedelta(days=1))
    assert [a.id for a in before_due] == [
        top.id,
        old_mid.id,
        new_mid.id,
        no_answer.id,
        voicemail.id,
        plain.id,
    ]
    due = sales.call_list(at=day + timedelta(days=2))
    assert [a.id for a in due][:2] == [call_back.id, top.id]
    assert len(due) == 7
    assert [a.id for a in sales.call_list(limit=2, at=day + timedelta(days=2))] == [
        call_back.id,
        top.id,
    ]
    assert all(not a.do_not_contact for a in due)


def test_call_list_without_scoring_is_oldest_first(clock):
    """Without a scoring rule the call list is ordered by capture time."""
    sales = sp.SalesProcess(criteria=CRITERIA, clock=clock)
    ids = [
        sales.capture_lead(
            name=f"L{i}",
            email=f"l{i}@x.example",
            channel="cold_outreach",
            attributes={"industry": "logistics"},
            at=at(2026, 1, 5) - timedelta(hours=i),
        ).id
        for i in range(4)
    ]
    assert [a.id for a in sales.call_list(at=at(2026, 1, 6))] == ids[::-1]


def test_backdated_call_does_not_hide_a_later_refusal(sales):
    """A call dated before the last one is refused, so a NOT_INTERESTED lead stays off the list."""
    account = capture(sales)
    sales.record_call(account.id, sp.CallOutcome.NOT_INTERESTED, at=at(2026, 1, 7))
    before = sales.get(account.id)
    with pytest.raises(sp.ValidationError, match="before its last call") as info:
        sales.record_call(account.id, sp.CallOutcome.NO_ANSWER, at=at(2026, 1, 6))
    assert info.value.field == "at"
    assert sales.get(account.id) == before
    assert sales.call_list(at=at(2026, 1, 8)) == []


@pytest.mark.parametrize("limit", [0, -1, True, 2.5, "10"])
def test_call_list_limit_must_be_positive(sales, limit):
    """limit is a positive int."""
    with pytest.raises(sp.ValidationError) as info:
        sales.call_list(limit=limit)
    assert info.value.field == "limit"


# -- other lifecycle commands -----------------------------------------------------------------


def test_disqualify_recycle_and_churn(sales, events):
    """disqualify, recycle and churn move the stage and keep the reason."""
    lead = capture(sales)
    lead = sales.disqualify(lead.id, "no budget this year", at=at(2026, 1, 6), actor="mia")
    assert lead.stage is sp.Stage.DISQUALIFIED
    assert lead.history[-1].reason == "no budget this year"
    assert lead.history[-1].actor == "mia"
    assert isinstance(events[-1], sp.AccountDisqualified)
    lead = sales.recycle(lead.id, "budget approved", at=at(2026, 2, 1))
    assert lead.stage is sp.Stage.PROSPECT
    assert isinstance(events[-1], sp.AccountRecycled)

    buyer = qualified(sales, name="B", email="b@b.example", phone=None)
    buyer = sales.record_purchase(buyer.id, sp.Money("5", "EUR"), at=at(2026, 2, 1))
    buyer = sales.churn(buyer.id, "moved to a rival", at=at(2026, 3, 1))
    assert buyer.stage is sp.Stage.CHURNED
    assert buyer.history[-1].reason == "moved to a rival"
    assert isinstance(events[-1], sp.AccountChurned)


@pytest.mark.parametrize("command", ["disqualify", "recycle", "churn"])
@pytest.mark.parametrize("reason", ["", "  ", None])
def test_reasons_are_required(sales, command, reason):
    """disqualify, recycle and churn need a non-empty reason."""
    account = capture(sales)
    with pytest.raises(sp.ValidationError) as info:
        getattr(sales, command)(account.id, reason)
    assert info.value.field == "reason"
    assert sales.get(account.id) == account


def test_invalid_transition_through_the_service_stores_nothing(sales, events):
    """A refused event raises InvalidTransition and leaves the stored account as it was."""
    account = capture(sales)
    published = len(events)
    for command in (
        lambda: sales.churn(account.id, "bored"),
        lambda: sales.recycle(account.id, "again"),
        lambda: sales.fire(account.id, "refer"),
        lambda: sales.fire(account.id, "teleport"),
    ):
        with pytest.raises(sp.InvalidTransition) as info:
            command()
        assert info.value.account_id == account.id
        assert info.value.stage is sp.Stage.PROSPECT
        assert sales.get(account.id) == account
    assert len(events) == published


def test_fire_to_the_same_stage_stores_nothing(sales, events):
    """A referrer referring again is no change: nothing stored, nothing published."""
    account = qualified(sales)
    account = sales.record_purchase(account.id, sp.Money("1", "EUR"), at=at(2026, 1, 7))
    account = sales.fire(account.id, "refer", at=at(2026, 1, 8))
    assert account.stage is sp.Stage.REFERRER
    assert isinstance(events[-1], sp.AccountBecameReferrer)
    published = len(events)
    again = sales.fire(account.id, "refer", at=at(2026, 1, 9))
    assert again == account
    assert again.version == account.version
    assert len(events) == published


# -- section 2: recurring revenue --------------------------------------------------------------


def test_usage_section_2_purchases(sales):
    """The first purchase makes a customer, one on a later day a repeat customer."""
    account = qualified(sales)
    account = sales.record_purchase(account.id, sp.Money("12000.00", "EUR"), at=at(2026, 3, 1))
    assert account.stage is sp.Stage.CUSTOMER
    account = sales.record_purchase(account.id, sp.Money("800.00", "EUR"), at=at(2026, 6, 1))
    assert account.stage is sp.Stage.REPEAT
    assert [p.amount for p in account.purchases] == [
        sp.Money("12000", "EUR"),
        sp.Money("800", "EUR"),
    ]


def test_second_purchase_same_utc_day_stays_customer(sales):
    """Two purchases on one UTC day (different local days) stay customer."""
    account = qualified(sales)
    first = datetime(2026, 2, 28, 19, 15, tzinfo=timezone(timedelta(hours=-5)))
    second = datetime(2026, 3, 2, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    account = sales.record_purchase(account.id, sp.Money("1", "EUR"), at=first)
    account = sales.record_purchase(account.id, sp.Money("2", "EUR"), at=second)
    assert account.stage is sp.Stage.CUSTOMER
    assert len(account.purchases) == 2


def test_zero_purchase_is_allowed(sales):
    """A zero-value purchase is an order like any other."""
    account = qualified(sales)
    account = sales.record_purchase(account.id, sp.Money("0", "EUR"), at=at(2026, 3, 1))
    assert account.stage is sp.Stage.CUSTOMER
    assert account.purchases[-1].amount == sp.Money.zero("EUR")


def test_negative_purchase_is_refused(sales):
    """A negative amount is refused before anything is stored."""
    account = qualified(sales)
    with pytest.raises(sp.ValidationError, match="negative") as info:
        sales.record_purchase(account.id, sp.Money("-1.00", "EUR"), at=at(2026, 3, 1))
    assert info.value.field == "amount"
    assert sales.get(account.id) == account


@pytest.mark.parametrize("amount", [12.5, 100, "100.00", None])
def test_float_or_bare_amount_is_refused(sales, amount):
    """record_purchase wants Money; a float (or any bare number) is refused."""
    account = qualified(sales)
    with pytest.raises(sp.ValidationError) as info:
        sales.record_purchase(account.id, amount, at=at(2026, 3, 1))
    assert info.value.field == "amount"
    assert sales.get(account.id) == account
    with pytest.raises(sp.ValidationError):
        sp.Money(12.5, "EUR")


def test_purchase_before_the_last_is_refused(sales):
    """Purchases are recorded in order."""
    account = qualified(sales)
    account = sales.record_purchase(account.id, sp.Money("1", "EUR"), at=at(2026, 3, 2))
    with pytest.raises(sp.ValidationError, match="in order") as info:
        sales.record_purchase(account.id, sp.Money("1", "EUR"), at=at(2026, 3, 1))
    assert info.value.field == "at"
    assert sales.get(account.id) == account


def test_purchase_by_a_prospect_points_to_the_override(sales):
    """A prospect cannot buy; the error says how to qualify with an override."""
    account = capture(sales)
    with pytest.raises(sp.InvalidTransition, match="override=") as info:
        sales.record_purchase(account.id, sp.Money("1", "EUR"), at=at(2026, 1, 6))
    assert info.value.event == "purchase"
    assert sales.get(account.id) == account


def test_purchases_in_two_currencies_are_kept_apart_when_the_rule_allows(clock):
    """With the per-account rule off, an account may buy in two currencies, each kept."""
    sales = sp.SalesProcess(clock=clock, currency=sp.CurrencyRule(per_account=False))
    account = qualified(sales)
    account = sales.record_purchase(account.id, sp.Money("10", "EUR"), at=at(2026, 3, 1))
    account = sales.record_purchase(account.id, sp.Money("20", "USD"), at=at(2026, 3, 2))
    assert account.stage is sp.Stage.REPEAT
    assert [p.amount.currency for p in account.purchases] == ["EUR", "USD"]


def test_win_back_publishes_won_back(sales, events):
    """A churned account buying again is won back."""
    account = qualified(sales)
    account = sales.record_purchase(account.id, sp.Money("10", "EUR"), at=at(2026, 3, 1))
    account = sales.churn(account.id, "gone", at=at(2026, 4, 1))
    account = sales.record_purchase(account.id, sp.Money("10", "EUR"), at=at(2026, 5, 1))
    assert account.stage is sp.Stage.REPEAT
    assert isinstance(events[-2], sp.AccountWonBack)
    assert isinstance(events[-1], sp.PurchaseRecorded)


# -- unknown ids -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        lambda s: s.get("nope"),
        lambda s: s.qualify("nope", override="x"),
        lambda s: s.disqualify("nope", "x"),
        lambda s: s.recycle("nope", "x"),
        lambda s: s.churn("nope", "x"),
        lambda s: s.fire("nope", "refer"),
        lambda s: s.record_purchase("nope", sp.Money("1", "EUR")),
        lambda s: s.record_call("nope", sp.CallOutcome.NO_ANSWER),
        lambda s: s.screen("nope"),
    ],
)
def test_unknown_id_raises_not_found(sales, command):
    """Every command on an unknown id raises NotFound (a LookupError)."""
    with pytest.raises(sp.NotFound, match="nope") as info:
        command(sales)
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, sp.SalesProcessError)


# -- events ------------------------------------------------------------------------------------


def test_events_are_published_in_order_after_storing(sales):
    """Each event reaches subscribers after its change is stored, in command order."""
    seen: list[tuple[sp.DomainEvent, int]] = []
    sales.subscribe(lambda e: seen.append((e, sales.get(e.account_id).version)))
    account = capture(sales)
    sales.qualify(account.id, override="walk-in", at=at(2026, 1, 6))
    sales.record_purchase(account.id, sp.Money("100", "EUR"), at=at(2026, 2, 1))
    sales.record_purchase(account.id, sp.Money("50", "EUR"), at=at(2026, 3, 1))
    sales.fire(account.id, "refer", at=at(2026, 3, 2))
    sales.churn(account.id, "gone", at=at(2026, 4, 1))
    assert [(type(e), v) for e, v in seen] == [
        (sp.LeadCaptured, 1),
        (sp.AccountQualified, 2),
        (sp.AccountConverted, 3),
        (sp.PurchaseRecorded, 3),
        (sp.AccountBecameRepeat, 4),
        (sp.PurchaseRecorded, 4),
        (sp.AccountBecameReferrer, 5),
        (sp.AccountChurned, 6),
    ]
    final = sales.get(account.id)
    stage_events = [e for e, _ in seen if isinstance(e, sp.StageChanged)]
    assert [e.change for e in stage_events] == list(final.history[1:])
    assert all(e.account_id == account.id for e, _ in seen)
    purchases = [e.purchase for e, _ in seen if isinstance(e, sp.PurchaseRecorded)]
    assert purchases == list(final.purchases)


def test_subscribers_filter_by_type_and_can_unsubscribe(sales):
    """A subscriber gets only its event type (and subclasses) until it unsubscribes."""
    stage_changes: list[sp.DomainEvent] = []
    purchases: list[sp.DomainEvent] = []
    everything: list[sp.DomainEvent] = []
    stop = sales.subscribe(stage_changes.append, sp.StageChanged)
    sales.subscribe(purchases.append, sp.PurchaseRecorded)
    sales.subscribe(everything.append)
    account = qualified(sales)
    assert [type(e) for e in stage_changes] == [sp.AccountQualified]
    sales.record_purchase(account.id, sp.Money("1", "EUR"), at=at(2026, 2, 1))
    assert [type(e) for e in stage_changes] == [sp.AccountQualified, sp.AccountConverted]
    assert [type(e) for e in purchases] == [sp.PurchaseRecorded]
    stop()
    sales.record_purchase(account.id, sp.Money("1", "EUR"), at=at(2026, 3, 1))
    assert len(stage_changes) == 2
    assert len(purchases) == 2
    assert [type(e) for e in everything][-2:] == [sp.AccountBecameRepeat, sp.PurchaseRecorded]


def test_failing_subscriber_does_not_undo_the_change(sales):
    """A handler's exception reaches the caller, but the change is stored."""

    def explode(event: sp.DomainEvent) -> None:
        raise RuntimeError("handler broke")

    account = capture(sales)
    sales.subscribe(explode, sp.AccountQualified)
    with pytest.raises(RuntimeError, match="handler broke"):
        sales.qualify(account.id, override="walk-in", at=at(2026, 1, 6))
    assert sales.get(account.id).stage is sp.Stage.QUALIFIED


def test_refused_commands_publish_nothing(sales, events):
    """No event is published for a refused command or a duplicate capture."""
    account = capture(sales)
    published = len(events)
    capture(sales)
    with pytest.raises(sp.QualificationRefused):
        sales.qualify(account.id)
    with pytest.raises(sp.ValidationError):
        sales.record_call(account.id, sp.CallOutcome.CALL_BACK)
    assert len(events) == published


# -- concurrency: retries ----------------------------------------------------------------------


@pytest.mark.parametrize("failures", [0, 1, 3])
def test_command_lands_after_conflict_retries(clock, failures):
    """A save that loses the race up to max_retries times is retried and lands once."""
    repo = FlakyRepository(failures=0)
    sales = sp.SalesProcess(repo, clock=clock, max_retries=3)
    seen: list[sp.DomainEvent] = []
    sales.subscribe(seen.append)
    account = qualified(sales)
    repo.failures = failures
    repo.save_calls = 0
    stored = sales.record_purchase(account.id, sp.Money("10", "EUR"), at=at(2026, 2, 1))
    assert repo.save_calls == failures + 1
    assert stored.stage is sp.Stage.CUSTOMER
    assert stored.version == account.version + 1
    assert sales.get(account.id) == stored
    assert len(stored.purchases) == 1
    assert [type(e) for e in seen[-2:]] == [sp.AccountConverted, sp.PurchaseRecorded]
    assert sum(isinstance(e, sp.PurchaseRecorded) for e in seen) == 1


def test_command_gives_up_after_max_retries_and_writes_nothing(clock):
    """When every attempt loses the race, ConflictError reaches the caller and nothing is stored."""
    repo = FlakyRepository(failures=0)
    sales = sp.SalesProcess(repo, clock=clock, max_retries=2)
    seen: list[sp.DomainEvent] = []
    account = qualified(sales)
    sales.subscribe(seen.append)
    repo.failures = 3
    repo.save_calls = 0
    with pytest.raises(sp.ConflictError, match="gave up after 3 attempts"):
        sales.record_purchase(account.id, sp.Money("10", "EUR"), at=at(2026, 2, 1))
    assert repo.save_calls == 3
    assert sales.get(account.id) == account
    assert seen == []


def test_no_retries_means_one_attempt(clock):
    """max_retries=0 tries once."""
    repo = FlakyRepository(failures=0)
    sales = sp.SalesProcess(repo, clock=clock, max_retries=0)
    account = qualified(sales)
    repo.failures = 1
    with pytest.raises(sp.ConflictError):
        sales.record_call(account.id, sp.CallOutcome.NO_ANSWER)
    assert sales.get(account.id) == account


def test_retry_works_on_a_fresh_copy_after_a_concurrent_write(clock):
    """A concurrent write between load and save is kept, and the command lands on top of it."""

    def other_desk(inner: InMemoryRepository, _stale: sp.Account) -> None:
        other = sp.SalesProcess(inner, clock=clock)
        other.record_call(_stale.id, sp.CallOutcome.VOICEMAIL, notes="other desk")

    repo = FlakyRepository(failures=0, interleave=other_desk)
    sales = sp.SalesProcess(repo, clock=clock, max_retries=1)
    account = qualified(sales)
    repo.failures = 1
    stored = sales.record_purchase(account.id, sp.Money("10", "EUR"), at=at(2026, 2, 1))
    assert stored.version == account.version + 2
    assert [c.notes for c in stored.calls] == ["other desk"]
    assert len(stored.purchases) == 1
    assert stored.stage is sp.Stage.CUSTOMER


def test_refusal_on_the_fresh_copy_wins_over_the_retry(clock):
    """If the concurrent write makes the command invalid, the retry raises its refusal."""

    def churned_meanwhile(inner: InMemoryRepository, stale: sp.Account) -> None:
        other = sp.SalesProcess(inner, clock=clock)
        other.disqualify(stale.id, "other desk disqualified it", at=at(2026, 1, 7))

    repo = FlakyRepository(failures=0, interleave=churned_meanwhile)
    sales = sp.SalesProcess(repo, clock=clock, max_retries=3)
    account = capture(sales)
    repo.failures = 1
    with pytest.raises(sp.InvalidTransition):
        sales.qualify(account.id, override="walk-in", at=at(2026, 1, 8))
    assert sales.get(account.id).stage is sp.Stage.DISQUALIFIED


@pytest.mark.parametrize("max_retries", [-1, True, 1.5, "3"])
def test_max_retries_must_be_a_non_negative_int(max_retries):
    """max_retries is validated."""
    with pytest.raises(sp.ValidationError) as info:
        sp.SalesProcess(max_retries=max_retries)
    assert info.value.field == "max_retries"


# -- queries -----------------------------------------------------------------------------------


def test_stage_counts_include_every_stage(sales):
    """stage_counts() lists every stage of the lifecycle, zeros included."""
    capture(sales, "A", email="a@a.example", phone=None)
    qualified(sales, name="B", email="b@b.example", phone=None)
    counts = sales.stage_counts()
    assert counts == {
        sp.Stage.PROSPECT: 1,
        sp.Stage.QUALIFIED: 1,
        sp.Stage.CUSTOMER: 0,
        sp.Stage.REPEAT: 0,
        sp.Stage.REFERRER: 0,
        sp.Stage.DISQUALIFIED: 0,
        sp.Stage.CHURNED: 0,
    }


def test_default_process_uses_memory_and_system_clock():
    """SalesProcess() works out of the box: in-memory storage, the system clock, uuid ids."""
    sales = sp.SalesProcess()
    assert isinstance(sales.repository, InMemoryRepository)
    account = sales.capture_lead(name="Acme", email="a@acme.example", channel="cold_outreach")
    assert len(account.id) == 32
    assert uuid.UUID(hex=account.id).version == 7
    assert account.created_at.utcoffset() == timedelta(0)
    assert abs(account.created_at - datetime.now(UTC)) < timedelta(minutes=5)


# -- review regressions ----------------------------------------------------------------------


def test_bad_actor_is_refused_before_anything_is_stored(sales):
    """An actor that is not text is refused, so no unreadable history reaches storage."""
    with pytest.raises(sp.ValidationError) as info:
        capture(sales, actor=5)
    assert info.value.field == "actor"
    account = capture(sales)
    with pytest.raises(sp.ValidationError) as info:
        sales.qualify(account.id, override="ok", actor=12, at=at(2026, 1, 6))
    assert info.value.field == "actor"
    with pytest.raises(sp.ValidationError) as info:
        sales.disqualify(account.id, "no budget", actor=12, at=at(2026, 1, 6))
    assert info.value.field == "actor"
    assert sales.get(account.id) == account


def test_screen_all_is_refused_whole_when_it_would_run_backwards(sales):
    """A bulk screen earlier than one prospect's last screen stores nothing for anyone."""
    first = capture(sales)
    second = capture(sales, name="Beta", email="ops@beta.example", phone=None)
    sales.screen(second.id, at=at(2026, 1, 9))
    with pytest.raises(sp.ValidationError, match="earlier than the last screening of 1"):
        sales.screen_all(at=at(2026, 1, 8))
    assert sales.get(first.id).screenings == ()
    assert len(sales.get(second.id).screenings) == 1


def test_screen_all_leaves_out_a_prospect_that_moved_on(clock):
    """A prospect qualified while the bulk runs is not screened as a prospect."""
    repository = sp.storage.InMemoryRepository()
    sales = sp.SalesProcess(repository, criteria=CRITERIA, clock=clock)
    first = capture(sales)
    second = capture(sales, name="Beta", email="ops@beta.example", phone=None)
    listed = list(repository.with_stage(sp.Stage.PROSPECT))

    class Racing:
        """Lists both prospects, then lets the second be qualified before it is screened."""

        def __getattr__(self, name: str) -> Any:
            return getattr(repository, name)

        def with_stage(self, stage: sp.Stage) -> Any:
            sales.qualify(second.id, override="signed at the fair", at=at(2026, 1, 6))
            return iter(listed)

    racing = sp.SalesProcess(Racing(), criteria=CRITERIA, clock=clock)  # type: ignore[arg-type]
    reports = racing.screen_all(at=at(2026, 1, 7))
    assert [report.account_id for report in reports] == [first.id]
    assert sales.get(second.id).screenings == ()


def test_call_list_survives_a_scoring_rule_that_cannot_judge_a_record(clock):
    """A scoring rule raising CriteriaError on one record ranks it last instead of failing."""
    scoring = sp.Criteria.from_dict({"/": [1, {"var": "size"}]}, name="inverse size", version="1")
    sales = sp.SalesProcess(criteria=CRITERIA, scoring=scoring, clock=clock)
    odd = capture(sales, attributes={"industry": "logistics", "size": 0})
    fine = capture(
        sales,
        name="Beta",
        email="ops@beta.example",
        phone=None,
        attributes={"industry": "logistics", "size": 2},
    )
    assert [a.id for a in sales.call_list(at=at(2026, 1, 6))] == [fine.id, odd.id]


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (lambda s: s.record_call("nope", "bogus"), "outcome"),
        (lambda s: s.record_call("nope", "interested", at=datetime(2026, 1, 5)), "at"),
        (lambda s: s.record_purchase("nope", sp.Money("-1", "EUR")), "amount"),
        (lambda s: s.qualify("nope", at=datetime(2026, 1, 5)), "at"),
        (lambda s: s.fire("nope", "churn", at=datetime(2026, 1, 5)), "at"),
        (lambda s: s.screen("nope", at=datetime(2026, 1, 5)), "at"),
        (lambda s: s.learn_preference("nope", "", "x"), "key"),
        (lambda s: s.ask_for_referrals("nope", wanted=-1), "wanted"),
        (lambda s: s.issue_referral_cards("nope", count=0), "count"),
    ],
)
def test_bad_input_is_reported_before_the_account_is_looked_up(sales, command, field):
    """Malformed input is a ValidationError naming the field, even for an unknown account."""
    with pytest.raises(sp.ValidationError) as caught:
        command(sales)
    assert caught.value.field == field


def test_screen_all_leaves_out_a_prospect_that_moved_on_meanwhile(clock):
    """A screening overtaken by a concurrent qualify is neither stored nor reported."""

    class Racing(InMemoryRepository):
        armed: str | None = None

        def save(self, account: sp.Account, *, expected_version: int) -> sp.Account:
            if self.armed == account.id:
                self.armed = None
                other.qualify(account.id, override="concurrent")  # another desk, first
            return super().save(account, expected_version=expected_version)

    repository = Racing()
    sales = sp.SalesProcess(repository, criteria=CRITERIA, clock=clock)
    other = sp.SalesProcess(repository, criteria=CRITERIA, clock=clock)
    account = capture(sales)
    repository.armed = account.id
    assert sales.screen_all() == []
    assert sales.get(account.id).screenings == ()
    assert sales.get(account.id).stage is sp.Stage.QUALIFIED


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"repository": "sales.db"}, "repository"),
        ({"criteria": {"==": [1, 1]}}, "criteria"),
        ({"scoring": "best first"}, "scoring"),
        ({"qualification_policy": object()}, "qualification_policy"),
        ({"service_policy": 42}, "service_policy"),
        ({"clock": "utc"}, "clock"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"id_factory": "uuid"}, "id_factory"),
        ({"code_factory": 5}, "code_factory"),
    ],
)
def test_a_miswired_process_is_refused_when_built(kwargs, field):
    """Each constructor argument is checked at once, naming the field, not at first use."""
    with pytest.raises(sp.ValidationError) as info:
        sp.SalesProcess(**kwargs)
    assert info.value.field == field


def test_a_naive_or_odd_moment_is_a_validation_error_everywhere(sales):
    """call_list and screen_all check ``at`` like every command (no TypeError escapes)."""
    capture(sales)
    for moment in (datetime(2026, 1, 9), "2026-01-09"):
        for call in (sales.call_list, sales.screen_all):
            with pytest.raises(sp.ValidationError) as info:
                call(at=moment)  # type: ignore[arg-type]
            assert info.value.field == "at"


def test_capture_refuses_a_keyword_it_does_not_take(sales):
    """A misspelt detail is refused, naming it, rather than dropped."""
    with pytest.raises(sp.ValidationError, match="takes no campagin") as info:
        sales.capture_lead("Acme", email="a@acme.example", channel="referral", campagin="expo")
    assert info.value.field == "campagin"
    assert len(sales.repository) == 0


def test_the_store_and_clock_are_fixed_for_the_process(sales):
    """repository, clock and max_retries cannot be swapped under a running process."""
    with pytest.raises(AttributeError):
        sales.clock = sp.FixedClock(at(2027, 1, 1))  # type: ignore[misc]
    with pytest.raises(AttributeError):
        sales.repository = InMemoryRepository()  # type: ignore[misc]


def test_default_ids_are_version_7_uuids_in_hex_of_the_time_they_are_drawn():
    """The default id factory writes RFC 9562 version 7 UUIDs: 32 hex digits, time first."""
    from salesprocess.use_cases import _new_id  # noqa: PLC0415 - the private default itself

    before = time.time_ns() // 1_000_000
    ids = [_new_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for account_id in ids:
        parsed = uuid.UUID(hex=account_id)
        assert parsed.hex == account_id
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert before <= int(account_id[:12], 16) <= after
    # The 62 bits after the variant are random: each of their hex digits takes many values.
    assert all(len({account_id[i] for account_id in ids}) > 12 for i in range(17, 32))


@given(st.lists(st.integers(min_value=0, max_value=2**48 * 1_000_000 - 1), min_size=2, max_size=20))
def test_default_ids_drawn_later_sort_later(moments: list[int]) -> None:
    """Ids sort as the times they were drawn at, to 1/4096 of a millisecond (RFC 9562, method 3)."""
    from salesprocess import use_cases  # noqa: PLC0415 - the private default itself

    drawn = []
    for moment in moments:
        with mock.patch.object(use_cases, "time", SimpleNamespace(time_ns=lambda at=moment: at)):
            drawn.append((moment, use_cases._new_id()))
    for moment, account_id in drawn:
        assert int(account_id[:12], 16) == moment // 1_000_000
    tick = 1_000_000 / 4096  # the time part's finest step, in nanoseconds
    for (earlier, first), (later, second) in itertools.combinations(sorted(drawn), 2):
        if later // 1_000_000 > earlier // 1_000_000 or later - earlier >= tick:
            assert first < second
