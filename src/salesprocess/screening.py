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

from salesprocess.account import Account
from salesprocess.commands.qualifying import require_screened_before, screen_batch
from salesprocess.criteria import Criteria
from salesprocess.errors import NotFound
from salesprocess.qualification import QualificationReport
from salesprocess.stage import Stage
from salesprocess.unit_of_work import Steps, UnitOfWork, Work, call

__all__ = ["SCREEN_BATCH", "Progress", "screen_accounts", "screening"]

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
    return uow.drive(
        screening(
            uow, accounts, criteria=criteria, stage=stage, moment=moment, progress=progress,
            batch_size=batch_size,
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
