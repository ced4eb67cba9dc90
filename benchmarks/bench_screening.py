"""Bulk screening: ``screen_all`` in memory, on SQLite and on PostgreSQL, in one run.

Run: ``python benchmarks/bench_screening.py [--million] [--postgres DSN]`` (a few minutes on
two cores). PostgreSQL is measured when ``--postgres`` (or ``SALESPROCESS_POSTGRES_DSN``) names a
server, or when the test suite's throwaway server can be started from local binaries.

Screens 100,000 stored prospects, of which about 10% pass the issue's six-clause criteria, and
prints the time, the time per prospect (wall clock, and the CPU time of this process, which a
loaded machine inflates less) for each store, and how many passed (every store must agree).
On SQLite the criteria run as a prefilter in SQL (:mod:`salesprocess.criteria_sql`):
the prospects it rules out are screened inside the database, never decoded. ``--million`` also
screens 1,000,000 prospects on SQLite. Targets: memory at most 10 us per prospect, SQLite at most
15 us, a million on SQLite under 20 s.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_criteria import RULE  # the six-clause rule, one definition

import salesprocess as sp
from salesprocess.account import Account, HistoryEntry, Source

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def prospects(count: int) -> Iterator[Account]:
    """Seeded prospects; about 10% pass RULE."""
    rng = random.Random(count)
    for i in range(count):
        created = T0 + timedelta(seconds=i)
        yield Account(
            f"p{i:08d}",
            f"Company {i}",
            Source(sp.Channel.MARKETING_LIST),
            created,
            email=f"lead{i}@example.com",
            history=(HistoryEntry(None, sp.Stage.PROSPECT, "capture", created),),
            attributes={
                "industry": rng.choice(("manufacturing", "logistics", "retail", "food")),
                "employees": rng.randint(5, 10_000),
                "region": rng.choice(("EU", "NA", "APAC")),
                "do_not_call": rng.random() < 0.1,
                "budget": rng.randint(0, 100_000),
            },
        )


def load(repository: Any, count: int) -> None:
    batch: list[Account] = []
    for account in prospects(count):
        batch.append(account)
        if len(batch) == 10_000:
            repository.add_many(batch)
            batch.clear()
    if batch:
        repository.add_many(batch)


def measure(label: str, repository: Any, count: int) -> tuple[float, int]:
    criteria = sp.Criteria.from_dict(RULE, name="bench", version="1")
    load(repository, count)
    sales = sp.SalesProcess(
        repository, criteria=criteria, clock=sp.FixedClock(T0 + timedelta(days=30))
    )
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    reports = sales.screen_all()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert len(reports) == count, (label, len(reports))
    passed = sum(report.passed for report in reports)
    per = elapsed / count * 1e6
    print(
        f"{label:<22} {count:>9} {elapsed:>8.2f} {per:>12.1f} {cpu / count * 1e6:>8.1f} "
        f"{passed:>8}",
        flush=True,
    )
    return per, passed


@contextmanager
def postgres(dsn: str | None) -> Iterator[str | None]:
    if dsn:
        yield dsn
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    try:
        from postgres_server import PostgresServer  # noqa: PLC0415 - the tests' helper

        server = PostgresServer()
        server.start()
    except Exception as exc:  # no server here: report and go on
        print(f"(PostgreSQL not measured: {exc})")
        yield None
        return
    try:
        yield server.dsn
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--million", action="store_true")
    parser.add_argument("--postgres", default=os.environ.get("SALESPROCESS_POSTGRES_DSN"))
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    count = args.count
    measure("warm-up (memory)", sp.storage.InMemoryRepository(), 2_000)
    print(
        f"{'store':<22} {'prospects':>9} {'seconds':>8} {'us/prospect':>12} {'cpu us':>8} "
        f"{'passed':>8}"
    )
    memory, passed = measure("memory", sp.storage.InMemoryRepository(), count)
    with tempfile.TemporaryDirectory() as folder:
        with sp.storage.SQLiteRepository(Path(folder) / "bench.db", synchronous="NORMAL") as db:
            sqlite, passed_sqlite = measure("sqlite (file, NORMAL)", db, count)
        assert passed_sqlite == passed
        if args.million:
            with sp.storage.SQLiteRepository(Path(folder) / "m.db", synchronous="NORMAL") as db:
                per, _ = measure("sqlite, a million", db, 1_000_000)
                print(f"  a million on SQLite: {per * 1_000_000 / 1e6:.1f} s (target under 20 s)")
    if not args.no_postgres:
        with postgres(args.postgres) as dsn:
            if dsn:
                from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415

                with PostgresRepository(dsn, migrate=True) as db:
                    _, passed_pg = measure("postgresql", db, count)
                assert passed_pg == passed
    print(f"targets: memory {memory:.1f} us (<= 10), sqlite {sqlite:.1f} us (<= 15)")


if __name__ == "__main__":
    main()
