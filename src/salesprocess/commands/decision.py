"""What a command decides: the accounts to write, the events to publish, the caller's answer.

A command is a pure function: it takes the accounts the unit of work loaded, the moment and its
own arguments, and returns a :class:`Decision`. It reads nothing and writes nothing; the
:class:`~salesprocess.unit_of_work.UnitOfWork` stores the writes (all or nothing), retries on a
stale read, and publishes the events once they are committed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

import attrs

from salesprocess.account import Account, unchecked_copy
from salesprocess.events import DomainEvent

__all__ = ["Decision", "changed", "recorded", "stamped", "stored", "unchanged"]

_Result_co = TypeVar("_Result_co", covariant=True)
_Record = TypeVar("_Record")
_Answer = TypeVar("_Answer")


@attrs.frozen
class Decision(Generic[_Result_co]):
    """A command's outcome.

    ``writes`` are accounts to store, in order: one at version 0 is added, any other saved
    with its own version as the expected one (the version it was loaded at). ``events`` are
    published after the writes commit. ``result`` is what the caller gets; an account in it is
    given as it will be stored (see :func:`stored`).
    """

    result: _Result_co
    writes: tuple[Account, ...] = ()
    events: tuple[DomainEvent, ...] = ()


def stored(account: Account) -> Account:
    """Return ``account`` as storage keeps it once written: one version on.

    The storage protocol promises it: ``add`` stores at version 1, ``save`` at the expected
    version + 1. A decision can thus name its result before the write.
    """
    return unchecked_copy(account, version=account.version + 1)


def changed(account: Account, *events: DomainEvent) -> Decision[Account]:
    """Return the decision to save ``account`` (changed), publish ``events``, answer it."""
    return Decision(stored(account), (account,), events)


def recorded(answer: _Answer, account: Account, *events: DomainEvent) -> Decision[_Answer]:
    """Return the decision to save ``account`` (changed), publish ``events``, answer ``answer``.

    For a command whose caller wants the record it made (a request, an asset), not the account.
    """
    return Decision(answer, (account,), events)


def unchanged(account: Account, *events: DomainEvent) -> Decision[Account]:
    """Return the decision to write nothing and answer ``account`` as it is."""
    return Decision(account, (), events)


def stamped(record: _Record, moment: datetime) -> _Record:
    """Return ``record`` (checked when the command began) as made at ``moment`` instead.

    Commands check their input before anything is read, with a provisional moment; without an
    explicit ``at``, each attempt is then stamped with the clock read after its load, so that
    a retry after a concurrent write comes after that write.
    """
    if record.at is moment:  # type: ignore[attr-defined]
        return record
    return attrs.evolve(record, at=moment)  # type: ignore[misc]
