"""In-memory storage: the default repository, safe to share between threads.

It keeps the immutable :class:`~salesprocess.account.Account` objects themselves, so a read
costs a dict lookup and nothing is copied; immutability is what makes sharing them safe.

Threads: every method, reads included, holds one re-entrant lock, and an ``atomic()`` block holds
it until the block ends. So a reader never sees a write half done (an account whose old email
is unindexed and new one not yet indexed), nor another thread's ``atomic()`` writes before the
block has ended: other threads wait for it, as with the SQL adapters.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from salesprocess.account import Account, unchecked_copy, unchecked_versioned
from salesprocess.checks import require_items, shown, unencodable
from salesprocess.criteria_sql import Prefilter, may_pass
from salesprocess.errors import ConflictError, NotFound, ValidationError
from salesprocess.stage import Stage
from salesprocess.storage.protocol import (
    AfterCommit,
    Holders,
    call_all,
    require_account,
    require_ids,
    require_keys,
    require_new,
    require_one_key,
    require_page,
    require_version,
    stale_write,
)

__all__ = ["InMemoryRepository"]


def _no_surrogates(key: object, field: str) -> None:
    """Refuse, as the SQL adapters do, a look-up by text no store could hold.

    Called on a miss only: such text is never stored, so it always misses.
    """
    if isinstance(key, str) and unencodable(key):
        raise ValidationError(
            f"{field} {shown(key)} holds a lone surrogate: it is not valid Unicode", field=field
        )


class InMemoryRepository:
    """Accounts in a dict, with email, phone and referral code indexes, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._accounts: dict[str, Account] = {}
        self._by_email: dict[str, str] = {}
        self._by_phone: dict[str, str] = {}
        self._by_referral_code: dict[str, str] = {}
        # find_id's indexes by the name of its argument.
        self._indexes = {
            "email": self._by_email,
            "phone": self._by_phone,
            "referral_code": self._by_referral_code,
        }
        # Undo entries of the open atomic() blocks: (id, account before or None if added).
        self._undo: list[tuple[str, Account | None]] | None = None
        self._after_commit = AfterCommit()

    def __len__(self) -> int:
        with self._lock:
            return len(self._accounts)

    def add(self, account: Account) -> Account:
        """Store a new account at version 1."""
        with self._lock:
            return self._add(account)

    def add_many(self, accounts: Iterable[Account]) -> int:
        """Store many new accounts, all or nothing."""
        accounts = require_items(accounts, "accounts")
        count = 0
        with self.atomic():
            for account in accounts:
                self._add(account)
                count += 1
        return count

    def _add(self, account: Account) -> Account:
        account = require_new(account)
        if account.id in self._accounts:
            raise ConflictError(f"an account with id {account.id} is already stored")
        self._check_contacts(account)
        stored = unchecked_copy(account, version=1)
        self._put(account.id, stored, None)
        return stored

    def get(self, account_id: str) -> Account:
        """Return the stored account or raise ``NotFound``."""
        with self._lock:
            account = self._accounts.get(account_id) if isinstance(account_id, str) else None
        if account is None:
            _no_surrogates(account_id, "account_id")
            raise NotFound(f"no account with id {shown(account_id)}")
        return account

    def get_many(self, account_ids: Iterable[str]) -> dict[str, Account]:
        """Return ``{id: account}`` for the stored ones among ``account_ids``."""
        wanted = require_ids(account_ids)
        with self._lock:
            stored = self._accounts
            return {account_id: stored[account_id] for account_id in wanted if account_id in stored}

    def save(self, account: Account, *, expected_version: int) -> Account:
        """Replace the stored account if it is still at ``expected_version``."""
        account = require_account(account)
        expected_version = require_version(expected_version)
        with self._lock:
            current = self._accounts.get(account.id)
            if current is None:
                current = self.get(account.id)  # raises NotFound
            if current.version != expected_version:
                raise stale_write(account.id, current.version, expected_version)
            stored = unchecked_versioned(account, expected_version + 1)
            if (account.email, account.phone, account.referral_code) == (
                current.email, current.phone, current.referral_code,
            ):  # fmt: skip
                # The same keys (a screening, a call): the indexes already hold them.
                if self._undo is not None:
                    self._undo.append((account.id, current))
                self._accounts[account.id] = stored
                return stored
            self._check_contacts(account)
            self._put(account.id, stored, current)
            return stored

    def _check_contacts(self, account: Account) -> None:
        for kind, index, value in (
            ("email", self._by_email, account.email),
            ("phone", self._by_phone, account.phone),
            ("referral code", self._by_referral_code, account.referral_code),
        ):
            owner = index.get(value) if value is not None else None
            if owner is not None and owner != account.id:
                raise ConflictError(f"{kind} {value} already belongs to account {owner}")

    def _put(self, account_id: str, stored: Account, before: Account | None) -> None:
        if self._undo is not None:
            self._undo.append((account_id, before))
        self._unindex(before)
        self._accounts[account_id] = stored
        self._index(stored)

    def _index(self, account: Account) -> None:
        if account.email is not None:
            self._by_email[account.email] = account.id
        if account.phone is not None:
            self._by_phone[account.phone] = account.id
        if account.referral_code is not None:
            self._by_referral_code[account.referral_code] = account.id

    def _unindex(self, account: Account | None) -> None:
        if account is None:
            return
        if account.email is not None:
            self._by_email.pop(account.email, None)
        if account.phone is not None:
            self._by_phone.pop(account.phone, None)
        if account.referral_code is not None:
            self._by_referral_code.pop(account.referral_code, None)

    def find_by_email(self, email: str) -> Account | None:
        """Return the account with this normalised email, if any."""
        return self._found(self._by_email, email)

    def find_by_phone(self, phone: str) -> Account | None:
        """Return the account with this normalised phone number, if any."""
        return self._found(self._by_phone, phone)

    def find_by_referral_code(self, code: str) -> Account | None:
        """Return the account whose (already normalised) referral code is ``code``, if any."""
        return self._found(self._by_referral_code, code)

    def _found(self, index: dict[str, str], key: object) -> Account | None:
        if not isinstance(key, str):
            return None  # no account has a key that is not text (nor could a dict hash a list)
        with self._lock:
            account_id = index.get(key)
            found = None if account_id is None else self._accounts.get(account_id)
        if found is None:
            _no_surrogates(key, "key")
        return found

    def find_id(
        self,
        *,
        email: str | None = None,
        phone: str | None = None,
        referral_code: str | None = None,
    ) -> str | None:
        """Return the id of the account holding this email, phone or referral code, if any."""
        kind, value = require_one_key(email, phone, referral_code)
        with self._lock:
            found = self._indexes[kind].get(value)
        if found is None:
            _no_surrogates(value, kind)
        return found

    def holders(
        self,
        *,
        account_id: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        referral_code: str | None = None,
    ) -> Holders:
        """Return the accounts holding this id, email, phone and referral code (the reference)."""
        by_id = None
        if account_id is not None:
            with contextlib.suppress(NotFound):
                by_id = self.get(account_id)
        return Holders(
            by_id,
            None if email is None else self.find_by_email(email),
            None if phone is None else self.find_by_phone(phone),
            None if referral_code is None else self.find_by_referral_code(referral_code),
        )

    def write_all(self, accounts: Sequence[Account]) -> list[Account]:
        """Add or save each of ``accounts`` in one ``atomic()`` block (the reference)."""
        accounts = [require_account(a, "accounts") for a in require_items(accounts, "accounts")]
        with self.atomic():
            return [
                self.save(account, expected_version=account.version)
                if account.version
                else self.add(account)
                for account in accounts
            ]

    def find_ids(self, kind: str, values: Iterable[str]) -> dict[str, str]:
        """Return ``{value: id}`` for the ``values`` an account holds as its ``kind``."""
        wanted = require_keys(kind, values)
        with self._lock:
            index = self._indexes[kind]
            return {value: index[value] for value in wanted if value in index}

    def with_stage(self, stage: Stage) -> Iterator[Account]:
        """Yield the accounts at ``stage`` (a ``Stage`` or its name), oldest first."""
        stage = Stage(stage)
        with self._lock:
            matching = [a for a in self._accounts.values() if a.stage is stage]
        matching.sort(key=lambda a: (a.created_at, a.id))
        return iter(matching)

    def prospects_matching(self, check: Prefilter, *, stage: Stage) -> Iterator[Account]:
        """Yield the accounts at ``stage`` that ``check`` may pass, oldest first.

        The reference of :class:`~salesprocess.storage.selection.CriteriaSelection`:
        :func:`~salesprocess.criteria_sql.may_pass` on each account's attributes, the
        predicate every SQL rendering must agree with.
        """
        return (a for a in self.with_stage(stage) if may_pass(check, a.attributes))

    def count_by_stage(self) -> Mapping[Stage, int]:
        """Return how many accounts are at each stage."""
        counts: dict[Stage, int] = {}
        with self._lock:
            for account in self._accounts.values():
                counts[account.stage] = counts.get(account.stage, 0) + 1
        return counts

    def page(self, *, after: str | None = None, limit: int = 1000) -> list[Account]:
        """Return up to ``limit`` accounts with ids greater than ``after``, by id."""
        require_page(after, limit)
        with self._lock:
            ids = sorted(i for i in self._accounts if after is None or i > after)[:limit]
            return [self._accounts[i] for i in ids]

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Hold the lock and undo every write of the block if it raises."""
        with self._lock:
            outer = self._undo is None
            if outer:
                self._undo = []
            mark = len(self._undo)  # type: ignore[arg-type]
            held = self._after_commit.mark()
            try:
                yield
            except BaseException:
                self._rollback(mark)
                self._after_commit.discard(held)
                raise
            finally:
                if outer:
                    self._undo = None
            committed = self._after_commit.take() if outer else []
        call_all(committed)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` now, or when the outermost open ``atomic()`` block commits."""
        self._after_commit.register(callback, self._lock, lambda: self._undo is not None)

    def _rollback(self, mark: int) -> None:
        assert self._undo is not None
        while len(self._undo) > mark:
            account_id, before = self._undo.pop()
            self._unindex(self._accounts.pop(account_id, None))
            if before is not None:
                self._accounts[account_id] = before
                self._index(before)
