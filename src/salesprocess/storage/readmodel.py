"""The read model: the rows the SQL adapters keep beside each account, for reads and reports.

Purchases only ever grow (the domain appends, never edits), and a repeat customer may make
thousands, so each purchase is a row of its own in ``purchases``, keyed by account and position
and written once; an account's ``data`` JSON holds everything else, and a read joins its
purchases back (:func:`assemble`). A save of an account that gained a purchase writes that
purchase and the account's own row, however many came before. The stage history stays in
``data`` (it grows with stage changes only); for the reports every change after the first is
also a row of ``stage_changes``, and the first is on the account's row.

Beside each account the adapters keep its *progress* in more columns of its row: channel and
campaign; its first change's moment and stage (``captured_*``) and its last stage; when it was
first qualified (by position) and first bought; ``mask``, the stages it ever reached
(:data:`REACHED_BIT`), and ``settled_at``, its latest change or purchase: an account settled by
a funnel's ``as_of`` is counted from one index on ``(last_stage, mask)``, the others from their
rows. ``purchase_tallies`` adds up each account's purchases per currency for the all-time
revenue. All of it is derived from the account alone, kept in the same transaction as the
account, and extended (never recomputed) when a save only appends.

Time is integer microseconds since 1970-01-01 UTC (``at``); a UTC day is ``at // DAY``. A moment
in an IANA zone also keeps the zone and its wall time: Python compares and subtracts moments of
one zone by wall time, and so do the reports (:func:`zone_of`, :func:`ambiguous`). Money is
exact: SQLite keeps integer millionths (``units``, ``NULL`` when an amount has finer places or
more than 18 digits) beside the amount's text and exponent; PostgreSQL keeps ``numeric``. A sum
SQL cannot give exactly is computed in Python from the rows instead, never approximated.

The storage layer may not import the reports: the functions here return plain counts and sums,
and each adapter turns them into the reports' results.
"""

from __future__ import annotations

import operator
import secrets
import sys
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, getcontext
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo

from salesprocess.account import Account, HistoryEntry, Purchase, Screening, unchecked_copy
from salesprocess.errors import SalesProcessError, StorageError
from salesprocess.money import Money
from salesprocess.stage import Stage
from salesprocess.storage.serialise import (
    cached_loads,
    created_key,
    dumps,
    misfiled,
    moment_from_text,
    moment_text,
    referrals_of,
)

__all__ = [
    "DAY",
    "PROGRESS_COLUMNS",
    "REACHED_BIT",
    "SCALE",
    "Dialect",
    "Memo",
    "Plan",
    "Progress",
    "Tables",
    "ambiguous",
    "assemble",
    "assembling",
    "day_expression",
    "day_of",
    "extends",
    "funnel_counts",
    "lead_counts",
    "moment_key",
    "moment_of",
    "moment_text_of",
    "plan",
    "quick",
    "referral_counts",
    "revenue_tallies",
    "same_start",
    "screening_rows",
    "stays",
    "zone_of",
]

#: Microseconds in a day: ``at // DAY`` is the UTC day number (0 is 1970-01-01).
DAY: Final = 86_400_000_000
#: SQLite's ``units`` are amounts in millionths.
SCALE: Final = 6
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_INT64: Final = 2**63 - 1
_UNITS_LIMIT: Final = 10**18
# Exact arithmetic for sums of amounts, whatever the caller's context.
_EXACT: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[])

#: The bits of ``mask``: a stage the account has reached.
REACHED_BIT: Final[Mapping[Stage, int]] = {
    Stage.PROSPECT: 1,
    Stage.QUALIFIED: 2,
    Stage.CUSTOMER: 4,
    Stage.REPEAT: 8,
    Stage.REFERRER: 16,
    Stage.DISQUALIFIED: 32,
    Stage.CHURNED: 64,
}
# The stages whose first entry (by time) the progress keeps, in its order.
_ENTERED: Final = (
    Stage.PROSPECT,
    Stage.QUALIFIED,
    Stage.REFERRER,
    Stage.DISQUALIFIED,
    Stage.CHURNED,
)
_ENTERED_BIT: Final = {stage: REACHED_BIT[stage] for stage in _ENTERED}
_CUSTOMER: Final = REACHED_BIT[Stage.CUSTOMER]
_REPEAT: Final = REACHED_BIT[Stage.REPEAT]

#: The progress columns of an account's row, in the order :meth:`Progress.columns` gives.
PROGRESS_COLUMNS: Final = (
    "channel",
    "campaign",
    "created_zone",
    "created_wall",
    "captured_at",
    "captured_stage",
    "captured_zone",
    "captured_wall",
    "last_stage",
    "first_qualified_at",
    "bought_at",
    "mask",
    "settled_at",
    "purchase_count",
    "history_count",
    "stamp",
)
#: What a save reads back to extend the stored progress: the version, then these.
STATE_COLUMNS: Final = (
    "version",
    "stamp",
    "purchase_count",
    "history_count",
    "settled_at",
    "mask",
    "first_qualified_at",
    "bought_at",
)


def day_expression(column: str) -> str:
    """Return SQL for the UTC day number of a microseconds ``column`` (floor, as ``// DAY``).

    Indexes are built on it, so the queries use this very text.
    """
    return f"(CASE WHEN {column} >= 0 THEN {column} / {DAY} ELSE ({column} + 1) / {DAY} - 1 END)"


def moment_key(moment: datetime) -> int:
    """Return ``moment`` as integer microseconds since 1970-01-01 UTC."""
    return created_key(moment)


def day_of(key: int) -> int:
    """Return the UTC day number (days since 1970-01-01) of a moment's key."""
    return key // DAY


def day_date(day: int) -> date:
    """Return the calendar date of a UTC day number."""
    return date.fromordinal(_EPOCH_ORDINAL + day)


def _moment(key: int, text: str | None) -> datetime:
    # A UTC moment is its key; any other zone or offset is kept as text.
    if text is None:
        return _EPOCH + timedelta(microseconds=key)
    return moment_from_text(text)


def _text_of(moment: datetime) -> str | None:
    return None if moment.tzinfo is UTC else moment_text(moment)


def moment_of(key: int, text: str | None) -> datetime:
    """Return the moment a row keeps as its ``at`` key and text (``None``: UTC)."""
    return _moment(key, text)


def moment_text_of(moment: datetime) -> str | None:
    """Return the text a row keeps beside a moment's key: ``None`` for a UTC moment."""
    return _text_of(moment)


_NO_ZONE: Final[tuple[None, None]] = (None, None)
_NAIVE_EPOCH: Final = datetime(1970, 1, 1)


def zone_of(moment: datetime) -> tuple[str | None, int | None]:
    """Return the IANA key of ``moment``'s zone and its wall time in microseconds (or Nones).

    Python compares and subtracts two datetimes that share one ``tzinfo`` object by their wall
    times, and a zone read back from storage is the one ``ZoneInfo`` object of its key: the
    reports do so too, and SQL needs the wall time to do the same (around a DST change the
    wall times' order is not the instants').
    """
    zone = moment.tzinfo
    if zone is UTC or type(zone) is timezone:
        return _NO_ZONE
    key = getattr(zone, "key", None) if isinstance(zone, ZoneInfo) else None
    if not isinstance(key, str):
        return _NO_ZONE
    return key, (moment.replace(tzinfo=None) - _NAIVE_EPOCH) // _MICROSECOND


# --- money ------------------------------------------------------------------------------------


def units(amount: Decimal) -> int | None:
    """Return ``amount`` in millionths if that is an integer of at most 18 digits, else None."""
    exponent = amount.as_tuple().exponent
    if not isinstance(exponent, int) or amount.adjusted() > 12:
        return None
    scaled = amount.scaleb(SCALE, context=_EXACT)
    if exponent + SCALE < 0 and scaled != scaled.to_integral_value(context=_EXACT):
        return None
    value = int(scaled)
    return value if -_UNITS_LIMIT < value < _UNITS_LIMIT else None


def numeric(amount: Decimal) -> Decimal | None:
    """Return ``amount`` if PostgreSQL's ``numeric`` holds it (well within its limits)."""
    exponent = amount.as_tuple().exponent
    if not isinstance(exponent, int) or exponent < -16000 or amount.adjusted() > 100_000:
        return None
    return amount


def _add_units(left: object, right: object) -> int | None:
    if left is None or right is None:
        return None
    total = int(left) + int(right)  # type: ignore[call-overload]
    return total if -_INT64 <= total <= _INT64 else None


def _add_numeric(left: object, right: object) -> Decimal | None:
    if left is None or right is None:
        return None
    total = _EXACT.add(Decimal(left), Decimal(right))  # type: ignore[arg-type]
    return numeric(total)


def _units_decimal(value: object) -> Decimal:
    return Decimal(int(value)).scaleb(-SCALE, context=_EXACT)  # type: ignore[call-overload]


def _numeric_decimal(value: object) -> Decimal:
    return Decimal(value)  # type: ignore[arg-type]


def _same(text: str) -> str:
    return text


class Dialect(NamedTuple):
    """How an adapter stores money and text in the read model."""

    #: The value of an amount's money column (``None``: SQL cannot sum it exactly).
    money: Callable[[Decimal], object | None]
    #: The exact sum of two money values, ``None`` if the column cannot hold it.
    add: Callable[[object, object], object | None]
    #: A money value (or a sum of them) read back, as an exact ``Decimal``.
    decimal: Callable[[object], Decimal]
    #: Text as a text column stores it, and back (PostgreSQL escapes NUL).
    text: Callable[[str], str] = _same
    untext: Callable[[str], str] = _same


SQLITE_MONEY: Final = Dialect(units, _add_units, _units_decimal)


def postgres_dialect(text: Callable[[str], str], untext: Callable[[str], str]) -> Dialect:
    """Return PostgreSQL's dialect: ``numeric`` money, and its escape of NUL in text."""
    return Dialect(numeric, _add_numeric, _numeric_decimal, text, untext)


# --- progress ---------------------------------------------------------------------------------


class Progress:
    """An account's progress as its row keeps it, extended one purchase or change at a time.

    ``settled`` is its latest moment (of any change or purchase): at or after it, what it
    reached is ``mask``, and its stage its last one. ``bought`` is its earliest purchase: one
    on another UTC day makes it a repeat buyer, whatever order the purchases came in.
    """

    __slots__ = ("bought", "first_qualified", "history", "mask", "purchases", "settled")

    def __init__(self, state: Sequence[Any] | None = None) -> None:
        """Start from nothing, or from the stored ``state`` (``STATE_COLUMNS`` after ``stamp``)."""
        if state is None:
            self.purchases = self.history = self.mask = 0
            self.settled = self.first_qualified = self.bought = None
            return
        (self.purchases, self.history, self.settled, self.mask) = state[:4]
        self.first_qualified, self.bought = state[4:6]

    def add_history(self, entries: Sequence[HistoryEntry]) -> list[int]:
        """Take in ``entries`` (appended to the history); return their keys."""
        keys = []
        for entry in entries:
            at = created_key(entry.at)
            keys.append(at)
            if self.settled is None or at > self.settled:
                self.settled = at
            stage = entry.to_stage
            bit = _ENTERED_BIT.get(stage)
            if bit is not None:
                self.mask |= bit
                if stage is Stage.QUALIFIED and self.first_qualified is None:
                    self.first_qualified = at
        self.history += len(entries)
        return keys

    def add_purchases(self, purchases: Sequence[Purchase]) -> list[int]:
        """Take in ``purchases`` (appended); return their keys."""
        keys = []
        for purchase in purchases:
            at = created_key(purchase.at)
            keys.append(at)
            if self.settled is None or at > self.settled:
                self.settled = at
            bought = self.bought
            if bought is None:
                self.bought = at
                self.mask |= _CUSTOMER
                continue
            if at // DAY != bought // DAY:
                self.mask |= _REPEAT
            if at < bought:
                self.bought = at
        self.purchases += len(purchases)
        return keys

    def columns(
        self,
        account: Account,
        first: int | None,
        stamp: int,
        text: Callable[[str], str],
    ) -> tuple[Any, ...]:
        """Return the values of ``PROGRESS_COLUMNS`` for ``account``.

        ``first`` is the key of its first history entry's moment (``None``: no history).
        """
        source = account.source
        history = account.history
        if history:
            entry = history[0]
            captured: tuple[Any, ...] = (first, str(entry.to_stage), *zone_of(entry.at))
            last = str(history[-1].to_stage)
        else:
            captured, last = (None, None, None, None), None
        return (
            source.channel.value,
            None if source.campaign is None else text(source.campaign),
            *zone_of(account.created_at),
            *captured,
            last,
            self.first_qualified,
            self.bought,
            self.mask,
            self.settled,
            self.purchases,
            self.history,
            stamp,
        )


def new_stamp() -> int:
    """Return a fresh random stamp: every write of an account's row gives it a new one."""
    return secrets.randbelow(_INT64) + 1


# --- rows -------------------------------------------------------------------------------------


def purchase_rows(
    account_key: str,
    start: int,
    purchases: Sequence[Purchase],
    keys: Sequence[int],
    dialect: Dialect,
) -> list[tuple[Any, ...]]:
    """Return the ``purchases`` rows of ``purchases``, the first at position ``start``."""
    text = dialect.text
    money = dialect.money
    rows = []
    for position, (purchase, at) in enumerate(zip(purchases, keys, strict=True), start):
        amount = purchase.amount.amount
        reference = purchase.reference
        rows.append(
            (
                account_key,
                position,
                at,
                at // DAY,
                purchase.amount.currency,
                money(amount),
                amount.as_tuple().exponent,
                str(amount),
                _text_of(purchase.at),
                None if reference is None else text(reference),
                *zone_of(purchase.at),
            )
        )
    return rows


def history_rows(
    account_key: str,
    start: int,
    entries: Sequence[HistoryEntry],
    keys: Sequence[int],
    dialect: Dialect,
) -> list[tuple[Any, ...]]:
    """Return the ``stage_changes`` rows of ``entries``, the first at position ``start``."""
    text = dialect.text
    rows = []
    for position, (entry, at) in enumerate(zip(entries, keys, strict=True), start):
        actor, reason = entry.actor, entry.reason
        rows.append(
            (
                account_key,
                position,
                entry.from_stage,
                entry.to_stage,
                text(entry.event),
                at,
                _text_of(entry.at),
                None if actor is None else text(actor),
                None if reason is None else text(reason),
                *zone_of(entry.at),
            )
        )
    return rows


class Tally(NamedTuple):
    """One account's purchases in one currency: the row of ``purchase_tallies``."""

    total: object  # the dialect's money sum; None when SQL cannot hold it exactly
    purchases: int
    first_day: int
    last_day: int
    min_exponent: int


def tallies(rows: Iterable[Sequence[Any]], dialect: Dialect, into: dict[str, Tally]) -> None:
    """Add purchase ``rows`` (as :func:`purchase_rows` makes them) to ``into``, per currency."""
    add = dialect.add
    for row in rows:
        currency, value, exponent, day = row[4], row[5], row[6], row[3]
        known = into.get(currency)
        if known is None:
            into[currency] = Tally(value, 1, day, day, exponent)
            continue
        into[currency] = Tally(
            add(known.total, value),
            known.purchases + 1,
            min(known.first_day, day),
            max(known.last_day, day),
            min(known.min_exponent, exponent),
        )


class Plan(NamedTuple):
    """What a write stores for one account: its row's values, and the rows it gains."""

    data: str  # the account's JSON, without purchases
    prefix: Account  # what ``data`` decodes to
    progress: tuple[Any, ...]  # PROGRESS_COLUMNS
    purchases: list[tuple[Any, ...]]
    history: list[tuple[Any, ...]]  # changes after the first
    tallies: dict[str, Tally]  # the full tallies of each currency the new purchases touch
    rewrite: bool  # True: replace the account's rows; False: append these


def plan(
    account: Account,
    version: int,
    account_key: str,
    dialect: Dialect,
    *,
    state: Sequence[Any] | None = None,
    stored: Account | None = None,
    known_tallies: Callable[[Iterable[str]], Mapping[str, Tally]] | None = None,
    stamp: int | None = None,
    with_data: bool = True,
) -> Plan:
    """Plan the write of ``account`` at ``version``.

    For a new account ``state`` is ``None``: every purchase, and every change after the first,
    is a new row. For a save, ``state`` is the stored row's ``STATE_COLUMNS`` and ``stored``
    the account as this process last read or wrote it at that row's stamp (or ``None``): if
    ``account`` extends it (the very same purchase and change objects, then new ones), only
    the new ones are rows to append and ``known_tallies`` gives the stored tallies of their
    currencies; otherwise the account's rows are rewritten. ``stamp`` defaults to a new random
    one; ``with_data=False`` leaves the JSON out (``data`` is then empty): the migration that
    fills the read model keeps the JSON it has.
    """
    purchases_now = account.purchases
    prefix = unchecked_copy(account, purchases=()) if with_data and purchases_now else account
    data = dumps(prefix, version=version) if with_data else ""
    if state is None and not purchases_now and len(account.history) < 2:
        # A lead as captured (what a bulk load brings): its row and nothing else.
        columns = lead_columns(
            account,
            created_key(account.created_at),
            new_stamp() if stamp is None else stamp,
            dialect.text,
        )
        return Plan(data, prefix, columns, [], [], {}, False)
    progress: Progress
    rewrite = state is not None
    if state is not None and stored is not None and extends(stored, account, state[2], state[3]):
        progress = Progress(state[2:])
        rewrite = False
    else:
        progress = Progress()
    start_p, start_h = progress.purchases, progress.history
    history_now = account.history
    new_history = history_now[start_h:] if start_h else history_now
    keys = progress.add_history(new_history)
    first = (keys[0] if keys else None) if not start_h else created_key(history_now[0].at)
    if start_h:
        history = history_rows(account_key, start_h, new_history, keys, dialect)
    else:  # the first change is kept on the account's row
        history = history_rows(account_key, 1, new_history[1:], keys[1:], dialect)
    new_purchases = purchases_now[start_p:] if start_p else purchases_now
    purchases = purchase_rows(
        account_key, start_p, new_purchases, progress.add_purchases(new_purchases), dialect
    )
    totals: dict[str, Tally] = {}
    if purchases:
        if not rewrite and start_p and known_tallies is not None:
            totals.update(known_tallies({row[4] for row in purchases}))
        tallies(purchases, dialect, totals)
    columns = progress.columns(
        account, first, new_stamp() if stamp is None else stamp, dialect.text
    )
    return Plan(data, prefix, columns, purchases, history, totals, rewrite)


def is_lead(account: Account) -> bool:
    """Return whether ``account`` is a lead as captured: no purchase, at most one change.

    Its read model is its row alone (:func:`lead_columns`): the bulk load's fast path.
    """
    return not account.purchases and len(account.history) < 2


def lead_columns(
    account: Account, created: int, stamp: int, text: Callable[[str], str]
) -> tuple[Any, ...]:
    """Return the progress columns of a lead (:func:`is_lead`) created at key ``created``."""
    source = account.source
    campaign = source.campaign
    lead = (
        source.channel.value,
        None if campaign is None else text(campaign),
        *zone_of(account.created_at),
    )
    if not account.history:
        return (*lead, *_NOTHING_YET, 0, 0, stamp)
    entry = account.history[0]
    stage = entry.to_stage
    at = created if entry.at is account.created_at else created_key(entry.at)  # a capture's
    bit = _ENTERED_BIT.get(stage, 0)
    name = str(stage)
    qualified = at if stage is Stage.QUALIFIED else None
    return (*lead, at, name, *zone_of(entry.at), name, qualified, None, bit, at, 0, 1, stamp)


def is_capture(account: Account) -> bool:
    """Return whether ``account`` is a lead exactly as a capture makes it.

    A lead (:func:`is_lead`) whose one change is its capture, into its stage, at its creation:
    its progress columns repeat its stage and creation time (:func:`capture_columns`).
    """
    history = account.history
    if len(history) != 1 or account.purchases:
        return False
    entry = history[0]
    return entry.at is account.created_at and entry.to_stage is account.stage


def capture_columns(account: Account) -> tuple[Any, ...]:
    """Return what a capture's progress columns hold besides its stage and creation time.

    For a lead :func:`is_capture` accepts: channel, campaign, zone and wall time of its
    creation, its first qualification (its creation key, or ``None``) and its stage bit. The
    rest of :func:`lead_columns` repeats the stage and the creation time, which a statement can
    repeat itself.
    """
    source = account.source
    stage = account.stage
    return (
        source.channel.value,
        source.campaign,
        *zone_of(account.created_at),
        stage is Stage.QUALIFIED,
        _ENTERED_BIT.get(stage, 0),
    )


# The progress of an account with no history yet: captured (4), last stage, first qualified,
# bought, mask, settled.
_NOTHING_YET: Final = (None,) * 7 + (0, None)


def extends(stored: Account, account: Account, purchases: int, history: int) -> bool:
    """Return whether ``account`` holds ``stored``'s purchases and history, then maybe more.

    The stored ones must be the very same objects (what a command does to an account it read),
    so that an equal but differently written value (``1.10`` for ``1.1``, another offset of the
    same instant) is written again rather than taken for the stored one.
    """
    if len(stored.purchases) != purchases or len(stored.history) != history:
        return False
    return _same_items(stored.purchases, account.purchases) and _same_items(
        stored.history, account.history
    )


def same_start(stored: tuple[object, ...], given: tuple[object, ...]) -> bool:
    """Return whether ``given`` starts with the very objects of ``stored``, in order."""
    return _same_items(stored, given)


def _same_items(stored: tuple[object, ...], given: tuple[object, ...]) -> bool:
    """Return whether ``given`` starts with the very objects of ``stored``, in order."""
    count = len(stored)
    if len(given) < count:
        return False
    if count < 64 or _ITEMS is None:
        return all(map(operator.is_, stored, given))
    # A tuple's items are pointers: the same objects in order are the same bytes. Comparing
    # them at once costs a hundredth of comparing 10,000 items one by one.
    return _ITEMS(stored, count) == _ITEMS(given, count)


def _tuple_items() -> Callable[[tuple[object, ...], int], bytes] | None:
    """Return a reader of a tuple's first item pointers, where this interpreter has one.

    CPython keeps a tuple's items as an array of pointers (``id()``) after its header; the
    reader is checked on a probe tuple and not used (``None``) anywhere that is not so.
    """
    if sys.implementation.name != "cpython":  # pragma: no cover - CPython runs the tests
        return None
    try:
        import ctypes  # noqa: PLC0415 - only where the interpreter is CPython
    except ImportError:  # pragma: no cover - a CPython built without ctypes
        return None
    offset, size = tuple.__basicsize__, tuple.__itemsize__
    string_at = ctypes.string_at

    def items(value: tuple[object, ...], count: int) -> bytes:
        return string_at(id(value) + offset, count * size)

    probe = (object(), object(), object())
    expected = b"".join(id(item).to_bytes(size, sys.byteorder) for item in probe)
    return items if items(probe, 3) == expected else None


_ITEMS: Final = _tuple_items()


def screening_rows(
    account_key: str, start: int, screenings: Sequence[Screening]
) -> list[tuple[Any, ...]]:
    """Return the ``screenings`` rows of ``screenings``, the first at position ``start``.

    A row is account, position, ``at`` (the moment's key), the moment as text unless it is
    in UTC, the criteria's name and version, and the verdict (1 passed, 0 failed).
    """
    return [
        (
            account_key,
            position,
            created_key(screening.at),
            _text_of(screening.at),
            screening.criteria,
            screening.version,
            1 if screening.passed else 0,
        )
        for position, screening in enumerate(screenings, start)
    ]


# --- reading accounts back --------------------------------------------------------------------


class Memo:
    """The accounts this repository last read or wrote, by id, with the stamp of their row.

    An account whose row still has that stamp is that account: every write gives the row a
    new random stamp, so a write by anyone else (or one rolled back) never matches. A read
    then needs no rows of purchases or changes, and a save can tell what is already stored.
    """

    __slots__ = ("_entries", "maxsize")

    def __init__(self, maxsize: int = 4096) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[str, tuple[int, Account]] = OrderedDict()

    def get(self, account_id: str, stamp: int | None) -> Account | None:
        """Return the account remembered for ``account_id`` at ``stamp``, if any."""
        entry = self._entries.get(account_id)
        if entry is None or stamp is None or entry[0] != stamp:
            return None
        self._entries.move_to_end(account_id)
        return entry[1]

    def put(self, account_id: str, stamp: int, account: Account) -> None:
        """Remember ``account`` as the one stored under ``account_id`` at ``stamp``."""
        entries = self._entries
        entries[account_id] = (stamp, account)
        entries.move_to_end(account_id)
        if len(entries) > self.maxsize:
            entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every account."""
        self._entries.clear()


#: An account's row as a read fetches it: id, data, stamp, purchase_count; then, where the
#: adapter keeps screenings as rows of their own (``screenings=True`` below), version and
#: screening_count: such an adapter's ``data`` holds no screenings, and its version may be
#: older than the row's (a bulk screen raises the row's alone).
AccountRow = tuple[Any, ...]
#: Purchase rows by account id, and each account's stamp now; then, where the adapter keeps
#: them, screening rows by account id (position, at, moment, criteria, version, passed).
Tails = tuple[Mapping[str, Any], ...]


def quick(memo: Memo, row: AccountRow, *, screenings: bool = False) -> Account | None:
    """Return the account of ``row`` if no rows need reading: remembered, or all in its JSON.

    The hot read path; it remembers the account read. ``None``: :func:`assemble` it.
    ``screenings``: the row carries version and screening_count (see :data:`AccountRow`).
    """
    account_id, data, stamp, purchase_count = row[:4]
    account = memo.get(account_id, stamp)
    if account is not None:
        return account
    account = cached_loads(data)
    if account.id != account_id:
        raise misfiled(account_id, account)
    if purchase_count is not None and purchase_count > len(account.purchases):
        return None
    if screenings:
        if row[5] > len(account.screenings):
            return None
        account = _at_version(account, row[4])
    if stamp is not None:
        memo.put(account_id, stamp, account)
    return account


def assemble(
    rows: Sequence[AccountRow],
    memo: Memo,
    tails: Callable[[list[str]], Tails],
    reread: Callable[[list[str]], Sequence[AccountRow]],
    dialect: Dialect,
    *,
    remember: bool = False,
    screenings: bool = False,
) -> list[Account]:
    """Return the accounts of ``rows``, their purchases read from the purchase rows.

    ``data`` holds an account but for its purchases (rows written before schema 4 hold them
    too: then ``purchase_count`` says there is nothing more). ``tails(ids)`` fetches the
    purchase rows (position, at, currency, amount, moment, reference) of ``ids`` in position
    order, and then their stamps: an account whose stamp changed meanwhile (a write landed
    between the statements) is read again with ``reread(ids)``. With ``remember`` the accounts
    go into ``memo``. With ``screenings`` the rows carry version and screening_count (see
    :data:`AccountRow`): the screenings are read from their rows too (``tails``' third
    mapping), and the account takes the row's version.
    """
    steps = assembling(rows, memo, dialect, remember=remember, screenings=screenings)
    answer: Any = None
    try:
        while True:
            kind, ids = steps.send(answer)
            answer = tails(ids) if kind == "tails" else reread(ids)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def assembling(
    rows: Sequence[AccountRow],
    memo: Memo,
    dialect: Dialect,
    *,
    remember: bool = False,
    screenings: bool = False,
) -> Generator[tuple[str, list[str]], Any, list[Account]]:
    """Do what :func:`assemble` does, asking for its reads instead of making them.

    It yields ``("tails", ids)`` and ``("reread", ids)`` and is sent what ``tails(ids)`` and
    ``reread(ids)`` return: so an async adapter awaits the very reads a sync one calls.
    """
    found: dict[str, Account] = {}
    pending: Sequence[AccountRow] = rows
    for _attempt in range(8):
        wanted: dict[str, tuple[Account, int | None, int | None]] = {}
        for row in pending:
            account_id, data, stamp, purchase_count = row[:4]
            account = memo.get(account_id, stamp)
            if account is None:
                account = cached_loads(data)
                if account.id != account_id:
                    raise misfiled(account_id, account)
                version = row[4] if screenings else None
                if (purchase_count is not None and purchase_count > len(account.purchases)) or (
                    screenings and row[5] > len(account.screenings)
                ):
                    wanted[account_id] = (account, stamp, version)
                    continue
                if screenings:
                    account = _at_version(account, version)
            found[account_id] = account
            if remember and stamp is not None:
                memo.put(account_id, stamp, account)
        stale = _join(wanted, (yield ("tails", list(wanted))), found, dialect) if wanted else []
        if remember:
            for account_id, (_prefix, stamp, _version) in wanted.items():
                if account_id in found and stamp is not None:
                    memo.put(account_id, stamp, found[account_id])
        if not stale:
            return [found[row[0]] for row in rows]
        pending = yield ("reread", stale)
    raise StorageError(  # pragma: no cover - eight writes in a row between two statements
        "accounts kept changing while they were read; try again"
    )


def _at_version(account: Account, version: int | None) -> Account:
    """Return ``account`` at the row's ``version`` (``None``: the one its JSON holds)."""
    if version is None or version == account.version:
        return account
    return unchecked_copy(account, version=version)


def _join(
    wanted: Mapping[str, tuple[Account, int | None, int | None]],
    rows: Tails,
    found: dict[str, Account],
    dialect: Dialect,
) -> list[str]:
    """Join each wanted account's rows to it into ``found``; return those whose stamp changed."""
    purchases, stamps = rows[0], rows[1]
    screened: Mapping[str, Sequence[Sequence[Any]]] = rows[2] if len(rows) > 2 else {}
    stale = []
    untext = dialect.untext
    for account_id, (prefix, stamp, version) in wanted.items():
        if stamps.get(account_id) != stamp:
            stale.append(account_id)
            continue
        held = len(prefix.purchases)
        try:
            bought = tuple(
                Purchase(
                    Money(Decimal(amount), currency),
                    _moment(at, moment),
                    None if reference is None else untext(reference),
                )
                for position, at, currency, amount, moment, reference in purchases.get(
                    account_id, ()
                )
                if position >= held
            )
        except (SalesProcessError, ValueError, ArithmeticError) as exc:
            if isinstance(exc, StorageError):
                raise
            raise StorageError(
                f"stored account {account_id} has a purchase that is not valid: {exc}"
            ) from None
        changes: dict[str, Any] = {"purchases": prefix.purchases + bought} if bought else {}
        if version is not None and version != prefix.version:
            changes["version"] = version
        rows_of = screened.get(account_id)
        if rows_of:
            changes["screenings"] = prefix.screenings + _screenings(account_id, prefix, rows_of)
        found[account_id] = unchecked_copy(prefix, **changes) if changes else prefix
    return stale


def _screenings(
    account_id: str, prefix: Account, rows: Sequence[Sequence[Any]]
) -> tuple[Screening, ...]:
    """Return the screenings of ``rows`` (in position order) that ``prefix`` does not hold."""
    held = len(prefix.screenings)
    try:
        return tuple(
            Screening(_moment(at, moment), criteria, version, bool(passed))
            for position, at, moment, criteria, version, passed in rows
            if position >= held
        )
    except (SalesProcessError, ValueError, TypeError) as exc:
        if isinstance(exc, StorageError):
            raise
        raise StorageError(
            f"stored account {account_id} has a screening that is not valid: {exc}"
        ) from None


# --- reports ----------------------------------------------------------------------------------


class Tables(NamedTuple):
    """The adapter's table names and its parameter marker (``?`` or ``%s``)."""

    accounts: str
    purchases: str
    changes: str
    tallies: str
    param: str

    def sql(self, template: str) -> str:
        """Return ``template`` with the table names filled in and ``?`` as the marker."""
        text = template.format(
            accounts=self.accounts,
            purchases=self.purchases,
            changes=self.changes,
            tallies=self.tallies,
        )
        return text if self.param == "?" else text.replace("?", self.param)


#: ``fetch(sql, params)``: run a query of the report's snapshot, return its rows.
Fetch = Callable[[str, Sequence[Any]], list[Any]]

_CURRENCY_FIGURES = (
    "SELECT currency, count(*), sum(n), sum(total), sum(CASE WHEN hi > lo THEN total END), "
    "sum(CASE WHEN hi > lo THEN 1 ELSE 0 END), min(e), min(CASE WHEN hi > lo THEN e END), "
    "sum(CASE WHEN total IS NULL OR bad > 0 THEN 1 ELSE 0 END)"
)
_ALL_TIME = (
    _CURRENCY_FIGURES + " FROM (SELECT currency, units AS total, purchases AS n, "  # noqa: S608 - our own names
    "first_day AS lo, last_day AS hi, min_exponent AS e, 0 AS bad FROM {tallies}) t "
    "GROUP BY currency ORDER BY currency"
)
_WINDOW = (
    _CURRENCY_FIGURES + " FROM (SELECT currency, sum(units) AS total, count(*) AS n, "
    "min(day) AS lo, max(day) AS hi, min(exponent) AS e, count(*) - count(units) AS bad "
    "FROM {purchases} WHERE {where} GROUP BY account_id, currency) t "
    "GROUP BY currency ORDER BY currency"
)
_ROWS = (
    "SELECT account_id, amount, day FROM {purchases} WHERE currency = ?{where} "
    "ORDER BY account_id, position"
)


def _window_where(since: int | None, until: int | None) -> tuple[list[str], list[int]]:
    where, params = [], []
    if since is not None:
        where.append("at >= ?")
        params.append(since)
    if until is not None:
        where.append("at < ?")
        params.append(until)
    return where, params


def _exact(value: object, min_exponent: int | None, dialect: Dialect) -> Decimal | None:
    """Return the sum ``Decimal`` arithmetic gives for amounts adding up to ``value``.

    A sum of ``Decimal`` amounts (from ``Decimal(0)``) has the finest exponent among them and 0;
    it is exact when its digits fit the caller's context, as the pure report's would be (its
    partial sums are no longer). ``None`` when they do not: the report adds up the rows then.
    """
    if min_exponent is None:  # no purchase: sum([], Decimal(0))
        return Decimal(0)
    exponent = min(0, min_exponent)
    total = dialect.decimal(0 if value is None else value).quantize(
        Decimal((0, (1,), exponent)), context=_EXACT
    )
    context = getcontext()
    if (
        len(total.as_tuple().digits) > context.prec
        or total.adjusted() > context.Emax
        or exponent < context.Etiny()
    ):
        return None
    return total


#: Per currency: total, repeat revenue, purchases, customers, repeat customers.
Figures = tuple[Decimal, Decimal, int, int, int]


def revenue_tallies(
    fetch: Fetch, tables: Tables, dialect: Dialect, since: int | None, until: int | None
) -> tuple[dict[str, Figures], list[tuple[str, str, Decimal, int]]]:
    """Return the revenue figures SQL adds up exactly, and the rows of the other currencies.

    The rows (account id, currency, amount, day), in account id and position order, are for
    the report to add up in Python, as :func:`salesprocess.reports.revenue` would.
    """
    where, params = _window_where(since, until)
    if where:
        query = tables.sql(_WINDOW.replace("{where}", " AND ".join(where)))
    else:
        query = tables.sql(_ALL_TIME)
    try:
        figures = fetch(query, params)
        overflow = False
    except OverflowError:  # SQLite's sum() of integers beyond 64 bits
        figures, overflow = [], True
    exact: dict[str, Figures] = {}
    fallback: list[str] = []
    for currency, customers, purchases, total, repeat, repeaters, low, repeat_low, bad in figures:
        amount = None if bad else _exact(total, low, dialect)
        repeat_amount = None if bad else _exact(repeat, repeat_low, dialect)
        if amount is None or repeat_amount is None:
            fallback.append(currency)
            continue
        exact[currency] = (amount, repeat_amount, int(purchases), int(customers), int(repeaters))
    if overflow:
        fallback = [
            row[0] for row in fetch(tables.sql("SELECT DISTINCT currency FROM {purchases}"), [])
        ]
    rows: list[tuple[str, str, Decimal, int]] = []
    untext = dialect.untext
    extra = "".join(f" AND {clause}" for clause in where)
    for currency in fallback:
        for account_id, amount, day in fetch(
            tables.sql(_ROWS.replace("{where}", extra)), [currency, *params]
        ):
            rows.append((untext(account_id), currency, Decimal(amount), day))
    return exact, rows


_GROUPS_ALL = (
    "SELECT last_stage, mask, count(*) FROM {accounts} WHERE last_stage IS NOT NULL{filters} "
    "GROUP BY last_stage, mask"
)
# One row per unsettled account, not grouped: a GROUP BY would draw the planner to the
# (last_stage, mask) index and a scan of every row, where the few rows are found by settled_at.
_UNSETTLED = (
    "SELECT last_stage, mask, 1 FROM {accounts} "
    "WHERE settled_at > ? AND last_stage IS NOT NULL{filters}"
)
# The unsettled accounts as they were at ?: the stage of the change before the first one after
# it (history is read in order, and stops at the first later change; the first change is on
# the account's row), and what they had reached by then, from their rows.
_GROUPS_AT = (
    "SELECT stage, m, count(*) FROM (SELECT CASE WHEN u.cut IS NULL THEN u.last_stage "  # noqa: S608 - our own names
    "ELSE coalesce((SELECT s.to_stage FROM {changes} s WHERE s.account_id = u.id "
    "AND s.position = u.cut - 1), u.captured_stage) END AS stage, "
    "(CASE u.captured_stage "
    + " ".join(f"WHEN '{stage}' THEN {REACHED_BIT[stage]}" for stage in _ENTERED)
    + " ELSE 0 END) | coalesce((SELECT "
    + " | ".join(
        f"max(CASE WHEN c.to_stage = '{stage}' THEN {REACHED_BIT[stage]} ELSE 0 END)"
        for stage in _ENTERED
    )
    + " FROM {changes} c WHERE c.account_id = u.id AND c.at <= ?), 0) | coalesce((SELECT "  # noqa: S608 - our own names
    f"CASE WHEN count(*) > 0 THEN {_CUSTOMER} ELSE 0 END | "
    f"CASE WHEN max(p.day) > min(p.day) THEN {_REPEAT} ELSE 0 END "
    "FROM {purchases} p WHERE p.account_id = u.id AND p.at <= ?), 0) AS m "
    "FROM (SELECT a.id, a.last_stage, a.captured_stage, (SELECT min(c.position) "
    "FROM {changes} c WHERE c.account_id = a.id AND c.at > ?) AS cut "
    "FROM {accounts} a WHERE a.settled_at > ? AND a.captured_at <= ?{filters}) u) v "
    "GROUP BY stage, m"
)


def funnel_counts(
    fetch: Fetch,
    tables: Tables,
    dialect: Dialect,
    as_of: int,
    *,
    channel: str | None,
    campaign: str | None,
) -> dict[tuple[Stage, int], int]:
    """Return how many accounts were at each stage at ``as_of`` with each ``mask`` reached.

    Only captured accounts (a history entry by ``as_of``) count. Accounts whose every step is
    at or before ``as_of`` (``settled_at``) are counted from the ``(last_stage, mask)`` index;
    the rest, as they were at ``as_of``.
    """
    filters, params = "", []
    if channel is not None:
        filters += " AND channel = ?"
        params.append(channel)
    if campaign is not None:
        filters += " AND campaign = ?"
        params.append(dialect.text(campaign))
    counts: dict[tuple[Stage, int], int] = {}

    def count(rows: Iterable[Sequence[Any]], sign: int) -> None:
        for stage, mask, number in rows:
            if stage is None:  # pragma: no cover - a captured account has a stage
                continue
            key = (Stage(stage), int(mask))
            counts[key] = counts.get(key, 0) + sign * int(number)

    count(fetch(tables.sql(_GROUPS_ALL.replace("{filters}", filters)), params), 1)
    unsettled = _UNSETTLED.replace("{filters}", filters)
    count(fetch(tables.sql(unsettled), [as_of, *params]), -1)
    at = _GROUPS_AT.replace("{filters}", filters.replace(" AND ", " AND a."))
    count(fetch(tables.sql(at), [as_of] * 5 + params), 1)
    return {key: number for key, number in counts.items() if number}


_CREATED_DAY: Final = day_expression("created_at")
_QUALIFIED_DAY: Final = day_expression("first_qualified_at")
_LEADS = (
    f"SELECT {_CREATED_DAY}, channel, count(*) FROM {{accounts}} "  # noqa: S608 - our own names
    f"WHERE channel IS NOT NULL{{until}} GROUP BY {_CREATED_DAY}, channel"
)
_LEADS_ON = (
    f"SELECT {_CREATED_DAY}, channel, count(*) FROM {{accounts}} "  # noqa: S608 - our own names
    f"WHERE {_CREATED_DAY} = ? AND created_at <= ? AND channel IS NOT NULL "
    f"GROUP BY {_CREATED_DAY}, channel"
)
_QUALIFIED = (
    f"SELECT {_QUALIFIED_DAY}, count(*) FROM {{accounts}} "  # noqa: S608 - our own names
    f"WHERE first_qualified_at IS NOT NULL{{until}} GROUP BY {_QUALIFIED_DAY}"
)


def lead_counts(
    fetch: Fetch, tables: Tables, as_of: int | None
) -> tuple[list[tuple[date, str, int]], list[tuple[date, int]]]:
    """Return the leads captured per UTC day and channel, and those first qualified per day.

    Only accounts captured (``created_at``) by ``as_of`` count, and their qualification only
    if it was by ``as_of`` too (``None``: no bound).
    """
    if as_of is None:
        leads = fetch(tables.sql(_LEADS.replace("{until}", "")), [])
        qualified = fetch(tables.sql(_QUALIFIED.replace("{until}", "")), [])
    else:
        day = as_of // DAY
        before = f" AND {_CREATED_DAY} < ?"
        leads = fetch(tables.sql(_LEADS.replace("{until}", before)), [day])
        leads += fetch(tables.sql(_LEADS_ON), [day, as_of])
        qualified = fetch(
            tables.sql(
                _QUALIFIED.replace("{until}", " AND first_qualified_at <= ? AND created_at <= ?")
            ),
            [as_of, as_of],
        )
    return (
        [(day_date(day), channel, int(number)) for day, channel, number in leads],
        [(day_date(day), int(number)) for day, number in qualified],
    )


# A completed stay: a change and the next one, unless a change at or before it (but the first)
# is after ``as_of`` (the pure report reads the history in order and stops there). Two moments
# in one zone are apart by their wall times, as Python subtracts them (see zone_of).
_STAYS = (
    "SELECT s.to_stage, CASE WHEN s.zone = n.zone THEN n.wall - s.wall ELSE n.at - s.at END "
    "FROM {changes} s "
    "JOIN {changes} n ON n.account_id = s.account_id AND n.position = s.position + 1 "
    "JOIN {accounts} a ON a.id = s.account_id "
    "WHERE a.settled_at <= ? OR n.position < coalesce((SELECT min(c.position) FROM {changes} c "
    "WHERE c.account_id = s.account_id AND c.at > ?), 2147483647) "
    "UNION ALL SELECT a.captured_stage, CASE WHEN a.captured_zone = n.zone "
    "THEN n.wall - a.captured_wall ELSE n.at - a.captured_at END "
    "FROM {changes} n JOIN {accounts} a ON a.id = n.account_id "
    "WHERE n.position = 1 AND (a.settled_at <= ? OR n.at <= ?)"
)


def stays(fetch: Fetch, tables: Tables, as_of: int) -> dict[Stage, list[timedelta]]:
    """Return the lengths of the stays in each stage completed by ``as_of``."""
    lengths: dict[Stage, list[timedelta]] = {}
    for stage, length in fetch(tables.sql(_STAYS), [as_of] * 4):
        lengths.setdefault(Stage(stage), []).append(timedelta(microseconds=int(length)))
    return lengths


# Around a DST change, a moment in a bound's own zone may come before the bound by its wall time
# but after it by its instant (or the other way round); Python compares them by wall time. Such
# a moment lies within two days of the bound (offsets differ by less), found through the
# partial indexes on (zone, at).
_SPAN: Final = 2 * DAY
_AMBIGUOUS = (
    "SELECT 1 FROM {purchases} WHERE zone = ? AND at BETWEEN ? AND ? "
    "AND ((wall < ?) <> (at < ?) OR (wall > ?) <> (at > ?)) "
    "UNION ALL SELECT 1 FROM {changes} WHERE zone = ? AND at BETWEEN ? AND ? "
    "AND ((wall < ?) <> (at < ?) OR (wall > ?) <> (at > ?)) "
    "UNION ALL SELECT 1 FROM {accounts} WHERE created_zone = ? "
    "AND created_at BETWEEN ? AND ? AND ((created_wall < ?) <> (created_at < ?) "
    "OR (created_wall > ?) <> (created_at > ?)) "
    "UNION ALL SELECT 1 FROM {accounts} WHERE captured_zone = ? "
    "AND captured_at BETWEEN ? AND ? AND ((captured_wall < ?) <> (captured_at < ?) "
    "OR (captured_wall > ?) <> (captured_at > ?)) LIMIT 1"
)


def ambiguous(fetch: Fetch, tables: Tables, bounds: Iterable[datetime | None]) -> bool:
    """Return whether a stored moment compares with one of ``bounds`` otherwise by wall time.

    Only a bound in a ``ZoneInfo`` zone can (stored moments of that zone share its object);
    then SQL, which compares instants, cannot answer exactly, and the report is run over the
    accounts instead.
    """
    for bound in bounds:
        if bound is None:
            continue
        zone, wall = zone_of(bound)
        if zone is None or wall is None:
            continue
        at = created_key(bound)
        one = [zone, at - _SPAN, at + _SPAN, wall, at, wall, at]
        if fetch(tables.sql(_AMBIGUOUS), one * 4):
            return True
    return False


#: The accounts rows that may hold referrals, as SQLite selects them (``id``, ``data``,
#: ``mask``): every account holding some has the key in its JSON (a written account leaves
#: empty lists out). An attribute of that name passes too, so the referrals are decoded from
#: the rows found. A partial index holds exactly these rows (schema 5).
REFERRERS: Final = "SELECT id, data, mask FROM accounts WHERE instr(data, '\"referrals\":') > 0"
_BOUGHT = f"SELECT count(*) FROM {{accounts}} WHERE (mask & {_CUSTOMER}) <> 0"  # noqa: S608 - our names
_CHUNK = 500


def referral_counts(
    fetch: Fetch, tables: Tables, dialect: Dialect, referrers: str
) -> tuple[dict[str, list[str]], set[str], int]:
    """Return what :func:`salesprocess.reports.referral_report` takes, counted in SQL.

    The accounts holding referrals are the rows passing ``referring`` (the adapter's form of
    :data:`REFERRING`) whose JSON has some; an account has bought when its ``mask`` has the
    customer bit (its first purchase sets it). ``bought`` holds the new referrals that bought.
    """
    referred_by: dict[str, list[str]] = {}
    referrer_bought: dict[str, bool] = {}
    for key, data, mask in fetch(referrers, []):
        referrals = referrals_of(data)
        if not referrals:
            continue  # the key was an attribute's
        account_id = dialect.untext(key)
        referred_by[account_id] = [r.account_id for r in referrals if r.new]
        referrer_bought[account_id] = bool(mask & _CUSTOMER)
    won = sorted({i for ids in referred_by.values() for i in ids})
    bought: set[str] = set()
    for start in range(0, len(won), _CHUNK):
        chunk = won[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        query = tables.sql(
            f"SELECT id FROM {{accounts}} WHERE id IN ({marks}) AND (mask & {_CUSTOMER}) <> 0"  # noqa: S608 - marks
        )
        found = fetch(query, [dialect.text(i) for i in chunk])
        bought.update(dialect.untext(key) for (key,) in found)
    (everyone,) = fetch(tables.sql(_BOUGHT), [])[0]
    referrers_only = sum(1 for did in referrer_bought.values() if not did)
    won_counted = sum(1 for i in won if i in bought or i in referrer_bought)
    return referred_by, bought, int(everyone) + referrers_only - won_counted
