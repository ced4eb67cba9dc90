"""The funnel: accounts at each rung now, those that ever got there, and those that went on.

Counting stages alone misleads: an account that refers leaves "customer", so "17 customers, 3
repeat, 10 referrers" hides that 30 have bought. The funnel counts what accounts *did* by a
moment, whatever stage that left them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Final

import attrs

from salesprocess.account import Account, Channel
from salesprocess.clock import require_aware, utc_day
from salesprocess.reports.ratios import ratio
from salesprocess.stage import Stage

__all__ = [
    "LADDER",
    "SIDE",
    "Funnel",
    "Rung",
    "funnel",
    "funnel_arguments",
    "funnel_of",
    "stage_at",
]

#: The rungs, in order: prospect -> qualified -> customer -> repeat -> referrer.
LADDER: Final = (Stage.PROSPECT, Stage.QUALIFIED, Stage.CUSTOMER, Stage.REPEAT, Stage.REFERRER)
#: The side stages, counted beside the ladder.
SIDE: Final = (Stage.DISQUALIFIED, Stage.CHURNED)


@attrs.frozen
class Rung:
    """One stage of the funnel: ``now`` at it, ``reached`` ever, and the step to the next.

    ``conversion`` is the share of the accounts that reached this rung and also reached the
    next one (``None`` for the last rung, the side stages, or a rung nobody reached).
    """

    stage: Stage
    now: int
    reached: int
    conversion: Decimal | None


@attrs.frozen
class Funnel:
    """:func:`funnel`'s answer: the ladder's rungs in order, the side stages, and ``now``.

    ``now`` counts every stage (a lifecycle's own stages included) at ``as_of``.
    """

    as_of: datetime
    ladder: tuple[Rung, ...]
    side: tuple[Rung, ...]
    now: Mapping[Stage, int]

    def rung(self, stage: Stage) -> Rung:
        """Return the rung (or side stage) of ``stage``."""
        for rung in (*self.ladder, *self.side):
            if rung.stage is stage:
                return rung
        raise KeyError(stage)


def stage_at(account: Account, moment: datetime) -> Stage | None:
    """Return the stage ``account`` was at, at ``moment`` (``None``: not captured yet)."""
    current = None
    for entry in account.history:
        if entry.at > moment:
            break
        current = entry.to_stage
    return current


def _reached(account: Account, as_of: datetime) -> set[Stage]:
    # The rungs and side stages the account reached by as_of, by what it did.
    entered = {entry.to_stage for entry in account.history if entry.at <= as_of}
    days = {utc_day(p.at) for p in account.purchases if p.at <= as_of}
    reached = entered & {Stage.PROSPECT, Stage.QUALIFIED, Stage.REFERRER, *SIDE}
    if days:
        reached.add(Stage.CUSTOMER)
    if len(days) > 1:
        reached.add(Stage.REPEAT)
    return reached


def funnel(
    accounts: Iterable[Account],
    *,
    as_of: datetime,
    channel: Channel | str | None = None,
    campaign: str | None = None,
) -> Funnel:
    """Return the funnel at ``as_of`` of the accounts from ``channel`` and ``campaign``.

    An account counts once it was captured (by ``as_of``). It has *reached*:

    - prospect, qualified, referrer, disqualified, churned: when its stage history entered
      that stage by ``as_of``;
    - customer: when it has a purchase by ``as_of``; repeat: purchases on two or more UTC
      calendar days by then (a referrer that buys again is a repeat customer too, although
      its stage stays referrer).

    ``now`` counts the stage each account was at, at ``as_of``. A rung's ``conversion`` is the
    share of the accounts that reached it and also reached the next rung.

    >>> from datetime import UTC
    >>> from salesprocess.account import HistoryEntry, Source
    >>> t = datetime(2026, 1, 5, tzinfo=UTC)
    >>> lead = Account("a", "A", Source("referral"), t,
    ...                history=(HistoryEntry(None, Stage.PROSPECT, "capture", t),))
    >>> [(r.stage, r.now, r.reached) for r in funnel([lead], as_of=t).ladder][:2]
    [(Stage.PROSPECT, 1, 1), (Stage.QUALIFIED, 0, 0)]
    """
    as_of, wanted = funnel_arguments(as_of, channel)
    now: dict[Stage, int] = {}
    reached: dict[Stage, set[str]] = {stage: set() for stage in (*LADDER, *SIDE)}
    for account in accounts:
        if wanted is not None and account.source.channel is not wanted:
            continue
        if campaign is not None and account.source.campaign != campaign:
            continue
        stage = stage_at(account, as_of)
        if stage is None:
            continue
        now[stage] = now.get(stage, 0) + 1
        for rung in _reached(account, as_of):
            reached[rung].add(account.id)
    onward = {
        stage: len(reached[LADDER[index + 1]] & reached[stage])
        for index, stage in enumerate(LADDER[:-1])
    }
    return funnel_of(as_of, now, {stage: len(ids) for stage, ids in reached.items()}, onward)


def funnel_arguments(as_of: object, channel: object) -> tuple[datetime, Channel | None]:
    """Return :func:`funnel`'s ``as_of`` and ``channel`` checked (``ValidationError`` if not).

    Shared by :func:`funnel` and the SQL adapters that answer it.
    """
    moment = require_aware(as_of, "as_of")
    return moment, None if channel is None else Channel.parse(channel)


def funnel_of(
    as_of: datetime,
    now: Mapping[Stage, int],
    reached: Mapping[Stage, int],
    onward: Mapping[Stage, int],
) -> Funnel:
    """Return the :class:`Funnel` of the counted accounts' figures.

    ``now``: accounts per stage at ``as_of`` (stages with none may be absent); ``reached``:
    accounts that reached each rung and side stage; ``onward``: for each rung but the last,
    those that reached it and the next rung too.
    """
    ladder = []
    for index, stage in enumerate(LADDER):
        here = reached.get(stage, 0)
        on = onward.get(stage, 0) if index + 1 < len(LADDER) else None
        conversion = ratio(on, here) if on is not None and here else None
        ladder.append(Rung(stage, now.get(stage, 0), here, conversion))
    side = tuple(Rung(stage, now.get(stage, 0), reached.get(stage, 0), None) for stage in SIDE)
    counted = {stage: count for stage, count in now.items() if count}
    return Funnel(as_of, tuple(ladder), side, dict(sorted(counted.items())))
