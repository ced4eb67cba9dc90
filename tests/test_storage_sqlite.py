"""The SQLite repository keeps the storage contract, in memory and on a file."""

from __future__ import annotations

import itertools
import os
import tempfile
from contextlib import nullcontext, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from salesprocess.account import Account, Source
from salesprocess.errors import StorageError, ValidationError
from salesprocess.storage.protocol import AccountRepository
from salesprocess.storage.sqlite import MAX_TIMEOUT, SQLiteRepository
from salesprocess.testing import RepositoryContract, repository_state_machine


class TestSQLiteInMemory(RepositoryContract):
    """Every promise of the protocol, for SQLiteRepository(':memory:')."""

    def make_repository(self) -> AccountRepository:
        return SQLiteRepository(":memory:")


class TestSQLiteFile(RepositoryContract):
    """Every promise of the protocol, for SQLiteRepository on a WAL file."""

    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path
        self.names = itertools.count()

    def make_repository(self) -> AccountRepository:
        return SQLiteRepository(self.directory / f"accounts-{next(self.names)}.db")


def _file_repository() -> SQLiteRepository:
    handle, name = tempfile.mkstemp(prefix="salesprocess-machine-", suffix=".db")
    os.close(handle)  # an empty file: SQLite makes it a new database
    return SQLiteRepository(name)


def _remove(repository: AccountRepository) -> None:
    assert isinstance(repository, SQLiteRepository)
    repository.close()
    for suffix in ("", "-wal", "-shm"):
        Path(repository.path + suffix).unlink(missing_ok=True)


TestSQLiteFileMachine = repository_state_machine(_file_repository, dispose=_remove).TestCase
TestSQLiteFileMachine.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)


# --- regressions ------------------------------------------------------------------------------

_T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def _prospect(account_id: str, **fields: Any) -> Account:
    return Account(account_id, "Acme", Source("referral"), _T0, **fields)


class _Boom(Exception):
    """The block's own error, which must reach the caller whatever the rollback does."""


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": 10**400}, "timeout"),
        ({"timeout": MAX_TIMEOUT + 1}, "timeout"),
        ({"timeout": "5"}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": None}, "timeout"),
        ({"synchronous": "EXTRA"}, "synchronous"),
        ({"synchronous": "normal"}, "synchronous"),
        ({"synchronous": None}, "synchronous"),
    ],
)
def test_malformed_constructor_arguments_are_refused(arguments: dict[str, Any], field: str) -> None:
    """A timeout not a finite number of seconds in range, or another synchronous, is refused."""
    with pytest.raises(ValidationError) as raised:
        SQLiteRepository(":memory:", **arguments)
    assert raised.value.field == field


def test_a_path_that_is_not_a_path_is_refused() -> None:
    """SQLiteRepository(5) raises ValidationError naming the path, not a raw TypeError."""
    for path in (5, None, b":memory:"):
        with pytest.raises(ValidationError) as raised:
            SQLiteRepository(path)  # type: ignore[arg-type]
        assert raised.value.field == "path"


def test_edge_timeouts_are_accepted() -> None:
    """timeout=0 (never wait) and the longest timeout open a repository."""
    for timeout in (0, 0.0, 0.25, MAX_TIMEOUT):
        with SQLiteRepository(":memory:", timeout=timeout) as repository:
            assert repository.add(_prospect("a")).version == 1


def test_an_int_beyond_64_bits_becomes_validation_error() -> None:
    """An OverflowError from the driver (an int SQLite cannot hold) becomes ValidationError."""

    def bind_a_huge_int(repository: SQLiteRepository) -> None:
        with repository._using("probing") as connection:
            connection.execute("SELECT ?", (2**63,))

    with SQLiteRepository(":memory:") as repository:
        with pytest.raises(ValidationError, match="too large"):
            bind_a_huge_int(repository)
        assert repository.add(_prospect("a")).version == 1


def test_a_version_sqlite_cannot_hold_is_refused_before_writing() -> None:
    """save(expected_version=2**63) raises ValidationError, and the row stays readable."""
    with SQLiteRepository(":memory:") as repository:
        stored = repository.add(_prospect("a"))
        for version in (2**63, 2**63 - 1, 1.0):
            with pytest.raises(ValidationError):
                repository.save(stored, expected_version=version)  # type: ignore[arg-type]
        assert repository.get("a") == stored


def _abort(repository: SQLiteRepository, statement: str = "ROLLBACK") -> None:
    """Run ``statement`` behind the repository's back: ROLLBACK is what SQLite does on FULL."""
    assert repository._connection is not None
    repository._connection.execute(statement)


def _nested_block_that_sqlite_aborts(repository: SQLiteRepository, *, then: str) -> None:
    with repository.atomic():
        repository.add(_prospect("outer"))
        with suppress(_Boom) if then != "propagate" else nullcontext(), repository.atomic():
            repository.add(_prospect("inner"))
            _abort(repository)
            raise _Boom
        if then == "write":
            repository.add(_prospect("orphan"))  # would otherwise commit on its own


def test_the_blocks_error_survives_a_transaction_sqlite_already_rolled_back() -> None:
    """If SQLite aborted the transaction, a nested block's own error propagates, nothing lands."""
    with SQLiteRepository(":memory:") as repository:
        with pytest.raises(_Boom):
            _nested_block_that_sqlite_aborts(repository, then="propagate")
        assert repository.page() == []
        assert repository.add(_prospect("after")).version == 1  # the repository still works


def test_writes_after_sqlite_rolled_back_the_block_fail_instead_of_autocommitting() -> None:
    """Once SQLite aborted a block's transaction, later writes in it raise StorageError."""
    with SQLiteRepository(":memory:") as repository:
        with pytest.raises(StorageError, match="rolled back"):
            _nested_block_that_sqlite_aborts(repository, then="write")
        assert repository.page() == []


def test_a_commit_after_sqlite_rolled_back_the_block_fails() -> None:
    """A block whose transaction SQLite aborted does not end as if it had committed."""
    with SQLiteRepository(":memory:") as repository:
        with pytest.raises(StorageError, match="rolled back"):
            _nested_block_that_sqlite_aborts(repository, then="commit")
        assert repository.page() == []


def test_a_failing_rollback_never_replaces_the_blocks_error() -> None:
    """When ROLLBACK TO itself fails, the block's error propagates with the failure noted."""

    def block(repository: SQLiteRepository) -> None:
        with repository.atomic():
            repository.add(_prospect("outer"))
            with repository.atomic():
                repository.add(_prospect("inner"))
                _abort(repository, "RELEASE salesprocess_1")  # the savepoint is gone
                raise _Boom

    with SQLiteRepository(":memory:") as repository:
        with pytest.raises(_Boom) as raised:
            block(repository)
        assert any("rolling back failed" in note for note in raised.value.__notes__)
        assert repository.page() == []
        assert repository.add(_prospect("after")).version == 1


def test_a_full_database_inside_a_nested_block_reports_full_and_stores_nothing() -> None:
    """SQLITE_FULL in a nested block raises "full", not a rollback error; nothing lands."""
    big = [_prospect(f"acc-{index:03d}", attributes={"notes": "x" * 3000}) for index in range(200)]
    inner_errors: list[StorageError] = []

    def block(repository: SQLiteRepository) -> None:
        with repository.atomic():
            repository.add(_prospect("outer"))
            try:
                with repository.atomic():
                    repository.add_many(big)
            except StorageError as exc:
                inner_errors.append(exc)
            repository.add(_prospect("orphan"))

    with SQLiteRepository(":memory:") as repository:
        _abort(repository, "PRAGMA max_page_count = 20")
        with pytest.raises(StorageError, match="rolled back"):
            block(repository)
        assert len(inner_errors) == 1
        assert "full" in str(inner_errors[0])
        assert repository.page() == []
        assert repository.add(_prospect("after")).version == 1
