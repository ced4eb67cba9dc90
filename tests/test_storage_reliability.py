"""Storage under stress: concurrent processes, kill -9, damaged files and failing drivers."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from salesprocess.account import Account, Call, CallOutcome, HistoryEntry, Source
from salesprocess.errors import ConflictError, NotFound, StorageError
from salesprocess.money import Money
from salesprocess.process import SalesProcess
from salesprocess.stage import Stage
from salesprocess.storage.protocol import AccountRepository
from salesprocess.storage.sqlite import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    SQLiteRepository,
    account_row,
)
from salesprocess.testing import HOSTILE_TEXT, assert_same_account

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
WORKERS = 4
COMMANDS = 250
ACCOUNTS = 10
SPAWN = multiprocessing.get_context("spawn")


def prospect(account_id: str, **fields: Any) -> Account:
    return Account(
        account_id,
        f"Account {account_id}",
        Source("cold_outreach"),
        T0,
        history=(HistoryEntry(None, Stage.PROSPECT, "capture", T0),),
        **fields,
    )


def open_repository(kind: str, target: str) -> AccountRepository:
    if kind == "sqlite":
        return SQLiteRepository(target)
    from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415

    return PostgresRepository(target, migrate=True)


@pytest.fixture
def importable_by_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make this module importable by name in spawned processes (they inherit sys.path)."""
    root = Path(__file__).resolve().parents[__name__.count(".")]
    monkeypatch.syspath_prepend(str(root))


# --- (a) concurrent commands: each lands once or raises ConflictError ------------------------


def purchase_worker(
    kind: str,
    target: str,
    worker: int,
    ids: list[str],
    start: Any,
    results: Any,
) -> None:
    """Record COMMANDS purchases on random accounts; report which landed and which conflicted."""
    repository = open_repository(kind, target)
    # Few retries for some workers, so that commands do run out of them and must write nothing.
    sales = SalesProcess(repository, max_retries=worker % 3)
    chooser = random.Random(worker)
    landed: list[tuple[str, str]] = []
    conflicted: list[tuple[str, str]] = []
    start.wait(timeout=120)
    for number in range(COMMANDS):
        account_id = ids[chooser.randrange(len(ids))]
        reference = f"w{worker}-{number:03d}"
        try:
            sales.record_purchase(
                account_id, Money(f"{worker}.{number:03d}", "EUR"), at=T0, reference=reference
            )
        except ConflictError:
            conflicted.append((account_id, reference))
        else:
            landed.append((account_id, reference))
    close = getattr(repository, "close", None)
    if close is not None:
        close()
    results.put((worker, landed, conflicted))


def run_workers(kind: str, target: str) -> None:
    """Set up qualified accounts, hammer them from WORKERS processes, check every outcome."""
    setup = open_repository(kind, target)
    sales = SalesProcess(setup)
    ids = [
        sales.qualify(
            sales.capture_lead(
                f"Lead {n}", email=f"lead{n}@example.com", channel="cold_outreach", at=T0
            ).id,
            override="reliability test",
            at=T0,
        ).id
        for n in range(ACCOUNTS)
    ]
    start = SPAWN.Barrier(WORKERS)
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=purchase_worker, args=(kind, target, n, ids, start, results))
        for n in range(WORKERS)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    landed: dict[str, list[str]] = {account_id: [] for account_id in ids}
    commands = 0
    for _worker, worker_landed, worker_conflicted in outcomes:
        commands += len(worker_landed) + len(worker_conflicted)
        for account_id, reference in worker_landed:
            landed[account_id].append(reference)
    assert commands == WORKERS * COMMANDS
    for account_id in ids:
        stored = setup.get(account_id)
        references = [purchase.reference for purchase in stored.purchases]
        assert len(references) == len(set(references)), "a command landed twice"
        assert sorted(references) == sorted(landed[account_id]), "lost or phantom purchases"
        # one write to add, one to qualify, one per landed purchase: no write was lost
        assert stored.version == 2 + len(references)
        assert stored.stage is (Stage.CUSTOMER if references else Stage.QUALIFIED)
    assert sum(len(refs) for refs in landed.values()) > 0
    getattr(setup, "close", lambda: None)()


@pytest.mark.usefixtures("importable_by_workers")
def test_concurrent_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    """4 processes x 250 purchases on 10 accounts: each lands once or raises ConflictError."""
    run_workers("sqlite", str(tmp_path / "shared.db"))


@pytest.mark.usefixtures("importable_by_workers")
def test_concurrent_processes_on_postgres(postgres_schema: Callable[[], str]) -> None:
    """The same workload on PostgreSQL: no lost update, no duplicate."""
    run_workers("postgres", postgres_schema())


# --- (b) kill -9 in the middle of a big add_many ---------------------------------------------


def bulk_worker(path: str, count: int, commit: bool, ready: Any, release: Any) -> None:
    """Add ``count`` accounts in one add_many; signal midway (or after commit) and wait."""
    repository = SQLiteRepository(path)

    def accounts() -> Iterator[Account]:
        for number in range(count):
            yield prospect(f"bulk-{number:06d}", email=f"bulk{number}@example.com")
        if not commit:
            ready.set()  # every row is inserted, the transaction is still open
            release.wait(timeout=120)

    repository.add_many(accounts())
    ready.set()
    release.wait(timeout=120)


@pytest.mark.usefixtures("importable_by_workers")
@pytest.mark.parametrize("commit", [False, True], ids=["mid-transaction", "after-commit"])
def test_kill_during_add_many_leaves_all_or_nothing(tmp_path: Path, commit: bool) -> None:
    """SIGKILL during a big add_many leaves a readable file with all of it or none of it."""
    path = str(tmp_path / "killed.db")
    with SQLiteRepository(path) as repository:
        kept = [repository.add(prospect(f"kept-{n}")) for n in range(3)]
    ready, release = SPAWN.Event(), SPAWN.Event()
    count = 20_000
    process = SPAWN.Process(target=bulk_worker, args=(path, count, commit, ready, release))
    process.start()
    try:
        assert ready.wait(timeout=240), "the worker never reached the kill point"
        os.kill(process.pid, signal.SIGKILL)  # type: ignore[arg-type]
    finally:
        process.join(timeout=60)
    assert process.exitcode == -signal.SIGKILL
    with SQLiteRepository(path) as repository:
        assert sum(repository.count_by_stage().values()) == 3 + (count if commit else 0)
        for account in kept:
            assert_same_account(account, repository.get(account.id))
        if commit:
            assert repository.get(f"bulk-{count - 1:06d}").version == 1
        else:
            with pytest.raises(NotFound):
                repository.get("bulk-000000")
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()


# --- (c) hostile data, damaged and foreign files ---------------------------------------------


def test_hostile_text_survives_closing_and_reopening(tmp_path: Path) -> None:
    """Hostile names, notes and attributes come back exactly from a reopened file."""
    path = tmp_path / "hostile.db"
    stored = []
    with SQLiteRepository(path) as repository:
        for number, text in enumerate(HOSTILE_TEXT):
            account = prospect(
                f"hostile-{number}",
                calls=(Call(CallOutcome.INTERESTED, T0, text),),
                attributes={text: [text, {text: text}]},
            )
            stored.append(repository.add(attrs.evolve(account, name=text)))
    with SQLiteRepository(path) as repository:
        for account in stored:
            assert_same_account(account, repository.get(account.id))


def test_random_bytes_are_refused(tmp_path: Path) -> None:
    """A file of random bytes raises StorageError naming the file, not a driver error."""
    path = tmp_path / "noise.db"
    path.write_bytes(random.Random(7).randbytes(64 * 1024))
    with pytest.raises(StorageError, match=r"noise.db") as raised:
        SQLiteRepository(path)
    assert "not a salesprocess database" in str(raised.value)


def test_a_text_file_is_refused(tmp_path: Path) -> None:
    """A text file raises StorageError."""
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 200)
    with pytest.raises(StorageError, match=r"notes.txt"):
        SQLiteRepository(path)


def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    """A valid SQLite database with other tables raises StorageError and is left untouched."""
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as foreign:
        foreign.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    foreign.close()
    with pytest.raises(StorageError, match=r"another application.*invoices"):
        SQLiteRepository(path)
    with sqlite3.connect(path) as foreign:
        tables = foreign.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    foreign.close()
    assert tables == [("invoices",)]


def test_a_foreign_application_id_is_refused(tmp_path: Path) -> None:
    """A database stamped by another application (application_id) raises StorageError."""
    path = tmp_path / "stamped.db"
    with sqlite3.connect(path) as foreign:
        foreign.execute("PRAGMA application_id = 1234")
    foreign.close()
    with pytest.raises(StorageError, match="application_id 0x4d2"):
        SQLiteRepository(path)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file written by a newer salesprocess raises StorageError asking for an upgrade."""
    path = tmp_path / "future.db"
    SQLiteRepository(path).close()
    with sqlite3.connect(path) as newer:
        newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.close()
    with pytest.raises(StorageError, match="newer salesprocess"):
        SQLiteRepository(path)


def test_an_older_schema_is_migrated(tmp_path: Path) -> None:
    """A file at schema 1 is migrated forward on open, keeping its accounts."""
    path = tmp_path / "old.db"
    row = account_row(prospect("old-1", email="old@example.com"), 1)
    with sqlite3.connect(path, isolation_level=None) as old:
        old.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        for statement in MIGRATIONS[0]:
            old.execute(statement)
        old.execute("PRAGMA user_version = 1")
        old.execute("INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row[:8])
    old.close()
    with SQLiteRepository(path) as repository:
        assert repository.get("old-1").email == "old@example.com"
        assert [a.id for a in repository.with_stage(Stage.PROSPECT)] == ["old-1"]
    with sqlite3.connect(path) as migrated:
        version = migrated.execute("PRAGMA user_version").fetchone()[0]
        indexes = {
            name
            for (name,) in migrated.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'accounts'"
            )
        }
    migrated.close()
    assert version == SCHEMA_VERSION
    assert "accounts_stage_created" in indexes
    assert "accounts_stage" not in indexes


def test_an_empty_file_becomes_a_database(tmp_path: Path) -> None:
    """An existing empty file is a new, empty database (SQLite's own rule)."""
    path = tmp_path / "empty.db"
    path.touch()
    with SQLiteRepository(path) as repository:
        assert repository.page() == []


def test_a_damaged_row_raises_storage_error_naming_the_account(tmp_path: Path) -> None:
    """A row whose JSON was edited into something else raises StorageError, not a crash."""
    path = tmp_path / "edited.db"
    with SQLiteRepository(path) as repository:
        repository.add(prospect("edited"))
    with sqlite3.connect(path) as editor:
        editor.execute("UPDATE accounts SET data = json_set(data, '$.stage', 42)")
    editor.close()
    with SQLiteRepository(path) as repository, pytest.raises(StorageError, match="edited"):
        repository.get("edited")


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    """A path in a directory that does not exist raises StorageError."""
    with pytest.raises(StorageError, match="cannot open"):
        SQLiteRepository(tmp_path / "no" / "such" / "dir" / "x.db")


# --- (d) driver errors are translated ---------------------------------------------------------


def test_sqlite_closed_repository_raises_storage_error(tmp_path: Path) -> None:
    """Every call on a closed repository raises StorageError; closing twice is fine."""
    repository = SQLiteRepository(tmp_path / "closed.db")
    repository.close()
    repository.close()
    for call in (
        lambda: repository.get("x"),
        lambda: repository.add(prospect("x")),
        repository.count_by_stage,
        lambda: repository.atomic().__enter__(),
    ):
        with pytest.raises(StorageError, match="closed"):
            call()


def test_sqlite_connection_closed_under_it_raises_storage_error(tmp_path: Path) -> None:
    """A connection closed behind the repository's back gives StorageError, not sqlite3's."""
    repository = SQLiteRepository(tmp_path / "pulled.db")
    repository._connection.close()  # type: ignore[union-attr]
    with pytest.raises(StorageError, match=r"pulled.db"):
        repository.get("x")
    repository.close()


def test_sqlite_lock_timeout_raises_storage_error(tmp_path: Path) -> None:
    """A write blocked past busy_timeout by another process's lock raises StorageError."""
    path = tmp_path / "locked.db"
    repository = SQLiteRepository(path, timeout=0.05)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError, match="locked"):
            repository.add(prospect("x"))
        with pytest.raises(StorageError, match="locked"), repository.atomic():
            pass
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert repository.add(prospect("x")).version == 1
    repository.close()


def test_sqlite_read_only_database_raises_storage_error(tmp_path: Path) -> None:
    """A write to a database that refuses writes raises StorageError; reads still work."""
    repository = SQLiteRepository(tmp_path / "readonly.db")
    repository.add(prospect("x"))
    repository._connection.execute("PRAGMA query_only = ON")  # type: ignore[union-attr]
    with pytest.raises(StorageError, match="readonly"):
        repository.save(prospect("x", version=1), expected_version=1)
    with pytest.raises(StorageError, match="readonly"):
        repository.add_many([prospect("y")])
    assert repository.get("x").version == 1
    repository.close()


def test_sqlite_unique_violation_becomes_conflict_naming_the_owner(tmp_path: Path) -> None:
    """The driver's IntegrityError on a unique column becomes ConflictError naming the owner."""
    with SQLiteRepository(tmp_path / "unique.db") as repository:
        repository.add(prospect("a", email="ann@example.com"))
        with pytest.raises(ConflictError, match=r"ann@example.com already belongs to account a"):
            repository.add(prospect("b", email="ann@example.com"))
        with pytest.raises(ConflictError, match="id a is already stored"):
            repository.add_many([prospect("c"), prospect("a")])
        with pytest.raises(ConflictError, match="stored version 1, this write expected 5"):
            repository.save(prospect("a"), expected_version=5)


def test_sqlite_text_that_is_not_unicode_is_refused(tmp_path: Path) -> None:
    """A lone surrogate (not encodable) raises ValidationError, not UnicodeEncodeError."""
    from salesprocess.errors import ValidationError  # noqa: PLC0415

    with SQLiteRepository(tmp_path / "surrogate.db") as repository:
        with pytest.raises(ValidationError, match="valid Unicode"):
            repository.add(prospect("\ud800"))
        assert repository.page() == []


def test_sqlite_is_shared_safely_between_threads(tmp_path: Path) -> None:
    """Threads sharing one repository interleave atomic blocks without losing writes."""
    repository = SQLiteRepository(tmp_path / "threads.db")
    repository.add(prospect("counter", attributes={"n": 0}))
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(50):
                with repository.atomic():
                    current = repository.get("counter")
                    changed = attrs.evolve(current, attributes={"n": current.attributes["n"] + 1})
                    repository.save(changed, expected_version=current.version)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert repository.get("counter").attributes["n"] == 200
    repository.close()


def test_postgres_errors_are_translated(postgres_schema: Callable[[], str]) -> None:
    """Lost connections, lock timeouts and failed app transactions raise StorageError."""
    psycopg = pytest.importorskip("psycopg")
    from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415

    dsn = postgres_schema()
    # a lock held by another session, past lock_timeout
    repository = PostgresRepository(
        psycopg.conninfo.make_conninfo(dsn, options=_options(dsn) + " -c lock_timeout=50"),
        migrate=True,
    )
    with psycopg.connect(dsn) as blocker:
        blocker.execute("LOCK TABLE salesprocess_accounts IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(StorageError, match="lock timeout"):
            repository.add(prospect("x"))
        blocker.rollback()
    assert repository.add(prospect("x")).version == 1
    # the server ends the session
    with psycopg.connect(dsn, autocommit=True) as admin:
        pid = repository.connection.info.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StorageError):
        repository.get("x")
    assert repository.get("x").version == 1  # its own connection: the next call reconnects
    repository.close()
    with pytest.raises(StorageError, match="closed"):
        repository.get("x")
    # the app's connection closed under it: the app owns it, so it stays closed
    app = psycopg.connect(dsn)
    repository = PostgresRepository(app)
    app.close()
    with pytest.raises(StorageError, match="closed"):
        repository.get("x")
    repository.close()
    # an app connection whose transaction already failed
    app = psycopg.connect(dsn)
    repository = PostgresRepository(app, migrate=True)
    with pytest.raises(psycopg.errors.DivisionByZero):
        app.execute("SELECT 1 / 0")
    with pytest.raises(StorageError, match="roll it back"):
        repository.add(prospect("y"))
    with pytest.raises(StorageError, match="roll it back"), repository.atomic():
        pass
    app.rollback()
    assert repository.get("x").version == 1
    repository.close()
    app.close()
    # a server that is not there
    with pytest.raises(StorageError, match="cannot connect"):
        PostgresRepository(
            "host=/nonexistent-socket-dir dbname=nothing connect_timeout=1", migrate=True
        )


def _options(dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415

    return str(conninfo_to_dict(dsn).get("options", ""))


def test_postgres_unique_violation_becomes_conflict(postgres_schema: Callable[[], str]) -> None:
    """UniqueViolation from INSERT, UPDATE and COPY becomes ConflictError naming the owner."""
    pytest.importorskip("psycopg")
    from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415

    with PostgresRepository(postgres_schema(), migrate=True) as repository:
        repository.add(prospect("a", email="ann@example.com", phone="+4930123456"))
        b = repository.add(prospect("b"))
        with pytest.raises(ConflictError, match=r"ann@example.com already belongs to account a"):
            repository.add(prospect("c", email="ann@example.com"))
        with pytest.raises(ConflictError, match=r"phone \+4930123456 already belongs to account a"):
            repository.save(attrs.evolve(b, phone="+4930123456"), expected_version=1)
        with pytest.raises(
            ConflictError, match=r"email dup@example.com already belongs to account d"
        ):
            repository.add_many(
                [prospect("d", email="dup@example.com"), prospect("e", email="dup@example.com")]
            )
        assert [account.id for account in repository.page()] == ["a", "b"]


def test_postgres_joins_the_apps_transaction(postgres_schema: Callable[[], str]) -> None:
    """Writes through an app connection land with the app's commit and vanish with its rollback."""
    psycopg = pytest.importorskip("psycopg")
    from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415

    dsn = postgres_schema()
    PostgresRepository(dsn, migrate=True).close()  # create the schema
    with psycopg.connect(dsn) as app, psycopg.connect(dsn, autocommit=True) as other:
        app.execute("CREATE TABLE orders (account_id text)")
        app.commit()
        repository = PostgresRepository(app, migrate=True)
        with app.transaction():
            repository.add(prospect("rolled-back"))
            app.execute("INSERT INTO orders VALUES ('rolled-back')")
            assert other.execute("SELECT count(*) FROM salesprocess_accounts").fetchone() == (0,)
            with pytest.raises(ConflictError):  # a failed write does not spoil the app's work
                repository.add(prospect("rolled-back"))
            app.execute("SELECT 1")
            raise_rollback(psycopg)
        assert other.execute("SELECT count(*) FROM orders").fetchone() == (0,)
        with pytest.raises(NotFound):
            repository.get("rolled-back")
        with app.transaction():
            repository.add(prospect("kept"))
            app.execute("INSERT INTO orders VALUES ('kept')")
        assert other.execute("SELECT count(*) FROM salesprocess_accounts").fetchone() == (1,)
        repository.add(prospect("own-transaction"))  # idle connection: committed at once
        assert other.execute("SELECT count(*) FROM salesprocess_accounts").fetchone() == (2,)
        repository.close()
        assert not app.closed


def raise_rollback(psycopg: Any) -> None:
    raise psycopg.Rollback


def test_postgres_schema_versions(postgres_schema: Callable[[], str]) -> None:
    """Older schemas are migrated, newer ones and foreign tables refused."""
    psycopg = pytest.importorskip("psycopg")
    from salesprocess.storage import postgres  # noqa: PLC0415

    dsn = postgres_schema()
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("CREATE TABLE salesprocess_schema (version integer)")
        admin.execute("INSERT INTO salesprocess_schema VALUES (1)")
        for statement in postgres.MIGRATIONS[0]:
            admin.execute(statement)
    with postgres.PostgresRepository(dsn, migrate=True) as repository:
        repository.add(prospect("a"))
    with psycopg.connect(dsn, autocommit=True) as admin:
        assert admin.execute("SELECT version FROM salesprocess_schema").fetchone() == (
            postgres.SCHEMA_VERSION,
        )
        admin.execute("UPDATE salesprocess_schema SET version = 99")
    with pytest.raises(StorageError, match="newer salesprocess"):
        postgres.PostgresRepository(dsn, migrate=True)
    foreign = postgres_schema()
    with psycopg.connect(foreign, autocommit=True) as admin:
        admin.execute("CREATE TABLE salesprocess_accounts (x int)")
    with pytest.raises(StorageError, match="not ours"):
        postgres.PostgresRepository(foreign, migrate=True)


# --- packaging: optional dependencies name their extra ----------------------------------------


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("salesprocess.testing", "hypothesis", "salesprocess[testing]"),
        ("salesprocess.storage.postgres", "psycopg", "salesprocess[postgres]"),
    ],
)
def test_missing_optional_dependency_names_the_extra(module: str, blocked: str, extra: str) -> None:
    """Importing a module whose optional dependency is missing says which extra to install."""
    code = (
        "import sys\n"
        f"sys.modules[{blocked!r}] = None\n"
        "try:\n"
        f"    import {module}\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert extra in result.stdout
