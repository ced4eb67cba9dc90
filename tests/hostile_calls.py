"""Hostile calls of every public command of ``SalesProcess``: the strategies and the judge.

Shared by tests/test_hostile_input.py (Hypothesis, on every adapter) and
benchmarks/fuzz_hostile.py (counts per adapter). A call draws, for each argument, either a
valid value or a hostile one: a wrong type, ``None``, huge text, NUL, a lone surrogate, an
extreme datetime or decimal, an object whose dunders raise. :func:`judge` makes the call and
says what happened: it succeeded, it was refused with a ``SalesProcessError`` that left the
stored accounts and the published events as they were, or it broke a promise (an escape: any
other exception; a partial write: a refusal that changed what is stored or published).
"""

from __future__ import annotations

import enum
import inspect
import math
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import salesprocess as sp
from salesprocess.checks import shown
from salesprocess.clock import EARLIEST, LATEST
from salesprocess.errors import MAX_MESSAGE
from salesprocess.storage.protocol import AccountRepository, every_account

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

CRITERIA = sp.Criteria.from_dict({">=": [{"var": "employees"}, 10]}, name="size", version="1")


class Raising:
    """An object whose every dunder a check might call raises (repr, str, eq, hash, ...)."""

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ of a hostile object")

    def __str__(self) -> str:
        raise RuntimeError("__str__ of a hostile object")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("__format__ of a hostile object")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("__eq__ of a hostile object")

    def __hash__(self) -> int:
        raise RuntimeError("__hash__ of a hostile object")

    def __bool__(self) -> bool:
        raise RuntimeError("__bool__ of a hostile object")

    def __len__(self) -> int:
        raise RuntimeError("__len__ of a hostile object")

    def __lt__(self, other: object) -> bool:
        raise RuntimeError("__lt__ of a hostile object")


class RaisingIterable(Raising):
    """A collection whose iteration raises (a generator reading a broken file, say)."""

    def __iter__(self) -> Iterator[object]:
        raise RuntimeError("__iter__ of a hostile object")


class BrokenZone(tzinfo):
    """A time zone whose own code fails."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        raise RuntimeError("utcoffset of a broken zone")

    def dst(self, dt: datetime | None) -> timedelta:
        raise RuntimeError("dst of a broken zone")

    def tzname(self, dt: datetime | None) -> str:
        raise RuntimeError("tzname of a broken zone")


def _plus(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))


#: Values no argument takes, or only some do: each has broken a check somewhere once.
HOSTILE: tuple[object, ...] = (
    None,
    True,
    0,
    -1,
    2**80,
    1.5,
    math.nan,
    math.inf,
    Decimal("sNaN"),
    Decimal("NaN"),
    Decimal("-Infinity"),
    Decimal("9e999999999999999999"),
    Decimal("1e-999999999"),
    "",
    "   ",
    "x" * 200_000,
    "a\x00b",
    "\ud800",
    "ok \udfff",
    "churn",
    b"bytes",
    ["churn"],
    {},
    {"a": 1},
    set(),
    (),
    object(),
    Raising(),
    RaisingIterable(),
    datetime(2026, 1, 5),  # naive
    datetime.max.replace(tzinfo=_plus(-5)),
    datetime.min.replace(tzinfo=_plus(5)),
    datetime.max.replace(tzinfo=UTC),
    datetime(2026, 1, 5, tzinfo=BrokenZone()),
    EARLIEST,  # the first moment the library takes, and the last: in UTC and with offsets
    LATEST,
    EARLIEST.astimezone(_plus(14)),
    LATEST.astimezone(_plus(-12)),
    LATEST.astimezone(_plus(14)),
    date.max,
    date.min,
    timedelta(days=1),
    sp.Money("1", "EUR"),
    sp.Money("9.99e63", "EUR"),
    sp.Money("1e-64", "JPY"),
    sp.Stage.CUSTOMER,
    sp.Channel.REFERRAL,
    sp.CallOutcome.CALL_BACK,
    sp.DomainEvent,
    print,
)


def one_hostile() -> st.SearchStrategy[object]:
    """One of :data:`HOSTILE` (drawn by index: sampled_from would hash each value)."""
    return st.integers(min_value=0, max_value=len(HOSTILE) - 1).map(HOSTILE.__getitem__)


def hostile() -> st.SearchStrategy[object]:
    """One hostile value, or a container of them (a list, a mapping)."""
    one = one_hostile()
    return st.one_of(
        one,
        one,
        one,
        st.lists(one, max_size=3),
        st.dictionaries(st.sampled_from(["name", "email", "at", "x"]), one, max_size=3),
    )


def arg(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A value for an argument: valid about three times in four, else hostile.

    Mostly valid, so that calls get past their first argument and commands that succeed
    change the store, which later calls then meet.
    """
    return st.integers(min_value=0, max_value=3).flatmap(
        lambda pick: hostile() if pick == 0 else valid
    )


OMIT = object()


def kwargs(
    required: frozenset[str] = frozenset(), **params: st.SearchStrategy[Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments, each given (valid or hostile) or, unless ``required``, left out.

    A required keyword left out is Python's TypeError before any library code runs: no value
    for the library to check.
    """
    return st.fixed_dictionaries(
        {
            name: arg(valid) if name in required else st.one_of(st.just(OMIT), arg(valid))
            for name, valid in params.items()
        }
    ).map(lambda drawn: {k: v for k, v in drawn.items() if v is not OMIT})


def _required(command: str) -> frozenset[str]:
    """The keyword-only arguments of ``SalesProcess.<command>`` without a default."""
    parameters = inspect.signature(getattr(sp.SalesProcess, command)).parameters.values()
    return frozenset(
        p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.default is p.empty
    )


# -- valid values ---------------------------------------------------------------------------


def moments() -> st.SearchStrategy[datetime]:
    """Aware moments from the seeded accounts' day on, in a few zones."""
    return st.builds(
        lambda days, minutes, zone: (T0 + timedelta(days=days, minutes=minutes)).astimezone(zone),
        st.integers(min_value=0, max_value=4000),
        st.integers(min_value=0, max_value=1439),
        st.sampled_from([UTC, _plus(9), _plus(-7)]),
    )


NAMES = st.one_of(
    st.sampled_from(["Acme GmbH", "O'Brien & Söhne", "Zoë 🍣 株式会社", "nul \x00 inside"]),
    st.text(min_size=1, max_size=12).filter(str.strip),
)
EMAILS = st.sampled_from(["buyer@acme.example", "new@lead.example", "ann@x.example"])
PHONES = st.sampled_from(["+49 30 1234567", "0301234567", "+15551234567"])
CHANNELS = st.sampled_from([*sp.Channel, "cold_outreach", "marketing_list"])
TEXT = st.sampled_from(["a reason", "sales desk", "note", "x"])
AMOUNTS = st.builds(
    sp.Money,
    st.decimals(min_value=0, max_value=10**6, places=2),
    st.sampled_from(["EUR", "USD"]),
)


@dataclass
class World:
    """A process on a repository, with accounts seeded for the commands to act on."""

    sales: sp.SalesProcess
    ids: dict[str, str]
    events: list[sp.DomainEvent] = field(default_factory=list)

    def snapshot(self) -> list[tuple[str, int, sp.Account]]:
        """What is stored: every account, with its version."""
        return [(a.id, a.version, a) for a in every_account(self.sales.repository)]


def seed(repository: AccountRepository) -> World:
    """Return a process on ``repository``: a prospect; a customer with an asset and a request."""
    counter = iter(range(10**9))
    sales = sp.SalesProcess(
        repository,
        criteria=CRITERIA,
        clock=sp.FixedClock(T0),
        id_factory=lambda: f"id-{next(counter)}",
    )
    prospect = sales.capture_lead(
        "Prospect AG",
        email="prospect@acme.example",
        channel="cold_outreach",
        attributes={"employees": 50},
        at=T0,
    )
    customer = sales.capture_lead(
        "Customer KG", phone="+4940111222", channel="inbound_inquiry", at=T0
    )
    sales.qualify(customer.id, override="walk-in", at=T0)
    sales.record_purchase(customer.id, sp.Money("100.00", "EUR"), at=T0)
    asset = sales.register_asset(
        customer.id, model="Press 3000", installed=date(2020, 1, 1), expected_life_years=10, at=T0
    )
    request = sales.ask_for_referrals(customer.id, at=T0)
    world = World(
        sales,
        {
            "prospect": prospect.id,
            "customer": customer.id,
            "asset": asset.id,
            "request": request.id,
        },
    )
    sales.subscribe(world.events.append)
    return world


def account_ids(world: World) -> st.SearchStrategy[str]:
    """The seeded accounts' ids, and one that is not stored."""
    return st.sampled_from([world.ids["prospect"], world.ids["customer"], "no-such-id"])


# -- the commands -----------------------------------------------------------------------------

Call = tuple[tuple[Any, ...], dict[str, Any]]


def _lead_details() -> dict[str, st.SearchStrategy[Any]]:
    return {
        "email": EMAILS,
        "phone": PHONES,
        "channel": CHANNELS,
        "campaign": TEXT,
        "attributes": st.just({"employees": 12}),
        "at": moments(),
        "actor": TEXT,
    }


def _rows(world: World, purchases: bool) -> st.SearchStrategy[Any]:
    if purchases:
        row = kwargs(
            amount=AMOUNTS,
            at=moments(),
            reference=TEXT,
            account_id=st.just(world.ids["customer"]),
            email=EMAILS,
            name=NAMES,
        )
    else:
        row = kwargs(name=NAMES, email=EMAILS, phone=PHONES, campaign=TEXT, at=moments())
    return arg(st.lists(st.one_of(row, hostile()), max_size=4))


def commands(world: World) -> dict[str, Callable[[], st.SearchStrategy[Call]]]:
    """For each public command of ``SalesProcess``: a strategy of its arguments."""
    ids = account_ids(world)
    prospect = st.just(world.ids["prospect"])
    customer = st.just(world.ids["customer"])

    def call(
        command: str, *positional: st.SearchStrategy[Any], **named: st.SearchStrategy[Any]
    ) -> Callable[[], st.SearchStrategy[Call]]:
        required = _required(command)
        return lambda: st.tuples(st.tuples(*map(arg, positional)), kwargs(required, **named))

    reasons = {"reason": TEXT}
    return {
        "get": call("get", ids),
        "find": call("find", email=EMAILS, phone=PHONES),
        "capture": call("capture", NAMES, **_lead_details(), referral_code=st.just("K7M4PQ2X")),
        "capture_lead": call("capture_lead", NAMES, **_lead_details()),
        "record_call": call(
            "record_call",
            ids,
            st.sampled_from(list(sp.CallOutcome)),
            notes=TEXT,
            at=moments(),
            callback_at=moments(),
        ),
        "screen": call("screen", prospect, at=moments()),
        "screen_all": call("screen_all", at=moments(), progress=st.just(lambda done, total: None)),
        "screen_many": call("screen_many", st.lists(prospect, max_size=2), at=moments()),
        "call_list": call("call_list", limit=st.integers(1, 100), at=moments()),
        "qualify": call("qualify", prospect, override=TEXT, at=moments(), actor=TEXT),
        "disqualify": call("disqualify", prospect, TEXT, at=moments(), actor=TEXT),
        "recycle": call("recycle", prospect, TEXT, at=moments(), actor=TEXT),
        "churn": call("churn", customer, TEXT, at=moments(), actor=TEXT),
        "fire": call(
            "fire",
            ids,
            st.sampled_from(["qualify", "disqualify", "churn", "nurture"]),
            at=moments(),
            actor=TEXT,
            **reasons,
        ),
        "record_purchase": call(
            "record_purchase", ids, AMOUNTS, at=moments(), reference=TEXT, actor=TEXT
        ),
        "ask_for_referrals": call(
            "ask_for_referrals", customer, wanted=st.integers(1, 20), at=moments()
        ),
        "record_referral": call(
            "record_referral",
            customer,
            NAMES,
            email=EMAILS,
            phone=PHONES,
            request=st.just(world.ids["request"]),
            campaign=TEXT,
            attributes=st.just({"employees": 3}),
            at=moments(),
            actor=TEXT,
        ),
        "issue_referral_cards": call(
            "issue_referral_cards", customer, count=st.integers(1, 50), at=moments()
        ),
        "referral_stats": call("referral_stats"),
        "learn_preference": call(
            "learn_preference",
            customer,
            st.just("equipment_strategy"),
            st.just("repair_over_upgrade"),
            evidence=TEXT,
            at=moments(),
        ),
        "register_asset": call(
            "register_asset",
            customer,
            model=TEXT,
            installed=st.dates(date(1990, 1, 1), date(2026, 1, 1)),
            expected_life_years=st.integers(1, 50),
            serial=TEXT,
            at=moments(),
        ),
        "recommend_service": call(
            "recommend_service",
            customer,
            st.just(world.ids["asset"]),
            repair_cost=AMOUNTS,
            replacement_cost=AMOUNTS,
            on=st.dates(date(2020, 1, 1), date(2040, 1, 1)),
        ),
        "import_leads": lambda: st.tuples(
            st.tuples(_rows(world, purchases=False)),
            kwargs(
                frozenset({"channel"}),
                channel=CHANNELS,
                campaign=TEXT,
                all_or_nothing=st.booleans(),
            ),
        ),
        "import_purchases": lambda: st.tuples(
            st.tuples(_rows(world, purchases=True)),
            kwargs(channel=CHANNELS, all_or_nothing=st.booleans()),
        ),
        "revenue": call("revenue", since=moments(), until=moments()),
        "repeat_summary": call(
            "repeat_summary", as_of=moments(), period=st.sampled_from(["D", "W"])
        ),
        "rfm": call("rfm", as_of=moments(), currency=st.sampled_from(["EUR", "USD"])),
        "funnel": call("funnel", as_of=moments(), channel=CHANNELS, campaign=TEXT),
        "lead_flow": call(
            "lead_flow",
            period=st.sampled_from(["week", "month"]),
            target=st.integers(0, 100),
            as_of=moments(),
        ),
        "time_in_stage": call("time_in_stage", as_of=moments()),
        "stage_counts": call("stage_counts"),
        "subscribe": call("subscribe", st.just(lambda event: None), st.just(sp.LeadCaptured)),
    }


class Outcome(enum.Enum):
    """What a call did."""

    DONE = "done"
    REFUSED = "refused"
    ESCAPE = "escape"
    PARTIAL_WRITE = "partial write"


@dataclass
class Verdict:
    """What a call did, and why it broke a promise (``problem``), if it did."""

    outcome: Outcome
    problem: str = ""
    error: BaseException | None = None


def message_problem(error: BaseException) -> str:
    try:
        message = str(error)
        message.encode("utf-8")
    except Exception as exc:  # a message that cannot be shown is a broken promise too
        return f"the message of {type(error).__name__} cannot be shown: {exc!r}"
    if len(message) > MAX_MESSAGE:
        return f"a message of {len(message)} characters"
    unnamed = isinstance(error, sp.ValidationError) and not getattr(error, "field", None)
    if unnamed and not isinstance(error, sp.BadRows | sp.CurrencyMismatch):
        return f"{type(error).__name__} names no field: {message[:200]}"
    return ""


def describe(call: Call) -> str:
    """Return the arguments of ``call`` as a short text that never raises."""
    positional, named = call
    shown_args = [shown(value, 60) for value in positional]
    shown_args += [f"{key}={shown(value, 60)}" for key, value in named.items()]
    return f"({', '.join(shown_args)})"


def trace(error: BaseException | None) -> str:
    """Return the last frames of ``error``'s traceback (where it was raised)."""
    if error is None:
        return ""
    lines = traceback.format_exception(type(error), error, error.__traceback__, limit=-4)
    return "".join(lines)[-3000:]


def judge(world: World, name: str, call: Call) -> Verdict:
    """Make ``call`` of command ``name`` on ``world`` and say what it did."""
    positional, named = call
    before = world.snapshot()
    published = len(world.events)
    try:
        result = getattr(world.sales, name)(*positional, **named)
    except sp.SalesProcessError as error:
        after = world.snapshot()
        if after != before:
            changed = {i for i, v, _ in after} ^ {i for i, v, _ in before}
            return Verdict(
                Outcome.PARTIAL_WRITE, f"refused, yet the store changed ({changed})", error
            )
        if len(world.events) != published:
            return Verdict(Outcome.PARTIAL_WRITE, "refused, yet events were published", error)
        problem = message_problem(error)
        return Verdict(Outcome.ESCAPE if problem else Outcome.REFUSED, problem, error)
    except Exception as error:  # what the whole exercise is about
        return Verdict(Outcome.ESCAPE, f"{type(error).__name__} escaped", error)
    if name == "subscribe" and callable(result):
        result()  # unsubscribe: handlers must not pile up between examples
    if isinstance(result, Iterator):
        list(result)
    if isinstance(result, Mapping):
        dict(result)
    return Verdict(Outcome.DONE)


def broken_calls(world: World, name: str, settings: Callable[[Any], Any]) -> list[str]:
    """Feed command ``name`` on ``world`` the calls Hypothesis draws; return the broken promises.

    Collected rather than raised inside Hypothesis: each call changes the shared store, so a
    replay (to shrink) would not meet the same store.
    """
    broken: list[str] = []

    @settings
    @given(call=commands(world)[name]())
    def attempt(call: Any) -> None:
        verdict = judge(world, name, call)
        if verdict.outcome in (Outcome.ESCAPE, Outcome.PARTIAL_WRITE):
            broken.append(f"{name}{describe(call)}: {verdict.problem}\n{trace(verdict.error)}")

    attempt()
    return broken
