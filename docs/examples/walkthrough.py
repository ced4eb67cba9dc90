"""A walkthrough of the sales process, stored in SQLite: ``python docs/examples/walkthrough.py``.

It captures four leads from four channels, screens them against marketing's criteria, calls
them, qualifies those who confirm, records purchases into repeat business, asks the best
customer for referrals and hands it cards, weighs a repair against a replacement with what the
customer values, and prints what happened at each step, then the funnel. Run it twice on one
file and the second run finds the leads already known and shows what is stored.

It uses only the public API, as an app would; ``tests/test_walkthrough.py`` runs it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, date, datetime

import salesprocess as sp
from salesprocess.storage import SQLiteRepository

CRITERIA = {
    "and": [
        {"in": [{"var": "industry"}, ["manufacturing", "logistics"]]},
        {">=": [{"var": "employees"}, 50]},
    ]
}

LEADS = (
    ("Acme Tools GmbH", "Buyer@Acme.example", sp.Channel.MARKETING_LIST, "spring-expo",
     {"industry": "manufacturing", "employees": 120, "region": "EU"}),
    ("Beta Logistics", "ops@beta.example", sp.Channel.INBOUND_INQUIRY, None,
     {"industry": "logistics", "employees": 800, "region": "EU"}),
    ("Gamma Bakery", "info@gamma.example", sp.Channel.COLD_OUTREACH, "bakeries-q1",
     {"industry": "food", "employees": 12, "region": "EU"}),
    ("Delta Freight", "desk@delta.example", sp.Channel.REFERRAL, None,
     {"industry": "logistics", "employees": 65, "region": "EU"}),
)  # fmt: skip


def walkthrough(sales: sp.SalesProcess, clock: sp.FixedClock) -> None:
    """Run the walkthrough on ``sales``, printing each step."""
    events: list[sp.DomainEvent] = []
    sales.subscribe(events.append)
    assert sales.criteria is not None
    print(f"Criteria: {sales.criteria.name} {sales.criteria.version}\n")

    print("1. Capture leads")
    accounts = []
    for name, email, channel, campaign, attributes in LEADS:
        clock.advance(hours=1)  # leads arrive one by one: the call list calls the oldest first
        account = sales.capture_lead(
            name, email=email, channel=channel, campaign=campaign, attributes=attributes
        )
        accounts.append(account)
        print(f"   {account.name:<16} {account.email:<22} {channel.value:<16} {account.stage}")
    if len(events) < len(LEADS):
        print("\nThese leads were captured by an earlier run; the stored funnel:")
        _print_funnel(sales)
        return

    print("\n2. Screen against the criteria")
    clock.advance(days=1)
    for account in accounts:
        print("   " + sales.screen(account.id).explain().replace("\n", "\n   "))

    print("\n3. Call the prospects worth calling, best first")
    clock.advance(days=1)
    outcomes = [sp.CallOutcome.INTERESTED, sp.CallOutcome.NOT_INTERESTED, sp.CallOutcome.VOICEMAIL]
    for account, outcome in zip(sales.call_list(limit=10), outcomes, strict=False):
        sales.record_call(account.id, outcome, notes="first call")
        print(f"   {account.name:<16} {outcome.value}")

    print("\n4. Qualify")
    for account in accounts[:2]:
        try:
            qualified = sales.qualify(account.id)
            print(f"   {qualified.name:<16} -> {qualified.stage}")
        except sp.QualificationRefused as refusal:
            print(f"   {account.name:<16} refused: {'; '.join(refusal.missing)}")
    walk_in = sales.qualify(accounts[3].id, override="referred by Acme, ordered at the counter")
    print(f"   {walk_in.name:<16} -> {walk_in.stage} ({walk_in.history[-1].reason})")

    print("\n5. Purchases")
    for account, amount, days in (
        (accounts[0], "12000.00", 30),
        (accounts[3], "450.00", 1),
        (accounts[0], "800.00", 90),
    ):
        clock.advance(days=days)
        after = sales.record_purchase(account.id, sp.Money(amount, "EUR"))
        print(f"   {after.name:<16} {amount:>9} EUR -> {after.stage}")

    _referrals(sales, clock, accounts[0])
    _service(sales, accounts[0])

    print("\n8. Funnel")
    _print_funnel(sales)
    kinds = sorted({type(event).__name__ for event in events})
    print(f"\n{len(events)} domain events published: {', '.join(kinds)}")


def _referrals(sales: sp.SalesProcess, clock: sp.FixedClock, acme: sp.Account) -> None:
    print("\n6. Referrals")
    clock.advance(days=1)
    ask = sales.ask_for_referrals(acme.id, wanted=5)
    named = sales.record_referral(
        acme.id, "Epsilon Metal", email="buy@epsilon.example", request=ask.id
    )
    print(f"   {acme.name} named {named.name} -> {named.stage}, {sales.get(acme.id).stage}")
    cards = sales.issue_referral_cards(acme.id, count=10)
    clock.advance(days=7)
    by_card = sales.capture_lead(
        "Zeta Plastics", email="info@zeta.example", referral_code=cards.code
    )
    print(f"   {by_card.name} brought one of {cards.count} cards -> {by_card.stage}")
    stats = sales.referral_stats().overall
    print(f"   referrals {stats.referrals}, converted {stats.converted}, K-factor {stats.k_factor}")


def _service(sales: sp.SalesProcess, acme: sp.Account) -> None:
    print("\n7. Service: repair or replace")
    sales.learn_preference(
        acme.id,
        "equipment_strategy",
        "repair_over_upgrade",
        evidence="keeps machines running for decades",
    )
    lathe = sales.register_asset(
        acme.id, model="Lathe L-200", installed=date(2015, 5, 1), expected_life_years=20
    )
    advice = sales.recommend_service(
        acme.id,
        lathe.id,
        repair_cost=sp.Money("9000.00", "EUR"),
        replacement_cost=sp.Money("14000.00", "EUR"),
    )
    print("   " + advice.explain().replace("\n", "\n   "))


def _print_funnel(sales: sp.SalesProcess) -> None:
    for stage, count in sales.stage_counts().items():
        print(f"   {stage:<13} {count}")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the walkthrough; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="walkthrough.py", description="Walk a few accounts through the sales process."
    )
    parser.add_argument("--db", default="sales.db", help="SQLite file to store accounts in")
    args = parser.parse_args(argv)
    criteria = sp.Criteria.from_dict(CRITERIA, name="EU mid-market", version="2026-Q4")
    clock = sp.FixedClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    print(f"salesprocess {sp.__version__} walkthrough, stored in {args.db}\n")
    try:
        with SQLiteRepository(args.db) as repository:
            walkthrough(sp.SalesProcess(repository, criteria=criteria, clock=clock), clock)
    except sp.SalesProcessError as error:
        print(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
