"""Qualification: deciding whether a prospect is ready for sales.

Two stages decide, as the process prescribes: first the account must match the prospect
criteria that marketing sets (a :class:`~salesprocess.criteria.Criteria` screening), then a
direct phone call must confirm interest. :class:`ScreenAndCallPolicy` encodes exactly that and
is the default; any object with ``missing(account, at)`` is a :class:`QualificationPolicy`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final, Protocol, overload, runtime_checkable

import attrs

from salesprocess.account import Account, CallOutcome, _compile
from salesprocess.clock import require_aware
from salesprocess.criteria import ClauseResult

if TYPE_CHECKING:
    from salesprocess.criteria import Criteria

__all__ = ["LazyClauses", "QualificationPolicy", "QualificationReport", "ScreenAndCallPolicy"]


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


class LazyClauses(Sequence[ClauseResult]):
    """The clause-by-clause account of a screening, judged the first time it is read.

    A bulk screen records every prospect's verdict but a person reads few explanations, so the
    explanation waits until it is asked for; it is then judged from what was screened (the
    criteria and the account as they were) and kept. It equals the tuple of its clauses.
    """

    __slots__ = ("_clauses", "_criteria", "_subject")

    def __init__(self, criteria: Criteria, subject: object) -> None:
        self._criteria = criteria
        self._subject = subject
        self._clauses: tuple[ClauseResult, ...] | None = None

    def _judged(self) -> tuple[ClauseResult, ...]:
        if self._clauses is None:
            self._clauses = self._criteria.judge(self._subject).clauses
        return self._clauses

    @overload
    def __getitem__(self, index: int) -> ClauseResult: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[ClauseResult, ...]: ...
    def __getitem__(self, index: int | slice) -> ClauseResult | tuple[ClauseResult, ...]:
        return self._judged()[index]

    def __len__(self) -> int:
        return len(self._judged())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyClauses | tuple):
            return self._judged() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._judged())

    def __repr__(self) -> str:
        return repr(self._judged())


_REPORT_FIELDS: Final = ("account_id", "criteria", "version", "at", "passed", "clauses")


def _clauses(value: Sequence[ClauseResult]) -> Sequence[ClauseResult]:
    return value if isinstance(value, LazyClauses) else tuple(value)


@attrs.frozen
class QualificationReport:
    """The result of screening one account against the marketing criteria.

    ``clauses`` judges each clause; a bulk screen fills it lazily (:class:`LazyClauses`).
    """

    account_id: str
    criteria: str
    version: str
    at: datetime = attrs.field(validator=lambda _i, _a, v: require_aware(v))
    passed: bool
    clauses: Sequence[ClauseResult] = attrs.field(converter=_clauses)

    def explain(self) -> str:
        """Render the report for a person: a headline, then one line per clause."""
        verdict = "passed" if self.passed else "failed"
        lines = [f"{verdict}: {self.criteria} {self.version}, account {self.account_id}"]
        lines.extend(f"  {clause}" for clause in self.clauses)
        return "\n".join(lines)


#: ``unchecked_report(account_id, criteria, version, at, passed, clauses)``: a
#: :class:`QualificationReport` from values already checked (an aware moment checked once for a
#: whole bulk screen), NOT validated again. Internal to bulk screening.
unchecked_report: Callable[
    [str, str, str, datetime, bool, Sequence[ClauseResult]], QualificationReport
] = _compile(
    QualificationReport,
    "unchecked_report",
    ", ".join(_REPORT_FIELDS),
    dict(zip(_REPORT_FIELDS, _REPORT_FIELDS, strict=True)),
)
