"""In-memory storage for async code: the default repository of ``AsyncSalesProcess``.

It keeps its accounts in an :class:`~salesprocess.storage.memory.InMemoryRepository` (the same
indexes, checks and undo log, so both keep the same promises) and adds what tasks need: an
``atomic()`` block belongs to the task that opened it (and to tasks it starts inside the block,
which share its context), and while it is open every other task's call waits for it to end, so
no task sees another's writes before they are committed, nor writes between them. Nothing here
does I/O: a call that need not wait runs at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext

from salesprocess.account import Account
from salesprocess.stage import Stage
from salesprocess.storage.memory import InMemoryRepository
from salesprocess.storage.protocol import AfterCommit, Holders, call_all

__all__ = ["AsyncInMemoryRepository"]

_names = itertools.count()


class _Block:
    """The mark of one open outermost ``atomic()`` block, held in its owner's context."""

    __slots__ = ()


class AsyncInMemoryRepository:
    """Accounts in memory, for tasks: an ``InMemoryRepository`` with task-owned ``atomic()``."""

    def __init__(self) -> None:
        self._store = InMemoryRepository()
        self._lock = asyncio.Lock()  # held by the task whose atomic() block is open
        self._open: _Block | None = None  # the block open now, whoever opened it
        self._mine: contextvars.ContextVar[_Block | None] = contextvars.ContextVar(
            f"salesprocess_memory_block_{next(_names)}", default=None
        )
        self._after_commit = AfterCommit()
        self._unlocked: AbstractContextManager[None] = nullcontext()

    def __len__(self) -> int:
        return len(self._store)

    async def _turn(self) -> None:
        """Wait while another task's ``atomic()`` block is open."""
        if self._open is None or self._mine.get() is self._open:
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

    async def holders(
        self,
        *,
        account_id: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        referral_code: str | None = None,
    ) -> Holders:
        """Return the accounts holding this id, email, phone and referral code."""
        await self._turn()
        return self._store.holders(
            account_id=account_id, email=email, phone=phone, referral_code=referral_code
        )

    async def write_all(self, accounts: Sequence[Account]) -> list[Account]:
        """Add or save each of ``accounts``, all or nothing."""
        await self._turn()
        return self._store.write_all(accounts)

    async def get(self, account_id: str) -> Account:
        """Return the stored account or raise ``NotFound``."""
        await self._turn()
        return self._store.get(account_id)

    async def get_many(self, account_ids: Iterable[str]) -> dict[str, Account]:
        """Return ``{id: account}`` for the stored ones among ``account_ids``."""
        await self._turn()
        return self._store.get_many(account_ids)

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

    async def find_ids(self, kind: str, values: Iterable[str]) -> dict[str, str]:
        """Return ``{value: id}`` for the ``values`` an account holds as its ``kind``."""
        await self._turn()
        return self._store.find_ids(kind, values)

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
        outer = self._open is None or self._mine.get() is not self._open
        token = None
        if outer:
            await self._lock.acquire()
            self._open = _Block()
            token = self._mine.set(self._open)
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
            if token is not None:
                self._mine.reset(token)
                self._open = None
                self._lock.release()
        call_all(self._after_commit.take() if outer else [])

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` now, or when this task's outermost ``atomic()`` block commits."""
        self._after_commit.register(callback, self._unlocked, self._in_my_block)

    def _in_my_block(self) -> bool:
        return self._open is not None and self._mine.get() is self._open
