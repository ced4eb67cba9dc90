"""Recurring revenue benchmark: purchase imports, and the repeat summary against pandas.

Run: ``python benchmarks/bench_revenue.py [--quick] [--postgres-dsn DSN] [--no-postgres]``.

1. Importing the CDNOW sample (6,919 real purchases of 2,357 customers) through the public API
   into a new SQLite file: ``import_purchases`` (the bulk path) against one command per
   purchase (``capture_lead`` + ``qualify`` for a customer first seen, then
   ``record_purchase``), in purchases/s; target: the bulk path at least 20x. The same on
   PostgreSQL when a server can be had (``--postgres-dsn``, or a throwaway one started from the
   local binaries as the tests do).
2. ``reports.repeat_summary`` over 100,000 accounts (about 250,000 purchases, in memory)
   against a pandas ``groupby`` computing the same columns (frequency, recency, T,
   monetary_value, by day) from a DataFrame already in memory; target: faster than pandas.

Each figure is the best of a few runs, so that a noisy neighbour on a small machine does not
decide it; (2) also prints the median.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import salesprocess as sp
from salesprocess import reports
from salesprocess.storage import SQLiteRepository

CDNOW = Path(__file__).resolve().parents[1] / "tests" / "data" / "cdnow" / "cdnow_sample.txt"
T0 = datetime(1997, 1, 1, tzinfo=UTC)


def cdnow_rows() -> list[sp.PurchaseRow]:
    rows = []
    for line in CDNOW.read_text(encoding="ascii").splitlines():
        customer, _sample, day, _cds, dollars = line.split()
        moment = datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC)
        rows.append(sp.PurchaseRow(sp.Money(dollars, "USD"), moment, account_id=f"cd{customer}"))
    return rows


def one_by_one(sales: sp.SalesProcess, rows: list[sp.PurchaseRow]) -> None:
    """What an app without the bulk path writes: a command per purchase."""
    known: dict[str, str] = {}
    for row in rows:
        key = row.account_id or ""
        if key not in known:
            lead = sales.capture_lead(
                key, phone=f"+1{len(known):010d}", channel="inbound_inquiry", at=row.at
            )
            known[key] = sales.qualify(lead.id, override="walk-in", at=row.at).id
        sales.record_purchase(known[key], row.amount, at=row.at)


def best(runs: int, work: Callable[[], float]) -> float:
    return min(work() for _ in range(runs))


def bench_import(name: str, make: Callable[[], sp.SalesProcess], runs: int) -> None:
    rows = sorted(cdnow_rows(), key=lambda row: row.at)

    def bulk() -> float:
        sales = make()
        start = time.perf_counter()
        done = sales.import_purchases(rows)
        elapsed = time.perf_counter() - start
        assert done.recorded == len(rows)
        return elapsed

    def single() -> float:
        sales = make()
        start = time.perf_counter()
        one_by_one(sales, rows)
        return time.perf_counter() - start

    fast, slow = best(runs, bulk), best(max(1, runs - 1), single)
    ratio = slow / fast
    verdict = "met" if ratio >= 20 else "MISSED"
    print(f"(1) CDNOW import, {len(rows):,} purchases, {name}")
    print(f"    import_purchases   {len(rows) / fast:>10,.0f} purchases/s  ({fast:6.2f} s)")
    print(f"    one per purchase   {len(rows) / slow:>10,.0f} purchases/s  ({slow:6.2f} s)")
    print(f"    bulk / one-by-one  {ratio:>10.1f}x  (target >= 20x: {verdict})")


def sqlite_process() -> sp.SalesProcess:
    folder = tempfile.mkdtemp(prefix="bench-revenue-")
    return sp.SalesProcess(SQLiteRepository(Path(folder) / "sales.db"), clock=sp.FixedClock(T0))


def postgres_factory(dsn: str | None) -> tuple[Callable[[], sp.SalesProcess] | None, object]:
    try:
        import psycopg  # noqa: PLC0415

        from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415
    except ImportError as error:
        print(f"(1) PostgreSQL skipped: {error}")
        return None, None
    server = None
    if dsn is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from postgres_server import PostgresServer, ServerUnavailable  # noqa: PLC0415

        try:
            server = PostgresServer().start()
        except ServerUnavailable as error:
            print(f"(1) PostgreSQL skipped: {error}")
            return None, None
        dsn = server.dsn
    counter = iter(range(1_000_000))

    def make() -> sp.SalesProcess:
        schema = f"bench_revenue_{next(counter)}"
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            admin.execute(f'CREATE SCHEMA "{schema}"')
        scoped = psycopg.conninfo.make_conninfo(dsn, options=f"-c search_path={schema}")
        return sp.SalesProcess(PostgresRepository(scoped, migrate=True), clock=sp.FixedClock(T0))

    return make, server


def synthetic_accounts(count: int, seed: int = 7) -> list[sp.Account]:
    rng = random.Random(seed)
    accounts = []
    for number in range(count):
        day = rng.randrange(0, 300)
        bought = []
        for _ in range(1 + int(rng.expovariate(0.7))):
            bought.append((day, Decimal(rng.randrange(0, 50_000)) / 100))
            day += rng.randrange(0, 60)
        purchases = tuple(
            sp.Purchase(sp.Money(amount, "USD"), T0 + timedelta(days=d, hours=rng.randrange(24)))
            for d, amount in bought
        )
        accounts.append(sp.Account(f"c{number:06d}", "C", sp.Source("referral"), T0,
                                   purchases=purchases))  # fmt: skip
    return accounts


def pandas_summary(frame: object, end: object) -> object:
    """The same columns, by day, with a pandas groupby (the way lifetimes computes them)."""
    import pandas as pd  # noqa: PLC0415

    assert isinstance(frame, pd.DataFrame)
    daily = frame.groupby(["id", "day"], sort=True)["value"].sum().reset_index()
    first = daily.groupby("id")["day"].transform("min")
    repeat = daily[daily["day"] != first]
    per = daily.groupby("id")["day"].agg(["min", "max", "count"])
    summary = pd.DataFrame(
        {
            "frequency": per["count"] - 1,
            "recency": (per["max"] - per["min"]).dt.days,
            "T": (end - per["min"]).dt.days,
        }
    )
    summary["monetary_value"] = repeat.groupby("id")["value"].mean()
    return summary.fillna({"monetary_value": 0.0})


def bench_repeat_summary(count: int, runs: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandas as pd  # noqa: PLC0415

    accounts = synthetic_accounts(count)
    end = datetime(1998, 6, 30, tzinfo=UTC)
    frame = pd.DataFrame(
        {
            "id": [a.id for a in accounts for _ in a.purchases],
            "day": pd.to_datetime([p.at.date() for a in accounts for p in a.purchases]),
            "value": [float(p.amount.amount) for a in accounts for p in a.purchases],
        }
    )
    purchases = len(frame)
    # Both inputs are built before the clock starts; freezing them keeps a full collection
    # from walking the 100,000 accounts inside whichever run it happens to fall in.
    gc.collect()
    gc.freeze()

    def ours() -> float:
        start = time.perf_counter()
        rows = reports.repeat_summary(accounts, as_of=end)
        elapsed = time.perf_counter() - start
        assert len(rows) == count
        return elapsed

    def peer() -> float:
        start = time.perf_counter()
        summary = pandas_summary(frame, pd.Timestamp(end.date()))
        elapsed = time.perf_counter() - start
        assert len(summary) == count  # type: ignore[arg-type]
        return elapsed

    mine_runs = [ours() for _ in range(runs)]
    theirs_runs = [peer() for _ in range(runs)]
    mine, theirs = min(mine_runs), min(theirs_runs)
    check = reports.repeat_summary(accounts[:50], as_of=end)
    expected = pandas_summary(frame[frame["id"].isin({a.id for a in accounts[:50]})],
                              pd.Timestamp(end.date()))  # fmt: skip
    for row in check:
        peer_row = expected.loc[row.account_id]  # type: ignore[attr-defined]
        assert (row.frequency, row.recency, row.T) == (
            int(peer_row["frequency"]), int(peer_row["recency"]), int(peer_row["T"])
        ), row.account_id  # fmt: skip
    verdict = "met" if mine < theirs else "MISSED"
    print(f"(2) repeat_summary, {count:,} accounts, {purchases:,} purchases, by day")
    print(f"    salesprocess (pure, Decimal)  {mine:7.3f} s")
    print(f"    pandas groupby (float)        {theirs:7.3f} s")
    print(f"    ours / pandas                 {mine / theirs:7.2f}x  (target < 1x: {verdict})")
    middle = statistics.median(mine_runs) / statistics.median(theirs_runs)
    print(f"    median ours / pandas          {middle:7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, a tenth of (2)")
    parser.add_argument("--postgres-dsn", help="use this PostgreSQL server for (1)")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    args = parser.parse_args()
    runs = 1 if args.quick else 3
    print(f"salesprocess {sp.__version__} revenue benchmark, Python {sys.version.split()[0]}")
    bench_import("SQLite file", sqlite_process, runs)
    if not args.no_postgres:
        make, server = postgres_factory(args.postgres_dsn)
        try:
            if make is not None:
                bench_import("PostgreSQL", make, runs)
        finally:
            if server is not None:
                server.stop()  # type: ignore[attr-defined]
    bench_repeat_summary(10_000 if args.quick else 100_000, runs)


if __name__ == "__main__":
    main()
