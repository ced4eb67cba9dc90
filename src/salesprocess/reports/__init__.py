"""The read side: each report a pure function over accounts, and its frozen result.

A report's function is the oracle: the in-memory adapter answers with it directly, and an SQL
adapter that answers a report in SQL must give the same result. Reports import the domain and
the storage protocol only.
"""

from __future__ import annotations

from salesprocess.reports.call_list import call_list, may_call
from salesprocess.reports.referrals import ReferralReport, ReferralStats, referral_stats
from salesprocess.reports.stages import stage_counts

__all__ = [
    "ReferralReport",
    "ReferralStats",
    "call_list",
    "may_call",
    "referral_stats",
    "stage_counts",
]
