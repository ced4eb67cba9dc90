"""The storage protocol: the small interface every account store implements.

It is a :class:`typing.Protocol`, so an adapter needs no base class: any object with these
methods is a repository. :class:`salesprocess.testing.RepositoryContract` is the test kit that
proves an adapter keeps every promise made here.

Versions make writes safe without locks held across a command: an account read at version
``v`` may be saved only while the stored version is still ``v``; the store then keeps it at
``v + 1``. A stale save raises :class:`~salesprocess.errors.ConflictError` and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from salesprocess.account import Account
from salesprocess.errors import ValidationError
from salesprocess.stage import Stage

__all__ = ["AccountRepository", "require_new"]


@runtime_checkable
class AccountRepository(Protocol):
    """Where accounts live.

    Contact details are unique: no two stored accounts share a normalised email or phone, so
    two processes capturing the same lead at once cannot both succeed.
    """

    def add(self, account: Account) -> Account:
        """Store a new account (``version`` 0) and return it as stored, at version 1.

        Raises ``ConflictError`` if its id, email or phone is already stored, and
        ``ValidationError`` if its version is not 0.
        """
        ...

    def add_many(self, accounts: Iterable[Account]) -> int:
        """Store many new accounts all or nothing, in one transaction; return how many."""
        ...

    def get(self, account_id: str) -> Account:
        """Return the stored account; raise ``NotFound`` if there is none with that id."""
        ...

    def save(self, account: Account, *, expected_version: int) -> Account:
        """Replace the stored account if it is still at ``expected_version``.

        Returns the account as stored, at ``expected_version + 1``. Raises ``ConflictError``
        (writing nothing) if the stored version differs or the new contact details belong to
        another account, and ``NotFound`` if the account was never added.
        """
        ...

    def find_by_email(self, email: str) -> Account | None:
        """Return the account with this normalised email, if any."""
        ...

    def find_by_phone(self, phone: str) -> Account | None:
        """Return the account with this normalised phone number, if any."""
        ...

    def with_stage(self, stage: Stage) -> Iterator[Account]:
        """Yield the accounts at ``stage``, oldest first (by ``created_at``, then id)."""
        ...

    def count_by_stage(self) -> Mapping[Stage, int]:
        """Return how many accounts are at each stage (stages with none may be absent)."""
        ...

    def page(self, *, after: str | None = None, limit: int = 1000) -> list[Account]:
        """Return up to ``limit`` accounts with ids greater than ``after``, ordered by id."""
        ...

    def atomic(self) -> AbstractContextManager[None]:
        """Return a context in which every write lands together or not at all (nestable)."""
        ...


def require_new(account: Account) -> None:
    """Refuse to ``add`` an account that was stored before (its version is not 0).

    A helper for adapters, so that every one refuses with the same ``ValidationError``.
    """
    if account.version != 0:
        raise ValidationError(
            f"account {account.id} has version {account.version}: only a new account "
            "(version 0) can be added; use save() for a stored one",
            field="version",
        )
