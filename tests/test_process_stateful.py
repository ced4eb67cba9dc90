"""Random command sequences through SalesProcess keep every invariant of the domain."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

import salesprocess as sp
from salesprocess.clock import utc_day
from salesprocess.lifecycle import Lifecycle, Transitions
from salesprocess.money import ISO_4217_CODES
from salesprocess.storage import AsyncInMemoryRepository
from salesprocess.testing import Awaiting, BlockingRepository

TABLE = Transitions.of(Lifecycle)
START = datetime(2026, 1, 5, 21, 0, tzinfo=UTC)
OFFSETS = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-8))]
EMAILS = [f"lead{i}@acme.example" for i in range(3)]
PHONES = [f"+4930123456{i}" for i in range(2)]


#: Passes accounts whose ``fit`` attribute is true.
CRITERIA = sp.Criteria.from_dict({"!!": {"var": "fit"}}, name="fit", version="1")


# A clock step: nothing, a little, a few hours, up to just past the next UTC midnight, or days.
_STEPS = st.one_of(
    st.just(timedelta(0)),
    st.integers(1, 59).map(lambda m: timedelta(minutes=m)),
    st.integers(1, 6).map(lambda h: timedelta(hours=h)),
    st.just("midnight"),
    st.integers(1, 40).map(lambda d: timedelta(days=d)),
)
_BACK = st.sampled_from([False, False, False, True])  # sometimes an hour in the past
_AMOUNTS = st.sampled_from(["0", "0.01", "19.99", "100", "12000.00"])


class SalesProcessMachine(RuleBasedStateMachine):
    """Drives random commands and checks the stored accounts after every step."""

    accounts = Bundle("accounts")

    def __init__(self) -> None:
        super().__init__()
        self.clock = sp.FixedClock(START)
        counter = itertools.count(1)
        self.sales = self.make_sales(lambda: f"a{next(counter):03d}")
        self.versions: dict[str, int] = {}
        self.by_email: dict[str, str] = {}
        self.by_phone: dict[str, str] = {}
        self.fresh = itertools.count(1)

    def make_sales(self, id_factory: Callable[[], str]) -> Any:
        return sp.SalesProcess(criteria=CRITERIA, clock=self.clock, id_factory=id_factory)

    # -- helpers -------------------------------------------------------------------------------

    def _moment(self, offset: timezone, back: bool) -> datetime:
        """Now, in some offset; sometimes a little in the past (which history may refuse)."""
        now = self.clock.now() - (timedelta(hours=1) if back else timedelta(0))
        return now.astimezone(offset)

    def _run(self, account_id: str, command: Callable[[], sp.Account]) -> None:
        """Run ``command``; a refusal must change nothing, a landed command adds one version."""
        before = self.sales.get(account_id)
        assert before.version == self.versions[account_id]
        count = len(self.sales.repository)
        try:
            after = command()
        except sp.SalesProcessError:
            stored = self.sales.get(account_id)
            assert stored is before
            assert stored == before
            assert len(self.sales.repository) == count
            return
        stored = self.sales.get(account_id)
        assert stored == after
        if after is before:  # a change to the same stage with nothing else: not stored
            assert stored.version == before.version
        else:
            assert stored.version == before.version + 1
            self.versions[account_id] += 1

    # -- rules ---------------------------------------------------------------------------------

    @initialize(target=accounts)
    def first_lead(self) -> str:
        return self._capture(0, None, True)

    @initialize(target=accounts, cards=st.booleans())
    def a_customer(self, cards: bool) -> str:
        """A customer from the start (its email in the pool), so that referrals happen often."""
        account_id = self._capture(len(EMAILS) - 1, None, True)
        self.sales.qualify(account_id, override="walk-in purchase")
        self.sales.record_purchase(account_id, sp.Money("100", "EUR"))
        self.versions[account_id] += 2
        if cards:
            self.sales.issue_referral_cards(account_id, count=10)
            self.versions[account_id] += 1
        return account_id

    @rule(step=_STEPS)
    def advance_clock(self, step: timedelta | str) -> None:
        """Move the clock: not at all, a little, past the next UTC midnight, or days."""
        if step == "midnight":
            now = self.clock.now()
            midnight = datetime.combine(utc_day(now) + timedelta(days=1), datetime.min.time(), UTC)
            step = midnight - now + timedelta(minutes=1)
        before = utc_day(self.clock.now())
        self.clock.advance(seconds=step.total_seconds())
        assert utc_day(self.clock.now()) >= before

    def _capture(self, email_index: int | None, phone_index: int | None, fit: bool) -> str:
        """Capture, and check it against the model: new, known (maybe with a detail added),
        or refused for details that name two accounts or contradict the known one.
        """
        email = None if email_index is None else EMAILS[email_index]
        phone = None if phone_index is None else PHONES[phone_index]
        by_email = None if email is None else self.by_email.get(email)
        by_phone = None if phone is None else self.by_phone.get(phone)
        known = by_email or by_phone
        count = len(self.sales.repository)
        before = None if known is None else self.sales.get(known)
        clash = by_email is not None and by_phone is not None and by_email != by_phone
        contradicts = before is not None and (
            (email is not None and before.email not in (None, email))
            or (phone is not None and before.phone not in (None, phone))
        )
        try:
            done = self.sales.capture(
                "Lead",
                email=None if email is None else email.upper(),
                phone=phone,
                channel=sp.Channel.COLD_OUTREACH,
                attributes={"fit": fit},
            )
        except sp.ConflictError:
            assert clash or contradicts, "a capture the model accepts was refused"
            assert len(self.sales.repository) == count
            assert before is not None
            assert self.sales.get(before.id) == before
            return before.id
        assert not clash, "details of two accounts were accepted"
        assert not contradicts, "details that contradict the known account were accepted"
        account = done.account
        assert done.new is (before is None)
        if before is not None:
            assert account.id == before.id
            assert len(self.sales.repository) == count
            adds = (email is not None and before.email is None) or (
                phone is not None and before.phone is None
            )
            assert account.version == self.versions[before.id] + adds
            self.versions[before.id] = account.version
        else:
            assert len(self.sales.repository) == count + 1
            assert account.version == 1
            assert account.stage is sp.Stage.PROSPECT
            self.versions[account.id] = 1
        if email is not None:
            self.by_email[email] = account.id
        if phone is not None:
            self.by_phone[phone] = account.id
        assert self.sales.get(account.id) == account
        return account.id

    @rule(
        target=accounts,
        email_index=st.none() | st.integers(0, len(EMAILS) - 1),
        phone_index=st.none() | st.integers(0, len(PHONES) - 1),
        fit=st.booleans(),
    )
    def capture(self, email_index: int | None, phone_index: int | None, fit: bool) -> str:
        if email_index is None and phone_index is None:
            count = len(self.sales.repository)
            try:
                self.sales.capture_lead(name="No contact", channel="referral")
            except sp.ValidationError:
                assert len(self.sales.repository) == count
            else:
                raise AssertionError("a lead without email or phone was captured")
            email_index = 0
        return self._capture(email_index, phone_index, fit)

    @rule(account_id=accounts)
    def screen(self, account_id: str) -> None:
        self._run(
            account_id, lambda: (self.sales.screen(account_id), self.sales.get(account_id))[1]
        )

    @rule(
        account_id=accounts,
        outcome=st.sampled_from(list(sp.CallOutcome)),
        offset=st.sampled_from(OFFSETS),
    )
    def record_call(self, account_id: str, outcome: sp.CallOutcome, offset: timezone) -> None:
        callback = (
            self.clock.now() + timedelta(days=1) if outcome is sp.CallOutcome.CALL_BACK else None
        )
        self._run(
            account_id,
            lambda: self.sales.record_call(
                account_id, outcome, at=self._moment(offset, False), callback_at=callback
            ),
        )

    @rule(account_id=accounts, offset=st.sampled_from(OFFSETS), back=_BACK)
    def qualify(self, account_id: str, offset: timezone, back: bool) -> None:
        self._run(
            account_id,
            lambda: self.sales.qualify(account_id, at=self._moment(offset, back), actor="rep"),
        )

    @rule(account_id=accounts, offset=st.sampled_from(OFFSETS), back=_BACK)
    def qualify_with_override(self, account_id: str, offset: timezone, back: bool) -> None:
        self._run(
            account_id,
            lambda: self.sales.qualify(
                account_id, override="walk-in purchase", at=self._moment(offset, back)
            ),
        )

    @rule(account_id=accounts, back=_BACK)
    def disqualify(self, account_id: str, back: bool) -> None:
        self._run(
            account_id,
            lambda: self.sales.disqualify(account_id, "no fit", at=self._moment(UTC, back)),
        )

    @rule(account_id=accounts)
    def recycle(self, account_id: str) -> None:
        self._run(account_id, lambda: self.sales.recycle(account_id, "try again"))

    @rule(account_id=accounts)
    def churn(self, account_id: str) -> None:
        self._run(account_id, lambda: self.sales.churn(account_id, "lost"))

    @rule(
        account_id=accounts,
        amount=_AMOUNTS,
        currency=st.sampled_from(["EUR", "USD"]),
        offset=st.sampled_from(OFFSETS),
        back=_BACK,
    )
    def record_purchase(
        self, account_id: str, amount: str, currency: str, offset: timezone, back: bool
    ) -> None:
        self._run(
            account_id,
            lambda: self.sales.record_purchase(
                account_id, sp.Money(amount, currency), at=self._moment(offset, back)
            ),
        )

    @rule(
        account_id=accounts,
        amount=_AMOUNTS,
        minutes_past=st.integers(0, 3 * 60),
        offset=st.sampled_from(OFFSETS),
    )
    def record_purchase_after_midnight(
        self, account_id: str, amount: str, minutes_past: int, offset: timezone
    ) -> None:
        """Move the clock just past the next UTC midnight, then buy in EUR."""
        self.advance_clock("midnight")
        self.clock.advance(minutes=minutes_past)
        self._run(
            account_id,
            lambda: self.sales.record_purchase(
                account_id, sp.Money(amount, "EUR"), at=self._moment(offset, False)
            ),
        )

    @rule(account_id=accounts)
    def refer(self, account_id: str) -> None:
        self._run(account_id, lambda: self.sales.fire(account_id, "refer", actor="rep"))

    @rule(account_id=accounts)
    def ask_for_referrals(self, account_id: str) -> None:
        self._run(
            account_id,
            lambda: (self.sales.ask_for_referrals(account_id), self.sales.get(account_id))[1],
        )

    @rule(account_id=accounts)
    def issue_referral_cards(self, account_id: str) -> None:
        def command() -> sp.Account:
            cards = self.sales.issue_referral_cards(account_id, count=3)
            after = self.sales.get(account_id)
            assert after.referral_code == cards.code
            return after

        self._run(account_id, command)

    @rule(
        target=accounts,
        referrer=accounts,
        email_index=st.integers(0, len(EMAILS)),
        by_code=st.booleans(),
        back=_BACK,
    )
    def refer_someone(self, referrer: str, email_index: int, by_code: bool, back: bool) -> object:
        """A referral by name or by card: one new prospect or a link, and the referrer's record.

        The email is one of the pool (maybe known, maybe the referrer's own) or a fresh one.
        """
        fresh = email_index == len(EMAILS)
        email = f"fresh{next(self.fresh)}@lead.example" if fresh else EMAILS[email_index]
        known = self.by_email.get(email)
        before = self.sales.get(referrer)
        count = len(self.sales.repository)
        try:
            if by_code:
                lead = self.sales.capture_lead(
                    "Friend",
                    email=email,
                    referral_code=before.referral_code or "NOBODY99",
                    at=self._moment(UTC, back),
                )
            else:
                lead = self.sales.record_referral(
                    referrer, "Friend", email=email, at=self._moment(UTC, back)
                )
        except sp.SalesProcessError:
            assert self.sales.get(referrer) == before
            assert len(self.sales.repository) == count
            return multiple()
        assert known != referrer, "a self-referral was accepted"
        assert not by_code or before.referral_code is not None
        after = self.sales.get(referrer)
        if known is None:
            assert len(self.sales.repository) == count + 1
            assert lead.version == 1
            assert lead.source.referred_by == referrer
            self.versions[lead.id] = 1
            self.by_email[email] = lead.id
        else:
            assert lead.id == known
            assert len(self.sales.repository) == count
        if after == before:  # the same link again: nothing to record
            assert any(r.account_id == lead.id for r in before.referrals)
        else:
            assert after.version == before.version + 1
            self.versions[referrer] += 1
            assert after.referrals[-1].account_id == lead.id
            assert after.referrals[-1].new is (known is None)
            # whoever names a lead is credited; only a stage that may refer moves on
            if "refer" in TABLE.allowed(before.stage):
                assert after.stage is sp.Stage.REFERRER
            else:
                assert after.stage is before.stage
        return lead.id if known is None else multiple()

    @rule(account_id=accounts, event=st.sampled_from(["teleport", "qualify", "recycle", "churn"]))
    def fire(self, account_id: str, event: str) -> None:
        """Fire events directly: unknown ones, and qualify without any approval."""
        self._run(account_id, lambda: self.sales.fire(account_id, event))

    @rule(account_id=accounts)
    def refused_inputs(self, account_id: str) -> None:
        """Bad inputs never reach storage."""
        self._run(account_id, lambda: self.sales.record_purchase(account_id, sp.Money("-1", "EUR")))
        self._run(account_id, lambda: self.sales.disqualify(account_id, "  "))
        self._run(account_id, lambda: self.sales.qualify(account_id, override=""))

    # -- invariants ----------------------------------------------------------------------------

    def _all(self) -> list[sp.Account]:
        return [self.sales.get(account_id) for account_id in self.versions]

    @invariant()
    def stored_versions_match(self) -> None:
        assert len(self.sales.repository) == len(self.versions)
        for account in self._all():
            assert account.version == self.versions[account.id]

    @invariant()
    def stage_is_the_replay_of_history(self) -> None:
        for account in self._all():
            stage = None
            for index, change in enumerate(account.history):
                assert change.from_stage is stage
                if index == 0:
                    assert change.event == "capture"
                    assert change.to_stage is TABLE.initial
                    assert change.at == account.created_at
                else:
                    assert change.to_stage in TABLE.targets(change.from_stage, change.event)
                    assert change.to_stage is not change.from_stage
                stage = change.to_stage
            assert stage is account.stage

    @invariant()
    def history_never_goes_back(self) -> None:
        for account in self._all():
            moments = [change.at for change in account.history]
            assert moments == sorted(moments)
            assert all(moment <= self.clock.now() for moment in moments)
            purchase_moments = [p.at for p in account.purchases]
            assert purchase_moments == sorted(purchase_moments)

    @invariant()
    def repeat_means_two_purchase_days(self) -> None:
        for account in self._all():
            days = {utc_day(p.at) for p in account.purchases}
            if account.stage is sp.Stage.REPEAT:
                assert len(days) >= 2
            if account.stage in (
                sp.Stage.CUSTOMER,
                sp.Stage.REPEAT,
                sp.Stage.REFERRER,
                sp.Stage.CHURNED,
            ):
                assert account.purchases
            if account.stage in (sp.Stage.PROSPECT, sp.Stage.QUALIFIED, sp.Stage.DISQUALIFIED):
                assert not account.purchases

    @invariant()
    def money_never_mixes_currencies(self) -> None:
        for account in self._all():
            totals: dict[str, sp.Money] = {}
            for purchase in account.purchases:
                money = purchase.amount
                assert isinstance(money.amount, Decimal)
                assert money.amount.is_finite()
                assert money.currency in ISO_4217_CODES
                assert not money.is_negative
                assert sp.Money(money.amount, money.currency) == money
                currency = money.currency
                totals.setdefault(currency, sp.Money.zero(currency))
                totals[currency] = totals[currency] + money
            for currency, total in totals.items():
                assert total.currency == currency

    @invariant()
    def do_not_contact_follows_calls(self) -> None:
        for account in self._all():
            assert account.do_not_contact == any(
                call.outcome is sp.CallOutcome.DO_NOT_CALL for call in account.calls
            )

    @invariant()
    def referrals_hold_together(self) -> None:
        """Codes are unique and found; each referral names a stored account, once."""
        accounts = {account.id: account for account in self._all()}
        codes = [a.referral_code for a in accounts.values() if a.referral_code is not None]
        assert len(codes) == len(set(codes))
        for account in accounts.values():
            if account.referral_code is not None:
                found = self.sales.repository.find_by_referral_code(account.referral_code)
                assert found == account
            named = [referral.account_id for referral in account.referrals]
            assert len(named) == len(set(named))
            assert account.id not in named
            for referral in account.referrals:
                referred = accounts[referral.account_id]
                if referral.new:
                    assert referred.source.referred_by == account.id
                    assert referred.source.channel is sp.Channel.REFERRAL
            moments = [referral.at for referral in account.referrals]
            assert moments == sorted(moments)

    @invariant()
    def stage_counts_add_up(self) -> None:
        counts = self.sales.stage_counts()
        assert sum(counts.values()) == len(self.versions)
        for stage, count in counts.items():
            assert count == sum(account.stage is stage for account in self._all())


SalesProcessMachine.TestCase.settings = settings(
    max_examples=75, stateful_step_count=30, deadline=None
)
TestSalesProcessStateful = SalesProcessMachine.TestCase
TestSalesProcessStateful.__doc__ = "Random command sequences keep every invariant."


class Awaited:
    """AsyncSalesProcess seen as a SalesProcess: each coroutine run to its end on one loop."""

    def __init__(self, asales: sp.AsyncSalesProcess, awaiting: Awaiting) -> None:
        self._asales = asales
        self._awaiting = awaiting
        self.repository = BlockingRepository(asales.repository, awaiting)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._asales, name)
        if not inspect.iscoroutinefunction(found):
            return found
        return lambda *args, **kwargs: self._awaiting(found(*args, **kwargs))


class AsyncSalesProcessMachine(SalesProcessMachine):
    """The same random commands and invariants, through AsyncSalesProcess (each step awaited)."""

    def make_sales(self, id_factory: Callable[[], str]) -> Any:
        self.awaiting = Awaiting()
        asales = sp.AsyncSalesProcess(criteria=CRITERIA, clock=self.clock, id_factory=id_factory)
        return Awaited(asales, self.awaiting)

    def teardown(self) -> None:
        self.awaiting.close()


AsyncSalesProcessMachine.TestCase.settings = settings(
    max_examples=50, stateful_step_count=30, deadline=None
)
TestAsyncSalesProcessStateful = AsyncSalesProcessMachine.TestCase
TestAsyncSalesProcessStateful.__doc__ = "Random command sequences through the async facade."


def test_the_async_machine_drives_the_async_facade():
    """The async machine's process really is AsyncSalesProcess over the async in-memory store."""
    machine = AsyncSalesProcessMachine()
    try:
        assert isinstance(machine.sales._asales, sp.AsyncSalesProcess)
        assert isinstance(machine.sales.repository.inner, AsyncInMemoryRepository)
        assert inspect.iscoroutinefunction(sp.AsyncSalesProcess.capture)
    finally:
        machine.teardown()
