"""Hostile input, counted: calls tried, escapes and partial writes per adapter (issue 13).

Run: ``python benchmarks/fuzz_hostile.py [--examples N] [--adapters memory,sqlite,postgres]``
(``--examples`` per command and adapter; 200 by default, a few minutes on two cores).

Every public command of ``SalesProcess`` is called with arguments drawn by Hypothesis from
tests/hostile_calls.py (valid or hostile: wrong types, ``None``, huge text, NUL, lone
surrogates, extreme datetimes and decimals, objects whose dunders raise), on each adapter.
Each call is judged: done, refused cleanly, an escape (an exception that is not a
``SalesProcessError``, or a refusal whose message is too long, unprintable or names no field)
or a partial write (a refusal after which the stored accounts or the published events differ).
The promise is zero escapes and zero partial writes; the table shows the counts and the first
few problems. The PostgreSQL adapter runs on a throwaway server (tests/postgres_server.py).
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from hostile_calls import Outcome, World, commands, describe, judge, seed
from salesprocess.storage import InMemoryRepository, SQLiteRepository
from salesprocess.storage.protocol import AccountRepository


@contextmanager
def postgres() -> Iterator[Callable[[], Any]]:
    """Yield a maker of fresh PostgreSQL repositories (a schema each) on a throwaway server."""
    import psycopg  # noqa: PLC0415

    from postgres_server import PostgresServer  # noqa: PLC0415
    from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415

    server = PostgresServer().start()
    opened: list[PostgresRepository] = []

    def make() -> PostgresRepository:
        name = f"fuzz_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(server.dsn, autocommit=True) as admin:
            admin.execute(f'CREATE SCHEMA "{name}"')
        dsn = psycopg.conninfo.make_conninfo(server.dsn, options=f"-c search_path={name}")
        repository = PostgresRepository(dsn)
        opened.append(repository)
        return repository

    try:
        yield make
    finally:
        for repository in opened:
            repository.close()
        server.stop()


def fuzz(
    world: World,
    name: str,
    examples: int,
    counts: collections.Counter[Outcome],
    problems: list[str],
) -> None:
    """Call command ``name`` on ``world`` ``examples`` times, counting the outcomes."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(call=commands(world)[name]())
    def attempt(call: Any) -> None:
        verdict = judge(world, name, call)
        counts[verdict.outcome] += 1
        if verdict.problem and len(problems) < 5:
            problems.append(f"  {name}{describe(call)}: {verdict.problem}")

    attempt()


def run(adapter: str, make: Callable[[], AccountRepository], examples: int) -> None:
    """Fuzz every command on a fresh repository of ``adapter``; print its line of the table."""
    counts: collections.Counter[Outcome] = collections.Counter()
    problems: list[str] = []
    started = time.perf_counter()
    for name in sorted(commands(seed(InMemoryRepository()))):
        fuzz(seed(make()), name, examples, counts, problems)
    tried = sum(counts.values())
    print(
        f"{adapter:<14} {tried:>7} {counts[Outcome.DONE]:>7} {counts[Outcome.REFUSED]:>8} "
        f"{counts[Outcome.ESCAPE]:>7} {counts[Outcome.PARTIAL_WRITE]:>8} "
        f"{time.perf_counter() - started:>8.1f}"
    )
    for problem in problems:
        print(problem)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="per command and adapter")
    parser.add_argument("--adapters", default="memory,sqlite,postgres")
    options = parser.parse_args()
    wanted = options.adapters.split(",")
    print(f"{'adapter':<14} {'calls':>7} {'done':>7} {'refused':>8} {'escapes':>7} "
          f"{'partial':>8} {'seconds':>8}")  # fmt: skip
    if "memory" in wanted:
        run("memory", InMemoryRepository, options.examples)
    if "sqlite" in wanted:
        with tempfile.TemporaryDirectory() as directory:
            paths = (Path(directory) / f"fuzz-{i}.db" for i in range(10**6))
            run("sqlite", lambda: SQLiteRepository(next(paths)), options.examples)
    if "postgres" in wanted:
        with postgres() as make:
            run("postgres", make, options.examples)


if __name__ == "__main__":
    main()
