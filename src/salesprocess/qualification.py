"""Qualification: deciding whether a prospect is ready for sales.

Two stages decide, as the process prescribes: first the account must match the prospect
criteria that marketing sets (a :class:`~salesprocess.criteria.Criteria` screening), then a
direct phone call must confirm interest. :class:`ScreenAndCallPolicy` encodes exactly that and
is the default; any object with ``missing(account, at)`` is a :class:`QualificationPolicy`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

from salesprocess.account import Account, CallOutcome
from salesprocess.clock import require_aware
from salesprocess.criteria import ClauseResult

__all__ = ["QualificationPolicy", "QualificationReport", "ScreenAndCallPolicy"]


@runtime_checkable
class QualificationPolicy(Protocol):
    """Decides whether a prospect may be qualified."""

    def missing(self, account: Account, at: datetime) -> tuple[str, ...]:
        """Return what is still missing, each for a person to act on; empty means approved."""
        ...


@attrs.frozen
class ScreenAndCallPolicy:
    """Approve when the latest screening passed and an INTERESTED call came at or after it."""

    def missing(self, account: Account, at: datetime) -> tuple[str, ...]:
        """Return the missing screen or call, if any."""
        if not account.screenings:
            return ("a passing screen against the marketing criteria (run sales.screen(id))",)
        latest = account.screenings[-1]
        if not latest.passed:
            return (
                f"a passing screen: the latest, against {latest.criteria} {latest.version} at "
                f"{latest.at.isoformat()}, failed",
            )
        confirmed = any(
            call.outcome is CallOutcome.INTERESTED and latest.at <= call.at <= at
            for call in account.calls
        )
        if not confirmed:
            return (
                f"a confirming call: no INTERESTED call since the screen at "
                f"{latest.at.isoformat()} (record one with sales.record_call(id, "
                "CallOutcome.INTERESTED))",
            )
        return ()


@attrs.frozen
class QualificationReport:
    """The result of screening one account against the marketing criteria."""

    account_id: str
    criteria: str
    version: str
    at: datetime = attrs.field(validator=lambda _i, _a, v: require_aware(v))
    passed: bool
    clauses: tuple[ClauseResult, ...]

    def explain(self) -> str:
        """Render the report for a person: a headline, then one line per clause."""
        verdict = "passed" if self.passed else "failed"
        lines = [f"{verdict}: {self.criteria} {self.version}, account {self.account_id}"]
        lines.extend(f"  {clause}" for clause in self.clauses)
        return "\n".join(lines)
