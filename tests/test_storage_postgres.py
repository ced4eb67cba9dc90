"""The PostgreSQL repository keeps the storage contract, on its own connection or the app's."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from salesprocess import FixedClock, SalesProcess
from salesprocess.account import Account, Source
from salesprocess.errors import ConflictError, NotFound, StorageError, ValidationError
from salesprocess.money import Money
from salesprocess.stage import Stage
from salesprocess.storage import serialise
from salesprocess.storage.protocol import AccountRepository
from salesprocess.testing import (
    HOSTILE_TEXT,
    ReadsManyContract,
    assert_reports_agree,
    assert_same_account,
)
from test_reports_sql import sample_accounts

psycopg = pytest.importorskip("psycopg", reason="needs the postgres extra")

from salesprocess.storage import postgres  # noqa: E402
from salesprocess.storage.postgres import PostgresRepository  # noqa: E402


class TestPostgresRepository(ReadsManyContract):
    """Every promise of the protocol, for PostgresRepository on a DSN (its own connection)."""

    @pytest.fixture(autouse=True)
    def _schemas(self, postgres_schema: Callable[[], str]) -> None:
        self.new_schema = postgres_schema

    def make_repository(self) -> AccountRepository:
        return PostgresRepository(self.new_schema(), migrate=True)


class TestPostgresOnAppConnection(ReadsManyContract):
    """The protocol holds on an app-owned connection that is not in autocommit mode."""

    @pytest.fixture(autouse=True)
    def _schemas(self, postgres_schema: Callable[[], str]) -> None:
        self.new_schema = postgres_schema

    def make_repository(self) -> AccountRepository:
        return PostgresRepository(psycopg.connect(self.new_schema()), migrate=True)

    def dispose_repository(self, repository: AccountRepository) -> None:
        assert isinstance(repository, PostgresRepository)
        connection = repository.connection
        repository.close()
        assert not connection.closed, "the repository closed a connection it does not own"
        connection.close()


class TestPostgresInsideAppTransaction(ReadsManyContract):
    """The protocol holds inside a transaction the app opened and never commits."""

    @pytest.fixture(autouse=True)
    def _schemas(self, postgres_schema: Callable[[], str]) -> None:
        self.new_schema = postgres_schema

    def make_repository(self) -> AccountRepository:
        connection: Any = psycopg.connect(self.new_schema())
        connection.execute("SELECT 1")  # opens the app's transaction
        return PostgresRepository(connection, migrate=True)

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
    fields.setdefault("name", "Acme")
    return Account(account_id, source=Source("referral"), created_at=_T0, **fields)


def test_add_many_on_a_failed_transaction_raises_storage_error_cleanly(
    postgres_schema: Callable[[], str], caplog: pytest.LogCaptureFixture
) -> None:
    """add_many() on a connection whose transaction failed raises StorageError, logs nothing."""
    with psycopg.connect(postgres_schema()) as connection:
        repository = PostgresRepository(connection, migrate=True)
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
    """The cursor add_many() copies through is closed, whether the COPY succeeds or fails.

    A batch holding a bad item is refused before any COPY (every item is checked first).
    """
    opened: list[Any] = []

    class Tracked(psycopg.Cursor):  # type: ignore[type-arg]
        def copy(self, *args: Any, **kwargs: Any) -> Any:
            opened.append(self)
            return super().copy(*args, **kwargs)

    with PostgresRepository(postgres_schema(), migrate=True) as repository:
        repository.connection.cursor_factory = Tracked
        assert repository.add_many([_prospect("a"), _prospect("b")]) == 2
        with pytest.raises(ConflictError):
            repository.add_many([_prospect("c"), _prospect("a")])
        with pytest.raises(ValidationError):
            repository.add_many([_prospect("d"), 1])  # type: ignore[list-item]
        assert len(opened) == 2
        assert all(cursor.closed for cursor in opened)
        assert [account.id for account in repository.page()] == ["a", "b"]


def test_add_many_inside_the_apps_transaction_survives_a_conflict(
    postgres_schema: Callable[[], str],
) -> None:
    """A conflicting add_many() in the app's transaction is undone alone; the app's work stays."""
    with psycopg.connect(postgres_schema()) as connection:
        repository = PostgresRepository(connection, migrate=True)
        with connection.transaction():
            repository.add(_prospect("a", email="ann@acme.example"))
            with pytest.raises(ConflictError):
                repository.add_many([_prospect("b"), _prospect("c", email="ann@acme.example")])
            assert repository.add_many([_prospect("d")]) == 1
        assert [account.id for account in repository.page()] == ["a", "d"]


def test_a_version_beyond_the_integer_column_is_refused(postgres_schema: Callable[[], str]) -> None:
    """save(expected_version=2**31 - 1) would store 2**31: refused with ValidationError."""
    with PostgresRepository(postgres_schema(), migrate=True) as repository:
        stored = repository.add(_prospect("a"))
        with pytest.raises(ValidationError, match="expected_version"):
            repository.save(stored, expected_version=2**31 - 1)
        assert repository.get("a") == stored


# --- schema 3: referral codes -----------------------------------------------------------------


def _old_row(account: Account) -> tuple[Any, ...]:
    """The row salesprocess wrote before schema 4: ``data`` holds the whole account."""
    row = postgres._row(account, 1)
    return (*row[:7], serialise.dumps(account, version=1), row[8])


def test_a_schema_2_database_is_migrated_to_referral_codes(
    postgres_schema: Callable[[], str],
) -> None:
    """A database at schema 2 gains the unique referral_code column; old accounts read as before."""
    dsn = postgres_schema()
    old = _prospect("old-1", email="old@example.com", name=HOSTILE_TEXT[6])
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("CREATE TABLE salesprocess_schema (version integer)")
        admin.execute("INSERT INTO salesprocess_schema VALUES (2)")
        for step in postgres.MIGRATIONS[:2]:
            for statement in step:
                admin.execute(statement)
        for account in (old, _prospect("old-2")):
            row = _old_row(account)
            assert row[8] is None  # schema 2 had no referral_code column: nothing is lost
            admin.execute(
                "INSERT INTO salesprocess_accounts (id, name, email, phone, stage, created_at, "
                "version, data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                row[:8],
            )
    assert postgres.SCHEMA_VERSION >= 3
    with PostgresRepository(dsn, migrate=True) as repository:
        assert_same_account(attrs.evolve(old, version=1), repository.get("old-1"))
        assert repository.find_by_referral_code("K7M4PQ2X") is None
        saved = repository.save(
            attrs.evolve(repository.get("old-1"), referral_code="K7M4PQ2X"), expected_version=1
        )
        found = repository.find_by_referral_code("K7M4PQ2X")
        assert found is not None
        assert_same_account(saved, found)
        assert repository.find_id(referral_code="K7M4PQ2X") == "old-1"
        with pytest.raises(ConflictError, match="referral code K7M4PQ2X already belongs"):
            repository.save(
                attrs.evolve(repository.get("old-2"), referral_code="K7M4PQ2X"),
                expected_version=1,
            )
    with psycopg.connect(dsn, autocommit=True) as admin:
        version = admin.execute("SELECT version FROM salesprocess_schema").fetchone()
        codes = admin.execute(
            "SELECT id, referral_code FROM salesprocess_accounts ORDER BY id"
        ).fetchall()
        unique = admin.execute(
            "SELECT indisunique FROM pg_index "
            "WHERE indexrelid = 'salesprocess_accounts_referral_code_key'::regclass"
        ).fetchone()
    assert version == (postgres.SCHEMA_VERSION,)
    assert codes == [("old-1", "K7M4PQ2X"), ("old-2", None)]
    assert unique == (True,)


def test_referral_code_conflicts_name_the_code_and_its_owner(
    postgres_schema: Callable[[], str],
) -> None:
    """UniqueViolation on referral_code (INSERT, UPDATE, COPY) names the code and its owner."""
    owner = HOSTILE_TEXT[6]  # an id with a NUL inside is named as it is, not escaped
    with PostgresRepository(postgres_schema(), migrate=True) as repository:
        repository.add(_prospect(owner, referral_code="K7M4PQ2X"))
        b = repository.add(_prospect("b"))
        expected = f"referral code K7M4PQ2X already belongs to account {owner}"
        for write in (
            lambda: repository.add(_prospect("c", referral_code="k7m4-pq2x")),
            lambda: repository.save(attrs.evolve(b, referral_code="K7M4PQ2X"), expected_version=1),
            lambda: repository.add_many([_prospect("d"), _prospect("e", referral_code="K7M4PQ2X")]),
        ):
            with pytest.raises(ConflictError) as raised:
                write()
            assert str(raised.value) == expected
        with pytest.raises(ConflictError, match="referral code ABCD already belongs to account f"):
            repository.add_many(
                [_prospect("f", referral_code="ABCD"), _prospect("g", referral_code="ABCD")]
            )
        assert [account.id for account in repository.page()] == sorted([owner, "b"])
        assert repository.find_id(referral_code="K7M4PQ2X") == owner


# --- the decode cache is primed on write ------------------------------------------------------


def _refuse_to_decode(text: str | bytes) -> Account:
    raise AssertionError(f"decoded {text!r:.60}: the cache should have held it")


def test_get_after_a_write_returns_the_account_written_without_decoding(
    postgres_schema: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The json column gives back the text written, so get() after add/save decodes nothing."""
    serialise.cached_loads.cache_clear()
    with PostgresRepository(postgres_schema(), migrate=True) as repository:
        monkeypatch.setattr(serialise, "loads", _refuse_to_decode)
        hostile = _prospect(
            HOSTILE_TEXT[6],
            name=HOSTILE_TEXT[3],
            attributes={text: text for text in HOSTILE_TEXT},
            referral_code="ABCD",
        )
        stored = repository.add(hostile)
        assert repository.get(hostile.id) is stored
        saved = repository.save(attrs.evolve(stored, name="Renamed"), expected_version=1)
        assert repository.get(hostile.id) is saved
        assert repository.find_by_referral_code("ABCD") is saved
        assert serialise.cached_loads.cache_info().misses == 0


def test_a_rolled_back_write_that_primed_the_cache_is_never_read(
    postgres_schema: Callable[[], str],
) -> None:
    """After the app's transaction rolls back a primed write, get() returns what is stored."""
    serialise.cached_loads.cache_clear()
    with psycopg.connect(postgres_schema()) as connection:
        repository = PostgresRepository(connection, migrate=True)
        stored = repository.add(_prospect("a"))
        connection.commit()
        with connection.transaction(force_rollback=True):
            repository.save(attrs.evolve(stored, name="Rolled back"), expected_version=1)
            repository.add(_prospect("ghost"))
        assert repository.get("a") is stored
        with pytest.raises(NotFound):
            repository.get("ghost")


# --- schema 4: the read model -----------------------------------------------------------------


def test_a_schema_3_database_gains_the_read_model_and_answers_reports(
    postgres_schema: Callable[[], str],
) -> None:
    """A schema 3 database is filled from its JSON; reports in SQL equal the pure functions."""
    dsn = postgres_schema()
    stored = [attrs.evolve(account, version=1) for account in sample_accounts()]
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("CREATE TABLE salesprocess_schema (version integer)")
        admin.execute("INSERT INTO salesprocess_schema VALUES (3)")
        for step in postgres.MIGRATIONS[:3]:
            for statement in step:
                admin.execute(statement)
        for account in stored:
            admin.execute(
                "INSERT INTO salesprocess_accounts (id, name, email, phone, stage, created_at, "
                "version, data, referral_code) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                _old_row(account),
            )
    with PostgresRepository(dsn, migrate=True) as repository:
        for account in stored:
            assert_same_account(account, repository.get(account.id))
        for days in (-400, 0, 3, 10, 400):
            assert_reports_agree(repository, as_of=_T0 + timedelta(days=days))
        sales = SalesProcess(repository=repository, clock=FixedClock(_T0 + timedelta(days=30)))
        bought = sales.record_purchase("m-buyer", Money("1.25", "EUR"))
        assert_same_account(bought, repository.get("m-buyer"))
        assert_reports_agree(repository, as_of=_T0 + timedelta(days=40))
    with psycopg.connect(dsn, autocommit=True) as admin:
        version = admin.execute("SELECT version FROM salesprocess_schema").fetchone()
        rows = admin.execute(
            "SELECT count(*) FROM salesprocess_purchases WHERE account_id = 'm-buyer'"
        ).fetchone()
    assert version == (postgres.SCHEMA_VERSION,) == (4,)
    assert rows == (len(bought.purchases),)
    with PostgresRepository(dsn) as again:  # opens without migrating twice
        assert_same_account(bought, again.get("m-buyer"))


def test_reports_join_the_apps_transaction(postgres_schema: Callable[[], str]) -> None:
    """Inside the app's transaction a report sees its uncommitted writes, and leaves it open."""
    with psycopg.connect(postgres_schema()) as connection:
        repository = PostgresRepository(connection, migrate=True)
        sales = SalesProcess(repository=repository, clock=FixedClock(_T0))
        connection.commit()
        with connection.transaction(force_rollback=True):
            lead = sales.capture_lead("In", email="in@x.example", channel="referral")
            sales.qualify(lead.id, override="walk-in")
            sales.record_purchase(lead.id, Money("3.00", "EUR"))
            assert sales.revenue()["EUR"].total == Money("3.00", "EUR")
            assert sales.funnel().rung(Stage.CUSTOMER).reached == 1
        assert len(sales.revenue()) == 0
