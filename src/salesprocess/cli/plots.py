"""``report --plot DIR``: the report as PNG charts (matplotlib, extra ``salesprocess[plot]``).

Four charts: the funnel (now and ever reached), the lead flow against its target, revenue by
month, and revenue from first purchases against repeat purchases by month. Drawn off-screen
(the Agg backend), so they work on a server without a display.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import salesprocess as sp
from salesprocess.clock import utc_day
from salesprocess.reports.revenue import purchases_between
from salesprocess.storage.protocol import every_account

__all__ = ["draw", "monthly_revenue"]

#: currency -> month (``"2026-03"``) -> (first purchases, repeat purchases), exact.
Months = dict[str, dict[str, tuple[Decimal, Decimal]]]


def monthly_revenue(
    accounts: Iterable[sp.Account],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Months:
    """Return currency -> month (``"2026-03"``) -> (first purchases, repeat purchases).

    Only purchases made at or after ``since`` and before ``until`` count (``None``: open), the
    window of :func:`salesprocess.reports.revenue`, taken by its own
    :func:`~salesprocess.reports.revenue.purchases_between`. A purchase is a repeat one when the
    account had bought on an earlier UTC day, inside the window or before it. Amounts are summed
    as ``Decimal``, exactly; a month is the UTC calendar month of the purchase. Raises
    ``ValidationError`` for a bound that is not an aware datetime, or ``since`` not before
    ``until``.
    """
    months: Months = {}
    for account, purchase in purchases_between(accounts, since, until):
        day = utc_day(purchase.at)
        per = months.setdefault(purchase.amount.currency, {})
        month = day.strftime("%Y-%m")
        first, repeat = per.get(month, (Decimal(0), Decimal(0)))
        amount = purchase.amount.amount
        if day == utc_day(account.purchases[0].at):
            per[month] = (first + amount, repeat)
        else:
            per[month] = (first, repeat + amount)
    return months


def _funnel(plt: Any, data: dict[str, Any]) -> Any:
    ladder = data["funnel"]["ladder"]
    figure, axes = plt.subplots(figsize=(7, 3.5))
    stages = [rung["stage"] for rung in ladder][::-1]
    axes.barh(stages, [rung["reached"] for rung in ladder][::-1], label="ever reached")
    axes.barh(stages, [rung["now"] for rung in ladder][::-1], label="now")
    axes.set_title("Funnel")
    axes.legend()
    return figure


def _flow(plt: Any, data: dict[str, Any]) -> Any:
    weeks = data["lead_flow"]["weeks"]
    figure, axes = plt.subplots(figsize=(7, 3.5))
    starts = [week["start"][5:] for week in weeks]
    axes.bar(starts, [week["qualified"] for week in weeks], label="qualified")
    axes.plot(starts, [week["leads"] for week in weeks], marker="o", label="new leads")
    axes.axhline(data["lead_flow"]["target"], linestyle="--", color="grey", label="target")
    axes.set_title("Lead flow per week")
    axes.legend()
    return figure


def _revenue(plt: Any, months: Months, split: bool) -> Any:
    figure, axes = plt.subplots(figsize=(7, 3.5))
    for code, per in sorted(months.items()):
        labels = sorted(per)
        # Floats only here, as drawing coordinates: the sums above are exact.
        first = [float(per[label][0]) for label in labels]
        repeat = [float(per[label][1]) for label in labels]
        total = [float(per[label][0] + per[label][1]) for label in labels]
        if split:
            axes.bar(labels, first, label=f"first purchases ({code})")
            axes.bar(labels, repeat, bottom=first, label=f"repeat purchases ({code})")
        else:
            axes.plot(labels, total, marker="o", label=code)
    axes.set_title("First against repeat purchases" if split else "Revenue by month")
    if months:
        axes.legend()
    return figure


def draw(
    sales: sp.SalesProcess,
    folder: Path,
    data: dict[str, Any],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Path]:
    """Draw the charts of the report ``data`` (and ``sales``' purchases) into ``folder``.

    The revenue charts cover the purchases from ``since`` up to (not including) ``until``:
    pass the window of the report's revenue figures. They read every stored account, a page
    at a time (no report of the library gives revenue per month split into first and
    repeat purchases).
    """
    try:
        import matplotlib as mpl  # noqa: PLC0415 - an optional extra, loaded when asked for

        mpl.use("Agg")
        from matplotlib import pyplot as plt  # noqa: PLC0415
    except ImportError as error:
        raise sp.ValidationError(
            "--plot needs matplotlib: pip install 'salesprocess[plot]'", field="plot"
        ) from error
    months = monthly_revenue(every_account(sales.repository), since=since, until=until)
    folder.mkdir(parents=True, exist_ok=True)
    charts = {
        "funnel.png": _funnel(plt, data),
        "lead_flow.png": _flow(plt, data),
        "revenue.png": _revenue(plt, months, split=False),
        "new_vs_repeat.png": _revenue(plt, months, split=True),
    }
    drawn = []
    for name, figure in charts.items():
        figure.tight_layout()
        figure.savefig(folder / name, dpi=110)
        plt.close(figure)
        drawn.append(folder / name)
    return drawn
