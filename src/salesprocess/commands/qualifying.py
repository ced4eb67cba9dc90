"""Qualification: screening against marketing's criteria, then qualifying, and stage events.

The first stage is the criteria (:func:`screen`), the second a confirming call; the
:class:`~salesprocess.qualification.QualificationPolicy` says whether both are there
(:func:`qualify`). :func:`fire` runs any event of the lifecycle, for the plain ones
(disqualify, recycle, churn) and those a user's lifecycle adds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from salesprocess.account import Account, Screening, unchecked_screened
from salesprocess.chronology import last_at, require_in_order
from salesprocess.commands.decision import Decision, changed, recorded, unchanged
from salesprocess.criteria import Criteria
from salesprocess.errors import QualificationRefused, ValidationError
from salesprocess.events import (
    DomainEvent,
    LeadScreened,
    stage_event,
    unchecked_lead_screened,
)
from salesprocess.lifecycle import Transitions
from salesprocess.qualification import (
    LazyClauses,
    QualificationPolicy,
    QualificationReport,
    unchecked_report,
)
from salesprocess.stage import Stage

__all__ = [
    "fire",
    "qualify",
    "require_screened_before",
    "screen",
    "screen_at_stage",
    "screen_batch",
    "transition",
]


def transition(
    transitions: Transitions,
    account: Account,
    event: str,
    at: datetime,
    *extra: DomainEvent,
    approved: bool = False,
    actor: str | None = None,
    reason: str | None = None,
    **changes: object,
) -> Decision[Account]:
    """Return the decision to fire ``event`` (with ``changes``) and publish what it caused.

    A stage change publishes its :func:`~salesprocess.events.stage_event` first, then
    ``extra``; a transition to the same stage publishes only ``extra``.
    """
    after, entry = transitions.apply(
        account, event, at=at, approved=approved, actor=actor, reason=reason, **changes
    )
    if after is account:  # the same stage and nothing else changed: nothing to store
        return unchanged(account, *extra)
    events = extra if entry is None else (stage_event(account.id, entry), *extra)
    return changed(after, *events)


def fire(
    account: Account,
    moment: datetime,
    *,
    transitions: Transitions,
    event: str,
    reason: str | None,
    actor: str | None,
) -> Decision[Account]:
    """Fire ``event`` of the lifecycle on ``account``."""
    return transition(transitions, account, event, moment, actor=actor, reason=reason)


def qualify(
    account: Account,
    moment: datetime,
    *,
    transitions: Transitions,
    policy: QualificationPolicy,
    override: str | None,
    actor: str | None,
) -> Decision[Account]:
    """Qualify a prospect when ``policy`` approves, or for the ``override`` reason given.

    Raises :class:`~salesprocess.errors.QualificationRefused` listing what is missing.
    """
    if override is None and "qualify" in transitions.allowed(account.stage):
        missing = policy.missing(account, moment)
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
    return transition(
        transitions, account, "qualify", moment, approved=True, actor=actor, reason=reason
    )


def require_screened_before(accounts: Iterable[Account], moment: datetime) -> None:
    """Refuse a bulk screen at ``moment`` if any of ``accounts`` was screened after it.

    Checked for the whole list before anything is stored, so a bulk screen is refused whole.
    """
    late = [a.id for a in accounts if a.screenings and moment < a.screenings[-1].at]
    if late:
        raise ValidationError(
            f"screen_all at {moment.isoformat()} is earlier than the last screening of "
            f"{len(late)} prospects (first: account {late[0]}); screen in time order",
            field="at",
        )


def screen_at_stage(
    account: Account, moment: datetime, *, criteria: Criteria, stage: Stage
) -> Decision[QualificationReport | None]:
    """:func:`screen` an account if it is still at ``stage``; else the result is ``None``.

    An account that moved on since it was listed is left alone.
    """
    if account.stage is not stage:
        return Decision(None)
    return screen(account, moment, criteria=criteria)


def screen(
    account: Account, moment: datetime, *, criteria: Criteria
) -> Decision[QualificationReport]:
    """Screen ``account`` against ``criteria`` and record the screening."""
    require_in_order(
        account,
        "a screening",
        moment,
        since="its last screening",
        earlier=last_at(account.screenings),
    )
    # judge() takes the whole document and each clause in one pass, and reports a clause
    # that cannot be evaluated on this account's data as failed with its error, so one odd
    # record cannot stop a bulk screen.
    explanation = criteria.judge(account)
    report = QualificationReport(
        account_id=account.id,
        criteria=criteria.name,
        version=criteria.version,
        at=moment,
        passed=explanation.passed,
        clauses=explanation.clauses,
    )
    screening = Screening(moment, report.criteria, report.version, report.passed)
    return recorded(
        report,
        account.with_changes(screenings=(*account.screenings, screening)),
        LeadScreened(account.id, moment, screening),
    )


def screen_batch(
    accounts: Sequence[Account],
    moment: datetime,
    *,
    criteria: Criteria,
    stage: Stage | None,
) -> Decision[list[QualificationReport]]:
    """Screen a batch of accounts at ``moment`` as :func:`screen` screens one, all at once.

    An account no longer at ``stage`` (``None``: any stage) is left out. The verdict is the
    cheap :meth:`~salesprocess.criteria.Criteria.passes`; each report's clauses are judged
    only when read (:class:`~salesprocess.qualification.LazyClauses`). The records, events and
    reports equal one-by-one screening's.
    """
    records = {
        verdict: Screening(moment, criteria.name, criteria.version, verdict)
        for verdict in (True, False)
    }  # immutable, so every account of the batch shares the two
    writes: list[Account] = []
    events: list[DomainEvent] = []
    reports: list[QualificationReport] = []
    # The loop runs for every prospect of a bulk screen: its look-ups are hoisted.
    passes, name, version = criteria.passes, criteria.name, criteria.version
    write, publish, report = writes.append, events.append, reports.append
    for account in accounts:
        if stage is not None and account.stage is not stage:
            continue
        done = account.screenings
        if done and moment < done[-1].at:
            require_in_order(
                account, "a screening", moment, since="its last screening",
                earlier=last_at(done),
            )  # fmt: skip
        passed = passes(account)
        screening = records[passed]
        # A valid account with one more valid screening: nothing to check again.
        write(unchecked_screened(account, (*done, screening)))
        publish(unchecked_lead_screened(account.id, moment, screening))
        report(
            unchecked_report(
                account.id, name, version, moment, passed, LazyClauses(criteria, account)
            )
        )
    return Decision(reports, tuple(writes), tuple(events))
