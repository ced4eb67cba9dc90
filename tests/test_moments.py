"""Moments at the calendar's edges: refused at the boundary, so no account is ever stuck."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

import salesprocess as sp
from salesprocess.clock import EARLIEST, LATEST, require_aware

EDGES = [
    datetime.max.replace(tzinfo=timezone(timedelta(hours=-5))),
    datetime.max.replace(tzinfo=UTC),
    datetime.min.replace(tzinfo=timezone(timedelta(hours=5))),
    datetime.min.replace(tzinfo=UTC),
]


class BrokenZone(tzinfo):
    """A time zone that cannot say its offset."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        raise RuntimeError("no offset today")


@pytest.mark.parametrize("moment", [*EDGES, datetime(2026, 1, 5, tzinfo=BrokenZone())])
def test_edge_moments_are_refused_naming_the_field(moment):
    """datetime.max or .min with any offset, or a zone that fails: ValidationError."""
    with pytest.raises(sp.ValidationError) as info:
        require_aware(moment, "at")
    assert info.value.field == "at"


@given(st.datetimes(timezones=st.just(UTC)))
def test_every_accepted_moment_converts_and_steps_a_day(moment):
    """What require_aware accepts can go to UTC and a day either way; the rest is refused."""
    try:
        require_aware(moment)
    except sp.ValidationError:
        assert not EARLIEST <= moment <= LATEST
        return
    assert (moment.astimezone(UTC) + timedelta(days=1)) - timedelta(days=2) < moment


@pytest.mark.parametrize("moment", EDGES)
def test_a_command_at_an_edge_stores_nothing_and_the_account_stays_usable(moment):
    """The purchase at the edge is refused; the next ordinary one is recorded."""
    sales = sp.SalesProcess()
    lead = sales.capture_lead("Acme", email="a@acme.example", channel="referral")
    acct = sales.qualify(lead.id, override="walk-in")
    with pytest.raises(sp.ValidationError):
        sales.record_purchase(acct.id, sp.Money("1.00", "EUR"), at=moment)
    assert sales.get(acct.id) == acct
    assert sales.record_purchase(acct.id, sp.Money("1.00", "EUR")).stage is sp.Stage.CUSTOMER
