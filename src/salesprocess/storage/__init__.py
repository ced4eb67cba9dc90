"""Storage adapters for accounts, and the protocol they share.

``InMemoryRepository`` is the default; ``SQLiteRepository`` the embedded one (stdlib
``sqlite3``). Adapters are imported on first use, so ``import salesprocess`` loads no database
driver. PostgreSQL lives in :mod:`salesprocess.storage.postgres` (extra ``salesprocess[postgres]``).
For async code (:class:`~salesprocess.AsyncSalesProcess`): ``AsyncInMemoryRepository`` and
``AsyncPostgresRepository``, keeping the promises of ``AsyncAccountRepository``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from salesprocess.storage.async_protocol import AsyncAccountRepository
from salesprocess.storage.memory import InMemoryRepository
from salesprocess.storage.memory_async import AsyncInMemoryRepository
from salesprocess.storage.protocol import AccountRepository, ReadsMany

if TYPE_CHECKING:
    from salesprocess.storage.postgres import PostgresRepository
    from salesprocess.storage.postgres_async import AsyncPostgresRepository
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


def __getattr__(name: str) -> Any:
    # Adapters load on first use: `import salesprocess` must not load a database driver.
    if name == "SQLiteRepository":
        from salesprocess.storage.sqlite import SQLiteRepository  # noqa: PLC0415

        return SQLiteRepository
    if name == "PostgresRepository":
        from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415

        return PostgresRepository
    if name == "AsyncPostgresRepository":
        from salesprocess.storage.postgres_async import AsyncPostgresRepository  # noqa: PLC0415

        return AsyncPostgresRepository
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
