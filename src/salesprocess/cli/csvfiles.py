"""CSV files in and out: exports from spreadsheets and shops, read with line numbers.

A file is read whole before anything is stored: an encoding fault, a missing header or an
empty file is an error naming the file (and the line), never half an import.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import attrs

from salesprocess.errors import ValidationError
from salesprocess.money import Money

__all__ = [
    "PURCHASE_FIELDS",
    "Rejected",
    "Sheet",
    "lead_row",
    "moment",
    "purchase_row",
    "read_rows",
    "write_rejects",
]


@attrs.frozen
class Rejected:
    """A row of a CSV file that is not imported: its ``line``, the ``reason``, its ``values``."""

    line: int
    reason: str
    values: tuple[str, ...]


@attrs.frozen
class Sheet:
    """A CSV file as read: its ``header``, its ``rows`` and the ``lines`` they start on.

    The ``broken`` rows cannot be rows (more or fewer values than the header has columns):
    each is a bad row of its own, listed with the others, not the end of the import.
    """

    header: tuple[str, ...]
    rows: list[dict[str, str]]
    lines: list[int]
    broken: list[Rejected]


_LEAD_FIELDS = ("name", "email", "phone", "campaign")

#: The columns of a purchases file; any other is refused (a misnamed one must not vanish).
PURCHASE_FIELDS = ("account_id", "email", "phone", "name", "amount", "currency", "at", "reference")


def lead_row(row: dict[str, str]) -> dict[str, object]:
    """Return a CSV row as a lead: its lead fields, and each other non-empty column an attribute."""
    lead: dict[str, object] = {
        key: value.strip() or None for key, value in row.items() if key in _LEAD_FIELDS
    }
    attributes = {k: v.strip() for k, v in row.items() if k not in _LEAD_FIELDS and v.strip()}
    if attributes:
        lead["attributes"] = attributes
    if lead.get("campaign") is None:
        lead.pop("campaign", None)
    return lead


def moment(text: str) -> datetime | str:
    """Parse a CSV or option date: an ISO date (midnight UTC) or an ISO datetime with offset.

    Anything else comes back as the reason it is refused, in the spreadsheet's terms.
    """
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return f"{text!r} is no date: write 2026-03-02, or 2026-03-02T16:30:00+01:00"
    if parsed.utcoffset() is None:
        return f"{text!r} has no offset from UTC: add one (2026-03-02T16:30:00+01:00, or Z)"
    return parsed


def purchase_row(row: dict[str, str], currency: str | None) -> dict[str, object] | str:
    """Return a CSV row as a purchase row, or the reason its amount or date cannot be one."""
    fields: dict[str, object] = {
        key: value.strip() or None
        for key, value in row.items()
        if key in ("account_id", "email", "phone", "name")
    }
    # Kept as written, empty too: the library refuses an empty reference with the row's line,
    # where None would record the row again at every re-import of the file.
    fields["reference"] = row.get("reference", "").strip()
    text = row.get("amount", "").strip()
    code = (row.get("currency") or currency or "").strip()
    if not code:
        return f"amount {text!r} has no currency: add a currency column, or give --currency"
    try:
        fields["amount"] = Money(Decimal(text), code)
    except InvalidOperation:
        return f"amount {text!r} is no number: write it as 1234.50"
    except ValidationError as error:
        return f"amount {text} {code}: {error}"
    at = moment(row.get("at", ""))
    if isinstance(at, str):
        return f"at {at}"
    fields["at"] = at
    return fields


def read_rows(
    path: Path,
    *,
    encoding: str,
    required: Sequence[Sequence[str]],
    renames: Mapping[str, str],
    allowed: Sequence[str] | None = None,
) -> Sheet:
    """Return the CSV file at ``path`` as a :class:`Sheet`.

    Columns are renamed by ``renames``. ``required`` lists groups of fields of which the
    header must hold at least one each (``[["name"], ["email", "phone"]]``). UTF-8 files may
    start with a byte-order mark. With ``allowed``, any other column is refused.
    Raises ``ValidationError`` naming the file (and line) for what cannot be read: the file,
    its encoding, its header, a field the ``csv`` module refuses, no row after the header.
    """
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ValidationError(f"{path}: cannot read it: {error.strerror}", field="file") from None
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        text = raw.decode(codec)
    except LookupError:
        raise ValidationError(f"unknown encoding {encoding!r}", field="encoding") from None
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ValidationError(
            f"{path}:{line}: not {encoding} (byte {raw[error.start]:#04x}); "
            "give the file's encoding with --encoding",
            field="file",
        ) from None
    if not text.strip():
        raise ValidationError(f"{path}: the file is empty", field="file")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return _rows(path, reader, required=required, renames=renames, allowed=allowed)
    except csv.Error as error:  # a field over the csv module's limit, a stray quote
        raise ValidationError(f"{path}:{reader.line_num}: {error}", field="file") from None


def _rows(
    path: Path,
    reader: Any,
    *,
    required: Sequence[Sequence[str]],
    renames: Mapping[str, str],
    allowed: Sequence[str] | None,
) -> Sheet:
    header = [renames.get(name.strip(), name.strip()) for name in next(reader)]
    if allowed is not None and set(header) - set(allowed):
        unknown = ", ".join(sorted(set(header) - set(allowed)))
        raise ValidationError(
            f"{path}:1: unknown column {unknown}; the columns are {', '.join(allowed)} "
            "(rename one with --map COLUMN=FIELD)",
            field="header",
        )
    for group in required:
        if not set(group) & set(header):
            wanted = " or ".join(group)
            raise ValidationError(
                f"{path}:1: the header has no {wanted} column (it has {', '.join(header)}); "
                "name one with --map COLUMN=FIELD",
                field="header",
            )
    sheet = Sheet(tuple(header), [], [], [])
    while True:
        start = reader.line_num + 1  # a quoted field may run over several lines
        values = next(reader, None)
        if values is None:
            break
        if not "".join(values).strip():  # a blank line, or one of empty fields
            continue
        if len(values) != len(header):
            reason = f"{len(values)} values for {len(header)} columns"
            sheet.broken.append(Rejected(start, reason, tuple(values)))
            continue
        sheet.rows.append(dict(zip(header, values, strict=True)))
        sheet.lines.append(start)
    if not sheet.rows and not sheet.broken:
        raise ValidationError(f"{path}: the file has a header and no rows", field="file")
    return sheet


def write_rejects(path: Path, header: Sequence[str], rejected: Iterable[Rejected]) -> int:
    """Write the ``rejected`` rows, each with its line and reason, to the CSV file ``path``.

    The columns are ``line``, ``reason``, then the file's own (``header``); delete the first
    two before importing the fixed file again.
    """
    count = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["line", "reason", *header])
        for row in rejected:
            writer.writerow([row.line, row.reason, *row.values])
            count += 1
    return count
