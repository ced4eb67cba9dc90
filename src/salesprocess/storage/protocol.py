"""The storage protocol: the small interface every account store implements.

It is a :class:`typing.Protocol`, so an adapter needs no base class: any object with these
methods is a repository. :class:`salesprocess.testing.RepositoryContract` is the test kit that
proves an adapter keeps every promise made here.

Versions make writes safe without locks held across a command: an account read at version
``v`` may be saved only while the stored version is still ``v``; the store then keeps it at
``v + 1``. A stale save raises :class:`~salesprocess.errors.StaleWrite` (a
:class:`~salesprocess.errors.ConflictError`) and writes nothing.
Versions are ints from 1 to :data:`MAX_VERSION` (2**31 - 1, what PostgreSQL's ``integer`` column
holds), so ``expected_version`` is an int from 0 to ``MAX_VERSION - 1``; anything else (a float,
a ``bool``, a ``Decimal``, a negative or too large int) raises
:class:`~salesprocess.errors.ValidationError` before anything is written.

The ``require_*`` helpers check arguments the same way in every adapter, so that every one
refuses a bad argument with the same ``ValidationError``; an adapter of your own can use them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Final, NamedTuple, Protocol, runtime_checkable

from salesprocess.account import Account
from salesprocess.checks import require_instance, require_int, shown
from salesprocess.errors import StaleWrite, ValidationError
from salesprocess.events import call_all
from salesprocess.stage import Stage

__all__ = [
    "MAX_PAGE",
    "MAX_VERSION",
    "AccountRepository",
    "AfterCommit",
    "Batching",
    "Holders",
    "ReadsMany",
    "call_all",
    "every_account",
    "require_account",
    "require_callback",
    "require_ids",
    "require_keys",
    "require_new",
    "require_one_key",
    "require_page",
    "require_version",
    "stale_write",
]

#: The largest version a stored account can reach: PostgreSQL's ``integer``, 2**31 - 1.
MAX_VERSION: Final = 2**31 - 1

#: The largest ``limit`` of :meth:`AccountRepository.page` (2**31 - 1).
MAX_PAGE: Final = 2**31 - 1


@runtime_checkable
class AccountRepository(Protocol):
    """Where accounts live.

    Contact details and referral codes are unique: no two stored accounts share a normalised
    email, phone or referral code, so two processes capturing the same lead at once cannot both
    succeed, and a code on a card names one account only.
    """

    def add(self, account: Account) -> Account:
        """Store a new account (``version`` 0) and return it as stored, at version 1.

        Raises ``ConflictError`` if its id, email, phone or referral code is already stored,
        and ``ValidationError`` if it is not an ``Account`` or its version is not 0.
        """
        ...

    def add_many(self, accounts: Iterable[Account]) -> int:
        """Store many new accounts all or nothing, in one transaction; return how many.

        Raises what ``add`` raises for the first account at fault, storing none of them.
        """
        ...

    def get(self, account_id: str) -> Account:
        """Return the stored account; raise ``NotFound`` if there is none with that id."""
        ...

    def save(self, account: Account, *, expected_version: int) -> Account:
        """Replace the stored account if it is still at ``expected_version``.

        Returns the account as stored, at ``expected_version + 1``. Raises ``StaleWrite``
        (writing nothing) if the stored version differs, ``ConflictError`` if the new contact
        details or referral code belong to another account, and ``NotFound`` if the account
        was never added. Raises
        ``ValidationError`` (writing nothing) if ``account`` is not an ``Account`` or
        ``expected_version`` is not an int from 0 to ``MAX_VERSION - 1``.
        """
        ...

    def find_by_email(self, email: str) -> Account | None:
        """Return the account with this normalised email, if any."""
        ...

    def find_by_phone(self, phone: str) -> Account | None:
        """Return the account with this normalised phone number, if any."""
        ...

    def find_by_referral_code(self, code: str) -> Account | None:
        """Return the account whose referral code is ``code``, if any.

        Like the email and phone look-ups it takes the key as stored: a code already
        normalised by :func:`~salesprocess.referral_codes.normalise_referral_code` (``"K7M4PQ2X"``,
        not ``"k7m4-pq2x"``).
        """
        ...

    def find_id(
        self,
        *,
        email: str | None = None,
        phone: str | None = None,
        referral_code: str | None = None,
    ) -> str | None:
        """Return the id of the account holding this normalised email, phone or referral code.

        Exactly one of them must be given (``require_one_key`` checks it): none, two, or one
        that is not a ``str`` raises ``ValidationError``. It is the duplicate check: answered
        from the unique index without fetching or decoding the account's data, so it costs
        what the raw indexed query costs.
        """
        ...

    def find_ids(self, kind: str, values: Iterable[str]) -> dict[str, str]:
        """Return ``{value: id}`` for those ``values`` an account holds as its ``kind``.

        The batch form of :meth:`find_id` (a bulk load checks a thousand contacts at once):
        ``kind`` is ``"email"``, ``"phone"`` or ``"referral_code"``, each value normalised as
        stored; values nobody holds are absent from the answer. Another ``kind``, or a value
        that is not a ``str``, raises ``ValidationError`` (``require_keys`` checks it).
        """
        ...

    def with_stage(self, stage: Stage) -> Iterator[Account]:
        """Yield the accounts at ``stage``, oldest first (by ``created_at``, then id).

        A plain ``str`` names the same stage (``"prospect"`` is ``Stage.PROSPECT``); a name that
        is not a stage name raises ``ValidationError``.
        """
        ...

    def count_by_stage(self) -> Mapping[Stage, int]:
        """Return how many accounts are at each stage (stages with none may be absent)."""
        ...

    def page(self, *, after: str | None = None, limit: int = 1000) -> list[Account]:
        """Return up to ``limit`` accounts with ids greater than ``after``, ordered by id.

        ``after`` is an id (``str``) or ``None``; ``limit`` an int from 1 to ``MAX_PAGE``;
        anything else raises ``ValidationError``.
        """
        ...

    def atomic(self) -> AbstractContextManager[None]:
        """Return a context in which every write lands together or not at all (nestable)."""
        ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the writes made so far are committed, never if undone.

        With no ``atomic()`` block open the writes are committed already: it is called at
        once. Inside a block it waits for the outermost block to commit, and is dropped if
        that block, or the nested block it was registered in, rolls back. Callbacks run in the
        order registered; an exception from one reaches the code that ended the block (the
        commit stands) after the others have run. :class:`AfterCommit` implements this.
        """
        ...


class Holders(NamedTuple):
    """The accounts :meth:`Batching.holders` found: by id, email, phone and referral code.

    ``None`` where nobody holds the key, or it was not asked for.
    """

    by_id: Account | None
    by_email: Account | None
    by_phone: Account | None
    by_code: Account | None


@runtime_checkable
class Batching(Protocol):
    """What a store offers to run a command in fewer round trips (an optional capability).

    The unit of work asks a store that has it for a command's accounts in one call
    (:meth:`holders`) and stores a command's several writes in one (:meth:`write_all`); of
    another store, one call each. The PostgreSQL adapters answer each in one statement or
    pipeline, so a command touching two accounts (a referral) is three round trips. The
    in-memory store is the reference; the contract kit checks both methods where present.
    """

    def holders(
        self,
        *,
        account_id: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        referral_code: str | None = None,
    ) -> Holders:
        """Return the accounts holding this id, normalised email, phone and referral code.

        What ``get`` (``None`` in place of ``NotFound``) and ``find_by_*`` return, in one call.
        """
        ...

    def write_all(self, accounts: Sequence[Account]) -> list[Account]:
        """Store ``accounts`` all or nothing; return them as stored.

        An account at version 0 is added as ``add`` adds it; any other is saved as ``save``
        saves it, expecting its own version. Refused as those are (``ConflictError``,
        ``StaleWrite``, ``NotFound``), and then nothing of the batch is stored.
        """
        ...


@runtime_checkable
class ReadsMany(Protocol):
    """A repository that also reads many accounts at once (an optional capability).

    A bulk load that meets a thousand known contacts reads their accounts with one call
    rather than a thousand ``get`` calls. :class:`salesprocess.testing.ReadsManyContract` is
    its test kit; a repository without it is read one ``get`` at a time.
    """

    def get_many(self, account_ids: Iterable[str]) -> dict[str, Account]:
        """Return ``{id: account}`` for those ``account_ids`` that are stored.

        Each account is what :meth:`AccountRepository.get` returns for its id; ids not stored
        are absent from the answer. A value that is not a ``str``, or ``account_ids`` that is
        no collection, raises ``ValidationError`` (``require_ids`` checks it).
        """
        ...


def require_new(account: object) -> Account:
    """Refuse to ``add`` anything but a new account: an ``Account`` at version 0.

    A helper for adapters, so that every one refuses with the same ``ValidationError``.
    """
    new = require_account(account)
    if new.version != 0:
        raise ValidationError(
            f"account {new.id} has version {new.version}: only a new account "
            "(version 0) can be added; use save() for a stored one",
            field="version",
        )
    return new


def require_account(account: object, field: str = "account") -> Account:
    """Refuse anything but an :class:`~salesprocess.account.Account` with ``ValidationError``."""
    if not isinstance(account, Account):
        raise ValidationError(
            f"{field} must be an Account, not {type(account).__name__}", field=field
        )
    return account


def require_version(value: object, field: str = "expected_version") -> int:
    """Return ``value`` if it is a version a save may expect: an int from 0 to MAX_VERSION - 1.

    ``bool`` is refused although it is an ``int``; so are floats (``1.0``) and ``Decimal``.
    The stored version, ``value + 1``, then fits every adapter's column.
    """
    if type(value) is int and 0 <= value < MAX_VERSION:  # every save asks: the common case first
        return value
    return require_int(value, field, low=0, high=MAX_VERSION - 1)


def require_page(after: object, limit: object) -> None:
    """Check ``page()`` arguments: ``after`` a str or None, ``limit`` an int in 1..MAX_PAGE."""
    if after is not None and not isinstance(after, str):
        raise ValidationError(
            f"after must be an account id (str) or None, not {type(after).__name__}",
            field="after",
        )
    require_int(limit, "limit", low=1, high=MAX_PAGE)


#: The keys an account is unique by besides its id, as ``find_id`` names them.
_KEYS: Final = ("email", "phone", "referral_code")


def require_one_key(
    email: object = None, phone: object = None, referral_code: object = None
) -> tuple[str, str]:
    """Check ``find_id()`` arguments; return the one key given, as ``(kind, value)``.

    ``kind`` is ``"email"``, ``"phone"`` or ``"referral_code"``. Exactly one argument must be
    a ``str``; the others ``None``. Anything else raises ``ValidationError``.
    """
    # The duplicate check is a hot path: the usual call (one str) costs two comparisons.
    if phone is None and referral_code is None and type(email) is str:
        return "email", email
    if email is None and referral_code is None and type(phone) is str:
        return "phone", phone
    if email is None and phone is None and type(referral_code) is str:
        return "referral_code", referral_code
    values = (email, phone, referral_code)
    given = [kind for kind, value in zip(_KEYS, values, strict=True) if value is not None]
    if not given:
        raise ValidationError(
            "find_id() needs one key: email, phone or referral_code; none was given",
            field=", ".join(_KEYS),
        )
    if len(given) > 1:
        raise ValidationError(
            f"find_id() takes exactly one key, got {len(given)}: {', '.join(given)}",
            field=", ".join(given),
        )
    kind = given[0]
    return kind, require_instance(values[_KEYS.index(kind)], kind, str)  # a str subclass too


def require_keys(kind: object, values: Iterable[object]) -> list[str]:
    """Check ``find_ids()`` arguments; return the values, once each, in their first order."""
    if kind not in _KEYS:
        raise ValidationError(
            f"find_ids() looks up email, phone or referral_code, not {shown(kind)}", field="kind"
        )
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValidationError(
            f"find_ids() takes an iterable of {kind} values, not {type(values).__name__}",
            field=str(kind),
        )
    checked: dict[str, None] = {}
    for value in values:
        checked[require_instance(value, str(kind), str)] = None
    return list(checked)


def require_ids(values: Iterable[object]) -> list[str]:
    """Check ``get_many()``'s argument; return the ids, once each, in their first order."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValidationError(
            f"get_many() takes an iterable of account ids, not {type(values).__name__}",
            field="account_ids",
        )
    checked: dict[str, None] = {}
    for value in values:
        checked[require_instance(value, "account_id", str)] = None
    return list(checked)


def stale_write(account_id: str, stored_version: int, expected_version: int) -> StaleWrite:
    """Return the error every adapter raises for a save based on a stale version."""
    return StaleWrite(
        f"account {account_id} was changed by someone else: stored version "
        f"{stored_version}, this write expected {expected_version}"
    )


class AfterCommit:
    """The callbacks an adapter holds for :meth:`AccountRepository.after_commit`.

    An adapter calls :meth:`register` from ``after_commit``, :meth:`mark` when an ``atomic()``
    block begins, :meth:`discard` with that mark when the block rolls back, and :meth:`take`
    when its outermost block has committed; it calls what ``take`` returned with
    :func:`call_all` once it has let go of its lock, so that a callback may use the store.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: list[Callable[[], None]] = []

    def register(
        self, callback: object, lock: AbstractContextManager[object], in_block: Callable[[], bool]
    ) -> None:
        """Do what ``after_commit(callback)`` promises, for an adapter whose blocks hold ``lock``.

        ``in_block()`` says, under the lock, whether an ``atomic()`` block is open: a block of
        another thread holds the lock, so the check waits for it to end and never takes its
        block for ours.
        """
        checked = require_callback(callback)
        with lock:
            if in_block():
                self._pending.append(checked)
                return
        call_all([checked])

    def mark(self) -> int:
        """Return the position to :meth:`discard` back to if the block that begins rolls back."""
        return len(self._pending)

    def discard(self, mark: int) -> None:
        """Drop the callbacks held since ``mark``: their writes were undone."""
        del self._pending[mark:]

    def take(self) -> list[Callable[[], None]]:
        """Return and forget every held callback: the outermost block has committed."""
        pending, self._pending = self._pending, []
        return pending


def require_callback(callback: object) -> Callable[[], None]:
    """Refuse an ``after_commit`` callback that is not callable, before anything is held."""
    if not callable(callback):
        raise ValidationError(
            f"after_commit needs a callable, not {type(callback).__name__}", field="callback"
        )
    return callback


def every_account(repository: AccountRepository, *, page_size: int = 1000) -> Iterator[Account]:
    """Yield every stored account once, by id, a page of ``page_size`` at a time."""
    after: str | None = None
    while True:
        page = repository.page(after=after, limit=page_size)
        yield from page
        if len(page) < page_size:
            return
        after = page[-1].id
