"""The contract kit: prove that a storage adapter keeps every promise of the protocol.

Why ship tests: :class:`~salesprocess.storage.AccountRepository` is a protocol, so anyone can
write an adapter (a document store, an ORM, a remote API). What makes an adapter correct is not
its methods' names but their behaviour: versions, unique contact details and referral codes,
exact round-trips, ordering, all-or-nothing transactions. The same suite that proves the built-in
adapters proves yours.

Two tools, both driven by one factory that returns a new, empty repository each time it is
called:

- :class:`RepositoryContract`, a pytest test class. Subclass it under a name pytest collects
  (``Test...``) and implement :meth:`~RepositoryContract.make_repository`; every ``test_*``
  method checks one promise. Repositories are closed after each test if they have ``close()``;
  override :meth:`~RepositoryContract.dispose_repository` for other clean-up.
- :func:`repository_state_machine`, a Hypothesis ``RuleBasedStateMachine`` that runs random
  adds, gets, fresh and stale saves, look-ups, counts, pages, ``add_many`` and failing
  ``atomic`` blocks against your adapter and a plain-dict model, and asserts they agree after
  every step. The contract runs it too (``test_agrees_with_a_model_under_random_commands``).

In a test module of your project::

    from salesprocess.testing import RepositoryContract, repository_state_machine
    from myapp.storage import MongoRepository

    class TestMongoRepository(RepositoryContract):
        def make_repository(self):
            return MongoRepository(database=fresh_test_database())

    TestMongoMachine = repository_state_machine(
        lambda: MongoRepository(database=fresh_test_database())
    ).TestCase

Run them with ``pytest``; for detailed messages from the kit's own asserts, put
``pytest.register_assert_rewrite("salesprocess.testing")`` at the top of your ``conftest.py``.
Needs the ``testing`` extra: ``pip install 'salesprocess[testing]'``.

:func:`assert_same_account` is the exactness check both use: equal is not enough, the types,
``Decimal`` exponents, float signs, UTC offsets and time zones must survive storage too.

:class:`AsyncRepositoryContract` does the same for an
:class:`~salesprocess.storage.AsyncAccountRepository`: implement its coroutine
:meth:`~AsyncRepositoryContract.make_async_repository`, and every test of
:class:`RepositoryContract` (the random commands and the reports included) runs against your
adapter, each call awaited on an event loop of the test's own, plus tests of what only tasks
can do: a task's ``atomic()`` block hides its writes from other tasks until it commits, holds
only that task's ``after_commit`` callbacks, and concurrent stale saves let exactly one win.
No pytest plugin is needed.

An adapter may answer reports itself (in SQL, say) with methods ``report_<name>`` taking the
report's keyword arguments; ``SalesProcess`` then asks it instead of running the pure function
over every account. :func:`assert_reports_agree` checks that every such method gives exactly
what the pure function gives (the same result, ``repr`` included, or the same
``ValidationError``), and the contract runs it on fixed and on random stored accounts
(``test_reports_agree_*``); an adapter without ``report_*`` methods passes them trivially.
"""

from __future__ import annotations

import asyncio
import contextvars
import string
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar, Final, TypeVar

import attrs

try:
    from hypothesis import HealthCheck, assume, example, given, note, settings
    from hypothesis import strategies as st
    from hypothesis.stateful import (
        Bundle,
        RuleBasedStateMachine,
        invariant,
        multiple,
        precondition,
        rule,
        run_state_machine_as_test,
    )
except ImportError as error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "salesprocess.testing needs Hypothesis: pip install 'salesprocess[testing]'"
    ) from error

from salesprocess import reports
from salesprocess.account import (
    MAX_ATTRIBUTE_INT,
    Account,
    Asset,
    Call,
    CallOutcome,
    Channel,
    HistoryEntry,
    Preference,
    Purchase,
    Referral,
    ReferralCards,
    ReferralRequest,
    Screening,
    Source,
)
from salesprocess.clock import FixedClock
from salesprocess.criteria import Criteria
from salesprocess.criteria_sql import may_pass, prefilter
from salesprocess.errors import ConflictError, NotFound, StaleWrite, ValidationError
from salesprocess.events import EventBus
from salesprocess.money import ISO_4217_CODES, Money
from salesprocess.screening import screen_stage
from salesprocess.stage import Stage
from salesprocess.storage.async_protocol import AsyncAccountRepository, AsyncReadsMany
from salesprocess.storage.protocol import (
    MAX_PAGE,
    MAX_VERSION,
    AccountRepository,
    Batching,
    Holders,
    ReadsMany,
    call_all,
    every_account,
    require_callback,
)
from salesprocess.storage.selection import CriteriaSelection, prospects
from salesprocess.unit_of_work import UnitOfWork

__all__ = [
    "HOSTILE_TEXT",
    "REPORTS",
    "AsyncReadsManyContract",
    "AsyncRepositoryContract",
    "Awaiting",
    "BlockingRepository",
    "ReadsManyContract",
    "RepositoryContract",
    "assert_reports_agree",
    "assert_same_account",
    "report_accounts",
    "repository_state_machine",
]

RepositoryFactory = Callable[[], AccountRepository]

# --- exactness --------------------------------------------------------------------------------


def assert_same_account(expected: Account, actual: Account) -> None:
    """Assert that ``actual`` is ``expected`` exactly, not merely equal.

    Beyond ``==`` it checks, recursively: the type of every value (``1`` is not ``1.0`` nor
    ``True``, a tuple is not a list), ``Decimal`` digits and exponent (``1.10`` is not ``1.1``),
    the sign of zero floats, and for datetimes the wall time, UTC offset and zone.
    """
    _assert_exact(expected, actual, "account")


def _assert_exact(expected: object, actual: object, path: str) -> None:
    kind = type(expected)
    assert type(actual) is kind, (
        f"{path}: stored {expected!r} ({kind.__name__}) came back as {actual!r} "
        f"({type(actual).__name__})"
    )
    if attrs.has(kind):
        for field in attrs.fields(kind):
            _assert_exact(
                getattr(expected, field.name), getattr(actual, field.name), f"{path}.{field.name}"
            )
    elif isinstance(expected, Mapping):
        assert isinstance(actual, Mapping)
        assert set(expected) == set(actual), (
            f"{path}: keys {sorted(expected)} came back as {sorted(actual)}"
        )
        for key, value in expected.items():
            _assert_exact(value, actual[key], f"{path}[{key!r}]")
    elif isinstance(expected, tuple | list):
        assert isinstance(actual, tuple | list)
        assert len(expected) == len(actual), f"{path}: {expected!r} came back as {actual!r}"
        for index, (left, right) in enumerate(zip(expected, actual, strict=True)):
            _assert_exact(left, right, f"{path}[{index}]")
    elif isinstance(expected, datetime):
        assert isinstance(actual, datetime)
        same = (
            expected == actual
            and expected.replace(tzinfo=None) == actual.replace(tzinfo=None)
            and expected.utcoffset() == actual.utcoffset()
            and _zone_name(expected.tzinfo) == _zone_name(actual.tzinfo)
        )
        assert same, f"{path}: {expected!r} came back as {actual!r}"
    elif isinstance(expected, Decimal):
        assert isinstance(actual, Decimal)
        assert expected.as_tuple() == actual.as_tuple(), (
            f"{path}: Decimal {expected} came back as {actual}"
        )
    elif isinstance(expected, float):
        assert isinstance(actual, float)
        assert repr(expected) == repr(actual), f"{path}: {expected!r} came back as {actual!r}"
    else:
        assert expected == actual, f"{path}: {expected!r} came back as {actual!r}"


def _zone_name(zone: tzinfo | None) -> str | None:
    key = getattr(zone, "key", None)  # zoneinfo.ZoneInfo: the zone must survive, not the offset
    return key if isinstance(key, str) else None


# --- account values ---------------------------------------------------------------------------

_T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)

#: Names, notes and ids that have broken storage code before.
HOSTILE_TEXT: tuple[str, ...] = (
    "O'Brien & Söhne",
    'Robert"); DROP TABLE accounts; --',
    "'; DROP TABLE accounts; --",
    "Zoë 🍣 株式会社 🇩🇪",
    "עברית مرحبا",  # right-to-left text
    "line\nbreak\ttab\r",
    "nul \x00 inside",
    "\\ backslash \\\\ and %s %(name)s {0} $1 ?",
    "\u200b zero width \ufeff",
    "x" * 2000,
)

_NAME_TEXT = st.text(min_size=1, max_size=24).filter(str.strip)
_ID_TEXT = st.one_of(
    st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=12),
    st.text(min_size=1, max_size=12).filter(str.strip),
    st.sampled_from([text[:40] for text in HOSTILE_TEXT]),
)
# Few values, so that duplicates (and so uniqueness conflicts) come up often.
_EMAILS = ("ann@acme.example", "bob@acme.example", "o'hara@bücher.example", "eve@x.example")
_PHONES = ("+4930123456", "0301234567", "+15551234567", "0049301")
_CODES = ("K7M4PQ2X", "ABCD", "REF2026", "Z" * 32)
_STAGES = (*(Stage(name) for name in ("prospect", "qualified", "customer")), Stage("nurture"))
_KEYS = st.one_of(
    st.text(max_size=8), st.sampled_from(["$decimal", "$", "$$", "$$decimal", "$x", "industry"])
)


def _zones() -> tuple[tzinfo, ...]:
    fixed = (
        timezone(timedelta(hours=5, minutes=30)),
        timezone(-timedelta(hours=9, seconds=30)),
        timezone(timedelta(hours=14)),
    )
    named = ("Europe/Berlin", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe")
    return (UTC, *fixed, *(_zone(key) for key in named))


_NAIVE_EPOCH = datetime(1900, 1, 1)
_SPAN_US = (datetime(2200, 1, 1) - _NAIVE_EPOCH) // timedelta(microseconds=1)


def _moments() -> st.SearchStrategy[datetime]:
    # Built from integers rather than st.datetimes(timezones=...), which is ten times slower:
    # whole seconds near 2026 (where real data lives, DST gaps and folds included) or any
    # microsecond between 1900 and 2200, in UTC, fixed offsets with seconds, or IANA zones.
    near = st.integers(min_value=0, max_value=3 * 366 * 86400).map(
        lambda seconds: datetime(2025, 1, 1) + timedelta(seconds=seconds)
    )
    anywhere = st.integers(min_value=0, max_value=_SPAN_US).map(
        lambda micro: _NAIVE_EPOCH + timedelta(microseconds=micro)
    )
    return st.builds(
        lambda naive, zone, fold: naive.replace(tzinfo=zone, fold=fold),
        near | anywhere,
        st.sampled_from(_zones()),
        st.sampled_from((0, 1)),
    )


#: Amounts of every shape Money holds: cents, and exact decimals from 1E-30 to about 1E+60.
_AMOUNTS: Final = st.one_of(
    st.decimals(min_value=0, max_value=10**12, places=2),
    st.builds(
        lambda digits, exponent: Decimal(f"{digits}E{exponent}"),
        st.integers(min_value=0, max_value=10**30),
        st.integers(min_value=-30, max_value=30),
    ),
)


def _json_values() -> st.SearchStrategy[object]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=1 - MAX_ATTRIBUTE_INT, max_value=MAX_ATTRIBUTE_INT - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.decimals(allow_nan=False, allow_infinity=False),
        st.text(max_size=12),
        st.sampled_from(["$decimal", "1.10", "2026-01-05T10:00:00+00:00"]),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
        max_leaves=5,
    )


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def _referral_codes() -> st.SearchStrategy[str]:
    # Codes as people type them (any case, dashes and spaces): the account keeps them normalised.
    typed = st.text(string.ascii_letters + string.digits, min_size=4, max_size=32)
    return st.one_of(st.sampled_from((*_CODES, "k7m4-pq2x", " ab cd ")), typed)


def _referral_parts() -> dict[str, st.SearchStrategy[Any]]:
    """Strategies for the referral, preference and asset fields of an account, by field name."""
    return {
        "referral_code": _optional(_referral_codes()),
        "referral_requests": st.lists(
            st.builds(
                ReferralRequest, _NAME_TEXT, _moments(), st.integers(min_value=1, max_value=1000)
            ),
            max_size=2,
        ).map(tuple),
        "referrals": st.lists(
            st.builds(
                Referral,
                _ID_TEXT,
                _moments(),
                _optional(_NAME_TEXT),
                _optional(_referral_codes()),
                st.booleans(),
            ),
            max_size=2,
        ).map(tuple),
        "referral_cards": st.lists(
            st.builds(
                ReferralCards,
                _referral_codes(),
                st.integers(min_value=1, max_value=100_000),
                _moments(),
            ),
            max_size=1,
        ).map(tuple),
        "preferences": st.lists(
            st.builds(
                Preference,
                st.one_of(_NAME_TEXT, st.sampled_from(["equipment_strategy", "$decimal"])),
                st.one_of(_NAME_TEXT, st.sampled_from(HOSTILE_TEXT)),
                _moments(),
                _optional(_NAME_TEXT),
            ),
            max_size=2,
        ).map(tuple),
        "assets": st.lists(
            st.builds(
                Asset,
                _NAME_TEXT,
                _NAME_TEXT,
                st.dates(),
                st.integers(min_value=1, max_value=200),
                _optional(_NAME_TEXT),
            ),
            max_size=2,
        ).map(tuple),
    }


@st.composite
def _calls(draw: st.DrawFn) -> Call:
    outcome = draw(st.sampled_from(list(CallOutcome)))
    callback = draw(_moments()) if outcome is CallOutcome.CALL_BACK else None
    return Call(outcome, draw(_moments()), draw(st.text(max_size=20)), callback)


def _accounts(ids: st.SearchStrategy[str] = _ID_TEXT) -> st.SearchStrategy[Account]:
    """Any valid new account (version 0): the storage view, not the lifecycle's.

    Unlike :func:`salesprocess.strategies.accounts`, which replays real commands, this draws
    every part independently to stress storage: hostile text, every JSON type in attributes
    (``$`` keys, huge integers, ``Decimal``), ``zoneinfo`` datetimes, custom stages, calls,
    screenings, referral codes, referral requests, referrals and cards, preferences, and assets
    with install dates from year 1 to 9999.
    """
    stages = st.sampled_from(_STAGES)
    changes = st.builds(
        HistoryEntry,
        _optional(stages),
        stages,
        st.sampled_from(["capture", "qualify", "purchase", "nurture"]),
        _moments(),
        _optional(_NAME_TEXT),
        _optional(_NAME_TEXT),
    )
    purchases = st.builds(
        Purchase,
        st.builds(Money, _AMOUNTS, st.sampled_from(sorted(ISO_4217_CODES))),
        _moments(),
        _optional(_NAME_TEXT),
    )
    screenings = st.builds(Screening, _moments(), _NAME_TEXT, _NAME_TEXT, st.booleans())
    return st.builds(
        Account,
        id=ids,
        name=st.one_of(_NAME_TEXT, st.sampled_from(HOSTILE_TEXT)),
        source=st.builds(
            Source, st.sampled_from(list(Channel)), _optional(_NAME_TEXT), _optional(_NAME_TEXT)
        ),
        created_at=_moments(),
        email=_optional(st.sampled_from(_EMAILS)),
        phone=_optional(st.sampled_from(_PHONES)),
        attributes=st.dictionaries(_KEYS, _json_values(), max_size=3),
        stage=stages,
        history=st.lists(changes, max_size=2).map(tuple),
        purchases=st.lists(purchases, max_size=2).map(tuple),
        calls=st.lists(_calls(), max_size=1).map(tuple),
        screenings=st.lists(screenings, max_size=1).map(tuple),
        do_not_contact=st.booleans(),
        **_referral_parts(),
    )


# Ids from a small pool (so that duplicates come up), plus the occasional hostile one.
_MACHINE_IDS = (
    "a",
    "b",
    "c",
    "d",
    "e",
    "f",
    "g",
    "h",
    "A",
    "ä",
    "🍣",
    "'; DROP TABLE accounts; --",
)
_MACHINE_MOMENTS = (
    _T0,
    _T0 + timedelta(hours=1),
    (_T0 + timedelta(hours=1)).astimezone(timezone(timedelta(hours=-5))),  # same instant
    _T0 - timedelta(microseconds=1),
)
_MACHINE_ATTRIBUTES: tuple[dict[str, object], ...] = (
    {},
    {"employees": 40, "industry": "retail"},
    {"budget": Decimal("1.10"), "$decimal": "x", "tags": ["a", {"b": None}]},
)


def _machine_accounts() -> st.SearchStrategy[Account]:
    """Draw new accounts for the state machine: cheap to draw, rich in collisions.

    Exactness of every kind of value is the round-trip test's job; the machine needs many
    commands per second and accounts that share ids, emails, phones, referral codes (from a
    pool of four) and creation instants.
    """
    return st.builds(
        lambda account_id, email, phone, code, stage, created_at, attributes: Account(
            account_id,
            f"Account {account_id}",
            Source(Channel.COLD_OUTREACH),
            created_at,
            email=email,
            phone=phone,
            stage=stage,
            attributes=attributes,
            history=(HistoryEntry(None, stage, "capture", created_at),),
            referral_code=code,
        ),
        st.sampled_from(_MACHINE_IDS),
        _optional(st.sampled_from(_EMAILS)),
        _optional(st.sampled_from(_PHONES)),
        _optional(st.sampled_from(_CODES)),
        st.sampled_from(_STAGES),
        st.sampled_from(_MACHINE_MOMENTS),
        st.sampled_from(_MACHINE_ATTRIBUTES),
    )


# --- helpers ----------------------------------------------------------------------------------


class _Rollback(Exception):
    """Raised inside ``atomic()`` to make it roll back."""


@contextmanager
def _raises(kind: type[BaseException]) -> Iterator[None]:
    try:
        yield
    except kind:
        return
    raise AssertionError(f"expected {kind.__name__}, nothing was raised")


def _present(account: Account | None) -> Account:
    assert account is not None, "expected an account, got None"
    return account


def _close(repository: object) -> None:
    close = getattr(repository, "close", None)
    if callable(close):
        close()


def _account(
    account_id: str = "acc-1",
    *,
    name: str = "Acme GmbH",
    email: str | None = None,
    phone: str | None = None,
    stage: Stage = Stage.PROSPECT,
    created_at: datetime = _T0,
    **fields: Any,
) -> Account:
    fields.setdefault("history", (HistoryEntry(None, stage, "capture", created_at),))
    return Account(
        account_id,
        name,
        Source(Channel.INBOUND_INQUIRY, "spring"),
        created_at,
        email=email,
        phone=phone,
        stage=stage,
        **fields,
    )


def _full_account() -> Account:
    """Return an account with every part filled in."""
    berlin = _zone("Europe/Berlin")
    return Account(
        "acc-full",
        "Müller & Co. KG",
        Source(Channel.REFERRAL, "autumn fair", "acc-referrer"),
        datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=berlin),
        email="Einkauf@Mueller.example",
        phone="+49 30 1234567",
        attributes={
            "industry": "logistics",
            "employees": 1250,
            "score": 0.1,
            "budget": Decimal("12000.50"),
            "regions": ["EU", "NA"],
            "contacts": [{"name": "Ann", "primary": True}, {"name": "Bob", "primary": False}],
            "notes": None,
        },
        stage=Stage.CUSTOMER,
        history=(
            HistoryEntry(None, Stage.PROSPECT, "capture", _T0, "web"),
            HistoryEntry(Stage.PROSPECT, Stage.QUALIFIED, "qualify", _T0, "ann", "override"),
            HistoryEntry(Stage.QUALIFIED, Stage.CUSTOMER, "purchase", _T0 + timedelta(days=3)),
        ),
        purchases=(
            Purchase(Money("1200.10", "EUR"), _T0 + timedelta(days=3), "INV-1"),
            Purchase(Money("0", "EUR"), _T0 + timedelta(days=4)),
        ),
        calls=(
            Call(CallOutcome.CALL_BACK, _T0, "call after lunch", _T0 + timedelta(hours=4)),
            Call(CallOutcome.INTERESTED, _T0 + timedelta(hours=4), "wants a demo"),
        ),
        screenings=(Screening(_T0, "icp", "v3", passed=True),),
        do_not_contact=True,
        referral_code="k7m4-pq2x",
        referral_requests=(ReferralRequest("req-1", _T0 + timedelta(days=5), wanted=3),),
        referrals=(
            Referral("acc-referred", _T0 + timedelta(days=6), "req-1", "K7M4PQ2X"),
            Referral("acc-known", _T0 + timedelta(days=7), new=False),
        ),
        referral_cards=(ReferralCards("K7M4PQ2X", 250, _T0 + timedelta(days=5)),),
        preferences=(
            Preference("equipment_strategy", "upgrade", _T0, "asked for the new line"),
            Preference("equipment_strategy", "repair_over_upgrade", _T0 + timedelta(days=9)),
        ),
        assets=(
            Asset("asset-1", "Press 3000", date(2015, 5, 1), 20, "SN-0001"),
            Asset("asset-2", "Conveyor", date(2024, 2, 29), 1),
        ),
    )


def _zone(key: str) -> tzinfo:
    from zoneinfo import ZoneInfo  # noqa: PLC0415 - only the tests that need zones load them

    return ZoneInfo(key)


# --- reports an adapter answers itself -------------------------------------------------------

#: The reports an adapter may answer itself, by name: ``report_<name>`` must agree with
#: ``salesprocess.reports.<name>`` over every stored account.
REPORTS: tuple[str, ...] = (
    "revenue",
    "funnel",
    "lead_flow",
    "time_in_stage",
    "repeat_summary",
    "rfm",
    "referral_stats",
)


def _report_arguments(accounts: list[Account], as_of: datetime) -> list[tuple[str, dict[str, Any]]]:
    """Return the calls :func:`assert_reports_agree` makes: each report, around ``as_of``."""
    campaigns = sorted({a.source.campaign for a in accounts if a.source.campaign is not None})
    calls: list[tuple[str, dict[str, Any]]] = [
        ("revenue", {}),
        ("revenue", {"since": as_of}),
        ("revenue", {"until": as_of}),
        ("revenue", {"since": as_of - timedelta(days=30), "until": as_of}),
        ("funnel", {"as_of": as_of}),
        ("funnel", {"as_of": as_of - timedelta(days=1)}),
        *(("funnel", {"as_of": as_of, "channel": channel}) for channel in Channel),
        *(("funnel", {"as_of": as_of, "campaign": campaign}) for campaign in campaigns[:3]),
        ("funnel", {"as_of": as_of, "campaign": "no such campaign"}),
        ("time_in_stage", {"as_of": as_of}),
        ("repeat_summary", {"as_of": as_of}),
        ("repeat_summary", {"as_of": as_of, "period": "W"}),
        ("rfm", {"as_of": as_of}),
        ("referral_stats", {}),
    ]
    if campaigns:
        calls.append(
            ("funnel", {"as_of": as_of, "channel": accounts[0].source.channel,
                        "campaign": campaigns[0]})
        )  # fmt: skip
    for period in ("week", "month"):
        calls.append(("lead_flow", {"period": period, "as_of": as_of, "target": 1}))
        if len(accounts) < 200:  # from the first lead to the last change: may be long
            calls.append(("lead_flow", {"period": period}))
    return calls


def assert_reports_agree(repository: AccountRepository, *, as_of: datetime) -> None:
    """Assert that each ``report_<name>`` of ``repository`` equals the pure report.

    For each report of :data:`REPORTS` the repository offers, and arguments around ``as_of``,
    the adapter's answer must equal ``salesprocess.reports.<name>`` over every stored account
    (:func:`~salesprocess.storage.protocol.every_account`): equal, with the same ``repr`` (so
    the same types, ``Decimal`` places and order), or the same ``ValidationError``.
    """
    accounts = list(every_account(repository))
    for name, arguments in _report_arguments(accounts, as_of):
        answer = getattr(repository, f"report_{name}", None)
        if answer is None:
            continue
        expected, refused = _outcome(getattr(reports, name), accounts, **arguments)
        actual, ours = _outcome(answer, **arguments)
        assert ours == refused, f"report_{name}({arguments}) refused {ours}, the report {refused}"
        assert actual == expected, f"report_{name}({arguments}): {actual!r} != {expected!r}"
        assert repr(actual) == repr(expected), f"report_{name}({arguments}) differs in repr"


def _outcome(
    call: Callable[..., object], *args: object, **kwargs: object
) -> tuple[object, tuple[str | None, str] | None]:
    """Return what ``call`` returns, or the field and message of its ``ValidationError``."""
    try:
        return call(*args, **kwargs), None
    except ValidationError as refused:
        return None, (refused.field, str(refused))


def _report_amounts() -> st.SearchStrategy[Decimal]:
    # Places from none to twelve, trailing zeros kept, zero included; within any money range.
    return st.builds(
        lambda digits, places: Decimal(digits).scaleb(-places),
        st.integers(min_value=0, max_value=10**14),
        st.integers(min_value=-2, max_value=12),
    )


def report_accounts(ids: st.SearchStrategy[str] = _ID_TEXT) -> st.SearchStrategy[Account]:
    """Draw new accounts shaped to stress reports, not storage: any history, not the lifecycle's.

    Stage histories out of time order and with a stage of a lifecycle of one's own, purchases
    in three currencies at any moment (several on a day, zero amounts, up to twelve places),
    campaigns with hostile text, and no contact details (so that any number can be added).
    """
    stages = st.sampled_from(
        (Stage.PROSPECT, Stage.QUALIFIED, Stage.CUSTOMER, Stage.REPEAT, Stage.REFERRER,
         Stage.DISQUALIFIED, Stage.CHURNED, Stage("nurture"))
    )  # fmt: skip
    changes = st.builds(
        HistoryEntry,
        _optional(stages),
        stages,
        st.sampled_from(["capture", "qualify", "purchase", "nurture"]),
        _moments(),
        _optional(_NAME_TEXT),
        _optional(st.sampled_from(HOSTILE_TEXT)),
    )
    purchases = st.builds(
        Purchase,
        st.builds(Money, _report_amounts(), st.sampled_from(["EUR", "USD", "JPY"])),
        _moments(),
        _optional(st.sampled_from(HOSTILE_TEXT[:7])),
    )
    return st.builds(
        Account,
        id=ids,
        name=_NAME_TEXT,
        source=st.builds(
            Source,
            st.sampled_from(list(Channel)),
            _optional(st.sampled_from(("spring", "autumn fair", HOSTILE_TEXT[6]))),
        ),
        created_at=_moments(),
        history=st.lists(changes, max_size=4).map(tuple),
        purchases=st.lists(purchases, max_size=4).map(tuple),
    )


# --- the contract -----------------------------------------------------------------------------


# -- random criteria and the attributes they read (the corners of JSON Logic's coercions) ----

_CORNER_TEXT: Final = (
    "", "0", "1", "5", " 5 ", "0x10", "1e3", "EU", "eu", "abc", "\u00e9x", "a\x00b", "EU\n",
)  # fmt: skip
_CRITERIA_KEYS: Final = ("a", "b", "n.a", "missing", "name", "a.0")


def _corner_scalars() -> st.SearchStrategy[object]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 60),
        st.sampled_from([2**53 - 1, 2**53 + 1, -(2**60)]),
        st.sampled_from([0.0, -0.0, 0.5, 1.5, 50.0, 1e20, 0.1]),
        st.sampled_from(_CORNER_TEXT),
    )


def _attribute_values() -> st.SearchStrategy[object]:
    return st.one_of(
        _corner_scalars(),
        st.sampled_from([[], [0], ["x", 1], {}, {"a": 1}, Decimal("0"), Decimal("1.5")]),
    )


def _prospect_attributes() -> st.SearchStrategy[dict[str, object]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "a": _attribute_values(),
            "b": _attribute_values(),
            "n": st.one_of(st.fixed_dictionaries({}, optional={"a": _attribute_values()}),
                           _attribute_values()),
        },
    )  # fmt: skip


def _variables() -> st.SearchStrategy[object]:
    plain = st.sampled_from(_CRITERIA_KEYS).map(lambda key: {"var": key})
    with_default = st.tuples(st.sampled_from(_CRITERIA_KEYS), _corner_scalars()).map(
        lambda pair: {"var": list(pair)}
    )
    return st.one_of(plain, with_default)


def _clauses() -> st.SearchStrategy[object]:
    operand = st.one_of(_variables(), _corner_scalars())
    compare = st.tuples(
        st.sampled_from(["==", "!=", "===", "!==", "<", "<=", ">", ">="]),
        st.lists(operand, min_size=2, max_size=3),
    ).map(lambda pair: {pair[0]: pair[1]})
    member = st.tuples(_variables(), st.lists(_corner_scalars(), max_size=4)).map(
        lambda pair: {"in": [pair[0], pair[1]]}
    )
    untranslated = st.sampled_from([{"missing": ["a"]}, {">": [{"+": [{"var": "a"}, 1]}, 2]}])
    return st.one_of(compare, member, _variables(), _corner_scalars(), untranslated)


def _criteria_documents() -> st.SearchStrategy[object]:
    return st.recursive(
        _clauses(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3).map(lambda parts: {"and": parts}),
            st.lists(inner, max_size=3).map(lambda parts: {"or": parts}),
            inner.map(lambda part: {"!": [part]}),
            inner.map(lambda part: {"!!": [part]}),
            st.lists(inner, min_size=1, max_size=4).map(lambda parts: {"if": parts}),
        ),
        max_leaves=6,
    )


def _control_text(value: object) -> bool:
    """Whether ``value`` holds text with a control character (JSON writes it escaped)."""
    if isinstance(value, str):
        return any(ord(c) < 0x20 for c in value)
    if isinstance(value, Mapping):
        return any(_control_text(k) or _control_text(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_control_text(item) for item in value)
    return False


def _prospects(rows: list[dict[str, object]]) -> list[Account]:
    return [
        _account(f"acc-{number:02d}", created_at=_T0 - timedelta(minutes=number % 3),
                 attributes=attributes)
        for number, attributes in enumerate(rows)
    ]  # fmt: skip


class RepositoryContract:
    """Pytest tests of every promise of :class:`~salesprocess.storage.AccountRepository`.

    Subclass it as ``Test<YourAdapter>`` and implement :meth:`make_repository`. The class
    itself is never collected (``__test__ = False``); each subclass is, unless it sets
    ``__test__`` itself. ``state_machine_settings`` tunes the random-command test (lower
    ``max_examples`` for a slow adapter). When that test fails, Hypothesis shrinks the failing
    sequence of commands before reporting it, which can take a couple of minutes; fewer
    ``max_examples`` and a lower ``stateful_step_count`` make it quicker, and leaving
    ``Phase.shrink`` out of ``phases`` skips it.
    """

    __test__: ClassVar[bool] = False
    state_machine_settings: ClassVar[settings] = settings(
        max_examples=25,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    round_trip_settings: ClassVar[settings] = settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__test__" not in cls.__dict__:
            cls.__test__ = True

    def make_repository(self) -> AccountRepository:
        """Return a new, empty repository of the adapter under test (called once or more)."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_repository()")

    def dispose_repository(self, repository: AccountRepository) -> None:
        """Release ``repository`` after a test; the default calls its ``close()``, if any."""
        _close(repository)

    # plumbing: every repository made in a test is disposed of after it

    def setup_method(self, method: object) -> None:
        """Start tracking the repositories this test makes."""
        self._made: list[AccountRepository] = []

    def teardown_method(self, method: object) -> None:
        """Dispose of the repositories this test made."""
        for repository in reversed(getattr(self, "_made", [])):
            self.dispose_repository(repository)

    def repository(self) -> AccountRepository:
        """Return a new repository from :meth:`make_repository`, disposed of after the test."""
        made = self.make_repository()
        if not hasattr(self, "_made"):
            self._made = []
        self._made.append(made)
        return made

    # -- add and get ------------------------------------------------------------------------

    def test_add_returns_the_account_at_version_1(self) -> None:
        """add() returns the account as stored: the same values, at version 1."""
        account = _account()
        stored = self.repository().add(account)
        assert stored.version == 1
        assert_same_account(attrs.evolve(account, version=1), stored)

    def test_get_returns_every_part_exactly(self) -> None:
        """An account with every part filled in comes back exactly."""
        repository = self.repository()
        stored = repository.add(_full_account())
        assert_same_account(stored, repository.get("acc-full"))

    def test_referrals_preferences_and_assets_round_trip(self) -> None:
        """Referral requests, referrals, cards, preferences and dated assets come back exactly."""
        berlin = _zone("Europe/Berlin")
        at = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=berlin)
        account = _account(
            referral_code="ab-cd-12",
            referral_requests=(
                ReferralRequest("req-1", at, wanted=1),
                ReferralRequest(HOSTILE_TEXT[1], _T0, wanted=1000),
            ),
            referrals=(
                Referral("acc-2", at, "req-1", "K7M4PQ2X", new=True),
                Referral(HOSTILE_TEXT[6], _T0, new=False),
            ),
            referral_cards=(
                ReferralCards("ABCD12", 1, at),
                ReferralCards("Z" * 32, 100_000, _T0),
            ),
            preferences=(
                Preference("equipment_strategy", "repair_over_upgrade", at, HOSTILE_TEXT[3]),
                Preference("$decimal", HOSTILE_TEXT[5], _T0),
            ),
            assets=(
                Asset("asset-1", "Press 3000", date(1, 1, 1), 200, HOSTILE_TEXT[7]),
                Asset("asset-2", "Conveyor", date(2024, 2, 29), 1),
                Asset("asset-3", HOSTILE_TEXT[0], date(9999, 12, 31), 20),
            ),
        )
        repository = self.repository()
        stored = repository.add(account)
        assert stored.referral_code == "ABCD12"
        assert_same_account(attrs.evolve(account, version=1), stored)
        assert_same_account(stored, repository.get(stored.id))
        more = attrs.evolve(
            stored,
            assets=(*stored.assets, Asset("asset-4", "Lathe", date(2026, 1, 5), 15)),
            preferences=stored.preferences[:1],
            referrals=(),
        )
        saved = repository.save(more, expected_version=1)
        assert_same_account(saved, repository.get(stored.id))
        assert type(repository.get(stored.id).assets[3].installed) is date

    def test_attributes_of_every_json_type_round_trip(self) -> None:
        """Attributes keep every JSON type, nesting, Decimals and keys that look like tags."""
        attributes = {
            "none": None,
            "yes": True,
            "no": False,
            "zero": 0,
            "big": 2**80,
            "negative": -(2**70),
            "float": 0.1,
            "negative zero": -0.0,
            "tiny": 5e-324,
            "huge": 1.7976931348623157e308,
            "decimal": Decimal("1.10"),
            "decimal exponent": Decimal("1E+3"),
            "decimal negative zero": Decimal("-0.00"),
            "text": "Grüße 🍣",
            "empty text": "",
            "empty list": [],
            "empty map": {},
            "nested": {"list": [1, [2, [3, {"deep": Decimal("0.000000001")}]]]},
            "$decimal": "1.10",
            "$": {"$decimal": "not a decimal"},
            "$$": [{"$decimal": 1}],
            "tagged text": "$decimal",
        }
        repository = self.repository()
        stored = repository.add(_account(attributes=attributes))
        assert_same_account(stored, repository.get(stored.id))

    def test_decimal_amounts_are_exact(self) -> None:
        """Money amounts come back with the same digits and exponent."""
        amounts = ("0.10", "1.10", "12000.00", "1E-9", "1E+3", "-0", "123456789012345678.99")
        purchases = tuple(Purchase(Money(amount, "EUR"), _T0) for amount in amounts)
        repository = self.repository()
        stored = repository.add(_account(purchases=purchases))
        loaded = repository.get(stored.id)
        assert [str(p.amount.amount) for p in loaded.purchases] == list(amounts)
        assert_same_account(stored, loaded)

    def test_aware_datetimes_keep_instant_offset_and_zone(self) -> None:
        """Datetimes keep instant, wall time, offset and zone, around DST changes too."""
        berlin = _zone("Europe/Berlin")
        moments = (
            datetime(2026, 1, 5, 9, 30, 15, 123456, tzinfo=UTC),
            datetime(2026, 1, 5, 9, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            datetime(2026, 1, 5, 9, 30, tzinfo=timezone(-timedelta(hours=9, seconds=30))),
            datetime(2026, 10, 25, 2, 30, tzinfo=berlin),  # ambiguous: first
            datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=berlin),  # ambiguous: second
            datetime(2026, 3, 29, 2, 30, tzinfo=berlin),  # in the spring-forward gap
            datetime(1900, 1, 1, tzinfo=_zone("America/New_York")),
            datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=_zone("Asia/Kathmandu")),
        )
        history = tuple(HistoryEntry(None, Stage.PROSPECT, "capture", moment) for moment in moments)
        repository = self.repository()
        stored = repository.add(_account(history=history, created_at=moments[1]))
        assert_same_account(stored, repository.get(stored.id))

    def test_hostile_text_round_trips_everywhere(self) -> None:
        """Quotes, SQL, emoji, NUL, RTL and long text survive as ids, names and notes."""
        repository = self.repository()
        for index, text in enumerate(HOSTILE_TEXT):
            account = _account(
                text,
                name=text,
                calls=(Call(CallOutcome.INTERESTED, _T0, text),),
                attributes={text: text},
                history=(HistoryEntry(None, Stage.PROSPECT, "capture", _T0, text, text),),
                email=f"user{index}@hostile.example",
            )
            stored = repository.add(account)
            assert_same_account(stored, repository.get(text))
        assert sorted(a.id for a in repository.page(limit=100)) == sorted(HOSTILE_TEXT)

    def test_random_accounts_round_trip_exactly(self) -> None:
        """Any valid account comes back exactly as it was added (Hypothesis)."""

        @self.round_trip_settings
        @given(account=_accounts())
        def round_trip(account: Account) -> None:
            repository = self.make_repository()
            try:
                stored = repository.add(account)
                assert_same_account(attrs.evolve(account, version=1), stored)
                assert_same_account(stored, repository.get(account.id))
            finally:
                self.dispose_repository(repository)

        round_trip()

    def test_add_refuses_a_stored_account(self) -> None:
        """add() refuses an account whose version is not 0, and writes nothing."""
        repository = self.repository()
        with _raises(ValidationError):
            repository.add(_account(version=3))
        with _raises(NotFound):
            repository.get("acc-1")

    def test_add_and_save_refuse_what_is_not_an_account(self) -> None:
        """add(), add_many() and save() of a non-Account raise ValidationError, store nothing."""
        repository = self.repository()
        for thing in (1, None, "acc-1", {"id": "acc-1"}):
            with _raises(ValidationError):
                repository.add(thing)  # type: ignore[arg-type]
            with _raises(ValidationError):
                repository.add_many([thing])  # type: ignore[list-item]
            with _raises(ValidationError):
                repository.add_many([_account("a"), thing])  # type: ignore[list-item]
            with _raises(ValidationError):
                repository.save(thing, expected_version=1)  # type: ignore[arg-type]
        assert repository.page() == []

    def test_add_refuses_a_duplicate_id(self) -> None:
        """A second account with a stored id raises ConflictError; the first stays."""
        repository = self.repository()
        first = repository.add(_account(name="First"))
        with _raises(ConflictError):
            repository.add(_account(name="Second"))
        assert_same_account(first, repository.get("acc-1"))

    def test_add_refuses_a_duplicate_email(self) -> None:
        """A new account with a stored email raises ConflictError and is not stored."""
        repository = self.repository()
        repository.add(_account("a", email="ann@acme.example"))
        with _raises(ConflictError):
            repository.add(_account("b", email="ann@acme.example"))
        with _raises(NotFound):
            repository.get("b")

    def test_add_refuses_a_duplicate_phone(self) -> None:
        """A new account with a stored phone raises ConflictError and is not stored."""
        repository = self.repository()
        repository.add(_account("a", phone="+4930123456"))
        with _raises(ConflictError):
            repository.add(_account("b", phone="+4930123456"))
        with _raises(NotFound):
            repository.get("b")

    def test_accounts_without_contact_details_do_not_collide(self) -> None:
        """Any number of accounts may have no email and no phone."""
        repository = self.repository()
        for index in range(3):
            repository.add(_account(f"acc-{index}"))
        assert len(repository.page()) == 3

    def test_get_of_an_unknown_id_raises_not_found(self) -> None:
        """get() of an id never added raises NotFound."""
        with _raises(NotFound):
            self.repository().get("no-such-account")

    def test_keys_that_are_not_text_find_nothing(self) -> None:
        """get() and the find_by_* look-ups of a non-text key find nothing, like unknown text."""
        repository = self.repository()
        # All digits, so that a store comparing 5 with "5" as text would find them.
        repository.add(
            _account("5", email="a@x.example", phone="+4930111", referral_code="12345678")
        )
        for key in (5, 5.0, 12345678, 4930111, None, b"5", ["5"], {}, object()):
            with _raises(NotFound):
                repository.get(key)  # type: ignore[arg-type]
            assert repository.find_by_email(key) is None  # type: ignore[arg-type]
            assert repository.find_by_phone(key) is None  # type: ignore[arg-type]
            assert repository.find_by_referral_code(key) is None  # type: ignore[arg-type]

    # -- save -------------------------------------------------------------------------------

    def test_save_stores_the_next_version(self) -> None:
        """save() at the stored version stores the account at version + 1."""
        repository = self.repository()
        stored = repository.add(_account())
        renamed = attrs.evolve(stored, name="Acme AG", attributes={"employees": 12})
        saved = repository.save(renamed, expected_version=1)
        assert saved.version == 2
        assert_same_account(attrs.evolve(renamed, version=2), saved)
        assert_same_account(saved, repository.get("acc-1"))
        assert repository.save(saved, expected_version=2).version == 3

    def test_stale_save_raises_stale_write_and_writes_nothing(self) -> None:
        """save() at an old (or future) version raises StaleWrite and changes nothing."""
        repository = self.repository()
        stored = repository.add(_account())
        current = repository.save(attrs.evolve(stored, name="Second"), expected_version=1)
        for stale in (1, 0, 3, 99):
            with _raises(StaleWrite):
                repository.save(attrs.evolve(stored, name="Lost update"), expected_version=stale)
        assert_same_account(current, repository.get("acc-1"))

    def test_save_refuses_an_expected_version_that_is_not_a_version(self) -> None:
        """save() with an expected_version not an int in [0, MAX_VERSION) raises ValidationError."""
        repository = self.repository()
        stored = repository.add(_account())
        changed = attrs.evolve(stored, name="Changed")
        malformed: tuple[object, ...] = (
            1.0,
            True,
            Decimal(1),
            "1",
            None,
            -1,
            MAX_VERSION,
            2**63,
            2**64,
        )
        for version in malformed:
            with _raises(ValidationError):
                repository.save(changed, expected_version=version)  # type: ignore[arg-type]
        with _raises(ConflictError):  # the largest valid version: stale, not malformed
            repository.save(changed, expected_version=MAX_VERSION - 1)
        assert_same_account(stored, repository.get("acc-1"))
        assert type(repository.get("acc-1").version) is int
        assert repository.save(changed, expected_version=1).version == 2

    def test_save_of_an_unknown_account_raises_not_found(self) -> None:
        """save() of an account never added raises NotFound and stores nothing."""
        repository = self.repository()
        with _raises(NotFound):
            repository.save(_account(), expected_version=0)
        with _raises(NotFound):
            repository.save(_account(), expected_version=1)
        assert repository.page() == []

    def test_save_refuses_another_accounts_email_and_phone(self) -> None:
        """save() taking another account's email or phone raises ConflictError, writes nothing."""
        repository = self.repository()
        repository.add(_account("a", email="ann@acme.example", phone="+4930123456"))
        b = repository.add(_account("b", email="bob@acme.example"))
        with _raises(ConflictError):
            repository.save(attrs.evolve(b, email="ann@acme.example"), expected_version=1)
        with _raises(ConflictError):
            repository.save(attrs.evolve(b, phone="+4930123456"), expected_version=1)
        assert_same_account(b, repository.get("b"))
        assert _present(repository.find_by_email("ann@acme.example")).id == "a"

    def test_save_may_keep_its_own_contact_details(self) -> None:
        """An account saved with its own email and phone does not conflict with itself."""
        repository = self.repository()
        stored = repository.add(_account(email="ann@acme.example", phone="+4930123456"))
        saved = repository.save(attrs.evolve(stored, name="Renamed"), expected_version=1)
        assert saved.email == "ann@acme.example"

    def test_changed_email_frees_the_old_one(self) -> None:
        """After an account changes email, the old one is free and no longer found."""
        repository = self.repository()
        stored = repository.add(_account("a", email="ann@acme.example", phone="+4930123456"))
        repository.save(attrs.evolve(stored, email=None, phone="0301234567"), expected_version=1)
        assert repository.find_by_email("ann@acme.example") is None
        assert repository.find_by_phone("+4930123456") is None
        repository.add(_account("b", email="ann@acme.example", phone="+4930123456"))
        assert _present(repository.find_by_phone("+4930123456")).id == "b"

    # -- referral codes ---------------------------------------------------------------------

    def test_referral_code_round_trips_and_is_found(self) -> None:
        """A referral code comes back, and find_by_referral_code finds its owner, else None."""
        repository = self.repository()
        stored = repository.add(_account("a", referral_code="k7m4-pq2x"))
        repository.add(_account("b"))  # no code: nothing to find for it
        assert stored.referral_code == "K7M4PQ2X"
        assert_same_account(stored, repository.get("a"))
        assert_same_account(stored, _present(repository.find_by_referral_code("K7M4PQ2X")))
        assert repository.find_by_referral_code("ZZZZ9999") is None
        assert repository.find_by_referral_code("' OR '1'='1") is None
        assert repository.find_by_referral_code("") is None

    def test_add_refuses_another_accounts_referral_code(self) -> None:
        """add() or add_many() of a stored (or twice-batched) code raises ConflictError."""
        repository = self.repository()
        repository.add(_account("a", referral_code="K7M4PQ2X"))
        with _raises(ConflictError):
            repository.add(_account("b", referral_code="K7M4PQ2X"))
        with _raises(ConflictError):
            repository.add_many([_account("c"), _account("d", referral_code="K7M4PQ2X")])
        with _raises(ConflictError):
            repository.add_many(
                [_account("c", referral_code="ABCD"), _account("d", referral_code="abcd")]
            )
        assert [a.id for a in repository.page()] == ["a"]
        assert repository.find_by_referral_code("ABCD") is None
        assert repository.find_id(referral_code="K7M4PQ2X") == "a"

    def test_save_refuses_another_accounts_referral_code(self) -> None:
        """save() taking another account's referral code raises ConflictError, writes nothing."""
        repository = self.repository()
        repository.add(_account("a", referral_code="K7M4PQ2X"))
        b = repository.add(_account("b", referral_code="ABCD"))
        with _raises(ConflictError):
            repository.save(
                attrs.evolve(b, name="Taken", referral_code="K7M4PQ2X"), expected_version=1
            )
        assert_same_account(b, repository.get("b"))
        assert _present(repository.find_by_referral_code("K7M4PQ2X")).id == "a"
        assert _present(repository.find_by_referral_code("ABCD")).id == "b"
        assert repository.save(attrs.evolve(b, name="Kept"), expected_version=1).version == 2

    def test_save_may_keep_its_own_referral_code(self) -> None:
        """An account saved with its own referral code does not conflict with itself."""
        repository = self.repository()
        stored = repository.add(_account(referral_code="K7M4PQ2X", email="ann@acme.example"))
        saved = repository.save(attrs.evolve(stored, name="Renamed"), expected_version=1)
        assert saved.referral_code == "K7M4PQ2X"
        assert_same_account(saved, _present(repository.find_by_referral_code("K7M4PQ2X")))

    def test_changed_referral_code_frees_the_old_one(self) -> None:
        """After an account changes its referral code, the old one is free and not found."""
        repository = self.repository()
        stored = repository.add(_account("a", referral_code="K7M4PQ2X"))
        repository.save(attrs.evolve(stored, referral_code="NEWCODE1"), expected_version=1)
        assert repository.find_by_referral_code("K7M4PQ2X") is None
        assert repository.find_id(referral_code="NEWCODE1") == "a"
        repository.add(_account("b", referral_code="K7M4PQ2X"))
        assert repository.find_id(referral_code="K7M4PQ2X") == "b"

    def test_a_rolled_back_referral_code_is_not_found(self) -> None:
        """A referral code written in an atomic block that raises is neither found nor taken."""
        repository = self.repository()
        stored = repository.add(_account("a", referral_code="K7M4PQ2X"))
        with _raises(_Rollback), repository.atomic():
            repository.add(_account("b", referral_code="ABCD"))
            repository.save(attrs.evolve(stored, referral_code=None), expected_version=1)
            assert repository.find_id(referral_code="K7M4PQ2X") is None
            raise _Rollback
        assert repository.find_by_referral_code("ABCD") is None
        assert repository.find_id(referral_code="ABCD") is None
        assert_same_account(stored, _present(repository.find_by_referral_code("K7M4PQ2X")))
        with _raises(ConflictError):
            repository.add(_account("c", referral_code="K7M4PQ2X"))

    # -- find_id: the duplicate check -------------------------------------------------------

    def test_find_id_for_email_phone_and_referral_code(self) -> None:
        """find_id() returns the id holding an email, phone or referral code, else None."""
        repository = self.repository()
        nul = HOSTILE_TEXT[6]  # an id with a NUL inside comes back whole
        repository.add(
            _account("a", email="ann@acme.example", phone="+4930123456", referral_code="K7M4PQ2X")
        )
        repository.add(_account("b", email="bob@acme.example"))
        repository.add(_account(nul, phone="0301234567", referral_code="ABCD"))
        hits = {
            "a": [
                repository.find_id(email="ann@acme.example"),
                repository.find_id(phone="+4930123456"),
                repository.find_id(referral_code="K7M4PQ2X"),
            ],
            "b": [repository.find_id(email="bob@acme.example")],
            nul: [
                repository.find_id(phone="0301234567"),
                repository.find_id(referral_code="ABCD"),
            ],
        }
        for account_id, found in hits.items():
            assert found == [account_id] * len(found), f"{account_id!r}: found {found!r}"
            assert all(type(found_id) is str for found_id in found)
        misses = (
            repository.find_id(email="eve@x.example"),
            repository.find_id(phone="+15551234567"),
            repository.find_id(referral_code="ZZZZ9999"),
            repository.find_id(email="' OR '1'='1"),
            repository.find_id(phone="ann@acme.example"),  # a key of another kind
            repository.find_id(referral_code="a"),  # an id is not a key
        )
        assert misses == (None,) * len(misses)

    def test_find_ids_answers_a_batch_as_find_id_does(self) -> None:
        """find_ids() maps each held value to its id, as find_id() would; misses are absent."""
        repository = self.repository()
        nul = HOSTILE_TEXT[6]
        repository.add(
            _account("a", email="ann@acme.example", phone="+4930123456", referral_code="K7M4PQ2X")
        )
        repository.add(_account("b", email="bob@acme.example"))
        repository.add(_account(nul, phone="0301234567", referral_code="ABCD"))
        repository.add_many(
            _account(f"many-{i:04d}", email=f"lead{i}@list.example") for i in range(1200)
        )
        asked = {
            "email": [
                "ann@acme.example", "eve@x.example", "bob@acme.example", "ann@acme.example",
                "' OR '1'='1", *(f"lead{i}@list.example" for i in range(0, 1300, 7)),
            ],
            "phone": ["+4930123456", "0301234567", "ann@acme.example", "+15551234567"],
            "referral_code": ["ABCD", "K7M4PQ2X", "a", "ZZZZ9999"],
        }  # fmt: skip
        for kind, values in asked.items():
            found = repository.find_ids(kind, iter(values))
            expected = {}
            for value in values:
                account_id = repository.find_id(**{kind: value})
                if account_id is not None:
                    expected[value] = account_id
            assert found == expected, kind
            assert all(type(key) is str and type(i) is str for key, i in found.items())
        assert repository.find_ids("email", []) == {}

    def test_holders_answer_what_get_and_the_finders_answer(self) -> None:
        """holders() (``Batching``) finds by id, email, phone and code as get and find_by_* do.

        An adapter without the capability has neither of its methods.
        """
        repository = self.repository()
        if not isinstance(repository, Batching):
            assert not hasattr(repository, "holders")
            assert not hasattr(repository, "write_all")
            return
        repository.add(
            _account("a", email="ann@acme.example", phone="+4930123456", referral_code="K7M4PQ2X")
        )
        repository.add(_account("b", email="bob@acme.example", phone="0301234567"))
        found = repository.holders(
            account_id="b", email="ann@acme.example", phone="0301234567", referral_code="K7M4PQ2X"
        )
        assert found.by_id is not None
        assert found.by_email is not None
        assert found.by_phone is not None
        assert found.by_code is not None
        assert_same_account(found.by_id, repository.get("b"))
        assert_same_account(found.by_email, _present(repository.find_by_email("ann@acme.example")))
        assert_same_account(found.by_phone, _present(repository.find_by_phone("0301234567")))
        assert_same_account(found.by_code, _present(repository.find_by_referral_code("K7M4PQ2X")))
        nobody = Holders(None, None, None, None)
        assert repository.holders(account_id="zz", email="eve@x.example") == nobody
        assert repository.holders(account_id=HOSTILE_TEXT[6], phone=HOSTILE_TEXT[0]) == nobody
        assert repository.holders() == nobody

    def test_write_all_stores_every_account_or_none(self) -> None:
        """write_all() (``Batching``) adds and saves together; one refusal stores none of them."""
        repository = self.repository()
        if not isinstance(repository, Batching):
            assert not hasattr(repository, "write_all")
            return
        repository.add(_account("a", email="ann@acme.example"))
        first = repository.get("a")
        written = repository.write_all(
            [attrs.evolve(first, name="Acme 2"), _account("c", email="cid@x.example")]
        )
        assert [(w.id, w.version) for w in written] == [("a", 2), ("c", 1)]
        assert repository.get("a").name == "Acme 2"
        assert repository.get("c").version == 1
        second = repository.get("a")
        with _raises(ConflictError):  # the add is refused: the save is undone
            repository.write_all(
                [attrs.evolve(second, name="Acme 3"), _account("d", email="ann@acme.example")]
            )
        with _raises(StaleWrite):  # the save is stale: the add is undone
            repository.write_all(
                [_account("e", email="eve@x.example"), attrs.evolve(first, name="Acme old")]
            )
        with _raises(NotFound):  # a save of an account that is not stored
            repository.write_all([_account("f"), attrs.evolve(_account("zz"), version=1)])
        with _raises(ValidationError):  # what is no account is refused before any write
            repository.write_all([_account("g"), 1])  # type: ignore[list-item]
        assert (repository.get("a").name, repository.get("a").version) == ("Acme 2", 2)
        for missing in ("d", "e", "f", "g"):
            with _raises(NotFound):
                repository.get(missing)
        assert repository.write_all([]) == []

    def test_find_ids_refuses_a_bad_kind_or_value(self) -> None:
        """find_ids() with another kind, a value not a str, or a str for values: ValidationError."""
        repository = self.repository()
        repository.add(_account("a", email="ann@acme.example"))
        for kind, values in (
            ("id", ["a"]),
            ("name", ["Acme GmbH"]),
            ("email", ["ann@acme.example", 5]),
            ("email", [None]),
            ("email", "ann@acme.example"),
            ("phone", 5),
        ):
            with _raises(ValidationError):
                repository.find_ids(kind, values)  # type: ignore[arg-type]
        assert repository.find_ids("email", ["ann@acme.example"]) == {"ann@acme.example": "a"}

    def test_find_id_refuses_zero_or_two_keys(self) -> None:
        """find_id() with no key, two or three keys, or a key not a str raises ValidationError."""
        repository = self.repository()
        repository.add(
            _account("a", email="ann@acme.example", phone="+4930123456", referral_code="ABCD")
        )
        malformed: tuple[dict[str, Any], ...] = (
            {},
            {"email": None, "phone": None, "referral_code": None},
            {"email": "ann@acme.example", "phone": "+4930123456"},
            {"email": "ann@acme.example", "referral_code": "ABCD"},
            {"phone": "+4930123456", "referral_code": "ABCD"},
            {"email": "ann@acme.example", "phone": "+4930123456", "referral_code": "ABCD"},
            {"email": 5},
            {"phone": b"+4930123456"},
            {"referral_code": ["ABCD"]},
        )
        for keys in malformed:
            with _raises(ValidationError):
                repository.find_id(**keys)
        assert repository.find_id(email="ann@acme.example") == "a"

    # -- look-ups ---------------------------------------------------------------------------

    def test_find_by_email_and_phone(self) -> None:
        """find_by_email/find_by_phone return the owner of a normalised contact, else None."""
        repository = self.repository()
        stored = repository.add(_account(email="Ann@Acme.example", phone="+49 30 123456"))
        assert_same_account(stored, _present(repository.find_by_email("ann@acme.example")))
        assert_same_account(stored, _present(repository.find_by_phone("+4930123456")))
        assert repository.find_by_email("bob@acme.example") is None
        assert repository.find_by_phone("0301234567") is None
        assert repository.find_by_email("' OR '1'='1") is None

    def test_with_stage_lists_oldest_first_then_by_id(self) -> None:
        """with_stage() yields the stage's accounts by creation instant (any offset), then id."""
        plus_two = timezone(timedelta(hours=2))
        repository = self.repository()
        repository.add(_account("c", created_at=_T0 + timedelta(hours=1)))
        repository.add(_account("b", created_at=(_T0 + timedelta(hours=1)).astimezone(plus_two)))
        repository.add(_account("z", created_at=_T0.astimezone(plus_two)))
        repository.add(_account("a", created_at=_T0 + timedelta(microseconds=1)))
        repository.add(_account("q", created_at=_T0, stage=Stage.QUALIFIED))
        ids = [account.id for account in repository.with_stage(Stage.PROSPECT)]
        assert ids == ["z", "a", "b", "c"]
        assert [account.id for account in repository.with_stage(Stage.QUALIFIED)] == ["q"]
        assert list(repository.with_stage(Stage.CHURNED)) == []

    def test_with_stage_takes_a_stage_name(self) -> None:
        """with_stage("prospect") is with_stage(Stage.PROSPECT); a malformed name is refused."""
        repository = self.repository()
        repository.add(_account("p"))
        repository.add(_account("q", stage=Stage.QUALIFIED))
        assert [a.id for a in repository.with_stage("prospect")] == ["p"]  # type: ignore[arg-type]
        assert [a.id for a in repository.with_stage("qualified")] == ["q"]  # type: ignore[arg-type]
        assert list(repository.with_stage("churned")) == []  # type: ignore[arg-type]
        for malformed in ("Prospect", "no such stage", "", 5):
            with _raises(ValidationError):
                list(repository.with_stage(malformed))  # type: ignore[arg-type]

    def test_with_stage_lists_many_accounts(self) -> None:
        """with_stage() yields every account of a large stage exactly once, in order."""
        repository = self.repository()
        accounts = [
            _account(f"acc-{index:04d}", created_at=_T0 + timedelta(seconds=index % 97))
            for index in range(600)
        ]
        repository.add_many(accounts)
        listed = [account.id for account in repository.with_stage(Stage.PROSPECT)]
        expected = sorted(accounts, key=lambda a: (a.created_at, a.id))
        assert listed == [account.id for account in expected]

    def test_count_by_stage(self) -> None:
        """count_by_stage() counts the accounts at each stage."""
        repository = self.repository()
        assert {k: v for k, v in repository.count_by_stage().items() if v} == {}
        stages = [Stage.PROSPECT, Stage.PROSPECT, Stage.QUALIFIED, Stage("nurture")]
        for index, stage in enumerate(stages):
            repository.add(_account(f"acc-{index}", stage=stage))
        counts = {k: v for k, v in repository.count_by_stage().items() if v}
        assert counts == {Stage.PROSPECT: 2, Stage.QUALIFIED: 1, Stage("nurture"): 1}
        assert all(type(stage) is Stage for stage in counts)

    def test_page_orders_by_id_and_limits(self) -> None:
        """page() returns up to ``limit`` accounts after ``after``, ordered by id code points."""
        ids = ["b", "a", "B", "ä", "aa", "a-1", "🍣", "z", "Z9", "\u00e9", "e\u0301"]
        repository = self.repository()
        for account_id in ids:
            repository.add(_account(account_id))
        everything = [account.id for account in repository.page()]
        assert everything == sorted(ids)
        assert [a.id for a in repository.page(limit=3)] == sorted(ids)[:3]
        after_a = [account_id for account_id in sorted(ids) if account_id > "a"][:4]
        assert [a.id for a in repository.page(after="a", limit=4)] == after_a
        assert repository.page(after=sorted(ids)[-1]) == []
        assert [a.id for a in repository.page(after="")] == sorted(ids)

    def test_page_walks_every_account_once(self) -> None:
        """Paging with ``after`` = the last id seen visits every account exactly once."""
        repository = self.repository()
        repository.add_many(_account(f"acc-{index:03d}") for index in range(25))
        seen: list[str] = []
        after: str | None = None
        while page := repository.page(after=after, limit=7):
            seen.extend(account.id for account in page)
            after = page[-1].id
        assert seen == [f"acc-{index:03d}" for index in range(25)]

    def test_page_refuses_a_limit_below_one(self) -> None:
        """page(limit=0) raises ValidationError."""
        with _raises(ValidationError):
            self.repository().page(limit=0)

    def test_page_refuses_malformed_arguments(self) -> None:
        """page() with a limit not an int in [1, MAX_PAGE], or an after not a str, is refused."""
        repository = self.repository()
        repository.add(_account("a"))
        for limit in (-1, 1.0, 10.5, True, "10", None, Decimal(10), MAX_PAGE + 1, 2**63, 2**64):
            with _raises(ValidationError):
                repository.page(limit=limit)  # type: ignore[arg-type]
        for after in (5, b"a", ["a"]):
            with _raises(ValidationError):
                repository.page(after=after)  # type: ignore[arg-type]
        assert [a.id for a in repository.page(limit=MAX_PAGE)] == ["a"]

    # -- transactions -----------------------------------------------------------------------

    def test_atomic_keeps_every_write_of_a_successful_block(self) -> None:
        """Writes inside a block that ends normally are all stored."""
        repository = self.repository()
        with repository.atomic():
            a = repository.add(_account("a"))
            repository.add(_account("b"))
            repository.save(attrs.evolve(a, name="Changed"), expected_version=1)
        assert repository.get("a").name == "Changed"
        assert repository.get("b").version == 1

    def test_atomic_undoes_every_write_when_the_block_raises(self) -> None:
        """A block that raises leaves no trace of its writes, and the exception propagates."""
        repository = self.repository()
        before = repository.add(_account("a", email="ann@acme.example"))
        with _raises(_Rollback), repository.atomic():
            repository.add(_account("b", email="bob@acme.example"))
            repository.save(attrs.evolve(before, email="eve@x.example"), expected_version=1)
            assert repository.get("a").email == "eve@x.example"
            raise _Rollback
        assert_same_account(before, repository.get("a"))
        with _raises(NotFound):
            repository.get("b")
        assert repository.find_by_email("ann@acme.example") is not None
        assert repository.find_by_email("bob@acme.example") is None
        repository.add(_account("c", email="bob@acme.example"))  # bob's email is free again

    def test_nested_atomic_undoes_only_the_inner_block(self) -> None:
        """An inner block that raises is undone; the outer block's writes still land."""
        repository = self.repository()
        with repository.atomic():
            repository.add(_account("outer"))
            with _raises(_Rollback), repository.atomic():
                repository.add(_account("inner"))
                raise _Rollback
            repository.add(_account("after"))
        assert [a.id for a in repository.page()] == ["after", "outer"]

    def test_outer_failure_undoes_committed_inner_blocks(self) -> None:
        """An inner block that succeeded is still undone when the outer block raises."""
        repository = self.repository()
        with _raises(_Rollback), repository.atomic():
            with repository.atomic():
                repository.add(_account("inner"))
            raise _Rollback
        assert repository.page() == []

    def test_a_conflict_caught_inside_atomic_spoils_nothing(self) -> None:
        """A ConflictError caught inside a block leaves the block's other writes intact."""
        repository = self.repository()
        repository.add(_account("a", email="ann@acme.example"))
        with repository.atomic():
            repository.add(_account("b"))
            with _raises(ConflictError):
                repository.add(_account("c", email="ann@acme.example"))
            repository.add(_account("d"))
        assert [a.id for a in repository.page()] == ["a", "b", "d"]

    def test_a_clash_of_keys_is_a_conflict_not_a_stale_write(self) -> None:
        """A taken id, email or phone raises a plain ConflictError: a retry cannot cure it."""
        repository = self.repository()
        stored = repository.add(_account("a", email="ann@acme.example", phone="+4930111"))
        bob = repository.add(_account("b"))
        attempts: tuple[Callable[[], object], ...] = (
            lambda: repository.add(_account("a")),
            lambda: repository.add(_account("c", email="ann@acme.example")),
            lambda: repository.save(attrs.evolve(bob, phone="+4930111"), expected_version=1),
        )
        for attempt in attempts:
            with _raises(ConflictError):
                try:
                    attempt()
                except StaleWrite as error:
                    raise AssertionError(f"a clash of keys raised StaleWrite: {error}") from None
        assert_same_account(stored, repository.get("a"))

    def test_after_commit_outside_a_block_runs_at_once(self) -> None:
        """With no atomic() block open, after_commit calls the callback before it returns."""
        repository = self.repository()
        repository.add(_account("a"))
        seen: list[str] = []
        repository.after_commit(lambda: seen.append("now"))
        assert seen == ["now"]

    def test_after_commit_waits_for_the_outermost_block(self) -> None:
        """Inside blocks, callbacks run in order once the outermost block has committed."""
        repository = self.repository()
        seen: list[str] = []
        with repository.atomic():
            repository.add(_account("a"))
            repository.after_commit(lambda: seen.append("first"))
            with repository.atomic():
                repository.after_commit(lambda: seen.append("inner"))
            assert seen == []  # an inner block's end is no commit
            repository.after_commit(lambda: seen.append("last"))
            assert seen == []
        assert seen == ["first", "inner", "last"]

    def test_after_commit_callbacks_of_a_rolled_back_block_never_run(self) -> None:
        """A block that rolls back drops its callbacks; an inner one drops only its own."""
        repository = self.repository()
        seen: list[str] = []
        with _raises(_Rollback), repository.atomic():
            repository.add(_account("a"))
            repository.after_commit(lambda: seen.append("undone"))
            raise _Rollback
        with repository.atomic():
            repository.after_commit(lambda: seen.append("kept"))
            with _raises(_Rollback), repository.atomic():
                repository.add(_account("b"))
                repository.after_commit(lambda: seen.append("inner undone"))
                raise _Rollback
        assert seen == ["kept"]
        with _raises(_Rollback), repository.atomic():
            with repository.atomic():
                repository.after_commit(lambda: seen.append("inner, outer undone"))
            raise _Rollback
        assert seen == ["kept"]

    def test_after_commit_callbacks_see_the_committed_writes(self) -> None:
        """A callback may read the store, and finds what the committed block wrote."""
        repository = self.repository()
        found: list[int] = []
        with repository.atomic():
            repository.add(_account("a"))
            repository.after_commit(lambda: found.append(repository.get("a").version))
        assert found == [1]

    def test_a_failing_callback_keeps_neither_the_others_nor_the_commit_back(self) -> None:
        """Every callback runs; the first one's error then reaches the block; the writes stand."""
        repository = self.repository()
        seen: list[str] = []

        def fail() -> None:
            raise _Rollback

        with _raises(_Rollback), repository.atomic():
            repository.add(_account("a"))
            repository.after_commit(fail)
            repository.after_commit(lambda: seen.append("after the failure"))
        assert seen == ["after the failure"]
        assert repository.get("a").version == 1
        seen.clear()
        repository.after_commit(lambda: seen.append("next block"))
        assert seen == ["next block"]  # nothing was left held

    def test_after_commit_refuses_what_is_not_callable(self) -> None:
        """after_commit(None) raises ValidationError and holds nothing."""
        repository = self.repository()
        with _raises(ValidationError):
            repository.after_commit(None)  # type: ignore[arg-type]
        with repository.atomic(), _raises(ValidationError):
            repository.after_commit("publish")  # type: ignore[arg-type]

    def test_add_many_stores_all_and_counts(self) -> None:
        """add_many() stores every account at version 1 and returns how many."""
        repository = self.repository()
        assert repository.add_many([]) == 0
        count = repository.add_many(_account(f"acc-{index}") for index in range(5))
        assert count == 5
        assert [a.version for a in repository.page()] == [1] * 5

    def test_add_many_is_all_or_nothing_on_conflict(self) -> None:
        """A conflict anywhere in add_many() (stored or within the batch) stores none."""
        repository = self.repository()
        repository.add(_account("a", email="ann@acme.example"))
        batches = [
            [_account("b"), _account("c", email="ann@acme.example")],
            [_account("b"), _account("a")],
            [_account("b", phone="+4930123456"), _account("c", phone="+4930123456")],
            [_account("b"), _account("c"), _account("b")],
        ]
        for batch in batches:
            with _raises(ConflictError):
                repository.add_many(batch)
            assert [a.id for a in repository.page()] == ["a"]

    def test_add_many_names_the_later_of_two_clashing_accounts(self) -> None:
        """A clash within a batch is the later account's, whatever shape either account has.

        A capture (one change, at creation) and an account with a longer history clash on
        their email: the error names the earlier one as the owner, in either order.
        """
        repository = self.repository()
        moved = (
            HistoryEntry(None, Stage.PROSPECT, "capture", _T0),
            HistoryEntry(Stage.PROSPECT, Stage.QUALIFIED, "qualify", _T0 + timedelta(days=1)),
        )
        for first, second in (("x", "y"), ("y", "x")):
            made = {
                "x": _account("x", email="ann@acme.example", stage=Stage.QUALIFIED, history=moved),
                "y": _account("y", email="ann@acme.example"),
            }
            caught: ConflictError | None = None
            try:
                repository.add_many([made[first], made[second]])
            except ConflictError as error:
                caught = error
            assert caught is not None, "expected ConflictError, nothing was raised"
            assert f"belongs to account {first}" in str(caught), (first, str(caught))
            assert list(repository.page()) == []

    def test_add_many_is_all_or_nothing_on_invalid_input(self) -> None:
        """An invalid account (or a failing iterator) midway through add_many() stores none."""
        repository = self.repository()
        with _raises(ValidationError):
            repository.add_many([_account("a"), _account("b", version=2)])

        def failing() -> Iterator[Account]:
            yield _account("a")
            raise _Rollback

        with _raises(_Rollback):
            repository.add_many(failing())
        assert repository.page() == []

    def test_add_many_inside_a_failing_block_is_undone(self) -> None:
        """add_many() inside an atomic block that raises is undone with it."""
        repository = self.repository()
        with _raises(_Rollback), repository.atomic():
            repository.add_many([_account("a"), _account("b")])
            raise _Rollback
        assert repository.page() == []

    # -- everything at once -----------------------------------------------------------------

    # -- reports the adapter answers itself ---------------------------------------------------

    def test_reports_agree_with_the_pure_functions(self) -> None:
        """Each report_<name> the adapter offers equals the pure report, before and after saves."""
        repository = self.repository()
        full = _full_account()
        buyer = _account(
            "acc-buyer",
            stage=Stage.REPEAT,
            history=(
                HistoryEntry(None, Stage.PROSPECT, "capture", _T0),
                HistoryEntry(Stage.PROSPECT, Stage.QUALIFIED, "qualify", _T0),
                HistoryEntry(Stage.QUALIFIED, Stage.CUSTOMER, "purchase", _T0 + timedelta(days=1)),
                HistoryEntry(Stage.CUSTOMER, Stage.REPEAT, "purchase", _T0 + timedelta(days=2)),
            ),
            purchases=(
                Purchase(Money("10.00", "EUR"), _T0 + timedelta(days=1)),
                Purchase(Money("0", "USD"), _T0 + timedelta(days=1, hours=1)),
                Purchase(Money("2.5", "EUR"), _T0 + timedelta(days=2)),
            ),
        )  # fmt: skip
        repository.add(full)
        repository.add_many([buyer, _account("acc-lead", created_at=_T0 - timedelta(days=9))])
        for days in (-10, 0, 1, 2, 30):
            assert_reports_agree(repository, as_of=_T0 + timedelta(days=days))
        stored = repository.get("acc-buyer")
        more = stored.with_changes(
            purchases=(*stored.purchases, Purchase(Money("1.005", "EUR"), _T0 + timedelta(days=5)))
        )
        repository.save(more, expected_version=stored.version)
        fewer = repository.get("acc-full")
        repository.save(fewer.with_changes(purchases=fewer.purchases[1:]), expected_version=1)
        for days in (0, 4, 5, 30):
            assert_reports_agree(repository, as_of=_T0 + timedelta(days=days))

    def test_reports_agree_on_random_accounts(self) -> None:
        """Random stored accounts of any shape: each report_<name> equals the pure report."""

        @settings(self.round_trip_settings, max_examples=15)
        @given(
            batch=st.lists(report_accounts(), max_size=6, unique_by=lambda a: a.id),
            as_of=_moments(),
        )
        def agree(batch: list[Account], as_of: datetime) -> None:
            repository = self.make_repository()
            try:
                repository.add_many(batch)
                assert_reports_agree(repository, as_of=as_of)
            finally:
                self.dispose_repository(repository)

        agree()

    # -- criteria inside the store -------------------------------------------------------

    def test_criteria_select_exactly_the_prospects_python_passes(self) -> None:
        """Random criteria and attributes: the store's pick, judged, is Python's verdict.

        The pick (:func:`salesprocess.storage.selection.prospects`) holds every prospect the
        criteria pass; a store that is a ``CriteriaSelection`` picks, oldest first, every
        prospect they pass and none the reference prefilter (``criteria_sql.may_pass``) rules
        out (but text with control characters, which a store may leave to Python), loose
        equality and truthiness corners included.
        """

        @settings(self.round_trip_settings, max_examples=30)
        @given(document=_criteria_documents(), rows=st.lists(_prospect_attributes(), max_size=8))
        @example(document=_NUL_DOCUMENT, rows=_NUL_ROWS)  # PostgreSQL text cannot hold NUL
        def agree(document: object, rows: list[dict[str, object]]) -> None:
            criteria = Criteria.from_dict(document, name="random", version="1")
            check = prefilter(criteria)
            repository = self.make_repository()
            try:
                repository.add_many(_prospects(rows))
                stored = list(repository.with_stage(Stage.PROSPECT))
                passing = [a.id for a in stored if criteria.passes(a)]
                kept = [a.id for a in stored if may_pass(check, a.attributes)]
                assert set(passing) <= set(kept)
                if isinstance(repository, CriteriaSelection):
                    matching = [
                        a.id for a in repository.prospects_matching(check, stage=Stage.PROSPECT)
                    ]
                    # A store may keep, unjudged, what it cannot read in SQL (PostgreSQL's
                    # JSON functions refuse text holding NUL): control characters, in a
                    # prospect's attributes or in the criteria (then any prospect).
                    unsure = {
                        a.id
                        for a in stored
                        if _control_text(document) or _control_text(a.attributes)
                    }
                    assert set(passing) <= set(matching) <= set(kept) | unsure
                    # Oldest first, as with_stage lists them (an unsure pick is not in kept).
                    assert matching == [a.id for a in stored if a.id in set(matching)]
                picked = prospects(repository, criteria, Stage.PROSPECT)
                assert [a.id for a in picked if criteria.passes(a)] == passing
            finally:
                self.dispose_repository(repository)

        agree()

    def test_bulk_screening_records_what_screening_one_by_one_records(self) -> None:
        """Random criteria: screen_stage's records, events, reports equal Python's verdicts.

        For a store that is a ``BulkScreening`` the ruled-out prospects are screened inside it;
        every prospect still gets one screening with the criteria's verdict, its version raised
        by one, a ``LeadScreened`` event in oldest-first order and a report that explains.
        """

        @settings(self.round_trip_settings, max_examples=20)
        @given(
            document=_criteria_documents(),
            rows=st.lists(_prospect_attributes(), max_size=7),
            batch=st.integers(1, 4),
        )
        @example(document=_NUL_DOCUMENT, rows=_NUL_ROWS, batch=2)
        def agree(document: object, rows: list[dict[str, object]], batch: int) -> None:
            criteria = Criteria.from_dict(document, name="random", version="1")
            repository = self.make_repository()
            try:
                repository.add_many(_prospects(rows))
                before = list(repository.with_stage(Stage.PROSPECT))
                bus = EventBus()
                seen: list[object] = []
                bus.subscribe(seen.append)
                uow = UnitOfWork(repository, clock=FixedClock(_T0), bus=bus, max_retries=0)
                moment = _T0 + timedelta(days=1)
                reports = screen_stage(
                    uow, criteria=criteria, stage=Stage.PROSPECT, moment=moment,
                    batch_size=batch,
                )  # fmt: skip
                verdicts = [criteria.passes(a) for a in before]
                assert [(r.account_id, r.passed) for r in reports] == [
                    (a.id, v) for a, v in zip(before, verdicts, strict=True)
                ]
                assert [r.clauses for r in reports] == [criteria.judge(a).clauses for a in before]
                for account, verdict in zip(before, verdicts, strict=True):
                    after = repository.get(account.id)
                    record = Screening(moment, criteria.name, criteria.version, verdict)
                    assert_same_account(
                        attrs.evolve(account, screenings=(record,), version=2), after
                    )
                assert [(e.account_id, e.screening.passed) for e in seen] == [  # type: ignore[attr-defined]
                    (a.id, v) for a, v in zip(before, verdicts, strict=True)
                ]
            finally:
                self.dispose_repository(repository)

        agree()

    def test_agrees_with_a_model_under_random_commands(self) -> None:
        """Random commands give the same results as a plain-dict model (Hypothesis stateful)."""
        machine = repository_state_machine(self.make_repository, dispose=self.dispose_repository)
        run_state_machine_as_test(machine, settings=self.state_machine_settings)


#: Criteria whose literal and path hold NUL, and prospects matching them: the literal cannot
#: travel to PostgreSQL as text, so the store must leave them to Python, not fail.
_NUL_DOCUMENT: Final = {
    "and": [{"in": [{"var": "a"}, ["a\x00b"]]}, {"==": [{"var": "b\x00"}, "x"]}]
}
_NUL_ROWS: Final = [{"a": "a\x00b", "b\x00": "x"}, {"a": "a"}, {}]


# --- the state machine ------------------------------------------------------------------------


def _add_error(model: Mapping[str, Account], account: Account) -> str | None:
    """Which rule adding ``account`` to ``model`` breaks, in the order the protocol checks."""
    if account.id in model:
        return "id"
    return _contact_error(model, account)


def _contact_error(model: Mapping[str, Account], account: Account) -> str | None:
    for other in model.values():
        if other.id == account.id:
            continue
        if account.email is not None and other.email == account.email:
            return "email"
        if account.phone is not None and other.phone == account.phone:
            return "phone"
        if account.referral_code is not None and other.referral_code == account.referral_code:
            return "referral code"
    return None


class ReadsManyContract(RepositoryContract):
    """:class:`RepositoryContract`, and the promises of :class:`~salesprocess.storage.ReadsMany`.

    For an adapter that offers ``get_many``: subclass this one instead of
    :class:`RepositoryContract` (it runs every test of that one too).
    """

    __test__: ClassVar[bool] = False

    def test_get_many_answers_as_get_does(self) -> None:
        """get_many() maps each stored id to what get() returns; unknown ids are absent."""
        repository = self.repository()
        full = repository.add(_full_account())
        nul = HOSTILE_TEXT[6]
        repository.add(_account(nul, email="nul@x.example"))
        repository.add_many(
            _account(f"many-{i:04d}", email=f"lead{i}@list.example") for i in range(1200)
        )
        saved = repository.save(full.with_changes(name="Müller & Söhne KG"), expected_version=1)
        many = [f"many-{i:04d}" for i in range(0, 1300, 3)]
        asked = ["acc-full", nul, "no-such-account", "acc-full", "' OR '1'='1", *many]
        found = _reads_many(repository).get_many(iter(asked))
        assert set(found) == {"acc-full", nul, *(i for i in many if int(i[5:]) < 1200)}
        for account_id, account in found.items():
            assert_same_account(repository.get(account_id), account)
        assert_same_account(saved, found["acc-full"])
        assert _reads_many(repository).get_many([]) == {}
        assert _reads_many(repository).get_many(["no-such-account"]) == {}

    def test_get_many_refuses_what_is_no_collection_of_ids(self) -> None:
        """get_many() of text, None, or a collection holding a non-str raises ValidationError."""
        repository = self.repository()
        repository.add(_account("a"))
        for values in ("a", b"a", None, 5, ["a", 5], [None], [b"a"]):
            with _raises(ValidationError):
                _reads_many(repository).get_many(values)  # type: ignore[arg-type]


def _reads_many(repository: AccountRepository) -> ReadsMany:
    assert isinstance(repository, ReadsMany), f"{type(repository).__name__} has no get_many()"
    return repository


def repository_state_machine(
    factory: RepositoryFactory,
    *,
    accounts: st.SearchStrategy[Account] | None = None,
    dispose: Callable[[AccountRepository], None] = _close,
) -> type[RuleBasedStateMachine]:
    """Return a state machine class that checks the repositories ``factory`` makes.

    Each run starts from ``factory()`` (a new, empty repository) and an empty dict model, runs
    random commands against both and asserts they agree; ``dispose`` releases the repository
    at the end (default: its ``close()``, if any). ``accounts`` draws new accounts (version
    0); the default stresses storage with hostile text and every JSON type. Run it with
    ``repository_state_machine(factory).TestCase`` as a pytest/unittest test, or with
    :func:`hypothesis.stateful.run_state_machine_as_test`.
    """
    new_accounts = _machine_accounts() if accounts is None else accounts

    class RepositoryMachine(RuleBasedStateMachine):
        """Random commands against a repository and a dict model, which must agree."""

        ids = Bundle("ids")

        def __init__(self) -> None:
            super().__init__()
            self.repository = factory()
            self.model: dict[str, Account] = {}

        def teardown(self) -> None:
            dispose(self.repository)

        # writes

        @rule(target=ids, account=new_accounts)
        def add(self, account: Account) -> object:
            error = _add_error(self.model, account)
            if error is not None:
                note(f"expect ConflictError ({error})")
                with _raises(ConflictError):
                    self.repository.add(account)
                return multiple()
            stored = self.repository.add(account)
            assert_same_account(attrs.evolve(account, version=1), stored)
            self.model[account.id] = stored
            return account.id

        @rule(account_id=ids, account=new_accounts)
        def add_with_a_stored_id(self, account_id: str, account: Account) -> None:
            with _raises(ConflictError):
                self.repository.add(attrs.evolve(account, id=account_id))

        @rule(target=ids, batch=st.lists(new_accounts, max_size=4))
        def add_many(self, batch: list[Account]) -> object:
            model = dict(self.model)
            error = None
            for account in batch:
                error = _add_error(model, account)
                if error is not None:
                    break
                model[account.id] = attrs.evolve(account, version=1)
            if error is not None:
                note(f"expect ConflictError ({error}): nothing stored")
                with _raises(ConflictError):
                    self.repository.add_many(batch)
                return multiple()
            assert self.repository.add_many(batch) == len(batch)
            self.model = model
            return multiple(*(account.id for account in batch))

        @rule(
            account_id=ids,
            name=st.sampled_from(["Renamed", "Zoë 🍣", "O'Brien"]),
            email=_optional(st.sampled_from(_EMAILS)),
            phone=_optional(st.sampled_from(_PHONES)),
            referral_code=_optional(st.sampled_from(_CODES)),
            stage=st.sampled_from(_STAGES),
            attributes=st.sampled_from(_MACHINE_ATTRIBUTES),
            moment=st.sampled_from(_MACHINE_MOMENTS),
        )
        def save(
            self,
            *,
            account_id: str,
            name: str,
            email: str | None,
            phone: str | None,
            referral_code: str | None,
            stage: Stage,
            attributes: dict[str, object],
            moment: datetime,
        ) -> None:
            current = self.model[account_id]
            changed = attrs.evolve(
                current,
                name=name,
                email=email,
                phone=phone,
                referral_code=referral_code,
                stage=stage,
                attributes=attributes,
                history=(*current.history, HistoryEntry(current.stage, stage, "move", moment)),
            )
            if _contact_error(self.model, changed) is not None:
                with _raises(ConflictError):
                    self.repository.save(changed, expected_version=current.version)
                return
            stored = self.repository.save(changed, expected_version=current.version)
            assert_same_account(attrs.evolve(changed, version=current.version + 1), stored)
            self.model[account_id] = stored

        @rule(account_id=ids, offset=st.sampled_from([-1, 1, 2, -5]), name=st.just("Stale"))
        def save_stale(self, account_id: str, offset: int, name: str) -> None:
            current = self.model[account_id]
            expected = current.version + offset
            # A negative version is not a stale one but a malformed one.
            with _raises(ConflictError if expected >= 0 else ValidationError):
                self.repository.save(attrs.evolve(current, name=name), expected_version=expected)

        @rule(account=new_accounts, version=st.integers(min_value=0, max_value=3))
        def save_unknown(self, account: Account, version: int) -> None:
            assume(account.id not in self.model)
            with _raises(NotFound):
                self.repository.save(account, expected_version=version)

        @rule(
            accounts=st.lists(new_accounts, min_size=1, max_size=3),
            account_id=st.none() | ids,
            nested=st.booleans(),
        )
        def atomic_block_that_fails(
            self, accounts: list[Account], account_id: str | None, nested: bool
        ) -> None:
            with _raises(_Rollback), self.repository.atomic():
                for account in accounts:
                    with suppress(ConflictError):
                        self.repository.add(account)
                if account_id is not None:
                    current = self.model[account_id]
                    self.repository.save(
                        attrs.evolve(
                            current,
                            name="rolled back",
                            email=None,
                            phone=None,
                            referral_code=None,
                        ),
                        expected_version=current.version,
                    )
                if nested:
                    with self.repository.atomic():
                        self.repository.add_many([])
                raise _Rollback
            self._check_everything()

        @rule(target=ids, outer=new_accounts, inner=new_accounts)
        def nested_block_whose_inner_part_fails(self, outer: Account, inner: Account) -> object:
            assume(_add_error(self.model, outer) is None)
            with self.repository.atomic():
                self.repository.add(outer)
                with _raises(_Rollback), self.repository.atomic():
                    with suppress(ConflictError):
                        self.repository.add(inner)
                    raise _Rollback
            self.model[outer.id] = attrs.evolve(outer, version=1)
            if inner.id not in self.model:
                with _raises(NotFound):
                    self.repository.get(inner.id)
            return outer.id

        # reads

        @rule(account_id=ids)
        def get(self, account_id: str) -> None:
            assert_same_account(self.model[account_id], self.repository.get(account_id))

        @rule(account_id=st.sampled_from(_MACHINE_IDS) | st.just("never-added"))
        def get_unknown(self, account_id: str) -> None:
            assume(account_id not in self.model)
            with _raises(NotFound):
                self.repository.get(account_id)

        @rule(
            email=st.sampled_from(_EMAILS),
            phone=st.sampled_from(_PHONES),
            code=st.sampled_from(_CODES),
        )
        def find(self, email: str, phone: str, code: str) -> None:
            for found, found_id, kind, value in (
                (
                    self.repository.find_by_email(email),
                    self.repository.find_id(email=email),
                    "email",
                    email,
                ),
                (
                    self.repository.find_by_phone(phone),
                    self.repository.find_id(phone=phone),
                    "phone",
                    phone,
                ),
                (
                    self.repository.find_by_referral_code(code),
                    self.repository.find_id(referral_code=code),
                    "referral_code",
                    code,
                ),
            ):
                owners = [a for a in self.model.values() if getattr(a, kind) == value]
                assert len(owners) <= 1, f"the model has {kind} {value} twice"
                if owners:
                    assert found is not None, f"{kind} {value} not found"
                    assert_same_account(owners[0], found)
                    assert found_id == owners[0].id, f"find_id({kind}={value!r}) is {found_id!r}"
                else:
                    assert found is None, f"{kind} {value} found on {found!r}"
                    assert found_id is None, f"find_id({kind}={value!r}) is {found_id!r}"

        @rule(stage=st.sampled_from(_STAGES))
        def with_stage(self, stage: Stage) -> None:
            expected = sorted(
                (a for a in self.model.values() if a.stage == stage),
                key=lambda a: (a.created_at, a.id),
            )
            actual = list(self.repository.with_stage(stage))
            assert [a.id for a in actual] == [a.id for a in expected]
            for left, right in zip(expected, actual, strict=True):
                assert_same_account(left, right)

        @rule(
            after=st.none() | ids | st.sampled_from(["", "b0", "zz"]),
            limit=st.integers(min_value=1, max_value=5),
        )
        def page(self, after: str | None, limit: int) -> None:
            ids = sorted(i for i in self.model if after is None or i > after)[:limit]
            assert [a.id for a in self.repository.page(after=after, limit=limit)] == ids

        @precondition(lambda self: len(self.model) > 0)
        @invariant()
        def counts_agree(self) -> None:
            counts: dict[Stage, int] = {}
            for account in self.model.values():
                counts[account.stage] = counts.get(account.stage, 0) + 1
            actual = {k: v for k, v in self.repository.count_by_stage().items() if v}
            assert actual == counts

        def _check_everything(self) -> None:
            stored = self.repository.page(limit=len(self.model) + 1)
            assert [a.id for a in stored] == sorted(self.model)
            for account in stored:
                assert_same_account(self.model[account.id], account)

    return RepositoryMachine


# --- the async variant ------------------------------------------------------------------------

_Answer = TypeVar("_Answer")


class Awaiting:
    """Run coroutines to the end, one after another, on an event loop of its own.

    Every coroutine runs in one and the same :mod:`contextvars` context, so what one call does
    in it (an ``atomic()`` block it opened) the next call sees, as in one task. Call
    :meth:`close` when done.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._context = contextvars.copy_context()

    def __call__(self, awaitable: Coroutine[Any, Any, _Answer]) -> _Answer:
        """Run ``awaitable`` to its end; return its result or raise its error."""
        return self.loop.run_until_complete(self.loop.create_task(awaitable, context=self._context))

    def in_context(self, function: Callable[..., _Answer], *args: Any) -> _Answer:
        """Call the plain ``function`` in the coroutines' context (where their blocks are)."""
        return self._context.run(function, *args)

    def close(self) -> None:
        """Close the loop."""
        self.loop.close()


async def _listed(accounts: AsyncIterator[Account]) -> list[Account]:
    return [account async for account in accounts]


class BlockingRepository:
    """An :class:`~salesprocess.storage.AccountRepository` made of an async one.

    Each method awaits the async repository's on ``awaiting``, so every promise of the sync
    protocol can be checked on an async adapter by the very tests that check a sync one.
    """

    def __init__(self, inner: AsyncAccountRepository, awaiting: Awaiting) -> None:
        self.inner = inner
        self.awaiting = awaiting
        # after_commit callbacks are called once the loop has stopped, so that they may call
        # this repository (the loop cannot be run again from inside itself)
        self._committed: list[Callable[[], None]] = []

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def _call_back(self) -> None:
        committed = self._committed[:]
        self._committed.clear()  # in place: what after_commit registered appends to it
        call_all(committed)

    def add(self, account: Account) -> Account:
        """Await ``add``."""
        return self.awaiting(self.inner.add(account))

    def add_many(self, accounts: Iterable[Account]) -> int:
        """Await ``add_many``."""
        return self.awaiting(self.inner.add_many(accounts))

    def get(self, account_id: str) -> Account:
        """Await ``get``."""
        return self.awaiting(self.inner.get(account_id))

    def get_many(self, account_ids: Iterable[str]) -> dict[str, Account]:
        """Await ``get_many`` (of an async repository that has it: ``AsyncReadsMany``)."""
        inner = self.inner
        assert isinstance(inner, AsyncReadsMany), f"{type(inner).__name__} has no get_many()"
        return self.awaiting(inner.get_many(account_ids))

    def save(self, account: Account, *, expected_version: int) -> Account:
        """Await ``save``."""
        return self.awaiting(self.inner.save(account, expected_version=expected_version))

    def find_by_email(self, email: str) -> Account | None:
        """Await ``find_by_email``."""
        return self.awaiting(self.inner.find_by_email(email))

    def find_by_phone(self, phone: str) -> Account | None:
        """Await ``find_by_phone``."""
        return self.awaiting(self.inner.find_by_phone(phone))

    def find_by_referral_code(self, code: str) -> Account | None:
        """Await ``find_by_referral_code``."""
        return self.awaiting(self.inner.find_by_referral_code(code))

    def find_id(
        self,
        *,
        email: str | None = None,
        phone: str | None = None,
        referral_code: str | None = None,
    ) -> str | None:
        """Await ``find_id``."""
        return self.awaiting(
            self.inner.find_id(email=email, phone=phone, referral_code=referral_code)
        )

    def find_ids(self, kind: str, values: Iterable[str]) -> dict[str, str]:
        """Await ``find_ids``."""
        return self.awaiting(self.inner.find_ids(kind, values))

    def with_stage(self, stage: Stage) -> Iterator[Account]:
        """Collect ``with_stage``'s async iterator (its refusals raise here)."""
        return iter(self.awaiting(_listed(self.inner.with_stage(stage))))

    def count_by_stage(self) -> Mapping[Stage, int]:
        """Await ``count_by_stage``."""
        return self.awaiting(self.inner.count_by_stage())

    def page(self, *, after: str | None = None, limit: int = 1000) -> list[Account]:
        """Await ``page``."""
        return self.awaiting(self.inner.page(after=after, limit=limit))

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Enter and leave the async ``atomic()`` block, awaiting each."""
        block = self.inner.atomic()
        self.awaiting(_enter(block))
        try:
            yield
        except BaseException as exc:
            if not self.awaiting(_exit(block, exc)):
                raise
        else:
            self.awaiting(_exit(block, None))
            self._call_back()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``after_commit`` where the coroutines run (so it sees their open block)."""
        checked = require_callback(callback)
        self.awaiting.in_context(self.inner.after_commit, partial(self._committed.append, checked))
        self._call_back()

    def __getattr__(self, name: str) -> Any:
        # report_<name>: the adapter's own answers, awaited, for assert_reports_agree; and
        # the Batching capability, where the adapter has it
        batching = name in ("holders", "write_all") and hasattr(self.inner, name)
        if not (name.startswith("report_") or batching):
            raise AttributeError(name)
        answer = getattr(self.inner, name)

        def report(*args: Any, **options: Any) -> Any:
            return self.awaiting(answer(*args, **options))

        return report


async def _enter(block: Any) -> None:
    await block.__aenter__()


async def _exit(block: Any, exc: BaseException | None) -> bool:
    if exc is None:
        return bool(await block.__aexit__(None, None, None))
    return bool(await block.__aexit__(type(exc), exc, exc.__traceback__))


class AsyncRepositoryContract(RepositoryContract):
    """Pytest tests of every promise of :class:`~salesprocess.storage.AsyncAccountRepository`.

    Subclass it as ``Test<YourAdapter>`` and implement the coroutine
    :meth:`make_async_repository` (and :meth:`dispose_async_repository` for clean-up beyond
    ``aclose()``/``close()``). Every test of :class:`RepositoryContract` runs through a
    :class:`BlockingRepository` (each call awaited on the test's own event loop); the tests
    below run tasks at once.
    """

    __test__: ClassVar[bool] = False

    async def make_async_repository(self) -> AsyncAccountRepository:
        """Return a new, empty async repository of the adapter under test (on the test's loop)."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_async_repository()")

    async def dispose_async_repository(self, repository: AsyncAccountRepository) -> None:
        """Release ``repository``: await its ``aclose()``, or call its ``close()``, if any."""
        closing = getattr(repository, "aclose", None)
        if closing is not None:
            await closing()
            return
        _close(repository)

    def make_repository(self) -> AccountRepository:
        """Return :meth:`make_async_repository`'s repository, awaited on a loop of its own."""
        awaiting = Awaiting()
        try:
            return BlockingRepository(awaiting(self.make_async_repository()), awaiting)
        except BaseException:
            awaiting.close()
            raise

    def dispose_repository(self, repository: AccountRepository) -> None:
        """Dispose of the async repository, then close its loop."""
        assert isinstance(repository, BlockingRepository)
        try:
            repository.awaiting(self.dispose_async_repository(repository.inner))
        finally:
            repository.awaiting.close()

    def _tasks(self, scenario: Callable[[AsyncAccountRepository], Awaitable[None]]) -> None:
        """Run ``scenario`` with a new repository, on a loop of its own."""
        repository = self.repository()
        assert isinstance(repository, BlockingRepository)

        async def run() -> None:
            await scenario(repository.inner)

        repository.awaiting(run())

    # -- what only tasks can do ---------------------------------------------------------------

    def test_with_stage_is_an_async_iterator(self) -> None:
        """with_stage() yields the accounts at a stage with ``async for``, oldest first."""

        async def scenario(repository: AsyncAccountRepository) -> None:
            await repository.add(_account("acc-2", created_at=_T0 + timedelta(days=1)))
            await repository.add(_account("acc-1"))
            listed = [account.id async for account in repository.with_stage(Stage.PROSPECT)]
            assert listed == ["acc-1", "acc-2"]

        self._tasks(scenario)

    def test_another_task_never_sees_a_block_before_it_commits(self) -> None:
        """While one task's atomic() block is open, another task does not see its writes."""

        async def scenario(repository: AsyncAccountRepository) -> None:
            opened, committed = asyncio.Event(), asyncio.Event()
            seen: list[tuple[bool, bool]] = []

            async def writer() -> None:
                async with repository.atomic():
                    await repository.add(_account("acc-1", email="acc-1@example.com"))
                    opened.set()
                    for _ in range(20):  # give the reader every chance to look in
                        await asyncio.sleep(0)
                committed.set()

            async def reader() -> None:
                await opened.wait()
                found = await repository.find_id(email="acc-1@example.com")
                seen.append((found is not None, committed.is_set()))

            await asyncio.gather(writer(), reader())
            ((found, was_committed),) = seen
            assert was_committed or not found, "a task saw another's uncommitted write"
            assert await repository.find_id(email="acc-1@example.com") == "acc-1"

        self._tasks(scenario)

    def test_a_task_outside_any_block_is_called_back_at_once(self) -> None:
        """after_commit outside a block runs at once, though another task has a block open."""

        async def scenario(repository: AsyncAccountRepository) -> None:
            opened, release = asyncio.Event(), asyncio.Event()
            calls: list[str] = []

            async def holder() -> None:
                async with repository.atomic():
                    await repository.add(_account("acc-1"))
                    repository.after_commit(lambda: calls.append("holder"))
                    opened.set()
                    await release.wait()

            async def other() -> None:
                await opened.wait()
                repository.after_commit(lambda: calls.append("other"))
                assert calls == ["other"]
                release.set()

            await asyncio.gather(holder(), other())
            assert calls == ["other", "holder"]

        self._tasks(scenario)

    def test_a_task_that_outlives_the_block_it_started_in_works_outside_it(self) -> None:
        """A task started inside a block, run after it ends, is outside any block.

        It inherits the block's context (context variables are copied) but not its
        transaction: its write commits on its own and its callback runs at once, not lost.
        """

        async def scenario(repository: AsyncAccountRepository) -> None:
            calls: list[str] = []
            release = asyncio.Event()

            async def late() -> None:
                await release.wait()
                await repository.add(_account("acc-2", email="acc-2@example.com"))
                repository.after_commit(lambda: calls.append("late"))
                assert calls == ["late"]

            async with repository.atomic():
                await repository.add(_account("acc-1", email="acc-1@example.com"))
                task = asyncio.create_task(late())
            release.set()
            await task
            assert calls == ["late"]
            assert await repository.find_id(email="acc-2@example.com") == "acc-2"
            async with repository.atomic():  # the late write was not left in an open block
                await repository.add(_account("acc-3", email="acc-3@example.com"))
            assert await repository.find_id(email="acc-3@example.com") == "acc-3"

        self._tasks(scenario)

    def test_a_rolled_back_block_drops_only_its_tasks_callbacks(self) -> None:
        """A block rolled back drops its callbacks and writes; another task's stay."""

        async def scenario(repository: AsyncAccountRepository) -> None:
            calls: list[str] = []

            async def failing() -> None:
                with suppress(_Rollback):
                    async with repository.atomic():
                        await repository.add(_account("acc-1", email="acc-1@example.com"))
                        repository.after_commit(lambda: calls.append("failing"))
                        await asyncio.sleep(0)
                        raise _Rollback

            async def committing() -> None:
                async with repository.atomic():
                    await repository.add(_account("acc-2", email="acc-2@example.com"))
                    repository.after_commit(lambda: calls.append("committing"))
                    await asyncio.sleep(0)

            await asyncio.gather(failing(), committing())
            assert calls == ["committing"]
            assert await repository.find_id(email="acc-1@example.com") is None
            assert await repository.find_id(email="acc-2@example.com") == "acc-2"

        self._tasks(scenario)

    def test_concurrent_saves_of_one_version_let_exactly_one_win(self) -> None:
        """Five tasks save the same version at once: one lands, four raise StaleWrite."""

        async def scenario(repository: AsyncAccountRepository) -> None:
            stored = await repository.add(_account("acc-1"))

            async def rename(number: int) -> str:
                try:
                    await repository.save(
                        stored.with_changes(name=f"Name {number}"), expected_version=1
                    )
                except StaleWrite:
                    return "stale"
                return f"Name {number}"

            outcomes = await asyncio.gather(*(rename(number) for number in range(5)))
            winners = [outcome for outcome in outcomes if outcome != "stale"]
            assert len(winners) == 1
            final = await repository.get("acc-1")
            assert (final.version, final.name) == (2, winners[0])

        self._tasks(scenario)


class AsyncReadsManyContract(AsyncRepositoryContract, ReadsManyContract):
    """:class:`AsyncRepositoryContract`, and the promises of ``AsyncReadsMany``.

    For an async adapter that offers ``get_many``
    (:class:`~salesprocess.storage.async_protocol.AsyncReadsMany`): subclass this one instead
    of :class:`AsyncRepositoryContract`. It runs every test of that one too, and those of
    :class:`ReadsManyContract` through :class:`BlockingRepository`.
    """

    __test__: ClassVar[bool] = False
