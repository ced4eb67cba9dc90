"""The SQLite repository keeps the storage contract, in memory and on a file."""

from __future__ import annotations

import itertools
import os
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterable
from contextlib import nullcontext, suppress
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salesprocess import FixedClock, SalesProcess, strategies
from salesprocess.account import Account, HistoryEntry, Referral, Screening, Source
from salesprocess.errors import ConflictError, NotFound, StaleWrite, StorageError, ValidationError
from salesprocess.money import Money
from salesprocess.stage import Stage
from salesprocess.storage import readmodel, serialise
from salesprocess.storage import sqlite as sqlite_module
from salesprocess.storage.protocol import AccountRepository
from salesprocess.storage.sqlite import (
    APPLICATION_ID,
    MAX_TIMEOUT,
    MIGRATIONS,
    PAGE_SIZE_BYTES,
    SCHEMA_VERSION,
    SQLiteRepository,
    account_row,
)
from salesprocess.testing import (
    ReadsManyContract,
    _account,
    _accounts,
    _full_account,
    assert_reports_agree,
    assert_same_account,
    repository_state_machine,
)
from test_reports_sql import sample_accounts


class TestSQLiteInMemory(ReadsManyContract):
    """Every promise of the protocol, for SQLiteRepository(':memory:')."""

    def make_repository(self) -> AccountRepository:
        return SQLiteRepository(":memory:")


class TestSQLiteFile(ReadsManyContract):
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


# --- schema 3: referral codes -----------------------------------------------------------------


def _file_at_schema_2(path: Path, *accounts: Account) -> None:
    """Write ``path`` as salesprocess wrote files at schema 2, holding ``accounts``."""
    with sqlite3.connect(path, isolation_level=None) as old:
        old.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        for step in MIGRATIONS[:2]:
            for statement in step:
                old.execute(statement)
        old.execute("PRAGMA user_version = 2")
        for account in accounts:
            row = _old_row(account)
            assert row[8] is None  # schema 2 had no referral_code column: nothing is lost
            old.execute("INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row[:8])
    old.close()


def _old_row(account: Account) -> tuple[Any, ...]:
    """The row salesprocess wrote before schema 4: ``data`` holds the whole account."""
    row = account_row(account, 1)
    return (*row[:7], serialise.dumps(account, version=1), row[8])


def test_a_schema_2_file_is_migrated_to_referral_codes(tmp_path: Path) -> None:
    """A file at schema 2 gains the unique referral_code column; its accounts read as before."""
    path = tmp_path / "schema2.db"
    old = _prospect("old-1", email="old@example.com", phone="+4930123456")
    _file_at_schema_2(path, old, _prospect("old-2"), _prospect("old-3"))
    assert SCHEMA_VERSION >= 3
    with SQLiteRepository(path) as repository:
        assert_same_account(attrs.evolve(old, version=1), repository.get("old-1"))
        assert repository.find_id(email="old@example.com") == "old-1"
        assert repository.find_by_referral_code("K7M4PQ2X") is None
        saved = repository.save(
            attrs.evolve(repository.get("old-1"), referral_code="K7M4PQ2X"), expected_version=1
        )
        assert_same_account(saved, _present(repository.find_by_referral_code("K7M4PQ2X")))
        assert repository.find_id(referral_code="K7M4PQ2X") == "old-1"
        with pytest.raises(ConflictError, match="referral code K7M4PQ2X already belongs"):
            repository.save(
                attrs.evolve(repository.get("old-2"), referral_code="K7M4PQ2X"),
                expected_version=1,
            )
        # the accounts from before have NULL codes, and NULLs do not collide
        repository.save(attrs.evolve(repository.get("old-3"), name="Renamed"), expected_version=1)
    with sqlite3.connect(path) as migrated:
        version = migrated.execute("PRAGMA user_version").fetchone()[0]
        codes = migrated.execute("SELECT id, referral_code FROM accounts ORDER BY id").fetchall()
        unique = migrated.execute(
            "SELECT \"unique\" FROM pragma_index_list('accounts') "
            "WHERE name = 'accounts_referral_code'"
        ).fetchone()
    migrated.close()
    assert version == SCHEMA_VERSION
    assert codes == [("old-1", "K7M4PQ2X"), ("old-2", None), ("old-3", None)]
    assert unique == (1,)


def test_a_migrated_file_opens_again_without_migrating(tmp_path: Path) -> None:
    """Opening a schema 3 file twice keeps its accounts and codes (no step runs twice)."""
    path = tmp_path / "again.db"
    _file_at_schema_2(path, _prospect("old-1"))
    with SQLiteRepository(path) as repository:
        repository.add(_prospect("new-1", referral_code="ABCD"))
    with SQLiteRepository(path) as repository:
        assert repository.find_id(referral_code="ABCD") == "new-1"
        assert [a.id for a in repository.page()] == ["new-1", "old-1"]


def _present(account: Account | None) -> Account:
    assert account is not None
    return account


def test_referral_code_conflicts_name_the_code_and_its_owner() -> None:
    """A unique violation on referral_code becomes ConflictError naming the code and owner."""
    with SQLiteRepository(":memory:") as repository:
        repository.add(_prospect("a", referral_code="K7M4PQ2X"))
        b = repository.add(_prospect("b"))
        expected = "referral code K7M4PQ2X already belongs to account a"
        with pytest.raises(ConflictError, match=expected):
            repository.add(_prospect("c", referral_code="k7m4-pq2x"))
        with pytest.raises(ConflictError, match=expected):
            repository.save(attrs.evolve(b, referral_code="K7M4PQ2X"), expected_version=1)
        with pytest.raises(ConflictError, match=expected):
            repository.add_many([_prospect("d"), _prospect("e", referral_code="K7M4PQ2X")])
        assert [account.id for account in repository.page()] == ["a", "b"]


# --- the decode cache is primed on write ------------------------------------------------------


def _refuse_to_decode(text: str | bytes) -> Account:
    raise AssertionError(f"decoded {text!r:.60}: the cache should have held it")


def test_get_after_a_write_returns_the_account_written_without_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """add() and save() prime the decode cache: the next get() returns that very account."""
    serialise.cached_loads.cache_clear()
    with SQLiteRepository(":memory:") as repository:
        monkeypatch.setattr(serialise, "loads", _refuse_to_decode)
        stored = repository.add(_full_account())
        assert repository.get("acc-full") is stored
        saved = repository.save(attrs.evolve(stored, name="Renamed"), expected_version=1)
        assert repository.get("acc-full") is saved
        assert repository.find_by_referral_code("K7M4PQ2X") is saved
        assert repository.find_by_email("einkauf@mueller.example") is saved
        info = serialise.cached_loads.cache_info()
        assert (info.misses, info.currsize) == (0, 2)


def test_failed_and_bulk_writes_do_not_prime_the_cache() -> None:
    """A refused add or save leaves the cache alone; so does add_many (a bulk load)."""
    serialise.cached_loads.cache_clear()
    with SQLiteRepository(":memory:") as repository:
        repository.add_many([_prospect("a", email="ann@example.com"), _prospect("b")])
        assert serialise.cached_loads.cache_info().currsize == 0
        with pytest.raises(ConflictError):
            repository.add(_prospect("c", email="ann@example.com"))
        with pytest.raises(ConflictError):
            repository.save(attrs.evolve(_prospect("a"), name="Stale"), expected_version=5)
        assert serialise.cached_loads.cache_info().currsize == 0
        assert repository.get("a").name == "Acme"


def test_a_rolled_back_write_that_primed_the_cache_is_never_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After atomic() rolls back a primed write, get() returns what is stored, not the ghost."""
    serialise.cached_loads.cache_clear()
    with SQLiteRepository(":memory:") as repository:
        stored = repository.add(_prospect("a"))

        def block() -> None:
            with repository.atomic():
                repository.save(attrs.evolve(stored, name="Rolled back"), expected_version=1)
                repository.add(_prospect("ghost"))
                raise _Boom

        with pytest.raises(_Boom):
            block()
        assert repository.get("a") is stored
        with pytest.raises(NotFound):
            repository.get("ghost")
        # the same account written again writes the same text: the remembered account is equal
        monkeypatch.setattr(serialise, "loads", _refuse_to_decode)
        again = repository.save(attrs.evolve(stored, name="Rolled back"), expected_version=1)
        assert repository.get("a") is again


# --- schema 4: the read model -----------------------------------------------------------------


def _file_at_schema_3(path: Path, *accounts: Account) -> None:
    """Write ``path`` as salesprocess wrote files at schema 3, holding ``accounts``."""
    with sqlite3.connect(path, isolation_level=None) as old:
        old.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        for step in MIGRATIONS[:3]:
            for statement in step:
                old.execute(statement)
        old.execute("PRAGMA user_version = 3")
        for account in accounts:
            old.execute(
                "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", _old_row(account)
            )
    old.close()


def test_a_schema_3_file_gains_the_read_model_and_answers_reports(tmp_path: Path) -> None:
    """A schema 3 file is filled from its JSON; reports in SQL equal the pure functions."""
    path = tmp_path / "schema3.db"
    stored = [attrs.evolve(account, version=1) for account in sample_accounts()]
    _file_at_schema_3(path, *stored)
    with SQLiteRepository(path) as repository:
        for account in stored:
            assert_same_account(account, repository.get(account.id))
        for days in (-400, 0, 3, 10, 400):
            assert_reports_agree(repository, as_of=_T0 + timedelta(days=days))
        sales = SalesProcess(repository=repository, clock=FixedClock(_T0 + timedelta(days=30)))
        bought = sales.record_purchase("m-buyer", Money("1.25", "EUR"))
        assert_same_account(bought, repository.get("m-buyer"))
        assert_reports_agree(repository, as_of=_T0 + timedelta(days=40))
    with sqlite3.connect(path) as migrated:
        version = migrated.execute("PRAGMA user_version").fetchone()[0]
        rows = migrated.execute(
            "SELECT count(*) FROM purchases WHERE account_id = 'm-buyer'"
        ).fetchone()[0]
    migrated.close()
    assert version == SCHEMA_VERSION == 7
    assert rows == len(bought.purchases)
    with SQLiteRepository(path) as again:  # opens without migrating twice
        assert_same_account(bought, again.get("m-buyer"))
        assert_reports_agree(again, as_of=_T0 + timedelta(days=40))


def test_the_referral_report_reads_only_the_indexed_referrers(tmp_path: Path) -> None:
    """Schema 5: a partial index holds the rows that may hold referrals; the report uses it."""
    path = tmp_path / "referrals.db"
    referrer = Account(
        "referrer", "Referrer", Source("referral"), _T0, version=1,
        referrals=(Referral("m-buyer", _T0), Referral("gone", _T0, new=False)),
    )  # fmt: skip
    namesake = Account(
        "namesake", "Namesake", Source("referral"), _T0, version=1, attributes={"referrals": 3}
    )
    stored = [attrs.evolve(account, version=1) for account in sample_accounts()]
    _file_at_schema_3(path, *stored, referrer, namesake)
    with SQLiteRepository(path) as repository:
        assert_reports_agree(repository, as_of=_T0)
        assert repository.report_referral_stats().by_referrer["referrer"].referrals == 1
    with sqlite3.connect(path) as migrated:
        plan = migrated.execute(f"EXPLAIN QUERY PLAN {readmodel.REFERRERS}").fetchall()
        indexed = {row[0] for row in migrated.execute(readmodel.REFERRERS)}
    migrated.close()
    assert "USING INDEX accounts_referring" in str(plan)
    assert indexed == {"referrer", "namesake"}


def test_a_schema_3_file_with_an_unreadable_account_is_left_as_it_was(tmp_path: Path) -> None:
    """The migration stops at JSON that is not an account: StorageError, the file unchanged."""
    path = tmp_path / "damaged.db"
    _file_at_schema_3(path, _prospect("fine"))
    with sqlite3.connect(path, isolation_level=None) as editor:
        editor.execute("UPDATE accounts SET data = json_set(data, '$.stage', 42)")
    editor.close()
    with pytest.raises(StorageError, match="not a valid account"):
        SQLiteRepository(path)
    with sqlite3.connect(path) as untouched:
        assert untouched.execute("PRAGMA user_version").fetchone()[0] == 3
    untouched.close()


def test_a_purchase_on_a_long_account_writes_one_row(tmp_path: Path) -> None:
    """A save that adds a purchase appends its row: the stored rows are not rewritten."""
    with SQLiteRepository(tmp_path / "long.db") as repository:
        sales = SalesProcess(repository=repository, clock=FixedClock(_T0))
        lead = sales.capture_lead("Long", email="long@x.example", channel="referral")
        sales.qualify(lead.id, override="walk-in")
        for _ in range(50):
            sales.record_purchase(lead.id, Money("1.00", "EUR"))
        assert repository._connection is not None
        statements: list[str] = []
        repository._connection.set_trace_callback(statements.append)
        sales.record_purchase(lead.id, Money("2.00", "EUR"))
        repository._connection.set_trace_callback(None)
        written = [
            re.search(r"(?:INTO|FROM) (\w+)", statement).group(1)  # type: ignore[union-attr]
            for statement in statements
            if statement.lstrip().upper().startswith(("INSERT", "DELETE"))
        ]
        assert written == ["purchases", "purchase_tallies"]


# --- schema 6: screenings as rows ---------------------------------------------------------------


# The columns schema 7 moves from an accounts row to its state row.
_MOVED = ("version", "stamp", "screening_count", "screened_at")


def _picked(columns: Iterable[str]) -> str:
    """Return ``columns`` selected from ``a`` (accounts) and ``s`` (its state row), joined."""
    return ", ".join(("s." if column in _MOVED else "a.") + column for column in columns)


def _file_at_schema_6(path: Path, accounts: list[Account], saves: int = 0) -> list[Account]:
    """Write ``path`` as salesprocess wrote files at schema 6; return the accounts as stored.

    Schema 6 kept an account's version, stamp and screenings' count on its ``accounts`` row.
    This version stores the accounts (and saves the ``n``-th ``n % (saves + 1)`` times, for
    versions above 1) in a file of its own; ``path`` gets schema 6's own tables, by its
    migrations, and their rows from that file.
    """
    new = path.with_name(f"{path.stem}-current.db")
    with SQLiteRepository(new) as repository:
        repository.add_many(accounts)
        for number, account in enumerate(accounts):
            for _ in range(number % (saves + 1)):
                current = repository.get(account.id)
                repository.save(
                    attrs.evolve(current, name=f"{current.name} again"),
                    expected_version=current.version,
                )
        stored = list(repository.page(limit=10_000))
    with sqlite3.connect(path, isolation_level=None) as old:
        old.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        for step in MIGRATIONS[:6]:
            for statement in step:
                old.execute(statement)
        old.execute("ATTACH DATABASE ? AS current", (str(new),))
        columns = [row[1] for row in old.execute("PRAGMA main.table_info(accounts)")]
        old.execute(
            f"INSERT INTO main.accounts ({', '.join(columns)}) SELECT {_picked(columns)} "
            "FROM current.accounts AS a JOIN current.account_states AS s ON s.id = a.id"
        )
        for table in ("purchases", "stage_changes", "purchase_tallies", "screenings"):
            old.execute(f"INSERT INTO main.{table} SELECT * FROM current.{table}")
        old.execute("DETACH DATABASE current")
        old.execute("PRAGMA user_version = 6")
    old.close()
    return stored


def _file_at_schema_5(path: Path, accounts: list[Account]) -> list[Account]:
    """Write ``path`` as salesprocess wrote files at schema 5; return the accounts as stored.

    Schema 5 kept an account's screenings in its JSON: the file is written at schema 6, then
    its screening rows are put back into each account's JSON and the table and columns of
    schema 6 dropped.
    """
    stored = _file_at_schema_6(path, accounts)
    with sqlite3.connect(path, isolation_level=None) as old:
        for account in stored:
            prefix = attrs.evolve(account, purchases=())
            old.execute(
                "UPDATE accounts SET data = ? WHERE id = ?",
                (serialise.dumps(prefix, version=account.version), account.id),
            )
        old.execute("DROP TABLE screenings")
        old.execute("ALTER TABLE accounts DROP COLUMN screening_count")
        old.execute("ALTER TABLE accounts DROP COLUMN screened_at")
        old.execute("PRAGMA user_version = 5")
    old.close()
    return stored


_SCREENED = (
    Screening(_T0, "icp", "v1", passed=False),
    Screening(_T0.astimezone(timezone(timedelta(hours=-5))), "icp", "v2", passed=True),
    Screening(
        datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Berlin")), "i", "3", True
    ),
)


def _screened_accounts() -> list[Account]:
    base = sample_accounts()
    screened = [
        attrs.evolve(account, screenings=_SCREENED[: number % 4])
        for number, account in enumerate(base)
    ]
    full = attrs.evolve(
        _full_account(), id="full", email=None, phone=None, referral_code=None, version=0
    )
    return [*screened, full]


def _reads_back_and_saves(repository: SQLiteRepository, stored: list[Account]) -> Account:
    """Check a migrated file reads ``stored`` back whole; save a screening more to the first.

    The save appends to the rows the migration wrote, and a second save at the same version
    is stale. Return the saved account.
    """
    for account in stored:
        assert_same_account(account, repository.get(account.id))
    assert list(repository.page(limit=10_000)) == stored
    assert_reports_agree(repository, as_of=_T0 + timedelta(days=3))
    prospects = [a for a in stored if a.stage is Stage.PROSPECT and a.screenings]
    if prospects:
        latest = max(a.screenings[-1].at for a in prospects)
        assert repository.latest_screening(stage=Stage.PROSPECT) == latest
    first = repository.get(stored[0].id)
    more = attrs.evolve(first, screenings=(*first.screenings, Screening(_T0, "x", "1", True)))
    saved = repository.save(more, expected_version=first.version)
    with pytest.raises(StaleWrite):
        repository.save(more, expected_version=first.version)
    return saved


def test_a_schema_5_file_moves_its_screenings_into_rows(tmp_path: Path) -> None:
    """Schema 6 keeps screenings as rows: every account reads back equal, nothing in JSON."""
    path = tmp_path / "schema5.db"
    stored = _file_at_schema_5(path, _screened_accounts())
    assert sum(len(account.screenings) for account in stored) > 3
    with sqlite3.connect(path) as old:
        in_json = old.execute(
            "SELECT count(*) FROM accounts WHERE json_type(data, '$.screenings') IS NOT NULL"
        ).fetchone()[0]
        assert in_json == sum(1 for account in stored if account.screenings)
    old.close()
    with SQLiteRepository(path) as repository:
        saved = _reads_back_and_saves(repository, stored)
    with sqlite3.connect(path) as migrated:
        version = migrated.execute("PRAGMA user_version").fetchone()[0]
        rows = migrated.execute("SELECT count(*) FROM screenings").fetchone()[0]
        in_json = migrated.execute(
            "SELECT count(*) FROM accounts WHERE json_type(data, '$.screenings') IS NOT NULL"
        ).fetchone()[0]
    migrated.close()
    assert version == SCHEMA_VERSION == 7
    assert rows == sum(len(account.screenings) for account in stored) + 1
    assert in_json == 0
    with SQLiteRepository(path) as again:  # opens without migrating twice
        assert again.get(saved.id) == saved
        assert [again.get(a.id) for a in stored[1:]] == stored[1:]


@pytest.mark.parametrize(
    "old_file", [_file_at_schema_5, partial(_file_at_schema_6, saves=1)], ids=["schema5", "schema6"]
)
@settings(max_examples=25, deadline=None)
@given(accounts=st.lists(_accounts(), max_size=4, unique_by=lambda a: a.id))
def test_any_old_file_migrates_to_equal_accounts(
    old_file: Callable[[Path, list[Account]], list[Account]], accounts: list[Account]
) -> None:
    """Whatever the accounts (zones, hostile text, every kind of part), they read back equal."""
    unique = [
        attrs.evolve(account, email=None, phone=None, referral_code=None) for account in accounts
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "old.db"
        stored = old_file(path, unique)
        with SQLiteRepository(path) as repository:
            assert list(repository.page(limit=10_000)) == stored
            for account in stored:
                assert_same_account(account, repository.get(account.id))


def test_a_schema_5_file_with_an_unreadable_account_is_left_as_it_was(tmp_path: Path) -> None:
    """Moving the screenings stops at JSON that is not an account: the file is unchanged."""
    path = tmp_path / "damaged5.db"
    _file_at_schema_5(path, _screened_accounts()[:4])
    with sqlite3.connect(path, isolation_level=None) as editor:
        editor.execute("UPDATE accounts SET data = json_set(data, '$.stage', 42)")
    editor.close()
    with pytest.raises(StorageError, match="not a valid account"):
        SQLiteRepository(path)
    with sqlite3.connect(path) as untouched:
        assert untouched.execute("PRAGMA user_version").fetchone()[0] == 5
    untouched.close()


# --- schema 7: an account's state row --------------------------------------------------------

_ACCOUNTS_INDEXES = (
    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'accounts'"
)


# Every column of a schema 6 accounts row.
_ROW_COLUMNS = (*sqlite_module._COLUMNS, *_MOVED)


def test_a_new_file_has_the_columns_the_adapter_writes() -> None:
    """The accounts table is ``_COLUMNS`` (the progress but its stamp); the state row the rest."""
    with SQLiteRepository(":memory:") as repository:
        connection = repository._connection
        assert connection is not None
        accounts = tuple(row[1] for row in connection.execute("PRAGMA table_info(accounts)"))
        states = tuple(row[1] for row in connection.execute("PRAGMA table_info(account_states)"))
    assert accounts == sqlite_module._COLUMNS
    assert accounts[8:] == readmodel.PROGRESS_COLUMNS[:-1]
    assert states == ("id", *_MOVED)


def test_no_migration_needs_sqlite_3_35() -> None:
    """``ALTER TABLE ... DROP COLUMN`` needs SQLite 3.35; Pythons are built on older ones."""
    assert not [
        statement for step in MIGRATIONS for statement in step if "DROP COLUMN" in statement.upper()
    ]


def test_a_schema_6_file_moves_versions_and_stamps_to_state_rows(tmp_path: Path) -> None:
    """Schema 7 keeps version, stamp and screenings' count apart: all reads back equal."""
    path = tmp_path / "schema6.db"
    stored = _file_at_schema_6(path, _screened_accounts(), saves=2)
    assert {account.version for account in stored} == {1, 2, 3}
    with sqlite3.connect(path) as old:
        indexes_before = set(old.execute(_ACCOUNTS_INDEXES).fetchall())
        rowids_before = old.execute("SELECT rowid, id FROM accounts ORDER BY rowid").fetchall()
        rows_before = old.execute(
            f"SELECT rowid, {', '.join(_ROW_COLUMNS)} FROM accounts ORDER BY rowid"
        ).fetchall()
    old.close()
    with SQLiteRepository(path) as repository:
        connection = repository._connection
        assert connection is not None
        rows_after = connection.execute(
            f"SELECT a.rowid, {_picked(_ROW_COLUMNS)} FROM accounts AS a "
            "JOIN account_states AS s ON s.id = a.id ORDER BY a.rowid"
        ).fetchall()
        assert rows_after == rows_before  # every column of every row, the moved ones too
        saved = _reads_back_and_saves(repository, stored)
    with sqlite3.connect(path) as migrated:
        version = migrated.execute("PRAGMA user_version").fetchone()[0]
        columns = {row[1] for row in migrated.execute("PRAGMA table_info(accounts)")}
        states = migrated.execute("SELECT count(*) FROM account_states").fetchone()[0]
        indexes_after = set(migrated.execute(_ACCOUNTS_INDEXES).fetchall())
        rowids_after = migrated.execute("SELECT rowid, id FROM accounts ORDER BY rowid").fetchall()
    migrated.close()
    assert version == SCHEMA_VERSION == 7
    assert not columns & set(_MOVED)
    assert states == len(stored)
    assert indexes_after == indexes_before  # the rebuilt table has every index it had
    assert rowids_after == rowids_before
    with SQLiteRepository(path) as again:  # opens without migrating twice
        assert again.get(saved.id) == saved
        assert [again.get(a.id) for a in stored[1:]] == stored[1:]


def test_the_latest_screening_is_of_the_stage_asked_for() -> None:
    """latest_screening reads the rows' columns: the stage's latest, None for a stage without."""
    early, late = _T0 + timedelta(days=1), _T0 + timedelta(days=2)
    berlin = (_T0 + timedelta(days=1, hours=5)).astimezone(ZoneInfo("Europe/Berlin"))
    with SQLiteRepository(":memory:") as repository:
        assert repository.latest_screening(stage=Stage.PROSPECT) is None
        repository.add_many(
            [
                _prospect("a", screenings=(Screening(early, "c", "1", True),)),
                _prospect("b", screenings=(Screening(late, "c", "1", True),
                                           Screening(berlin, "c", "2", False))),
                _prospect("c"),
                _prospect("d", stage=Stage.QUALIFIED,
                          screenings=(Screening(late, "c", "1", True),)),
            ]
        )  # fmt: skip
        latest = repository.latest_screening(stage=Stage.PROSPECT)
        assert latest == berlin
        assert latest is not None
        assert latest.tzinfo == ZoneInfo("Europe/Berlin")
        assert repository.latest_screening(stage=Stage.QUALIFIED) == late
        assert repository.latest_screening(stage=Stage.CUSTOMER) is None


@pytest.mark.parametrize("criteria", ["c", "d"])
def test_a_bulk_screen_records_on_the_account_whose_id_holds_a_nul(criteria: str) -> None:
    """SQLite's JSON functions end a text at NUL: "a\\x00b" must not be taken for "a"."""
    from salesprocess import Criteria  # noqa: PLC0415
    from salesprocess.criteria_sql import prefilter  # noqa: PLC0415

    check = prefilter(Criteria.from_dict({">=": [{"var": "n"}, 50]}, name="c", version="1"))
    passed = Screening(_T0 + timedelta(days=1), "c", "1", True)
    failed = Screening(_T0 + timedelta(days=1), criteria, "1", False)  # "d": a CASE per column
    with SQLiteRepository(":memory:") as repository:
        repository.add_many(
            [
                _prospect("a\x00b", attributes={"n": 80}),
                _prospect("a\x00c", attributes={"n": 10}),
                _prospect("x", attributes={"n": 80}),
                _prospect("y", attributes={"n": 10}),
                _prospect("a", stage=Stage.QUALIFIED),
            ]
        )
        with repository.atomic():
            page = repository.screen_out(
                check, stage=Stage.PROSPECT, passed=passed, failed=failed, after=None, limit=10
            )
        assert {key: verdict for key, (verdict, _) in page.decided.items()} == {
            "a\x00b": True, "a\x00c": False, "x": True, "y": False,
        }  # fmt: skip
        for account_id, record in (("a\x00b", passed), ("a\x00c", failed), ("x", passed),
                                   ("y", failed)):  # fmt: skip
            screened = repository.get(account_id)
            assert (screened.version, screened.screenings) == (2, (record,))
        untouched = repository.get("a")
        assert (untouched.version, untouched.screenings) == (1, ())


# --- bulk loads: the secondary indexes built once, at commit -----------------------------------


def _schema(path: Path) -> set[tuple[str, str, str, str | None]]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    connection.close()
    return set(rows)


def _dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        lines = list(connection.iterdump())
        lines.append(str(connection.execute("PRAGMA user_version").fetchone()))
        lines.append(str(connection.execute("PRAGMA application_id").fetchone()))
    connection.close()
    return lines


def _leads(count: int, start: int = 0) -> list[Account]:
    return [
        Account(
            f"lead-{i:05d}",
            f"Lead {i}",
            Source("marketing_list"),
            _T0 + timedelta(minutes=i),
            email=f"lead{i}@list.example",
        )
        for i in range(start, start + count)
    ]


def _secondary_indexes(repository: SQLiteRepository) -> set[str]:
    assert repository._connection is not None
    return {
        name
        for (name,) in repository._connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
    }


def _captured(account: Account, zone: str | None) -> Account:
    """``account`` as a capture makes it: one change, into its stage, at its creation."""
    created = account.created_at if zone is None else account.created_at.astimezone(ZoneInfo(zone))
    entry = HistoryEntry(None, account.stage, "capture", created)
    return attrs.evolve(
        account, created_at=created, history=(entry,), purchases=(), screenings=(), version=0
    )


@settings(max_examples=60)
@given(strategies.accounts(), st.sampled_from([None, "Europe/Berlin", "America/New_York"]))
def test_add_many_stores_a_capture_as_add_does(account: Account, zone: str | None) -> None:
    """The bulk capture statement (its progress columns repeated in SQL) writes add's row.

    Every column but ``stamp`` (a bulk load writes 0, add a fresh stamp) is the same, for a
    capture into any stage, from any channel and campaign, in any zone.
    """
    lead = _captured(account, zone)
    assert readmodel.is_capture(lead)
    rows = []
    for store in ("add", "add_many"):
        with SQLiteRepository(":memory:") as repository:
            repository.add(lead) if store == "add" else repository.add_many([lead])
            assert repository._connection is not None
            row = repository._connection.execute("SELECT * FROM accounts").fetchone()
            names = [
                d[0] for d in repository._connection.execute("SELECT * FROM accounts").description
            ]
            rows.append(dict(zip(names, row, strict=True)))
            rows.append(repository._connection.execute(_STATE_BUT_STAMP).fetchall())
            assert repository.get(lead.id) == attrs.evolve(lead, version=1)
    assert rows[:2] == rows[2:]


# An account's state row but its stamp (add writes a fresh one, add_many 0).
_STATE_BUT_STAMP = (
    "SELECT id, version, screening_count, screened_at FROM account_states ORDER BY id"
)


@settings(max_examples=40, deadline=None)
@given(st.lists(strategies.accounts(), min_size=1, max_size=6, unique_by=lambda a: a.id))
def test_add_many_writes_the_state_rows_add_writes(accounts: list[Account]) -> None:
    """Captures and other accounts, screened or not: each state row as ``add`` writes it."""
    new = [
        attrs.evolve(account, version=0, email=None, phone=None, referral_code=None)
        for account in accounts
    ]
    states = []
    for store in ("add", "add_many"):
        with SQLiteRepository(":memory:") as repository:
            if store == "add":
                for account in new:
                    repository.add(account)
            else:
                repository.add_many(new)
            assert repository._connection is not None
            states.append(repository._connection.execute(_STATE_BUT_STAMP).fetchall())
            assert [repository.get(a.id) for a in new] == [attrs.evolve(a, version=1) for a in new]
    assert states[0] == states[1]
    assert len(states[1]) == len(new)


def test_add_many_gives_state_rows_once_the_largest_rowid_is_taken(tmp_path: Path) -> None:
    """Past rowid 2**63 - 1 SQLite picks new rowids at random: every new account still has
    its state row (found by a scan), and reads back."""
    path = tmp_path / "full.db"
    with SQLiteRepository(path) as repository:
        repository.add(_account("first", email="first@x.example"))
    with sqlite3.connect(path, isolation_level=None) as raw:
        raw.execute("UPDATE accounts SET rowid = 9223372036854775807 WHERE id = 'first'")
    raw.close()
    leads = [_account(f"lead-{n:04d}", email=f"lead{n}@x.example") for n in range(600)]
    with SQLiteRepository(path) as repository:
        assert repository.add_many(leads) == 600
        assert repository._connection is not None
        low = repository._connection.execute(
            "SELECT count(*) FROM accounts WHERE rowid < 9223372036854775807"
        ).fetchone()[0]
        states = repository._connection.execute("SELECT count(*) FROM account_states").fetchone()
        assert low == 600  # every new rowid was drawn at random, below the largest
        assert states[0] == 601
        assert [repository.get(lead.id).version for lead in leads] == [1] * 600


def test_a_new_file_gets_the_page_size_an_existing_one_keeps_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New files are made with PAGE_SIZE_BYTES pages; a file made with others still opens."""
    from salesprocess.storage import sqlite as module  # noqa: PLC0415 - patched below

    def page_size(path: Path) -> int:
        with sqlite3.connect(path) as connection:
            size: int = connection.execute("PRAGMA page_size").fetchone()[0]
        connection.close()
        return size

    with SQLiteRepository(tmp_path / "new.db") as repository:
        repository.add(_account("a", email="a@x.example"))
    assert page_size(tmp_path / "new.db") == PAGE_SIZE_BYTES == 8192
    monkeypatch.setattr(module, "PAGE_SIZE_BYTES", 4096)  # a file an earlier version made
    with SQLiteRepository(tmp_path / "old.db") as repository:
        repository.add(_account("a", email="a@x.example"))
    monkeypatch.undo()
    with SQLiteRepository(tmp_path / "old.db") as repository:
        repository.add(_account("b", email="b@x.example"))
        assert [a.id for a in repository.with_stage(Stage.PROSPECT)] == ["a", "b"]
    assert page_size(tmp_path / "old.db") == 4096


def test_a_bulk_load_into_an_empty_file_ends_with_the_same_schema(tmp_path: Path) -> None:
    """add_many of a big batch into an empty file: every index back at commit, reports agree."""
    fresh = tmp_path / "fresh.db"
    SQLiteRepository(fresh).close()
    path = tmp_path / "bulk.db"
    with SQLiteRepository(path) as repository:
        assert repository._connection is not None
        cache = repository._connection.execute("PRAGMA cache_size").fetchone()
        indexes = _secondary_indexes(repository)
        with repository.atomic():
            repository.add_many(_leads(600))
            kept = {name for name in indexes if not name.startswith("accounts_")}
            assert _secondary_indexes(repository) == {*kept, "accounts_referral_code"}
            assert repository.find_id(email="lead7@list.example") == "lead-00007"
            repository.add_many([*_leads(200, 600), *(attrs.evolve(a, version=0) for a in
                                 sample_accounts())])  # fmt: skip
        assert _secondary_indexes(repository) == indexes
        assert repository._connection.execute("PRAGMA cache_size").fetchone() == cache
        assert_reports_agree(repository, as_of=_T0 + timedelta(days=900))
        listed = [a.id for a in repository.with_stage(Stage.PROSPECT) if a.id.startswith("lead-")]
        assert listed[:3] == [
            "lead-00000", "lead-00001", "lead-00002",
        ]  # fmt: skip
    assert _schema(path) == _schema(fresh)
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        plan = connection.execute(f"EXPLAIN QUERY PLAN {readmodel.REFERRERS}").fetchall()
    connection.close()
    assert "USING INDEX accounts_referring" in str(plan)


def test_a_failed_bulk_load_leaves_the_file_exactly_as_it_was(tmp_path: Path) -> None:
    """A bulk load undone (its block's error, or a conflict) leaves every table and index."""
    path = tmp_path / "bulk.db"
    SQLiteRepository(path).close()
    before = _dump(path)
    with SQLiteRepository(path) as repository:
        indexes = _secondary_indexes(repository)
        with suppress(_Boom), repository.atomic():
            repository.add_many(_leads(1000))
            raise _Boom
        assert repository.page() == []
        assert _secondary_indexes(repository) == indexes
        with pytest.raises(ConflictError, match=r"lead3@list\.example"):
            repository.add_many([*_leads(700), _prospect("again", email="lead3@list.example")])
        assert _secondary_indexes(repository) == indexes
        assert repository.page() == []
    assert _dump(path) == before


def test_a_bulk_load_whose_index_build_fails_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If building the indexes again fails at commit, the whole block rolls back."""
    path = tmp_path / "bulk.db"
    SQLiteRepository(path).close()
    before = _dump(path)
    with SQLiteRepository(path) as repository:
        build = SQLiteRepository._build_indexes

        def half_then_full(self: SQLiteRepository, connection: sqlite3.Connection) -> None:
            self._rebuild = self._rebuild[: len(self._rebuild) // 2]
            build(self, connection)
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(SQLiteRepository, "_build_indexes", half_then_full)
        with pytest.raises(StorageError, match="full"):
            repository.add_many(_leads(800))
        monkeypatch.undo()
        assert _dump(path) == before
        assert repository.page() == []
        assert repository.add_many(_leads(500)) == 500
        assert _secondary_indexes(repository) >= {"accounts_stage_created", "accounts_referring"}


def test_a_savepoint_undoing_a_bulk_load_keeps_the_indexes(tmp_path: Path) -> None:
    """The drop undone by a nested block's rollback; the load after it still commits whole."""
    fresh = tmp_path / "fresh.db"
    SQLiteRepository(fresh).close()
    path = tmp_path / "bulk.db"
    with SQLiteRepository(path) as repository, repository.atomic():
        with suppress(_Boom), repository.atomic():
            repository.add_many(_leads(600))
            raise _Boom
        repository.add_many(_leads(600, 600))
        repository.add(_prospect("one", email="one@x.example"))
    assert _schema(path) == _schema(fresh)
    with SQLiteRepository(path) as repository:
        assert len(repository.page(limit=2000)) == 601
        assert repository.get_many(["lead-00000", "lead-00600"]).keys() == {"lead-00600"}


def test_a_small_batch_or_a_stored_account_keeps_the_indexes(tmp_path: Path) -> None:
    """Below 500 accounts, or into a table holding one, add_many keeps every index."""
    with SQLiteRepository(tmp_path / "s.db") as repository:
        indexes = _secondary_indexes(repository)
        with repository.atomic():
            repository.add_many(_leads(499))
            assert _secondary_indexes(repository) == indexes
            repository.add_many(_leads(600, 499))
            assert _secondary_indexes(repository) == indexes
