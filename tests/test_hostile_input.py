"""Hostile input: every public command of ``SalesProcess``, on every adapter, fed valid and
hostile arguments (wrong types, ``None``, huge text, NUL, lone surrogates, extreme datetimes
and decimals, objects whose dunders raise).

The promise checked (issue 13): only a ``SalesProcessError`` escapes, its message is short,
printable and names the field; and a refused call leaves the stored accounts and the published
events exactly as they were. The strategies and the judge are in tests/hostile_calls.py.

In CI each command runs a few examples per adapter; ``--hypothesis-profile=long`` (registered
in conftest.py) runs each many more. benchmarks/fuzz_hostile.py counts calls, escapes and
partial writes per adapter.
"""

from __future__ import annotations

import inspect
import sqlite3
from collections.abc import Callable
from datetime import date, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import salesprocess as sp
from hostile_calls import (
    HOSTILE,
    T0,
    RaisingIterable,
    World,
    broken_calls,
    commands,
    message_problem,
    one_hostile,
    seed,
)
from salesprocess.checks import shown, unencodable
from salesprocess.clock import EARLIEST, LATEST
from salesprocess.errors import MAX_MESSAGE
from salesprocess.storage import InMemoryRepository, SQLiteRepository

#: Examples per command and adapter: few in CI, the profile's count under the long profile.
LONG = settings.get_profile("long")
EXAMPLES = LONG.max_examples if settings.default.max_examples >= LONG.max_examples else 6

_HOSTILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    database=None,
)

#: The public commands: every public method of SalesProcess (the properties are no commands).
PUBLIC = sorted(
    name
    for name, member in inspect.getmembers(sp.SalesProcess)
    if not name.startswith("_") and inspect.isfunction(member)
)


def test_every_public_command_is_fed_hostile_input() -> None:
    """The table of tests/hostile_calls.py covers every public method, and no other."""
    world = seed(InMemoryRepository())
    assert sorted(commands(world)) == PUBLIC


@pytest.fixture
def world(any_repository: Any) -> World:
    return seed(any_repository)


@pytest.mark.parametrize("name", PUBLIC)
def test_only_sales_process_errors_escape_and_refusals_change_nothing(
    world: World, name: str
) -> None:
    """Valid or hostile, a call succeeds or is refused cleanly, storing and publishing nothing.

    Broken promises are collected rather than raised inside Hypothesis: each call changes the
    shared store, so a replay (to shrink) would not meet the same store.
    """
    broken = broken_calls(world, name, _HOSTILE)
    assert not broken, "\n\n".join(broken[:3])


@_HOSTILE
@given(
    option=st.sampled_from(
        ["repository", "criteria", "scoring", "qualification_policy", "service_policy",
         "lifecycle", "clock", "max_retries", "id_factory", "code_factory"]
    ),
    value=one_hostile(),
)  # fmt: skip
def test_the_constructor_refuses_what_it_cannot_use(option: str, value: object) -> None:
    """SalesProcess(...) with a hostile option is built or refused with a SalesProcessError."""
    problem = ""
    try:
        sp.SalesProcess(**{option: value})
    except sp.SalesProcessError as error:
        problem = message_problem(error)
    assert not problem


# -- the storage boundary -----------------------------------------------------------------------


def _prospect(account_id: str, **fields: Any) -> sp.Account:
    return sp.Account(account_id, "Acme", sp.Source("cold_outreach"), T0, **fields)


@pytest.mark.parametrize("accounts", [None, "ab", {"a": 1}, 5, RaisingIterable()])
def test_add_many_refuses_what_is_no_collection_of_accounts(
    any_repository: Any, accounts: object
) -> None:
    """add_many(None) and friends are a ValidationError naming accounts; nothing is stored."""
    any_repository.add(_prospect("kept"))
    with pytest.raises(sp.ValidationError) as refused:
        any_repository.add_many(accounts)
    assert refused.value.field == "accounts"
    assert [a.id for a in any_repository.page()] == ["kept"]


def test_a_failing_iteration_in_add_many_stores_nothing(any_repository: Any) -> None:
    """A generator failing half way is the caller's error; the accounts before it roll back."""

    def accounts() -> Any:
        yield _prospect("first")
        raise OSError("the import file went away")

    with pytest.raises(OSError, match="went away"):
        any_repository.add_many(accounts())
    assert any_repository.page() == []


def test_lone_surrogates_are_refused_on_every_adapter(any_repository: Any) -> None:
    """Odd text gets one answer everywhere: a ValidationError, before any adapter sees it."""
    sales = sp.SalesProcess(any_repository, clock=sp.FixedClock(T0))
    lead = sales.capture_lead("Acme", email="buyer@acme.example", channel="cold_outreach")
    surrogate = "Zo\udce9"
    attempts = [
        lambda: sales.capture_lead(surrogate, email="a@b.example", channel="cold_outreach"),
        lambda: sales.capture_lead("A", email=f"{surrogate}@b.example", channel="cold_outreach"),
        lambda: sales.capture_lead(
            "A", email="c@b.example", channel="cold_outreach", attributes={"k": surrogate}
        ),
        lambda: sales.capture_lead(
            "A", email="d@b.example", channel="cold_outreach", attributes={surrogate: 1}
        ),
        lambda: sales.record_call(lead.id, "interested", notes=surrogate),
        lambda: sales.learn_preference(lead.id, "k", surrogate),
        lambda: sales.get(surrogate),
        lambda: sales.fire(lead.id, surrogate),
        lambda: any_repository.get(surrogate),
        lambda: any_repository.find_by_email(surrogate),
        lambda: any_repository.find_id(phone=surrogate),
    ]
    for attempt in attempts:
        with pytest.raises(sp.ValidationError):
            attempt()
    assert [a.id for a in any_repository.page()] == [lead.id]
    assert any_repository.get(lead.id).version == 1


def _misfile_sqlite(repository: Any) -> None:
    with sqlite3.connect(repository.path) as raw:
        raw.execute(
            "UPDATE accounts SET data = (SELECT data FROM accounts WHERE id = 'b') WHERE id = 'a'"
        )
        raw.execute("UPDATE account_states SET stamp = stamp + 1 WHERE id = 'a'")


def test_a_row_holding_another_accounts_data_is_a_storage_error_sqlite(tmp_path: Path) -> None:
    """A row whose JSON holds another account's id is refused, never served (or written)."""
    with SQLiteRepository(tmp_path / "misfiled.db") as repository:
        repository.add_many([_prospect("a"), _prospect("b")])
        _misfile_sqlite(repository)
    with SQLiteRepository(tmp_path / "misfiled.db") as reopened:
        for read in (
            lambda: reopened.get("a"),
            reopened.page,
            lambda: list(reopened.with_stage("prospect")),
        ):
            with pytest.raises(sp.StorageError, match="row of account a holds account b"):
                read()
        assert reopened.get("b").id == "b"


def test_a_row_holding_another_accounts_data_is_a_storage_error_postgres(
    postgres_schema: Any,
) -> None:
    """The same on PostgreSQL."""
    from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415

    dsn = postgres_schema()
    with PostgresRepository(dsn, migrate=True) as repository:
        repository.add_many([_prospect("a"), _prospect("b")])
        repository.connection.execute(
            "UPDATE salesprocess_accounts SET data = (SELECT data FROM salesprocess_accounts "
            "WHERE id = 'b'), stamp = stamp + 1 WHERE id = 'a'"
        )
    with PostgresRepository(dsn) as reopened:
        for read in (lambda: reopened.get("a"), reopened.page):
            with pytest.raises(sp.StorageError, match="row of account a holds account b"):
                read()


def test_postgres_refuses_a_connection_that_returns_dicts(postgres_schema: Any) -> None:
    """A dict_row connection is refused at once, not with a KeyError at the first read."""
    psycopg = pytest.importorskip("psycopg")
    from psycopg.rows import dict_row  # noqa: PLC0415

    from salesprocess.storage.postgres import PostgresRepository  # noqa: PLC0415

    with psycopg.connect(postgres_schema(), row_factory=dict_row) as connection:
        with pytest.raises(sp.ValidationError, match="tuple_row") as refused:
            PostgresRepository(connection)
        assert refused.value.field == "source"


@pytest.mark.parametrize(
    ("path", "error", "match"),
    [
        ("a\x00b.db", sp.ValidationError, "holds a NUL"),
        ("sales\ud800.db", sp.ValidationError, "lone surrogate"),
        ("/dev/null", sp.StorageError, "/dev/null: it is not a regular file"),
    ],
)
def test_sqlite_refuses_paths_that_cannot_name_a_database(
    tmp_path: Path, path: str, error: type[Exception], match: str
) -> None:
    """A path with a NUL, or naming a device or directory, is refused with a clear message."""
    with pytest.raises(error, match=match):
        SQLiteRepository(path)
    with pytest.raises(sp.StorageError, match="not a regular file"):
        SQLiteRepository(tmp_path)


# -- values at the edges --------------------------------------------------------------------------


def test_an_account_stamped_at_the_last_moment_stays_usable() -> None:
    """The last moment accepted: the account takes more records and every report answers."""
    sales = sp.SalesProcess(clock=sp.FixedClock(T0))
    lead = sales.capture_lead("Acme", email="a@b.example", channel="cold_outreach")
    sales.qualify(lead.id, override="walk-in")
    last = LATEST.astimezone(timezone(timedelta(hours=14)))
    sales.record_purchase(lead.id, sp.Money("1", "EUR"), at=last)
    sales.record_purchase(lead.id, sp.Money("2", "EUR"), at=last)
    assert len(sales.get(lead.id).purchases) == 2
    assert sales.lead_flow(period="month", as_of=last)[-1].start == date(9999, 12, 1)
    assert sales.repeat_summary(as_of=last, period="W")
    assert sales.rfm(as_of=last)
    assert sales.revenue(since=EARLIEST).by_currency["EUR"].total == sp.Money("3", "EUR")
    with pytest.raises(sp.ValidationError, match="calendar's ends"):
        sales.record_purchase(lead.id, sp.Money("3", "EUR"), at=LATEST + timedelta(days=1))


@pytest.mark.parametrize(
    "operation",
    [
        lambda: sp.Money("9e63", "EUR") * 10,
        lambda: sp.Money("1", "EUR") * Decimal("1e999999"),
        lambda: sp.Money("1", "EUR") * Decimal("sNaN"),
        lambda: sp.Money("1", "EUR") / Decimal("sNaN"),
        lambda: sp.Money("1e-64", "EUR") / 3,
        lambda: sp.Money("9e63", "EUR") + sp.Money("9e63", "EUR"),
        lambda: sp.Money("9e999999999999999999", "EUR"),
        lambda: sp.Money("1e-999999999", "EUR"),
        lambda: sp.Money("0E-999999", "EUR"),
        lambda: sp.Money("1." + "0" * 200, "EUR"),
    ],
)
def test_money_out_of_range_is_a_validation_error(operation: Callable[[], object]) -> None:
    """Amounts beyond Money's range, made or computed, are refused: no decimal error escapes."""
    with pytest.raises(sp.ValidationError) as refused:
        operation()
    assert refused.value.field in ("amount", "divisor")
    assert len(str(refused.value)) < 300


def test_money_takes_its_whole_range() -> None:
    """The edges of the range are amounts like any other."""
    assert sp.Money("9.99e63", "EUR") > sp.Money("1e-64", "EUR") > sp.Money("0", "EUR")
    assert (sp.Money("0.01", "EUR") / 3).amount.adjusted() == -3
    assert str(sp.Money("-0", "EUR").amount) == "-0"


def test_the_money_strategy_refuses_bounds_money_cannot_hold() -> None:
    """strategies.money() with an out-of-range bound says so before drawing anything."""
    from salesprocess import strategies  # noqa: PLC0415

    with pytest.raises(sp.ValidationError, match="max_value") as refused:
        strategies.money(max_value=Decimal("1e70"))
    assert refused.value.field == "max_value"


def test_error_messages_are_capped() -> None:
    """However much an error gathers, its message keeps its start and says how long it was."""
    error = sp.ValidationError("x" * 1_000_000, field="name")
    assert len(str(error)) <= MAX_MESSAGE
    assert str(error).endswith("… (message of 1000000 characters)")
    sales = sp.SalesProcess(clock=sp.FixedClock(T0))
    huge = "n" * 1_000_000
    lead = sales.capture_lead(huge, email="a@b.example", channel="cold_outreach")
    with pytest.raises(sp.InvalidTransition) as refused:
        sales.fire(lead.id, "e" * 1_000_000)
    message = str(refused.value)
    assert len(message) < 400
    assert "(1000000 characters)" in message


def test_a_subject_whose_facts_raise_is_a_criteria_error() -> None:
    """evaluate() wraps the subject's failing facts() as apply() wraps a failing value."""

    class Broken:
        def facts(self) -> object:
            raise RuntimeError("the CRM is down")

    criteria = sp.Criteria.from_dict({">=": [{"var": "employees"}, 10]}, name="n", version="1")
    with pytest.raises(sp.CriteriaError, match=r"RuntimeError: the CRM is down") as refused:
        criteria.evaluate(Broken())
    assert isinstance(refused.value.__cause__, RuntimeError)
    assert criteria.passes(Broken()) is False


def test_repository_methods_take_hostile_keys_on_every_adapter(any_repository: Any) -> None:
    """Every look-up and write of the storage protocol, fed each hostile value directly."""
    any_repository.add(_prospect("kept"))
    calls: list[tuple[str, Callable[[object], object]]] = [
        ("get", any_repository.get),
        ("find_by_email", any_repository.find_by_email),
        ("find_by_phone", any_repository.find_by_phone),
        ("find_by_referral_code", any_repository.find_by_referral_code),
        ("find_id", lambda value: any_repository.find_id(email=value)),
        ("page(after)", lambda value: any_repository.page(after=value)),
        ("page(limit)", lambda value: any_repository.page(limit=value)),
        ("with_stage", lambda value: list(any_repository.with_stage(value))),
        ("add", any_repository.add),
        ("save", lambda value: any_repository.save(value, expected_version=1)),
        (
            "save(version)",
            lambda value: any_repository.save(_prospect("kept"), expected_version=value),
        ),
    ]
    escaped = []
    for name, call in calls:
        for value in HOSTILE:
            try:
                call(value)
            except sp.SalesProcessError as error:
                message = str(error)
                if len(message) > MAX_MESSAGE or unencodable(message):
                    escaped.append(f"{name}({shown(value)}): message {shown(message)}")
            except Exception as error:  # what this test is about
                escaped.append(f"{name}({shown(value)}): {type(error).__name__}")
    assert not escaped, escaped[:5]
    assert [(a.id, a.version) for a in any_repository.page()] == [("kept", 1)]
