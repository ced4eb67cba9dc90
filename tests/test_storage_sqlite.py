"""The SQLite repository keeps the storage contract, in memory and on a file."""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

from salesprocess.storage.protocol import AccountRepository
from salesprocess.storage.sqlite import SQLiteRepository
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
