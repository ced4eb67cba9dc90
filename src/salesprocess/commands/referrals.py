"""Referrals: asking for names, recording the names given, and handing out cards.

Recording a referral writes two accounts in one unit: the referred lead (new, or a known
account linked instead of duplicated) and the referrer, which keeps the referral and, on its
first one, moves to referrer. Whoever gives the name is credited with it; only the referrer's
stage depends on the lifecycle (a prospect or a churned customer who names someone stays where
it is).
"""

from __future__ import annotations

from datetime import datetime

import attrs

from salesprocess.account import (
    Account,
    Channel,
    Referral,
    ReferralCards,
    ReferralRequest,
    Source,
)
from salesprocess.checks import shown
from salesprocess.chronology import last_at, require_in_order
from salesprocess.commands.decision import Decision, changed, recorded, stamped, stored
from salesprocess.commands.leads import Known, LeadCapture, known_as, restamped
from salesprocess.commands.qualifying import transition
from salesprocess.errors import InvalidTransition, ValidationError
from salesprocess.events import (
    DomainEvent,
    LeadCaptured,
    ReferralCardsIssued,
    ReferralRecorded,
    ReferralRequested,
)
from salesprocess.lifecycle import Transitions, history_runs_backwards

__all__ = ["Scene", "ask_for_referrals", "issue_referral_cards", "may_refer", "refer"]


def may_refer(transitions: Transitions, account: Account, what: str) -> None:
    """Refuse ``what`` (asking for referrals, handing out cards) to a stage that cannot refer."""
    if "refer" in transitions.allowed(account.stage):
        return
    if "refer" in transitions.events:
        why = f"is {account.stage}: only an account that can refer (a customer) can {what}"
    else:
        why = f"cannot {what}: this process's lifecycle has no 'refer' event"
    raise InvalidTransition(
        f"account {account.id} ({account.name}) {why}",
        account_id=account.id,
        stage=account.stage,
        event="refer",
    )


def ask_for_referrals(
    account: Account, moment: datetime, *, transitions: Transitions, request: ReferralRequest
) -> Decision[ReferralRequest]:
    """Record that the customer was asked for names; the result is the request."""
    request = stamped(request, moment)
    may_refer(transitions, account, "be asked for referrals")
    require_in_order(
        account, "an ask", moment, since="its last ask", earlier=last_at(account.referral_requests)
    )
    return recorded(
        request,
        account.with_changes(referral_requests=(*account.referral_requests, request)),
        ReferralRequested(account.id, moment, request),
    )


def issue_referral_cards(
    loaded: tuple[Account, str],
    moment: datetime,
    *,
    transitions: Transitions,
    cards: ReferralCards,
) -> Decision[ReferralCards]:
    """Hand out ``cards``, carrying the account's code (a free one on its first batch).

    ``loaded`` is the account and its code: its own, or, for an account without one yet, a
    code the unit of work found unused.
    """
    account, code = loaded
    may_refer(transitions, account, "hand out referral cards")
    require_in_order(
        account,
        "a card batch",
        moment,
        since="its last card batch",
        earlier=last_at(account.referral_cards),
    )
    cards = attrs.evolve(cards, code=code, at=moment)
    return recorded(
        cards,
        account.with_changes(referral_code=code, referral_cards=(*account.referral_cards, cards)),
        ReferralCardsIssued(account.id, moment, cards),
    )


@attrs.frozen
class Scene:
    """What a referral is decided on: the referrer, and who the lead's contacts already are."""

    referrer: Account
    known: Known


def refer(
    scene: Scene,
    moment: datetime,
    *,
    transitions: Transitions,
    lead: Account,
    request: str | None,
    code: str | None,
) -> Decision[LeadCapture]:
    """Record ``lead`` as referred by the scene's referrer; the result is the referred account.

    ``LeadCapture.new`` says whether the lead was new or a known account, linked. Whoever
    captured the lead (its first history entry's actor) is the actor of the referral too.
    """
    actor = lead.history[0].actor
    referrer = scene.referrer
    lead = restamped(lead, moment)
    if request is not None and all(r.id != request for r in referrer.referral_requests):
        raise ValidationError(
            f"account {referrer.id} was never asked for referrals with request {shown(request)}",
            field="request",
        )
    require_in_order(
        referrer,
        "a referral",
        moment,
        since="its last referral",
        earlier=last_at(referrer.referrals),
    )
    for kind, holder in (("email", scene.known.by_email), ("phone", scene.known.by_phone)):
        if holder is not None and holder.id == referrer.id:
            raise ValidationError(
                f"account {referrer.id} ({referrer.name}) cannot refer itself: the lead's "
                f"{kind} is its own",
                field=kind,
            )
    linked = known_as(lead, scene.known, moment)
    if linked is not None:
        known = linked.result
        if any(r.account_id == known.id for r in referrer.referrals):
            # Referred before by the same referrer: nothing new to record.
            return Decision(LeadCapture(known, new=False), linked.writes, linked.events)
        referred, writes, events = known, linked.writes, linked.events
    else:
        new = attrs.evolve(lead, source=Source(Channel.REFERRAL, lead.source.campaign, referrer.id))
        referred, writes = stored(new), (new,)
        events = (LeadCaptured(new.id, moment, new.source),)
    referral = Referral(referred.id, moment, request, code, new=linked is None)
    recorded = ReferralRecorded(referrer.id, moment, referral)
    referrals = (*referrer.referrals, referral)
    if "refer" in transitions.allowed(referrer.stage):
        credit = transition(
            transitions, referrer, "refer", moment, recorded, actor=actor, referrals=referrals
        )
    elif moment < referrer.last_change_at:  # no stage change, but no going back either
        raise history_runs_backwards(referrer, "referral", moment)
    else:
        credit = changed(referrer.with_changes(referrals=referrals), recorded)
    all_events: tuple[DomainEvent, ...] = (*events, *credit.events)
    result = LeadCapture(referred, new=linked is None)
    return Decision(result, (*writes, *credit.writes), all_events)
