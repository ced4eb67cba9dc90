"""Storage benchmark: the adapters against raw driver calls doing the same work.

Run: ``python benchmarks/bench_storage.py [--quick] [--postgres-dsn DSN] [--no-postgres]``.

1. bulk add of 100,000 new prospects with ``add_many`` vs raw ``executemany`` of the same rows,
   pre-serialised, into the same schema in one transaction (target: at most 2x);
2. ``count_by_stage`` over 1,000,000 accounts vs the raw ``GROUP BY`` (target: at most 1.5x);
3. the duplicate check, ``find_id(email=...)``, vs the raw indexed ``SELECT id`` for emails that
   are stored (hit) and new ones (miss) (target: at most 1.5x); ``find_by_email``, which also
   reads and decodes the account, is shown for information;
4. loading one account with 20 history entries by id vs the raw query: decoded afresh, from the
   cache, and right after this process saved it (the write primed the cache);
5. PostgreSQL bulk add (``COPY``) in rows/s, if a server can be had (``--postgres-dsn``, or a
   throwaway one started from the local binaries as the tests do).

Each figure is the best of a few runs, so that a noisy neighbour on a small machine does not
decide it. The 1,000,000-row table is built with raw inserts of rows made from a template.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from salesprocess.account import Account, HistoryEntry, Source
from salesprocess.stage import Stage
from salesprocess.storage import serialise
from salesprocess.storage.serialise import created_key
from salesprocess.storage.sqlite import SQLiteRepository, account_row

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
# Our schema's two rows of an account: its accounts row and its state row (the version).
INSERT = (
    "INSERT INTO accounts (id, name, email, phone, stage, created_at, data, referral_code) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_STATE = "INSERT INTO account_states (id, version) VALUES (?, ?)"


def split(row: tuple) -> tuple[tuple, tuple]:
    """Return an ``account_row`` as its accounts row and its state row."""
    return (*row[:6], *row[7:]), (row[0], row[6])


STAGES = [Stage.PROSPECT] * 6 + [Stage.QUALIFIED] * 2 + [Stage.CUSTOMER, Stage.DISQUALIFIED]


def prospect(number: int) -> Account:
    """A new lead as capture_lead makes one: uuid id, contacts, attributes, one history entry."""
    at = T0 + timedelta(seconds=number)
    return Account(
        uuid.uuid4().hex,
        f"Company {number} GmbH",
        Source("marketing_list", "spring-expo"),
        at,
        email=f"buyer{number}@company{number % 997}.example",
        phone=f"+4930{number:08d}",
        attributes={"industry": "manufacturing", "employees": number % 5000, "region": "EU"},
        history=(HistoryEntry(None, Stage.PROSPECT, "capture", at),),
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


def fresh_file(directory: Path, name: str) -> Path:
    """Return the path of a new database with the current schema (and nothing in it)."""
    path = directory / f"{name}-{uuid.uuid4().hex[:8]}.db"
    SQLiteRepository(path).close()
    return path


def raw_connection(path: Path) -> sqlite3.Connection:
    """A plain connection with the repository's settings (WAL, synchronous FULL)."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    return connection


def line(label: str, ours: float, raw: float, unit: str = "us/op", target: float | None = None):
    ratio = ours / raw
    verdict = "" if target is None else ("  ok" if ratio <= target else f"  OVER {target}x")
    print(f"  {label:<62} ours {ours:10.2f} {unit}  raw {raw:10.2f} {unit}  {ratio:5.2f}x{verdict}")


def bench_bulk_add(directory: Path, count: int, runs: int) -> None:
    encoders = [serialise.ENCODER] + (["json"] if serialise.ENCODER != "json" else [])
    in_use = serialise._encode
    try:
        for encoder in encoders:
            if encoder == "json":
                serialise._encode = serialise._encode_stdlib  # what runs without orjson
            bench_bulk_add_with(directory, count, runs, encoder)
    finally:
        serialise._encode = in_use


def bench_bulk_add_with(directory: Path, count: int, runs: int, encoder: str) -> None:
    print(f"(1) bulk add of {count:,} new prospects (JSON writer: {encoder})")
    accounts = [prospect(n) for n in range(count)]
    rows, states = zip(*(split(account_row(account, 1)) for account in accounts), strict=True)
    gc.collect()
    gc.freeze()  # the inputs are long-lived: keep the collector from rescanning them

    def ours() -> None:
        with SQLiteRepository(fresh_file(directory, "ours")) as repository:
            repository.add_many(accounts)

    def raw() -> None:
        connection = raw_connection(fresh_file(directory, "raw"))
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(INSERT, rows)
        connection.executemany(INSERT_STATE, states)
        connection.execute("COMMIT")
        connection.close()

    timings_ours, timings_raw = [], []
    for _ in range(runs):  # interleaved, so that drift in machine load hits both alike
        timings_raw.append(best(1, raw))
        timings_ours.append(best(1, ours))
    serialise_only = best(1, lambda: [account_row(account, 1) for account in accounts])
    gc.unfreeze()
    per = 1e6 / count
    line(
        "add_many vs executemany (per row)",
        min(timings_ours) * per,
        min(timings_raw) * per,
        target=2.0,
    )
    print(
        f"  {'':<62} ours {count / min(timings_ours):10,.0f} rows/s; serialising alone "
        f"{serialise_only * per:.2f} us/row; median ratio "
        f"{statistics.median(timings_ours) / statistics.median(timings_raw):.2f}x"
    )


def build_million(path: Path, count: int) -> list[str]:
    """Fill ``path`` with ``count`` accounts from per-stage templates; return their emails."""
    templates = {}
    for stage in set(STAGES):
        template = Account(
            "ID-PLACEHOLDER",
            "Company NAME-PLACEHOLDER GmbH",
            Source("cold_outreach"),
            T0,
            email="email-placeholder@company.example",
            attributes={"industry": "retail", "employees": 40},
            stage=stage,
            history=(HistoryEntry(None, stage, "capture", T0),),
            version=1,
        )
        templates[stage] = serialise.dumps(template)
    key = created_key(T0)
    emails = []

    def rows():
        for number in range(count):
            stage = STAGES[number % len(STAGES)]
            account_id = f"acc-{number:08d}"
            email = f"buyer{number}@company.example"
            emails.append(email)
            data = (
                templates[stage]
                .replace("ID-PLACEHOLDER", account_id)
                .replace("NAME-PLACEHOLDER", str(number))
                .replace("email-placeholder@company.example", email)
            )
            name = f"Company {number} GmbH"
            yield (account_id, name, email, None, stage, key + number, data, None)

    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous = OFF")
    connection.execute("BEGIN")
    connection.executemany(INSERT, rows())
    connection.execute(
        "INSERT INTO account_states (id, version) SELECT id, 1 FROM accounts ORDER BY id"
    )
    connection.execute("COMMIT")
    connection.execute("ANALYZE")
    connection.close()
    return emails


def bench_queries(directory: Path, count: int, runs: int) -> None:
    path = fresh_file(directory, "million")
    started = time.perf_counter()
    emails = build_million(path, count)
    print(f"    (built {count:,} accounts in {time.perf_counter() - started:.1f} s)")
    repository = SQLiteRepository(path)
    raw = raw_connection(path)

    print(f"(2) count_by_stage over {count:,} accounts")
    ours_s = best(runs, repository.count_by_stage)
    raw_s = best(
        runs, lambda: raw.execute("SELECT stage, count(*) FROM accounts GROUP BY stage").fetchall()
    )
    line("count_by_stage vs GROUP BY", ours_s * 1e3, raw_s * 1e3, "ms", target=1.5)

    print("(3) duplicate check by email (random emails, unique index)")
    chooser = random.Random(1)
    sample = [chooser.choice(emails) for _ in range(3000)]
    # Capturing a new lead asks the same question and most often hears "no such account".
    fresh = [f"new-{n}@nowhere.example" for n in range(3000)]
    by_email = "SELECT id FROM accounts WHERE email = ?"
    per = 1e6 / len(sample)
    for label, keys in (("stored email (hit)", sample), ("new lead (miss)", fresh)):

        def ours_check(keys: list[str] = keys) -> None:
            for email in keys:
                repository.find_id(email=email)

        def raw_check(keys: list[str] = keys) -> None:
            for email in keys:
                raw.execute(by_email, (email,)).fetchone()

        line(
            f"find_id, {label}, vs SELECT id",
            best(runs, ours_check) * per,
            best(runs, raw_check) * per,
            target=1.5,
        )

    def ours_find() -> None:
        serialise.cached_loads.cache_clear()  # every look-up decodes: no help from the cache
        for email in sample:
            repository.find_by_email(email)

    def raw_find() -> None:
        for email in sample:
            raw.execute("SELECT data FROM accounts WHERE email = ?", (email,)).fetchone()

    def raw_find_json() -> None:
        for email in sample:
            json.loads(
                raw.execute("SELECT data FROM accounts WHERE email = ?", (email,)).fetchone()[0]
            )

    ours_us, raw_us = best(runs, ours_find) * per, best(runs, raw_find) * per
    print("  for information: find_by_email reads and decodes the whole account")
    line("find_by_email vs SELECT data", ours_us, raw_us)
    line("find_by_email vs SELECT data + json.loads", ours_us, best(runs, raw_find_json) * per)
    texts = [
        raw.execute("SELECT data FROM accounts WHERE email = ?", (e,)).fetchone()[0] for e in sample
    ]
    decode_us = best(runs, lambda: [serialise.loads(text) for text in texts]) * per
    print(
        f"  {'':<62} of which decoding to an Account: {decode_us:.2f} us; the query part "
        f"{ours_us - decode_us:.2f} us ({(ours_us - decode_us) / raw_us:.2f}x raw)"
    )

    print("(4) load one account with 20 history entries by id")
    changes = tuple(
        HistoryEntry(
            Stage.PROSPECT if n % 2 else Stage.QUALIFIED,
            Stage.QUALIFIED if n % 2 else Stage.PROSPECT,
            "qualify" if n % 2 else "recycle",
            T0 + timedelta(days=n),
            "ann",
            "reason" if n % 3 else None,
        )
        for n in range(20)
    )
    history = (HistoryEntry(None, Stage.PROSPECT, "capture", T0), *changes[:19])
    stored = repository.add(
        Account(
            "long-history",
            "Long History AG",
            Source("referral"),
            T0,
            email="long@history.example",
            history=history,
        )
    )
    loops = range(3000)
    by_id = "SELECT data FROM accounts WHERE id = ?"
    raw_get = best(runs, lambda: [raw.execute(by_id, ("long-history",)).fetchone() for _ in loops])
    warm = best(runs, lambda: [repository.get("long-history") for _ in loops])

    def cold() -> None:
        for _ in loops:
            serialise.cached_loads.cache_clear()
            repository.get("long-history")

    line("get, decoded afresh, vs SELECT data", best(runs, cold) * 1e6 / 3000, raw_get * 1e6 / 3000)
    line("get, text seen lately (cache), vs SELECT", warm * 1e6 / 3000, raw_get * 1e6 / 3000)

    # Reading right after a write costs SQLite more (the first read after a commit), so the
    # raw side does the same: SELECT data right after its own UPDATE of the whole row.
    saves = 300  # each write syncs the file (synchronous FULL): fewer rounds, the read timed

    def after_save() -> float:
        nonlocal stored
        elapsed = 0.0
        for _ in range(saves):
            stored = repository.save(stored, expected_version=stored.version)  # new text
            started = time.perf_counter()
            repository.get("long-history")
            elapsed += time.perf_counter() - started
        return elapsed

    update = (
        "UPDATE accounts SET name = ?, email = ?, phone = ?, stage = ?, created_at = ?, "
        "data = ?, referral_code = ? WHERE id = ?"
    )
    update_state = "UPDATE account_states SET version = ? WHERE id = ?"

    def raw_after_write() -> float:
        elapsed = 0.0
        for number in range(saves):
            row = account_row(stored, stored.version + 1 + number)  # a new text every time
            own, state = split(row)
            raw.execute(update, (*own[1:], own[0]))
            raw.execute(update_state, (state[1], state[0]))
            started = time.perf_counter()
            raw.execute(by_id, ("long-history",)).fetchone()
            elapsed += time.perf_counter() - started
        return elapsed

    serialise.cached_loads.cache_clear()
    primed = min(after_save() for _ in range(runs))
    decoded = serialise.cached_loads.cache_info().misses
    raw_written = min(raw_after_write() for _ in range(runs))
    line(
        "get right after this process saved it (cache primed on write)",
        primed * 1e6 / saves,
        raw_written * 1e6 / saves,
    )
    print(
        f"  {'':<62} raw: SELECT data right after its UPDATE of the row; "
        f"accounts decoded: {decoded} of {runs * saves}"
    )
    repository.close()
    raw.close()


def bench_postgres(dsn: str | None, count: int, runs: int) -> None:
    print(f"(5) PostgreSQL bulk add of {count:,} new prospects (COPY)")
    try:
        import psycopg  # noqa: PLC0415

        from salesprocess.storage.postgres import PostgresRepository, _row  # noqa: PLC0415
    except ImportError as exc:
        print(f"  skipped: {exc}")
        return
    server = None
    if dsn is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from postgres_server import PostgresServer, ServerUnavailable  # noqa: PLC0415

        try:
            server = PostgresServer().start()
        except ServerUnavailable as exc:
            print(f"  skipped: {exc}")
            return
        dsn = server.dsn
    try:
        accounts = [prospect(n) for n in range(count)]
        rows = [_row(account, 1) for account in accounts]
        timings_ours, timings_raw = [], []
        for run in range(runs):
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute(f"CREATE SCHEMA {schema}")
                admin.execute(f"CREATE SCHEMA {schema}_raw")
            options = f"-c search_path={schema}"
            with PostgresRepository(
                psycopg.conninfo.make_conninfo(dsn, options=options), migrate=True
            ) as repo:
                started = time.perf_counter()
                repo.add_many(accounts)
                timings_ours.append(time.perf_counter() - started)
            raw_dsn = psycopg.conninfo.make_conninfo(dsn, options=f"{options}_raw")
            PostgresRepository(raw_dsn, migrate=True).close()
            with psycopg.connect(raw_dsn) as connection:
                started = time.perf_counter()
                with connection.cursor().copy(
                    "COPY salesprocess_accounts (id, name, email, phone, stage, created_at, "
                    "version, data, referral_code) FROM STDIN"
                ) as copy:
                    for row in rows:
                        copy.write_row(row)
                connection.commit()
                timings_raw.append(time.perf_counter() - started)
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA {schema} CASCADE")
                admin.execute(f"DROP SCHEMA {schema}_raw CASCADE")
            del run
        per = 1e6 / count
        line(
            "add_many (COPY) vs raw COPY (per row)", min(timings_ours) * per, min(timings_raw) * per
        )
        print(
            f"  {'':<62} ours {count / min(timings_ours):10,.0f} rows/s, "
            f"raw {count / min(timings_raw):,.0f} rows/s"
        )
    finally:
        if server is not None:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    parser.add_argument("--postgres-dsn", help="use this PostgreSQL server for (5)")
    parser.add_argument("--no-postgres", action="store_true", help="skip (5)")
    parser.add_argument("--runs", type=int, default=3, help="timings per figure (best wins)")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    print(
        f"salesprocess storage benchmark: SQLite {sqlite3.sqlite_version}, "
        f"Python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory(prefix="salesprocess-bench-") as folder:
        directory = Path(folder)
        bench_bulk_add(directory, 100_000 // scale, args.runs)
        bench_queries(directory, 1_000_000 // scale, args.runs)
    if not args.no_postgres:
        bench_postgres(args.postgres_dsn, 100_000 // scale, args.runs)


if __name__ == "__main__":
    main()
