"""The in-memory repository keeps the storage contract."""

from __future__ import annotations

import pytest
from hypothesis import settings

from salesprocess.storage import InMemoryRepository
from salesprocess.storage.protocol import AccountRepository
from salesprocess.testing import RepositoryContract, repository_state_machine


class TestInMemoryRepository(RepositoryContract):
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
