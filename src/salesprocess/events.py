"""Domain events: what happened, published to subscribers after it is stored.

Every stage change yields a :class:`StageChanged`; the built-in lifecycle's changes yield the
named subclass (:class:`AccountQualified`, ...), and a user's added events yield the plain
:class:`StageChanged`. Commands that do not change the stage yield their own event
(:class:`PurchaseRecorded`, :class:`CallRecorded`, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import attrs

from salesprocess.account import (
    Asset,
    Call,
    HistoryEntry,
    Preference,
    Purchase,
    Referral,
    ReferralCards,
    ReferralRequest,
    Screening,
    Source,
)
from salesprocess.stage import Stage

__all__ = [
    "AccountBecameReferrer",
    "AccountBecameRepeat",
    "AccountChurned",
    "AccountConverted",
    "AccountDisqualified",
    "AccountQualified",
    "AccountRecycled",
    "AccountWonBack",
    "AssetRegistered",
    "CallRecorded",
    "DomainEvent",
    "LeadCaptured",
    "LeadScreened",
    "PreferenceLearned",
    "PurchaseRecorded",
    "ReferralCardsIssued",
    "ReferralRecorded",
    "ReferralRequested",
    "StageChanged",
    "Subscriber",
    "stage_event",
]


@attrs.frozen
class DomainEvent:
    """Something that happened to one account, at one moment."""

    account_id: str
    at: datetime


@attrs.frozen
class LeadCaptured(DomainEvent):
    """A new lead entered the process (duplicates of a known lead yield nothing)."""

    source: Source


@attrs.frozen
class StageChanged(DomainEvent):
    """The account moved from one stage to another; ``change`` is its history entry."""

    change: HistoryEntry


@attrs.frozen
class AccountQualified(StageChanged):
    """A prospect was qualified (``change.reason`` holds an override's reason)."""


@attrs.frozen
class AccountDisqualified(StageChanged):
    """A prospect or qualified lead was disqualified."""


@attrs.frozen
class AccountRecycled(StageChanged):
    """A disqualified account went back to prospect."""


@attrs.frozen
class AccountConverted(StageChanged):
    """A qualified lead made its first purchase and became a customer."""


@attrs.frozen
class AccountBecameRepeat(StageChanged):
    """A customer bought again on a later day: repeat business."""


@attrs.frozen
class AccountBecameReferrer(StageChanged):
    """A customer gave a first referral."""


@attrs.frozen
class AccountChurned(StageChanged):
    """A customer was lost."""


@attrs.frozen
class AccountWonBack(StageChanged):
    """A churned account bought again."""


@attrs.frozen
class PurchaseRecorded(DomainEvent):
    """A purchase was recorded (alongside any stage change it caused)."""

    purchase: Purchase


@attrs.frozen
class CallRecorded(DomainEvent):
    """A phone call's outcome was recorded."""

    call: Call


@attrs.frozen
class LeadScreened(DomainEvent):
    """The account was screened against the marketing criteria."""

    screening: Screening


@attrs.frozen
class ReferralRequested(DomainEvent):
    """A customer was asked for referrals."""

    request: ReferralRequest


@attrs.frozen
class ReferralRecorded(DomainEvent):
    """The account referred someone (``referral.new``: a lead that was not known before)."""

    referral: Referral


@attrs.frozen
class ReferralCardsIssued(DomainEvent):
    """Business cards carrying the account's referral code were handed out."""

    cards: ReferralCards


@attrs.frozen
class PreferenceLearned(DomainEvent):
    """Something the customer values was added to its service profile."""

    preference: Preference


@attrs.frozen
class AssetRegistered(DomainEvent):
    """A piece of the customer's equipment was registered for service."""

    asset: Asset


#: A subscriber receives each event after the change that caused it is stored.
Subscriber = Callable[[DomainEvent], None]

_NAMED: dict[str, type[StageChanged]] = {
    "qualify": AccountQualified,
    "disqualify": AccountDisqualified,
    "recycle": AccountRecycled,
    "refer": AccountBecameReferrer,
    "churn": AccountChurned,
}


def stage_event(account_id: str, change: HistoryEntry) -> StageChanged:
    """Return the event that names ``change`` best (a plain ``StageChanged`` if none does)."""
    kind: type[StageChanged] = StageChanged
    if change.event == "purchase":
        if change.from_stage is Stage.CHURNED:
            kind = AccountWonBack
        elif change.to_stage is Stage.CUSTOMER:
            kind = AccountConverted
        elif change.to_stage is Stage.REPEAT:
            kind = AccountBecameRepeat
    else:
        kind = _NAMED.get(change.event, StageChanged)
    return kind(account_id, change.at, change)
