"""The unit of work: events after commit, exact retries, and commands as pure decisions."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from typing import Any

import pytest

import salesprocess as sp
from salesprocess.commands import leads, qualifying
from salesprocess.commands.leads import Known
from support import Delegating

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)


class _Undo(Exception):
    """Raised by a caller's own block to roll it back."""


def process(repository: Any) -> tuple[sp.SalesProcess, list[sp.DomainEvent]]:
    counter = itertools.count(1)
    sales = sp.SalesProcess(
        repository, clock=sp.FixedClock(T0), id_factory=lambda: f"id-{next(counter)}"
    )
    seen: list[sp.DomainEvent] = []
    sales.subscribe(seen.append)
    return sales, seen


def qualified(sales: sp.SalesProcess) -> sp.Account:
    lead = sales.capture_lead("Acme", email="buyer@acme.example", channel="inbound_inquiry")
    return sales.qualify(lead.id, override="walk-in")


# -- events after commit, on every adapter --------------------------------------------------------


def test_a_command_in_a_block_that_rolls_back_publishes_nothing(any_repository):
    """Inside the caller's atomic() that then raises: nothing is stored, nothing published."""
    sales, seen = process(any_repository)
    acct = qualified(sales)
    seen.clear()

    def request() -> None:
        with any_repository.atomic():
            sales.record_purchase(acct.id, sp.Money("10.00", "EUR"))
            sales.capture_lead("Beta", email="ops@beta.example", channel="referral")
            assert seen == []  # not before the caller's block has committed
            raise _Undo

    with pytest.raises(_Undo):
        request()
    assert seen == []
    assert sales.get(acct.id) == acct
    assert sales.find(email="ops@beta.example") is None


def test_a_command_in_a_committed_block_publishes_each_event_once(any_repository):
    """Inside the caller's atomic() that commits: each event once, when the block ends."""
    sales, seen = process(any_repository)
    acct = qualified(sales)
    seen.clear()
    with any_repository.atomic():
        bought = sales.record_purchase(acct.id, sp.Money("10.00", "EUR"))
        with any_repository.atomic():
            friend = sales.record_referral(acct.id, "Beta", email="ops@beta.example")
        assert seen == []
    assert [type(event) for event in seen] == [
        sp.AccountConverted,
        sp.PurchaseRecorded,
        sp.LeadCaptured,
        sp.AccountBecameReferrer,
        sp.ReferralRecorded,
    ]
    assert seen[0].account_id == bought.id
    assert seen[2].account_id == friend.id
    assert sales.get(acct.id).stage is sp.Stage.REFERRER


def test_a_command_outside_any_block_publishes_before_it_returns(any_repository):
    """With no block open, a command's events are published once its write is stored."""
    sales, seen = process(any_repository)
    heard: list[int] = []
    sales.subscribe(lambda event: heard.append(sales.get(event.account_id).version))
    lead = sales.capture_lead("Acme", email="buyer@acme.example", channel="inbound_inquiry")
    assert seen == [sp.LeadCaptured(lead.id, T0, lead.source)]
    assert heard == [1]  # the subscriber reads what was committed


def test_an_inner_block_rolled_back_drops_only_its_events(any_repository):
    """A nested block the caller rolls back drops its events; the outer block's still come."""
    sales, seen = process(any_repository)

    def inner() -> None:
        with any_repository.atomic():
            sales.capture_lead("Beta", email="ops@beta.example", channel="referral")
            raise _Undo

    with any_repository.atomic():
        kept = sales.capture_lead("Acme", email="buyer@acme.example", channel="referral")
        with pytest.raises(_Undo):
            inner()
    assert seen == [sp.LeadCaptured(kept.id, T0, kept.source)]


# -- retries: a stale write only -------------------------------------------------------------------


def test_a_clash_of_data_is_not_retried():
    """A plain ConflictError from a save (a taken referral code) reaches the caller at once."""

    class Clashing(Delegating):
        saves = 0

        def save(self, account: sp.Account, *, expected_version: int) -> sp.Account:
            self.saves += 1
            raise sp.ConflictError("referral code K7M4PQ2X already belongs to account x")

    repository = Clashing(sp.storage.InMemoryRepository())
    sales, seen = process(repository)
    lead = sales.capture_lead("Acme", email="buyer@acme.example", channel="referral")
    seen.clear()
    with pytest.raises(sp.ConflictError, match="already belongs") as info:
        sales.qualify(lead.id, override="walk-in")
    assert not isinstance(info.value, sp.StaleWrite)
    assert repository.saves == 1
    assert seen == []


def test_a_stale_write_is_retried_on_fresh_data_then_given_up():
    """StaleWrite is retried max_retries times on a reload, then reaches the caller."""

    class Overtaken(Delegating):
        saves = 0

        def save(self, account: sp.Account, *, expected_version: int) -> sp.Account:
            self.saves += 1
            raise sp.StaleWrite("simulated concurrent write")

    repository = Overtaken(sp.storage.InMemoryRepository())
    sales = sp.SalesProcess(repository, max_retries=2)  # type: ignore[arg-type]
    lead = sales.capture_lead("Acme", email="buyer@acme.example", channel="referral")
    with pytest.raises(sp.StaleWrite, match="gave up after 3 attempts"):
        sales.qualify(lead.id, override="walk-in")
    assert repository.saves == 3
    assert sales.get(lead.id) == lead


def test_a_lead_captured_meanwhile_is_recognised_on_the_retry(any_repository):
    """Another writer adds the same person between our look-up and our add: we link to it."""

    class Raced(Delegating):
        raced = False

        def add(self, account: sp.Account) -> sp.Account:
            if not self.raced:
                self.raced = True
                self.inner.add(sp.Account("theirs", "Acme", sp.Source("referral"), T0,
                                          email=account.email))  # fmt: skip
            return self.inner.add(account)

    sales, seen = process(Raced(any_repository))
    done = sales.capture("Acme", email="buyer@acme.example", channel="inbound_inquiry")
    assert done == sp.LeadCapture(any_repository.get("theirs"), new=False)
    assert seen == []  # we captured nobody: the other writer did
    assert sum(sales.stage_counts().values()) == 1


def test_an_id_clash_is_not_taken_for_a_race():
    """A duplicate id from the id factory is a ConflictError, not a retry loop."""
    sales = sp.SalesProcess(id_factory=lambda: "same")
    sales.capture_lead("Acme", email="a@acme.example", channel="referral")
    with pytest.raises(sp.ConflictError, match="id same") as info:
        sales.capture_lead("Beta", email="b@beta.example", channel="referral")
    assert not isinstance(info.value, sp.StaleWrite)


# -- commands are pure decisions -----------------------------------------------------------------


def test_a_command_decides_without_storage():
    """commands.* take accounts and a moment and return what to write and publish."""
    lead = leads.new_lead(
        "id-1", "Acme", "referral", email="Buyer@Acme.example", phone=None, campaign=None,
        attributes=None, stage=sp.Stage.PROSPECT, at=T0, actor=None,
    )  # fmt: skip
    decision = leads.capture(Known(), T0, lead=lead)
    assert decision.writes == (lead,)
    assert decision.result == sp.LeadCapture(attrs_version(lead, 1), new=True)
    assert decision.events == (sp.LeadCaptured("id-1", T0, lead.source),)
    again = leads.capture(Known(by_email=decision.result.account), T0, lead=lead)
    assert again == sp.Decision(sp.LeadCapture(decision.result.account, new=False))


def test_a_refused_decision_raises():
    """A command refuses by raising: it returns no decision, so there is nothing to write."""
    transitions = sp.Transitions.of(sp.Lifecycle)
    lead = sp.Account("id-1", "Acme", sp.Source("referral"), T0, email="a@acme.example")
    with pytest.raises(sp.InvalidTransition):
        qualifying.fire(lead, T0, transitions=transitions, event="churn", reason="x", actor=None)


def attrs_version(account: sp.Account, version: int) -> sp.Account:
    import attrs  # noqa: PLC0415

    return attrs.evolve(account, version=version)


# -- subscriptions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "event_type", "field"),
    [
        (None, sp.DomainEvent, "handler"),
        (print, "LeadCaptured", "event_type"),
        (print, int, "event_type"),
    ],
)
def test_a_bad_subscription_is_refused_at_once(handler, event_type, field):
    """subscribe() checks its arguments, so no later command fails after storing its change."""
    sales = sp.SalesProcess()
    with pytest.raises(sp.ValidationError) as info:
        sales.subscribe(handler, event_type)
    assert info.value.field == field
    sales.capture_lead("Acme", email="a@acme.example", channel="referral")  # still publishes


def test_a_failing_handler_keeps_no_other_from_hearing():
    """Every handler hears the event; the first error then reaches the caller; the change stays."""
    sales = sp.SalesProcess()
    heard: list[str] = []

    def broken(_event: sp.DomainEvent) -> None:
        raise RuntimeError("the mail server is down")

    sales.subscribe(broken)
    sales.subscribe(lambda event: heard.append(event.account_id))
    with pytest.raises(RuntimeError, match="mail server"):
        sales.capture_lead("Acme", email="a@acme.example", channel="referral")
    assert len(heard) == 1
    assert sales.find(email="a@acme.example") is not None


def test_subscribe_is_typed_by_event_type(tmp_path):
    """A handler of one event type type-checks with mypy --strict; a mismatched one does not."""
    good = tmp_path / "good.py"
    good.write_text(
        textwrap.dedent("""
        import salesprocess as sp

        def on_purchase(event: sp.PurchaseRecorded) -> None:
            print(event.purchase.amount)

        def on_any(event: sp.DomainEvent) -> None:
            print(event.at)

        sales = sp.SalesProcess()
        sales.subscribe(on_purchase, sp.PurchaseRecorded)
        sales.subscribe(on_any)
    """)
    )
    bad = tmp_path / "bad.py"
    bad.write_text(
        textwrap.dedent("""
        import salesprocess as sp

        def on_purchase(event: sp.PurchaseRecorded) -> None:
            print(event.purchase.amount)

        sp.SalesProcess().subscribe(on_purchase, sp.LeadCaptured)
        sp.SalesProcess().subscribe(on_purchase)
    """)
    )
    mypy = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--follow-imports=silent"]
    passed = subprocess.run([*mypy, str(good)], capture_output=True, text=True, check=False)
    assert passed.returncode == 0, passed.stdout
    failed = subprocess.run([*mypy, str(bad)], capture_output=True, text=True, check=False)
    assert failed.stdout.count("error:") == 2, failed.stdout


def test_a_referral_code_taken_meanwhile_is_drawn_again():
    """Another writer takes the code we drew before our save: the retry draws a new one."""

    class Raced(Delegating):
        raced = False

        def save(self, account: sp.Account, *, expected_version: int) -> sp.Account:
            if account.referral_code and not self.raced:
                self.raced = True
                taker = sp.Account("taker", "T", sp.Source("referral"), T0,
                                   referral_code=account.referral_code)  # fmt: skip
                self.inner.add(taker)
            return self.inner.save(account, expected_version=expected_version)

    codes = iter(["AAAA1111", "BBBB2222"])
    sales = sp.SalesProcess(
        Raced(sp.storage.InMemoryRepository()),  # type: ignore[arg-type]
        clock=sp.FixedClock(T0),
        code_factory=lambda: next(codes),
    )
    acct = qualified(sales)
    acct = sales.record_purchase(acct.id, sp.Money("1.00", "EUR"))
    cards = sales.issue_referral_cards(acct.id, count=5)
    assert cards.code == "BBBB2222"
    assert sales.get(acct.id).referral_code == "BBBB2222"


def test_no_code_is_drawn_for_an_account_that_cannot_refer():
    """A prospect asking for cards is refused as such; no code is drawn for it."""
    drawn: list[str] = []

    def draw() -> str:
        drawn.append("AAAA1111")
        return "AAAA1111"

    sales = sp.SalesProcess(code_factory=draw)
    lead = sales.capture_lead("Acme", email="a@acme.example", channel="referral")
    with pytest.raises(sp.InvalidTransition, match="hand out referral cards"):
        sales.issue_referral_cards(lead.id)
    assert drawn == []


def test_a_referral_with_the_referrers_own_phone_is_a_self_referral():
    """The referrer's phone with another email is still the referrer naming itself."""
    sales = sp.SalesProcess(clock=sp.FixedClock(T0))
    lead = sales.capture_lead("Acme", email="a@acme.example", phone="+4930111", channel="referral")
    acct = sales.record_purchase(sales.qualify(lead.id, override="x").id, sp.Money("1", "EUR"))
    with pytest.raises(sp.ValidationError, match="cannot refer itself") as info:
        sales.record_referral(acct.id, "Me", email="other@acme.example", phone="+49 30 111")
    assert info.value.field == "phone"
    assert sales.get(acct.id) == acct
