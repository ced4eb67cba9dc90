r"""Optional storage capabilities: criteria answered inside the store.

A repository that can run a :mod:`~salesprocess.criteria_sql` prefilter itself implements
:class:`CriteriaSelection` (the call list and the screens then decode only the prospects that
may pass); one that can also record a screening without decoding the account implements
:class:`BulkScreening` (``screen_all`` then touches the ruled-out prospects in SQL alone).
Both are :class:`typing.Protocol`\\ s, discovered with ``isinstance``; a repository without
them is screened in Python, with the same results.
:class:`~salesprocess.testing.RepositoryContract` tests both where an adapter has them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

from salesprocess.account import Account, Screening
from salesprocess.criteria import Criteria
from salesprocess.criteria_sql import Prefilter, prefilter, translates
from salesprocess.stage import Stage

__all__ = ["BulkScreening", "CriteriaSelection", "Key", "ScreenedOut", "StoredFacts", "prospects"]

#: A row's place in the oldest-first order of a stage: ``created_at`` (microseconds), id.
Key = tuple[int, str]


@runtime_checkable
class CriteriaSelection(Protocol):
    """A store that selects, by a criteria prefilter, the accounts that may pass."""

    def prospects_matching(self, check: Prefilter, *, stage: Stage) -> Iterator[Account]:
        """Yield the accounts at ``stage`` that ``check`` may pass, oldest first.

        Exactly those for which :func:`~salesprocess.criteria_sql.may_pass` holds on their
        attributes; the others are neither returned nor decoded.
        """
        ...


@attrs.frozen
class ScreenedOut:
    """One page of a bulk screen as :meth:`BulkScreening.screen_out` left it.

    ``order`` is the page's account ids, oldest first. ``decided`` maps the ids the prefilter
    decided (and whose screening is now stored) to the verdict and an object whose ``facts()``
    are the account's facts as stored, read only when called; ``undecided`` are the other
    accounts, decoded and unchanged, for the criteria to judge. ``after`` is where the next
    page starts (``None``: this was the last).
    """

    order: tuple[str, ...]
    decided: Mapping[str, tuple[bool, object]]
    undecided: tuple[Account, ...]
    after: Key | None


@runtime_checkable
class BulkScreening(CriteriaSelection, Protocol):
    """A store that records the screenings its prefilter decides without decoding accounts."""

    def latest_screening(self, *, stage: Stage) -> datetime | None:
        """Return the latest last screening of the accounts at ``stage`` (``None``: none)."""
        ...

    def screen_out(
        self,
        check: Prefilter,
        *,
        stage: Stage,
        passed: Screening,
        failed: Screening,
        after: Key | None,
        limit: int,
    ) -> ScreenedOut:
        """Take the next ``limit`` accounts at ``stage`` after ``after``, oldest first.

        Each one ``check`` surely passes (:func:`~salesprocess.criteria_sql.must_pass`) gets
        ``passed`` appended to its screenings, each it rules out (not
        :func:`~salesprocess.criteria_sql.may_pass`) gets ``failed``, its version raised by
        one, as saving it would; the others are returned decoded. Runs in one transaction (the
        caller's ``atomic()`` block when one is open).
        """
        ...


def prospects(repository: object, criteria: Criteria, stage: Stage) -> Iterator[Account]:
    """Return the accounts at ``stage`` that ``criteria`` may pass: a superset of those it does.

    Selected in the store when it is a :class:`CriteriaSelection` and the criteria translate;
    else every account at ``stage`` (:meth:`~salesprocess.storage.AccountRepository.with_stage`).
    """
    check = prefilter(criteria)
    if isinstance(repository, CriteriaSelection) and translates(check):
        return repository.prospects_matching(check, stage=stage)
    listed: Iterator[Account] = repository.with_stage(stage)  # type: ignore[attr-defined]
    return listed


class StoredFacts:
    """An account's facts from its stored JSON text, decoded the first time they are read."""

    __slots__ = ("_decode", "_text")

    def __init__(self, text: str, decode: object) -> None:
        self._text = text
        self._decode = decode

    def facts(self) -> Mapping[str, object]:
        """Return the facts of the stored account."""
        account: Account = self._decode(self._text)  # type: ignore[operator]
        return account.facts()
