"""Screening in bulk: every prospect (or a list of accounts), a batch at a time.

Each batch is one unit of work: its accounts read once (the listing's read serves the first
attempt), decided together by :func:`~salesprocess.commands.qualifying.screen_batch`, saved in
one transaction, their events published after it commits. The records, events and reports are
those one-by-one screening gives; the explanations wait until they are read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Final

from salesprocess.account import Account, Screening
from salesprocess.commands.qualifying import require_screened_before, screen_batch
from salesprocess.criteria import Criteria
from salesprocess.criteria_sql import prefilter, translates
from salesprocess.errors import NotFound
from salesprocess.events import DomainEvent, LeadScreened, unchecked_lead_screened
from salesprocess.qualification import LazyClauses, QualificationReport, unchecked_report
from salesprocess.stage import Stage
from salesprocess.storage.selection import BulkScreening, Key, ScreenedOut
from salesprocess.unit_of_work import Steps, UnitOfWork, Work, call, collector_paused

__all__ = ["SCREEN_BATCH", "Progress", "screen_accounts", "screen_stage", "screening"]

#: Accounts per batch (per transaction).
SCREEN_BATCH: Final = 1000

#: Called after each batch with the accounts screened so far and how many there are.
Progress = Callable[[int, int], None]


def _loader(batch: Sequence[Account]) -> Callable[[], Steps[list[Account]]]:
    """Serve the listing's read first; a retry (someone wrote meanwhile) reads afresh."""
    first = [list(batch)]

    def load() -> Steps[list[Account]]:
        if first:
            return first.pop()
        fresh = []
        for account in batch:
            with contextlib.suppress(NotFound):
                fresh.append((yield call("get", account.id)))
        return fresh

    return load


def screen_accounts(
    uow: UnitOfWork,
    accounts: Sequence[Account],
    *,
    criteria: Criteria,
    stage: Stage | None,
    moment: datetime,
    progress: Progress | None = None,
    batch_size: int = SCREEN_BATCH,
) -> list[QualificationReport]:
    """Screen ``accounts`` (those still at ``stage``) at ``moment``: run :func:`screening`."""
    with collector_paused():  # not in screening(): an async run must not pause the loop's
        return uow.drive(
            screening(
                uow, accounts, criteria=criteria, stage=stage, moment=moment,
                progress=progress, batch_size=batch_size,
            )
        )  # fmt: skip


def screening(
    work: Work,
    accounts: Sequence[Account],
    *,
    criteria: Criteria,
    stage: Stage | None,
    moment: datetime,
    progress: Progress | None = None,
    batch_size: int = SCREEN_BATCH,
) -> Steps[list[QualificationReport]]:
    """Return the steps that screen ``accounts`` (those still at ``stage``) at ``moment``.

    Refused as a whole, before anything is stored, when ``moment`` is earlier than an
    account's last screening.
    """
    require_screened_before(accounts, moment)
    reports: list[QualificationReport] = []
    decide = partial(screen_batch, criteria=criteria, stage=stage)
    for start in range(0, len(accounts), batch_size):
        batch = accounts[start : start + batch_size]
        reports.extend((yield from work.attempts(_loader(batch), decide, at=moment)))
        if progress is not None:
            progress(min(start + batch_size, len(accounts)), len(accounts))
    return reports


def screen_stage(
    uow: UnitOfWork,
    *,
    criteria: Criteria,
    stage: Stage,
    moment: datetime,
    progress: Progress | None = None,
    batch_size: int = SCREEN_BATCH,
) -> list[QualificationReport]:
    """Screen every account at ``stage`` at ``moment``, oldest first, a batch at a time.

    With a repository that is a :class:`~salesprocess.storage.selection.BulkScreening` and
    criteria that translate (:mod:`salesprocess.criteria_sql`), the store decides in SQL
    the prospects whose verdict the prefilter makes certain and records their screening
    without decoding them; the criteria judge the rest in Python. Otherwise every prospect is
    read and judged in Python (:func:`screen_accounts`). The records, events and reports are
    the same either way.
    """
    repository = uow.repository
    check = prefilter(criteria)
    if not (isinstance(repository, BulkScreening) and translates(check)):
        prospects = list(repository.with_stage(stage))
        return screen_accounts(
            uow, prospects, criteria=criteria, stage=stage, moment=moment,
            progress=progress, batch_size=batch_size,
        )  # fmt: skip
    latest = repository.latest_screening(stage=stage)
    if latest is not None and moment < latest:
        require_screened_before(repository.with_stage(stage), moment)  # names who, raises
    total = repository.count_by_stage().get(stage, 0)
    failed = Screening(moment, criteria.name, criteria.version, False)
    passed = Screening(moment, criteria.name, criteria.version, True)
    reports: list[QualificationReport] = []
    after: Key | None = None
    done = 0
    with collector_paused():
        while True:
            with repository.atomic():
                page = repository.screen_out(
                    check, stage=stage, passed=passed, failed=failed, after=after,
                    limit=batch_size,
                )  # fmt: skip
                judged = screen_batch(page.undecided, moment, criteria=criteria, stage=stage)
                for account in judged.writes:
                    repository.save(account, expected_version=account.version)
                batch, events = _merged(
                    page, judged.result, judged.events, criteria, (failed, passed)
                )
                if events:
                    repository.after_commit(partial(uow.bus.publish, events))
            reports.extend(batch)
            done += len(page.order)
            if progress is not None and page.order:
                progress(min(done, max(total, done)), max(total, done))
            if page.after is None:
                return reports
            after = page.after


def _merged(
    page: ScreenedOut,
    judged: Sequence[QualificationReport],
    judged_events: Sequence[DomainEvent],
    criteria: Criteria,
    records: tuple[Screening, Screening],
) -> tuple[list[QualificationReport], tuple[DomainEvent, ...]]:
    """Return the page's reports and events in its accounts' order, as one by one gives them."""
    reports = {report.account_id: report for report in judged}
    events = {e.account_id: e for e in judged_events if isinstance(e, LeadScreened)}
    in_order: list[QualificationReport] = []
    published: list[DomainEvent] = []
    name, version = criteria.name, criteria.version
    for account_id in page.order:
        decided = page.decided.get(account_id)
        if decided is not None:
            verdict, stored = decided
            record = records[verdict]
            in_order.append(
                unchecked_report(
                    account_id, name, version, record.at, verdict, LazyClauses(criteria, stored)
                )
            )
            published.append(unchecked_lead_screened(account_id, record.at, record))
        elif account_id in reports:
            in_order.append(reports[account_id])
            published.append(events[account_id])
    return in_order, tuple(published)
