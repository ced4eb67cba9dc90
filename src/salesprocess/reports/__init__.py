"""The read side: each report a pure function over accounts, and its frozen result.

A report's function is the oracle: the in-memory adapter answers with it directly, and an SQL
adapter that answers a report in SQL must give the same result. Reports import the domain and
the storage protocol only.
"""

from __future__ import annotations

from salesprocess.reports.call_list import call_list, may_call
from salesprocess.reports.flow import FlowPeriod, FlowPeriodName, lead_flow
from salesprocess.reports.funnel import Funnel, Rung, funnel
from salesprocess.reports.referrals import ReferralReport, ReferralStats, referral_stats
from salesprocess.reports.repeat import Period, RepeatRow, repeat_summary
from salesprocess.reports.revenue import Revenue, RevenueReport, revenue
from salesprocess.reports.rfm import RfmRow, rfm
from salesprocess.reports.stages import StageTime, stage_counts, time_in_stage

__all__ = [
    "FlowPeriod",
    "FlowPeriodName",
    "Funnel",
    "Period",
    "ReferralReport",
    "ReferralStats",
    "RepeatRow",
    "Revenue",
    "RevenueReport",
    "RfmRow",
    "Rung",
    "StageTime",
    "call_list",
    "funnel",
    "lead_flow",
    "may_call",
    "referral_stats",
    "repeat_summary",
    "revenue",
    "rfm",
    "stage_counts",
    "time_in_stage",
]
