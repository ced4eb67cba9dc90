"""What the command line shows: the report's figures as plain data, as tables, as CSV."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final, NamedTuple

from rich.console import Console
from rich.table import Table

import salesprocess as sp

__all__ = [
    "REFERRALS_SCOPE",
    "Reports",
    "call_list",
    "figures",
    "gather",
    "report",
    "views",
    "write_call_list",
]


#: What the referral figures cover: ``sales.referral_stats()`` takes no moment, so they count
#: every referral stored, whatever ``--as-of``, ``--since`` and ``--until`` say.
REFERRALS_SCOPE: Final = "all time"


class Reports(NamedTuple):
    """The reports ``salesprocess report`` shows, as the library returns them."""

    as_of: datetime
    since: datetime | None
    until: datetime | None
    target: int
    funnel: sp.Funnel
    revenue: sp.RevenueReport
    lead_flow: list[sp.FlowPeriod]
    referrals: sp.ReferralReport


def gather(
    sales: sp.SalesProcess,
    *,
    as_of: datetime,
    target: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Reports:
    """Ask the library for the report's parts: each once, whatever prints them."""
    return Reports(
        as_of, since, until, target,
        funnel=sales.funnel(as_of=as_of),
        revenue=sales.revenue(since=since, until=until),
        lead_flow=sales.lead_flow(period="week", target=target, as_of=as_of),
        referrals=sales.referral_stats(),
    )  # fmt: skip


def views(found: Reports) -> dict[str, Any]:
    """Return what ``report --json`` prints: the library's JSON views of the reports.

    ``as_of``, ``since`` and ``until`` (ISO 8601, or null), ``target``, then
    ``sp.to_json`` of each report: ``funnel`` (a ``Funnel``), ``revenue`` (a
    ``RevenueReport``), ``lead_flow`` (every week's ``FlowPeriod`` up to ``as_of``) and
    ``referrals`` (a ``ReferralReport``), then ``referrals_scope``: ``"all time"``, as the
    referral figures count every referral stored, not cut at ``as_of`` (nor at ``since`` and
    ``until``). The shapes are those of :mod:`salesprocess.json_views`.
    """
    return {
        "as_of": found.as_of.isoformat(),
        "since": None if found.since is None else found.since.isoformat(),
        "until": None if found.until is None else found.until.isoformat(),
        "target": found.target,
        "funnel": sp.to_json(found.funnel),
        "revenue": sp.to_json(found.revenue),
        "lead_flow": sp.to_json(found.lead_flow),
        "referrals": sp.to_json(found.referrals),
        "referrals_scope": REFERRALS_SCOPE,
    }


def figures(found: Reports) -> dict[str, Any]:
    """Return the figures the tables and the charts show, as plain data.

    ``funnel``: per rung ``stage``, ``now``, ``reached``, ``conversion`` (a decimal string or
    null), and ``side`` for disqualified and churned; ``revenue``: per currency, amounts and
    rates as decimal strings; ``lead_flow``: the last 8 weeks, ``start``, ``leads``,
    ``qualified``, ``below_target``; ``referrals``: ``scope`` (``"all time"``: not cut at
    ``as_of``), ``referrals``, ``converted``, ``conversion_rate``, ``k_factor``.
    """
    as_of, target = found.as_of, found.target
    funnel = found.funnel

    def rung(r: sp.Rung) -> dict[str, Any]:
        rate = None if r.conversion is None else str(r.conversion)
        return {"stage": str(r.stage), "now": r.now, "reached": r.reached, "conversion": rate}

    revenue = {
        code: {
            "total": str(figure.total.amount),
            "repeat_revenue": str(figure.repeat_revenue.amount),
            "repeat_share": None if figure.repeat_share is None else str(figure.repeat_share),
            "customers": figure.customers,
            "repeat_customers": figure.repeat_customers,
            "repeat_customer_rate": str(figure.repeat_customer_rate),
            "average_order_value": str(figure.average_order_value.amount),
            "purchases": figure.purchases,
        }
        for code, figure in found.revenue.items()
    }
    weeks = found.lead_flow[-8:]
    stats = found.referrals.overall
    return {
        "as_of": as_of.isoformat(),
        "funnel": {
            "ladder": [rung(r) for r in funnel.ladder],
            "side": [rung(r) for r in funnel.side],
        },
        "revenue": revenue,
        "lead_flow": {
            "target": target,
            "weeks": [
                {
                    "start": w.start.isoformat(),
                    "leads": w.leads,
                    "qualified": w.qualified,
                    "below_target": w.below_target,
                }
                for w in weeks
            ],
        },
        "referrals": {
            "scope": REFERRALS_SCOPE,
            "referrals": stats.referrals,
            "converted": stats.converted,
            "conversion_rate": None
            if stats.conversion_rate is None
            else str(stats.conversion_rate),
            "k_factor": str(stats.k_factor),
        },
    }


def report(console: Console, data: dict[str, Any]) -> None:
    """Print the figures of :func:`figures` as tables."""
    funnel = Table(title="Funnel", title_justify="left")
    for column in ("stage", "now", "reached", "to next"):
        funnel.add_column(column, justify="left" if column == "stage" else "right")
    for r in [*data["funnel"]["ladder"], *data["funnel"]["side"]]:
        rate = "" if r["conversion"] is None else f"{float(r['conversion']):.0%}"
        funnel.add_row(r["stage"], str(r["now"]), str(r["reached"]), rate)
    console.print(funnel)
    revenue = Table(title="Revenue", title_justify="left")
    for column in ("currency", "total", "repeat", "share", "customers", "repeat rate", "AOV"):
        revenue.add_column(column, justify="left" if column == "currency" else "right")
    for code, f in data["revenue"].items():
        share = "" if f["repeat_share"] is None else f"{float(f['repeat_share']):.0%}"
        revenue.add_row(
            code, f["total"], f["repeat_revenue"], share, str(f["customers"]),
            f"{float(f['repeat_customer_rate']):.0%}", f["average_order_value"],
        )  # fmt: skip
    console.print(revenue)
    flow = Table(
        title=f"Lead flow (target {data['lead_flow']['target']} a week)", title_justify="left"
    )
    for column in ("week of", "leads", "qualified", ""):
        flow.add_column(column, justify="left" if column == "week of" else "right")
    for w in data["lead_flow"]["weeks"]:
        flow.add_row(
            w["start"], str(w["leads"]), str(w["qualified"]), "short" if w["below_target"] else ""
        )
    console.print(flow)
    r = data["referrals"]
    console.print(
        f"Referrals ({r['scope']}): {r['referrals']}, "
        f"converted {r['converted']}, K-factor {r['k_factor']}",
        markup=False,
    )


def call_list(console: Console, accounts: Sequence[sp.Account]) -> None:
    """Print the call list as a table."""
    table = Table(title="Call list", title_justify="left")
    for column in ("id", "name", "phone", "email", "captured"):
        table.add_column(column)
    for account in accounts:
        table.add_row(
            account.id, account.name, account.phone or "", account.email or "",
            account.created_at.date().isoformat(),
        )  # fmt: skip
    console.print(table)


def write_call_list(path: Path, accounts: Sequence[sp.Account]) -> None:
    """Write the call list to a CSV file."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "name", "phone", "email", "captured"])
        for account in accounts:
            writer.writerow(
                [account.id, account.name, account.phone or "", account.email or "",
                 account.created_at.isoformat()]
            )  # fmt: skip
