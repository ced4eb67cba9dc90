"""The PostgreSQL repository keeps the storage contract, on its own connection or the app's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from salesprocess.storage.protocol import AccountRepository
from salesprocess.testing import RepositoryContract

psycopg = pytest.importorskip("psycopg", reason="needs the postgres extra")

from salesprocess.storage.postgres import PostgresRepository  # noqa: E402


class TestPostgresRepository(RepositoryContract):
    """Every promise of the protocol, for PostgresRepository on a DSN (its own connection)."""

    @pytest.fixture(autouse=True)
    def _schemas(self, postgres_schema: Callable[[], str]) -> None:
        self.new_schema = postgres_schema

    def make_repository(self) -> AccountRepository:
        return PostgresRepository(self.new_schema())


class TestPostgresOnAppConnection(RepositoryContract):
    """The protocol holds on an app-owned connection that is not in autocommit mode."""

    @pytest.fixture(autouse=True)
    def _schemas(self, postgres_schema: Callable[[], str]) -> None:
        self.new_schema = postgres_schema

    def make_repository(self) -> AccountRepository:
        return PostgresRepository(psycopg.connect(self.new_schema()))

    def dispose_repository(self, repository: AccountRepository) -> None:
        assert isinstance(repository, PostgresRepository)
        connection = repository.connection
        repository.close()
        assert not connection.closed, "the repository closed a connection it does not own"
        connection.close()


class TestPostgresInsideAppTransaction(RepositoryContract):
    """The protocol holds inside a transaction the app opened and never commits."""

    @pytest.fixture(autouse=True)
    def _schemas(self, postgres_schema: Callable[[], str]) -> None:
        self.new_schema = postgres_schema

    def make_repository(self) -> AccountRepository:
        connection: Any = psycopg.connect(self.new_schema())
        connection.execute("SELECT 1")  # opens the app's transaction
        return PostgresRepository(connection)

    def dispose_repository(self, repository: AccountRepository) -> None:
        assert isinstance(repository, PostgresRepository)
        connection = repository.connection
        status = connection.info.transaction_status
        assert status == psycopg.pq.TransactionStatus.INTRANS, "the app's transaction ended"
        repository.close()
        connection.rollback()
        connection.close()
