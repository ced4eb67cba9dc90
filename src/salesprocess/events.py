"""Domain events: what happened, published to subscribers once it is committed.

Every stage change yields a :class:`StageChanged`; the built-in lifecycle's changes yield the
named subclass (:class:`AccountQualified`, ...), and a user's added events yield the plain
:class:`StageChanged`. Commands that do not change the stage yield their own event
(:class:`PurchaseRecorded`, :class:`CallRecorded`, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar, overload

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
    _compile,
)
from salesprocess.checks import shown
from salesprocess.errors import ValidationError
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
    "ContactDetailsAdded",
    "DomainEvent",
    "EventBus",
    "LeadCaptured",
    "LeadScreened",
    "PreferenceLearned",
    "PurchaseRecorded",
    "ReferralCardsIssued",
    "ReferralRecorded",
    "ReferralRequested",
    "StageChanged",
    "Subscriber",
    "call_all",
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
class ContactDetailsAdded(DomainEvent):
    """A second capture of a known lead brought an email or phone the account lacked.

    ``email`` and ``phone`` are what was added (``None``: that one was not).
    """

    email: str | None
    phone: str | None


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


#: ``unchecked_lead_screened(account_id, at, screening)``: a :class:`LeadScreened` from values
#: already checked, built without attrs' ``__init__``. Internal to bulk screening.
unchecked_lead_screened: Callable[[str, datetime, Screening], LeadScreened] = _compile(
    LeadScreened,
    "unchecked_lead_screened",
    "account_id, at, screening",
    dict(zip(("account_id", "at", "screening"), ("account_id", "at", "screening"), strict=True)),
)


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


#: A subscriber receives each event after the change that caused it is committed.
Subscriber = Callable[[DomainEvent], None]

_Event = TypeVar("_Event", bound=DomainEvent)


def _event_type(value: object) -> type[DomainEvent]:
    if isinstance(value, type) and issubclass(value, DomainEvent):
        return value
    raise ValidationError(
        f"event_type must be DomainEvent or a subclass of it, not {shown(value)}",
        field="event_type",
    )


class EventBus:
    """Who hears which events: handlers by event type, called in subscription order."""

    def __init__(self) -> None:
        self._handlers: list[tuple[type[DomainEvent], Callable[[Any], None]]] = []

    @overload
    def subscribe(self, handler: Callable[[DomainEvent], None]) -> Callable[[], None]: ...
    @overload
    def subscribe(
        self, handler: Callable[[_Event], None], event_type: type[_Event]
    ) -> Callable[[], None]: ...
    def subscribe(
        self, handler: Callable[[Any], None], event_type: type[DomainEvent] = DomainEvent
    ) -> Callable[[], None]:
        """Call ``handler`` with each published event of ``event_type``; return an unsubscribe.

        Both are checked here, so that a bad subscription fails now and not in a later
        command, after its change was stored.
        """
        if not callable(handler):
            raise ValidationError(
                f"handler must be callable, not {type(handler).__name__}", field="handler"
            )
        entry = (_event_type(event_type), handler)
        self._handlers.append(entry)

        def unsubscribe() -> None:
            if entry in self._handlers:
                self._handlers.remove(entry)

        return unsubscribe

    def publish(self, events: Iterable[DomainEvent]) -> None:
        """Call every matching handler with each event in turn.

        A handler that raises keeps no other from being called; the first exception is
        re-raised once all have run.
        """
        handlers = list(self._handlers)
        call_all(
            _bind(handler, event)
            for event in events
            for event_type, handler in handlers
            if isinstance(event, event_type)
        )


def _bind(handler: Callable[[Any], None], event: DomainEvent) -> Callable[[], None]:
    return lambda: handler(event)


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


def call_all(callbacks: Iterable[Callable[[], None]]) -> None:
    """Call each callback in order; then re-raise the first exception any of them raised.

    One failing subscriber must not keep the others from hearing of a change that is stored.
    """
    first: Exception | None = None
    for callback in callbacks:
        try:
            callback()
        except Exception as error:
            if first is None:
                first = error
    if first is not None:
        raise first
