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

import inspect
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, TypeVar, Unpack

from salesprocess import reports, screening
from salesprocess.account import (
    Account,
    Asset,
    CallOutcome,
    Channel,
    ReferralCards,
    ReferralRequest,
)
from salesprocess.checks import require_instance, require_text
from salesprocess.clock import Clock
from salesprocess.commands.leads import LeadCapture, LeadDetails
from salesprocess.commands.purchases import PurchaseRow
from salesprocess.contact import normalise_email, normalise_phone
from salesprocess.criteria import Criteria
from salesprocess.currencies import CurrencyRule
from salesprocess.customer_service import (
    ServicePolicy,
    ServiceRecommendation,
)
from salesprocess.errors import ValidationError
from salesprocess.imports import LeadImport, PurchaseImport
from salesprocess.lifecycle import Lifecycle
from salesprocess.money import Money
from salesprocess.qualification import QualificationPolicy, QualificationReport
from salesprocess.report_requests import Reporting, ReportRequest
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

_Result = TypeVar("_Result")


class SalesProcess(Reporting):
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

    _uow: UnitOfWork

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
        if inspect.iscoroutinefunction(store.get):
            raise ValidationError(
                f"repository {type(store).__name__} is async: use AsyncSalesProcess with it",
                field="repository",
            )
        super().__init__(
            criteria=criteria, scoring=scoring, qualification_policy=qualification_policy,
            service_policy=service_policy, lifecycle=lifecycle, clock=clock,
            max_retries=max_retries, id_factory=id_factory, code_factory=code_factory,
            currency=currency,
        )  # fmt: skip
        self._uow = UnitOfWork(
            store, clock=self._clock, bus=self._bus, max_retries=self._max_retries
        )

    @property
    def repository(self) -> AccountRepository:
        """The account store (fixed for the process's life, like ``clock`` and ``max_retries``)."""
        return self._uow.repository

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
        return self._uow.drive(self._capture(name, details))

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
        return self._uow.drive(self._record_call(account_id, outcome, notes, at, callback_at))

    # -- qualification ------------------------------------------------------------------------

    def screen(self, account_id: str, *, at: datetime | None = None) -> QualificationReport:
        """Screen the account against the marketing criteria, record it, and return the report."""
        return self._uow.drive(self._screen(account_id, at))

    def screen_all(
        self, *, at: datetime | None = None, progress: Progress | None = None
    ) -> list[QualificationReport]:
        """Screen every prospect a batch at a time; return the reports.

        One read of each prospect, one transaction per batch; ``progress(done, total)`` after
        each. Refused as a whole, before anything is stored, when ``at`` is earlier than a
        prospect's last screening. A prospect that moves on meanwhile is left out.
        """
        self._progress(progress)
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
        ids = self._screen_ids(account_ids)
        accounts = [self.repository.get(account_id) for account_id in ids]
        return self._uow.drive(self._screen_accounts(accounts, None, at))

    def call_list(self, *, limit: int = 50, at: datetime | None = None) -> list[Account]:
        """Return prospects that pass the criteria and may be called now, best first.

        See :func:`salesprocess.reports.call_list` for who is left out and the ranking.
        """
        limit = self._call_list_limit(limit)
        criteria, stage = self._criteria(), self.transitions.initial
        prospects = selection.prospects(self.repository, criteria, stage)
        return reports.call_list(
            prospects, self._moment(at), criteria=criteria, scoring=self.scoring, limit=limit
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
        return self._uow.drive(self._qualify(account_id, override, at, actor))

    def disqualify(
        self, account_id: str, reason: str, *, at: datetime | None = None, actor: str | None = None
    ) -> Account:
        """Disqualify a prospect or qualified lead, for ``reason``."""
        return self._uow.drive(self._with_reason(account_id, "disqualify", reason, at, actor))

    def recycle(
        self, account_id: str, reason: str, *, at: datetime | None = None, actor: str | None = None
    ) -> Account:
        """Send a disqualified account back to prospect, for ``reason``."""
        return self._uow.drive(self._with_reason(account_id, "recycle", reason, at, actor))

    def churn(
        self, account_id: str, reason: str, *, at: datetime | None = None, actor: str | None = None
    ) -> Account:
        """Mark a customer as lost, for ``reason``."""
        return self._uow.drive(self._with_reason(account_id, "churn", reason, at, actor))

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
        return self._uow.drive(self._fire(account_id, event, reason, at, actor))

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
        return self._uow.drive(self._record_purchase(account_id, amount, at, reference, actor))

    # -- referrals ----------------------------------------------------------------------------

    def ask_for_referrals(
        self, account_id: str, *, wanted: int = 5, at: datetime | None = None
    ) -> ReferralRequest:
        """Record that the customer was asked for ``wanted`` names; return the request.

        Pass the request's id to :meth:`record_referral` for each name it brings.
        """
        return self._uow.drive(self._ask_for_referrals(account_id, wanted, at))

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
        details: LeadDetails = {
            "email": email, "phone": phone, "campaign": campaign, "attributes": attributes,
            "at": at, "actor": actor,
        }  # fmt: skip
        return self._uow.drive(self._record_referral(referrer_id, name, request, details)).account

    def issue_referral_cards(
        self, account_id: str, *, count: int = 10, at: datetime | None = None
    ) -> ReferralCards:
        """Hand the customer ``count`` business cards carrying its referral code.

        The first batch gives the account its code (random, unique); later batches carry the
        same one, which :meth:`capture` takes as ``referral_code``.
        """
        return self._uow.drive(self._issue_referral_cards(account_id, count, at))

    def referral_stats(self) -> ReferralReport:
        """Return referral figures; see :func:`salesprocess.reports.referral_stats`."""
        return self._report(ReportRequest(reports.referral_stats))

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
        return self._uow.drive(self._learn_preference(account_id, key, value, evidence, at))

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
        return self._uow.drive(
            self._register_asset(account_id, (model, installed, expected_life_years, serial), at)
        )

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
        day = self._service_day(account_id, asset_id, repair_cost, replacement_cost, on)
        account = self.repository.get(account_id)
        return self._recommend(account, asset_id, (repair_cost, replacement_cost), day)

    def import_leads(
        self,
        rows: Iterable[Mapping[str, object]],
        *,
        channel: Channel | str,
        campaign: str | None = None,
        all_or_nothing: bool = True,
        progress: Progress | None = None,
    ) -> LeadImport:
        """Capture many leads from ``channel`` a batch at a time; see :mod:`salesprocess.imports`.

        Each row maps ``name``, ``email``, ``phone`` and optionally ``campaign``,
        ``attributes`` and ``at``. ``progress(done, total)`` hears of the rows decided.
        """
        return self._uow.drive(
            self._import_leads(rows, channel, campaign, all_or_nothing, progress)
        )

    # -- recurring revenue and the read side ------------------------------------------------

    def import_purchases(
        self,
        rows: Iterable[PurchaseRow | Mapping[str, object]],
        *,
        channel: Channel | str = Channel.INBOUND_INQUIRY,
        all_or_nothing: bool = True,
        progress: Progress | None = None,
    ) -> PurchaseImport:
        """Record many purchases a batch at a time; see :mod:`salesprocess.imports`.

        ``progress(done, total)`` hears of the rows decided.
        """
        return self._uow.drive(self._import_purchases(rows, channel, all_or_nothing, progress))

    def _report(self, query: ReportRequest[_Result]) -> _Result:
        # An adapter that answers a report itself (in SQL) has a method report_<name>; the pure
        # function over every account is the oracle it must agree with.
        report, options = query.report, query.options
        answer = getattr(self.repository, f"report_{report.__name__}", None)
        return answer(**options) if answer else report(every_account(self.repository), **options)

    def revenue(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> RevenueReport:
        """Return revenue per currency; see :func:`salesprocess.reports.revenue`."""
        return self._report(self._revenue(since, until))

    def repeat_summary(
        self, *, as_of: datetime | None = None, period: Period = "D"
    ) -> list[RepeatRow]:
        """Return repeat figures; see :func:`salesprocess.reports.repeat_summary`."""
        return self._report(self._repeat_summary(as_of, period))

    def rfm(self, *, as_of: datetime | None = None, currency: str | None = None) -> list[RfmRow]:
        """Return RFM scores and segments; see :func:`salesprocess.reports.rfm`."""
        return self._report(self._rfm(as_of, currency))

    def funnel(
        self,
        *,
        as_of: datetime | None = None,
        channel: Channel | str | None = None,
        campaign: str | None = None,
    ) -> Funnel:
        """Return the funnel; see :func:`salesprocess.reports.funnel`."""
        return self._report(self._funnel(as_of, channel, campaign))

    def lead_flow(
        self,
        *,
        period: FlowPeriodName = "week",
        target: int | None = None,
        as_of: datetime | None = None,
    ) -> list[FlowPeriod]:
        """Return the flow of leads; see :func:`salesprocess.reports.lead_flow`."""
        return self._report(self._lead_flow(period, target, as_of))

    def time_in_stage(self, *, as_of: datetime | None = None) -> Mapping[Stage, StageTime]:
        """Return median and p90 time per stage; see :func:`salesprocess.reports.time_in_stage`."""
        return self._report(self._time_in_stage(as_of))

    def stage_counts(self) -> Mapping[Stage, int]:
        """Return how many accounts are at each stage of the lifecycle (zeros included)."""
        return reports.stage_counts(self.repository.count_by_stage(), self.transitions.stages)
