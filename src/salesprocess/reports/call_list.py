"""The call list: which prospects sales should phone now, best first."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime
from typing import Final

from salesprocess.account import Account, CallOutcome
from salesprocess.criteria import Criteria
from salesprocess.errors import CriteriaError
from salesprocess.rules import QualificationRule

__all__ = ["call_list", "may_call"]

# Outcomes after which the account is not called again unprompted.
_DO_NOT_REDIAL: Final = frozenset(
    {CallOutcome.NOT_INTERESTED, CallOutcome.WRONG_CONTACT, CallOutcome.DO_NOT_CALL}
)


def may_call(account: Account, at: datetime) -> bool:
    """Return whether sales may phone ``account`` at ``at``, by its flag and its last call.

    Not a do-not-contact account, nor one whose latest call was NOT_INTERESTED,
    WRONG_CONTACT or DO_NOT_CALL, nor a call-back not yet due, nor a lead already confirmed
    INTERESTED (its next step is qualifying, not another call).
    """
    if account.do_not_contact:
        return False
    if not account.calls:
        return True
    latest = account.calls[-1]
    if latest.outcome in _DO_NOT_REDIAL:
        return False
    if latest.outcome is CallOutcome.CALL_BACK:
        return latest.callback_at is not None and latest.callback_at <= at
    return latest.outcome is not CallOutcome.INTERESTED


def call_list(
    prospects: Iterable[Account],
    at: datetime,
    *,
    criteria: Criteria,
    scoring: QualificationRule | None = None,
    limit: int = 50,
) -> list[Account]:
    """Return up to ``limit`` of ``prospects`` that pass ``criteria`` and :func:`may_call`.

    Ranked by ``scoring``'s score (when given), then oldest first, then by id. A prospect whose
    data the criteria cannot judge is left out (that is no reason to call); one the scoring
    rule cannot judge ranks last rather than sinking the list.
    """
    ranked: list[tuple[float, datetime, str, Account]] = []
    for account in prospects:
        if not may_call(account, at):
            continue
        try:
            if not criteria.evaluate(account).passed:
                continue
        except CriteriaError:
            continue
        score = 0.0
        if scoring is not None:
            with contextlib.suppress(CriteriaError):
                score = scoring.evaluate(account).score
        ranked.append((-score, account.created_at, account.id, account))
    ranked.sort(key=lambda entry: entry[:3])
    return [entry[3] for entry in ranked[:limit]]
