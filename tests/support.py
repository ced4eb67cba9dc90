"""Helpers the test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

from salesprocess.storage.protocol import AccountRepository


class Delegating:
    """An adapter with the methods a test overrides; every other call goes to ``inner``."""

    def __init__(self, inner: AccountRepository) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
