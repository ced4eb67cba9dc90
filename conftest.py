"""Root pytest configuration: what the doctests in docs/ and in docstrings share."""

from __future__ import annotations

from typing import Any

import pytest

collect_ignore = ["docs/conf.py", "docs/_build", "benchmarks"]


@pytest.fixture(autouse=True)
def _doctest_chdir(request: pytest.FixtureRequest, tmp_path: Any, monkeypatch: Any) -> None:
    # Doctests that write files (a criteria file, an SQLite database) write into a fresh
    # temporary directory, never into the checkout.
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.chdir(tmp_path)
