"""Lead flow: new leads per channel and newly qualified leads, period by period.

Lead generation is about a *steady* flow of qualified leads, so the report lists every period,
empty ones included, and flags those that fell short of the target.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Final, Literal

import attrs

from salesprocess.account import Account, Channel
from salesprocess.checks import require_int
from salesprocess.clock import require_aware, utc_day
from salesprocess.errors import ValidationError
from salesprocess.stage import Stage

__all__ = [
    "FLOW_PERIODS",
    "FlowPeriod",
    "flow_arguments",
    "flow_periods",
    "lead_flow",
    "period_start",
]

FlowPeriodName = Literal["week", "month"]
FLOW_PERIODS: Final = ("week", "month")


def period_start(day: date, period: FlowPeriodName) -> date:
    """Return the first day of ``day``'s period: its week's Monday, or its month's first day.

    >>> period_start(date(2026, 3, 5), "week"), period_start(date(2026, 3, 5), "month")
    (datetime.date(2026, 3, 2), datetime.date(2026, 3, 1))
    """
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next(start: date, period: FlowPeriodName) -> date:
    if period == "week":
        return start + timedelta(days=7)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


@attrs.frozen
class FlowPeriod:
    """One period of :func:`lead_flow`: from ``start`` (a UTC date), for a week or a month."""

    start: date
    new_leads: Mapping[Channel, int]
    qualified: int
    below_target: bool | None

    @property
    def leads(self) -> int:
        """All new leads of the period, whatever their channel."""
        return sum(self.new_leads.values())


def _period(value: object) -> FlowPeriodName:
    if value in FLOW_PERIODS:
        return value
    raise ValidationError(f"period must be 'week' or 'month', got {value!r}", field="period")


def lead_flow(
    accounts: Iterable[Account],
    *,
    period: FlowPeriodName = "week",
    target: int | None = None,
    as_of: datetime | None = None,
) -> list[FlowPeriod]:
    """Return, per ``period``, the leads captured per channel and the leads newly qualified.

    A lead counts in the period (UTC weeks from Monday, or calendar months) of its capture; a
    qualified lead in that of its first entry into the qualified stage. Every period from the
    first lead's to ``as_of``'s (default: the latest capture or qualification) is listed, empty
    ones included. With a ``target`` (qualified leads a period), ``below_target`` flags each
    period under it; without, it is ``None``.

    >>> from datetime import UTC
    >>> from salesprocess.account import HistoryEntry, Source
    >>> t = datetime(2026, 3, 5, tzinfo=UTC)
    >>> lead = Account("a", "A", Source("referral"), t,
    ...                history=(HistoryEntry(None, Stage.PROSPECT, "capture", t),))
    >>> (week,) = lead_flow([lead], target=1)
    >>> week.start, week.new_leads[Channel.REFERRAL], week.qualified, week.below_target
    (datetime.date(2026, 3, 2), 1, 0, True)
    """
    unit, goal, end = flow_arguments(period, target, as_of)
    leads: dict[date, dict[Channel, int]] = {}
    qualified: dict[date, int] = {}
    for account in accounts:
        if end is not None and account.created_at > end:
            continue
        start = period_start(utc_day(account.created_at), unit)
        per_channel = leads.setdefault(start, {})
        per_channel[account.source.channel] = per_channel.get(account.source.channel, 0) + 1
        first = next((e.at for e in account.history if e.to_stage is Stage.QUALIFIED), None)
        if first is not None and (end is None or first <= end):
            at = period_start(utc_day(first), unit)
            qualified[at] = qualified.get(at, 0) + 1
    return flow_periods(leads, qualified, unit, goal, end)


def flow_arguments(
    period: object, target: object, as_of: object
) -> tuple[FlowPeriodName, int | None, datetime | None]:
    """Return :func:`lead_flow`'s ``period``, ``target`` and ``as_of`` checked.

    Raises ``ValidationError`` naming the first bad one. Shared by :func:`lead_flow` and the
    SQL adapters that answer it.
    """
    unit = _period(period)
    goal = None if target is None else require_int(target, "target", low=0)
    end = None if as_of is None else require_aware(as_of, "as_of")
    return unit, goal, end


def flow_periods(
    leads: Mapping[date, Mapping[Channel, int]],
    qualified: Mapping[date, int],
    unit: FlowPeriodName,
    goal: int | None,
    end: datetime | None,
) -> list[FlowPeriod]:
    """Return the rows of :func:`lead_flow` from the counts per period start.

    ``leads``: new leads per channel by the start of their capture's period; ``qualified``:
    leads first qualified, by the start of that period. Every period from the first lead's to
    ``end``'s (default: the latest with a lead or a qualification) is listed.
    """
    if not leads:
        return []
    last = max(leads.keys() | qualified.keys())
    if end is not None:
        last = period_start(utc_day(end), unit)
    rows: list[FlowPeriod] = []
    start = min(leads)
    while start <= last:
        counts = leads.get(start, {})
        done = qualified.get(start, 0)
        rows.append(
            FlowPeriod(
                start,
                {channel: counts.get(channel, 0) for channel in Channel},
                done,
                None if goal is None else done < goal,
            )
        )
        if start == last:  # stepping past the last period could leave the calendar
            return rows
        start = _next(start, unit)
    return rows
