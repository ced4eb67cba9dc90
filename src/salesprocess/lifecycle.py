"""The account lifecycle: declared once as a python-statemachine class, run from a table.

:class:`Lifecycle` is the single definition of stages, events, transitions and guards. It draws
its own diagram and can be run as a live machine. Running a live machine per account would cost
about 400 us to build and 180 us per transition and 13 KB of memory each, so accounts keep only
their :class:`~salesprocess.stage.Stage`, and :class:`Transitions` derives a lookup table from the
class definition once. The test suite proves, for every (stage, event, guard outcome), that the
table and a live machine agree; the same holds for a user's subclass that adds states or events.

>>> from salesprocess.lifecycle import Lifecycle, Transitions
>>> table = Transitions.of(Lifecycle)
>>> sorted(table.events)
['churn', 'disqualify', 'purchase', 'qualify', 'recycle', 'refer']
>>> [str(s) for s in table.targets(Stage.CUSTOMER, "purchase")]
['repeat', 'customer']

Guards are static methods that take one :class:`TransitionContext`, so the live machine
(``sm.send(event, ctx=...)``) and the table call the very same function. Actions declared on a
subclass are not run by the table: effects belong to the service layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache
from typing import Any, Final, cast

import attrs
from statemachine import State, StateMachine
from statemachine.event import Event

from salesprocess.account import (
    Account,
    HistoryEntry,
    checked_changes,
    unchecked_advance,
    unchecked_copy,
    unchecked_history_entry,
)
from salesprocess.checks import clipped, require_text, shown, unencodable
from salesprocess.chronology import out_of_order
from salesprocess.clock import require_aware, utc_day
from salesprocess.errors import InvalidTransition, ValidationError
from salesprocess.stage import Stage

__all__ = ["Guard", "Lifecycle", "TransitionContext", "Transitions", "history_runs_backwards"]


@attrs.define(frozen=True, weakref_slot=False)
class TransitionContext:
    """What a guard may look at: the account before the event, the moment, and the approval.

    ``approved`` is the qualification decision (the policy's, or an override's) for ``qualify``.
    """

    account: Account
    at: datetime
    approved: bool = False


Guard = Callable[[TransitionContext], bool]


class Lifecycle(StateMachine):
    """prospect → qualified → customer → repeat → referrer, with disqualified and churned.

    - ``qualify``: prospect → qualified, when approved (policy or override).
    - ``disqualify`` / ``recycle``: prospect or qualified → disqualified → prospect.
    - ``purchase``: qualified → customer; customer → repeat on a later UTC calendar day than the
      first purchase; repeat and referrer keep their stage; churned → repeat or customer
      (won back, by purchase history). A prospect cannot buy: qualify it first.
    - ``refer``: customer or repeat → referrer on the first referral; referrer stays.
    - ``churn``: customer, repeat or referrer → churned.

    To add states, declare a whole machine (see the lifecycle docs): python-statemachine
    shares State objects with subclasses, so a subclass adding ``Lifecycle.prospect.to(x)``
    would change this class's live machines too. Guards must be static methods taking a
    :class:`TransitionContext`.
    """

    prospect = State("Prospect", initial=True)
    qualified = State("Qualified")
    customer = State("Customer")
    repeat = State("Repeat")
    referrer = State("Referrer")
    disqualified = State("Disqualified")
    churned = State("Churned")

    qualify = prospect.to(qualified, cond="approved")
    disqualify = prospect.to(disqualified) | qualified.to(disqualified)
    recycle = disqualified.to(prospect)
    purchase = (
        qualified.to(customer)
        | customer.to(repeat, cond="on_later_day")
        | customer.to(customer)
        | repeat.to(repeat)
        | referrer.to(referrer)
        | churned.to(repeat, cond="on_later_day")
        | churned.to(customer)
    )
    refer = customer.to(referrer) | repeat.to(referrer) | referrer.to(referrer)
    churn = customer.to(churned) | repeat.to(churned) | referrer.to(churned)

    @staticmethod
    def approved(ctx: TransitionContext) -> bool:
        """Admit ``qualify`` when the qualification policy (or an override) approved."""
        return ctx.approved

    @staticmethod
    def on_later_day(ctx: TransitionContext) -> bool:
        """Admit repeat business: a later UTC calendar day than the first purchase."""
        purchases = ctx.account.purchases
        return bool(purchases) and utc_day(ctx.at) > utc_day(purchases[0].at)


_HINTS: Final[Mapping[tuple[str, str], str]] = {
    ("prospect", "purchase"): (
        "qualify it first, or record why it may buy unqualified: "
        "sales.qualify(id, override='walk-in purchase')"
    ),
    ("disqualified", "purchase"): "recycle it to prospect and qualify it first",
    ("disqualified", "qualify"): "recycle it to prospect first",
}


def history_runs_backwards(account: Account, event: str, at: datetime) -> ValidationError:
    """Return the error for ``event`` at ``at``, earlier than ``account``'s last stage change.

    The lifecycle refuses such an event; a command that records something beside the history
    (a referral that moves no stage, say) refuses it the same way.
    """
    return out_of_order(
        account, event, at, since="its last change", earlier=account.last_change_at,
        rule="history never runs backwards",
    )  # fmt: skip


@attrs.frozen
class _Edge:
    guards: tuple[tuple[Guard, bool], ...]
    target: Stage

    def admits(self, ctx: TransitionContext) -> bool:
        # python-statemachine compares the truth of a guard's result, so the table does too.
        # A loop, not all(...): a generator per transition costs a tenth of the hot path.
        for guard, expected in self.guards:  # noqa: SIM110
            if bool(guard(ctx)) is not expected:
                return False
        return True


@attrs.frozen
class Transitions:
    """The hot path: a (stage, event) table derived from a :class:`Lifecycle` class.

    Build it with :meth:`of`, which caches one table per class.
    """

    machine: type[StateMachine]
    initial: Stage
    stages: tuple[Stage, ...]
    events: frozenset[str]
    _edges: Mapping[tuple[Stage, str], tuple[_Edge, ...]] = attrs.field(alias="edges")

    @staticmethod
    def of(machine: type[StateMachine]) -> Transitions:
        """Derive the table from ``machine``'s states and transitions (once per class).

        ``machine`` must be a ``StateMachine`` class (:class:`Lifecycle` or a subclass).
        """
        if not isinstance(machine, type) or not issubclass(machine, StateMachine):
            raise ValidationError(
                f"lifecycle must be a StateMachine class such as Lifecycle, not "
                f"{type(machine).__name__} {shown(machine)}",
                field="lifecycle",
            )
        return Transitions._of(machine)

    @staticmethod
    @cache
    def _of(machine: type[StateMachine]) -> Transitions:
        edges: dict[tuple[Stage, str], list[_Edge]] = {}
        initial: Stage | None = None
        # A subclass shares its parent's State objects, and python-statemachine adds the
        # subclass's transitions to them; keep only what belongs to this class.
        own_events = {str(event.id) for event in cast("list[Event]", machine.events)}
        own_states = {state.id for state in machine.states}
        for state in machine.states:
            source = Stage(state.id)
            if state.initial:
                initial = source
            for transition in state.transitions:
                if transition.target is None or transition.target.id not in own_states:
                    continue
                guards = tuple(
                    (_resolve_guard(machine, spec.func), bool(spec.expected_value))
                    for spec in transition.cond
                )
                edge = _Edge(guards, Stage(transition.target.id))
                for event in transition.events:
                    if str(event.id) in own_events:
                        edges.setdefault((source, str(event.id)), []).append(edge)
        if initial is None:  # pragma: no cover - python-statemachine refuses such a class
            raise ValidationError(f"{machine.__name__} has no initial state", field="machine")
        return Transitions(
            machine=machine,
            initial=initial,
            stages=tuple(Stage(state.id) for state in machine.states),
            events=frozenset(event for _, event in edges),
            edges={key: tuple(value) for key, value in edges.items()},
        )

    def allowed(self, stage: Stage) -> tuple[str, ...]:
        """Return the events that ``stage`` has a transition for (guards not evaluated)."""
        return tuple(sorted(event for source, event in self._edges if source == stage))

    def targets(self, stage: Stage, event: str) -> tuple[Stage, ...]:
        """Return every stage ``event`` may lead to from ``stage``, in the order tried."""
        return tuple(edge.target for edge in self._edges.get((stage, event), ()))

    def target(self, event: str, ctx: TransitionContext) -> Stage:
        """Return the stage ``event`` leads to for ``ctx``; raise ``InvalidTransition`` if none."""
        account = ctx.account
        for edge in self._edges.get((account.stage, event), ()):
            if edge.admits(ctx):
                return edge.target
        raise self._refusal(account, event)

    def apply(
        self,
        account: Account,
        event: str,
        *,
        at: datetime,
        approved: bool = False,
        actor: str | None = None,
        reason: str | None = None,
        **changes: Any,
    ) -> tuple[Account, HistoryEntry | None]:
        """Fire ``event`` on ``account``; return the new account and its history entry.

        ``changes`` are other fields of the new account (a purchase appended, say), written in
        the same copy and validated like the fields of a new account (``version`` belongs to
        storage). A transition to the same stage adds no history entry (``None``).
        Raises :class:`~salesprocess.errors.InvalidTransition` and changes nothing when the
        stage does not allow the event or no guard admits it. ``at`` must not be earlier than
        the account's last stage change, so history never runs backwards.
        """
        if at.__class__ is not datetime or at.utcoffset() is None:
            require_aware(at)  # the slow path explains what is wrong
        # Inline tests of the valid case: require_text, called to refuse, says what is wrong.
        if actor is not None and (
            actor.__class__ is not str or not actor.strip() or unencodable(actor)
        ):
            require_text(actor, "actor")
        if reason is not None and (
            reason.__class__ is not str or not reason.strip() or unencodable(reason)
        ):
            require_text(reason, "reason")
        if changes:
            changes = checked_changes(account, changes)
        history = account.history
        if at < (history[-1].at if history else account.created_at):
            raise history_runs_backwards(account, event, at)
        stage = account.stage
        target = self.target(event, TransitionContext(account, at, approved))
        if target is stage:
            return (unchecked_copy(account, **changes) if changes else account), None
        change = unchecked_history_entry(stage, target, event, at, actor, reason)
        history = (*history, change)
        if changes:
            return unchecked_copy(account, stage=target, history=history, **changes), change
        return unchecked_advance(account, target, history), change

    def _refusal(self, account: Account, event: str) -> InvalidTransition:
        stage = account.stage
        if event not in self.events:
            detail = f"{shown(event)} is not an event of {self.machine.__name__}"
        elif (stage, event) in self._edges:
            detail = f"the conditions for {shown(event)} from {stage} are not met"
        else:
            allowed = ", ".join(self.allowed(stage)) or "none"
            detail = f"{shown(event)} is not allowed from {stage} (allowed: {allowed})"
        hint = _HINTS.get((str(stage), event))
        message = f"account {clipped(account.id)} ({clipped(account.name)}) is {stage}: {detail}"
        if hint:
            message += f"; {hint}"
        return InvalidTransition(message, account_id=account.id, stage=stage, event=event)


def _resolve_guard(machine: type[StateMachine], func: object) -> Guard:
    resolved = func
    if isinstance(func, str):
        if not func.isidentifier():
            raise ValidationError(
                f"{machine.__name__}: guard {func!r} is an expression; name a static method "
                "instead so the table and the machine share one function",
                field="cond",
            )
        resolved = getattr(machine, func, None)
    if not callable(resolved):
        raise ValidationError(
            f"{machine.__name__}: guard {func!r} is not a static method of the class",
            field="cond",
        )
    guard: Guard = resolved
    return guard
