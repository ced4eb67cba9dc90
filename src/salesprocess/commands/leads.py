"""Lead generation: a lead captured (or recognised), and the calls made to it.

A second capture of a known person returns the known account. What the second capture brings
is not dropped silently: an email or phone the account lacks is added to it
(:class:`~salesprocess.events.ContactDetailsAdded`), and details that contradict the account's
(its email is ``a@x``, the capture says ``b@y`` for the same phone), or that name two different
accounts, are refused with :class:`~salesprocess.errors.ConflictError`. The name, channel,
campaign and attributes of a second capture are not applied: the first capture's source is
what the lead is attributed to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypedDict

import attrs

from salesprocess.account import (
    Account,
    Attributes,
    Call,
    CallOutcome,
    Channel,
    HistoryEntry,
    Source,
    unchecked_copy,
    unchecked_history_entry,
)
from salesprocess.checks import clipped, shown
from salesprocess.chronology import require_in_order
from salesprocess.commands.decision import Decision, changed, stamped, stored
from salesprocess.errors import ConflictError, RowError, SalesProcessError, ValidationError
from salesprocess.events import CallRecorded, ContactDetailsAdded, DomainEvent, LeadCaptured
from salesprocess.stage import Stage

__all__ = [
    "Known",
    "LeadBatchOutcome",
    "LeadCapture",
    "LeadDetails",
    "capture",
    "capture_many",
    "known_as",
    "lead_builder",
    "lead_channel",
    "new_lead",
    "recognise",
    "record_call",
    "restamped",
]


@attrs.frozen
class LeadCapture:
    """What a capture did: the ``account`` (as stored) and whether it is ``new``.

    ``new`` is ``False`` when the lead was known by its email or phone; an API answers 201 or
    200 by it.
    """

    account: Account
    new: bool


class LeadDetails(TypedDict, total=False):
    """What a capture may say about a lead besides its name (every key optional).

    ``channel`` (a :class:`~salesprocess.account.Channel` or its value), ``email``, ``phone``,
    ``campaign``, ``attributes`` (JSON-typed facts), ``referral_code`` (from a card), ``at``
    (an aware datetime; default now) and ``actor`` (who captured it).
    """

    channel: Channel | str | None
    email: str | None
    phone: str | None
    campaign: str | None
    attributes: Mapping[str, object] | None
    referral_code: str | None
    at: datetime | None
    actor: str | None


@attrs.frozen
class Known:
    """The stored accounts holding a lead's email and its phone, as the unit of work found them."""

    by_email: Account | None = None
    by_phone: Account | None = None


def lead_channel(name: str, channel: Channel | str | None, code: str | None) -> Channel:
    """Return the channel of a lead: ``REFERRAL`` when it brings a referral ``code``.

    Without a code the channel is required; with one, any channel but ``REFERRAL`` is refused.
    """
    if code is None:
        if channel is None:
            raise ValidationError(
                f"lead {shown(name)} needs a channel (or a referral code)", field="channel"
            )
        return Channel.parse(channel)
    if channel is not None and Channel.parse(channel) is not Channel.REFERRAL:
        raise ValidationError(
            f"lead {shown(name)} brings referral code {code}, so it comes through the "
            f"referral channel, not {Channel.parse(channel).value}",
            field="channel",
        )
    return Channel.REFERRAL


def new_lead(
    account_id: str,
    name: str,
    channel: Channel | str,
    *,
    email: str | None,
    phone: str | None,
    campaign: str | None,
    attributes: Mapping[str, object] | None,
    stage: Stage,
    at: datetime,
    actor: str | None,
    referred_by: str | None = None,
) -> Account:
    """Return a new lead at ``stage``, validated, not yet stored.

    Built (and so checked) before any look-up: a duplicate capture with bad input is still bad
    input, although the known account is what it returns.
    """
    if email is None and phone is None:
        raise ValidationError(
            f"lead {shown(name)} has neither email nor phone: give at least one", field="email"
        )
    return Account(
        id=account_id,
        name=name,
        source=Source(channel, campaign, referred_by),
        created_at=at,
        email=email,
        phone=phone,
        attributes=Attributes() if attributes is None else attributes,
        stage=stage,
        history=(HistoryEntry(None, stage, "capture", at, actor),),
    )


_KEEP: Final = object()


def lead_builder(
    channel: Channel,
    *,
    campaign: str | None,
    stage: Stage,
    new_id: Callable[[], str],
    moment: Callable[[datetime | None], datetime],
) -> Callable[..., Account]:
    """Return ``build(name, *, email, phone, campaign, attributes, at)``: a bulk load's leads.

    Each call returns what :func:`new_lead` returns for the same input (an equal account, or
    the same error), without building and checking a whole account each time: a template,
    built once, is copied with the row's own fields, each converted and checked as a new
    ``Account`` does it, in the same order. ``campaign`` is the default of a row without one;
    ``moment(at)`` checks ``at`` (``None``: now), ``new_id()`` names each lead.
    """
    template = Account(
        id="lead", name="lead", source=Source(channel), created_at=datetime(2000, 1, 1, tzinfo=UTC),
        phone="00000", stage=stage,
    )  # fmt: skip
    sources: dict[str | None, Source] = {}
    no_attributes = template.attributes  # frozen and empty: every bare row may share it
    default = campaign
    specs: dict[str, Any] = attrs.fields_dict(Account)
    email_of, phone_of, attributes_of = (
        specs[name].converter for name in ("email", "phone", "attributes")
    )
    id_spec, name_spec, moment_spec = specs["id"], specs["name"], specs["created_at"]
    check_id, check_name, check_moment = (
        id_spec.validator,
        name_spec.validator,
        moment_spec.validator,
    )

    def build(
        name: str,
        *,
        email: str | None = None,
        phone: str | None = None,
        campaign: object = _KEEP,
        attributes: Mapping[str, object] | None = None,
        at: datetime | None = None,
    ) -> Account:
        account_id = new_id()  # drawn first, as the facade's capture does: the same ids
        at = moment(at)
        if email is None and phone is None:
            raise ValidationError(
                f"lead {shown(name)} has neither email nor phone: give at least one", field="email"
            )
        wanted = default if campaign is _KEEP else campaign
        source = sources.get(wanted) if wanted is None or type(wanted) is str else None
        if source is None:
            source = Source(channel, wanted, None)  # type: ignore[arg-type]
            if len(sources) < 64:
                sources[source.campaign] = source
        # What checked_changes does for these fields, its look-ups done once, above.
        email, phone = email_of(email), phone_of(phone)
        kept = no_attributes if attributes is None else attributes_of(attributes)
        check_id(template, id_spec, account_id)
        check_name(template, name_spec, name)
        check_moment(template, moment_spec, at)
        return unchecked_copy(
            template, id=account_id, name=name, source=source, created_at=at, email=email,
            phone=phone, attributes=kept,
            history=(unchecked_history_entry(None, stage, "capture", at, None, None),),
        )  # fmt: skip

    return build


def restamped(lead: Account, moment: datetime) -> Account:
    """Return ``lead`` (new, not yet stored) as captured at ``moment``."""
    if lead.created_at is moment:
        return lead
    first = lead.history[0]
    return attrs.evolve(lead, created_at=moment, history=(stamped(first, moment),))


def recognise(lead: Account, known: Known) -> Account | None:
    """Return the known account ``lead`` is (``None``: a new lead).

    Raises ``ConflictError`` when the lead's email and phone belong to two accounts, or when
    one matches an account whose other detail contradicts the lead's.
    """
    by_email, by_phone = known.by_email, known.by_phone
    if by_email is not None and by_phone is not None and by_email.id != by_phone.id:
        raise ConflictError(
            f"lead {shown(lead.name)}: its email {lead.email} belongs to account {by_email.id} and "
            f"its phone {lead.phone} to account {by_phone.id}; capture it with one of them"
        )
    account = by_email or by_phone
    if account is None:
        return None
    for kind, matched in (("email", "phone"), ("phone", "email")):
        theirs, ours = getattr(account, kind), getattr(lead, kind)
        if theirs is not None and ours is not None and theirs != ours:
            raise ConflictError(
                f"lead {shown(lead.name)}: its {matched} {getattr(lead, matched)} belongs to "
                f"account {account.id} ({clipped(account.name)}), whose {kind} is {theirs}, "
                f"not {ours}; nothing was captured"
            )
    return account


def _added(account: Account, lead: Account, moment: datetime) -> Decision[Account] | None:
    email = lead.email if account.email is None else None
    phone = lead.phone if account.phone is None else None
    if email is None and phone is None:
        return None
    return changed(
        account.with_changes(email=email or account.email, phone=phone or account.phone),
        ContactDetailsAdded(account.id, moment, email, phone),
    )


def known_as(lead: Account, known: Known, moment: datetime) -> Decision[Account] | None:
    """Return the decision for a lead that is a known account: it, with what the lead adds.

    ``None`` when the lead is new. Raises ``ConflictError`` as :func:`recognise` does.
    """
    account = recognise(lead, known)
    if account is None:
        return None
    return _added(account, lead, moment) or Decision(account)


def capture(known: Known, moment: datetime, *, lead: Account) -> Decision[LeadCapture]:
    """Capture ``lead`` as new, or recognise the known account it is."""
    lead = restamped(lead, moment)
    decision = known_as(lead, known, moment)
    if decision is not None:
        return Decision(LeadCapture(decision.result, new=False), decision.writes, decision.events)
    events: tuple[DomainEvent, ...] = (LeadCaptured(lead.id, moment, lead.source),)
    return Decision(LeadCapture(stored(lead), new=True), (lead,), events)


def record_call(account: Account, moment: datetime, *, call: Call) -> Decision[Account]:
    """Record a phone call; ``DO_NOT_CALL`` also marks the account do-not-contact.

    Calls are kept in time order: "the latest call" must mean the latest made. A call back is
    due after the call, never before it.
    """
    call = stamped(call, moment)
    if account.calls:
        require_in_order(
            account, "a call", moment, since="its last call", earlier=account.calls[-1].at
        )
    else:
        require_in_order(
            account, "a call", moment, since="the lead was captured", earlier=account.created_at
        )
    if call.callback_at is not None:
        require_in_order(
            account, "the call back", call.callback_at, since="the call", earlier=call.at,
            rule="call back after the call", field="callback_at",
        )  # fmt: skip
    blocked = account.do_not_contact or call.outcome is CallOutcome.DO_NOT_CALL
    return changed(
        account.with_changes(calls=(*account.calls, call), do_not_contact=blocked),
        CallRecorded(account.id, moment, call),
    )


@attrs.frozen
class LeadBatchOutcome:
    """What a batch of leads did: ``captured`` new, ``known`` recognised, ``rejected`` rows."""

    captured: int = 0
    known: int = 0
    rejected: tuple[RowError, ...] = ()


def capture_many(
    known: Mapping[tuple[str, str], Account],
    moment: datetime,
    *,
    leads: Sequence[tuple[int, Account]],
) -> Decision[LeadBatchOutcome]:
    """Capture a batch of leads, each ``(position, lead)``, by the rules of :func:`capture`.

    ``known`` maps ``("email" | "phone", value)`` to the stored account holding it. A lead that
    repeats an earlier one of the batch is recognised as it, never doubled; a lead the rules
    refuse is rejected with its position and reason, and the others stand. Each lead keeps its
    own moment; ``moment`` is unused.
    """
    del moment
    holders = dict(known)
    latest: dict[str, Account] = {}  # account id -> its state to write, at its loaded version
    events: list[DomainEvent] = []
    rejected: list[RowError] = []
    captured = recognised = 0
    for position, lead in leads:
        email, phone = lead.email, lead.phone
        if (email is None or ("email", email) not in holders) and (
            phone is None or ("phone", phone) not in holders
        ):
            # A new lead, as capture() decides it (its moment is its own), without the detour.
            captured += 1
            latest[lead.id] = lead
            if email is not None:
                holders["email", email] = lead
            if phone is not None:
                holders["phone", phone] = lead
            events.append(LeadCaptured(lead.id, lead.created_at, lead.source))
            continue
        seen = Known(
            None if lead.email is None else holders.get(("email", lead.email)),
            None if lead.phone is None else holders.get(("phone", lead.phone)),
        )
        try:
            decision = capture(seen, lead.created_at, lead=lead)
        except SalesProcessError as error:
            rejected.append(RowError(position, str(error), getattr(error, "field", None)))
            continue
        if decision.result.new:
            captured += 1
        else:
            recognised += 1
        for account in decision.writes:
            latest[account.id] = account
            for kind in ("email", "phone"):
                value = getattr(account, kind)
                if value is not None:
                    holders[kind, value] = account
        events.extend(decision.events)
    outcome = LeadBatchOutcome(captured, recognised, tuple(rejected))
    return Decision(outcome, tuple(latest.values()), tuple(events))
