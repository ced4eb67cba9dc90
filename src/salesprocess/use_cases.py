"""What both facades share: their wiring, and each of their commands as steps of work.

:class:`~salesprocess.process.SalesProcess` and
:class:`~salesprocess.process_async.AsyncSalesProcess` are this class with a runner: each
command here checks its arguments, builds its records and returns the steps (load, decide
with the pure command of :mod:`salesprocess.commands`, write, retry, publish) that the facade's
unit of work drives, calling the repository or awaiting it. So a command is written once, and
the two facades cannot disagree about what it does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypedDict, TypeVar, Unpack, overload

from salesprocess import imports, screening
from salesprocess.account import (
    Account,
    Asset,
    Call,
    CallOutcome,
    Channel,
    Preference,
    Purchase,
    ReferralCards,
    ReferralRequest,
)
from salesprocess.checks import (
    optional_text,
    require_instance,
    require_int,
    require_items,
    require_text,
)
from salesprocess.clock import Clock, SystemClock, require_aware, utc_day
from salesprocess.commands import care, leads, purchases, qualifying, referrals
from salesprocess.commands.decision import Decision
from salesprocess.commands.leads import LeadCapture, LeadDetails
from salesprocess.commands.purchases import PurchaseRow
from salesprocess.criteria import Criteria
from salesprocess.currencies import CurrencyRule
from salesprocess.customer_service import (
    RepairOrReplacePolicy,
    ServicePolicy,
    ServiceRecommendation,
)
from salesprocess.errors import SalesProcessError, ValidationError
from salesprocess.events import DomainEvent, EventBus
from salesprocess.imports import LeadImport, PurchaseImport
from salesprocess.lifecycle import Lifecycle, Transitions
from salesprocess.money import Money
from salesprocess.qualification import QualificationPolicy, QualificationReport, ScreenAndCallPolicy
from salesprocess.referral_codes import new_referral_code, normalise_referral_code
from salesprocess.rules import QualificationRule
from salesprocess.screening import Progress
from salesprocess.stage import Stage
from salesprocess.unit_of_work import Steps, Work

if TYPE_CHECKING:
    from statemachine import StateMachine

__all__ = ["UseCases", "Wiring"]

_Wired = TypeVar("_Wired")
_Event = TypeVar("_Event", bound=DomainEvent)
_Result = TypeVar("_Result")


def _optional(value: _Wired | None, field: str, kind: Any) -> _Wired | None:
    return None if value is None else require_instance(value, field, kind)


# The fixed parts of a version 7 UUID, as a 128-bit number.
_BITS_48: Final = (1 << 48) - 1
_RANDOM_62: Final = (1 << 62) - 1
_VERSION_7: Final = 0x7 << 76
_VARIANT: Final = 0b10 << 62  # RFC 4122's (and 9562's)


def _new_id() -> str:
    """Return a new id: a version 7 UUID (RFC 9562) in hex, 32 digits, ordered by time.

    The first 48 bits are the system's Unix time in milliseconds, the next 12 (after the
    version) the fraction of the millisecond (RFC 9562's method 3), the last 62 random. Ids
    drawn later sort later, so a store's indexes on ids take each new key at their end rather
    than anywhere: a 100,000-lead import into a new SQLite file spent about 0.2 s less on its
    state rows and 0.15 to 0.35 s less on its account rows than with random (version 4) ids,
    measured. The time is the system's when the id is drawn, not a facade's ``clock``.
    """
    milliseconds, rest = divmod(time.time_ns(), 1_000_000)
    fraction = rest * 4096 // 1_000_000
    random = int.from_bytes(os.urandom(8)) & _RANDOM_62
    value = (milliseconds & _BITS_48) << 80 | _VERSION_7 | fraction << 64 | _VARIANT | random
    return f"{value:032x}"


class Wiring(TypedDict, total=False):
    """What a facade is wired with besides its store; see :class:`~salesprocess.SalesProcess`."""

    criteria: Criteria | None
    scoring: QualificationRule | None
    qualification_policy: QualificationPolicy | None
    service_policy: ServicePolicy | None
    lifecycle: type[StateMachine]
    clock: Clock | None
    max_retries: int
    id_factory: Callable[[], str] | None
    code_factory: Callable[[], str] | None
    currency: CurrencyRule | str | None


class UseCases:
    """The wiring of a facade (all but its store) and its commands as steps; see the module.

    The arguments are :class:`~salesprocess.process.SalesProcess`'s, checked here once so that
    a miswired process fails when it is made, not in its first command.
    """

    #: The facade's runner: a ``UnitOfWork`` or an ``AsyncUnitOfWork``.
    _uow: Work

    def __init__(self, **wiring: Unpack[Wiring]) -> None:
        unknown = wiring.keys() - Wiring.__annotations__.keys()
        if unknown:  # as Python says it of a keyword a signature does not name
            raise TypeError(
                f"{type(self).__name__}() got an unexpected keyword argument {min(unknown)!r}"
            )
        criteria, scoring = wiring.get("criteria"), wiring.get("scoring")
        qualification_policy = wiring.get("qualification_policy")
        service_policy = wiring.get("service_policy")
        id_factory, code_factory = wiring.get("id_factory"), wiring.get("code_factory")
        clock, max_retries = wiring.get("clock"), wiring.get("max_retries", 3)
        self.criteria = _optional(criteria, "criteria", Criteria)
        self.scoring = _optional(scoring, "scoring", QualificationRule)
        self.qualification_policy: QualificationPolicy = (
            _optional(qualification_policy, "qualification_policy", QualificationPolicy)
            or ScreenAndCallPolicy()
        )
        self.service_policy: ServicePolicy = (
            _optional(service_policy, "service_policy", ServicePolicy) or RepairOrReplacePolicy()
        )
        self.transitions = Transitions.of(wiring.get("lifecycle", Lifecycle))
        self.currency_rule = CurrencyRule.of(wiring.get("currency"))
        self._new_id = _optional(id_factory, "id_factory", Callable) or _new_id
        self._new_code = _optional(code_factory, "code_factory", Callable) or new_referral_code
        self._bus = EventBus()
        self._clock = _optional(clock, "clock", Clock) or SystemClock()
        self._max_retries = require_int(max_retries, "max_retries", low=0)

    @property
    def clock(self) -> Clock:
        """Where "now" comes from."""
        return self._uow.clock

    @property
    def max_retries(self) -> int:
        """How often a command overtaken by a concurrent write is retried."""
        return self._uow.max_retries

    @overload
    def subscribe(self, handler: Callable[[DomainEvent], None]) -> Callable[[], None]: ...
    @overload
    def subscribe(
        self, handler: Callable[[_Event], None], event_type: type[_Event]
    ) -> Callable[[], None]: ...
    def subscribe(self, handler: Any, event_type: Any = DomainEvent) -> Callable[[], None]:
        """Call ``handler`` with each committed event of ``event_type``; return an unsubscribe.

        Events of a command are published once its writes are committed: at once, or, for a
        command run inside your own ``repository.atomic()`` block, when your outermost block
        commits (never if it rolls back; on PostgreSQL, let ``atomic()`` begin the transaction:
        see :mod:`salesprocess.storage.postgres`). Every handler runs; the first exception one
        raises then reaches the caller, and the change stays stored.
        """
        return self._bus.subscribe(handler, event_type)

    def _moment(self, at: datetime | None, field: str = "at") -> datetime:
        # A provisional moment to check a command's records before anything is read; each
        # attempt is stamped anew (see UnitOfWork).
        return self.clock.now() if at is None else require_aware(at, field)

    def _on(
        self,
        account_id: str,
        decide: Callable[[Account, datetime], Decision[_Result]],
        at: datetime | None,
    ) -> Steps[_Result]:
        require_text(account_id, "account_id")
        return self._uow.attempts(self._uow.account(account_id), decide, at=at)

    def _criteria(self) -> Criteria:
        if self.criteria is None:
            raise SalesProcessError(
                "no marketing criteria: create the process with SalesProcess(criteria=...)"
            )
        return self.criteria

    # -- lead generation ----------------------------------------------------------------------
    #
    # Each command below is the public command of both facades, as steps: its signature and its
    # documentation are theirs (each facade names it without the underscore, driven by its
    # runner: see salesprocess.process.driven and salesprocess.process_async.awaited).

    def _capture(self, name: str, **details: Unpack[LeadDetails]) -> Steps[LeadCapture]:
        """Capture a lead, or recognise a known one; say which (``LeadCapture.new``).

        ``details`` are :class:`~salesprocess.commands.leads.LeadDetails`: a lead needs an
        ``email`` or a ``phone``, and a ``channel`` unless it brings a ``referral_code`` (from
        a referrer's card), which attributes it to the account holding the code, as
        ``record_referral`` does. See :mod:`salesprocess.commands.leads` for what a second
        capture of a known lead does with the details it brings.
        """
        unknown = details.keys() - LeadDetails.__annotations__.keys()
        if unknown:
            raise ValidationError(
                f"capture() takes no {', '.join(sorted(unknown))}; it takes "
                f"{', '.join(LeadDetails.__annotations__)}",
                field=min(unknown),
            )
        at, code = details.get("at"), details.get("referral_code")
        code = None if code is None else normalise_referral_code(code)
        lead = self._lead(name, leads.lead_channel(name, details.get("channel"), code), details)
        if code is not None:
            return self._refer(lead, at, referrer_id=None, code=code, request=None)
        return self._uow.attempts(
            partial(self._uow.known, lead), partial(leads.capture, lead=lead), at=at
        )

    def _capture_lead(self, name: str, **details: Unpack[LeadDetails]) -> Steps[Account]:
        """Capture a lead as a prospect, or return the known account; see ``capture``."""
        captured = yield from self._capture(name, **details)
        return captured.account

    def _record_call(
        self,
        account_id: str,
        outcome: CallOutcome,
        *,
        notes: str = "",
        at: datetime | None = None,
        callback_at: datetime | None = None,
    ) -> Steps[Account]:
        """Record a phone call; ``DO_NOT_CALL`` also marks the account do-not-contact."""
        call = Call(outcome, self._moment(at), notes, callback_at)
        return self._on(account_id, partial(leads.record_call, call=call), at)

    def _lead(self, name: str, channel: Channel, details: LeadDetails) -> Account:
        return leads.new_lead(
            self._new_id(), name, channel, email=details.get("email"),
            phone=details.get("phone"), campaign=details.get("campaign"),
            attributes=details.get("attributes"), stage=self.transitions.initial,
            at=self._moment(details.get("at")), actor=details.get("actor"),
        )  # fmt: skip

    def _import_leads(
        self,
        rows: Iterable[Mapping[str, object]],
        *,
        channel: Channel | str,
        campaign: str | None = None,
        all_or_nothing: bool = True,
        progress: Progress | None = None,
    ) -> Steps[LeadImport]:
        """Capture many leads from ``channel`` a batch at a time; see :mod:`salesprocess.imports`.

        Each row maps ``name``, ``email``, ``phone`` and optionally ``campaign``,
        ``attributes`` and ``at``. ``progress(done, total)`` hears of the rows decided.
        """
        checked_channel = Channel.parse(channel)
        optional_text(campaign, "campaign")
        checked = require_items(rows, "rows")
        _optional(progress, "progress", Callable)
        build = leads.lead_builder(
            checked_channel, campaign=campaign, stage=self.transitions.initial,
            new_id=self._new_id, moment=self._moment,
        )  # fmt: skip
        return imports.lead_import(
            self._uow, checked, build=build, all_or_nothing=all_or_nothing, progress=progress
        )

    # -- qualification ------------------------------------------------------------------------

    def _screen(self, account_id: str, *, at: datetime | None = None) -> Steps[QualificationReport]:
        """Screen the account against the marketing criteria, record it, and return the report."""
        return self._on(account_id, partial(qualifying.screen, criteria=self._criteria()), at)

    def _screen_accounts(
        self,
        accounts: list[Account],
        stage: Stage | None,
        at: datetime | None,
        progress: Progress | None = None,
    ) -> Steps[list[QualificationReport]]:
        return screening.screening(
            self._uow, accounts, criteria=self._criteria(), stage=stage,
            moment=self._moment(at), progress=progress,
        )  # fmt: skip

    def _progress(self, progress: Progress | None) -> None:
        _optional(progress, "progress", Callable)
        self._criteria()  # refused before any prospect is read

    def _screen_ids(self, account_ids: Iterable[str]) -> list[str]:
        """Check ``screen_many``'s ids (and the criteria) before any is read; each once."""
        if isinstance(account_ids, str):
            raise ValidationError("account_ids is a list of ids, not one id", field="account_ids")
        ids = [require_text(i, "account_ids") for i in require_items(account_ids, "account_ids")]
        self._criteria()
        return list(dict.fromkeys(ids))

    def _call_list_limit(self, limit: int) -> int:
        limit = require_int(limit, "limit", low=1)
        self._criteria()  # refused before any prospect is read
        return limit

    def _qualify(
        self,
        account_id: str,
        *,
        override: str | None = None,
        at: datetime | None = None,
        actor: str | None = None,
    ) -> Steps[Account]:
        """Qualify a prospect: the policy must approve, or ``override`` gives the reason.

        Raises :class:`~salesprocess.errors.QualificationRefused` listing what is missing.
        """
        optional_text(override, "override")
        decide = partial(
            qualifying.qualify, transitions=self.transitions,
            policy=self.qualification_policy, override=override, actor=actor,
        )  # fmt: skip
        return self._on(account_id, decide, at)

    def _disqualify(
        self, account_id: str, reason: str, *, at: datetime | None = None, actor: str | None = None
    ) -> Steps[Account]:
        """Disqualify a prospect or qualified lead, for ``reason``."""
        return self._with_reason(account_id, "disqualify", reason, at, actor)

    def _recycle(
        self, account_id: str, reason: str, *, at: datetime | None = None, actor: str | None = None
    ) -> Steps[Account]:
        """Send a disqualified account back to prospect, for ``reason``."""
        return self._with_reason(account_id, "recycle", reason, at, actor)

    def _churn(
        self, account_id: str, reason: str, *, at: datetime | None = None, actor: str | None = None
    ) -> Steps[Account]:
        """Mark a customer as lost, for ``reason``."""
        return self._with_reason(account_id, "churn", reason, at, actor)

    def _with_reason(
        self, account_id: str, event: str, reason: str, at: datetime | None, actor: str | None
    ) -> Steps[Account]:
        require_text(reason, "reason")
        return self._fire(account_id, event, reason=reason, at=at, actor=actor)

    def _fire(
        self,
        account_id: str,
        event: str,
        *,
        reason: str | None = None,
        at: datetime | None = None,
        actor: str | None = None,
    ) -> Steps[Account]:
        """Fire any event of the lifecycle: the way to drive events a subclass adds."""
        require_text(event, "event")
        decide = partial(
            qualifying.fire, transitions=self.transitions, event=event, reason=reason, actor=actor
        )
        return self._on(account_id, decide, at)

    # -- recurring revenue --------------------------------------------------------------------

    def _record_purchase(
        self,
        account_id: str,
        amount: Money,
        *,
        at: datetime | None = None,
        reference: str | None = None,
        actor: str | None = None,
    ) -> Steps[Account]:
        """Record a purchase; the first makes a customer, one on a later day a repeat customer.

        A zero amount is allowed; a negative one, or one before the last purchase, is refused;
        so is one in a currency the process's ``currency`` rule refuses (``CurrencyMismatch``).
        """
        purchase = Purchase(amount, self._moment(at), reference)
        decide = partial(
            purchases.record_purchase, transitions=self.transitions, purchase=purchase,
            actor=actor, currency=self.currency_rule,
        )  # fmt: skip
        return self._on(account_id, decide, at)

    def _import_purchases(
        self,
        rows: Iterable[PurchaseRow | Mapping[str, object]],
        *,
        channel: Channel | str = Channel.INBOUND_INQUIRY,
        all_or_nothing: bool = True,
        progress: Progress | None = None,
    ) -> Steps[PurchaseImport]:
        """Record many purchases a batch at a time; see :mod:`salesprocess.imports`.

        ``progress(done, total)`` hears of the rows decided.
        """
        checked = require_items(rows, "rows")
        _optional(progress, "progress", Callable)
        return imports.purchase_import(
            self._uow, checked, transitions=self.transitions, new_id=self._new_id,
            channel=channel, all_or_nothing=all_or_nothing, progress=progress,
            currency=self.currency_rule,
        )  # fmt: skip

    # -- referrals ----------------------------------------------------------------------------

    def _ask_for_referrals(
        self, account_id: str, *, wanted: int = 5, at: datetime | None = None
    ) -> Steps[ReferralRequest]:
        """Record that the customer was asked for ``wanted`` names; return the request.

        Pass the request's id to ``record_referral`` for each name it brings.
        """
        request = ReferralRequest(self._new_id(), self._moment(at), wanted)
        decide = partial(referrals.ask_for_referrals, transitions=self.transitions, request=request)
        return self._on(account_id, decide, at)

    def _record_referral(
        self,
        referrer_id: str,
        name: str,
        *,
        email: str | None = None,
        phone: str | None = None,
        request: str | None = None,
        campaign: str | None = None,
        attributes: Mapping[str, object] | None = None,
        at: datetime | None = None,
        actor: str | None = None,
    ) -> Steps[Account]:
        """Record a name the referrer gave; return the referred account.

        Stored all or nothing: the new prospect (or the known account it is, linked rather
        than duplicated) and the referral on the referrer, whose first referral makes it a
        referrer. ``request`` is the id of the ``ask_for_referrals`` request it answers.
        """
        require_text(referrer_id, "referrer_id")
        optional_text(request, "request")
        details: LeadDetails = {
            "email": email, "phone": phone, "campaign": campaign, "attributes": attributes,
            "at": at, "actor": actor,
        }  # fmt: skip
        lead = self._lead(name, Channel.REFERRAL, details)
        referred = yield from self._refer(
            lead, at, referrer_id=referrer_id, code=None, request=request
        )
        return referred.account

    def _refer(
        self,
        lead: Account,
        at: datetime | None,
        *,
        referrer_id: str | None,
        code: str | None,
        request: str | None,
    ) -> Steps[LeadCapture]:
        load = partial(self._uow.scene, lead, referrer_id=referrer_id, code=code)
        decide = partial(
            referrals.refer, transitions=self.transitions, lead=lead, request=request, code=code
        )
        return self._uow.attempts(load, decide, at=at)

    def _issue_referral_cards(
        self, account_id: str, *, count: int = 10, at: datetime | None = None
    ) -> Steps[ReferralCards]:
        """Hand the customer ``count`` business cards carrying its referral code.

        The first batch gives the account its code (random, unique); later batches carry the
        same one, which ``capture`` takes as ``referral_code``.
        """
        require_text(account_id, "account_id")
        cards = ReferralCards("CARD", count, self._moment(at))  # checked before any read
        load = self._uow.account_with_code(account_id, self._new_code, self.transitions)
        decide = partial(referrals.issue_referral_cards, transitions=self.transitions, cards=cards)
        return self._uow.attempts(load, decide, at=at)

    # -- customer service ---------------------------------------------------------------------

    def _learn_preference(
        self,
        account_id: str,
        key: str,
        value: str,
        *,
        evidence: str | None = None,
        at: datetime | None = None,
    ) -> Steps[Account]:
        """Keep what the customer values in its service profile (the latest per key wins).

        ``key`` names the question (``"equipment_strategy"``), ``value`` the answer
        (``"repair_over_upgrade"``), ``evidence`` what showed it.
        """
        preference = Preference(key, value, self._moment(at), evidence)
        return self._on(account_id, partial(care.learn_preference, preference=preference), at)

    def _register_asset(
        self,
        account_id: str,
        *,
        model: str,
        installed: date,
        expected_life_years: int,
        serial: str | None = None,
        at: datetime | None = None,
    ) -> Steps[Asset]:
        """Register a piece of the customer's equipment for service; return it (with its id)."""
        asset = Asset(self._new_id(), model, installed, expected_life_years, serial)
        return self._on(account_id, partial(care.register_asset, asset=asset), at)

    def _service_day(
        self,
        account_id: str,
        asset_id: str,
        repair_cost: Money,
        replacement_cost: Money,
        on: date | None,
    ) -> date:
        """Check ``recommend_service``'s arguments before the account is read; the day."""
        require_text(account_id, "account_id")
        require_text(asset_id, "asset_id")
        require_instance(repair_cost, "repair_cost", Money)
        require_instance(replacement_cost, "replacement_cost", Money)
        if on is not None and type(on) is not date:
            require_instance(on, "on", date)  # a datetime is a date, but not a day
            raise ValidationError(f"on must be a datetime.date, not datetime {on}", field="on")
        return utc_day(self.clock.now()) if on is None else on

    def _recommend(
        self, account: Account, asset_id: str, costs: tuple[Money, Money], day: date
    ) -> ServiceRecommendation:
        repair_cost, replacement_cost = costs
        return care.recommend_service(
            account, asset_id, policy=self.service_policy, repair_cost=repair_cost,
            replacement_cost=replacement_cost, on=day,
        )  # fmt: skip
