"""Helpers the test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

from salesprocess.storage.protocol import AccountRepository


class Delegating:
    """An adapter with the methods a test overrides; every other call goes to ``inner``.

    It is no ``Batching`` store (``holders``, ``write_all``), whatever ``inner`` is: the unit of
    work then loads and writes through the very methods a test overrides.
    """

    def __init__(self, inner: AccountRepository) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name in ("holders", "write_all"):
            raise AttributeError(name)
        return getattr(self.inner, name)
