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
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from salesprocess.account import (
    Account,
    Attributes,
    Call,
    CallOutcome,
    Channel,
    Purchase,
    Screening,
    Source,
    StageChange,
    evolve,
)
from salesprocess.clock import Clock, SystemClock, require_aware
from salesprocess.contact import normalise_email, normalise_phone
from salesprocess.errors import (
    ConflictError,
    CriteriaError,
    QualificationRefused,
    SalesProcessError,
    ValidationError,
)
from salesprocess.events import (
    CallRecorded,
    DomainEvent,
    LeadCaptured,
    LeadScreened,
    PurchaseRecorded,
    Subscriber,
    stage_changed,
)
from salesprocess.lifecycle import Lifecycle, Transitions
from salesprocess.money import Money
from salesprocess.qualification import (
    QualificationPolicy,
    QualificationReport,
    ScreenAndCallPolicy,
)
from salesprocess.stage import Stage
from salesprocess.storage.memory import InMemoryRepository

if TYPE_CHECKING:
    from statemachine import StateMachine

    from salesprocess.criteria import Criteria
    from salesprocess.rules import QualificationRule
    from salesprocess.storage.protocol import AccountRepository

__all__ = ["SalesProcess"]

_Outcome = tuple[Account, list[DomainEvent]]

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
    ``max_retries`` bounds the reload-and-retry of a command that met a concurrent write.
    """

    def __init__(
        self,
        repository: AccountRepository | None = None,
        *,
        criteria: Criteria | None = None,
        scoring: QualificationRule | None = None,
        qualification_policy: QualificationPolicy | None = None,
        lifecycle: type[StateMachine] = Lifecycle,
        clock: Clock | None = None,
        max_retries: int = 3,
        id_factory: Callable[[], str] | None = None,
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
        self.transitions = Transitions.of(lifecycle)
        self.clock: Clock = SystemClock() if clock is None else clock
        self.max_retries = max_retries
        self._new_id = id_factory or (lambda: uuid.uuid4().hex)
        self._subscribers: list[tuple[type[DomainEvent], Subscriber]] = []

    # -- events -------------------------------------------------------------------------------

    def subscribe(
        self, handler: Subscriber, event_type: type[DomainEvent] = DomainEvent
    ) -> Callable[[], None]:
        """Call ``handler`` with each stored event of ``event_type``; return an unsubscribe.

        Handlers run after the change is stored, in subscription order. An exception from a
        handler reaches the caller of the command, whose change is nevertheless stored.
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

    def _update(self, account_id: str, command: Callable[[Account], _Outcome]) -> Account:
        """Run ``command`` on a fresh copy until it is stored or retries run out."""
        for attempt in range(self.max_retries + 1):
            current = self.repository.get(account_id)
            changed, events = command(current)
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
        events: list[DomainEvent] = [] if change is None else [stage_changed(account.id, change)]
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
        channel: Channel | str,
        email: str | None = None,
        phone: str | None = None,
        campaign: str | None = None,
        attributes: Mapping[str, object] | None = None,
        at: datetime | None = None,
        actor: str | None = None,
    ) -> Account:
        """Capture a lead as a prospect, or return the known account with its email or phone.

        A lead needs an email or a phone: it is how sales reaches it and how a second capture
        of the same person is recognised. A known lead is returned unchanged.
        """
        at = self._moment(at)
        if email is None and phone is None:
            raise ValidationError(
                f"lead {name!r} has neither email nor phone: give at least one", field="email"
            )
        # Build (and so validate) the account first: a duplicate capture with bad input is
        # still bad input, even though the known account is what it returns.
        initial = self.transitions.initial
        account = Account(
            id=self._new_id(),
            name=name,
            source=Source(channel, campaign),
            created_at=at,
            email=email,
            phone=phone,
            attributes=Attributes() if attributes is None else attributes,
            stage=initial,
            history=(StageChange(None, initial, "capture", at, actor),),
        )
        known = self.find(email=account.email, phone=account.phone)
        if known is not None:
            return known
        try:
            stored = self.repository.add(account)
        except ConflictError:
            # Another writer captured the same person between our look-up and our add.
            known = self.find(email=account.email, phone=account.phone)
            if known is None:
                raise
            return known
        self._publish([LeadCaptured(stored.id, at, stored.source)])
        return stored

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

        def command(account: Account) -> _Outcome:
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
            changed = evolve(account, calls=(*account.calls, call), do_not_contact=blocked)
            return changed, [CallRecorded(account.id, call.at, call)]

        return self._update(account_id, command)

    def _criteria(self) -> Criteria:
        if self.criteria is None:
            raise SalesProcessError(
                "no marketing criteria: create the process with SalesProcess(criteria=...)"
            )
        return self.criteria

    def _report(self, account: Account, at: datetime) -> QualificationReport:
        criteria = self._criteria()
        # explain() judges the whole document and each clause in one pass, and reports a
        # clause that cannot be evaluated on this account's data as failed with its error, so
        # one odd record cannot stop a bulk screen.
        explanation = criteria.explain(account)
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
        report = self._screen(account_id, self._moment(at), only=None)
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
        self, account_id: str, moment: datetime, *, only: Stage | None
    ) -> QualificationReport | None:
        reports: list[QualificationReport] = []

        def command(account: Account) -> _Outcome:
            if only is not None and account.stage is not only:
                return account, []
            if account.screenings and moment < account.screenings[-1].at:
                raise ValidationError(
                    f"account {account.id}: screen at {moment.isoformat()} is before its last "
                    f"screen at {account.screenings[-1].at.isoformat()}; screen in time order",
                    field="at",
                )
            report = self._report(account, moment)
            reports.append(report)
            screening = Screening(moment, report.criteria, report.version, report.passed)
            changed = evolve(account, screenings=(*account.screenings, screening))
            return changed, [LeadScreened(account.id, moment, screening)]

        self._update(account_id, command)
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
        moment = self._moment(at)
        if override is not None and (not isinstance(override, str) or not override.strip()):
            raise ValidationError("override must be a non-empty reason", field="override")

        def command(account: Account) -> _Outcome:
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

        return self._update(account_id, command)

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
        moment = self._moment(at)
        return self._update(
            account_id,
            lambda account: self._fire(account, event, moment, actor=actor, reason=reason),
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
        purchase = Purchase(amount, self._moment(at), reference)

        def command(account: Account) -> _Outcome:
            if account.purchases and purchase.at < account.purchases[-1].at:
                raise ValidationError(
                    f"account {account.id}: purchase at {purchase.at.isoformat()} is before its "
                    f"last purchase at {account.purchases[-1].at.isoformat()}; record purchases "
                    "in order",
                    field="at",
                )
            return self._fire(
                account,
                "purchase",
                purchase.at,
                actor=actor,
                extra=[PurchaseRecorded(account.id, purchase.at, purchase)],
                purchases=(*account.purchases, purchase),
            )

        return self._update(account_id, command)

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
