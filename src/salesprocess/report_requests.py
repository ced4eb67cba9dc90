"""What both facades ask of the read side: each report with its options checked.

:class:`~salesprocess.process.SalesProcess` and
:class:`~salesprocess.process_async.AsyncSalesProcess` check a report's options here, once,
and get back a :class:`ReportRequest`, which each answers with the store's own SQL
(``report_<name>``) where it has it, else with the pure function over every account.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

import attrs

from salesprocess import reports
from salesprocess.account import Channel
from salesprocess.checks import optional_text, require_text
from salesprocess.money import Money
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
from salesprocess.stage import Stage
from salesprocess.use_cases import UseCases

__all__ = ["ReportRequest", "Reporting"]

_Result = TypeVar("_Result")


@attrs.frozen
class ReportRequest(Generic[_Result]):
    """A report with its checked options.

    The facade answers ``report(accounts, **options)``, or the store's
    ``report_<name>(**options)`` where it answers the report itself (in SQL).
    """

    report: Callable[..., _Result]
    options: dict[str, Any] = attrs.field(factory=dict)


class Reporting(UseCases):
    """:class:`~salesprocess.use_cases.UseCases` with the read side's requests.

    Each is the public report of both facades, as a request: its signature and documentation
    are theirs (each facade names it without the underscore and answers it).
    """

    def _revenue(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> ReportRequest[RevenueReport]:
        """Return revenue per currency; see :func:`salesprocess.reports.revenue`."""
        return ReportRequest(reports.revenue, {"since": since, "until": until})

    def _repeat_summary(
        self, *, as_of: datetime | None = None, period: Period = "D"
    ) -> ReportRequest[list[RepeatRow]]:
        """Return repeat figures; see :func:`salesprocess.reports.repeat_summary`."""
        return ReportRequest(
            reports.repeat_summary, {"as_of": self._moment(as_of, "as_of"), "period": period}
        )

    def _rfm(
        self, *, as_of: datetime | None = None, currency: str | None = None
    ) -> ReportRequest[list[RfmRow]]:
        """Return RFM scores and segments; see :func:`salesprocess.reports.rfm`."""
        if currency is not None:
            Money.zero(require_text(currency, "currency"))  # an ISO 4217 code, or refused
        return ReportRequest(
            reports.rfm, {"as_of": self._moment(as_of, "as_of"), "currency": currency}
        )

    def _funnel(
        self,
        *,
        as_of: datetime | None = None,
        channel: Channel | str | None = None,
        campaign: str | None = None,
    ) -> ReportRequest[Funnel]:
        """Return the funnel; see :func:`salesprocess.reports.funnel`."""
        optional_text(campaign, "campaign")
        options = {"as_of": self._moment(as_of, "as_of"), "channel": channel, "campaign": campaign}
        return ReportRequest(reports.funnel, options)

    def _lead_flow(
        self,
        *,
        period: FlowPeriodName = "week",
        target: int | None = None,
        as_of: datetime | None = None,
    ) -> ReportRequest[list[FlowPeriod]]:
        """Return the flow of leads; see :func:`salesprocess.reports.lead_flow`."""
        return ReportRequest(
            reports.lead_flow, {"period": period, "target": target, "as_of": as_of}
        )

    def _time_in_stage(
        self, *, as_of: datetime | None = None
    ) -> ReportRequest[Mapping[Stage, StageTime]]:
        """Return median and p90 time per stage; see :func:`salesprocess.reports.time_in_stage`."""
        return ReportRequest(reports.time_in_stage, {"as_of": self._moment(as_of, "as_of")})

    def _referral_stats(self) -> ReportRequest[ReferralReport]:
        """Return referral figures; see :func:`salesprocess.reports.referral_stats`."""
        return ReportRequest(reports.referral_stats)
