"""The in-memory repository keeps the storage contract."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from hypothesis import settings

from salesprocess.account import Account, Source
from salesprocess.errors import NotFound
from salesprocess.storage import InMemoryRepository
from salesprocess.storage.protocol import AccountRepository
from salesprocess.testing import ReadsManyContract, RepositoryContract, repository_state_machine


class TestInMemoryRepository(ReadsManyContract):
    """Every promise of the protocol, for InMemoryRepository."""

    def make_repository(self) -> AccountRepository:
        return InMemoryRepository()


TestInMemoryMachine = repository_state_machine(InMemoryRepository).TestCase
TestInMemoryMachine.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)


def test_only_subclasses_of_the_contract_are_collected() -> None:
    """RepositoryContract itself is not a test class; its subclasses are, unless they opt out."""

    class Abstract(RepositoryContract):
        __test__ = False

    class Concrete(Abstract):
        def make_repository(self) -> AccountRepository:
            return InMemoryRepository()

    assert RepositoryContract.__test__ is False
    assert TestInMemoryRepository.__test__ is True
    assert Abstract.__test__ is False
    assert Concrete.__test__ is True


def test_a_contract_without_a_factory_says_what_is_missing() -> None:
    """A subclass that forgot make_repository() fails with a message naming the method."""

    class Forgetful(RepositoryContract):
        pass

    with pytest.raises(NotImplementedError, match="make_repository"):
        Forgetful().make_repository()


# --- threads ----------------------------------------------------------------------------------

_T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def _prospect(account_id: str, **fields: Any) -> Account:
    return Account(account_id, "Acme", Source("referral"), _T0, **fields)


@contextmanager
def _frequent_thread_switches() -> Iterator[None]:
    """Make the interpreter switch threads as often as it can, so that races show."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _race(write: Callable[[], None], read: Callable[[], None], reads: int = 5_000_000) -> None:
    """Call ``read`` over and over while ``write`` runs (at most ``reads`` times); re-raise."""
    errors: list[BaseException] = []
    start = threading.Barrier(2)
    done = threading.Event()

    def writer() -> None:
        try:
            start.wait(timeout=10)
            write()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            done.set()

    def reader() -> None:
        try:
            start.wait(timeout=10)
            for _ in range(reads):
                if done.is_set():
                    return
                read()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    with _frequent_thread_switches():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    if errors:
        raise errors[0]


def test_readers_never_see_a_save_half_done() -> None:
    """Look-ups of an unchanged email, phone or code never miss while the account is re-saved."""
    repository = InMemoryRepository()
    stored = repository.add(
        _prospect("a", email="ann@acme.example", phone="+4930123456", referral_code="K7M4PQ2X")
    )
    renamed = [attrs.evolve(stored, name=f"Acme {index}") for index in range(60_000)]
    misses: list[str] = []

    def write() -> None:
        for version, account in enumerate(renamed, start=1):
            repository.save(account, expected_version=version)

    def read() -> None:
        if repository.find_by_email("ann@acme.example") is None:
            misses.append("email")
        if repository.find_by_phone("+4930123456") is None:
            misses.append("phone")
        if repository.find_by_referral_code("K7M4PQ2X") is None:
            misses.append("referral code")
        if repository.find_id(referral_code="K7M4PQ2X") != "a":
            misses.append("find_id")

    _race(write, read)
    assert misses == []
    assert repository.get("a").version == len(renamed) + 1


def test_readers_never_see_another_threads_open_atomic_block() -> None:
    """Writes of an atomic() block that is rolled back are never seen by another thread."""
    repository = InMemoryRepository()
    ghost = _prospect("ghost", email="ghost@acme.example")
    seen: list[object] = []

    def write() -> None:
        for _ in range(30_000):
            with suppress(RuntimeError), repository.atomic():
                repository.add(ghost)
                raise RuntimeError("roll back")

    def read() -> None:
        with suppress(NotFound):
            seen.append(repository.get("ghost"))
        if (found := repository.find_by_email("ghost@acme.example")) is not None:
            seen.append(found)

    _race(write, read)
    assert seen == []
    assert len(repository) == 0
