"""In-memory storage for async code: the default repository of ``AsyncSalesProcess``.

It keeps its accounts in an :class:`~salesprocess.storage.memory.InMemoryRepository` (the same
indexes, checks and undo log, so both keep the same promises) and adds what tasks need: an
``atomic()`` block belongs to the task that opened it, and while it is open every other task's
call waits for it to end, so no task sees another's writes before they are committed, nor
writes between them. Nothing here does I/O: a call that need not wait runs at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from typing import Any

from salesprocess.account import Account
from salesprocess.stage import Stage
from salesprocess.storage.memory import InMemoryRepository
from salesprocess.storage.protocol import AfterCommit, call_all

__all__ = ["AsyncInMemoryRepository"]


def _current() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop running: no task can own a block
        return None


class AsyncInMemoryRepository:
    """Accounts in memory, for tasks: an ``InMemoryRepository`` with task-owned ``atomic()``."""

    def __init__(self) -> None:
        self._store = InMemoryRepository()
        self._lock = asyncio.Lock()  # held by the task whose atomic() block is open
        self._owner: asyncio.Task[Any] | None = None
        self._after_commit = AfterCommit()
        self._unlocked: AbstractContextManager[None] = nullcontext()

    def __len__(self) -> int:
        return len(self._store)

    async def _turn(self) -> None:
        """Wait while another task's ``atomic()`` block is open."""
        owner = self._owner
        if owner is None or owner is _current():
            return
        async with self._lock:
            pass  # what follows runs before any other task, so the block stays ours

    async def add(self, account: Account) -> Account:
        """Store a new account at version 1."""
        await self._turn()
        return self._store.add(account)

    async def add_many(self, accounts: Iterable[Account]) -> int:
        """Store many new accounts, all or nothing."""
        await self._turn()
        return self._store.add_many(accounts)

    async def get(self, account_id: str) -> Account:
        """Return the stored account or raise ``NotFound``."""
        await self._turn()
        return self._store.get(account_id)

    async def save(self, account: Account, *, expected_version: int) -> Account:
        """Replace the stored account if it is still at ``expected_version``."""
        await self._turn()
        return self._store.save(account, expected_version=expected_version)

    async def find_by_email(self, email: str) -> Account | None:
        """Return the account with this normalised email, if any."""
        await self._turn()
        return self._store.find_by_email(email)

    async def find_by_phone(self, phone: str) -> Account | None:
        """Return the account with this normalised phone number, if any."""
        await self._turn()
        return self._store.find_by_phone(phone)

    async def find_by_referral_code(self, code: str) -> Account | None:
        """Return the account whose (already normalised) referral code is ``code``, if any."""
        await self._turn()
        return self._store.find_by_referral_code(code)

    async def find_id(
        self,
        *,
        email: str | None = None,
        phone: str | None = None,
        referral_code: str | None = None,
    ) -> str | None:
        """Return the id of the account holding this email, phone or referral code, if any."""
        await self._turn()
        return self._store.find_id(email=email, phone=phone, referral_code=referral_code)

    async def with_stage(self, stage: Stage) -> AsyncIterator[Account]:
        """Yield the accounts at ``stage`` (a ``Stage`` or its name), oldest first."""
        await self._turn()
        for account in self._store.with_stage(stage):
            yield account

    async def count_by_stage(self) -> Mapping[Stage, int]:
        """Return how many accounts are at each stage."""
        await self._turn()
        return self._store.count_by_stage()

    async def page(self, *, after: str | None = None, limit: int = 1000) -> list[Account]:
        """Return up to ``limit`` accounts with ids greater than ``after``, by id."""
        await self._turn()
        return self._store.page(after=after, limit=limit)

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[None]:
        """Undo every write of the block if it raises; other tasks wait for it to end."""
        task = _current()
        outer = self._owner is None or self._owner is not task
        if outer:
            await self._lock.acquire()
            self._owner = task
        try:
            block = self._store.atomic()
            block.__enter__()
            held = self._after_commit.mark()
            try:
                yield
            except BaseException as exc:
                self._after_commit.discard(held)
                block.__exit__(type(exc), exc, exc.__traceback__)
                raise
            block.__exit__(None, None, None)
        finally:
            if outer:
                self._owner = None
                self._lock.release()
        call_all(self._after_commit.take() if outer else [])

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` now, or when this task's outermost ``atomic()`` block commits."""
        self._after_commit.register(
            callback, self._unlocked, lambda: self._owner is not None and self._owner is _current()
        )
