"""Recurring revenue: purchases recorded, one by one or a batch at a time.

A purchase may carry the ``reference`` of the shop's or ERP's invoice. It makes recording
idempotent: the same reference again with the same amount is the same purchase, recorded once
(the account is answered unchanged, and nothing is published); with another amount it is a
:class:`~salesprocess.errors.ConflictError`, never a silent overwrite. References are unique
per account.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

import attrs

from salesprocess.account import Account, Channel, HistoryEntry, Purchase, Source
from salesprocess.checks import instance_validator, optional_text_validator
from salesprocess.chronology import last_at, require_in_order
from salesprocess.clock import require_aware
from salesprocess.commands.decision import Decision, changed, stamped, unchanged
from salesprocess.commands.qualifying import transition
from salesprocess.contact import normalise_email, normalise_phone
from salesprocess.currencies import CurrencyRule
from salesprocess.errors import ConflictError, RowError, SalesProcessError, ValidationError
from salesprocess.events import DomainEvent, LeadCaptured, PurchaseRecorded, stage_event
from salesprocess.lifecycle import Transitions
from salesprocess.money import Money

__all__ = [
    "WALK_IN",
    "BatchOutcome",
    "Loaded",
    "PurchaseRow",
    "buy",
    "known_purchase",
    "record_purchase",
    "record_purchases",
    "walk_in",
]

# What a caller that names no rule gets from buy(): the default rule, one currency per account.
_ANY_RULE: Final = CurrencyRule()

#: The reason a walk-in customer's qualification gives: it bought before anyone qualified it.
WALK_IN = "walk-in purchase: first seen in a purchase import"


def known_purchase(account: Account, purchase: Purchase) -> bool:
    """Return whether ``account`` already holds ``purchase`` by its reference.

    Raises ``ConflictError`` when it holds the reference with another amount.
    """
    if purchase.reference is None:
        return False
    for held in account.purchases:
        if held.reference == purchase.reference:
            if held.amount != purchase.amount:
                raise ConflictError(
                    f"account {account.id}: purchase {purchase.reference} was recorded at "
                    f"{held.at.isoformat()} for {held.amount}, not {purchase.amount}; a "
                    "reference names one purchase"
                )
            return True
    return False


def buy(
    account: Account,
    purchase: Purchase,
    transitions: Transitions,
    actor: str | None,
    currency: CurrencyRule = _ANY_RULE,
) -> tuple[Account, tuple[DomainEvent, ...]] | None:
    """Return ``account`` after ``purchase``, and the events; ``None`` for a known reference.

    The rules of a purchase, written once for one and for a batch: a known reference is the
    same purchase (or a ``ConflictError``), ``currency`` accepts its currency (or
    ``CurrencyMismatch``), purchases come in time order, and the lifecycle's ``purchase``
    event moves the stage.
    """
    if known_purchase(account, purchase):
        return None
    currency.check(account.id, account.purchases, purchase.amount)
    require_in_order(
        account, "a purchase", purchase.at, since="its last purchase",
        earlier=last_at(account.purchases),
    )  # fmt: skip
    after, entry = transitions.apply(
        account, "purchase", at=purchase.at, actor=actor, purchases=(*account.purchases, purchase)
    )
    recorded = PurchaseRecorded(account.id, purchase.at, purchase)
    return after, (recorded,) if entry is None else (stage_event(account.id, entry), recorded)


def record_purchase(
    account: Account,
    moment: datetime,
    *,
    transitions: Transitions,
    purchase: Purchase,
    actor: str | None,
    currency: CurrencyRule = _ANY_RULE,
) -> Decision[Account]:
    """Record ``purchase``: the first makes a customer, one on a later day a repeat customer.

    Purchases are kept in time order, so that "the first purchase" is the first made; one in a
    currency ``currency`` refuses raises ``CurrencyMismatch``.
    """
    bought = buy(account, stamped(purchase, moment), transitions, actor, currency)
    return unchanged(account) if bought is None else changed(bought[0], *bought[1])


def walk_in(
    account_id: str,
    *,
    name: str,
    email: str | None,
    phone: str | None,
    channel: Channel,
    at: datetime,
    transitions: Transitions,
) -> tuple[Account, tuple[DomainEvent, ...]]:
    """Return a customer first seen in a purchase import, captured and qualified at ``at``.

    Its history says why it skipped the qualifying steps (:data:`WALK_IN`); its first purchase
    then makes it a customer like any other.
    """
    initial = transitions.initial
    lead = Account(
        id=account_id,
        name=name,
        source=Source(channel),
        created_at=at,
        email=email,
        phone=phone,
        stage=initial,
        history=(HistoryEntry(None, initial, "capture", at, None, WALK_IN),),
    )
    qualified = transition(
        transitions, lead, "qualify", at, approved=True, reason=f"override: {WALK_IN}"
    )
    return qualified.writes[0], (LeadCaptured(lead.id, at, lead.source), *qualified.events)


def _key(row: PurchaseRow) -> tuple[str, str]:
    if row.account_id is not None:
        return "id", row.account_id
    if row.email is not None:
        return "email", row.email
    if row.phone is not None:
        return "phone", row.phone
    raise ValidationError(
        "a purchase row names its customer by account_id, email or phone: none was given",
        field="account_id",
    )


def _email(value: str | None) -> str | None:
    return None if value is None else normalise_email(value)


def _phone(value: str | None) -> str | None:
    return None if value is None else normalise_phone(value)


@attrs.frozen
class PurchaseRow:
    """One purchase to import, naming its customer by ``account_id``, ``email`` or ``phone``.

    The first of them given is the key; an unknown customer is created (see
    :func:`walk_in`), named ``name`` if given. ``at`` is an aware datetime.
    """

    amount: Money = attrs.field(validator=instance_validator(Money))
    at: datetime = attrs.field(validator=lambda _i, _a, value: require_aware(value, "at"))
    reference: str | None = attrs.field(default=None, validator=optional_text_validator)
    account_id: str | None = attrs.field(default=None, validator=optional_text_validator)
    email: str | None = attrs.field(default=None, converter=_email)
    phone: str | None = attrs.field(default=None, converter=_phone)
    name: str | None = attrs.field(default=None, validator=optional_text_validator)

    def __attrs_post_init__(self) -> None:
        _key(self)

    @property
    def key(self) -> tuple[str, str]:
        """How the row names its customer: ``("id" | "email" | "phone", value)``."""
        return _key(self)

    @property
    def purchase(self) -> Purchase:
        """The purchase the row records."""
        return Purchase(self.amount, self.at, self.reference)


@attrs.frozen
class Loaded:
    """A batch's accounts: the stored one of each known key, an id for each unknown one."""

    known: Mapping[tuple[str, str], Account]
    new_ids: Mapping[tuple[str, str], str]


@attrs.frozen
class BatchOutcome:
    """What a batch of purchase rows did, and which rows it refused.

    ``recorded`` purchases, ``duplicates`` (a reference seen before, recorded once), the ids
    of the customers ``created``, and the ``rejected`` rows.
    """

    recorded: int = 0
    duplicates: int = 0
    created: tuple[str, ...] = ()
    rejected: tuple[RowError, ...] = ()


def record_purchases(
    loaded: Loaded,
    moment: datetime,
    *,
    transitions: Transitions,
    rows: Sequence[tuple[int, PurchaseRow]],
    channel: Channel,
    currency: CurrencyRule = _ANY_RULE,
) -> Decision[BatchOutcome]:
    """Record a batch of purchase rows, each ``(position, row)``.

    Each customer's rows are applied in time order (then by position) by the rules of
    :func:`record_purchase` (``currency`` among them: a new customer's currency is fixed by
    its first row); a row those rules refuse is rejected with its position and reason, and
    the others stand. An unknown customer is created by :func:`walk_in` (through
    ``channel``), unless none of its rows could be recorded. ``moment`` is unused: each
    purchase has its own.
    """
    del moment
    grouped: dict[str, list[tuple[int, PurchaseRow]]] = {}
    start: dict[str, tuple[Account | None, tuple[str, str]]] = {}
    for position, row in rows:
        key = row.key
        known = loaded.known.get(key)
        account_id = known.id if known is not None else loaded.new_ids[key]
        grouped.setdefault(account_id, []).append((position, row))
        start.setdefault(account_id, (known, key))
    writes: list[Account] = []
    events: list[DomainEvent] = []
    rejected: list[RowError] = []
    recorded = duplicates = 0
    created: list[str] = []
    for account_id, entries in grouped.items():
        known, (kind, value) = start[account_id]
        entries.sort(key=lambda entry: (entry[1].at, entry[0]))
        first_row = entries[0][1]
        if known is None:
            account, opening = walk_in(
                account_id,
                name=first_row.name or f"Walk-in customer {value}",
                email=value if kind == "email" else None,
                phone=value if kind == "phone" else None,
                channel=channel,
                at=first_row.at,
                transitions=transitions,
            )
        else:
            account, opening = known, ()
        made: list[DomainEvent] = list(opening)
        bought = 0
        for position, row in entries:
            try:
                done = buy(account, row.purchase, transitions, None, currency)
            except SalesProcessError as error:
                rejected.append(RowError(position, str(error), getattr(error, "field", None)))
                continue
            if done is None:
                duplicates += 1
                continue
            account = done[0]
            made.extend(done[1])
            bought += 1
        if bought:
            recorded += bought
            writes.append(account)
            events.extend(made)
            if known is None:
                created.append(account_id)
    outcome = BatchOutcome(recorded, duplicates, tuple(created), tuple(rejected))
    return Decision(outcome, tuple(writes), tuple(events))
