"""Reports benchmark: the SQL answers of ``funnel``, ``revenue`` and ``lead_flow`` at scale.

Run: ``python benchmarks/bench_reports.py [--quick] [--postgres-dsn DSN] [--no-postgres]``.

1. A SQLite file with 1,000,000 accounts and 2,000,000 purchases (built once with ``add_many``
   and cached under the temporary directory, keyed by the schema and the size): each
   report through the public API (``SalesProcess.funnel()``, ``revenue()``, ``lead_flow()``)
   against hand-written SQL computing the same figures on the same tables: the statements the
   adapter runs, executed raw (its overhead), and a plain one-statement query (for reference).
   Targets: each under 2 s, and at most 2x the faster hand-written SQL.
2. The same on PostgreSQL (``--postgres-dsn``, or a throwaway server started from the local
   binaries as the tests do); ``--quick`` uses a tenth of the size everywhere.
3. A purchase on an account that already holds 1,000 and 10,000 purchases against one on a
   fresh account (``record_purchase`` through the public API, and the storage part alone:
   ``get`` plus ``save``), on SQLite (a file, ``synchronous=FULL``) and PostgreSQL. Target:
   at most 2x the fresh account's cost.

Each figure is the best of a few runs, so that a noisy neighbour on a small machine does not
decide it.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import salesprocess as sp
from salesprocess.account import Account, HistoryEntry, Purchase, Source
from salesprocess.money import Money
from salesprocess.stage import Stage
from salesprocess.storage import readmodel
from salesprocess.storage.sqlite import MIGRATIONS, SCHEMA_VERSION, SQLiteRepository

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
DATA = 2  # the data set's own version, in the cached file's name
START = NOW - timedelta(days=730)
CHANNELS = list(sp.Channel)
CAMPAIGNS = (None, None, "spring-expo", "autumn-fair", "webinar")
P, Q, C, R, REF, D, CH = (
    Stage.PROSPECT,
    Stage.QUALIFIED,
    Stage.CUSTOMER,
    Stage.REPEAT,
    Stage.REFERRER,
    Stage.DISQUALIFIED,
    Stage.CHURNED,
)


def best(runs: int, work: Callable[[], object]) -> float:
    """Return the fastest of ``runs`` timings of ``work``, in seconds."""
    timings = []
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def verdict(seconds: float, raw: float) -> str:
    under = "ok" if seconds < 2 else "OVER 2 s"
    ratio = seconds / raw
    return f"{ratio:5.2f}x  {under}, {'ok' if ratio <= 2 else 'OVER 2x'}"


# --- the data set -----------------------------------------------------------------------------


def accounts(count: int, purchases: int, seed: int = 7) -> Iterator[Account]:
    """Yield ``count`` accounts in every stage holding ``purchases`` purchases between them.

    About a third of the accounts buy; buyers' purchases come on several days (repeat
    customers), a few on one day; EUR four times out of five, USD otherwise.
    """
    chooser = random.Random(seed)
    buyers = count * 35 // 100
    per_buyer = purchases / buyers
    left = purchases
    for number in range(count):
        created = START + timedelta(seconds=chooser.randrange(0, 700 * 86400))
        channel = CHANNELS[number % 4]
        source = Source(channel, CAMPAIGNS[number % len(CAMPAIGNS)])
        history = [HistoryEntry(None, P, "capture", created)]
        bought: list[Purchase] = []
        at = created
        kind = number % 20
        if number < buyers:
            at += timedelta(hours=chooser.randrange(1, 200))
            history.append(HistoryEntry(P, Q, "qualify", at))
            many = min(left, max(1, round(per_buyer * chooser.uniform(0.2, 1.8))))
            if number == buyers - 1:
                many = left
            left -= many
            currency = "EUR" if number % 5 else "USD"
            for index in range(many):
                at = min(at + timedelta(hours=chooser.randrange(1, 24 * 20)), NOW)  # by now
                cents = chooser.randrange(0, 500_000)
                bought.append(Purchase(Money(f"{cents // 100}.{cents % 100:02d}", currency), at))
                if index == 0:
                    history.append(HistoryEntry(Q, C, "purchase", at))
                elif history[-1].to_stage is C and at.date() > bought[0].at.date():
                    history.append(HistoryEntry(C, R, "purchase", at))
            if kind == 3:
                history.append(HistoryEntry(history[-1].to_stage, REF, "refer", at))
            elif kind == 4:
                history.append(HistoryEntry(history[-1].to_stage, CH, "churn", at))
        elif kind < 5:
            at += timedelta(hours=chooser.randrange(1, 200))
            history.append(HistoryEntry(P, Q, "qualify", at))
        elif kind < 7:
            at += timedelta(hours=chooser.randrange(1, 200))
            history.append(HistoryEntry(P, D, "disqualify", at, reason="no budget"))
        yield Account(
            f"acc-{number:08d}",
            f"Company {number}",
            source,
            created,
            email=f"buyer{number}@company{number % 997}.example",
            stage=history[-1].to_stage,
            history=tuple(history),
            purchases=tuple(bought),
        )


def batches(items: Iterator[Account], size: int = 20_000) -> Iterator[list[Account]]:
    batch: list[Account] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def fill(repository: Any, count: int, purchases: int) -> float:
    started = time.perf_counter()
    for batch in batches(accounts(count, purchases)):
        repository.add_many(batch)
    return time.perf_counter() - started


def sqlite_file(count: int, purchases: int) -> Path:
    """Return the cached SQLite file of the data set, building it on first use."""
    folder = Path(tempfile.gettempdir())
    schema = hashlib.sha256(repr(MIGRATIONS).encode()).hexdigest()[
        :8
    ]  # the DDL, not only its number
    name = f"salesprocess-reports-v{SCHEMA_VERSION}-{schema}-d{DATA}-{count}-{purchases}.db"
    path = folder / name
    if path.exists():
        print(f"    (cached: {path})")
        return path
    building = path.with_suffix(".building")
    building.unlink(missing_ok=True)
    with SQLiteRepository(building, synchronous="OFF") as repository:
        took = fill(repository, count, purchases)
    with sqlite3.connect(building) as connection:
        connection.execute("ANALYZE")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    building.rename(path)
    print(f"    (built {count:,} accounts, {purchases:,} purchases with add_many in {took:.0f} s)")
    return path


# --- hand-written SQL -------------------------------------------------------------------------


def raw_statements(
    fetch: Callable[[str, list[Any]], list[Any]], tables: readmodel.Tables, as_of: int
) -> dict[str, Callable[[], object]]:
    """The statements the adapter runs for each report, run raw (its overhead over SQL)."""

    def revenue() -> object:
        return fetch(tables.sql(readmodel._ALL_TIME), [])

    def funnel() -> object:
        rows = fetch(tables.sql(readmodel._GROUPS_ALL.replace("{filters}", "")), [])
        rows += fetch(tables.sql(readmodel._UNSETTLED.replace("{filters}", "")), [as_of])
        rows += fetch(tables.sql(readmodel._GROUPS_AT.replace("{filters}", "")), [as_of] * 5)
        return rows

    def lead_flow() -> object:
        rows = fetch(tables.sql(readmodel._LEADS.replace("{until}", "")), [])
        rows += fetch(tables.sql(readmodel._QUALIFIED.replace("{until}", "")), [])
        return rows

    return {"funnel": funnel, "revenue": revenue, "lead_flow": lead_flow}


def plain_statements(
    fetch: Callable[[str, list[Any]], list[Any]], tables: readmodel.Tables, as_of: int
) -> dict[str, Callable[[], object]]:
    """One plain statement per report over the same tables, as one might write it first."""
    funnel = tables.sql(
        "SELECT last_stage, mask, count(*) FROM {accounts} "
        "WHERE captured_at <= ? AND settled_at <= ? GROUP BY last_stage, mask"
    )
    revenue = tables.sql(
        "SELECT currency, count(*), sum(n), sum(total), "
        "sum(CASE WHEN hi > lo THEN total ELSE 0 END), sum(CASE WHEN hi > lo THEN 1 ELSE 0 END) "
        "FROM (SELECT account_id, currency, sum(units) AS total, count(*) AS n, "
        "min(day) AS lo, max(day) AS hi FROM {purchases} GROUP BY account_id, currency) t "
        "GROUP BY currency"
    )
    leads = tables.sql(
        "SELECT created_at / 86400000000, channel, count(*) FROM {accounts} GROUP BY 1, 2"
    )
    qualified = tables.sql(
        "SELECT first_qualified_at / 86400000000, count(*) FROM {accounts} "
        "WHERE first_qualified_at IS NOT NULL GROUP BY 1"
    )
    return {
        "funnel": lambda: fetch(funnel, [as_of] * 2),
        "revenue": lambda: fetch(revenue, []),
        "lead_flow": lambda: (fetch(leads, []), fetch(qualified, [])),
    }


def compare(
    name: str,
    sales: sp.SalesProcess,
    fetch: Callable[[str, list[Any]], list[Any]],
    tables: readmodel.Tables,
    runs: int,
) -> list[tuple[str, float, float, float]]:
    as_of = readmodel.moment_key(NOW)
    ours = {
        "funnel": lambda: sales.funnel(as_of=NOW),
        "revenue": sales.revenue,
        "lead_flow": sales.lead_flow,
    }
    raw = raw_statements(fetch, tables, as_of)
    plain = plain_statements(fetch, tables, as_of)
    results = []
    for report in ("funnel", "revenue", "lead_flow"):
        ours_s = best(runs, ours[report])
        raw_s = best(runs, raw[report])
        plain_s = best(runs, plain[report])
        faster = min(raw_s, plain_s)
        print(
            f"  {name} {report:<10} ours {ours_s * 1e3:8.0f} ms   adapter's SQL raw "
            f"{raw_s * 1e3:8.0f} ms   plain SQL {plain_s * 1e3:8.0f} ms   "
            f"{verdict(ours_s, faster)}"
        )
        results.append((report, ours_s, raw_s, plain_s))
    return results


def bench_sqlite(count: int, purchases: int, runs: int) -> None:
    print(f"(1) SQLite: {count:,} accounts, {purchases:,} purchases")
    path = sqlite_file(count, purchases)
    with SQLiteRepository(path) as repository:
        sales = sp.SalesProcess(repository=repository, clock=sp.FixedClock(NOW))
        raw = sqlite3.connect(path, isolation_level=None)

        def fetch(query: str, params: list[Any]) -> list[Any]:
            return raw.execute(query, params).fetchall()

        summary = sales.revenue()
        print(
            "    figures: "
            + "; ".join(f"{c} {r.total} in {r.purchases:,} purchases" for c, r in summary.items())
        )
        compare("SQLite", sales, fetch, readmodel.Tables(
            "accounts", "purchases", "stage_changes", "purchase_tallies", "?"), runs)  # fmt: skip
        raw.close()


# --- PostgreSQL -------------------------------------------------------------------------------


class Postgres:
    """A PostgreSQL DSN: the one given, or a throwaway server's."""

    def __init__(self, dsn: str | None) -> None:
        self.dsn = dsn
        self.server: Any = None

    def __enter__(self) -> str | None:
        if self.dsn is not None:
            return self.dsn
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from postgres_server import PostgresServer, ServerUnavailable  # noqa: PLC0415

        try:
            self.server = PostgresServer().start()
        except ServerUnavailable as exc:
            print(f"  skipped: {exc}")
            return None
        return str(self.server.dsn)

    def __exit__(self, *_exc: object) -> None:
        if self.server is not None:
            self.server.stop()


def schema(dsn: str) -> str:
    import psycopg  # noqa: PLC0415

    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
    return psycopg.conninfo.make_conninfo(dsn, options=f"-c search_path={name}")


def bench_postgres(dsn: str, count: int, purchases: int, runs: int) -> None:
    import psycopg  # noqa: PLC0415

    from salesprocess.storage.postgres import TABLES, PostgresRepository  # noqa: PLC0415

    print(f"(2) PostgreSQL: {count:,} accounts, {purchases:,} purchases")
    where = schema(dsn)
    with PostgresRepository(where, migrate=True) as repository:
        took = fill(repository, count, purchases)
        print(f"    (built with add_many (COPY) in {took:.0f} s)")
        with psycopg.connect(where, autocommit=True) as admin:
            admin.execute("VACUUM ANALYZE")
        sales = sp.SalesProcess(repository=repository, clock=sp.FixedClock(NOW))
        with psycopg.connect(where, autocommit=True) as raw:

            def fetch(query: str, params: list[Any]) -> list[Any]:
                return raw.execute(query, params).fetchall()

            compare("PostgreSQL", sales, fetch, TABLES, runs)


# --- a purchase on a long-standing customer ---------------------------------------------------


def long_customer(number: int, held: int) -> Account:
    at = START
    history = (
        HistoryEntry(None, P, "capture", at),
        HistoryEntry(P, Q, "qualify", at),
        HistoryEntry(Q, C, "purchase", at),
        HistoryEntry(C, R, "purchase", at + timedelta(days=1)),
    )
    bought = tuple(
        Purchase(Money("19.90", "EUR"), at + timedelta(hours=hour)) for hour in range(held)
    )
    stage = R if held > 24 else (C if held else Q)
    return Account(
        f"long-{number}-{held}",
        f"Long {held}",
        Source("referral"),
        at,
        email=f"long{number}-{held}@x.example",
        stage=stage,
        history=history[: 4 if held > 24 else (3 if held else 2)],
        purchases=bought,
    )


def bench_long(make: Callable[[], Any], label: str, rounds: int) -> None:
    """Time purchases on accounts holding 0, 1,000 and 10,000, taking turns (same noise)."""
    print(f"(3) {label}: a purchase on an account holding 0, 1,000 and 10,000 purchases")
    sizes = (0, 1_000, 10_000)
    clock = sp.FixedClock(NOW)
    stores = []
    for held in sizes:
        repository = make()
        account = long_customer(0, held)
        repository.add_many([account])
        sales = sp.SalesProcess(repository=repository, clock=clock)
        sales.record_purchase(account.id, Money("5.00", "EUR"))  # warm: read its rows once
        stores.append((repository, sales, account.id))
    gc.collect()
    gc.freeze()  # the long accounts are long-lived: keep the collector from rescanning them
    facade: dict[int, list[float]] = {held: [] for held in sizes}
    storage: dict[int, list[float]] = {held: [] for held in sizes}
    try:
        for _ in range(rounds):
            clock.advance(minutes=1)
            for held, (repository, sales, account_id) in zip(sizes, stores, strict=True):
                started = time.perf_counter()
                sales.record_purchase(account_id, Money("5.00", "EUR"))
                facade[held].append(time.perf_counter() - started)
                stored = repository.get(account_id)
                more = stored.with_changes(
                    purchases=(*stored.purchases, Purchase(Money("5.00", "EUR"), clock.now()))
                )
                started = time.perf_counter()
                repository.get(account_id)
                repository.save(more, expected_version=stored.version)
                storage[held].append(time.perf_counter() - started)
    finally:
        gc.unfreeze()
        for repository, _sales, _id in stores:
            repository.close()
    fresh_facade, fresh_storage = statistics.median(facade[0]), statistics.median(storage[0])
    for held in sizes:
        now_facade, now_storage = statistics.median(facade[held]), statistics.median(storage[held])
        ratio = now_facade / fresh_facade
        mark = "" if not held else (", ok" if ratio <= 2 else ", OVER 2x")
        print(
            f"  holding {held:>6,}: record_purchase {now_facade * 1e3:6.2f} ms "
            f"({ratio:4.2f}x fresh{mark}); storage alone (get + save) "
            f"{now_storage * 1e3:6.2f} ms ({now_storage / fresh_storage:4.2f}x fresh)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    parser.add_argument("--postgres-dsn", help="use this PostgreSQL server")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--runs", type=int, default=3, help="timings per figure (best wins)")
    parser.add_argument("--rounds", type=int, default=200, help="purchases timed in (3)")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    count, purchases = 1_000_000 // scale, 2_000_000 // scale
    print(
        f"salesprocess reports benchmark: SQLite {sqlite3.sqlite_version}, "
        f"Python {sys.version.split()[0]}"
    )
    bench_sqlite(count, purchases, args.runs)
    with tempfile.TemporaryDirectory(prefix="salesprocess-bench-") as folder:
        names = iter(range(1_000_000))
        bench_long(
            lambda: SQLiteRepository(Path(folder) / f"long-{next(names)}.db"),
            "SQLite file (synchronous FULL)",
            args.rounds,
        )
    if args.no_postgres:
        return
    with Postgres(args.postgres_dsn) as dsn:
        if dsn is None:
            return
        from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415

        bench_postgres(dsn, count, purchases, args.runs)
        bench_long(lambda: PostgresRepository(schema(dsn), migrate=True), "PostgreSQL", args.rounds)


if __name__ == "__main__":
    main()
