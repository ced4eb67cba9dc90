"""Time order: an account's records are kept in the order they happened.

"The latest call", "the last screening", "the first purchase" must mean the latest, last and
first made, so a record dated before the one it follows is refused rather than sorted in. This
module is the one place that check and its error are written; the lifecycle's "history never
runs backwards" is the same rule for stage changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from salesprocess.errors import ValidationError

if TYPE_CHECKING:
    from salesprocess.account import Account

__all__ = ["Dated", "last_at", "out_of_order", "require_in_order"]


class Dated(Protocol):
    """A record with the moment it happened."""

    @property
    def at(self) -> datetime:
        """When it happened (an aware datetime)."""
        ...


def last_at(records: Sequence[Dated]) -> datetime | None:
    """Return when the last of ``records`` happened, or ``None`` if there is none."""
    return records[-1].at if records else None


def out_of_order(
    account: Account,
    what: str,
    at: datetime,
    *,
    since: str,
    earlier: datetime,
    rule: str,
    field: str = "at",
) -> ValidationError:
    """Return the error for ``what`` at ``at``, before ``since`` (at ``earlier``) on ``account``.

    ``rule`` ends the message with what the caller should do or know; ``field`` names the
    argument that gave ``at``.
    """
    return ValidationError(
        f"account {account.id}: {what} at {at.isoformat()} is before {since} "
        f"({earlier.isoformat()}); {rule}",
        field=field,
    )


def require_in_order(
    account: Account,
    what: str,
    at: datetime,
    *,
    since: str,
    earlier: datetime | None,
    rule: str = "record them in order",
    field: str = "at",
) -> None:
    """Refuse ``what`` at ``at`` if it is before ``earlier`` (``None``: nothing to follow).

    >>> from datetime import UTC
    >>> from salesprocess.account import Account, Source
    >>> acct = Account("a-1", "Acme", Source("referral"), datetime(2026, 1, 5, tzinfo=UTC))
    >>> require_in_order(acct, "a call", datetime(2026, 1, 4, tzinfo=UTC),
    ...                  since="the lead was captured", earlier=acct.created_at)
    Traceback (most recent call last):
    ...
    salesprocess.errors.ValidationError: account a-1: a call at 2026-01-04T00:00:00+00:00 is before the lead was captured (2026-01-05T00:00:00+00:00); record them in order
    """  # noqa: E501 - a doctest's expected output is one line
    if earlier is not None and at < earlier:
        raise out_of_order(account, what, at, since=since, earlier=earlier, rule=rule, field=field)
