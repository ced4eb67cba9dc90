"""Stages: how many accounts are at each stage now, and how long they stay in each."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import attrs

from salesprocess.account import Account
from salesprocess.clock import require_aware
from salesprocess.stage import Stage

__all__ = ["StageTime", "stage_counts", "stage_times", "time_in_stage"]


def stage_counts(counted: Mapping[Stage, int], stages: Iterable[Stage]) -> Mapping[Stage, int]:
    """Return ``counted`` (a store's ``count_by_stage()``) for every one of ``stages``.

    A stage no account is at counts 0, so a table or chart of the lifecycle has every rung.

    >>> stage_counts({Stage.CUSTOMER: 2}, [Stage.PROSPECT, Stage.CUSTOMER])
    {Stage.PROSPECT: 0, Stage.CUSTOMER: 2}
    """
    return {stage: counted.get(stage, 0) for stage in stages}


@attrs.frozen
class StageTime:
    """How long accounts stayed in one stage: how many ``stays``, their median and p90."""

    stage: Stage
    stays: int
    median: timedelta
    p90: timedelta

    @property
    def median_days(self) -> float:
        """The median in days (a fraction for part of a day)."""
        return self.median / timedelta(days=1)

    @property
    def p90_days(self) -> float:
        """The 90th percentile in days."""
        return self.p90 / timedelta(days=1)


def time_in_stage(accounts: Iterable[Account], *, as_of: datetime) -> Mapping[Stage, StageTime]:
    """Return, per stage, how long accounts stayed in it before moving on, by ``as_of``.

    A stay runs from the history entry that entered the stage to the next one; a stay still
    going at ``as_of`` has no length yet and is not counted. ``median`` is the middle stay (the
    mean of the two middle ones for an even count); ``p90`` the nearest-rank 90th percentile:
    the stay at rank ``ceil(0.9 * stays)`` in order. Stages with no completed stay are absent.

    >>> from datetime import UTC
    >>> from salesprocess.account import HistoryEntry, Source
    >>> def day(d):
    ...     return datetime(2026, 3, d, tzinfo=UTC)
    >>> lead = Account("a", "A", Source("referral"), day(1), stage=Stage.QUALIFIED, history=(
    ...     HistoryEntry(None, Stage.PROSPECT, "capture", day(1)),
    ...     HistoryEntry(Stage.PROSPECT, Stage.QUALIFIED, "qualify", day(4))))
    >>> time_in_stage([lead], as_of=day(9))[Stage.PROSPECT].median_days
    3.0
    """
    end = require_aware(as_of, "as_of")
    stays: dict[Stage, list[timedelta]] = {}
    for account in accounts:
        for entry, following in itertools.pairwise(account.history):
            if following.at > end:
                break
            stays.setdefault(entry.to_stage, []).append(following.at - entry.at)
    return stage_times(stays)


def stage_times(stays: Mapping[Stage, list[timedelta]]) -> Mapping[Stage, StageTime]:
    """Return :func:`time_in_stage`'s answer from the completed stays' lengths, per stage.

    Shared by :func:`time_in_stage` and the SQL adapters that answer it.
    """
    return {stage: _summary(stage, sorted(lengths)) for stage, lengths in sorted(stays.items())}


def _summary(stage: Stage, ordered: list[timedelta]) -> StageTime:
    count = len(ordered)
    middle = (
        ordered[count // 2] if count % 2 else (ordered[count // 2 - 1] + ordered[count // 2]) / 2
    )
    return StageTime(stage, count, middle, ordered[math.ceil(0.9 * count) - 1])
