"""The storage protocol: the small interface every account store implements.

It is a :class:`typing.Protocol`, so an adapter needs no base class: any object with these
methods is a repository. :class:`salesprocess.testing.RepositoryContract` is the test kit that
proves an adapter keeps every promise made here.

Versions make writes safe without locks held across a command: an account read at version
``v`` may be saved only while the stored version is still ``v``; the store then keeps it at
``v + 1``. A stale save raises :class:`~salesprocess.errors.ConflictError` and writes nothing.
Versions are ints from 1 to :data:`MAX_VERSION` (2**31 - 1, what PostgreSQL's ``integer`` column
holds), so ``expected_version`` is an int from 0 to ``MAX_VERSION - 1``; anything else (a float,
a ``bool``, a ``Decimal``, a negative or too large int) raises
:class:`~salesprocess.errors.ValidationError` before anything is written.

The ``require_*`` helpers check arguments the same way in every adapter, so that every one
refuses a bad argument with the same ``ValidationError``; an adapter of your own can use them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Final, Protocol, runtime_checkable

from salesprocess.account import Account
from salesprocess.errors import ConflictError, ValidationError
from salesprocess.stage import Stage

__all__ = [
    "MAX_PAGE",
    "MAX_VERSION",
    "AccountRepository",
    "require_account",
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

        Returns the account as stored, at ``expected_version + 1``. Raises ``ConflictError``
        (writing nothing) if the stored version differs or the new contact details or referral
        code belong to another account, and ``NotFound`` if the account was never added. Raises
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
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            f"{field} must be an int, not {type(value).__name__} {value!r}", field=field
        )
    if not 0 <= value < MAX_VERSION:
        raise ValidationError(
            f"{field} must be from 0 to {MAX_VERSION - 1}, got {value}", field=field
        )
    return value


def require_page(after: object, limit: object) -> None:
    """Check ``page()`` arguments: ``after`` a str or None, ``limit`` an int in 1..MAX_PAGE."""
    if after is not None and not isinstance(after, str):
        raise ValidationError(
            f"after must be an account id (str) or None, not {type(after).__name__}",
            field="after",
        )
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValidationError(
            f"limit must be an int, not {type(limit).__name__} {limit!r}", field="limit"
        )
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(
            f"limit must be at least 1 and at most {MAX_PAGE}, got {limit}", field="limit"
        )


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
    value = values[_KEYS.index(kind)]
    if not isinstance(value, str):
        raise ValidationError(
            f"{kind} must be a str, not {type(value).__name__} {value!r}", field=kind
        )
    return kind, value  # a str subclass: accepted like a str


def stale_write(account_id: str, stored_version: int, expected_version: int) -> ConflictError:
    """Return the error every adapter raises for a save based on a stale version."""
    return ConflictError(
        f"account {account_id} was changed by someone else: stored version "
        f"{stored_version}, this write expected {expected_version}"
    )
