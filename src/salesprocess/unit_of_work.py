"""The unit of work: load, decide, write with the expected versions, retry, publish.

Every command of :class:`~salesprocess.process.SalesProcess` (and of
:class:`~salesprocess.process_async.AsyncSalesProcess`) runs through it:

1. **load** the accounts the command decides on (one of this module's loads);
2. **decide**: call the pure command (:mod:`salesprocess.commands`) with them and the moment;
3. **write** what it decided, each save expecting the version it loaded, several writes in one
   ``atomic()`` block, so all land or none does;
4. **retry** from step 1 on a :class:`~salesprocess.errors.StaleWrite` (someone wrote in
   between), a bounded number of times; any other error reaches the caller, nothing written;
5. **publish** the decision's events through the repository's ``after_commit``: at once when
   the caller has no ``atomic()`` block open, else when the caller's outermost block commits,
   and never if it rolls back.

Without an explicit ``at``, the clock is read for each attempt after its load, so a command
retried after a concurrent write is stamped after that write rather than refused as out of
order. A given ``at`` is checked before anything is read.

The steps are written once, without I/O (:class:`Work`): they are generators that yield what
they need from storage (:data:`Step`: a repository call, a block of steps to run in
``atomic()``, events to publish after commit) and are sent the answers. :class:`UnitOfWork`
drives them over an :class:`~salesprocess.storage.protocol.AccountRepository`, calling;
:class:`AsyncUnitOfWork` over an
:class:`~salesprocess.storage.async_protocol.AsyncAccountRepository`, awaiting. So the load,
retry and write logic is the same code in both, and the two cannot drift apart.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Generator, Iterator
from datetime import datetime
from functools import partial
from typing import Any, Final, NamedTuple, TypeAlias, TypeVar

from salesprocess.account import Account
from salesprocess.checks import shown
from salesprocess.clock import Clock, require_aware
from salesprocess.commands.decision import Decision
from salesprocess.commands.leads import Known
from salesprocess.commands.referrals import Scene
from salesprocess.errors import ConflictError, NotFound, StaleWrite, ValidationError
from salesprocess.events import DomainEvent, EventBus
from salesprocess.lifecycle import Transitions
from salesprocess.referral_codes import normalise_referral_code
from salesprocess.storage.async_protocol import (
    AsyncAccountRepository,
    AsyncBatching,
    AsyncReadsMany,
)
from salesprocess.storage.protocol import AccountRepository, Batching, ReadsMany

__all__ = [
    "BATCHED_WRITES",
    "CODE_DRAWS",
    "AsyncUnitOfWork",
    "Atomic",
    "Call",
    "Publish",
    "Step",
    "Steps",
    "UnitOfWork",
    "Work",
    "call",
    "collector_paused",
]

_Loaded = TypeVar("_Loaded")
_Result = TypeVar("_Result")

#: How many referral codes to draw before giving up on finding a free one.
CODE_DRAWS: Final = 8

#: The most writes a store with ``write_all`` gets in one call; a bulk load's batches use
#: ``add_many`` and one ``save`` each, in one ``atomic()`` block.
BATCHED_WRITES: Final = 16


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a whole bulk command, run synchronously.

    A bulk screen or import allocates objects per account that hold no cycles (an account, a
    report, an event) and keeps them until it returns; counting them would start collections
    that walk every one of them again and again, a cost that grows with the load (a tenth of
    a second per 100,000 screened prospects, more per 100,000 imported leads: measured). Bulk
    commands make nothing cyclic, so nothing is left uncollected; what a callback makes is
    collected once the collector resumes (if it was on), when the command ends or fails. Never
    around an async run: it would pause the whole event loop's collector.
    """
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


#: A repository call: the method's name, its positional and its keyword arguments.
Call: TypeAlias = tuple[str, tuple[Any, ...], dict[str, Any]]


class Atomic(NamedTuple):
    """A step: run ``steps`` inside the repository's ``atomic()`` block; answer their result."""

    steps: Generator[Any, Any, Any]


class Publish(NamedTuple):
    """A step: publish ``events`` once the writes made so far are committed (``after_commit``)."""

    events: tuple[DomainEvent, ...]


#: What a step of work asks of storage.
Step: TypeAlias = Call | Atomic | Publish
#: Steps of work that end with a ``_Result``: sent each step's answer, thrown its error.
Steps: TypeAlias = Generator[Step, Any, _Result]


def call(method: str, *args: Any, **kwargs: Any) -> Call:
    """Return the step that calls the repository's ``method`` with these arguments."""
    return (method, args, kwargs)


def _writing(account: Account) -> Call:
    """Return the write of ``account``: added at version 0, else saved expecting its version."""
    if account.version:
        return ("save", (account,), {"expected_version": account.version})
    return ("add", (account,), {})


def _get(account_id: str) -> Steps[Account]:
    account: Account = yield ("get", (account_id,), {})
    return account


def _find_id(kind: str, value: str) -> Steps[str | None]:
    found: str | None = yield ("find_id", (), {kind: value})
    return found


def _unknown_code(code: str | None) -> ValidationError:
    return ValidationError(
        f"no account holds referral code {code}: check the card", field="referral_code"
    )


class Work:
    """The steps of every command, without I/O: what both runners drive."""

    def __init__(
        self, *, clock: Clock, max_retries: int, batching: bool = False, reads_many: bool = False
    ) -> None:
        self.clock = clock
        self.max_retries = max_retries
        #: Whether the store has ``get_many``
        #: (:class:`~salesprocess.storage.protocol.ReadsMany`): a bulk load then reads a
        #: batch's known accounts in one call.
        self.reads_many = reads_many
        #: Whether the store has ``holders`` and ``write_all``
        #: (:class:`~salesprocess.storage.protocol.Batching`): a command's loads are then one
        #: call, and its few writes one call.
        self.batching = batching

    def attempts(
        self,
        load: Callable[[], Steps[_Loaded]],
        decide: Callable[[_Loaded, datetime], Decision[_Result]],
        *,
        at: datetime | None,
    ) -> Steps[_Result]:
        """Load, decide at ``at`` (``None``: now), write, retry a stale write, publish."""
        given = None if at is None else require_aware(at)
        for attempt in range(self.max_retries + 1):
            loading: Any = load()
            # a load of one call is that call itself: a generator fewer on the hot path
            loaded = (yield loading) if loading.__class__ is tuple else (yield from loading)
            decision = decide(loaded, self.clock.now() if given is None else given)
            writes = decision.writes
            try:
                if len(writes) == 1:  # the usual command: one account, no block needed
                    account = writes[0]
                    try:
                        yield _writing(account)
                    except StaleWrite:
                        raise
                    except ConflictError as error:
                        yield from self._clash(account, error)
                elif self.batching and len(writes) <= BATCHED_WRITES:
                    yield from self._write_batch(writes)
                elif writes:
                    yield Atomic(self._write_all(writes))
            except StaleWrite as error:
                if attempt < self.max_retries:
                    continue
                raise StaleWrite(
                    f"gave up after {attempt + 1} attempts, each overtaken by a concurrent "
                    f"write ({error})"
                ) from error
            if decision.events:
                yield Publish(decision.events)
            return decision.result
        raise AssertionError("unreachable")  # pragma: no cover

    def _write_all(self, writes: tuple[Account, ...]) -> Steps[None]:
        new = [account for account in writes if not account.version]
        if len(new) > 1:  # a bulk load's new customers: one statement, not one each
            yield from self._add_many(new)
            writes = tuple(account for account in writes if account.version)
        for account in writes:
            yield from self._write_one(account)

    def _write_batch(self, writes: tuple[Account, ...]) -> Steps[None]:
        try:
            yield call("write_all", writes)
        except StaleWrite:
            raise
        except ConflictError as error:
            for account in writes:
                yield from self._race(account, error)
            raise

    def _add_many(self, accounts: list[Account]) -> Steps[None]:
        try:
            yield call("add_many", accounts)
        except StaleWrite:
            raise
        except ConflictError as error:
            for account in accounts:
                if (yield from self._taken(account)):
                    raise StaleWrite(f"a lead was captured meanwhile ({error})") from error
            raise

    def _taken(self, account: Account) -> Steps[bool]:
        """Whether another account holds ``account``'s email or phone now."""
        for kind, value in (("email", account.email), ("phone", account.phone)):
            if value is not None and (yield from _find_id(kind, value)) not in (None, account.id):
                return True
        return False

    def _write_one(self, account: Account) -> Steps[None]:
        try:
            yield _writing(account)
        except StaleWrite:
            raise
        except ConflictError as error:
            yield from self._clash(account, error)

    def _clash(self, account: Account, error: ConflictError) -> Steps[None]:
        """Raise ``StaleWrite`` if ``error`` (refusing ``account``'s write) is a race, else it."""
        yield from self._race(account, error)
        raise error

    def _race(self, account: Account, error: ConflictError) -> Steps[None]:
        """Raise ``StaleWrite`` if ``error`` (refusing ``account``'s write) is a race."""
        if account.version:
            # The only code a command sets is one drawn free at the load: another writer
            # has taken it since, and the retry draws another.
            code = account.referral_code
            holder = None if code is None else (yield from _find_id("referral_code", code))
            if holder not in (None, account.id):
                raise StaleWrite(f"referral code {code} was taken meanwhile ({error})") from error
            return
        # The command saw the lead's email and phone free. If one is taken now, another
        # writer captured the same person since: what we loaded is stale, and the retry
        # finds (and links) the account that writer stored.
        if (yield from self._taken(account)):
            raise StaleWrite(
                f"lead {shown(account.name)} was captured meanwhile ({error})"
            ) from error

    # -- loads: what commands decide on --------------------------------------------------------

    def account(self, account_id: str) -> Callable[[], Steps[Account]]:
        """Return the load of one account by id (``NotFound`` if there is none).

        The load is the one call itself (a :data:`Call`), which :meth:`attempts` yields as it
        is: no generator for the commonest load.
        """
        return partial(call, "get", account_id)  # type: ignore[return-value]

    def known(self, lead: Account) -> Steps[Known]:
        """Load the stored accounts holding ``lead``'s email and its phone.

        The duplicate check asks the index for an id first, so that the usual answer for a
        new lead ("nobody") costs one indexed query per contact and no decoding.
        """
        if self.batching:
            found = yield call("holders", email=lead.email, phone=lead.phone)
            return Known(found.by_email, found.by_phone)
        by_email = yield from self._holding("email", lead.email)
        by_phone = yield from self._holding("phone", lead.phone)
        return Known(by_email, by_phone)

    def _holding(self, kind: str, value: str | None) -> Steps[Account | None]:
        if value is None:
            return None
        found = yield from _find_id(kind, value)
        if found is None:
            return None
        with contextlib.suppress(NotFound):  # removed since: nobody holds it
            return (yield from _get(found))
        return None

    def scene(self, lead: Account, *, referrer_id: str | None, code: str | None) -> Steps[Scene]:
        """Load the referrer (by id, or by the code on its card) and who ``lead`` is."""
        if self.batching:  # all of it in one call
            found = yield call(
                "holders", account_id=referrer_id, email=lead.email, phone=lead.phone,
                referral_code=code if referrer_id is None else None,
            )  # fmt: skip
            referrer = found.by_id if referrer_id is not None else found.by_code
            if referrer is None and referrer_id is not None:
                raise NotFound(f"no account with id {shown(referrer_id)}")
            if referrer is None:
                raise _unknown_code(code)
            return Scene(referrer, Known(found.by_email, found.by_phone))
        if referrer_id is not None:
            referrer = yield from _get(referrer_id)
        else:
            found = None if code is None else (yield call("find_by_referral_code", code))
            if found is None:
                raise _unknown_code(code)
            referrer = found
        return Scene(referrer, (yield from self.known(lead)))

    def account_with_code(
        self, account_id: str, draw: Callable[[], str], transitions: Transitions
    ) -> Callable[[], Steps[tuple[Account, str]]]:
        """Return the load of an account and its referral code: its own, or a free one drawn.

        A code is drawn only for an account whose stage may refer: one that may not is refused
        by the command, and the draws would be wasted.
        """

        def load() -> Steps[tuple[Account, str]]:
            account = yield from _get(account_id)
            if account.referral_code or "refer" not in transitions.allowed(account.stage):
                return account, account.referral_code or ""
            return account, (yield from self.free_code(draw))

        return load

    def free_code(self, draw: Callable[[], str]) -> Steps[str]:
        """Draw codes with ``draw`` until one is free (a clash is rare: 31**8 codes)."""
        for _ in range(CODE_DRAWS):
            code = normalise_referral_code(draw())
            if (yield from _find_id("referral_code", code)) is None:
                return code
        raise ConflictError(
            f"{CODE_DRAWS} referral codes drawn in a row were all taken: does the "
            "code_factory return new codes?"
        )


class UnitOfWork(Work):
    """Runs commands against ``repository``, publishing their events on ``bus``."""

    def __init__(
        self, repository: AccountRepository, *, clock: Clock, bus: EventBus, max_retries: int
    ) -> None:
        super().__init__(
            clock=clock, max_retries=max_retries, batching=isinstance(repository, Batching),
            reads_many=isinstance(repository, ReadsMany),
        )  # fmt: skip
        self.repository = repository
        self.bus = bus

    def run(
        self,
        load: Callable[[], Steps[_Loaded]],
        decide: Callable[[_Loaded, datetime], Decision[_Result]],
        *,
        at: datetime | None,
    ) -> _Result:
        """Load, decide at ``at`` (``None``: now), write, retry a stale write, publish."""
        return self.drive(self.attempts(load, decide, at=at))

    def drive(self, steps: Steps[_Result]) -> _Result:
        """Run ``steps`` against the repository: call each step, send back its answer."""
        repository = self.repository
        send, throw = steps.send, steps.throw
        answer: Any = None
        error: Exception | None = None
        try:
            while True:
                step: Any = send(answer) if error is None else throw(error)
                error = None
                try:
                    kind = step.__class__
                    if kind is tuple:
                        name, args, kwargs = step
                        method = getattr(repository, name)
                        answer = method(*args, **kwargs) if kwargs else method(*args)
                    elif kind is Atomic:
                        with repository.atomic():
                            answer = self.drive(step.steps)
                    else:
                        repository.after_commit(partial(self.bus.publish, step.events))
                        answer = None
                except Exception as exc:
                    error = exc
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            steps.close()  # a cancelled or interrupted run still runs the steps' cleanup


class AsyncUnitOfWork(Work):
    """Runs commands against an async ``repository``, awaiting each step; see the module."""

    def __init__(
        self,
        repository: AsyncAccountRepository,
        *,
        clock: Clock,
        bus: EventBus,
        max_retries: int,
    ) -> None:
        super().__init__(
            clock=clock, max_retries=max_retries, batching=isinstance(repository, AsyncBatching),
            reads_many=isinstance(repository, AsyncReadsMany),
        )  # fmt: skip
        self.repository = repository
        self.bus = bus

    async def run(
        self,
        load: Callable[[], Steps[_Loaded]],
        decide: Callable[[_Loaded, datetime], Decision[_Result]],
        *,
        at: datetime | None,
    ) -> _Result:
        """Load, decide at ``at`` (``None``: now), write, retry a stale write, publish."""
        return await self.drive(self.attempts(load, decide, at=at))

    async def drive(self, steps: Steps[_Result]) -> _Result:
        """Run ``steps`` against the repository: await each step, send back its answer."""
        repository = self.repository
        send, throw = steps.send, steps.throw
        answer: Any = None
        error: Exception | None = None
        try:
            while True:
                step: Any = send(answer) if error is None else throw(error)
                error = None
                try:
                    kind = step.__class__
                    if kind is tuple:
                        name, args, kwargs = step
                        method = getattr(repository, name)
                        answer = await (method(*args, **kwargs) if kwargs else method(*args))
                    elif kind is Atomic:
                        async with repository.atomic():
                            answer = await self.drive(step.steps)
                    else:
                        repository.after_commit(partial(self.bus.publish, step.events))
                        answer = None
                except Exception as exc:
                    error = exc
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            steps.close()  # a cancelled or interrupted run still runs the steps' cleanup
