"""Keyset paging: how the SQL adapters list a stage without holding a lock or the whole stage.

Rows come ordered by ``(created_at, id)``; each page starts after the last key of the one
before, so a page read costs the same however deep into the stage it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from salesprocess.account import Account
from salesprocess.storage.serialise import cached_loads

__all__ = ["PAGE_SIZE", "Key", "PageRow", "accounts_in_pages"]

#: Rows fetched per page.
PAGE_SIZE: Final = 256

#: A row's position in the order: ``created_at`` (microseconds) and id.
Key = tuple[int, str]
#: One listed row: its key and its serialised account.
PageRow = tuple[int, str, str]


def accounts_in_pages(fetch: Callable[[Key | None], list[PageRow]]) -> Iterator[Account]:
    """Return the accounts ``fetch`` pages through, first page fetched now.

    ``fetch(after)`` returns up to :data:`PAGE_SIZE` rows following ``after`` (``None``: from
    the start). Fetching the first page before returning means a failing query raises at the
    call, not at the first ``next()``.
    """
    return _walk(fetch, fetch(None))


def _walk(fetch: Callable[[Key | None], list[PageRow]], page: list[PageRow]) -> Iterator[Account]:
    while page:
        for _created, _id, data in page:
            yield cached_loads(data)
        if len(page) < PAGE_SIZE:
            return
        page = fetch((page[-1][0], page[-1][1]))
