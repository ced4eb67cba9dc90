"""``SalesProcess``: the facade a sales team's app calls, one method per use case.

It wires the parts (the store, the policies, the lifecycle, the clock) and delegates: each
command is a pure decision in :mod:`salesprocess.commands`, run by the
:class:`~salesprocess.unit_of_work.UnitOfWork` (load, decide, write, retry a stale write,
publish after commit); each report is a pure function in :mod:`salesprocess.reports`. It is an
entry point, like a command line: the one layer that picks a default adapter (in-memory
storage) for a caller who names none. A refused command raises before anything is stored, so
the stored accounts stay exactly as they were, and publishes nothing.

The commands and reports are written once, for this facade and the async one, in
:mod:`salesprocess.use_cases` and :mod:`salesprocess.report_requests` (their checks, their
steps, their signatures and documentation); this module drives them by calling the store.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar, Unpack

from salesprocess import reports, screening
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
from salesprocess.storage import selection
from salesprocess.storage.memory import InMemoryRepository
from salesprocess.storage.protocol import AccountRepository, every_account
from salesprocess.unit_of_work import Steps, UnitOfWork, collector_paused
from salesprocess.use_cases import UseCases, Wiring

__all__ = ["SalesProcess", "driven"]

_Arguments = ParamSpec("_Arguments")
_Result = TypeVar("_Result")


def driven(
    steps: Callable[Concatenate[Any, _Arguments], Steps[_Result]], *, bulk: bool = False
) -> Callable[Concatenate[Any, _Arguments], _Result]:
    """Return the command of ``steps`` (a ``UseCases`` method): its steps, run by calling.

    The command has the steps' signature, name (without the underscore) and documentation.
    A ``bulk`` command (one over a whole file of rows) runs with the cyclic garbage collector
    paused (:func:`~salesprocess.unit_of_work.collector_paused`), its rows' checks included.
    """

    @functools.wraps(steps)
    def command(self: Any, /, *args: _Arguments.args, **kwargs: _Arguments.kwargs) -> _Result:
        with collector_paused() if bulk else contextlib.nullcontext():
            answer: _Result = self._uow.drive(steps(self, *args, **kwargs))
        return answer

    command.__name__ = steps.__name__.removeprefix("_")
    command.__qualname__ = f"SalesProcess.{command.__name__}"
    return command


def _answered(
    request: Callable[Concatenate[Any, _Arguments], ReportRequest[_Result]],
) -> Callable[Concatenate[Any, _Arguments], _Result]:
    """Return the report of ``request`` (a ``Reporting`` method), answered by calling."""

    @functools.wraps(request)
    def report(self: Any, /, *args: _Arguments.args, **kwargs: _Arguments.kwargs) -> _Result:
        answer: _Result = self._report(request(self, *args, **kwargs))
        return answer

    report.__name__ = request.__name__.removeprefix("_")
    report.__qualname__ = f"SalesProcess.{report.__name__}"
    return report


class SalesProcess(Reporting):
    """The sales process over one account store.

    ``repository`` defaults to a fresh :class:`~salesprocess.storage.InMemoryRepository`.
    The keyword arguments (:class:`~salesprocess.use_cases.Wiring`): ``criteria`` are
    marketing's prospect criteria (for :meth:`screen` and :meth:`call_list`); ``scoring`` an
    optional rule whose score ranks the call list; ``qualification_policy`` decides
    :meth:`qualify` (default :class:`ScreenAndCallPolicy`); ``service_policy`` decides
    :meth:`recommend_service` (default :class:`RepairOrReplacePolicy`). ``lifecycle`` may be a
    subclass of :class:`~salesprocess.lifecycle.Lifecycle`. ``max_retries`` (default 3) bounds
    the retries of a command overtaken by a concurrent write. ``id_factory`` makes ids
    (accounts, referral requests, assets; default version 7 UUIDs in hex, which sort by the
    time they were made), ``code_factory`` referral
    codes. ``currency`` is the :class:`~salesprocess.currencies.CurrencyRule` purchases keep,
    or the house currency's ISO 4217 code; by default an account's currency is fixed by its
    first purchase. ``clock`` says when "now" is (default the system's clock).
    """

    _uow: UnitOfWork

    def __init__(
        self, repository: AccountRepository | None = None, **wiring: Unpack[Wiring]
    ) -> None:
        # Checked here, so that a miswired process fails now and not in its first command.
        store: AccountRepository = (
            InMemoryRepository()
            if repository is None
            else require_instance(repository, "repository", AccountRepository)  # type: ignore[type-abstract]
        )
        if inspect.iscoroutinefunction(store.get):
            raise ValidationError(
                f"repository {type(store).__name__} is async: use AsyncSalesProcess with it",
                field="repository",
            )
        super().__init__(**wiring)
        self._uow = UnitOfWork(
            store, clock=self._clock, bus=self._bus, max_retries=self._max_retries
        )

    @property
    def repository(self) -> AccountRepository:
        """The account store (fixed for the process's life, like ``clock`` and ``max_retries``)."""
        return self._uow.repository

    # -- the commands: each one's steps, run by calling the store ----------------------------

    capture = driven(UseCases._capture)
    capture_lead = driven(UseCases._capture_lead)
    record_call = driven(UseCases._record_call)
    screen = driven(UseCases._screen)
    qualify = driven(UseCases._qualify)
    disqualify = driven(UseCases._disqualify)
    recycle = driven(UseCases._recycle)
    churn = driven(UseCases._churn)
    fire = driven(UseCases._fire)
    record_purchase = driven(UseCases._record_purchase)
    ask_for_referrals = driven(UseCases._ask_for_referrals)
    record_referral = driven(UseCases._record_referral)
    issue_referral_cards = driven(UseCases._issue_referral_cards)
    learn_preference = driven(UseCases._learn_preference)
    register_asset = driven(UseCases._register_asset)
    import_leads = driven(UseCases._import_leads, bulk=True)
    import_purchases = driven(UseCases._import_purchases, bulk=True)

    # -- the reports: each one's request, answered here -------------------------------------

    revenue = _answered(Reporting._revenue)
    repeat_summary = _answered(Reporting._repeat_summary)
    rfm = _answered(Reporting._rfm)
    funnel = _answered(Reporting._funnel)
    lead_flow = _answered(Reporting._lead_flow)
    time_in_stage = _answered(Reporting._time_in_stage)
    referral_stats = _answered(Reporting._referral_stats)

    def _report(self, request: ReportRequest[_Result]) -> _Result:
        # An adapter that answers a report itself (in SQL) has a method report_<name>; the pure
        # function over every account is the oracle it must agree with.
        report, options = request.report, request.options
        answer = getattr(self.repository, f"report_{report.__name__}", None)
        return answer(**options) if answer else report(every_account(self.repository), **options)

    # -- reads and the work over many accounts, which reads them first -----------------------

    def get(self, account_id: str) -> Account:
        """Return the account with ``account_id``; raise ``NotFound`` if there is none."""
        return self.repository.get(require_text(account_id, "account_id"))

    def find(self, *, email: str | None = None, phone: str | None = None) -> Account | None:
        """Return the account with this email, else this phone (both normalised first)."""
        email = None if email is None else normalise_email(email)
        phone = None if phone is None else normalise_phone(phone)
        found = None if email is None else self.repository.find_by_email(email)
        return found or (None if phone is None else self.repository.find_by_phone(phone))

    def screen_all(
        self, *, at: datetime | None = None, progress: Progress | None = None
    ) -> list[QualificationReport]:
        """Screen every prospect a batch at a time; return the reports.

        One read of each prospect, one transaction per batch; ``progress(done, total)`` after
        each. Refused as a whole, before anything is stored, when ``at`` is earlier than a
        prospect's last screening. A prospect that moves on meanwhile is left out.
        """
        self._progress(progress)
        return screening.screen_stage(
            self._uow, criteria=self._criteria(), stage=self.transitions.initial,
            moment=self._moment(at), progress=progress,
        )  # fmt: skip

    def screen_many(
        self, account_ids: Iterable[str], *, at: datetime | None = None
    ) -> list[QualificationReport]:
        """Screen the accounts ``account_ids`` name as :meth:`screen_all` screens prospects.

        An id named twice is screened once.
        """
        ids = self._screen_ids(account_ids)
        accounts = [self.repository.get(account_id) for account_id in ids]
        return screening.screen_accounts(
            self._uow, accounts, criteria=self._criteria(), stage=None, moment=self._moment(at)
        )

    def call_list(self, *, limit: int = 50, at: datetime | None = None) -> list[Account]:
        """Return prospects that pass the criteria and may be called now, best first.

        See :func:`salesprocess.reports.call_list` for who is left out and the ranking.
        """
        limit = self._call_list_limit(limit)
        criteria, stage = self._criteria(), self.transitions.initial
        prospects = selection.prospects(self.repository, criteria, stage)
        return reports.call_list(
            prospects, self._moment(at), criteria=criteria, scoring=self.scoring, limit=limit
        )

    def recommend_service(
        self,
        account_id: str,
        asset_id: str,
        *,
        repair_cost: Money,
        replacement_cost: Money,
        on: date | None = None,
    ) -> ServiceRecommendation:
        """Recommend repairing or replacing a broken asset, as the service policy decides.

        ``on`` is the day it broke (default: today, UTC). Nothing is stored.
        """
        day = self._service_day(account_id, asset_id, repair_cost, replacement_cost, on)
        account = self.repository.get(account_id)
        return self._recommend(account, asset_id, (repair_cost, replacement_cost), day)

    def stage_counts(self) -> Mapping[Stage, int]:
        """Return how many accounts are at each stage of the lifecycle (zeros included)."""
        return reports.stage_counts(self.repository.count_by_stage(), self.transitions.stages)
