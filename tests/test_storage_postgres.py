"""The PostgreSQL repository keeps the storage contract, on its own connection or the app's."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from salesprocess.account import Account, Source
from salesprocess.errors import ConflictError, StorageError, ValidationError
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


# --- regressions ------------------------------------------------------------------------------

_T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def _prospect(account_id: str, **fields: Any) -> Account:
    return Account(account_id, "Acme", Source("referral"), _T0, **fields)


def test_add_many_on_a_failed_transaction_raises_storage_error_cleanly(
    postgres_schema: Callable[[], str], caplog: pytest.LogCaptureFixture
) -> None:
    """add_many() on a connection whose transaction failed raises StorageError, logs nothing."""
    with psycopg.connect(postgres_schema()) as connection:
        repository = PostgresRepository(connection)
        with pytest.raises(psycopg.errors.DivisionByZero):
            connection.execute("SELECT 1 / 0")
        with (
            caplog.at_level(logging.DEBUG, logger="psycopg"),
            pytest.raises(StorageError, match="roll it back"),
        ):
            repository.add_many([_prospect("a")])
        assert [record.getMessage() for record in caplog.records] == []
        connection.rollback()
        assert repository.add_many([_prospect("a")]) == 1
        assert [account.id for account in repository.page()] == ["a"]


def test_add_many_closes_its_cursor(postgres_schema: Callable[[], str]) -> None:
    """The cursor add_many() copies through is closed, whether the COPY succeeds or fails."""
    opened: list[Any] = []

    class Tracked(psycopg.Cursor):  # type: ignore[type-arg]
        def copy(self, *args: Any, **kwargs: Any) -> Any:
            opened.append(self)
            return super().copy(*args, **kwargs)

    with PostgresRepository(postgres_schema()) as repository:
        repository.connection.cursor_factory = Tracked
        assert repository.add_many([_prospect("a"), _prospect("b")]) == 2
        with pytest.raises(ConflictError):
            repository.add_many([_prospect("c"), _prospect("a")])
        with pytest.raises(ValidationError):
            repository.add_many([_prospect("d"), 1])  # type: ignore[list-item]
        assert len(opened) == 3
        assert all(cursor.closed for cursor in opened)
        assert [account.id for account in repository.page()] == ["a", "b"]


def test_add_many_inside_the_apps_transaction_survives_a_conflict(
    postgres_schema: Callable[[], str],
) -> None:
    """A conflicting add_many() in the app's transaction is undone alone; the app's work stays."""
    with psycopg.connect(postgres_schema()) as connection:
        repository = PostgresRepository(connection)
        with connection.transaction():
            repository.add(_prospect("a", email="ann@acme.example"))
            with pytest.raises(ConflictError):
                repository.add_many([_prospect("b"), _prospect("c", email="ann@acme.example")])
            assert repository.add_many([_prospect("d")]) == 1
        assert [account.id for account in repository.page()] == ["a", "d"]


def test_a_version_beyond_the_integer_column_is_refused(postgres_schema: Callable[[], str]) -> None:
    """save(expected_version=2**31 - 1) would store 2**31: refused with ValidationError."""
    with PostgresRepository(postgres_schema()) as repository:
        stored = repository.add(_prospect("a"))
        with pytest.raises(ValidationError, match="expected_version"):
            repository.save(stored, expected_version=2**31 - 1)
        assert repository.get("a") == stored
