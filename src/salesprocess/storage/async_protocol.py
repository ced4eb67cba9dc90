"""The async storage protocol: the repository an async app (FastAPI, Starlette) plugs in.

It makes the promises of :class:`~salesprocess.storage.protocol.AccountRepository`, method
for method, with coroutines: ``await repository.get(account_id)``. Only what does no I/O
stays synchronous: ``after_commit`` (it registers a callback) and ``atomic()``, which returns
an async context manager (``async with repository.atomic(): ...``); ``with_stage`` returns an
async iterator. :class:`salesprocess.testing.AsyncRepositoryContract` is the test kit that
proves an adapter keeps these promises; the argument checks are the sync protocol's
``require_*`` helpers, so every adapter refuses a bad argument alike.

An ``atomic()`` block belongs to the task that opened it: other tasks' calls wait for it to end
(they never see its writes half done), and only that task's ``after_commit`` callbacks wait
for its commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from salesprocess.account import Account
from salesprocess.stage import Stage
from salesprocess.storage.protocol import Holders

__all__ = ["AsyncAccountRepository", "AsyncBatching", "AsyncReadsMany", "every_account_async"]


@runtime_checkable
class AsyncAccountRepository(Protocol):
    """Where accounts live, for async code: :class:`AccountRepository`'s promises, awaited."""

    async def add(self, account: Account) -> Account:
        """Store a new account (``version`` 0) and return it as stored, at version 1."""
        ...

    async def add_many(self, accounts: Iterable[Account]) -> int:
        """Store many new accounts all or nothing, in one transaction; return how many."""
        ...

    async def get(self, account_id: str) -> Account:
        """Return the stored account; raise ``NotFound`` if there is none with that id."""
        ...

    async def save(self, account: Account, *, expected_version: int) -> Account:
        """Replace the stored account if at ``expected_version``, else raise ``StaleWrite``."""
        ...

    async def find_by_email(self, email: str) -> Account | None:
        """Return the account with this normalised email, if any."""
        ...

    async def find_by_phone(self, phone: str) -> Account | None:
        """Return the account with this normalised phone number, if any."""
        ...

    async def find_by_referral_code(self, code: str) -> Account | None:
        """Return the account whose (already normalised) referral code is ``code``, if any."""
        ...

    async def find_id(
        self,
        *,
        email: str | None = None,
        phone: str | None = None,
        referral_code: str | None = None,
    ) -> str | None:
        """Return the id of the account holding this normalised email, phone or referral code."""
        ...

    async def find_ids(self, kind: str, values: Iterable[str]) -> dict[str, str]:
        """Return ``{value: id}`` for those ``values`` an account holds as its ``kind``."""
        ...

    def with_stage(self, stage: Stage) -> AsyncIterator[Account]:
        """Yield the accounts at ``stage``, oldest first (by ``created_at``, then id)."""
        ...

    async def count_by_stage(self) -> Mapping[Stage, int]:
        """Return how many accounts are at each stage (stages with none may be absent)."""
        ...

    async def page(self, *, after: str | None = None, limit: int = 1000) -> list[Account]:
        """Return up to ``limit`` accounts with ids greater than ``after``, ordered by id."""
        ...

    def atomic(self) -> AbstractAsyncContextManager[None]:
        """Return an async context in which every write lands together or not at all."""
        ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once this task's writes so far are committed, never if undone."""
        ...


@runtime_checkable
class AsyncBatching(Protocol):
    """:class:`~salesprocess.storage.protocol.Batching`, awaited (an optional capability)."""

    async def holders(
        self,
        *,
        account_id: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        referral_code: str | None = None,
    ) -> Holders:
        """Return the accounts holding this id, normalised email, phone and referral code."""
        ...

    async def write_all(self, accounts: Sequence[Account]) -> list[Account]:
        """Store ``accounts`` all or nothing (each added at version 0, else saved)."""
        ...


@runtime_checkable
class AsyncReadsMany(Protocol):
    """:class:`~salesprocess.storage.protocol.ReadsMany`, awaited (an optional capability).

    :class:`salesprocess.testing.AsyncReadsManyContract` is its test kit.
    """

    async def get_many(self, account_ids: Iterable[str]) -> dict[str, Account]:
        """Return ``{id: account}`` for those ``account_ids`` that are stored."""
        ...


async def every_account_async(
    repository: AsyncAccountRepository, *, page_size: int = 1000
) -> AsyncIterator[Account]:
    """Yield every stored account once, by id, a page of ``page_size`` at a time."""
    after: str | None = None
    while True:
        page = await repository.page(after=after, limit=page_size)
        for account in page:
            yield account
        if len(page) < page_size:
            return
        after = page[-1].id
