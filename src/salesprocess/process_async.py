"""``AsyncSalesProcess``: the facade for async apps (FastAPI, Starlette), a coroutine per use case.

It is :class:`~salesprocess.process.SalesProcess` for code that awaits: the same commands and
reports, with the same arguments, answers and errors, as coroutines (``await
asales.capture_lead(...)``), over an
:class:`~salesprocess.storage.async_protocol.AsyncAccountRepository` (default: a fresh
:class:`~salesprocess.storage.memory_async.AsyncInMemoryRepository`; on PostgreSQL
:class:`~salesprocess.storage.postgres_async.AsyncPostgresRepository` over psycopg's
``AsyncConnectionPool``). Each command is the very steps the sync facade runs
(:class:`~salesprocess.use_cases.UseCases`), driven by an
:class:`~salesprocess.unit_of_work.AsyncUnitOfWork` that awaits the repository: nothing of a
command is written twice. Events reach subscribers (plain functions) after commit, as in the
sync facade.

>>> import asyncio
>>> import salesprocess as sp
>>> async def main() -> str:
...     asales = sp.AsyncSalesProcess()
...     lead = await asales.capture_lead("Zeta AG", email="z@zeta.example",
...                                      channel=sp.Channel.INBOUND_INQUIRY)
...     return (await asales.get(lead.id)).name
>>> asyncio.run(main())
'Zeta AG'
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import date, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar, Unpack

from salesprocess import reports
from salesprocess.account import Account
from salesprocess.checks import require_instance, require_text
from salesprocess.contact import normalise_email, normalise_phone
from salesprocess.customer_service import ServiceRecommendation
from salesprocess.errors import ValidationError
from salesprocess.money import Money
from salesprocess.qualification import QualificationReport
from salesprocess.report_requests import Reporting, ReportRequest
from salesprocess.screening import Progress
from salesprocess.stage import Stage
from salesprocess.storage.async_protocol import AsyncAccountRepository, every_account_async
from salesprocess.storage.memory_async import AsyncInMemoryRepository
from salesprocess.unit_of_work import AsyncUnitOfWork, Steps
from salesprocess.use_cases import UseCases, Wiring

__all__ = ["AsyncSalesProcess", "awaited"]

_Arguments = ParamSpec("_Arguments")
_Result = TypeVar("_Result")


def awaited(
    steps: Callable[Concatenate[Any, _Arguments], Steps[_Result]],
) -> Callable[Concatenate[Any, _Arguments], Coroutine[Any, Any, _Result]]:
    """Return the coroutine command of ``steps`` (a ``UseCases`` method): its steps, awaited.

    The command has the steps' signature, name (without the underscore) and documentation.
    """

    @functools.wraps(steps)
    async def command(self: Any, /, *args: _Arguments.args, **kwargs: _Arguments.kwargs) -> _Result:
        answer: _Result = await self._uow.drive(steps(self, *args, **kwargs))
        return answer

    command.__name__ = steps.__name__.removeprefix("_")
    command.__qualname__ = f"AsyncSalesProcess.{command.__name__}"
    return command


def _answered(
    request: Callable[Concatenate[Any, _Arguments], ReportRequest[_Result]],
) -> Callable[Concatenate[Any, _Arguments], Coroutine[Any, Any, _Result]]:
    """Return the coroutine report of ``request`` (a ``Reporting`` method)."""

    @functools.wraps(request)
    async def report(self: Any, /, *args: _Arguments.args, **kwargs: _Arguments.kwargs) -> _Result:
        answer: _Result = await self._report(request(self, *args, **kwargs))
        return answer

    report.__name__ = request.__name__.removeprefix("_")
    report.__qualname__ = f"AsyncSalesProcess.{report.__name__}"
    return report


class AsyncSalesProcess(Reporting):
    """The sales process over one async account store: :class:`SalesProcess`, awaited.

    ``repository`` (an :class:`~salesprocess.storage.async_protocol.AsyncAccountRepository`)
    defaults to a fresh :class:`~salesprocess.storage.memory_async.AsyncInMemoryRepository`;
    the keyword arguments are :class:`~salesprocess.SalesProcess`'s
    (:class:`~salesprocess.use_cases.Wiring`). Every command and report is
    ``SalesProcess``'s, with the same arguments, answers and errors, as a coroutine.
    """

    _uow: AsyncUnitOfWork

    def __init__(
        self, repository: AsyncAccountRepository | None = None, **wiring: Unpack[Wiring]
    ) -> None:
        # Checked here, so that a miswired process fails now and not in its first command.
        store: AsyncAccountRepository = (
            AsyncInMemoryRepository()
            if repository is None
            else require_instance(repository, "repository", AsyncAccountRepository)  # type: ignore[type-abstract]
        )
        if not inspect.iscoroutinefunction(store.get):
            raise ValidationError(
                f"repository {type(store).__name__} is not async (its get() is no coroutine "
                "function): use SalesProcess with it, or an async repository here",
                field="repository",
            )
        super().__init__(**wiring)
        self._uow = AsyncUnitOfWork(
            store, clock=self._clock, bus=self._bus, max_retries=self._max_retries
        )

    @property
    def repository(self) -> AsyncAccountRepository:
        """The account store (fixed for the process's life, like ``clock`` and ``max_retries``)."""
        return self._uow.repository

    # -- the commands: each one's steps, awaiting the store ----------------------------------

    capture = awaited(UseCases._capture)
    capture_lead = awaited(UseCases._capture_lead)
    record_call = awaited(UseCases._record_call)
    screen = awaited(UseCases._screen)
    qualify = awaited(UseCases._qualify)
    disqualify = awaited(UseCases._disqualify)
    recycle = awaited(UseCases._recycle)
    churn = awaited(UseCases._churn)
    fire = awaited(UseCases._fire)
    record_purchase = awaited(UseCases._record_purchase)
    ask_for_referrals = awaited(UseCases._ask_for_referrals)
    record_referral = awaited(UseCases._record_referral)
    issue_referral_cards = awaited(UseCases._issue_referral_cards)
    learn_preference = awaited(UseCases._learn_preference)
    register_asset = awaited(UseCases._register_asset)
    import_leads = awaited(UseCases._import_leads)
    import_purchases = awaited(UseCases._import_purchases)

    # -- the reports: each one's request, answered here -------------------------------------

    revenue = _answered(Reporting._revenue)
    repeat_summary = _answered(Reporting._repeat_summary)
    rfm = _answered(Reporting._rfm)
    funnel = _answered(Reporting._funnel)
    lead_flow = _answered(Reporting._lead_flow)
    time_in_stage = _answered(Reporting._time_in_stage)
    referral_stats = _answered(Reporting._referral_stats)

    async def _report(self, request: ReportRequest[_Result]) -> _Result:
        # The store's own answer (in SQL) where it has one, else the pure function: the oracle.
        report, options = request.report, request.options
        answer = getattr(self.repository, f"report_{report.__name__}", None)
        if answer is not None:
            return await answer(**options)  # type: ignore[no-any-return]
        accounts = [account async for account in every_account_async(self.repository)]
        return report(accounts, **options)

    # -- reads and the work over many accounts, which reads them first -----------------------

    async def get(self, account_id: str) -> Account:
        """Await :meth:`SalesProcess.get <salesprocess.SalesProcess.get>`."""
        return await self.repository.get(require_text(account_id, "account_id"))

    async def find(self, *, email: str | None = None, phone: str | None = None) -> Account | None:
        """Await :meth:`SalesProcess.find <salesprocess.SalesProcess.find>`."""
        email = None if email is None else normalise_email(email)
        phone = None if phone is None else normalise_phone(phone)
        found = None if email is None else await self.repository.find_by_email(email)
        return found or (None if phone is None else await self.repository.find_by_phone(phone))

    async def screen_all(
        self, *, at: datetime | None = None, progress: Progress | None = None
    ) -> list[QualificationReport]:
        """Await :meth:`SalesProcess.screen_all <salesprocess.SalesProcess.screen_all>`.

        Every prospect is read and judged in Python (the SQL prefilter is the sync stores').
        """
        self._progress(progress)
        prospect = self.transitions.initial
        prospects = [account async for account in self.repository.with_stage(prospect)]
        return await self._uow.drive(self._screen_accounts(prospects, prospect, at, progress))

    async def screen_many(
        self, account_ids: Iterable[str], *, at: datetime | None = None
    ) -> list[QualificationReport]:
        """Await :meth:`SalesProcess.screen_many <salesprocess.SalesProcess.screen_many>`."""
        ids = self._screen_ids(account_ids)
        accounts = [await self.repository.get(account_id) for account_id in ids]
        return await self._uow.drive(self._screen_accounts(accounts, None, at))

    async def call_list(self, *, limit: int = 50, at: datetime | None = None) -> list[Account]:
        """Await :meth:`SalesProcess.call_list <salesprocess.SalesProcess.call_list>`."""
        limit = self._call_list_limit(limit)
        prospects = [a async for a in self.repository.with_stage(self.transitions.initial)]
        return reports.call_list(
            prospects, self._moment(at), criteria=self._criteria(), scoring=self.scoring,
            limit=limit,
        )  # fmt: skip

    async def recommend_service(
        self,
        account_id: str,
        asset_id: str,
        *,
        repair_cost: Money,
        replacement_cost: Money,
        on: date | None = None,
    ) -> ServiceRecommendation:
        """Await :meth:`salesprocess.SalesProcess.recommend_service`."""
        day = self._service_day(account_id, asset_id, repair_cost, replacement_cost, on)
        account = await self.repository.get(account_id)
        return self._recommend(account, asset_id, (repair_cost, replacement_cost), day)

    async def stage_counts(self) -> Mapping[Stage, int]:
        """Await :meth:`SalesProcess.stage_counts <salesprocess.SalesProcess.stage_counts>`."""
        counted = await self.repository.count_by_stage()
        return reports.stage_counts(counted, self.transitions.stages)
