"""``salesprocess demo``: a simulated quarter of a small equipment supplier.

Everything goes through the public API with explicit moments, so a seed gives the same quarter
every time: leads from all four channels, screening against the shipped criteria
(``demo_criteria.json``), calls, qualification, purchases and repeat purchases, referral asks
and business cards bringing new leads, preferences learned, and breakdowns decided between a
repair and a replacement.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path

import salesprocess as sp

__all__ = ["START", "criteria_file", "factories", "run_quarter"]

#: The quarter's first day.
START = datetime(2026, 1, 5, 9, tzinfo=UTC)

_INDUSTRIES = ("manufacturing", "logistics", "construction", "food", "retail")
_CHANNELS = (sp.Channel.COLD_OUTREACH, sp.Channel.MARKETING_LIST, sp.Channel.INBOUND_INQUIRY)
_MACHINES = (
    ("Lathe L-200", 20, "14000.00"),
    ("Press P-50", 15, "9000.00"),
    ("Saw S-9", 10, "3500.00"),
)


def criteria_file() -> Path:
    """Return the example criteria's path (a JSON Logic file shipped in the package)."""
    return Path(str(resources.files("salesprocess.cli") / "demo_criteria.json"))


def factories(seed: int) -> tuple[Callable[[], str], Callable[[], str]]:
    """Return id and referral-code factories that give the same values for the same seed.

    With them a demo database is the same, id for id, every time it is made with one seed.
    """
    ids, codes = itertools.count(1), random.Random(seed)  # noqa: S311 - not a secret
    alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    return (
        lambda: f"demo-{seed}-{next(ids):05d}",
        lambda: "".join(codes.choice(alphabet) for _ in range(8)),
    )


def run_quarter(sales: sp.SalesProcess, *, seed: int, leads: int) -> str:
    """Play a quarter on ``sales`` (whose criteria are the demo's); return what happened.

    Twelve weeks: each brings its share of the ``leads``, screened, called and qualified that
    week; the customers buy (some again), refer, and have a machine break.
    """
    rng = random.Random(seed)  # noqa: S311 - a demo's dice, not a secret
    lines: list[str] = [f"A quarter from {START.date()} (seed {seed}):"]
    captured = screened = fit = called = 0
    qualified: list[sp.Account] = []
    outcomes = (sp.CallOutcome.INTERESTED,) * 4 + (
        sp.CallOutcome.NOT_INTERESTED,
        sp.CallOutcome.VOICEMAIL,
    )
    for week in range(12):
        monday = START + timedelta(weeks=week)
        for _ in range(leads // 12 + (week < leads % 12)):
            number = captured
            captured += 1
            sales.capture_lead(
                f"Company {number:03d}",
                email=f"buyer{number:03d}@company{number:03d}.example",
                channel=rng.choice(_CHANNELS),
                campaign=rng.choice(("spring-expo", "newsletter", None)),
                attributes={
                    "industry": rng.choice(_INDUSTRIES),
                    "employees": rng.randrange(5, 400),
                    "region": "EU",
                },
                at=monday + timedelta(days=rng.randrange(0, 3), hours=rng.randrange(0, 8)),
            )
        reports = sales.screen_all(at=monday + timedelta(days=3))
        screened += len(reports)
        fit += sum(report.passed for report in reports)
        for account in sales.call_list(limit=leads, at=monday + timedelta(days=4)):
            outcome = rng.choice(outcomes)
            sales.record_call(
                account.id, outcome, notes="first call", at=monday + timedelta(days=4)
            )
            called += 1
            if outcome is sp.CallOutcome.INTERESTED:
                moment = monday + timedelta(days=4, hours=1)
                qualified.append(sales.qualify(account.id, at=moment))
    lines.append(f"  {captured} leads captured from cold outreach, lists and inquiries")
    lines.append(f"  {screened} screenings, {fit} fitting the criteria")
    lines.append(f"  {called} calls, {len(qualified)} leads confirmed and qualified")
    customers = _sell(sales, rng, qualified, lines)
    _refer(sales, rng, customers, lines)
    _serve(sales, rng, customers, lines)
    return "\n".join(lines)


def _sell(
    sales: sp.SalesProcess, rng: random.Random, qualified: list[sp.Account], lines: list[str]
) -> list[sp.Account]:
    customers = []
    repeat = 0
    for lead in qualified:
        if rng.random() < 0.25:
            continue  # not every qualified lead buys this quarter
        first = lead.last_change_at + timedelta(days=rng.randrange(2, 10))
        amount = sp.Money(f"{rng.randrange(2_000, 20_000)}.00", "EUR")
        bought = sales.record_purchase(lead.id, amount, at=first, reference=f"INV-{lead.id}-1")
        if rng.random() < 0.4:
            again = first + timedelta(days=rng.randrange(10, 30))
            extra = sp.Money(f"{rng.randrange(100, 2_000)}.00", "EUR")
            bought = sales.record_purchase(lead.id, extra, at=again, reference=f"INV-{lead.id}-2")
            repeat += 1
        customers.append(bought)
    lines.append(f"  {len(customers)} bought, {repeat} of them again on a later day")
    return customers


def _refer(
    sales: sp.SalesProcess, rng: random.Random, customers: list[sp.Account], lines: list[str]
) -> None:
    day = START + timedelta(days=92)
    named = carded = 0
    for account in customers[: max(1, len(customers) // 2)]:
        ask = sales.ask_for_referrals(account.id, wanted=5, at=day)
        for n in range(rng.randrange(0, 3)):
            sales.record_referral(account.id, f"Friend {n} of {account.name}",
                                  email=f"friend{n}.{account.id}@referral.example",
                                  request=ask.id, at=day + timedelta(hours=n + 1))  # fmt: skip
            named += 1
        cards = sales.issue_referral_cards(account.id, count=10, at=day + timedelta(hours=6))
        if rng.random() < 0.5:
            sales.capture_lead(f"Card holder of {account.name}", referral_code=cards.code,
                               email=f"card.{account.id}@referral.example",
                               at=day + timedelta(days=1))  # fmt: skip
            carded += 1
    lines.append(f"  {named} names given when asked, {carded} leads brought by business cards")


def _serve(
    sales: sp.SalesProcess, rng: random.Random, customers: list[sp.Account], lines: list[str]
) -> None:
    day = START + timedelta(days=95)
    decided = {"repair": 0, "replace": 0}
    for account in customers:
        strategy = rng.choice(("repair_over_upgrade", "upgrade_over_repair", None))
        if strategy is not None:
            sales.learn_preference(account.id, "equipment_strategy", strategy,
                                   evidence="said so on the qualifying call", at=day)  # fmt: skip
        model, life, price = rng.choice(_MACHINES)
        installed = date(2026 - rng.randrange(1, life + 3), 6, 1)
        asset = sales.register_asset(account.id, model=model, installed=installed,
                                     expected_life_years=life, at=day)  # fmt: skip
        repair = sp.Money(f"{rng.randrange(200, int(float(price)))}.00", "EUR")
        advice = sales.recommend_service(account.id, asset.id, repair_cost=repair,
                                         replacement_cost=sp.Money(price, "EUR"),
                                         on=(day + timedelta(days=3)).date())  # fmt: skip
        decided[str(advice.action)] += 1
    lines.append(
        f"  {len(customers)} machines registered; breakdowns: {decided['repair']} repairs, "
        f"{decided['replace']} replacements offered"
    )
