"""The unit of work: load, decide, write with the expected versions, retry, publish.

Every command of :class:`~salesprocess.process.SalesProcess` runs through :meth:`UnitOfWork.run`:

1. **load** the accounts the command decides on (a callable of this module's loads);
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
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Final, TypeVar

from salesprocess.account import Account
from salesprocess.checks import shown
from salesprocess.clock import Clock, require_aware
from salesprocess.commands.decision import Decision
from salesprocess.commands.leads import Known
from salesprocess.commands.referrals import Scene
from salesprocess.errors import ConflictError, NotFound, StaleWrite, ValidationError
from salesprocess.events import EventBus
from salesprocess.lifecycle import Transitions
from salesprocess.referral_codes import normalise_referral_code
from salesprocess.storage.protocol import AccountRepository

__all__ = ["CODE_DRAWS", "UnitOfWork"]

_Loaded = TypeVar("_Loaded")
_Result = TypeVar("_Result")

#: How many referral codes to draw before giving up on finding a free one.
CODE_DRAWS: Final = 8


class UnitOfWork:
    """Runs commands against ``repository``, publishing their events on ``bus``."""

    def __init__(
        self, repository: AccountRepository, *, clock: Clock, bus: EventBus, max_retries: int
    ) -> None:
        self.repository = repository
        self.clock = clock
        self.bus = bus
        self.max_retries = max_retries

    def run(
        self,
        load: Callable[[], _Loaded],
        decide: Callable[[_Loaded, datetime], Decision[_Result]],
        *,
        at: datetime | None,
    ) -> _Result:
        """Load, decide at ``at`` (``None``: now), write, retry a stale write, publish."""
        given = None if at is None else require_aware(at)
        for attempt in range(self.max_retries + 1):
            loaded = load()
            decision = decide(loaded, self.clock.now() if given is None else given)
            try:
                self._write(decision.writes)
            except StaleWrite as error:
                if attempt < self.max_retries:
                    continue
                raise StaleWrite(
                    f"gave up after {attempt + 1} attempts, each overtaken by a concurrent "
                    f"write ({error})"
                ) from error
            if decision.events:
                self.repository.after_commit(partial(self.bus.publish, decision.events))
            return decision.result
        raise AssertionError("unreachable")  # pragma: no cover

    def _write(self, writes: tuple[Account, ...]) -> None:
        if len(writes) <= 1:
            for account in writes:
                self._write_one(account)
            return
        new = [account for account in writes if not account.version]
        with self.repository.atomic():
            if len(new) > 1:  # a bulk load's new customers: one statement, not one each
                self._add_many(new)
                writes = tuple(account for account in writes if account.version)
            for account in writes:
                self._write_one(account)

    def _add_many(self, accounts: list[Account]) -> None:
        try:
            self.repository.add_many(accounts)
        except StaleWrite:
            raise
        except ConflictError as error:
            if any(self._taken(account) for account in accounts):
                raise StaleWrite(f"a lead was captured meanwhile ({error})") from error
            raise

    def _taken(self, account: Account) -> bool:
        """Whether another account holds ``account``'s email or phone now."""
        return any(
            value is not None and self.repository.find_id(**{kind: value}) not in (None, account.id)
            for kind, value in (("email", account.email), ("phone", account.phone))
        )

    def _write_one(self, account: Account) -> None:
        if account.version:
            try:
                self.repository.save(account, expected_version=account.version)
            except StaleWrite:
                raise
            except ConflictError as error:
                # The only code a command sets is one drawn free at the load: another writer
                # has taken it since, and the retry draws another.
                code = account.referral_code
                holder = None if code is None else self.repository.find_id(referral_code=code)
                if holder not in (None, account.id):
                    raise StaleWrite(
                        f"referral code {code} was taken meanwhile ({error})"
                    ) from error
                raise
            return
        try:
            self.repository.add(account)
        except StaleWrite:
            raise
        except ConflictError as error:
            # The command saw the lead's email and phone free. If one is taken now, another
            # writer captured the same person since: what we loaded is stale, and the retry
            # finds (and links) the account that writer stored.
            if self._taken(account):
                raise StaleWrite(
                    f"lead {shown(account.name)} was captured meanwhile ({error})"
                ) from error
            raise

    # -- loads: what commands decide on --------------------------------------------------------

    def account(self, account_id: str) -> Callable[[], Account]:
        """Return the load of one account by id (``NotFound`` if there is none)."""
        return partial(self.repository.get, account_id)

    def known(self, lead: Account) -> Known:
        """Return the stored accounts holding ``lead``'s email and its phone.

        The duplicate check asks the index for an id first, so that the usual answer for a
        new lead ("nobody") costs one indexed query per contact and no decoding.
        """
        return Known(self._holding("email", lead.email), self._holding("phone", lead.phone))

    def _holding(self, kind: str, value: str | None) -> Account | None:
        if value is None:
            return None
        found = self.repository.find_id(**{kind: value})
        if found is None:
            return None
        with contextlib.suppress(NotFound):  # removed since: nobody holds it
            return self.repository.get(found)
        return None

    def scene(self, lead: Account, *, referrer_id: str | None, code: str | None) -> Scene:
        """Return the referrer (by id, or by the code on its card) and who ``lead`` is."""
        if referrer_id is not None:
            referrer = self.repository.get(referrer_id)
        else:
            found = None if code is None else self.repository.find_by_referral_code(code)
            if found is None:
                raise ValidationError(
                    f"no account holds referral code {code}: check the card",
                    field="referral_code",
                )
            referrer = found
        return Scene(referrer, self.known(lead))

    def account_with_code(
        self, account_id: str, draw: Callable[[], str], transitions: Transitions
    ) -> Callable[[], tuple[Account, str]]:
        """Return the load of an account and its referral code: its own, or a free one drawn.

        A code is drawn only for an account whose stage may refer: one that may not is refused
        by the command, and the draws would be wasted.
        """

        def load() -> tuple[Account, str]:
            account = self.repository.get(account_id)
            if account.referral_code or "refer" not in transitions.allowed(account.stage):
                return account, account.referral_code or ""
            return account, self.free_code(draw)

        return load

    def free_code(self, draw: Callable[[], str]) -> str:
        """Draw codes with ``draw`` until one is free (a clash is rare: 31**8 codes)."""
        for _ in range(CODE_DRAWS):
            code = normalise_referral_code(draw())
            if self.repository.find_id(referral_code=code) is None:
                return code
        raise ConflictError(
            f"{CODE_DRAWS} referral codes drawn in a row were all taken: does the "
            "code_factory return new codes?"
        )
