"""The lifecycle: every transition, every refusal, and the table agreeing with a live machine."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, time, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from statemachine import State, StateMachine
from statemachine.contrib.diagram import MermaidGraphMachine
from statemachine.exceptions import TransitionNotAllowed

import salesprocess as sp
from salesprocess import strategies
from salesprocess.clock import utc_day
from salesprocess.lifecycle import Lifecycle, TransitionContext, Transitions

TABLE = Transitions.of(Lifecycle)
CREATED = datetime(2025, 12, 1, 8, 0, tzinfo=UTC)
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PLUS_2 = timezone(timedelta(hours=2))
MINUS_5 = timezone(timedelta(hours=-5))
BUILT_IN = (
    sp.Stage.PROSPECT,
    sp.Stage.QUALIFIED,
    sp.Stage.CUSTOMER,
    sp.Stage.REPEAT,
    sp.Stage.REFERRER,
    sp.Stage.DISQUALIFIED,
    sp.Stage.CHURNED,
)
BUILT_IN_EVENTS = ("churn", "disqualify", "purchase", "qualify", "recycle", "refer")


def eur(amount: str) -> sp.Money:
    return sp.Money(amount, "EUR")


def make_account(
    stage: sp.Stage = sp.Stage.PROSPECT,
    purchases: tuple[sp.Purchase, ...] = (),
    attributes: dict[str, object] | None = None,
    created: datetime = CREATED,
) -> sp.Account:
    """An account at ``stage`` whose history ends there (captured at ``created``)."""
    history = [sp.HistoryEntry(None, sp.Stage.PROSPECT, "capture", created)]
    if stage is not sp.Stage.PROSPECT:
        history.append(sp.HistoryEntry(sp.Stage.PROSPECT, stage, "setup", created))
    return sp.Account(
        id="acct-7",
        name="Acme Tools",
        source=sp.Source(sp.Channel.INBOUND_INQUIRY),
        created_at=created,
        email="buyer@acme.example",
        attributes=attributes or {},
        stage=stage,
        history=tuple(history),
        purchases=purchases,
    )


def bought(at: datetime, amount: str = "100") -> sp.Purchase:
    return sp.Purchase(eur(amount), at)


def purchase(account: sp.Account, at: datetime, amount: str = "50"):
    """Fire ``purchase`` the way the service does: the purchase appended in the same copy."""
    return TABLE.apply(
        account, "purchase", at=at, purchases=(*account.purchases, bought(at, amount))
    )


# -- every transition of the built-in lifecycle -----------------------------------------------


def test_qualify_when_approved():
    """An approved prospect becomes qualified, with a history entry carrying actor and reason."""
    account = make_account()
    after, change = TABLE.apply(
        account, "qualify", at=AT, approved=True, actor="mia", reason="override: walk-in"
    )
    assert after.stage is sp.Stage.QUALIFIED
    assert change == sp.HistoryEntry(
        sp.Stage.PROSPECT, sp.Stage.QUALIFIED, "qualify", AT, "mia", "override: walk-in"
    )
    assert after.history == (*account.history, change)
    assert after.last_change_at == AT
    assert account.stage is sp.Stage.PROSPECT


def test_qualify_refused_without_approval():
    """Without approval qualify is refused: the conditions are not met."""
    account = make_account()
    with pytest.raises(sp.InvalidTransition, match="conditions for 'qualify'") as info:
        TABLE.apply(account, "qualify", at=AT, approved=False)
    assert info.value.stage is sp.Stage.PROSPECT
    assert info.value.event == "qualify"
    assert info.value.account_id == "acct-7"


@pytest.mark.parametrize("stage", [sp.Stage.PROSPECT, sp.Stage.QUALIFIED])
def test_disqualify(stage):
    """A prospect or a qualified lead can be disqualified."""
    after, change = TABLE.apply(make_account(stage), "disqualify", at=AT, reason="no budget")
    assert after.stage is sp.Stage.DISQUALIFIED
    assert change.from_stage is stage
    assert change.reason == "no budget"


def test_recycle():
    """A disqualified account goes back to prospect."""
    after, change = TABLE.apply(make_account(sp.Stage.DISQUALIFIED), "recycle", at=AT)
    assert after.stage is sp.Stage.PROSPECT
    assert (change.from_stage, change.to_stage) == (sp.Stage.DISQUALIFIED, sp.Stage.PROSPECT)


def test_purchase_makes_a_qualified_lead_a_customer():
    """The first purchase of a qualified lead makes a customer and keeps the purchase."""
    after, change = purchase(make_account(sp.Stage.QUALIFIED), AT)
    assert after.stage is sp.Stage.CUSTOMER
    assert change.event == "purchase"
    assert after.purchases == (bought(AT, "50"),)


def test_purchase_on_a_later_utc_day_makes_a_repeat_customer():
    """A customer buying on a later UTC day than the first purchase becomes repeat."""
    customer = make_account(sp.Stage.CUSTOMER, (bought(AT),))
    after, change = purchase(customer, AT + timedelta(days=1))
    assert after.stage is sp.Stage.REPEAT
    assert (change.from_stage, change.to_stage) == (sp.Stage.CUSTOMER, sp.Stage.REPEAT)
    assert len(after.purchases) == 2


def test_purchase_on_the_same_utc_day_but_another_local_day_stays_customer():
    """Two purchases on one UTC day stay customer, even when their local days differ."""
    first = datetime(2026, 2, 28, 19, 15, tzinfo=MINUS_5)  # 2026-03-01 00:15 UTC, local 28 Feb
    second = datetime(2026, 3, 2, 1, 30, tzinfo=PLUS_2)  # 2026-03-01 23:30 UTC, local 2 Mar
    assert first.date() != second.date()
    assert utc_day(first) == utc_day(second)
    customer = make_account(sp.Stage.CUSTOMER, (bought(first),))
    after, change = purchase(customer, second)
    assert after.stage is sp.Stage.CUSTOMER
    assert change is None
    assert after.history == customer.history
    assert after.purchases == (bought(first), bought(second, "50"))


def test_purchase_on_the_same_local_day_but_a_later_utc_day_makes_repeat():
    """The UTC day decides, not the local one: one local day, two UTC days is repeat."""
    first = datetime(2026, 3, 2, 0, 30, tzinfo=PLUS_2)  # 2026-03-01 22:30 UTC
    second = datetime(2026, 3, 2, 10, 0, tzinfo=PLUS_2)  # 2026-03-02 08:00 UTC
    assert first.date() == second.date()
    after, _ = purchase(make_account(sp.Stage.CUSTOMER, (bought(first),)), second)
    assert after.stage is sp.Stage.REPEAT


def test_guard_compares_with_the_first_purchase_not_the_last():
    """Repeat is judged against the first purchase: a third purchase on day two repeats."""
    day1 = datetime(2026, 3, 1, 9, tzinfo=UTC)
    day2 = datetime(2026, 3, 2, 9, tzinfo=UTC)
    customer = make_account(sp.Stage.CUSTOMER, (bought(day1), bought(day1 + timedelta(hours=5))))
    after, _ = purchase(customer, day2)
    assert after.stage is sp.Stage.REPEAT


@pytest.mark.parametrize("stage", [sp.Stage.REPEAT, sp.Stage.REFERRER])
def test_repeat_and_referrer_keep_their_stage_on_purchase(stage):
    """Repeat customers and referrers stay where they are when they buy again."""
    account = make_account(stage, (bought(AT - timedelta(days=30)),))
    after, change = purchase(account, AT)
    assert after.stage is stage
    assert change is None
    assert after.history == account.history
    assert len(after.purchases) == 2


@pytest.mark.parametrize("stage", [sp.Stage.CUSTOMER, sp.Stage.REPEAT, sp.Stage.REFERRER])
def test_churn(stage):
    """Customers, repeat customers and referrers can churn."""
    after, change = TABLE.apply(make_account(stage), "churn", at=AT, reason="moved to rival")
    assert after.stage is sp.Stage.CHURNED
    assert change.from_stage is stage
    assert change.reason == "moved to rival"


def test_win_back_on_a_later_day_makes_repeat():
    """A churned account buying on a later UTC day than its first purchase is repeat."""
    churned = make_account(sp.Stage.CHURNED, (bought(AT - timedelta(days=90)),))
    after, change = purchase(churned, AT)
    assert after.stage is sp.Stage.REPEAT
    assert change.from_stage is sp.Stage.CHURNED


def test_win_back_on_the_first_purchase_day_makes_customer():
    """A churned account buying on the same UTC day as its first purchase is a customer again."""
    first = datetime(2026, 3, 1, 0, 5, tzinfo=UTC)
    churned = make_account(sp.Stage.CHURNED, (bought(first),))
    after, change = purchase(churned, datetime(2026, 3, 1, 18, 0, tzinfo=MINUS_5))  # 23:00 UTC
    assert after.stage is sp.Stage.CUSTOMER
    assert change.to_stage is sp.Stage.CUSTOMER


@pytest.mark.parametrize("stage", [sp.Stage.CUSTOMER, sp.Stage.REPEAT])
def test_refer_makes_a_referrer(stage):
    """A first referral from a customer or repeat customer makes a referrer."""
    after, change = TABLE.apply(make_account(stage), "refer", at=AT)
    assert after.stage is sp.Stage.REFERRER
    assert change.from_stage is stage


def test_referrer_refers_again():
    """A referrer who refers again stays a referrer, with no new history entry."""
    account = make_account(sp.Stage.REFERRER)
    after, change = TABLE.apply(account, "refer", at=AT)
    assert after is account
    assert change is None


# -- refusals ----------------------------------------------------------------------------------

_INVALID = [
    (stage, event)
    for stage in BUILT_IN
    for event in (*BUILT_IN_EVENTS, "teleport")
    if not TABLE.targets(stage, event)
]


def test_invalid_pairs_are_the_expected_ones():
    """The table allows exactly the documented events per stage."""
    assert {stage: TABLE.allowed(stage) for stage in BUILT_IN} == {
        sp.Stage.PROSPECT: ("disqualify", "qualify"),
        sp.Stage.QUALIFIED: ("disqualify", "purchase"),
        sp.Stage.CUSTOMER: ("churn", "purchase", "refer"),
        sp.Stage.REPEAT: ("churn", "purchase", "refer"),
        sp.Stage.REFERRER: ("churn", "purchase", "refer"),
        sp.Stage.DISQUALIFIED: ("recycle",),
        sp.Stage.CHURNED: ("purchase",),
    }
    assert len(_INVALID) == 7 * 7 - 15


@pytest.mark.parametrize(("stage", "event"), _INVALID)
def test_invalid_event_raises_and_changes_nothing(stage, event):
    """A refused (stage, event) raises InvalidTransition naming account, stage and event."""
    account = make_account(stage, (bought(CREATED),))
    snapshot = make_account(stage, (bought(CREATED),))
    with pytest.raises(sp.InvalidTransition) as info:
        TABLE.apply(account, event, at=AT, approved=True, purchases=())
    error = info.value
    assert isinstance(error, sp.SalesProcessError)
    assert error.account_id == "acct-7"
    assert error.stage is stage
    assert error.event == event
    message = str(error)
    assert "acct-7" in message
    assert str(stage) in message
    assert event in message
    assert account == snapshot


def test_unknown_event_says_it_is_not_an_event():
    """An event the lifecycle does not know is named as such."""
    with pytest.raises(sp.InvalidTransition, match="'teleport' is not an event of Lifecycle"):
        TABLE.apply(make_account(), "teleport", at=AT)


def test_event_not_allowed_lists_the_allowed_ones():
    """A known event refused in a stage lists what the stage allows."""
    with pytest.raises(sp.InvalidTransition, match=r"allowed: recycle"):
        TABLE.apply(make_account(sp.Stage.DISQUALIFIED), "churn", at=AT)


def test_prospect_purchase_suggests_the_override():
    """A prospect cannot buy; the error tells how to qualify it with an override."""
    with pytest.raises(sp.InvalidTransition, match=r"override='walk-in purchase'") as info:
        purchase(make_account(), AT)
    assert info.value.event == "purchase"
    assert info.value.stage is sp.Stage.PROSPECT


@pytest.mark.parametrize(
    ("stage", "event", "hint"),
    [
        (sp.Stage.DISQUALIFIED, "purchase", "recycle it to prospect and qualify it first"),
        (sp.Stage.DISQUALIFIED, "qualify", "recycle it to prospect first"),
    ],
)
def test_disqualified_refusals_give_hints(stage, event, hint):
    """Refusals from disqualified say what to do instead."""
    with pytest.raises(sp.InvalidTransition, match=hint):
        TABLE.apply(make_account(stage), event, at=AT, approved=True)


def test_history_never_runs_backwards():
    """An event earlier than the last stage change is refused; the same moment is fine."""
    account, _ = TABLE.apply(make_account(), "qualify", at=AT, approved=True)
    with pytest.raises(sp.ValidationError, match="history never runs backwards") as info:
        TABLE.apply(account, "disqualify", at=AT - timedelta(microseconds=1))
    assert info.value.field == "at"
    same_moment_elsewhere = AT.astimezone(MINUS_5)
    after, _ = TABLE.apply(account, "disqualify", at=same_moment_elsewhere)
    assert after.stage is sp.Stage.DISQUALIFIED


def test_history_check_compares_instants_not_wall_clocks():
    """An earlier instant written with a later wall clock is still refused."""
    account, _ = TABLE.apply(make_account(), "qualify", at=AT, approved=True)
    earlier = (AT - timedelta(hours=1)).astimezone(PLUS_2)  # 13:00 +02:00 on the wall
    with pytest.raises(sp.ValidationError):
        TABLE.apply(account, "disqualify", at=earlier)


# -- the table itself --------------------------------------------------------------------------


def test_table_shape():
    """The table knows the stages, the events, the initial stage and the order of targets."""
    assert TABLE.initial is sp.Stage.PROSPECT
    assert TABLE.stages == BUILT_IN
    assert TABLE.events == frozenset(BUILT_IN_EVENTS)
    assert TABLE.targets(sp.Stage.CUSTOMER, "purchase") == (sp.Stage.REPEAT, sp.Stage.CUSTOMER)
    assert TABLE.targets(sp.Stage.CHURNED, "purchase") == (sp.Stage.REPEAT, sp.Stage.CUSTOMER)
    assert TABLE.targets(sp.Stage.PROSPECT, "purchase") == ()
    assert Transitions.of(Lifecycle) is TABLE
    assert TABLE.machine is Lifecycle


# -- a user's machine with a nurture stage ----------------------------------------------------


class NurtureLifecycle(StateMachine):
    """The built-in lifecycle plus a ``nurture`` stage, as a user would write it.

    Why a copy and not ``class NurtureLifecycle(Lifecycle)``: python-statemachine 3.2 shares the
    parent's ``State`` objects with a subclass, and a transition is stored on its source state,
    so ``nurture_lead = Lifecycle.prospect.to(nurture)`` in a subclass body adds that transition
    to the built-in ``Lifecycle`` itself (its live machine then fails with InvalidStateValue).
    ``test_a_naive_subclass_does_not_leak_into_the_built_in_table`` shows the effect in a
    subprocess. So this machine copies the built-in states and events and reuses its guards.
    """

    prospect = State("Prospect", initial=True)
    qualified = State("Qualified")
    customer = State("Customer")
    repeat = State("Repeat")
    referrer = State("Referrer")
    disqualified = State("Disqualified")
    churned = State("Churned")
    nurture = State("Nurture")

    qualify = prospect.to(qualified, cond="approved")
    disqualify = prospect.to(disqualified) | qualified.to(disqualified)
    recycle = disqualified.to(prospect)
    purchase = (
        qualified.to(customer)
        | customer.to(repeat, cond="on_later_day")
        | customer.to.itself()
        | repeat.to.itself()
        | referrer.to.itself()
        | churned.to(repeat, cond="on_later_day")
        | churned.to(customer)
    )
    refer = customer.to(referrer) | repeat.to(referrer) | referrer.to.itself()
    churn = customer.to(churned) | repeat.to(churned) | referrer.to(churned)
    nurture_lead = prospect.to(nurture)
    revive = nurture.to(prospect, cond="has_budget")
    drop = nurture.to(disqualified, unless="has_budget")

    approved = staticmethod(Lifecycle.approved)
    on_later_day = staticmethod(Lifecycle.on_later_day)

    @staticmethod
    def has_budget(ctx: TransitionContext) -> bool:
        """The account has a positive budget attribute."""
        budget = ctx.account.attributes.get("budget")
        return isinstance(budget, int) and budget > 0


NURTURE = sp.Stage("nurture")
MACHINES = (Lifecycle, NurtureLifecycle)


def _purchases_for(kind: str, at: datetime, fraction: float, offset: timezone):
    """No purchase, a first purchase on an earlier UTC day, or one earlier on the same UTC day."""
    at_utc = at.astimezone(UTC)
    midnight = datetime.combine(at_utc.date(), time(0), UTC)
    if kind == "none":
        return ()
    if kind == "earlier_day":
        first = midnight - timedelta(seconds=1 + fraction * 400 * 86400)
    else:
        first = midnight + (at_utc - midnight) * fraction
    return (bought(first.astimezone(offset)),)


def _table_outcome(machine: type[StateMachine], ctx: TransitionContext, event: str):
    try:
        return Transitions.of(machine).target(event, ctx)
    except sp.InvalidTransition:
        return None


def _live_outcome(machine: type[StateMachine], ctx: TransitionContext, event: str):
    sm = machine(start_value=str(ctx.account.stage))
    assert sm.current_state_value == str(ctx.account.stage)
    try:
        sm.send(event, ctx=ctx)
    except TransitionNotAllowed:
        return None
    assert list(sm.configuration_values) == [sm.current_state_value]
    return sp.Stage(sm.current_state_value)


def _check_agreement(machine, stage, event, kind, approved, budget, at, fraction, offset):
    attributes = {} if budget is None else {"budget": budget}
    account = make_account(stage, _purchases_for(kind, at, fraction, offset), attributes, at)
    ctx = TransitionContext(account, at, approved)
    expected = _table_outcome(machine, ctx, event)
    assert expected == _live_outcome(machine, ctx, event), (stage, event, kind, approved, budget)
    table = Transitions.of(machine)
    if expected is None:
        with pytest.raises(sp.InvalidTransition):
            table.apply(account, event, at=at, approved=approved)
    else:
        after, change = table.apply(account, event, at=at, approved=approved)
        assert after.stage is expected
        assert (change is None) == (expected is stage)


@st.composite
def _scenarios(draw: st.DrawFn, machine: type[StateMachine]):
    table = Transitions.of(machine)
    return (
        machine,
        draw(st.sampled_from(table.stages)),
        draw(st.sampled_from([*sorted(table.events), "teleport"])),
        draw(st.sampled_from(["none", "earlier_day", "same_day"])),
        draw(st.booleans()),
        draw(st.sampled_from([None, 0, 5000])),
        draw(strategies.aware_datetimes(max_value=datetime(2090, 1, 1, tzinfo=UTC))),
        draw(st.floats(min_value=0, max_value=1)),
        draw(st.sampled_from([UTC, PLUS_2, MINUS_5, timezone(timedelta(hours=13))])),
    )


@given(_scenarios(Lifecycle))
def test_table_agrees_with_live_lifecycle(scenario):
    """For any stage, event, purchase history and approval, table and live Lifecycle agree."""
    _check_agreement(*scenario)


@given(_scenarios(NurtureLifecycle))
def test_table_agrees_with_live_user_machine(scenario):
    """The same agreement holds for a user's machine with an added stage and guards."""
    _check_agreement(*scenario)


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.__name__)
def test_table_agrees_with_live_machine_exhaustively(machine):
    """Every (stage, event, purchases, approval, budget) combination agrees, not just a sample."""
    table = Transitions.of(machine)
    for stage, event, kind, approved, budget in itertools.product(
        table.stages,
        [*sorted(table.events), "teleport"],
        ["none", "earlier_day", "same_day"],
        [False, True],
        [None, 5000],
    ):
        _check_agreement(machine, stage, event, kind, approved, budget, AT, 0.5, PLUS_2)


def test_user_machine_table():
    """The user's machine yields a table with the nurture stage and its events."""
    table = Transitions.of(NurtureLifecycle)
    assert NURTURE in table.stages
    assert table.events == frozenset({*BUILT_IN_EVENTS, "nurture_lead", "revive", "drop"})
    assert table.allowed(NURTURE) == ("drop", "revive")
    assert table.targets(sp.Stage.PROSPECT, "nurture_lead") == (NURTURE,)
    assert sp.Stage("nurture") is NURTURE


def test_user_machine_through_the_service():
    """SalesProcess(lifecycle=...) drives the added events with fire() and counts the stage."""
    clock = sp.FixedClock(AT)
    sales = sp.SalesProcess(lifecycle=NurtureLifecycle, clock=clock)
    seen: list[sp.DomainEvent] = []
    sales.subscribe(seen.append, sp.StageChanged)
    poor = sales.capture_lead("Poor Ltd", email="a@poor.example", channel="cold_outreach")
    rich = sales.capture_lead(
        "Rich AG", email="b@rich.example", channel="referral", attributes={"budget": 9000}
    )
    clock.advance(hours=1)

    poor = sales.fire(poor.id, "nurture_lead", reason="not ready", actor="mia")
    assert poor.stage is sp.Stage("nurture")
    assert poor.history[-1] == sp.HistoryEntry(
        sp.Stage.PROSPECT, NURTURE, "nurture_lead", clock.now(), "mia", "not ready"
    )
    assert type(seen[-1]) is sp.StageChanged
    assert seen[-1].change == poor.history[-1]

    with pytest.raises(sp.InvalidTransition, match="conditions for 'revive'"):
        sales.fire(poor.id, "revive")
    assert sales.get(poor.id) == poor
    poor = sales.fire(poor.id, "drop")
    assert poor.stage is sp.Stage.DISQUALIFIED

    sales.fire(rich.id, "nurture_lead")
    assert sales.stage_counts()[NURTURE] == 1
    with pytest.raises(sp.InvalidTransition):
        sales.fire(rich.id, "drop")
    rich = sales.fire(rich.id, "revive")
    assert rich.stage is sp.Stage.PROSPECT
    assert [c.event for c in rich.history] == ["capture", "nurture_lead", "revive"]
    assert sales.stage_counts() == {
        **dict.fromkeys(Transitions.of(NurtureLifecycle).stages, 0),
        sp.Stage.PROSPECT: 1,
        sp.Stage.DISQUALIFIED: 1,
    }


def test_a_naive_subclass_does_not_leak_into_the_built_in_table():
    """Subclassing Lifecycle (as its docstring invites) must not change Lifecycle's own table."""
    code = textwrap.dedent(
        """
        from statemachine import State
        from salesprocess.lifecycle import Lifecycle, Transitions

        class Naive(Lifecycle):
            nurture = State("Nurture")
            nurture_lead = Lifecycle.prospect.to(nurture)
            revive = nurture.to(Lifecycle.prospect)

        table = Transitions.of(Lifecycle)
        print(sorted(table.events))
        print(sorted({t for s in table.stages for e in table.events for t in table.targets(s, e)}
                     - set(table.stages)))
        print(sorted(Transitions.of(Naive).events))
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True
    )
    events, unknown_targets, naive_events = result.stdout.splitlines()
    assert unknown_targets == "[]"
    assert events == str(sorted(BUILT_IN_EVENTS))
    assert naive_events == str(sorted([*BUILT_IN_EVENTS, "nurture_lead", "revive"]))


# -- guards the table cannot share -------------------------------------------------------------


def _machine_with_cond(cond: str) -> type[StateMachine]:
    class Guarded(StateMachine):
        start = State("Start", initial=True)
        end = State("End")
        go = start.to(end, cond=cond)
        back = end.to(start)

        @staticmethod
        def approved(ctx: TransitionContext) -> bool:
            """Approved."""
            return ctx.approved

        @staticmethod
        def on_later_day(ctx: TransitionContext) -> bool:
            """Never."""
            return False

    return Guarded


@pytest.mark.parametrize("cond", ["approved and on_later_day", "!approved", "approved or x"])
def test_guard_expressions_are_refused(cond):
    """A cond expression is refused: the table and the machine must share one function."""
    with pytest.raises(sp.ValidationError, match="expression") as info:
        Transitions.of(_machine_with_cond(cond))
    assert info.value.field == "cond"


def test_missing_guard_is_refused_by_name():
    """A cond naming no static method is refused, and the message names the guard."""
    with pytest.raises(sp.ValidationError, match="no_such_guard") as info:
        Transitions.of(_machine_with_cond("no_such_guard"))
    assert info.value.field == "cond"


class TruthyGuards(StateMachine):
    """A user machine whose guards return the attribute itself rather than a bool."""

    start = State("Start", initial=True)
    funded = State("Funded")
    unfunded = State("Unfunded")

    fund = start.to(funded, cond="budget")
    skip = start.to(unfunded, unless="budget")
    reset = funded.to(start) | unfunded.to(start)

    @staticmethod
    def budget(ctx: TransitionContext) -> object:
        """The budget attribute, truthy when there is one."""
        return ctx.account.attributes.get("budget")


@pytest.mark.parametrize("budget", [None, 0, 5000, "yes", ""])
@pytest.mark.parametrize("event", ["fund", "skip"])
def test_truthy_guard_results_agree_with_live_machine(budget, event):
    """A guard returning a truthy or falsy non-bool is judged as python-statemachine judges it."""
    account = sp.Account(
        id="acct-8",
        name="Truthy",
        source=sp.Source("cold_outreach"),
        created_at=CREATED,
        email="t@truthy.example",
        attributes={} if budget is None else {"budget": budget},
        stage=sp.Stage("start"),
    )
    ctx = TransitionContext(account, AT)
    assert _table_outcome(TruthyGuards, ctx, event) == _live_outcome(TruthyGuards, ctx, event)


# -- review regressions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"email": "NOT NORMALISED"}, "email"),
        ({"version": -7}, "version"),
        ({"purchases": ("not a purchase",)}, "purchases"),
        ({"no_such_field": 1}, "no_such_field"),
        ({"actor": 5}, "actor"),
        ({"reason": "  "}, "reason"),
    ],
)
def test_apply_validates_what_it_writes(kwargs, field):
    """The public apply() lets no unvalidated value into an account or its history."""
    account = make_account()
    with pytest.raises(sp.ValidationError) as info:
        Transitions.of(Lifecycle).apply(
            account, "qualify", at=account.created_at, approved=True, **kwargs
        )
    assert info.value.field == field


def test_apply_refuses_a_naive_moment():
    """A naive ``at`` gets the library's ValidationError, not a TypeError from comparing."""
    account = make_account()
    with pytest.raises(sp.ValidationError, match="naive"):
        Transitions.of(Lifecycle).apply(
            account, "qualify", at=account.created_at.replace(tzinfo=None), approved=True
        )


def test_new_stages_are_interned_across_threads():
    """Threads naming the same new stage at once all get one object."""
    names = [f"review_stage_{n}" for n in range(2000)]
    seen: list[list[sp.Stage]] = [[], []]

    def create(slot: int) -> None:
        seen[slot] = [sp.Stage(name) for name in names]

    threads = [threading.Thread(target=create, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(a is b for a, b in zip(seen[0], seen[1], strict=True))


def test_diagram_is_drawn_from_the_class():
    """The docs' mermaid diagram names every stage and every guarded edge of the class."""
    diagram = MermaidGraphMachine(Lifecycle)()
    for stage in TABLE.stages:
        assert f" as {stage}" in diagram
    assert "prospect --> qualified : Qualify [approved]" in diagram
    assert "customer --> repeat : Purchase [on_later_day]" in diagram
