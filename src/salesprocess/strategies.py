"""Hypothesis strategies for salesprocess values, for your own property-based tests.

Every strategy returns a ``SearchStrategy`` of a valid value; ``accounts()`` builds accounts at
any stage by replaying real commands through the lifecycle, so a generated account always has
a history that explains its stage. Some accounts also carry what customer service and referring
add: preferences and assets at any stage; a referral code, referral requests and cards once the
account has bought; referrals on a referrer.

>>> from salesprocess import strategies
>>> from hypothesis import given
>>> @given(strategies.money(currency="EUR"))
... def test_money_is_never_negative(money):
...     assert money.amount >= 0
>>> test_money_is_never_negative()

Needs the ``testing`` extra: ``pip install 'salesprocess[testing]'``.
"""

from __future__ import annotations

import string
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

try:
    from hypothesis import strategies as st
except ImportError as error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "salesprocess.strategies needs Hypothesis: pip install 'salesprocess[testing]'"
    ) from error

from salesprocess.account import (
    Account,
    Asset,
    Channel,
    HistoryEntry,
    Preference,
    Purchase,
    Referral,
    ReferralCards,
    ReferralRequest,
    Source,
)
from salesprocess.errors import ValidationError
from salesprocess.lifecycle import Lifecycle, Transitions
from salesprocess.money import ISO_4217_CODES, Money
from salesprocess.referral_codes import CODE_ALPHABET
from salesprocess.stage import Stage

__all__ = [
    "accounts",
    "assets",
    "attributes",
    "aware_datetimes",
    "currencies",
    "emails",
    "json_values",
    "money",
    "phones",
    "preferences",
    "referral_codes",
    "sources",
]

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_SAFE_TEXT = st.text(
    string.ascii_letters + string.digits + " -'&.", min_size=1, max_size=40
).filter(str.strip)


def aware_datetimes(
    min_value: datetime = _EPOCH, max_value: datetime = datetime(2100, 1, 1, tzinfo=UTC)
) -> st.SearchStrategy[datetime]:
    """Timezone-aware datetimes (UTC and fixed offsets) between the bounds (any offsets)."""
    naive = st.datetimes(
        min_value=min_value.astimezone(UTC).replace(tzinfo=None),
        max_value=max_value.astimezone(UTC).replace(tzinfo=None),
    )
    return st.builds(
        lambda moment, offset: moment.replace(tzinfo=UTC).astimezone(offset),
        naive,
        st.sampled_from([UTC, *(_offset(h) for h in (-8, -5, 1, 2, 9))]),
    )


def _offset(hours: int) -> object:
    from datetime import timezone  # noqa: PLC0415

    return timezone(timedelta(hours=hours))


def currencies() -> st.SearchStrategy[str]:
    """ISO 4217 currency codes."""
    return st.sampled_from(sorted(ISO_4217_CODES))


def money(
    *,
    currency: str | None = None,
    min_value: Decimal = Decimal(0),
    max_value: Decimal = Decimal(10**9),
) -> st.SearchStrategy[Money]:
    """Money with at most two decimal places, in ``currency`` or any ISO 4217 currency.

    The bounds must be amounts :class:`~salesprocess.money.Money` holds (below ``1E+64`` in
    size): a ``ValidationError`` names the one that is not, before anything is drawn.
    """
    for field, bound in (("min_value", min_value), ("max_value", max_value)):
        try:
            Money(bound, "EUR")
        except ValidationError as error:
            raise ValidationError(f"money({field}=...): {error}", field=field) from None
    amounts = st.decimals(min_value=min_value, max_value=max_value, places=2)
    codes = st.just(currency) if currency is not None else currencies()
    return st.builds(Money, amounts, codes)


def emails() -> st.SearchStrategy[str]:
    """Addresses in normalised form (lower case)."""
    part = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)
    return st.builds(
        lambda user, host, tld: f"{user}@{host}.{tld}",
        part,
        part,
        st.sampled_from(["com", "example", "de"]),
    )


def phones() -> st.SearchStrategy[str]:
    """Phone numbers in normalised form: ``+`` and 8 to 15 digits, or 5 to 15 digits."""
    return st.one_of(
        st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True),
        st.from_regex(r"0[0-9]{4,14}", fullmatch=True),
    )


def sources() -> st.SearchStrategy[Source]:
    """Lead sources of every channel (referrals name a referrer id)."""
    campaign = st.none() | _SAFE_TEXT
    return st.one_of(
        st.builds(
            Source, st.sampled_from([c for c in Channel if c is not Channel.REFERRAL]), campaign
        ),
        st.builds(Source, st.just(Channel.REFERRAL), campaign, st.uuids().map(lambda u: u.hex)),
    )


def referral_codes() -> st.SearchStrategy[str]:
    """Referral codes in normalised form: 8 characters of ``CODE_ALPHABET``, as generated."""
    return st.text(CODE_ALPHABET, min_size=8, max_size=8)


def preferences(
    min_value: datetime = _EPOCH, max_value: datetime = datetime(2100, 1, 1, tzinfo=UTC)
) -> st.SearchStrategy[Preference]:
    """Preferences learned between the bounds: a key, its answer and sometimes the evidence."""
    return st.builds(
        Preference,
        st.sampled_from(["equipment_strategy", "contact_channel", "budget_cycle", "priority"]),
        st.sampled_from(["repair_over_upgrade", "upgrade", "email", "phone", "q4", "uptime"]),
        aware_datetimes(min_value, max_value),
        st.none() | _SAFE_TEXT,
    )


def assets() -> st.SearchStrategy[Asset]:
    """Equipment a customer runs: an id, a model, an install date and an expected life."""
    return st.builds(
        Asset,
        st.uuids().map(lambda u: f"asset-{u.hex[:12]}"),
        st.sampled_from(["Press 3000", "Conveyor C2", "Lathe L-40", "Chiller 9"]),
        st.dates(min_value=date(1970, 1, 1), max_value=date(2100, 1, 1)),
        st.integers(min_value=1, max_value=60),
        st.none() | st.from_regex(r"SN-[0-9]{6}", fullmatch=True),
    )


def json_values(max_leaves: int = 10) -> st.SearchStrategy[object]:
    """JSON values as account attributes hold them: scalars, Decimals, lists and mappings."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**12), max_value=10**12),
        st.floats(allow_nan=False, allow_infinity=False),
        st.decimals(
            allow_nan=False, allow_infinity=False, places=2, min_value=-(10**9), max_value=10**9
        ),
        st.text(max_size=20),
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def attributes() -> st.SearchStrategy[dict[str, object]]:
    """Attribute mappings: the usual qualification facts, plus arbitrary JSON extras."""
    usual = st.fixed_dictionaries(
        {},
        optional={
            "industry": st.sampled_from(["manufacturing", "logistics", "retail", "energy"]),
            "employees": st.integers(min_value=1, max_value=100_000),
            "region": st.sampled_from(["EU", "NA", "APAC"]),
            "budget": st.integers(min_value=0, max_value=10**7),
        },
    )
    extras = st.dictionaries(st.text(min_size=1, max_size=10), json_values(), max_size=3)
    return st.builds(lambda a, b: {**b, **a}, usual, extras)


# The events that move an account towards each stage of the built-in lifecycle, as
# (event, days after the previous step). Replaying them keeps history and stage consistent.
_PATHS: dict[Stage, tuple[str, ...]] = {
    Stage.PROSPECT: (),
    Stage.QUALIFIED: ("qualify",),
    Stage.DISQUALIFIED: ("disqualify",),
    Stage.CUSTOMER: ("qualify", "purchase"),
    Stage.REPEAT: ("qualify", "purchase", "purchase"),
    Stage.REFERRER: ("qualify", "purchase", "refer"),
    Stage.CHURNED: ("qualify", "purchase", "churn"),
}


@st.composite
def accounts(draw: st.DrawFn, stage: Stage | None = None) -> Account:
    """Accounts at ``stage`` (or any stage), with a history that replays to that stage.

    Sometimes they carry preferences and assets (any stage); an account that has bought
    sometimes has a referral code, with cards carrying it, and referral requests; a referrer has
    the referral that made it one (answering its latest request, with its code if it has one).
    """
    target = draw(st.sampled_from(list(_PATHS))) if stage is None else stage
    if target not in _PATHS:
        raise ValueError(f"accounts() knows the built-in stages, not {target!r}")
    created = draw(aware_datetimes(max_value=datetime(2090, 1, 1, tzinfo=UTC)))
    contact = draw(
        st.tuples(st.none() | emails(), st.none() | phones()).filter(lambda c: c != (None, None))
    )
    account = Account(
        id=draw(st.uuids()).hex,
        name=draw(st.text(min_size=1, max_size=40).filter(str.strip)),
        source=draw(sources()),
        created_at=created,
        email=contact[0],
        phone=contact[1],
        attributes=draw(attributes()),
        history=(HistoryEntry(None, Stage.PROSPECT, "capture", created),),
        do_not_contact=draw(st.booleans()),
        # learned in time order, as learn_preference keeps them ("the latest" is the last)
        preferences=tuple(
            sorted(draw(st.lists(preferences(min_value=created), max_size=2)), key=lambda p: p.at)
        ),
        assets=tuple(draw(st.lists(assets(), max_size=2, unique_by=lambda a: a.id))),
    )
    table = Transitions.of(Lifecycle)
    currency = draw(currencies())
    moment = created
    for event in _PATHS[target]:
        moment += timedelta(days=draw(st.integers(min_value=1, max_value=400)))
        changes: dict[str, Any] = {}
        if event == "purchase":
            purchase = Purchase(draw(money(currency=currency)), moment)
            changes["purchases"] = (*account.purchases, purchase)
            if not account.purchases:
                changes.update(draw(_referral_setup(moment)))
        elif event == "refer":
            code = account.referral_code
            requests = account.referral_requests
            referral = Referral(
                draw(st.uuids()).hex,
                moment,
                requests[-1].id if requests else None,
                code,
                new=draw(st.booleans()),
            )
            changes["referrals"] = (*account.referrals, referral)
        account, _ = table.apply(
            account, event, at=moment, approved=True, reason="generated", **changes
        )
    return account


def _referral_setup(at: datetime) -> st.SearchStrategy[dict[str, Any]]:
    """Draw what asking a new customer for referrals adds at its first purchase ``at``, if any."""
    code = st.none() | referral_codes()

    def parts(chosen: str | None, asked: bool, cards: int) -> dict[str, Any]:
        if chosen is None and not asked:
            return {}
        return {
            "referral_code": chosen,
            "referral_cards": (ReferralCards(chosen, cards, at),) if chosen is not None else (),
            "referral_requests": (ReferralRequest("request-1", at),) if asked else (),
        }

    return st.builds(parts, code, st.booleans(), st.integers(min_value=1, max_value=500))
