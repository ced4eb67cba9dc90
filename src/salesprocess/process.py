"""The service layer: ``SalesProcess``, the commands a sales team runs.

Each command loads an account, lets the pure domain decide (lifecycle, policy, rules), stores
the result only if nobody wrote in between, and then publishes the domain events. A stale
write is retried on a fresh copy a bounded number of times before
:class:`~salesprocess.errors.ConflictError` reaches the caller. A refused command raises before
anything is stored, so the stored account stays exactly as it was.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

import attrs

from salesprocess.account import (
    Account,
    Asset,
    Attributes,
    Call,
    CallOutcome,
    Channel,
    HistoryEntry,
    Preference,
    Purchase,
    Referral,
    ReferralCards,
    ReferralRequest,
    Screening,
    Source,
    unchecked_copy,
    unchecked_history_entry,
)
from salesprocess.clock import Clock, SystemClock, require_aware, utc_day
from salesprocess.contact import normalise_email, normalise_phone
from salesprocess.customer_service import (
    RepairOrReplacePolicy,
    ServicePolicy,
    ServiceRecommendation,
)
from salesprocess.errors import (
    ConflictError,
    CriteriaError,
    InvalidTransition,
    NotFound,
    QualificationRefused,
    SalesProcessError,
    ValidationError,
)
from salesprocess.events import (
    AssetRegistered,
    CallRecorded,
    DomainEvent,
    LeadCaptured,
    LeadScreened,
    PreferenceLearned,
    PurchaseRecorded,
    ReferralCardsIssued,
    ReferralRecorded,
    ReferralRequested,
    Subscriber,
    stage_event,
)
from salesprocess.lifecycle import Lifecycle, Transitions, history_runs_backwards
from salesprocess.money import Money
from salesprocess.qualification import (
    QualificationPolicy,
    QualificationReport,
    ScreenAndCallPolicy,
)
from salesprocess.referral_codes import new_referral_code, normalise_referral_code
from salesprocess.reports.referrals import ReferralReport, referral_stats
from salesprocess.stage import Stage
from salesprocess.storage.memory import InMemoryRepository

if TYPE_CHECKING:
    from statemachine import StateMachine

    from salesprocess.criteria import Criteria
    from salesprocess.rules import QualificationRule
    from salesprocess.storage.protocol import AccountRepository

__all__ = ["SalesProcess"]

_Outcome = tuple[Account, list[DomainEvent]]

#: How many referral codes to draw before giving up on finding a free one.
_CODE_DRAWS = 8

# Outcomes after which the account is not called again unprompted.
_DO_NOT_REDIAL = frozenset(
    {CallOutcome.NOT_INTERESTED, CallOutcome.WRONG_CONTACT, CallOutcome.DO_NOT_CALL}
)


class SalesProcess:
    """The sales process over one account store.

    ``repository`` defaults to a fresh :class:`~salesprocess.storage.InMemoryRepository`.
    ``criteria`` are marketing's prospect criteria (needed by :meth:`screen` and
    :meth:`call_list`); ``scoring`` an optional rule whose score ranks the call list;
    ``qualification_policy`` decides :meth:`qualify` (default: :class:`ScreenAndCallPolicy`).
    ``lifecycle`` may be a subclass of :class:`~salesprocess.lifecycle.Lifecycle`.
    ``service_policy`` decides :meth:`recommend_service` (default:
    :class:`~salesprocess.customer_service.RepairOrReplacePolicy`). ``max_retries`` bounds the
    reload-and-retry of a command that met a concurrent write. ``id_factory`` makes ids (of
    accounts, referral requests and assets; default: random UUIDs) and ``code_factory``
    referral codes (default: :func:`~salesprocess.referral_codes.new_referral_code`).
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
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValidationError(
                f"max_retries must be a non-negative int, got {max_retries!r}", field="max_retries"
            )
        self.repository: AccountRepository = (
            InMemoryRepository() if repository is None else repository
        )
        self.criteria = criteria
        self.scoring = scoring
        self.qualification_policy: QualificationPolicy = (
            ScreenAndCallPolicy() if qualification_policy is None else qualification_policy
        )
        self.service_policy: ServicePolicy = (
            RepairOrReplacePolicy() if service_policy is None else service_policy
        )
        self.transitions = Transitions.of(lifecycle)
        self.clock: Clock = SystemClock() if clock is None else clock
        self.max_retries = max_retries
        self._new_id = id_factory or (lambda: uuid.uuid4().hex)
        self._new_code = code_factory or new_referral_code
        self._subscribers: list[tuple[type[DomainEvent], Subscriber]] = []

    # -- events -------------------------------------------------------------------------------

    def subscribe(
        self, handler: Subscriber, event_type: type[DomainEvent] = DomainEvent
    ) -> Callable[[], None]:
        """Call ``handler`` with each stored event of ``event_type``; return an unsubscribe.

        Handlers run after the change is stored, in subscription order. An exception from a
        handler reaches the caller of the command, whose change is nevertheless stored.

        A command run inside your own ``repository.atomic()`` block publishes when the command
        is done, before your block commits: if your block then fails and rolls back, the events
        describe changes that were undone. Subscribe outside such blocks, or collect the events
        and act on them once your block has committed.
        """
        entry = (event_type, handler)
        self._subscribers.append(entry)

        def unsubscribe() -> None:
            if entry in self._subscribers:
                self._subscribers.remove(entry)

        return unsubscribe

    def _publish(self, events: Iterable[DomainEvent]) -> None:
        for event in events:
            for event_type, handler in list(self._subscribers):
                if isinstance(event, event_type):
                    handler(event)

    # -- plumbing -----------------------------------------------------------------------------

    def _moment(self, at: datetime | None) -> datetime:
        return self.clock.now() if at is None else require_aware(at)

    def _update(
        self,
        account_id: str,
        at: datetime | None,
        command: Callable[[Account, datetime], _Outcome],
    ) -> Account:
        """Run ``command`` on a fresh copy at ``at`` until it is stored or retries run out.

        ``at`` ``None`` means now: the clock is read for each attempt, after the fresh copy is
        loaded, so that a command retried after a concurrent write is stamped after that write
        (and not refused for being earlier than it). A given ``at`` is checked before anything
        is read, as commands check the rest of their input: bad input is reported as such, even
        for an unknown account.
        """
        if at is not None:
            require_aware(at)
        for attempt in range(self.max_retries + 1):
            current = self.repository.get(account_id)
            changed, events = command(current, self._moment(at))
            if changed is current:
                self._publish(events)
                return current
            try:
                stored = self.repository.save(changed, expected_version=current.version)
            except ConflictError as error:
                if attempt < self.max_retries:
                    continue
                raise ConflictError(
                    f"account {account_id}: gave up after {attempt + 1} attempts, each "
                    f"overtaken by a concurrent write ({error})"
                ) from error
            self._publish(events)
            return stored
        raise AssertionError("unreachable")  # pragma: no cover

    def _fire(
        self,
        account: Account,
        event: str,
        at: datetime,
        *,
        approved: bool = False,
        actor: str | None = None,
        reason: str | None = None,
        extra: list[DomainEvent] | None = None,
        **changes: object,
    ) -> _Outcome:
        changed, change = self.transitions.apply(
            account, event, at=at, approved=approved, actor=actor, reason=reason, **changes
        )
        events: list[DomainEvent] = [] if change is None else [stage_event(account.id, change)]
        return changed, events + (extra or [])

    # -- queries ------------------------------------------------------------------------------

    def get(self, account_id: str) -> Account:
        """Return the account with ``account_id``; raise ``NotFound`` if there is none."""
        return self.repository.get(account_id)

    def find(self, *, email: str | None = None, phone: str | None = None) -> Account | None:
        """Return the account with this email or phone (normalised first), if any."""
        if email is not None:
            found = self.repository.find_by_email(normalise_email(email))
            if found is not None:
                return found
        if phone is not None:
            return self.repository.find_by_phone(normalise_phone(phone))
        return None

    # -- lead generation ----------------------------------------------------------------------

    def capture_lead(
        self,
        name: str,
        *,
        channel: Channel | str | None = None,
        email: str | None = None,
        phone: str | None = None,
        campaign: str | None = None,
        attributes: Mapping[str, object] | None = None,
        referral_code: str | None = None,
        at: datetime | None = None,
        actor: str | None = None,
    ) -> Account:
        """Capture a lead as a prospect, or return the known account with its email or phone.

        A lead needs an email or a phone: it is how sales reaches it and how a second capture
        of the same person is recognised. A known lead is returned unchanged.

        ``referral_code`` (from a referrer's business card) attributes the lead to the account
        holding the code, as :meth:`record_referral` does: the channel is then
        ``Channel.REFERRAL`` (the default), and a known lead is linked to the referrer instead
        of duplicated. An unknown code, or the referrer's own contact details, raise
        ``ValidationError``. Without a code, ``channel`` is required.
        """
        at_given, at = at, self._moment(at)
        code = None if referral_code is None else normalise_referral_code(referral_code)
        if code is not None:
            if channel is not None and Channel.parse(channel) is not Channel.REFERRAL:
                raise ValidationError(
                    f"lead {name!r} brings referral code {code}, so it comes through the "
                    f"referral channel, not {Channel.parse(channel).value}",
                    field="channel",
                )
            channel = Channel.REFERRAL
        elif channel is None:
            raise ValidationError(
                f"lead {name!r} needs a channel (or a referral code)", field="channel"
            )
        account = self._new_lead(
            name,
            channel,
            email=email,
            phone=phone,
            campaign=campaign,
            attributes=attributes,
            at=at,
            actor=actor,
        )
        if code is not None:
            return self._admit_referral(account, at_given, code=code, actor=actor)
        known = self._known(account)
        if known is not None:
            return known
        try:
            stored = self.repository.add(account)
        except ConflictError:
            # Another writer captured the same person between our look-up and our add.
            known = self._known(account)
            if known is None:
                raise
            return known
        self._publish([LeadCaptured(stored.id, at, stored.source)])
        return stored

    def _new_lead(
        self,
        name: str,
        channel: Channel | str,
        *,
        email: str | None,
        phone: str | None,
        campaign: str | None,
        attributes: Mapping[str, object] | None,
        at: datetime,
        actor: str | None,
    ) -> Account:
        # Built (and so validated) before any look-up: a duplicate capture with bad input is
        # still bad input, even though the known account is what it returns.
        if email is None and phone is None:
            raise ValidationError(
                f"lead {name!r} has neither email nor phone: give at least one", field="email"
            )
        initial = self.transitions.initial
        return Account(
            id=self._new_id(),
            name=name,
            source=Source(channel, campaign),
            created_at=at,
            email=email,
            phone=phone,
            attributes=Attributes() if attributes is None else attributes,
            stage=initial,
            history=(HistoryEntry(None, initial, "capture", at, actor),),
        )

    def _known(self, lead: Account) -> Account | None:
        """Return the stored account with ``lead``'s email or else its phone, if any.

        The duplicate check asks the index for an id first, so that the usual answer for a new
        lead ("nobody") costs one indexed query and no decoding.
        """
        for key, value in (("email", lead.email), ("phone", lead.phone)):
            if value is not None:
                found = self.repository.find_id(**{key: value})
                if found is not None:
                    with contextlib.suppress(NotFound):  # removed since: keep looking
                        return self.repository.get(found)
        return None

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
        checked = Call(outcome, self._moment(at), notes, callback_at)

        def command(account: Account, moment: datetime) -> _Outcome:
            call = _at(checked, moment)
            # Calls are kept in time order: "the latest call" must mean the latest made.
            if account.calls:
                previous, what = account.calls[-1].at, "its last call"
            else:
                previous, what = account.created_at, "the lead was captured"
            if call.at < previous:
                raise ValidationError(
                    f"account {account.id}: call at {call.at.isoformat()} is before {what} "
                    f"({previous.isoformat()}); record calls in order",
                    field="at",
                )
            blocked = account.do_not_contact or call.outcome is CallOutcome.DO_NOT_CALL
            changed = unchecked_copy(account, calls=(*account.calls, call), do_not_contact=blocked)
            return changed, [CallRecorded(account.id, call.at, call)]

        return self._update(account_id, at, command)

    def _criteria(self) -> Criteria:
        if self.criteria is None:
            raise SalesProcessError(
                "no marketing criteria: create the process with SalesProcess(criteria=...)"
            )
        return self.criteria

    def _report(self, account: Account, at: datetime) -> QualificationReport:
        criteria = self._criteria()
        # judge() judges the whole document and each clause in one pass, and reports a
        # clause that cannot be evaluated on this account's data as failed with its error, so
        # one odd record cannot stop a bulk screen.
        explanation = criteria.judge(account)
        return QualificationReport(
            account_id=account.id,
            criteria=criteria.name,
            version=criteria.version,
            at=at,
            passed=explanation.passed,
            clauses=explanation.clauses,
        )

    def screen(self, account_id: str, *, at: datetime | None = None) -> QualificationReport:
        """Screen the account against the marketing criteria, record it, and return the report."""
        report = self._screen(account_id, at, only=None)
        assert report is not None  # only a screen restricted to a stage can skip
        return report

    def screen_all(self, *, at: datetime | None = None) -> list[QualificationReport]:
        """Screen every prospect, record each screening, and return the reports in bulk.

        Refused as a whole, before anything is stored, when ``at`` is earlier than a prospect's
        last screening. A prospect that moves on while the bulk runs is left out.
        """
        moment = self._moment(at)
        prospect = self.transitions.initial
        prospects = list(self.repository.with_stage(prospect))
        late = [a.id for a in prospects if a.screenings and moment < a.screenings[-1].at]
        if late:
            raise ValidationError(
                f"screen_all at {moment.isoformat()} is earlier than the last screening of "
                f"{len(late)} prospects (first: account {late[0]}); screen in time order",
                field="at",
            )
        reports = (self._screen(account.id, moment, only=prospect) for account in prospects)
        return [report for report in reports if report is not None]

    def _screen(
        self, account_id: str, at: datetime | None, *, only: Stage | None
    ) -> QualificationReport | None:
        reports: list[QualificationReport] = []

        def command(account: Account, moment: datetime) -> _Outcome:
            reports.clear()  # a report of an attempt that was overtaken was never stored
            if only is not None and account.stage is not only:
                return account, []
            _in_order(account, moment, account.screenings, "screenings")
            report = self._report(account, moment)
            reports.append(report)
            screening = Screening(moment, report.criteria, report.version, report.passed)
            changed = unchecked_copy(account, screenings=(*account.screenings, screening))
            return changed, [LeadScreened(account.id, moment, screening)]

        self._update(account_id, at, command)
        return reports[-1] if reports else None

    def call_list(self, *, limit: int = 50, at: datetime | None = None) -> list[Account]:
        """Return prospects that pass the criteria and may be called now, best first.

        Excluded: do-not-contact accounts, accounts whose latest call was NOT_INTERESTED or
        WRONG_CONTACT, call-backs not yet due, and leads already confirmed INTERESTED (their
        next step is ``qualify``, not another call). Ranked by ``scoring``'s score (when
        given), then oldest first.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError(f"limit must be a positive int, got {limit!r}", field="limit")
        moment = self._moment(at)
        criteria = self._criteria()
        ranked: list[tuple[float, datetime, str, Account]] = []
        for account in self.repository.with_stage(self.transitions.initial):
            if account.do_not_contact or not _may_call(account, moment):
                continue
            try:
                if not criteria.evaluate(account).passed:
                    continue
            except CriteriaError:
                continue  # data the criteria cannot judge is no reason to call
            score = 0.0
            # A rule that cannot judge this record ranks it last; it does not sink the list.
            if self.scoring is not None:
                with contextlib.suppress(CriteriaError):
                    score = self.scoring.evaluate(account).score
            ranked.append((-score, account.created_at, account.id, account))
        ranked.sort(key=lambda entry: entry[:3])
        return [entry[3] for entry in ranked[:limit]]

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
        if override is not None and (not isinstance(override, str) or not override.strip()):
            raise ValidationError("override must be a non-empty reason", field="override")

        def command(account: Account, moment: datetime) -> _Outcome:
            if override is None and "qualify" in self.transitions.allowed(account.stage):
                missing = self.qualification_policy.missing(account, moment)
                if missing:
                    raise QualificationRefused(
                        f"account {account.id} ({account.name}) cannot be qualified yet; "
                        f"missing: {'; '.join(missing)}. A caller with the authority can "
                        "pass override='reason'",
                        account_id=account.id,
                        stage=account.stage,
                        missing=missing,
                    )
            reason = None if override is None else f"override: {override}"
            return self._fire(account, "qualify", moment, approved=True, actor=actor, reason=reason)

        return self._update(account_id, at, command)

    def disqualify(
        self, account_id: str, reason: str, *, at: datetime | None = None, actor: str | None = None
    ) -> Account:
        """Disqualify a prospect or qualified lead, for ``reason``."""
        return self._simple(account_id, "disqualify", reason, at, actor)

    def recycle(
        self, account_id: str, reason: str, *, at: datetime | None = None, actor: str | None = None
    ) -> Account:
        """Send a disqualified account back to prospect, for ``reason``."""
        return self._simple(account_id, "recycle", reason, at, actor)

    def churn(
        self, account_id: str, reason: str, *, at: datetime | None = None, actor: str | None = None
    ) -> Account:
        """Mark a customer as lost, for ``reason``."""
        return self._simple(account_id, "churn", reason, at, actor)

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
        return self._update(
            account_id,
            at,
            lambda account, moment: self._fire(account, event, moment, actor=actor, reason=reason),
        )

    def _simple(
        self, account_id: str, event: str, reason: str, at: datetime | None, actor: str | None
    ) -> Account:
        if not isinstance(reason, str) or not reason.strip():
            raise ValidationError(f"{event} needs a non-empty reason", field="reason")
        return self.fire(account_id, event, reason=reason, at=at, actor=actor)

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

        A zero amount is allowed; a negative one, or one before the account's last purchase,
        is refused.
        """
        checked = Purchase(amount, self._moment(at), reference)

        def command(account: Account, moment: datetime) -> _Outcome:
            purchase = _at(checked, moment)
            _in_order(account, moment, account.purchases, "purchases")
            return self._fire(
                account,
                "purchase",
                purchase.at,
                actor=actor,
                extra=[PurchaseRecorded(account.id, purchase.at, purchase)],
                purchases=(*account.purchases, purchase),
            )

        return self._update(account_id, at, command)

    # -- referrals ----------------------------------------------------------------------------

    def _may_refer(self, account: Account, what: str) -> None:
        if "refer" in self.transitions.allowed(account.stage):
            return
        if "refer" in self.transitions.events:
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
        self,
        account_id: str,
        *,
        wanted: int = 5,
        at: datetime | None = None,
    ) -> ReferralRequest:
        """Record that the customer was asked for ``wanted`` names; return the request.

        Pass the request's id to :meth:`record_referral` for each name it brings, so that the
        answers are counted against the ask.
        """
        checked = ReferralRequest(self._new_id(), self._moment(at), wanted)
        made: list[ReferralRequest] = []

        def command(account: Account, moment: datetime) -> _Outcome:
            request = _at(checked, moment)
            self._may_refer(account, "be asked for referrals")
            _in_order(account, moment, account.referral_requests, "asks")
            made.append(request)
            changed = unchecked_copy(
                account, referral_requests=(*account.referral_requests, request)
            )
            return changed, [ReferralRequested(account.id, moment, request)]

        self._update(account_id, at, command)
        return made[-1]

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
        """Record a name the referrer gave: a new prospect, referred by ``referrer_id``.

        One unit of work, stored all or nothing: the lead is added (or, when its email or phone
        is known, the known account is linked instead of duplicated) and the referral is kept
        on the referrer; a customer's first referral makes it a referrer. ``request`` is the id
        of the :meth:`ask_for_referrals` request it answers. Returns the referred account.

        Whoever gives the name is credited with it; only a referrer's stage depends on the
        lifecycle (a prospect or a churned customer who names someone stays where it is).
        """
        if not isinstance(referrer_id, str) or not referrer_id.strip():
            raise ValidationError(
                f"referrer_id must be an account id, got {referrer_id!r}", field="referrer_id"
            )
        if request is not None and (not isinstance(request, str) or not request.strip()):
            raise ValidationError(f"request must be a request id, got {request!r}", field="request")
        lead = self._new_lead(
            name,
            Channel.REFERRAL,
            email=email,
            phone=phone,
            campaign=campaign,
            attributes=attributes,
            at=self._moment(at),
            actor=actor,
        )
        return self._admit_referral(lead, at, referrer_id=referrer_id, request=request, actor=actor)

    def _admit_referral(
        self,
        lead: Account,
        at: datetime | None,
        *,
        referrer_id: str | None = None,
        code: str | None = None,
        request: str | None = None,
        actor: str | None = None,
    ) -> Account:
        """Store ``lead`` as referred (or link the known account it is), all or nothing.

        With ``at`` ``None`` the lead is stamped anew for each attempt, inside the unit of work
        (as :meth:`_update` does), so a retry after a concurrent referral comes after it.
        """
        # Unlike _update, which retries only a stale save, any conflict inside the unit is
        # retried: a concurrent capture of the same lead makes the add fail, and the retry
        # then links the account that writer stored.
        for attempt in range(self.max_retries + 1):
            events: list[DomainEvent] = []
            try:
                with self.repository.atomic():
                    referrer = self._referrer(referrer_id, code)
                    if at is None:
                        lead = _restamped(lead, self.clock.now())
                    referred = self._refer(
                        referrer, lead, request=request, code=code, actor=actor, events=events
                    )
            except ConflictError as error:
                if attempt < self.max_retries:
                    continue
                raise ConflictError(
                    f"referral by {referrer_id or code}: gave up after {attempt + 1} attempts, "
                    f"each overtaken by a concurrent write ({error})"
                ) from error
            self._publish(events)
            return referred
        raise AssertionError("unreachable")  # pragma: no cover

    def _referrer(self, referrer_id: str | None, code: str | None) -> Account:
        if referrer_id is not None:
            return self.repository.get(referrer_id)
        referrer = None if code is None else self.repository.find_by_referral_code(code)
        if referrer is None:
            raise ValidationError(
                f"no account holds referral code {code}: check the card", field="referral_code"
            )
        return referrer

    def _refer(
        self,
        referrer: Account,
        lead: Account,
        *,
        request: str | None,
        code: str | None,
        actor: str | None,
        events: list[DomainEvent],
    ) -> Account:
        at = lead.created_at
        if request is not None and all(r.id != request for r in referrer.referral_requests):
            raise ValidationError(
                f"account {referrer.id} was never asked for referrals with request {request!r}",
                field="request",
            )
        _in_order(referrer, at, referrer.referrals, "referrals")
        known = self._known(lead)
        if known is not None and known.id == referrer.id:
            same_email = lead.email is not None and lead.email == referrer.email
            raise ValidationError(
                f"account {referrer.id} ({referrer.name}) cannot refer itself: the lead's "
                f"{'email' if same_email else 'phone'} is its own",
                field="email" if same_email else "phone",
            )
        if known is not None and any(r.account_id == known.id for r in referrer.referrals):
            return known  # referred before by the same referrer: nothing new to record
        if known is None:
            source = Source(Channel.REFERRAL, lead.source.campaign, referrer.id)
            referred = self.repository.add(unchecked_copy(lead, source=source))
            events.append(LeadCaptured(referred.id, at, referred.source))
        else:
            referred = known
        referral = Referral(referred.id, at, request, code, new=known is None)
        recorded = ReferralRecorded(referrer.id, at, referral)
        referrals = (*referrer.referrals, referral)
        if "refer" in self.transitions.allowed(referrer.stage):
            changed, fired = self._fire(
                referrer, "refer", at, actor=actor, extra=[recorded], referrals=referrals
            )
        elif at < referrer.last_change_at:  # no stage change, but no going back either
            raise history_runs_backwards(referrer, "referral", at)
        else:
            changed, fired = unchecked_copy(referrer, referrals=referrals), [recorded]
        self.repository.save(changed, expected_version=referrer.version)
        events.extend(fired)
        return referred

    def issue_referral_cards(
        self, account_id: str, *, count: int = 10, at: datetime | None = None
    ) -> ReferralCards:
        """Hand the customer ``count`` business cards carrying its referral code.

        The first batch gives the account its code (random, unique); later batches carry the
        same one. A lead captured with ``capture_lead(..., referral_code=cards.code)`` is then
        attributed to this account.
        """
        # Checked before anything is read; the code is the account's, known only once it is.
        checked = ReferralCards("CARD", count, self._moment(at))
        issued: list[ReferralCards] = []

        def command(account: Account, moment: datetime) -> _Outcome:
            self._may_refer(account, "hand out referral cards")
            _in_order(account, moment, account.referral_cards, "card batches")
            code = account.referral_code or self._unused_code()
            cards = attrs.evolve(checked, code=code, at=moment)
            issued.append(cards)
            changed = unchecked_copy(
                account,
                referral_code=cards.code,
                referral_cards=(*account.referral_cards, cards),
            )
            return changed, [ReferralCardsIssued(account.id, moment, cards)]

        self._update(account_id, at, command)
        return issued[-1]

    def _unused_code(self) -> str:
        """Draw codes until one is free (a clash is rare: 31**8 codes), a few times at most."""
        for _ in range(_CODE_DRAWS):
            code = normalise_referral_code(self._new_code())
            if self.repository.find_id(referral_code=code) is None:
                return code
        raise ConflictError(
            f"{_CODE_DRAWS} referral codes drawn in a row were all taken: does the "
            "code_factory return new codes?"
        )

    def referral_stats(self) -> ReferralReport:
        """Return referrals, conversions and K-factor, overall and per referrer.

        See :func:`~salesprocess.reports.referrals.referral_stats` for the definitions.
        """
        return referral_stats(self._accounts())

    def _accounts(self) -> Iterator[Account]:
        after: str | None = None
        while True:
            page = self.repository.page(after=after, limit=1000)
            yield from page
            if len(page) < 1000:
                return
            after = page[-1].id

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
        """Keep something the customer values in its service profile (latest answer wins).

        ``key`` names the question (``"equipment_strategy"``), ``value`` the answer
        (``"repair_over_upgrade"``), ``evidence`` what showed it.
        """
        checked = Preference(key, value, self._moment(at), evidence)

        def command(account: Account, moment: datetime) -> _Outcome:
            preference = _at(checked, moment)
            _in_order(account, moment, account.preferences, "preferences")
            changed = unchecked_copy(account, preferences=(*account.preferences, preference))
            return changed, [PreferenceLearned(account.id, moment, preference)]

        return self._update(account_id, at, command)

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

        def command(account: Account, moment: datetime) -> _Outcome:
            changed = unchecked_copy(account, assets=(*account.assets, asset))
            return changed, [AssetRegistered(account.id, moment, asset)]

        self._update(account_id, at, command)
        return asset

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

        ``on`` is the day it broke (default: today, UTC). Raises ``NotFound`` for an asset the
        account does not have. Nothing is stored: the recommendation is advice to act on.
        """
        account = self.repository.get(account_id)
        asset = account.asset(asset_id)
        if asset is None:
            raise NotFound(f"account {account_id} has no asset {asset_id!r}")
        day = utc_day(self.clock.now()) if on is None else on
        return self.service_policy.recommend(
            account, asset, repair_cost=repair_cost, replacement_cost=replacement_cost, on=day
        )

    def stage_counts(self) -> Mapping[Stage, int]:
        """Return how many accounts are at each stage of the lifecycle (zeros included)."""
        counts = self.repository.count_by_stage()
        return {stage: counts.get(stage, 0) for stage in self.transitions.stages}


def _may_call(account: Account, at: datetime) -> bool:
    if not account.calls:
        return True
    latest = account.calls[-1]
    if latest.outcome in _DO_NOT_REDIAL:
        return False
    if latest.outcome is CallOutcome.CALL_BACK:
        return latest.callback_at is not None and latest.callback_at <= at
    return latest.outcome is not CallOutcome.INTERESTED


class _Dated(Protocol):
    @property
    def at(self) -> datetime: ...


def _in_order(account: Account, at: datetime, records: Sequence[_Dated], what: str) -> None:
    # Records are kept in time order, so that "the latest" always means the latest made.
    if records and at < records[-1].at:
        raise ValidationError(
            f"account {account.id}: {at.isoformat()} is before the last of its {what} "
            f"({records[-1].at.isoformat()}); record {what} in order",
            field="at",
        )


_Stamped = TypeVar("_Stamped", Call, Purchase, Preference, ReferralRequest)


def _at(record: _Stamped, moment: datetime) -> _Stamped:
    """Return ``record`` (checked when the command began) as made at ``moment``."""
    return record if record.at is moment else attrs.evolve(record, at=moment)


def _restamped(lead: Account, moment: datetime) -> Account:
    """Return ``lead`` (a new account, not yet stored) as captured at ``moment`` instead."""
    first = lead.history[0]
    entry = unchecked_history_entry(
        None, first.to_stage, first.event, moment, first.actor, first.reason
    )
    return unchecked_copy(lead, created_at=moment, history=(entry,))
