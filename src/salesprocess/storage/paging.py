"""Keyset paging: how the SQL adapters list a stage without holding a lock or the whole stage.

Rows come ordered by ``(created_at, id)``; each page starts after the last key of the one
before, so a page read costs the same however deep into the stage it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

from salesprocess.account import Account
from salesprocess.storage.serialise import cached_loads, misfiled

__all__ = ["PAGE_SIZE", "Key", "PageRow", "accounts_in_pages"]

#: Rows fetched per page.
PAGE_SIZE: Final = 256

#: A row's position in the order: ``created_at`` (microseconds) and id.
Key = tuple[int, str]
#: One listed row: its key (``created_at``, id), then what the adapter reads an account from
#: (by default its serialised account).
PageRow = Sequence[Any]

#: Turns a page of rows into its accounts.
Load = Callable[[list[Any]], list[Account]]


def _decoded(page: list[Any]) -> list[Account]:
    accounts = [cached_loads(row[2]) for row in page]
    for row, account in zip(page, accounts, strict=True):
        if account.id != row[1]:
            raise misfiled(row[1], account)
    return accounts


def accounts_in_pages(
    fetch: Callable[[Key | None], list[Any]], load: Load = _decoded
) -> Iterator[Account]:
    """Return the accounts ``fetch`` pages through, first page fetched now.

    ``fetch(after)`` returns up to :data:`PAGE_SIZE` rows following ``after`` (``None``: from
    the start), each starting with its key; ``load(page)`` turns a page into its accounts
    (default: decode each row's third column). Fetching the first page before returning means
    a failing query raises at the call, not at the first ``next()``.
    """
    return _walk(fetch, load, fetch(None))


def _walk(
    fetch: Callable[[Key | None], list[Any]], load: Load, page: list[Any]
) -> Iterator[Account]:
    while page:
        yield from load(page)
        if len(page) < PAGE_SIZE:
            return
        page = fetch((page[-1][0], page[-1][1]))
