"""Time: aware datetimes only, and a clock the caller can replace.

A naive datetime has no place on a sales timeline that spans offices and time zones, so every
boundary refuses one. Commands take an explicit ``at=``; when it is omitted the service asks
its :class:`Clock`, which tests replace with a :class:`FixedClock`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final, Protocol, runtime_checkable

import attrs

from salesprocess.checks import shown
from salesprocess.errors import ValidationError

__all__ = ["EARLIEST", "LATEST", "Clock", "FixedClock", "SystemClock", "require_aware", "utc_day"]


#: The moments the library takes: a day inside both ends of ``datetime``'s calendar, in UTC,
#: so that converting to UTC and a day's arithmetic are defined for every one it accepted.
EARLIEST: Final = datetime.min.replace(tzinfo=UTC) + timedelta(days=2)
LATEST: Final = datetime.max.replace(tzinfo=UTC) - timedelta(days=2)


def require_aware(value: object, field: str = "at") -> datetime:
    """Return ``value`` if it is a timezone-aware datetime; raise ``ValidationError`` if not.

    The message names the field and shows how to build an aware datetime. A moment within two
    days of the calendar's ends (``datetime.max`` with an offset, say) is refused too: an
    account stamped with it could never take another record.

    >>> require_aware(datetime(2026, 1, 5))
    Traceback (most recent call last):
    ...
    salesprocess.errors.ValidationError: at=datetime.datetime(2026, 1, 5, 0, 0) is naive: ...
    """
    if not isinstance(value, datetime):
        raise ValidationError(
            f"{field} must be a timezone-aware datetime, not {type(value).__name__}", field=field
        )
    try:
        offset = None if value.tzinfo is None else value.utcoffset()
        inside = offset is None or EARLIEST <= value <= LATEST
    except Exception:  # a zone's own code failing makes a bad value, named below
        offset, inside = timedelta(0), False
    if offset is None:
        raise ValidationError(
            f"{field}={shown(value)} is naive: pass a timezone-aware datetime, "
            "e.g. datetime(..., tzinfo=timezone.utc)",
            field=field,
        )
    if not inside:
        raise ValidationError(
            f"{field}={shown(value)} is within two days of the calendar's ends (or its "
            "time zone cannot say its offset): no sales record is dated there",
            field=field,
        )
    return value


def utc_day(moment: datetime) -> date:
    """Return the UTC calendar day of an aware datetime: the day repeat business is judged by."""
    return moment.astimezone(UTC).date()


@runtime_checkable
class Clock(Protocol):
    """Anything that tells the current time as an aware datetime."""

    def now(self) -> datetime:
        """Return the current moment, timezone-aware."""
        ...


class SystemClock:
    """The real clock, in UTC."""

    def now(self) -> datetime:
        """Return the current moment in UTC."""
        return datetime.now(UTC)


@attrs.define
class FixedClock:
    """A clock that stands still until told to move: deterministic tests and simulations.

    >>> clock = FixedClock(datetime(2026, 1, 5, tzinfo=UTC))
    >>> clock.advance(days=2).date()
    datetime.date(2026, 1, 7)
    """

    current: datetime = attrs.field(validator=lambda _i, _a, v: require_aware(v, "current"))

    def now(self) -> datetime:
        """Return the clock's current moment."""
        return self.current

    def advance(self, **delta: float) -> datetime:
        """Move the clock forward by ``timedelta(**delta)`` and return the new moment."""
        try:
            step = timedelta(**delta)
            moved = self.current + step
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValidationError(
                f"cannot advance the clock by {shown(delta)}: {exc}", field="delta"
            ) from None
        if step < timedelta(0):
            raise ValidationError("a clock does not run backwards", field="delta")
        self.current = require_aware(moved, "current")
        return self.current
