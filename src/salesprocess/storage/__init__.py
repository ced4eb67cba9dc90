"""Storage adapters for accounts, and the protocol they share.

``InMemoryRepository`` is the default; ``SQLiteRepository`` the embedded one (stdlib
``sqlite3``). Adapters are imported on first use, so ``import salesprocess`` loads no database
driver. PostgreSQL lives in :mod:`salesprocess.storage.postgres` (extra ``salesprocess[postgres]``).
For async code (:class:`~salesprocess.AsyncSalesProcess`): ``AsyncInMemoryRepository`` and
``AsyncPostgresRepository``, keeping the promises of ``AsyncAccountRepository``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from salesprocess.exports import lazy_exports

if TYPE_CHECKING:  # what the names below are, for type checkers; __getattr__ imports them
    from salesprocess.storage.async_protocol import AsyncAccountRepository
    from salesprocess.storage.memory import InMemoryRepository
    from salesprocess.storage.memory_async import AsyncInMemoryRepository
    from salesprocess.storage.postgres import PostgresRepository
    from salesprocess.storage.postgres_async import AsyncPostgresRepository
    from salesprocess.storage.protocol import AccountRepository, ReadsMany
    from salesprocess.storage.sqlite import SQLiteRepository

__all__ = [
    "AccountRepository",
    "AsyncAccountRepository",
    "AsyncInMemoryRepository",
    "AsyncPostgresRepository",
    "InMemoryRepository",
    "PostgresRepository",
    "ReadsMany",
    "SQLiteRepository",
]

# Where each name lives: adapters load on first use, so ``import salesprocess`` loads no
# database driver and the command line no asyncio.
_HOMES: Final[dict[str, tuple[str, ...]]] = {
    "salesprocess.storage.async_protocol": ("AsyncAccountRepository",),
    "salesprocess.storage.memory": ("InMemoryRepository",),
    "salesprocess.storage.memory_async": ("AsyncInMemoryRepository",),
    "salesprocess.storage.postgres": ("PostgresRepository",),
    "salesprocess.storage.postgres_async": ("AsyncPostgresRepository",),
    "salesprocess.storage.protocol": ("AccountRepository", "ReadsMany"),
    "salesprocess.storage.sqlite": ("SQLiteRepository",),
}

if not TYPE_CHECKING:  # hidden from type checkers: to them a misspelt name stays an error
    __getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())
