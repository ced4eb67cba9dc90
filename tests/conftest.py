"""Shared fixtures: storage (every adapter we ship; a throwaway PostgreSQL server and fresh
schemas on it).

PostgreSQL tests use ``SALESPROCESS_POSTGRES_DSN`` when it is set; otherwise a server is started
for the session from the local PostgreSQL binaries (see ``tests/postgres_server.py``). When no
server can be had, those tests are skipped with the reason, unless
``SALESPROCESS_REQUIRE_POSTGRES=1``, which turns that into a failure (for CI).
"""

from __future__ import annotations

import itertools
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis profiles. Speed targets live in benchmarks/, never in unit tests, so no profile
# times an example: Hypothesis's deadline and its "too slow" health check would only make a
# loaded CI machine fail tests whose behaviour is right. The default runs each property's
# bounded example count (CI); ``long`` (``pytest --hypothesis-profile=long``) runs the tests that
# do not fix their own count, the fuzz tests among them, fifty times longer.
settings.register_profile("untimed", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", settings.get_profile("untimed"), max_examples=5_000)
settings.load_profile("untimed")

# The contract kit's asserts are in the library; let pytest explain them like a test's own.
pytest.register_assert_rewrite("salesprocess.testing")

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:  # tests/postgres_server.py is a helper module, not a package
    sys.path.insert(0, _HERE)

from postgres_server import PostgresServer, ServerUnavailable  # noqa: E402


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The DSN of a PostgreSQL server for this session (skip, or fail if required, if none)."""
    given = os.environ.get("SALESPROCESS_POSTGRES_DSN")
    if given:
        yield given
        return
    server = PostgresServer()
    try:
        server.start()
    except ServerUnavailable as exc:
        if os.environ.get("SALESPROCESS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"SALESPROCESS_REQUIRE_POSTGRES=1 but no PostgreSQL server: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield server.dsn
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_schema(postgres_dsn: str) -> Iterator[Callable[[], str]]:
    """Return a function that creates a new, empty schema and returns a DSN that uses it.

    Schemas keep tests apart on one server; all of them are dropped at the end of the session.
    """
    psycopg = pytest.importorskip("psycopg", reason="PostgreSQL tests need the postgres extra")
    made: list[str] = []
    prefix = f"sp_test_{uuid.uuid4().hex[:8]}_"
    counter = itertools.count()

    def make() -> str:
        name = f"{prefix}{next(counter)}"
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute(f'CREATE SCHEMA "{name}"')
        made.append(name)
        return psycopg.conninfo.make_conninfo(postgres_dsn, options=f"-c search_path={name}")

    yield make
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        for name in made:
            admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(params=["memory", "sqlite-file", "sqlite-memory", "postgres"])
def any_repository(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Every adapter we ship, in turn: what the process promises must hold on each."""
    from salesprocess.storage import InMemoryRepository, SQLiteRepository  # noqa: PLC0415

    if request.param == "memory":
        yield InMemoryRepository()
        return
    if request.param == "postgres":
        from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415

        made = request.getfixturevalue("postgres_schema")
        with PostgresRepository(made(), migrate=True) as postgres:
            yield postgres
        return
    path = tmp_path / "sales.db" if request.param == "sqlite-file" else ":memory:"
    with SQLiteRepository(path) as sqlite:
        yield sqlite
