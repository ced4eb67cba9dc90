"""Bulk loads: a list of leads, or a shop's or ERP's export of purchases, a batch at a time.

Each batch is one unit of work (one transaction, every account of the batch loaded once and
written once) deciding by the very rules of a single ``record_purchase``. By default a load is
all or nothing: every bad row is reported with its position and reason
(:class:`~salesprocess.errors.BadRows`) and nothing is stored; with ``all_or_nothing=False``
the good rows are stored and the bad ones come back in the result.

A lead whose email or phone is known is recognised as that account (and a detail it lacked is
added), never doubled, so loading the same list twice changes nothing. A purchase row for an
unknown customer creates it, as a shop's export holds walk-in buyers: the account
is captured and qualified with the reason in its history
(:data:`~salesprocess.commands.purchases.WALK_IN`), then its purchases make it a customer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import Final, TypeVar

import attrs

from salesprocess.account import Account, Channel
from salesprocess.checks import require_bool, require_instance, require_int
from salesprocess.commands.leads import capture_many
from salesprocess.commands.purchases import Loaded, PurchaseRow, record_purchases
from salesprocess.currencies import CurrencyRule
from salesprocess.errors import BadRows, NotFound, RowError, SalesProcessError, ValidationError
from salesprocess.lifecycle import Transitions
from salesprocess.unit_of_work import Atomic, Steps, UnitOfWork, Work, call

__all__ = [
    "BATCH",
    "LeadImport",
    "Progress",
    "PurchaseImport",
    "import_leads",
    "import_purchases",
    "lead_import",
    "purchase_import",
]

_Done = TypeVar("_Done")

#: Rows per batch (per transaction).
BATCH: Final = 1000

#: ``progress(done, total)``: how many of the ``total`` rows an import has decided so far.
Progress = Callable[[int, int], None]


def _progress(progress: object) -> Progress:
    if progress is None:
        return _quiet
    if not callable(progress):
        raise ValidationError(
            f"progress must be a callable or None, not {type(progress).__name__}",
            field="progress",
        )
    return progress


def _quiet(_done: int, _total: int) -> None:
    """Tell nobody."""


@attrs.frozen
class PurchaseImport:
    """What an import stored, and the rows it refused.

    ``rows`` read, purchases ``recorded``, ``duplicates`` (a known reference, recorded once),
    the ids of the customers ``created``, and the ``rejected`` rows.
    """

    rows: int
    recorded: int
    duplicates: int
    created: tuple[str, ...]
    rejected: tuple[RowError, ...]


def _parsed(
    rows: Iterable[PurchaseRow | Mapping[str, object]],
) -> Iterator[tuple[int, PurchaseRow] | RowError]:
    for position, row in enumerate(rows, start=1):
        if isinstance(row, PurchaseRow):
            yield position, row
            continue
        try:
            if not isinstance(row, Mapping):
                raise TypeError(f"a row is a PurchaseRow or a mapping, not {type(row).__name__}")
            yield position, PurchaseRow(**{str(k): v for k, v in row.items()})  # type: ignore[arg-type]
        except SalesProcessError as error:
            yield RowError(position, str(error), getattr(error, "field", None))
        except TypeError as error:  # an unknown or missing column
            yield RowError(position, str(error))


def _batches(
    rows: list[tuple[int, PurchaseRow]], size: int
) -> Steps[list[list[tuple[int, PurchaseRow]]]]:
    """Cut ``rows`` into batches of about ``size`` rows, each customer's rows in one batch.

    An export lists purchases by date: batched as it comes, a customer would be written again
    in every batch it appears in. Rows are grouped by the account their key finds (a customer
    named by id in one row and by email in another is one customer), so that each customer's
    purchases are decided together, in time order.
    """
    by_customer: dict[object, list[tuple[int, PurchaseRow]]] = {}
    found: dict[tuple[str, str], object] = {}
    for entry in rows:
        key = entry[1].key
        if key not in found:
            account = yield from _stored(key)
            found[key] = key if account is None else account.id
        by_customer.setdefault(found[key], []).append(entry)
    batches: list[list[tuple[int, PurchaseRow]]] = []
    batch: list[tuple[int, PurchaseRow]] = []
    for entries in by_customer.values():
        batch.extend(entries)
        if len(batch) >= size:
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)
    return batches


def _stored(key: tuple[str, str]) -> Steps[Account | None]:
    kind, value = key
    with contextlib.suppress(NotFound):
        account_id = value if kind == "id" else (yield call("find_id", **{kind: value}))
        return None if account_id is None else (yield call("get", account_id))
    return None


def _load(rows: list[tuple[int, PurchaseRow]], new_id: Callable[[], str]) -> Steps[Loaded]:
    known: dict[tuple[str, str], Account] = {}
    new_ids: dict[tuple[str, str], str] = {}
    for _, row in rows:
        key = row.key
        if key in known or key in new_ids:
            continue
        found = yield from _stored(key)
        if found is not None:
            known[key] = found
        else:
            new_ids[key] = key[1] if key[0] == "id" else new_id()
    return Loaded(known, new_ids)


def import_purchases(
    uow: UnitOfWork,
    rows: Iterable[PurchaseRow | Mapping[str, object]],
    *,
    transitions: Transitions,
    new_id: Callable[[], str],
    channel: Channel | str = Channel.INBOUND_INQUIRY,
    all_or_nothing: bool = True,
    batch_size: int = BATCH,
    progress: Progress | None = None,
    currency: CurrencyRule | None = None,
) -> PurchaseImport:
    """Store ``rows`` a batch at a time: run :func:`purchase_import` with ``uow``."""
    return uow.drive(
        purchase_import(
            uow, rows, transitions=transitions, new_id=new_id, channel=channel,
            all_or_nothing=all_or_nothing, batch_size=batch_size, progress=progress,
            currency=currency,
        )
    )  # fmt: skip


def purchase_import(
    work: Work,
    rows: Iterable[PurchaseRow | Mapping[str, object]],
    *,
    transitions: Transitions,
    new_id: Callable[[], str],
    channel: Channel | str = Channel.INBOUND_INQUIRY,
    all_or_nothing: bool = True,
    batch_size: int = BATCH,
    progress: Progress | None = None,
    currency: CurrencyRule | None = None,
) -> Steps[PurchaseImport]:
    """Return the steps that store ``rows`` (purchase rows, or mappings of them) by batches.

    The rows are read and checked when this is called, before any step runs.

    Raises :class:`~salesprocess.errors.BadRows` listing every bad row, storing nothing, unless
    ``all_or_nothing`` is false. ``channel`` is where walk-in customers are said to come from.
    ``progress(done, total)`` is told of the rows decided, once read and after each batch.
    ``currency`` is the rule a row's currency must keep (default :class:`CurrencyRule`: one
    currency per account): a row it refuses is a bad row, its error a ``CurrencyMismatch``.
    """
    rule = (
        CurrencyRule() if currency is None else require_instance(currency, "currency", CurrencyRule)
    )
    channel = Channel.parse(channel)
    require_bool(all_or_nothing, "all_or_nothing")
    require_int(batch_size, "batch_size", low=1)
    told = _progress(progress)
    parsed = list(_parsed(rows))
    # A malformed row does not stop the others being decided (in a block then rolled back):
    # the error lists every bad row, those the rules refuse too, for one round of fixing.
    bad = [row for row in parsed if isinstance(row, RowError)]
    good = [row for row in parsed if not isinstance(row, RowError)]

    def store() -> Steps[PurchaseImport]:
        recorded = duplicates = 0
        created: list[str] = []
        rejected: list[RowError] = list(bad)
        done = len(bad)
        told(done, len(parsed))
        for batch in (yield from _batches(good, batch_size)):
            outcome = yield from work.attempts(
                partial(_load, batch, new_id),
                partial(
                    record_purchases,
                    transitions=transitions,
                    rows=batch,
                    channel=channel,
                    currency=rule,
                ),
                at=None,
            )
            recorded += outcome.recorded
            duplicates += outcome.duplicates
            created.extend(outcome.created)
            rejected.extend(outcome.rejected)
            done += len(batch)
            told(done, len(parsed))
        rejected.sort(key=lambda row: row.position)
        if rejected and all_or_nothing:
            raise BadRows("purchase import", tuple(rejected))
        return PurchaseImport(len(parsed), recorded, duplicates, tuple(created), tuple(rejected))

    return _in_block(store(), all_or_nothing)


def _in_block(steps: Steps[_Done], all_or_nothing: bool) -> Steps[_Done]:
    """Run ``steps`` in one ``atomic()`` block when the load is all or nothing."""
    if all_or_nothing:
        done: _Done = yield Atomic(steps)
        return done
    return (yield from steps)


@attrs.frozen
class LeadImport:
    """What a lead import stored, and the rows it refused.

    ``rows`` read, leads ``captured`` new, ``known`` ones recognised (never doubled), and the
    ``rejected`` rows.
    """

    rows: int
    captured: int
    known: int
    rejected: tuple[RowError, ...]


#: The fields of a lead row; any other key is refused (a misspelt column must not vanish).
LEAD_FIELDS: Final = ("name", "email", "phone", "campaign", "attributes", "at")
_LEAD_KEYS: Final = frozenset(LEAD_FIELDS)


def _lead(
    position: int, row: Mapping[str, object], build: Callable[..., Account]
) -> tuple[int, Account] | RowError:
    try:
        if type(row) is not dict and not isinstance(row, Mapping):
            raise TypeError(f"a row is a mapping, not {type(row).__name__}")
        if not _LEAD_KEYS.issuperset(row):
            unknown = sorted(map(str, set(row) - _LEAD_KEYS))
            raise TypeError(f"unknown field {', '.join(unknown)}")
        return position, build(**row)
    except SalesProcessError as error:
        return RowError(position, str(error), getattr(error, "field", None))
    except TypeError as error:
        return RowError(position, str(error))


def _known_contacts(
    work: Work, leads: list[tuple[int, Account]]
) -> Steps[dict[tuple[str, str], Account]]:
    """Return the stored accounts holding the batch's emails and phones, two queries a batch.

    Only the contacts someone holds cost a read of their accounts, one batch read when the
    repository offers it (:class:`~salesprocess.storage.protocol.ReadsMany`): a new list costs
    its look-ups, a list read again one more query.
    """
    holders: dict[str, dict[str, str]] = {}
    for kind in ("email", "phone"):
        values = {v for _, lead in leads if (v := getattr(lead, kind))}
        holders[kind] = yield call("find_ids", kind, values)
    ids = {account_id for held in holders.values() for account_id in held.values()}
    if not ids:
        return {}
    accounts: dict[str, Account] = {}
    if work.reads_many:  # one read for the batch, not one per account
        accounts = yield call("get_many", ids)
    else:
        for account_id in ids:
            with contextlib.suppress(NotFound):  # removed since: nobody holds it
                accounts[account_id] = yield call("get", account_id)
    return {
        (kind, value): accounts[account_id]
        for kind, held in holders.items()
        for value, account_id in held.items()
        if account_id in accounts
    }


def import_leads(
    uow: UnitOfWork,
    rows: Iterable[Mapping[str, object]],
    *,
    build: Callable[..., Account],
    all_or_nothing: bool = True,
    batch_size: int = BATCH,
    progress: Progress | None = None,
) -> LeadImport:
    """Capture the leads of ``rows`` a batch at a time: run :func:`lead_import` with ``uow``."""
    return uow.drive(
        lead_import(
            uow, rows, build=build, all_or_nothing=all_or_nothing, batch_size=batch_size,
            progress=progress,
        )
    )  # fmt: skip


def lead_import(
    work: Work,
    rows: Iterable[Mapping[str, object]],
    *,
    build: Callable[..., Account],
    all_or_nothing: bool = True,
    batch_size: int = BATCH,
    progress: Progress | None = None,
) -> Steps[LeadImport]:
    """Return the steps that capture the leads of ``rows`` (mappings of :data:`LEAD_FIELDS`).

    ``build(**row)`` makes the validated lead of a row (the facade's, with the channel and
    campaign given). Raises :class:`~salesprocess.errors.BadRows` listing every bad row,
    storing nothing, unless ``all_or_nothing`` is false. ``progress(done, total)`` is told of
    the rows decided, once read and after each batch.
    """
    require_bool(all_or_nothing, "all_or_nothing")
    require_int(batch_size, "batch_size", low=1)
    told = _progress(progress)
    parsed = [_lead(position, row, build) for position, row in enumerate(rows, start=1)]
    rejected = [row for row in parsed if isinstance(row, RowError)]  # listed with the others
    good = [row for row in parsed if not isinstance(row, RowError)]

    def store() -> Steps[LeadImport]:
        captured = known = 0
        told(len(rejected), len(parsed))
        for start in range(0, len(good), batch_size):
            batch = good[start : start + batch_size]
            outcome = yield from work.attempts(
                partial(_known_contacts, work, batch), partial(capture_many, leads=batch), at=None
            )
            captured += outcome.captured
            known += outcome.known
            rejected.extend(outcome.rejected)
            told(len(parsed) - len(good) + start + len(batch), len(parsed))
        rejected.sort(key=lambda row: row.position)
        if rejected and all_or_nothing:
            raise BadRows("lead import", tuple(rejected))
        return LeadImport(len(parsed), captured, known, tuple(rejected))

    return _in_block(store(), all_or_nothing)
