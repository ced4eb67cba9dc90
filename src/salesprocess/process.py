"""``SalesProcess``: the facade a sales team's app calls, one method per use case.

It wires the parts (the store, the policies, the lifecycle, the clock) and delegates: each
command is a pure decision in :mod:`salesprocess.commands`, run by the
:class:`~salesprocess.unit_of_work.UnitOfWork` (load, decide, write, retry a stale write,
publish after commit); each report is a pure function in :mod:`salesprocess.reports`. It is an
entry point, like a command line: the one layer that picks a default adapter (in-memory
storage) for a caller who names none. A refused command raises before anything is stored, so
the stored accounts stay exactly as they were, and publishes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, Unpack, overload

from salesprocess import imports, reports, screening
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
from salesprocess.contact import normalise_email, normalise_phone
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
from salesprocess.reports import (
    FlowPeriod,
    FlowPeriodName,
    Funnel,
    Period,
    ReferralReport,
    RepeatRow,
    RevenueReport,
    RfmRow,
    StageTime,
)
from salesprocess.rules import QualificationRule
from salesprocess.screening import Progress
from salesprocess.stage import Stage
from salesprocess.storage import selection
from salesprocess.storage.memory import InMemoryRepository
from salesprocess.storage.protocol import AccountRepository, every_account
from salesprocess.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from statemachine import StateMachine


__all__ = ["SalesProcess"]

_Wired = TypeVar("_Wired")


def _optional(value: _Wired | None, field: str, kind: Any) -> _Wired | None:
    return None if value is None else require_instance(value, field, kind)


_Event = TypeVar("_Event", bound=DomainEvent)
_Result = TypeVar("_Result")


def _new_id() -> str:
    """Return a random id: what ``uuid.uuid4().hex`` returns, without building the UUID.

    A bulk import names every lead: the ``UUID`` object and its ``hex`` cost more than the
    sixteen random bytes themselves.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    return raw.hex()


class SalesProcess:
    """The sales process over one account store.

    ``repository`` defaults to a fresh :class:`~salesprocess.storage.InMemoryRepository`.
    ``criteria`` are marketing's prospect criteria (for :meth:`screen` and :meth:`call_list`);
    ``scoring`` an optional rule whose score ranks the call list; ``qualification_policy``
    decides :meth:`qualify` (default :class:`ScreenAndCallPolicy`); ``service_policy`` decides
    :meth:`recommend_service` (default :class:`RepairOrReplacePolicy`). ``lifecycle`` may be a
    subclass of :class:`~salesprocess.lifecycle.Lifecycle`. ``max_retries`` bounds the retries
    of a command overtaken by a concurrent write. ``id_factory`` makes ids (accounts, referral
    requests, assets; default random UUIDs), ``code_factory`` referral codes. ``currency`` is
    the :class:`~salesprocess.currencies.CurrencyRule` purchases keep, or the house currency's
    ISO 4217 code; by default an account's currency is fixed by its first purchase.
    """

    def __init__(
        self,
        repository: AccountRepository | None = None,
        *,
        criteria: Criteria | None = None,
        scoring: QualificationRule | None = None,
        qualification_policy: QualificationPolicy | None = None,
        service_policy: ServicePolicy | None = None,
        lifecycle: type[StateMachine] = Lifecycle,
        clock: Clock | None = None,
        max_retries: int = 3,
        id_factory: Callable[[], str] | None = None,
        code_factory: Callable[[], str] | None = None,
        currency: CurrencyRule | str | None = None,
    ) -> None:
        # Checked here, so that a miswired process fails now and not in its first command.
        store: AccountRepository = (
            InMemoryRepository()
            if repository is None
            else require_instance(repository, "repository", AccountRepository)  # type: ignore[type-abstract]
        )
        self.criteria = _optional(criteria, "criteria", Criteria)
        self.scoring = _optional(scoring, "scoring", QualificationRule)
        self.qualification_policy: QualificationPolicy = (
            _optional(qualification_policy, "qualification_policy", QualificationPolicy)
            or ScreenAndCallPolicy()
        )
        self.service_policy: ServicePolicy = (
            _optional(service_policy, "service_policy", ServicePolicy) or RepairOrReplacePolicy()
        )
        self.transitions = Transitions.of(lifecycle)
        self.currency_rule = CurrencyRule.of(currency)
        self._new_id = _optional(id_factory, "id_factory", Callable) or _new_id
        self._new_code = _optional(code_factory, "code_factory", Callable) or new_referral_code
        self._bus = EventBus()
        self._uow = UnitOfWork(
            store,
            clock=_optional(clock, "clock", Clock) or SystemClock(),
            bus=self._bus,
            max_retries=require_int(max_retries, "max_retries", low=0),
        )

    @property
    def repository(self) -> AccountRepository:
        """The account store (fixed for the process's life, like ``clock`` and ``max_retries``)."""
        return self._uow.repository

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

    def _run(
        self,
        account_id: str,
        decide: Callable[[Account, datetime], Decision[_Result]],
        at: datetime | None,
    ) -> _Result:
        require_text(account_id, "account_id")
        return self._uow.run(self._uow.account(account_id), decide, at=at)

    # -- lead generation ----------------------------------------------------------------------

    def get(self, account_id: str) -> Account:
        """Return the account with ``account_id``; raise ``NotFound`` if there is none."""
        return self.repository.get(require_text(account_id, "account_id"))

    def find(self, *, email: str | None = None, phone: str | None = None) -> Account | None:
        """Return the account with this email, else this phone (both normalised first)."""
        email = None if email is None else normalise_email(email)
        phone = None if phone is None else normalise_phone(phone)
        found = None if email is None else self.repository.find_by_email(email)
        return found or (None if phone is None else self.repository.find_by_phone(phone))

    def capture(self, name: str, **details: Unpack[LeadDetails]) -> LeadCapture:
        """Capture a lead, or recognise a known one; say which (``LeadCapture.new``).

        ``details`` are :class:`~salesprocess.commands.leads.LeadDetails`: a lead needs an
        ``email`` or a ``phone``, and a ``channel`` unless it brings a ``referral_code`` (from
        a referrer's card), which attributes it to the account holding the code, as
        :meth:`record_referral` does. See :mod:`salesprocess.commands.leads` for what a second
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
        return self._uow.run(
            partial(self._uow.known, lead), partial(leads.capture, lead=lead), at=at
        )

    def capture_lead(self, name: str, **details: Unpack[LeadDetails]) -> Account:
        """Capture a lead as a prospect, or return the known account; see :meth:`capture`."""
        return self.capture(name, **details).account

    def record_call(
        self,
        account_id: str,
        outcome: CallOutcome,
        *,
        notes: str = "",
        at: datetime | None = None,
        callback_at: datetime | None = None,
    ) -> Account:
        """Record a phone call; ``DO_NOT_CALL`` also marks the account do-not-contact."""
        call = Call(outcome, self._moment(at), notes, callback_at)
        return self._run(account_id, partial(leads.record_call, call=call), at)

    # -- qualification ------------------------------------------------------------------------

    def _criteria(self) -> Criteria:
        if self.criteria is None:
            raise SalesProcessError(
                "no marketing criteria: create the process with SalesProcess(criteria=...)"
            )
        return self.criteria

    def screen(self, account_id: str, *, at: datetime | None = None) -> QualificationReport:
        """Screen the account against the marketing criteria, record it, and return the report."""
        decide = partial(qualifying.screen, criteria=self._criteria())
        return self._run(account_id, decide, at)

    def screen_all(
        self, *, at: datetime | None = None, progress: Progress | None = None
    ) -> list[QualificationReport]:
        """Screen every prospect a batch at a time; return the reports.

        One read of each prospect, one transaction per batch; ``progress(done, total)`` after
        each. Refused as a whole, before anything is stored, when ``at`` is earlier than a
        prospect's last screening. A prospect that moves on meanwhile is left out.
        """
        _optional(progress, "progress", Callable)
        return screening.screen_stage(
            self._uow, criteria=self._criteria(), stage=self.transitions.initial,
            moment=self._moment(at), progress=progress,
        )  # fmt: skip

    def screen_many(
        self, account_ids: Iterable[str], *, at: datetime | None = None
    ) -> list[QualificationReport]:
        """Screen the accounts ``account_ids`` name as :meth:`screen_all` screens prospects.

        An id named twice is screened once.
        """
        if isinstance(account_ids, str):
            raise ValidationError("account_ids is a list of ids, not one id", field="account_ids")
        ids = [require_text(i, "account_ids") for i in require_items(account_ids, "account_ids")]
        criteria, moment = self._criteria(), self._moment(at)
        accounts = [self.repository.get(account_id) for account_id in dict.fromkeys(ids)]
        return screening.screen_accounts(
            self._uow, accounts, criteria=criteria, stage=None, moment=moment
        )

    def call_list(self, *, limit: int = 50, at: datetime | None = None) -> list[Account]:
        """Return prospects that pass the criteria and may be called now, best first.

        See :func:`salesprocess.reports.call_list` for who is left out and the ranking.
        """
        limit = require_int(limit, "limit", low=1)
        criteria, scoring = self._criteria(), self.scoring
        prospects = selection.prospects(self.repository, criteria, self.transitions.initial)
        return reports.call_list(
            prospects, self._moment(at), criteria=criteria, scoring=scoring, limit=limit
        )

    def qualify(
        self,
        account_id: str,
        *,
        override: str | None = None,
        at: datetime | None = None,
        actor: str | None = None,
    ) -> Account:
        """Qualify a prospect: the policy must approve, or ``override`` gives the reason.

        Raises :class:`~salesprocess.errors.QualificationRefused` listing what is missing.
        """
        optional_text(override, "override")
        decide = partial(
            qualifying.qualify, transitions=self.transitions,
            policy=self.qualification_policy, override=override, actor=actor,
        )  # fmt: skip
        return self._run(account_id, decide, at)

    def disqualify(
        self, account_id: str, reason: str, *, at: datetime | None = None, actor: str | None = None
    ) -> Account:
        """Disqualify a prospect or qualified lead, for ``reason``."""
        return self._with_reason(account_id, "disqualify", reason, at, actor)

    def recycle(
        self, account_id: str, reason: str, *, at: datetime | None = None, actor: str | None = None
    ) -> Account:
        """Send a disqualified account back to prospect, for ``reason``."""
        return self._with_reason(account_id, "recycle", reason, at, actor)

    def churn(
        self, account_id: str, reason: str, *, at: datetime | None = None, actor: str | None = None
    ) -> Account:
        """Mark a customer as lost, for ``reason``."""
        return self._with_reason(account_id, "churn", reason, at, actor)

    def _with_reason(
        self, account_id: str, event: str, reason: str, at: datetime | None, actor: str | None
    ) -> Account:
        require_text(reason, "reason")
        return self.fire(account_id, event, reason=reason, at=at, actor=actor)

    def fire(
        self,
        account_id: str,
        event: str,
        *,
        reason: str | None = None,
        at: datetime | None = None,
        actor: str | None = None,
    ) -> Account:
        """Fire any event of the lifecycle: the way to drive events a subclass adds."""
        require_text(event, "event")
        decide = partial(
            qualifying.fire, transitions=self.transitions, event=event, reason=reason, actor=actor
        )
        return self._run(account_id, decide, at)

    # -- recurring revenue --------------------------------------------------------------------

    def record_purchase(
        self,
        account_id: str,
        amount: Money,
        *,
        at: datetime | None = None,
        reference: str | None = None,
        actor: str | None = None,
    ) -> Account:
        """Record a purchase; the first makes a customer, one on a later day a repeat customer.

        A zero amount is allowed; a negative one, or one before the last purchase, is refused;
        so is one in a currency the process's ``currency`` rule refuses (``CurrencyMismatch``).
        """
        purchase = Purchase(amount, self._moment(at), reference)
        decide = partial(
            purchases.record_purchase, transitions=self.transitions, purchase=purchase,
            actor=actor, currency=self.currency_rule,
        )  # fmt: skip
        return self._run(account_id, decide, at)

    # -- referrals ----------------------------------------------------------------------------

    def ask_for_referrals(
        self, account_id: str, *, wanted: int = 5, at: datetime | None = None
    ) -> ReferralRequest:
        """Record that the customer was asked for ``wanted`` names; return the request.

        Pass the request's id to :meth:`record_referral` for each name it brings.
        """
        request = ReferralRequest(self._new_id(), self._moment(at), wanted)
        decide = partial(referrals.ask_for_referrals, transitions=self.transitions, request=request)
        return self._run(account_id, decide, at)

    def record_referral(
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
    ) -> Account:
        """Record a name the referrer gave; return the referred account.

        Stored all or nothing: the new prospect (or the known account it is, linked rather
        than duplicated) and the referral on the referrer, whose first referral makes it a
        referrer. ``request`` is the id of the :meth:`ask_for_referrals` request it answers.
        """
        require_text(referrer_id, "referrer_id")
        optional_text(request, "request")
        details: LeadDetails = {
            "email": email, "phone": phone, "campaign": campaign, "attributes": attributes,
            "at": at, "actor": actor,
        }  # fmt: skip
        lead = self._lead(name, Channel.REFERRAL, details)
        return self._refer(lead, at, referrer_id=referrer_id, code=None, request=request).account

    def _lead(self, name: str, channel: Channel, details: LeadDetails) -> Account:
        return leads.new_lead(
            self._new_id(), name, channel, email=details.get("email"),
            phone=details.get("phone"), campaign=details.get("campaign"),
            attributes=details.get("attributes"), stage=self.transitions.initial,
            at=self._moment(details.get("at")), actor=details.get("actor"),
        )  # fmt: skip

    def _refer(
        self,
        lead: Account,
        at: datetime | None,
        *,
        referrer_id: str | None,
        code: str | None,
        request: str | None,
    ) -> LeadCapture:
        load = partial(self._uow.scene, lead, referrer_id=referrer_id, code=code)
        decide = partial(
            referrals.refer, transitions=self.transitions, lead=lead, request=request, code=code
        )
        return self._uow.run(load, decide, at=at)

    def issue_referral_cards(
        self, account_id: str, *, count: int = 10, at: datetime | None = None
    ) -> ReferralCards:
        """Hand the customer ``count`` business cards carrying its referral code.

        The first batch gives the account its code (random, unique); later batches carry the
        same one, which :meth:`capture` takes as ``referral_code``.
        """
        require_text(account_id, "account_id")
        cards = ReferralCards("CARD", count, self._moment(at))  # checked before any read
        load = self._uow.account_with_code(account_id, self._new_code, self.transitions)
        decide = partial(referrals.issue_referral_cards, transitions=self.transitions, cards=cards)
        return self._uow.run(load, decide, at=at)

    def referral_stats(self) -> ReferralReport:
        """Return referral figures; see :func:`salesprocess.reports.referral_stats`."""
        return self._report(reports.referral_stats)

    # -- customer service ---------------------------------------------------------------------

    def learn_preference(
        self,
        account_id: str,
        key: str,
        value: str,
        *,
        evidence: str | None = None,
        at: datetime | None = None,
    ) -> Account:
        """Keep what the customer values in its service profile (the latest per key wins).

        ``key`` names the question (``"equipment_strategy"``), ``value`` the answer
        (``"repair_over_upgrade"``), ``evidence`` what showed it.
        """
        preference = Preference(key, value, self._moment(at), evidence)
        decide = partial(care.learn_preference, preference=preference)
        return self._run(account_id, decide, at)

    def register_asset(
        self,
        account_id: str,
        *,
        model: str,
        installed: date,
        expected_life_years: int,
        serial: str | None = None,
        at: datetime | None = None,
    ) -> Asset:
        """Register a piece of the customer's equipment for service; return it (with its id)."""
        asset = Asset(self._new_id(), model, installed, expected_life_years, serial)
        return self._run(account_id, partial(care.register_asset, asset=asset), at)

    def recommend_service(
        self,
        account_id: str,
        asset_id: str,
        *,
        repair_cost: Money,
        replacement_cost: Money,
        on: date | None = None,
    ) -> ServiceRecommendation:
        """Recommend repairing or replacing a broken asset, as the service policy decides.

        ``on`` is the day it broke (default: today, UTC). Nothing is stored.
        """
        require_text(account_id, "account_id")
        require_text(asset_id, "asset_id")
        require_instance(repair_cost, "repair_cost", Money)
        require_instance(replacement_cost, "replacement_cost", Money)
        if on is not None and type(on) is not date:
            require_instance(on, "on", date)  # a datetime is a date, but not a day
            raise ValidationError(f"on must be a datetime.date, not datetime {on}", field="on")
        return care.recommend_service(
            self.repository.get(account_id), asset_id, policy=self.service_policy,
            repair_cost=repair_cost, replacement_cost=replacement_cost,
            on=utc_day(self.clock.now()) if on is None else on,
        )  # fmt: skip

    def import_leads(
        self,
        rows: Iterable[Mapping[str, object]],
        *,
        channel: Channel | str,
        campaign: str | None = None,
        all_or_nothing: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> LeadImport:
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
        return imports.import_leads(
            self._uow, checked, build=build, all_or_nothing=all_or_nothing, progress=progress
        )

    # -- recurring revenue and the read side ------------------------------------------------

    def import_purchases(
        self,
        rows: Iterable[PurchaseRow | Mapping[str, object]],
        *,
        channel: Channel | str = Channel.INBOUND_INQUIRY,
        all_or_nothing: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> PurchaseImport:
        """Record many purchases a batch at a time; see :mod:`salesprocess.imports`.

        ``progress(done, total)`` hears of the rows decided.
        """
        checked = require_items(rows, "rows")
        _optional(progress, "progress", Callable)
        return imports.import_purchases(
            self._uow, checked, transitions=self.transitions, new_id=self._new_id,
            channel=channel, all_or_nothing=all_or_nothing, progress=progress,
            currency=self.currency_rule,
        )  # fmt: skip

    def _report(self, report: Callable[..., _Result], **options: Any) -> _Result:
        # An adapter that answers a report itself (in SQL) has a method report_<name>; the pure
        # function over every account is the oracle it must agree with.
        answer = getattr(self.repository, f"report_{report.__name__}", None)
        return answer(**options) if answer else report(every_account(self.repository), **options)

    def revenue(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> RevenueReport:
        """Return revenue per currency; see :func:`salesprocess.reports.revenue`."""
        return self._report(reports.revenue, since=since, until=until)

    def repeat_summary(
        self, *, as_of: datetime | None = None, period: Period = "D"
    ) -> list[RepeatRow]:
        """Return repeat figures; see :func:`salesprocess.reports.repeat_summary`."""
        return self._report(
            reports.repeat_summary, as_of=self._moment(as_of, "as_of"), period=period
        )

    def rfm(self, *, as_of: datetime | None = None, currency: str | None = None) -> list[RfmRow]:
        """Return RFM scores and segments; see :func:`salesprocess.reports.rfm`."""
        if currency is not None:
            Money.zero(require_text(currency, "currency"))  # an ISO 4217 code, or refused
        return self._report(reports.rfm, as_of=self._moment(as_of, "as_of"), currency=currency)

    def funnel(
        self,
        *,
        as_of: datetime | None = None,
        channel: Channel | str | None = None,
        campaign: str | None = None,
    ) -> Funnel:
        """Return the funnel; see :func:`salesprocess.reports.funnel`."""
        optional_text(campaign, "campaign")
        return self._report(
            reports.funnel, as_of=self._moment(as_of, "as_of"), channel=channel, campaign=campaign
        )

    def lead_flow(
        self,
        *,
        period: FlowPeriodName = "week",
        target: int | None = None,
        as_of: datetime | None = None,
    ) -> list[FlowPeriod]:
        """Return the flow of leads; see :func:`salesprocess.reports.lead_flow`."""
        return self._report(reports.lead_flow, period=period, target=target, as_of=as_of)

    def time_in_stage(self, *, as_of: datetime | None = None) -> Mapping[Stage, StageTime]:
        """Return median and p90 time per stage; see :func:`salesprocess.reports.time_in_stage`."""
        return self._report(reports.time_in_stage, as_of=self._moment(as_of, "as_of"))

    def stage_counts(self) -> Mapping[Stage, int]:
        """Return how many accounts are at each stage of the lifecycle (zeros included)."""
        return reports.stage_counts(self.repository.count_by_stage(), self.transitions.stages)
