"""Referrals (USAGE section 3): asks, names given, cards with codes, and what they brought."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import salesprocess as sp
from salesprocess.referral_codes import CODE_ALPHABET, new_referral_code, normalise_referral_code
from salesprocess.reports import referral_stats
from salesprocess.storage.protocol import AccountRepository
from support import Delegating


def at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


def counting(prefix: str) -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):03d}"


@pytest.fixture
def sales(any_repository: AccountRepository) -> sp.SalesProcess:
    return sp.SalesProcess(
        any_repository,
        clock=sp.FixedClock(at(2026, 6, 10)),
        id_factory=counting("id-"),
        code_factory=counting("CODE"),
    )


@pytest.fixture
def events(sales: sp.SalesProcess) -> list[sp.DomainEvent]:
    seen: list[sp.DomainEvent] = []
    sales.subscribe(seen.append)
    return seen


def customer(sales: sp.SalesProcess, name: str = "Acme Tools GmbH", **kwargs: Any) -> sp.Account:
    email = kwargs.pop("email", "buyer@acme.example")
    account = sales.capture_lead(
        name, email=email, channel=sp.Channel.MARKETING_LIST, at=at(2026, 1, 5), **kwargs
    )
    sales.qualify(account.id, override="walk-in purchase", at=at(2026, 1, 7))
    return sales.record_purchase(account.id, sp.Money("12000.00", "EUR"), at=at(2026, 3, 1))


def test_usage_section_3_as_written(sales):
    """The promised referral flow: ask, a name, cards with a code, a lead by code, stats."""
    acct = customer(sales)
    acct = sales.record_purchase(acct.id, sp.Money("800.00", "EUR"), at=at(2026, 6, 1))
    ask = sales.ask_for_referrals(acct.id, wanted=5, at=at(2026, 6, 2))
    friend = sales.record_referral(
        acct.id, name="Beta Logistics", email="ops@beta.example", request=ask.id, at=at(2026, 6, 3)
    )
    assert friend.stage is sp.Stage.PROSPECT
    assert friend.source.channel is sp.Channel.REFERRAL
    assert friend.source.referred_by == acct.id
    assert sales.get(acct.id).stage is sp.Stage.REFERRER

    cards = sales.issue_referral_cards(acct.id, count=10)
    lead = sales.capture_lead(name="Gamma AG", email="info@gamma.example", referral_code=cards.code)
    assert lead.source.referred_by == acct.id
    assert lead.source.channel is sp.Channel.REFERRAL

    stats = sales.referral_stats()
    assert stats.overall.referrals == 2
    assert stats.overall.converted == 0
    assert stats.by_referrer[acct.id].referrals == 2
    referrer = sales.get(acct.id)
    assert [r.account_id for r in referrer.referrals] == [friend.id, lead.id]
    assert referrer.referrals[0].request == ask.id
    assert referrer.referrals[1].code == cards.code
    assert referrer.referral_requests == (ask,)
    assert referrer.referral_cards == (cards,)


def test_a_referral_is_one_unit_of_work_with_its_events(sales, events):
    """The lead, the referral on the referrer and its new stage land together, then events."""
    acct = customer(sales)
    events.clear()
    friend = sales.record_referral(acct.id, "Beta", phone="+49 40 555 0101", at=at(2026, 6, 3))
    kinds = [type(event) for event in events]
    assert kinds == [sp.LeadCaptured, sp.AccountBecameReferrer, sp.ReferralRecorded]
    referrer = sales.get(acct.id)
    assert referrer.version == acct.version + 1
    assert referrer.history[-1].event == "refer"
    assert referrer.referrals == (sp.Referral(friend.id, at(2026, 6, 3)),)


def test_a_failing_referral_stores_neither_account(any_repository):
    """If storing the referrer fails, the new lead is not stored either: all or nothing."""
    repository = any_repository

    class FailingSave(Delegating):
        """The adapter, except that saving the referrer breaks (a lost connection, say)."""

        broken = False

        def save(self, account: sp.Account, *, expected_version: int) -> sp.Account:
            if self.broken:
                raise sp.StorageError("the database went away")
            return self.inner.save(account, expected_version=expected_version)

    wrapped = FailingSave(repository)
    sales = sp.SalesProcess(wrapped, clock=sp.FixedClock(at(2026, 6, 1)))  # type: ignore[arg-type]
    acct = customer(sales)
    wrapped.broken = True
    with pytest.raises(sp.StorageError, match="went away"):
        sales.record_referral(acct.id, "Beta", email="ops@beta.example", at=at(2026, 6, 3))
    assert sales.find(email="ops@beta.example") is None
    assert repository.count_by_stage().get(sp.Stage.PROSPECT, 0) == 0
    assert sales.get(acct.id) == acct


def test_a_referral_overtaken_by_a_concurrent_write_is_retried_whole(any_repository):
    """A conflict on the referrer undoes the lead too; the retry stores both, events once."""
    repository = any_repository

    class OvertakenOnce(Delegating):
        """The referrer's first save meets a concurrent write (a stale version)."""

        conflicts = 1

        def save(self, account: sp.Account, *, expected_version: int) -> sp.Account:
            if account.referrals and self.conflicts:
                self.conflicts -= 1
                raise sp.StaleWrite("overtaken by a concurrent write")
            return self.inner.save(account, expected_version=expected_version)

    wrapped = OvertakenOnce(repository)
    sales = sp.SalesProcess(wrapped, clock=sp.FixedClock(at(2026, 6, 10)))  # type: ignore[arg-type]
    acct = customer(sales)
    seen: list[sp.DomainEvent] = []
    sales.subscribe(seen.append)
    friend = sales.record_referral(acct.id, "Beta", email="ops@beta.example")
    assert wrapped.conflicts == 0
    assert [type(e) for e in seen] == [
        sp.LeadCaptured,
        sp.AccountBecameReferrer,
        sp.ReferralRecorded,
    ]
    assert repository.count_by_stage()[sp.Stage.PROSPECT] == 1
    assert [r.account_id for r in sales.get(acct.id).referrals] == [friend.id]
    assert sales.get(friend.id).version == 1


def test_referring_a_known_account_links_it(sales):
    """A name already known is linked to the referrer, not captured twice."""
    acct = customer(sales)
    known = sales.capture_lead(
        "Beta", email="ops@beta.example", channel="inbound_inquiry", at=at(2026, 2, 1)
    )
    linked = sales.record_referral(acct.id, "Beta Logistics", email="OPS@beta.example")
    assert linked == known
    assert linked.source.channel is sp.Channel.INBOUND_INQUIRY  # where it really came from
    referrer = sales.get(acct.id)
    assert referrer.referrals[-1] == sp.Referral(known.id, at(2026, 6, 10), new=False)
    assert referrer.stage is sp.Stage.REFERRER
    assert sales.referral_stats().overall.referrals == 0  # brought nobody new
    again = sales.record_referral(acct.id, "Beta", email="ops@beta.example")
    assert again == known
    assert sales.get(acct.id) == referrer  # the same link twice records nothing


def test_self_referral_is_refused_and_stores_nothing(sales):
    """A customer naming itself (by email, or through its own card) is refused."""
    acct = customer(sales)
    cards = sales.issue_referral_cards(acct.id, count=5)
    before = sales.get(acct.id)
    with pytest.raises(sp.ValidationError, match="cannot refer itself") as caught:
        sales.record_referral(acct.id, "Acme again", email="buyer@acme.example")
    assert caught.value.field == "email"
    with pytest.raises(sp.ValidationError, match="cannot refer itself"):
        sales.capture_lead("Acme", email="Buyer@Acme.example", referral_code=cards.code)
    assert sales.get(acct.id) == before


def test_unknown_and_malformed_codes_are_refused(sales):
    """A code nobody holds, or one that cannot be a code, is a clear error; nothing stored."""
    customer(sales)
    with pytest.raises(sp.ValidationError, match="no account holds referral code ZZZZ9999") as e:
        sales.capture_lead("Gamma", email="info@gamma.example", referral_code="zzzz-9999")
    assert e.value.field == "referral_code"
    with pytest.raises(sp.ValidationError, match="4 to 32 letters and digits"):
        sales.capture_lead("Gamma", email="info@gamma.example", referral_code="no!")
    assert sales.find(email="info@gamma.example") is None


def test_a_code_with_another_channel_is_contradictory(sales):
    """A lead with a referral code came through the referral channel, not another one."""
    acct = customer(sales)
    cards = sales.issue_referral_cards(acct.id)
    with pytest.raises(sp.ValidationError, match="referral channel") as caught:
        sales.capture_lead(
            "Gamma", email="info@gamma.example", channel="cold_outreach", referral_code=cards.code
        )
    assert caught.value.field == "channel"


def test_capture_without_channel_or_code_is_refused(sales):
    """Without a referral code, where the lead came from must be said."""
    with pytest.raises(sp.ValidationError, match="needs a channel") as caught:
        sales.capture_lead("Gamma", email="info@gamma.example")
    assert caught.value.field == "channel"


def test_only_customers_are_asked_and_get_cards(sales):
    """A prospect cannot be asked for names or handed cards: the lifecycle says who refers."""
    lead = sales.capture_lead("Beta", email="ops@beta.example", channel="cold_outreach")
    for command in (
        lambda: sales.ask_for_referrals(lead.id),
        lambda: sales.issue_referral_cards(lead.id),
    ):
        with pytest.raises(sp.InvalidTransition, match="only an account that can refer"):
            command()
    assert sales.get(lead.id) == lead


def test_a_name_from_a_prospect_is_credited_but_moves_no_stage(sales):
    """Whoever names a lead is credited with it; only a customer becomes a referrer."""
    lead = sales.capture_lead("Beta", email="ops@beta.example", channel="cold_outreach")
    friend = sales.record_referral(lead.id, "Gamma", email="info@gamma.example")
    assert friend.source.referred_by == lead.id
    after = sales.get(lead.id)
    assert after.stage is sp.Stage.PROSPECT
    assert after.history == lead.history
    assert [r.account_id for r in after.referrals] == [friend.id]


def test_a_prospects_referral_cannot_predate_its_history(sales):
    """A referral that moves no stage still may not be earlier than the referrer's history."""
    lead = sales.capture_lead(
        "Beta", email="ops@beta.example", channel="cold_outreach", at=at(2026, 5, 1)
    )
    with pytest.raises(sp.ValidationError, match="history never runs backwards") as caught:
        sales.record_referral(lead.id, "Gamma", email="info@gamma.example", at=at(2026, 4, 1))
    assert caught.value.field == "at"
    assert sales.find(email="info@gamma.example") is None


def test_a_prospect_who_wins_a_customer_has_k_factor_one_overall(sales):
    """The seed of the overall K-factor counts referrers that never bought themselves."""
    lead = sales.capture_lead("Beta", email="ops@beta.example", channel="cold_outreach")
    friend = sales.record_referral(lead.id, "Gamma", email="info@gamma.example")
    sales.qualify(friend.id, override="referred")
    sales.record_purchase(friend.id, sp.Money("10", "EUR"))
    report = sales.referral_stats()
    assert report.by_referrer[lead.id].k_factor == 1
    assert report.overall.k_factor == 1


def test_a_churned_customers_card_still_brings_the_lead(sales):
    """A card outlives its holder's custom: the lead is captured and credited all the same."""
    acct = customer(sales)
    cards = sales.issue_referral_cards(acct.id, at=at(2026, 4, 1))
    sales.churn(acct.id, "moved to a competitor", at=at(2026, 5, 1))
    lead = sales.capture_lead("Gamma", email="info@gamma.example", referral_code=cards.code)
    assert lead.source.referred_by == acct.id
    churned = sales.get(acct.id)
    assert churned.stage is sp.Stage.CHURNED
    assert churned.referrals[-1].account_id == lead.id


def test_a_lifecycle_without_refer_says_so(any_repository):
    """A process whose lifecycle has no refer event explains why nobody can be asked."""
    repository = any_repository
    from statemachine import State, StateMachine  # noqa: PLC0415

    class Plain(StateMachine):
        prospect = State("Prospect", initial=True)
        customer = State("Customer")
        purchase = prospect.to(customer) | customer.to(customer)

    sales = sp.SalesProcess(repository, lifecycle=Plain)
    lead = sales.capture_lead("Beta", email="ops@beta.example", channel="cold_outreach")
    with pytest.raises(sp.InvalidTransition, match="lifecycle has no 'refer' event"):
        sales.ask_for_referrals(lead.id)


@pytest.mark.parametrize("referrer", [None, "", 5])
def test_a_referrer_must_be_an_account_id(sales, referrer):
    """A missing or non-text referrer id is a ValidationError naming the field."""
    with pytest.raises(sp.ValidationError) as caught:
        sales.record_referral(referrer, "Gamma", email="info@gamma.example")
    assert caught.value.field == "referrer_id"
    assert sales.find(email="info@gamma.example") is None


def test_a_phone_only_self_referral_names_the_phone(sales):
    """The self-referral error names the contact detail that matched."""
    acct = sales.capture_lead("Solo", phone="+49 40 555 0100", channel="cold_outreach")
    sales.qualify(acct.id, override="walk-in")
    sales.record_purchase(acct.id, sp.Money("1", "EUR"))
    with pytest.raises(sp.ValidationError, match="phone is its own") as caught:
        sales.record_referral(acct.id, "Solo again", phone="+494055501 00")
    assert caught.value.field == "phone"


def test_a_referral_is_stamped_inside_its_unit_of_work(any_repository):
    """With no ``at``, the clock is read once the unit of work has begun, so a referral that
    another desk stored in the meantime (a minute later) does not make this one "late"."""
    repository = any_repository
    clock = sp.FixedClock(at(2026, 6, 10))
    sales = sp.SalesProcess(repository, clock=clock)
    acct = customer(sales)

    class OtherDeskFirst(Delegating):
        """Another desk stores a referral just before this one's unit of work begins."""

        pending = True

        def atomic(self) -> Any:
            if self.pending:
                self.pending = False
                clock.advance(minutes=1)
                sales.record_referral(acct.id, "Other", email="other@desk.example")
            return self.inner.atomic()

    racing = sp.SalesProcess(OtherDeskFirst(repository), clock=clock)  # type: ignore[arg-type]
    lead = racing.record_referral(acct.id, "Mine", email="mine@desk.example")
    assert lead.created_at == at(2026, 6, 10) + timedelta(minutes=1)
    referrer = sales.get(acct.id)
    other = sales.find(email="other@desk.example")
    assert other is not None
    assert [r.account_id for r in referrer.referrals] == [other.id, lead.id]


@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.booleans(), st.booleans()),
        max_size=30,
    )
)
def test_stats_add_up_over_referrers(plan):
    """Overall referrals and conversions are the sums over referrers, and rates stay in 0..1."""
    sales = sp.SalesProcess(clock=sp.FixedClock(at(2026, 6, 1)))
    referrers = [customer(sales, f"R{n}", email=f"r{n}@refer.example") for n in range(5)]
    for n, (who, new, buys) in enumerate(plan):
        email = f"lead{n}@leads.example"
        if not new:
            sales.capture_lead(f"Known {n}", email=email, channel="cold_outreach")
        lead = sales.record_referral(referrers[who].id, f"Lead {n}", email=email)
        if buys and lead.stage is sp.Stage.PROSPECT:
            sales.qualify(lead.id, override="test")
            sales.record_purchase(lead.id, sp.Money("1", "EUR"))
    report = sales.referral_stats()
    assert report.overall.referrals == sum(s.referrals for s in report.by_referrer.values())
    assert report.overall.converted == sum(s.converted for s in report.by_referrer.values())
    assert report.overall.referrals == sum(1 for _, new, _ in plan if new)
    for stats in (report.overall, *report.by_referrer.values()):
        assert 0 <= stats.converted <= stats.referrals
        if stats.conversion_rate is not None:
            assert 0 <= stats.conversion_rate <= 1


@given(st.text(alphabet="abcdefghjkmnpqrstuvwxyz23456789- !é", max_size=40))
def test_codes_ignore_case_spaces_and_dashes_and_refuse_the_rest(text):
    """Case, spaces and dashes do not matter; what is left must be 4 to 32 letters and digits."""
    kept = text.replace(" ", "").replace("-", "").upper()
    if kept.isascii() and kept.isalnum() and 4 <= len(kept) <= 32:
        assert normalise_referral_code(text) == kept
        assert normalise_referral_code(kept) == kept
    else:
        with pytest.raises(sp.ValidationError) as caught:
            normalise_referral_code(text)
        assert caught.value.field == "referral_code"


def test_generated_codes_use_the_unambiguous_alphabet():
    """Generated codes avoid 0/O and 1/I/L, and are valid codes."""
    for _ in range(200):
        code = new_referral_code()
        assert set(code) <= set(CODE_ALPHABET)
        assert normalise_referral_code(code) == code
    assert not set("01OIL") & set(CODE_ALPHABET)


def test_stats_of_no_accounts():
    """No accounts: no referrals, no rate, a K-factor of zero."""
    report = referral_stats([])
    assert report.overall.conversion_rate is None
    assert report.overall.k_factor == 0
    assert report.by_referrer == {}
