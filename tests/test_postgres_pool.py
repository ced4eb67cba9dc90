"""PostgreSQL for many app servers: pools and factories, explicit migrations, statements per
request, dropped connections, and the one-transaction-per-request recipe of docs/web.md."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

import salesprocess as sp
from salesprocess.errors import ConflictError, NotFound, StorageError
from salesprocess.storage.protocol import AccountRepository
from salesprocess.testing import ReadsManyContract

psycopg = pytest.importorskip("psycopg", reason="needs the postgres extra")
psycopg_pool = pytest.importorskip("psycopg_pool", reason="needs the postgres extra")

from salesprocess.storage import postgres  # noqa: E402
from salesprocess.storage.postgres import PostgresRepository  # noqa: E402

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def dsn(postgres_schema: Callable[[], str]) -> str:
    """A DSN on a fresh schema, migrated (as a deploy step would, before the app starts)."""
    made = postgres_schema()
    PostgresRepository(made, migrate=True).close()
    return made


@pytest.fixture
def pool(dsn: str) -> Iterator[Any]:
    """A pool of one connection: the statements it runs can be traced."""
    with psycopg_pool.ConnectionPool(dsn, min_size=1, max_size=1, timeout=5, open=True) as made:
        yield made


class Wire(list[str]):
    """The statements a connection sent, and how many times it waited for the server."""

    trips = 0

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []


@contextmanager
def traced(connection: Any) -> Iterator[Wire]:
    """Collect the statements ``connection`` sends (libpq's trace): one item per statement.

    A statement is a simple ``Query`` or an extended-protocol ``Bind``; the list gets its text
    when the trace shows it (a prepared statement's ``Bind`` names no text). Its ``trips``
    count the round trips: a ``Query``, or a ``Sync`` after statements executed (a pipeline
    sends many before one ``Sync``); psycopg's one-off ``Parse`` when it prepares a statement
    it has run five times on a connection is not counted.
    """
    statements = Wire()
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as log:
        pgconn = connection.pgconn
        pgconn.trace(log.fileno())
        pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield statements
        finally:
            pgconn.untrace()
            log.seek(0)
            text = ""
            executed = 0
            for line in log.read().splitlines():
                parts = line.split("\t")
                if parts[0] == "F":
                    statements.messages.append(parts[2] if len(parts) > 2 else line)
                if len(parts) >= 3 and parts[0] == "F" and parts[2] == "Sync":
                    statements.trips += executed  # not psycopg's one-off Parse of a statement
                    executed = 0
                if len(parts) >= 3 and parts[0] == "F" and parts[2] == "Execute":
                    executed = 1
                if len(parts) < 4 or parts[0] != "F":
                    continue
                if parts[2] == "Parse":  # "name" "query" ...
                    text = parts[3].strip().split('" "', 1)[-1].rsplit('"', 1)[0]
                elif parts[2] == "Query":  # "query"
                    statements.append(parts[3].strip().strip('"'))
                    statements.trips += 1
                elif parts[2] == "Bind":
                    statements.append(text.strip() or "(prepared)")
                    text = ""


def round_trips(statements: Wire) -> int:
    """Return how many times the client waited for the server (see :func:`traced`)."""
    return statements.trips


@contextmanager
def pooled_connection_traced(pool: Any) -> Iterator[Wire]:
    connection = pool.getconn()
    pool.putconn(connection)  # the pool's only connection: every checkout gives it back
    with traced(connection) as statements:
        yield statements


def new_process(repository: AccountRepository) -> sp.SalesProcess:
    return sp.SalesProcess(repository, clock=sp.FixedClock(T0))


# --- the schema is migrated by an explicit step ------------------------------------------------


def test_an_unmigrated_database_is_refused_with_what_to_run(
    postgres_schema: Callable[[], str],
) -> None:
    """The constructor checks; it never creates tables unless told to (migrate=True)."""
    fresh = postgres_schema()
    with pytest.raises(StorageError, match=r"no salesprocess tables.*salesprocess migrate"):
        PostgresRepository(fresh)
    with psycopg.connect(fresh, autocommit=True) as admin:
        assert admin.execute("SELECT to_regclass('salesprocess_schema')").fetchone() == (None,)
    with PostgresRepository(fresh, migrate=True) as repository:
        assert repository.migrate() == postgres.SCHEMA_VERSION  # already there: a no-op
    with psycopg.connect(fresh, autocommit=True) as admin:
        admin.execute("UPDATE salesprocess_schema SET version = 3")
    with pytest.raises(StorageError, match=r"schema version 3; .* needs version 4"):
        PostgresRepository(fresh)
    with psycopg.connect(fresh) as app:  # inside the app's transaction the check aborts nothing
        app.execute("SELECT 1")
        with pytest.raises(StorageError, match="schema version 3"):
            PostgresRepository(app)
        assert app.execute("SELECT 2").fetchone() == (2,)
        app.rollback()


def test_migrate_reports_the_version_it_found(postgres_schema: Callable[[], str]) -> None:
    """migrate() returns the version before it (0: no tables), and is safe to repeat."""
    fresh = postgres_schema()
    with PostgresRepository(fresh, migrate=True) as repository:
        assert repository.migrate() == postgres.SCHEMA_VERSION
        with psycopg.connect(fresh, autocommit=True) as admin:
            for table in ("schema", "accounts", "purchases", "stage_changes", "purchase_tallies"):
                admin.execute(f"DROP TABLE salesprocess_{table}")
        with pytest.raises(StorageError, match="reading account"):
            repository.get("a")
        assert repository.migrate() == 0
        with pytest.raises(NotFound):
            repository.get("a")
        with psycopg.connect(fresh, autocommit=True) as admin:
            admin.execute("DROP TABLE salesprocess_schema")
        with pytest.raises(StorageError, match="not ours"):
            repository.migrate()


def test_the_check_runs_once_per_pool(pool: Any) -> None:
    """A repository made per request over a pool costs no statement after the first."""
    PostgresRepository(pool)
    with pooled_connection_traced(pool) as statements:
        for _ in range(5):
            PostgresRepository(pool)
    assert statements == []


def test_the_check_runs_once_per_app_connection(dsn: str) -> None:
    """A repository made per request over the app's connection checks the schema once."""
    with psycopg.connect(dsn, autocommit=True) as app:
        PostgresRepository(app)
        with traced(app) as statements:
            for _ in range(5):
                PostgresRepository(app)
        assert statements == []


def test_the_cli_migrates(postgres_schema: Callable[[], str]) -> None:
    """``salesprocess migrate --dsn`` is the deploy step; the other commands only check."""
    from click.testing import CliRunner  # noqa: PLC0415

    from salesprocess.cli.app import cli  # noqa: PLC0415

    fresh = postgres_schema()
    refused = CliRunner().invoke(cli, ["report", "--dsn", fresh, "--json"])
    assert refused.exit_code == 1
    assert "salesprocess migrate" in refused.stderr
    done = CliRunner().invoke(cli, ["migrate", "--dsn", fresh])
    assert done.exit_code == 0, done.stderr
    assert f"schema version {postgres.SCHEMA_VERSION}" in done.stdout
    assert CliRunner().invoke(cli, ["migrate", "--dsn", fresh]).exit_code == 0  # twice is fine
    assert CliRunner().invoke(cli, ["report", "--dsn", fresh, "--json"]).exit_code == 0


# --- statements per request ----------------------------------------------------------------


def _customer(sales: sp.SalesProcess, name: str) -> sp.Account:
    lead = sales.capture_lead(name, channel="inbound_inquiry", email=f"{name}@example.com")
    sales.qualify(lead.id, override="walk-in purchase")
    return sales.record_purchase(lead.id, sp.Money("10.00", "EUR"))


@pytest.mark.parametrize("per_request", [False, True], ids=["one-repository", "per-request"])
def test_a_get_is_one_statement_and_a_command_at_most_three(pool: Any, per_request: bool) -> None:
    """Counted on the wire: GET 1 statement (1 round trip), commands at most 3 round trips.

    Both with one repository for the process and with a repository made for each request
    (whose memory of what it read is empty).
    """
    shared = PostgresRepository(pool)

    def request_process() -> sp.SalesProcess:
        return new_process(PostgresRepository(pool) if per_request else shared)

    setup = request_process()
    customer = _customer(setup, "ann")
    for day in range(1, 4):  # a customer with history and purchases
        setup.record_purchase(customer.id, sp.Money("5.00", "EUR"), at=T0 + timedelta(days=day))

    with pooled_connection_traced(pool) as get:
        account = request_process().get(customer.id)
    assert len(account.purchases) == 4
    assert len(get) == 1, get
    assert round_trips(get) == 1, get.messages

    with pooled_connection_traced(pool) as purchase:
        request_process().record_purchase(
            customer.id, sp.Money("7.50", "EUR"), at=T0 + timedelta(days=9)
        )
    assert len(purchase) == 2, purchase

    with pooled_connection_traced(pool) as call:
        request_process().record_call(
            customer.id, sp.CallOutcome.NO_ANSWER, at=T0 + timedelta(days=10)
        )
    assert len(call) == 2, call  # the read and the write; the target is at most 3

    with pooled_connection_traced(pool) as capture:
        request_process().capture_lead(
            "bob", channel="inbound_inquiry", email="bob@example.com", phone="+4930111222"
        )
    assert len(capture) == 2, capture  # who holds the email or the phone? then the add

    with pooled_connection_traced(pool) as referral:
        referred = request_process().record_referral(
            customer.id, "cid", email="cid@example.com", at=T0 + timedelta(days=11)
        )
    # the referrer and who holds the email (one statement), then BEGIN, the referrer's save
    # and the lead's add in one round trip, then COMMIT
    assert round_trips(referral) == 3, referral
    assert len(referral) == 5, referral

    for wire in (get, purchase, call, capture):
        assert round_trips(wire) == len(wire), wire
    everything = get + purchase + call + capture
    assert not [s for s in everything if "SAVEPOINT" in s.upper() or s.upper() == "BEGIN"]
    assert not [s for s in referral if "SAVEPOINT" in s.upper()]
    assert new_process(PostgresRepository(pool)).get(referred.id).source.referred_by == customer.id
    stored = new_process(PostgresRepository(pool)).get(customer.id)
    assert [p.amount.amount for p in stored.purchases][-1] == sp.Money("7.50", "EUR").amount
    assert len(stored.purchases) == 5
    assert stored.calls[-1].outcome is sp.CallOutcome.NO_ANSWER


def test_reads_inside_the_apps_transaction_add_no_savepoints(dsn: str) -> None:
    """On the app's connection in a transaction, a GET is its SELECT, nothing around it."""
    with psycopg.connect(dsn) as app:
        repository = PostgresRepository(app)
        sales = new_process(repository)
        customer = _customer(sales, "cy")
        app.commit()
        app.execute("SELECT 1")
        with traced(app) as statements:
            repository.get(customer.id)
            repository.find_by_email("cy@example.com")
        assert len(statements) == 2, statements
        assert all(s.upper().startswith("SELECT") for s in statements)
        app.rollback()


# --- driver errors, dropped connections ----------------------------------------------------


def _terminate(dsn: str, pid: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_dropped_pooled_connection_is_a_storage_error_then_replaced(dsn: str, pool: Any) -> None:
    """pg_terminate_backend: the call fails with StorageError; the next gets a fresh one."""
    repository = PostgresRepository(pool)
    sales = new_process(repository)
    customer = _customer(sales, "dee")
    with pool.connection() as connection:
        pid = connection.info.backend_pid
    _terminate(dsn, pid)
    with pytest.raises(StorageError, match="PostgreSQL: reading account"):
        sales.get(customer.id)
    assert sales.get(customer.id).id == customer.id
    with pool.connection() as connection:
        assert connection.info.backend_pid != pid


def test_a_dropped_factory_connection_is_replaced(dsn: str) -> None:
    """A factory's connection that broke is dropped; the next call calls the factory again."""
    made: list[Any] = []

    def connect() -> Any:
        made.append(psycopg.connect(dsn))  # not autocommit: the repository sets it, it owns it
        return made[-1]

    repository = PostgresRepository(connect)
    sales = new_process(repository)
    customer = _customer(sales, "eve")
    assert len(made) == 1
    assert made[0].autocommit
    _terminate(dsn, repository.connection.info.backend_pid)
    with pytest.raises(StorageError):
        sales.record_purchase(customer.id, sp.Money("1.00", "EUR"))
    assert sales.get(customer.id).purchases[-1].amount == sp.Money("10.00", "EUR")
    assert len(made) == 2
    repository.close()
    assert all(connection.closed for connection in made)
    with pytest.raises(StorageError, match="closed"):
        sales.get(customer.id)


def test_a_connection_dropped_mid_transaction_leaves_nothing(dsn: str, pool: Any) -> None:
    """A drop inside atomic(): StorageError, and none of the block's writes are stored."""
    repository = PostgresRepository(pool)
    sales = new_process(repository)
    customer = _customer(sales, "fay")
    published: list[object] = []
    sales.subscribe(published.append)

    def request() -> None:
        with repository.atomic():
            sales.record_purchase(customer.id, sp.Money("99.00", "EUR"), at=T0 + timedelta(days=2))
            sales.capture_lead("gil", channel="inbound_inquiry", email="gil@example.com")
            _terminate(dsn, repository.connection.info.backend_pid)
            sales.capture_lead("hal", channel="inbound_inquiry", email="hal@example.com")

    with pytest.raises(StorageError):
        request()
    assert published == []
    assert len(sales.get(customer.id).purchases) == 1
    assert sales.find(email="gil@example.com") is None


def test_an_exhausted_or_closed_pool_is_a_storage_error(dsn: str) -> None:
    """PoolTimeout and PoolClosed leave the adapter as StorageError; nothing is written."""
    with psycopg_pool.ConnectionPool(dsn, min_size=1, max_size=1, timeout=0.2) as pool:
        repository = PostgresRepository(pool)
        sales = new_process(repository)
        customer = _customer(sales, "ida")
        held = pool.getconn()
        try:
            with pytest.raises(StorageError, match="couldn't get a connection"):
                sales.record_purchase(customer.id, sp.Money("3.00", "EUR"))
            with pytest.raises(StorageError), repository.atomic():
                pass
        finally:
            pool.putconn(held)
        assert len(sales.get(customer.id).purchases) == 1
    with pytest.raises(StorageError, match="closed"):
        sales.get(customer.id)


# --- threads share one repository over a pool ----------------------------------------------


def test_threads_share_a_pooled_repository(dsn: str) -> None:
    """Eight threads, one repository: every purchase lands once, on one account and on many."""
    with psycopg_pool.ConnectionPool(dsn, min_size=2, max_size=4, timeout=30) as pool:
        repository = PostgresRepository(pool)
        sales = sp.SalesProcess(repository, max_retries=50)
        shared = _customer(sales, "jo")
        own = [_customer(sales, f"own{n}") for n in range(8)]
        errors: list[BaseException] = []

        def work(mine: sp.Account) -> None:
            try:
                for _ in range(5):
                    sales.record_purchase(shared.id, sp.Money("1.00", "EUR"))
                    sales.record_purchase(mine.id, sp.Money("2.00", "EUR"))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(mine,)) for mine in own]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        check = PostgresRepository(pool)
        assert len(check.get(shared.id).purchases) == 1 + 8 * 5
        assert all(len(check.get(mine.id).purchases) == 6 for mine in own)
        revenue = sp.SalesProcess(check).revenue()["EUR"]
        assert revenue.total == sp.Money("210.00", "EUR")  # 9 * 10 + 40 * 1 + 40 * 2
        assert revenue.purchases == 9 + 80


# --- the one-transaction-per-request recipe (docs/web.md) ----------------------------------


def test_one_transaction_per_request(dsn: str, pool: Any) -> None:
    """The recipe: the request's work, the app's tables included, commits whole or not at all.

    Events are published only once the request's transaction has committed.
    """
    with pool.connection() as connection:
        connection.execute("CREATE TABLE invoices (account_id text, total numeric)")
    repository = PostgresRepository(pool)
    sales = new_process(repository)
    customer = _customer(sales, "kim")
    published: list[object] = []
    sales.subscribe(published.append)

    def handle_purchase(account_id: str, total: str, *, fail: bool = False) -> None:
        before = len(published)
        with repository.atomic():  # one transaction for the request
            account = sales.record_purchase(account_id, sp.Money(total, "EUR"))
            repository.connection.execute(
                "INSERT INTO invoices VALUES (%s, %s)",
                (account.id, account.purchases[-1].amount.amount),
            )
            assert len(published) == before  # not yet: nothing is committed
            if fail:
                raise RuntimeError("the request failed after its writes")

    handle_purchase(customer.id, "20.00")
    assert len(published) == 1
    with pytest.raises(RuntimeError):
        handle_purchase(customer.id, "30.00", fail=True)
    assert len(published) == 1
    assert len(sales.get(customer.id).purchases) == 2
    with pool.connection() as connection:
        rows = connection.execute("SELECT total FROM invoices ORDER BY total").fetchall()
    assert [str(row[0]) for row in rows] == ["20.00"]


def test_a_conflicting_save_inside_a_transaction_does_not_abort_it(dsn: str) -> None:
    """A save that takes another account's phone fails alone; the app's transaction goes on."""
    with psycopg.connect(dsn) as app:
        repository = PostgresRepository(app)
        sales = new_process(repository)
        a = sales.capture_lead("a", channel="inbound_inquiry", phone="+4930123456")
        b = sales.capture_lead("b", channel="inbound_inquiry", email="b@example.com")
        app.commit()
        with app.transaction():
            read = repository.get(b.id)
            with pytest.raises(ConflictError, match="already belongs to account"):
                repository.save(attrs.evolve(read, phone="+4930123456"), expected_version=1)
            sales.record_call(b.id, sp.CallOutcome.INTERESTED)
        assert len(repository.get(b.id).calls) == 1
        assert repository.get(b.id).phone is None
        assert repository.get(a.id).phone == "+4930123456"
        with pytest.raises(NotFound):
            repository.get("nobody")


# --- the storage contract holds over a pool ------------------------------------------------


class TestPostgresOnPool(ReadsManyContract):
    """Every promise of the protocol, for PostgresRepository over a psycopg_pool pool."""

    @pytest.fixture(autouse=True)
    def _schemas(self, postgres_schema: Callable[[], str]) -> None:
        self.new_schema = postgres_schema
        self.pools: list[Any] = []

    def make_repository(self) -> AccountRepository:
        pool = psycopg_pool.ConnectionPool(
            self.new_schema(), min_size=1, max_size=4, timeout=10, open=True
        )
        self.pools.append(pool)
        return PostgresRepository(pool, migrate=True)

    def dispose_repository(self, repository: AccountRepository) -> None:
        assert isinstance(repository, PostgresRepository)
        repository.close()
        for pool in self.pools:
            pool.close()


def test_a_conflict_on_an_idle_app_connection_leaves_no_transaction_open(dsn: str) -> None:
    """Naming a conflict reads; on the app's idle connection those reads commit on their own."""
    with psycopg.connect(dsn) as app:
        repository = PostgresRepository(app)
        sales = new_process(repository)
        sales.capture_lead("a", channel="inbound_inquiry", email="a@example.com")
        with pytest.raises(ConflictError, match="already belongs"):
            repository.add(
                sp.Account("other", "b", sp.Source("referral"), T0, email="a@example.com")
            )
        assert app.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
