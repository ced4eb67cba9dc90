"""Web benchmark: a FastAPI app over PostgreSQL, the async facade against the sync one in threads.

Run: ``python benchmarks/bench_web.py [--quick] [--postgres-dsn DSN] [--clients 8]``
(needs the dev extra: fastapi, uvicorn, httpx, psycopg-pool; about two minutes).

Two apps with the same two routes, each served by uvicorn in a process of its own on the same
PostgreSQL server (``--postgres-dsn``, or a throwaway one started from the local binaries as the
tests do), each on a fresh schema with the same accounts:

- **async**: ``AsyncSalesProcess`` over ``AsyncPostgresRepository`` on an
  ``AsyncConnectionPool`` (8 connections, autocommit), ``async def`` routes;
- **sync in threads**: one ``SalesProcess`` over ``PostgresRepository`` on a
  ``ConnectionPool`` (8 connections, autocommit), plain ``def`` routes, which FastAPI runs in
  its thread pool.

``GET /accounts/{id}`` answers ``sp.to_json(account)``; ``POST /accounts/{id}/purchases``
records a purchase and answers the account. ``--clients`` clients (default 8) send requests
back to back for a while, the two apps taking turns (``--rounds``, default 3, so that a
neighbour's load on a shared machine falls on both alike); we report the median requests/s,
the p50/p99 latency per route and app, and the ratio async / sync. Then, in this process, the
database round trips and statements of one GET
and one purchase through each facade, counted from libpq's protocol trace (a round trip is the
client sending and then waiting for the server's answer).
Absolute figures drift on a shared machine; compare the apps within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import salesprocess as sp

ROUTES = ("GET account", "record purchase")
ACCOUNTS = 200


def http_status(error: sp.SalesProcessError) -> int:
    """The status a web API answers for each error (see docs/fastapi.md)."""
    if isinstance(error, sp.NotFound):
        return 404
    if isinstance(error, sp.ValidationError):
        return 422
    if isinstance(error, sp.ConflictError):
        return 409
    if isinstance(error, sp.StorageError):
        return 503
    return 400


def async_app(dsn: str) -> Any:
    from contextlib import asynccontextmanager  # noqa: PLC0415

    from psycopg_pool import AsyncConnectionPool  # noqa: PLC0415

    from salesprocess.storage.postgres_async import AsyncPostgresRepository  # noqa: PLC0415

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        async with AsyncConnectionPool(
            dsn, kwargs={"autocommit": True}, min_size=8, max_size=8, open=False
        ) as pool:
            app.state.sales = sp.AsyncSalesProcess(AsyncPostgresRepository(pool))
            yield

    app = FastAPI(lifespan=lifespan)

    @app.exception_handler(sp.SalesProcessError)
    async def refused(request: Request, error: sp.SalesProcessError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=http_status(error))

    @app.get("/accounts/{account_id}")
    async def get_account(account_id: str, request: Request) -> JSONResponse:
        return JSONResponse(sp.to_json(await request.app.state.sales.get(account_id)))

    @app.post("/accounts/{account_id}/purchases")
    async def record_purchase(account_id: str, body: dict[str, str], request: Request) -> Any:
        money = sp.Money(body["amount"], body["currency"])
        account = await request.app.state.sales.record_purchase(account_id, money)
        return JSONResponse(sp.to_json(account))

    return app


def sync_app(dsn: str) -> Any:
    from psycopg_pool import ConnectionPool  # noqa: PLC0415

    from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415

    # one process-wide SalesProcess over a pool of 8 connections, shared by FastAPI's worker
    # threads (docs/web.md): each call takes a connection and gives it back
    pool = ConnectionPool(dsn, kwargs={"autocommit": True}, min_size=8, max_size=8, open=True)
    shared = sp.SalesProcess(PostgresRepository(pool))

    def sales() -> sp.SalesProcess:
        return shared

    app = FastAPI()

    @app.exception_handler(sp.SalesProcessError)
    async def refused(request: Request, error: sp.SalesProcessError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=http_status(error))

    @app.get("/accounts/{account_id}")
    def get_account(account_id: str) -> JSONResponse:
        return JSONResponse(sp.to_json(sales().get(account_id)))

    @app.post("/accounts/{account_id}/purchases")
    def record_purchase(account_id: str, body: dict[str, str]) -> JSONResponse:
        money = sp.Money(body["amount"], body["currency"])
        return JSONResponse(sp.to_json(sales().record_purchase(account_id, money)))

    return app


def serve(kind: str, dsn: str, port: int) -> None:
    import uvicorn  # noqa: PLC0415

    app = async_app(dsn) if kind == "async" else sync_app(dsn)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- the load ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def seed(dsn: str) -> list[str]:
    """Fresh tables with ACCOUNTS customers; return their ids."""
    from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415

    with PostgresRepository(dsn, migrate=True) as repository:
        sales = sp.SalesProcess(repository)
        ids = []
        for number in range(ACCOUNTS):
            lead = sales.capture_lead(
                f"Customer {number}", email=f"c{number}@shop.example", channel="inbound_inquiry"
            )
            sales.qualify(lead.id, override="benchmark")
            sales.record_purchase(lead.id, sp.Money("10.00", "EUR"))
            ids.append(lead.id)
    return ids


@contextlib.contextmanager
def running(kind: str, dsn: str) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, __file__, "--serve", kind, "--dsn", dsn, "--port", str(port)]
    server = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx  # noqa: PLC0415

        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/docs", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the {kind} app did not start")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


async def load(
    url: str, route: str, ids: list[str], clients: int, seconds: float
) -> tuple[float, list[float]]:
    """Send requests from ``clients`` clients for ``seconds``; return (requests/s, latencies)."""
    import httpx  # noqa: PLC0415

    latencies: list[float] = []
    failures: list[tuple[int, str]] = []
    deadline = time.perf_counter() + seconds

    async def client(number: int) -> None:
        draw = random.Random(number)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            while time.perf_counter() < deadline:
                account_id = draw.choice(ids)
                started = time.perf_counter()
                if route == "GET account":
                    answer = await http.get(f"/accounts/{account_id}")
                else:
                    answer = await http.post(
                        f"/accounts/{account_id}/purchases",
                        json={"amount": "12.50", "currency": "EUR"},
                    )
                latencies.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    failures.append((answer.status_code, answer.text[:200]))

    started = time.perf_counter()
    await asyncio.gather(*(client(number) for number in range(clients)))
    elapsed = time.perf_counter() - started
    if failures:
        print(f"    {route}: {len(failures)} requests failed, the first: {failures[0]}")
        if len(failures) > len(latencies) // 100:
            raise SystemExit("more than 1% of the requests failed: the figures would be wrong")
    return len(latencies) / elapsed, latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# --- round trips ------------------------------------------------------------------------------


def count_trace(path: Path) -> tuple[int, int]:
    """Return (round trips, statements) of a libpq protocol trace."""
    trips = statements = 0
    previous = ""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        side, message = parts[0], parts[2].strip()
        if side == "F" and message in ("Execute", "Query"):
            statements += 1
        if side == "B" and previous == "F":
            trips += 1
        previous = side
    return trips, statements


@contextlib.contextmanager
def traced(connection: Any) -> Iterator[Callable[[], tuple[int, int]]]:
    with tempfile.NamedTemporaryFile("w", suffix=".trace", delete=False) as file:
        path = Path(file.name)
        connection.pgconn.trace(file.fileno())
        connection.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        counted: list[tuple[int, int]] = []
        try:
            yield lambda: counted[0]
        finally:
            connection.pgconn.untrace()
            file.flush()
            counted.append(count_trace(path))
            path.unlink()


def round_trips(dsn: str, ids: list[str]) -> dict[tuple[str, str], tuple[int, int]]:
    from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415
    from salesprocess.storage.postgres_async import AsyncPostgresRepository  # noqa: PLC0415

    found: dict[tuple[str, str], tuple[int, int]] = {}
    with psycopg.connect(dsn, autocommit=True) as connection:
        sales = sp.SalesProcess(PostgresRepository(connection))
        sales.get(ids[0])  # the first call of a repository may check the schema
        for route, work in (
            ("GET account", lambda: sales.get(ids[1])),
            ("record purchase", lambda: sales.record_purchase(ids[1], sp.Money("1", "EUR"))),
        ):
            work()  # warm: what the process has read is remembered, as in a running app
            with traced(connection) as result:
                work()
            found["sync", route] = result()

    async def measure() -> None:
        connection = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        try:
            asales = sp.AsyncSalesProcess(AsyncPostgresRepository(connection))
            await asales.get(ids[0])
            for route, work in (
                ("GET account", lambda: asales.get(ids[2])),
                ("record purchase", lambda: asales.record_purchase(ids[2], sp.Money("1", "EUR"))),
            ):
                await work()
                with traced(connection) as result:
                    await work()
                found["async", route] = result()
        finally:
            await connection.close()

    asyncio.run(measure())
    return found


# --- the run ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per route instead of 10")
    parser.add_argument("--postgres-dsn", help="use this PostgreSQL server")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="turns per app and route")
    parser.add_argument("--serve", choices=["async", "sync"], help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.dsn, args.port)
        return
    seconds = 3.0 if args.quick else 10.0
    server = None
    dsn = args.postgres_dsn
    if dsn is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from postgres_server import PostgresServer  # noqa: PLC0415

        server = PostgresServer().start()
        dsn = server.dsn
    print(
        f"salesprocess web benchmark: FastAPI + uvicorn, {args.clients} clients, "
        f"{args.rounds} turns of {seconds:.0f} s per app and route, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    try:
        results: dict[tuple[str, str], tuple[float, float, float]] = {}
        with contextlib.ExitStack() as stack:
            urls: dict[str, str] = {}
            ids: dict[str, list[str]] = {}
            dsns: dict[str, str] = {}
            for kind in ("async", "sync"):
                schema = f"bench_web_{kind}_{uuid.uuid4().hex[:6]}"
                with psycopg.connect(dsn, autocommit=True) as admin:
                    admin.execute(f"CREATE SCHEMA {schema}")
                dsns[kind] = psycopg.conninfo.make_conninfo(dsn, options=f"-c search_path={schema}")
                ids[kind] = seed(dsns[kind])
                urls[kind] = stack.enter_context(running(kind, dsns[kind]))
            for route in ROUTES:
                rates: dict[str, list[float]] = {"async": [], "sync": []}
                latencies: dict[str, list[float]] = {"async": [], "sync": []}
                for kind in ("async", "sync"):  # warm up
                    asyncio.run(load(urls[kind], route, ids[kind], args.clients, 1.0))
                # The apps take turns, so that a neighbour's load on a shared machine falls
                # on both alike; the idle one uses no CPU.
                for _ in range(args.rounds):
                    for kind in ("async", "sync"):
                        rate, taken = asyncio.run(
                            load(urls[kind], route, ids[kind], args.clients, seconds)
                        )
                        rates[kind].append(rate)
                        latencies[kind].extend(taken)
                for kind in ("async", "sync"):
                    results[kind, route] = (
                        statistics.median(rates[kind]),
                        statistics.median(latencies[kind]) * 1e3,
                        percentile(latencies[kind], 0.99) * 1e3,
                    )
        trips = round_trips(dsns["sync"], ids["sync"])
        label = {"async": "async facade", "sync": "sync facade in threads"}
        print(f"\n  {'route':<17} {'app':<24} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
        for route in ROUTES:
            for kind in ("async", "sync"):
                rate, p50, p99 = results[kind, route]
                print(f"  {route:<17} {label[kind]:<24} {rate:8.0f} {p50:8.2f} {p99:8.2f}")
            (a_rate, a_50, a_99), (s_rate, s_50, s_99) = (
                results["async", route],
                results["sync", route],
            )
            print(
                f"  {'':<17} {'ratio async / sync':<24} {a_rate / s_rate:7.2f}x "
                f"{a_50 / s_50:7.2f}x {a_99 / s_99:7.2f}x"
            )
        print("\n  database work per request (warm process), from libpq's protocol trace:")
        print(f"  {'route':<17} {'facade':<24} {'round trips':>11} {'statements':>11}  target")
        for route in ROUTES:
            target = "1 round trip" if route == "GET account" else "at most 3"
            for kind in ("async", "sync"):
                trips_, statements = trips[kind, route]
                print(f"  {route:<17} {kind:<24} {trips_:>11} {statements:>11}  {target}")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
