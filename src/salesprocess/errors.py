"""The one error tree of salesprocess.

Every error the library raises on purpose derives from :class:`SalesProcessError`, so an app can
catch the whole family in one ``except``. Each subclass also derives from the closest built-in
exception (``ValueError``, ``LookupError``) so that generic handlers keep working.

Messages name what was wrong and where: the account, its stage, the event or the field.
The same facts are kept as attributes for programs.

Each class says the HTTP status a web API would usually answer it with (the table of
:doc:`/web` gathers them): check the most specific class first, as a subclass may answer
otherwise than its base.
"""

from __future__ import annotations

from typing import Final

import attrs

__all__ = [
    "MAX_MESSAGE",
    "BadRows",
    "ConflictError",
    "CriteriaError",
    "CurrencyMismatch",
    "InvalidTransition",
    "NotFound",
    "QualificationRefused",
    "RowError",
    "SalesProcessError",
    "StaleWrite",
    "StorageError",
    "ValidationError",
]


#: The longest message an error keeps: a value shown in one is cut where it is written (see
#: :func:`salesprocess.checks.shown`); this bounds whatever a message gathers besides.
MAX_MESSAGE: Final = 2000


class SalesProcessError(Exception):
    """Base of every error salesprocess raises on purpose.

    A message longer than :data:`MAX_MESSAGE` characters keeps its start and says how long it
    was: an error about a megabyte of input is not a megabyte itself.

    A web API would usually answer **500 Internal Server Error** only for one of these that no
    subclass below names (a misconfigured process, say); each subclass names its own status.
    """

    def __init__(self, *args: object) -> None:
        if args and type(args[0]) is str and len(args[0]) > MAX_MESSAGE:
            message = args[0]
            cut = f"{message[: MAX_MESSAGE - 40]}… (message of {len(message)} characters)"
            args = (cut, *args[1:])
        super().__init__(*args)


class ValidationError(SalesProcessError, ValueError):
    """A value given to the library is malformed; ``field`` names the input at fault.

    Nothing was stored. A web API would usually answer **422 Unprocessable Content**, with
    ``field`` to point at the input (400 Bad Request also does, for a body that is not even
    the right shape).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CurrencyMismatch(ValidationError):
    """Amounts in different currencies were combined, compared, or put on one account.

    Raised by ``Money`` arithmetic across currencies, and for a purchase in a currency the
    process's :class:`~salesprocess.currencies.CurrencyRule` refuses: not the house currency,
    or not the currency the account's first purchase fixed; nothing is stored. It is a
    ``ValidationError``, not a ``ConflictError``: the purchase as given can never be
    recorded on that account, and retrying it cannot help; the caller has to send another
    amount. ``expected`` and ``given`` are the currency codes, when known.

    A web API would usually answer it with **422 Unprocessable Content**.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        expected: str | None = None,
        given: str | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.expected = expected
        self.given = given


class CriteriaError(ValidationError):
    """A criteria document is malformed, or evaluating it hit an error the standard defines.

    ``path`` is the JSON path of the fault inside the document (for example ``$.and[2]['>=']``).

    ``error_type`` is set for the errors the JSON Logic specification defines: ``"NaN"`` (no
    number as the result of arithmetic or a comparison), ``"Invalid Arguments"`` (operands of
    the wrong number or kind), ``"Unknown Operator"``, or the value a ``throw`` threw (the
    ``"type"`` of a thrown object). ``error_value`` is then the error object a ``try``
    fallback sees as its data (``{"type": "NaN"}``, or the thrown object). Both are ``None``
    for other faults: malformed JSON, a limit, a failure of the data itself.

    A web API would usually answer **422 Unprocessable Content**, with ``path``.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str = "$",
        error_type: object = None,
        error_value: object = None,
    ) -> None:
        super().__init__(f"{message} (at {path})", field=path)
        self.path = path
        self.error_type = error_type
        if error_value is None and error_type is not None:
            error_value = {"type": error_type}
        self.error_value = error_value


class NotFound(SalesProcessError, LookupError):
    """No account (or other stored item) has the given id.

    A web API would usually answer **404 Not Found**.
    """


class InvalidTransition(SalesProcessError):
    """The account's stage does not allow the event; the account is left as it was.

    The request was well formed, but the account's state forbids it: a web API would usually
    answer **409 Conflict**, naming ``stage`` and ``event``.
    """

    def __init__(self, message: str, *, account_id: str | None, stage: str, event: str) -> None:
        super().__init__(message)
        self.account_id = account_id
        self.stage = stage
        self.event = event


class QualificationRefused(InvalidTransition):
    """``qualify`` was refused: the policy did not approve and no override was given.

    ``missing`` lists, for a person, each requirement that was not met.

    A web API would usually answer **409 Conflict** (as for any refused transition), with
    ``missing``.
    """

    def __init__(
        self, message: str, *, account_id: str | None, stage: str, missing: tuple[str, ...]
    ) -> None:
        super().__init__(message, account_id=account_id, stage=stage, event="qualify")
        self.missing = missing


class ConflictError(SalesProcessError):
    """A write clashes with what is stored; nothing was written.

    A plain ``ConflictError`` is a clash of data: an id, email, phone or referral code that
    belongs to another account, or contact details that contradict a known account's. Retrying
    the same write cannot help. :class:`StaleWrite`, its subclass, is the one kind a retry on
    fresh data can cure.

    A web API would usually answer **409 Conflict**.
    """


class StaleWrite(ConflictError):
    """A write was based on a stale read: the account changed since it was loaded.

    Storage raises it for a save whose ``expected_version`` is no longer the stored one; the
    unit of work also raises it when a lead it found unknown was captured by another writer
    before its own add. ``SalesProcess`` commands reload and retry a bounded number of times
    before it reaches the caller.

    Reaching an API, it means the retries were used up by concurrent writers: a web API would
    usually answer **409 Conflict** (the client may send the request again).
    """


class StorageError(SalesProcessError):
    """The storage backend failed or holds data it cannot read (corrupt or foreign file).

    A lost or refused connection, an exhausted or closed pool, a timeout, an unmigrated
    database: the request was not served, and the transaction around it is whole or absent.
    A web API would usually answer **503 Service Unavailable** (and log the message, which
    may name the database, rather than show it).
    """


@attrs.frozen
class RowError:
    """A refused row of a bulk load: ``position`` (1 for the first), why, and the field."""

    position: int
    message: str
    field: str | None = None

    def __str__(self) -> str:
        return f"row {self.position}: {self.message}"


class BadRows(ValidationError):
    """A bulk load was refused as a whole: ``rows`` lists every bad row; nothing was stored.

    A web API would usually answer **422 Unprocessable Content**, listing ``rows``.
    """

    #: How many rows the message lists before it says how many more there are.
    SHOWN = 5

    def __init__(self, what: str, rows: tuple[RowError, ...]) -> None:
        listed = "; ".join(str(row) for row in rows[: self.SHOWN])
        more = f"; and {len(rows) - self.SHOWN} more" if len(rows) > self.SHOWN else ""
        count = f"{len(rows)} bad row{'' if len(rows) == 1 else 's'}"
        super().__init__(f"{what}: {count}, nothing stored: {listed}{more}")
        self.rows = rows
