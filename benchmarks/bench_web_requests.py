"""Web-request benchmark: what one request costs on PostgreSQL, now vs the previous adapter.

Run: ``python benchmarks/bench_web_requests.py [--before REF] [--rounds N] [--postgres-dsn DSN]``.

The previous ``PostgresRepository`` is loaded from git (``REF``, default ``main``: the source of
``src/salesprocess/storage/postgres.py`` there) beside this one, on the same server, in the
same run. For each, a request as a web app makes it:

1. constructing a repository for the request (over the app's connection inside its
   transaction, and, now, over a pool): statements and time;
2. a GET (``sales.get``) and two commands (``record_purchase``, ``record_call``) on customers
   with purchases (30 of them in turn, so that none grows without bound), each with a
   repository made for the request, inside the app's transaction: statements (read off
   libpq's trace) and time per request;
3. the same over a pool, a repository per request (new adapter only);
4. round trips and statements of a GET and of the commands ``record_purchase``,
   ``record_call``, ``capture`` (a new lead) and ``record_referral`` (two accounts: the
   referrer saved, the lead added), on the sync adapter over a ``ConnectionPool`` and on the
   async adapter over an ``AsyncConnectionPool``, a repository per request.

Targets (issue 12): a GET is 1 round trip, a command at most 3. Times are the
median of ``--rounds`` requests; they move with the machine's load, the ratios less so.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import psycopg_pool

import salesprocess as sp
from salesprocess.storage import postgres as after_module

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def load_before(ref: str) -> ModuleType | None:
    """Return the adapter module as it is at ``ref``, or None if git cannot give it."""
    try:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{ref}:src/salesprocess/storage/postgres.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"(no previous adapter at {ref}: {exc})")
        return None
    path = Path(tempfile.mkdtemp()) / "postgres_before.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("salesprocess.storage._postgres_before", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@contextmanager
def traced(connection: Any) -> Iterator[list[str]]:
    """Collect the statements ``connection`` sends (a ``Query`` or a ``Bind`` each)."""
    statements: list[str] = []
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as log:
        connection.pgconn.trace(log.fileno())
        connection.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield statements
        finally:
            connection.pgconn.untrace()
            log.seek(0)
            text = ""
            for line in log.read().splitlines():
                parts = line.split("\t")
                if len(parts) < 4 or parts[0] != "F":
                    continue
                if parts[2] == "Parse":
                    text = parts[3].strip().split('" "', 1)[-1].rsplit('"', 1)[0]
                elif parts[2] == "Query":
                    statements.append(parts[3].strip().strip('"')[:60])
                elif parts[2] == "Bind":
                    statements.append((text or "(prepared)")[:60])
                    text = ""


@contextmanager
def wire(connection: Any) -> Iterator[list[int]]:
    """Count what ``connection`` sends: ``[round trips, statements]`` once the block ends.

    A statement is a ``Query`` or an ``Execute``; a round trip a ``Query``, or a ``Sync`` after
    statements (a pipeline sends several before one ``Sync``). psycopg's one-off ``Parse``
    and ``Sync`` when it prepares a statement is no round trip of the request.
    """
    counted = [0, 0]
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as log:
        connection.pgconn.trace(log.fileno())
        connection.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield counted
        finally:
            connection.pgconn.untrace()
            log.seek(0)
            executed = 0
            for line in log.read().splitlines():
                parts = line.split("\t")
                if len(parts) < 3 or parts[0] != "F":
                    continue
                if parts[2] == "Query":
                    counted[0] += 1
                    counted[1] += 1
                elif parts[2] == "Execute":
                    counted[1] += 1
                    executed = 1
                elif parts[2] == "Sync":
                    counted[0] += executed
                    executed = 0


#: The requests of part (4), in order.
REQUESTS = ("GET", "record_purchase", "record_call", "capture", "record_referral")


def _request_works(
    sales: Callable[[], Any], account_id: Callable[[], str], moment: Moments, tag: str
) -> dict[str, Callable[[], Any]]:
    """The requests of part (4) on the facade ``sales()`` makes (sync or async alike).

    ``tag`` keeps each adapter's new leads apart: every capture and referral is a new person.
    """
    numbers = iter(range(10**9))
    return {
        "GET": lambda: sales().get(account_id()),
        "record_purchase": lambda: sales().record_purchase(
            account_id(), sp.Money("5.00", "EUR"), at=moment()
        ),
        "record_call": lambda: sales().record_call(
            account_id(), sp.CallOutcome.NO_ANSWER, at=moment()
        ),
        "capture": lambda: sales().capture_lead(
            f"Lead {next(numbers)}",
            channel="inbound_inquiry",
            email=f"{tag}-lead{next(numbers)}@x.example",
            phone=f"+4930{len(tag)}{next(numbers):07d}",
        ),
        "record_referral": lambda: sales().record_referral(
            account_id(), "Friend", email=f"{tag}-friend{next(numbers)}@x.example", at=moment()
        ),
    }


def both_adapters(dsn: str) -> dict[tuple[str, str], tuple[int, int]]:
    """Part (4): round trips and statements per request, sync and async adapters, warm."""
    found: dict[tuple[str, str], tuple[int, int]] = {}
    with psycopg_pool.ConnectionPool(
        dsn, kwargs={"autocommit": True}, min_size=1, max_size=1, open=True
    ) as pool:
        account_id = customers(
            sp.SalesProcess(after_module.PostgresRepository(pool), clock=sp.FixedClock(T0))
        )
        connection = pool.getconn()
        pool.putconn(connection)
        moment = Moments()
        works = _request_works(
            lambda: sp.SalesProcess(after_module.PostgresRepository(pool)),
            account_id,
            moment,
            "sync",
        )
        for name, work in works.items():
            work()  # warm: prepared statements, the schema check
            with wire(connection) as counted:
                work()
            found["sync", name] = (counted[0], counted[1])

    from salesprocess.storage.postgres_async import AsyncPostgresRepository  # noqa: PLC0415

    async def measure() -> None:
        async with psycopg_pool.AsyncConnectionPool(
            dsn, kwargs={"autocommit": True}, min_size=1, max_size=1, open=False
        ) as pool:
            setup = sp.AsyncSalesProcess(AsyncPostgresRepository(pool), clock=sp.FixedClock(T0))
            ids = []
            for n in range(CUSTOMERS):
                lead = await setup.capture_lead(
                    f"Async {n}", channel="inbound_inquiry", email=f"async{n}@acme.example"
                )
                ids.append(lead.id)
            for account in ids:
                await setup.qualify(account, override="walk-in purchase", at=T0)
                await setup.record_purchase(account, sp.Money("10.00", "EUR"), at=T0)
            turn = iter(range(10**9))
            connection = await pool.getconn()
            await pool.putconn(connection)
            works = _request_works(
                lambda: sp.AsyncSalesProcess(AsyncPostgresRepository(pool)),
                lambda: ids[next(turn) % len(ids)],
                Moments(),
                "async",
            )
            for name, work in works.items():
                await work()
                with wire(connection) as counted:
                    await work()
                found["async", name] = (counted[0], counted[1])

    asyncio.run(measure())
    return found


def median_us(run: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def fresh_schema(dsn: str) -> str:
    name = f"bench_web_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
    return psycopg.conninfo.make_conninfo(dsn, options=f"-c search_path={name}")


#: Requests go round these many customers, so that no account grows without bound.
CUSTOMERS = 30


def customers(sales: sp.SalesProcess) -> Callable[[], str]:
    """Make ``CUSTOMERS`` customers; return a function giving the next one's id, in turn."""
    ids = [customer(sales, number) for number in range(CUSTOMERS)]
    turn = iter(range(10**9))
    return lambda: ids[next(turn) % len(ids)]


def customer(sales: sp.SalesProcess, number: int = 0) -> str:
    lead = sales.capture_lead(
        f"Acme {number}", channel="inbound_inquiry", email=f"buyer{number}@acme.example"
    )
    sales.qualify(lead.id, override="walk-in purchase", at=T0)
    for day in range(1, 5):
        sales.record_purchase(lead.id, sp.Money("10.00", "EUR"), at=T0 + timedelta(days=day))
    return lead.id


class Moments:
    """Later and later moments, so that every purchase and call is in time order."""

    def __init__(self) -> None:
        self.now = T0 + timedelta(days=30)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def construct_costs(before: ModuleType | None, dsn: str, rounds: int) -> None:
    """Time the constructor alone, per request, the way each adapter is used."""
    print("(1) constructing a repository for a request: statements, median µs")
    rows: list[tuple[str, Callable[[], object], Any]] = []
    with (
        psycopg.connect(dsn, autocommit=True) as idle,
        psycopg.connect(dsn) as busy,
        psycopg_pool.ConnectionPool(dsn, min_size=1, max_size=1, open=True) as pool,
    ):
        busy.execute("SELECT 1")  # the app's transaction is open
        pooled = pool.getconn()
        pool.putconn(pooled)
        if before is not None:
            rows.append(("before, app connection", lambda: before.PostgresRepository(idle), idle))
            rows.append(("before, in app's txn", lambda: before.PostgresRepository(busy), busy))
        rows.append(("after, app connection", lambda: after_module.PostgresRepository(idle), idle))
        rows.append(("after, in app's txn", lambda: after_module.PostgresRepository(busy), busy))
        rows.append(("after, pool", lambda: after_module.PostgresRepository(pool), pooled))
        first = None
        for label, make, connection in rows:
            make()
            with traced(connection) as statements:
                make()
            took = median_us(make, rounds)
            first = first or took
            print(
                f"  {label:<24} {len(statements):>2} statements {took:>8.1f} µs  "
                f"{took / first:5.2f}x"
            )
        after_module._CHECKED.clear()
        with traced(idle) as statements:
            after_module.PostgresRepository(idle)
        print(f"  {'after, first check':<24} {len(statements):>2} statement  {statements}")
        busy.rollback()


def in_app_transaction(
    label: str, make: Callable[[Any], Any], dsn: str, rounds: int
) -> dict[str, tuple[int, float]]:
    """Requests on the app's connection inside its transaction, a repository per request."""
    results: dict[str, tuple[int, float]] = {}
    with psycopg.connect(dsn) as app:
        account_id = customers(sp.SalesProcess(make(app), clock=sp.FixedClock(T0)))
        app.commit()
        moment = Moments()

        def request(work: Callable[[sp.SalesProcess], object]) -> Callable[[], object]:
            def run() -> object:
                with app.transaction():
                    return work(sp.SalesProcess(make(app)))

            return run

        works: dict[str, Callable[[sp.SalesProcess], object]] = {
            "construct": lambda sales: None,
            "GET": lambda sales: sales.get(account_id()),
            "record_purchase": lambda sales: sales.record_purchase(
                account_id(), sp.Money("5.00", "EUR"), at=moment()
            ),
            "record_call": lambda sales: sales.record_call(
                account_id(), sp.CallOutcome.NO_ANSWER, at=moment()
            ),
        }
        for name, work in works.items():
            run = request(work)
            run()  # warm: prepared statements, caches
            with traced(app) as statements:
                run()
            count = len(statements) - 2  # the app's own BEGIN and COMMIT
            results[name] = (count, median_us(run, rounds))
            shown = ", ".join(s for s in statements[1:-1])
            print(f"  {label:>7} {name:<16} {count:>2} statements  [{shown}]")
    return results


def over_pool(dsn: str, rounds: int) -> dict[str, tuple[int, float]]:
    """Requests over a pool of one connection, one repository per request (new adapter)."""
    results: dict[str, tuple[int, float]] = {}
    with psycopg_pool.ConnectionPool(dsn, min_size=1, max_size=1, open=True) as pool:
        repository = after_module.PostgresRepository(pool)
        account_id = customers(sp.SalesProcess(repository, clock=sp.FixedClock(T0)))
        moment = Moments()
        connection = pool.getconn()
        pool.putconn(connection)
        works: dict[str, Callable[[], object]] = {
            "construct": lambda: after_module.PostgresRepository(pool),
            "GET": lambda: sp.SalesProcess(after_module.PostgresRepository(pool)).get(account_id()),
            "record_purchase": lambda: sp.SalesProcess(
                after_module.PostgresRepository(pool)
            ).record_purchase(account_id(), sp.Money("5.00", "EUR"), at=moment()),
            "record_call": lambda: sp.SalesProcess(
                after_module.PostgresRepository(pool)
            ).record_call(account_id(), sp.CallOutcome.NO_ANSWER, at=moment()),
        }
        for name, run in works.items():
            run()
            with traced(connection) as statements:
                run()
            results[name] = (len(statements), median_us(run, rounds))
            shown = ", ".join(statements)
            print(f"  {'pool':>7} {name:<16} {len(statements):>2} statements  [{shown}]")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main", help="git ref of the previous adapter")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--postgres-dsn")
    args = parser.parse_args()
    server = None
    dsn = args.postgres_dsn
    if dsn is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from postgres_server import PostgresServer  # noqa: PLC0415

        server = PostgresServer().start()
        dsn = server.dsn
    try:
        before = load_before(args.before)
        schema = fresh_schema(dsn)
        after_module.PostgresRepository(schema, migrate=True).close()
        construct_costs(before, schema, args.rounds)
        print()
        print("(2) statements per request (read off libpq's trace), inside the app's transaction:")
        old: dict[str, tuple[int, float]] = {}
        if before is not None:
            schema = fresh_schema(dsn)
            try:  # an adapter of before issue 12 created its tables when opened
                before.PostgresRepository(schema, migrate=True).close()
            except TypeError:
                before.PostgresRepository(schema).close()
            old = in_app_transaction("before", before.PostgresRepository, schema, args.rounds)
        schema = fresh_schema(dsn)
        after_module.PostgresRepository(schema, migrate=True).close()
        new = in_app_transaction("after", after_module.PostgresRepository, schema, args.rounds)
        schema = fresh_schema(dsn)
        after_module.PostgresRepository(schema, migrate=True).close()
        print("(3) the same over a pool of one connection, a repository per request:")
        pooled = over_pool(schema, args.rounds)
        print()
        print(f"median time per request, {args.rounds} requests each (µs):")
        header = (
            f"  {'request':<16} {'before':>8} {'after':>8} {'ratio':>6} {'pool':>8} {'ratio':>6}"
        )
        print(header)
        for name in new:
            was = old.get(name, (0, float("nan")))[1]
            now, pool = new[name][1], pooled[name][1]
            print(
                f"  {name:<16} {was:>8.0f} {now:>8.0f} {now / was:>6.2f} {pool:>8.0f} "
                f"{pool / was:>6.2f}"
            )
        print()
        print("targets: GET 1 round trip, a command at most 3 statements:")
        for name in ("GET", "record_purchase", "record_call"):
            limit = 1 if name == "GET" else 3
            for label, results in (("after", new), ("pool", pooled)):
                count = results[name][0]
                verdict = "ok" if count <= limit else "MISSED"
                print(f"  {label:>5} {name:<16} {count} (target <= {limit}) {verdict}")
        print()
        print("(4) round trips and statements per request over a pool (a repository per request):")
        schema = fresh_schema(dsn)
        after_module.PostgresRepository(schema, migrate=True).close()
        counts = both_adapters(schema)
        print(f"  {'request':<16} {'adapter':<6} {'round trips':>11} {'statements':>11}  target")
        for name in REQUESTS:
            limit = 1 if name == "GET" else 3
            for kind in ("sync", "async"):
                trips, statements = counts[kind, name]
                verdict = "ok" if trips <= limit else "MISSED"
                print(
                    f"  {name:<16} {kind:<6} {trips:>11} {statements:>11}  "
                    f"<= {limit} round trips: {verdict}"
                )
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
