"""JSON views benchmark: ``json.dumps(to_json(account))`` vs a hand-built dict, dumped alike.

Run: ``python benchmarks/bench_json_views.py [--quick]``.

The account has 20 entries: its 4 history entries (capture, qualify, first purchase, repeat),
14 purchases and 2 calls, besides a source and attributes. The hand-built dict is what an app
would write without the views: every field, in the same shapes (money amounts as strings,
ISO 8601 datetimes, stages and enums as strings); the benchmark checks that both give the same
JSON first. Target: the view at most 2x the hand-built dict, both including ``json.dumps``.
Each figure is the best of a few runs, so that a noisy neighbour does not decide it.
"""

from __future__ import annotations

import argparse
import json
import timeit
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import salesprocess as sp
from salesprocess.account import Account, Attributes

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
TARGET = 2.0


def account() -> Account:
    """A repeat customer with 20 entries: 4 history entries, 14 purchases and 2 calls."""
    purchase_days = range(10, 10 + 14 * 7, 7)
    purchases = tuple(
        sp.Purchase(sp.Money(f"{1000 + day}.50", "EUR"), T0 + timedelta(days=day), f"INV-{day}")
        for day in purchase_days
    )
    history = (
        sp.HistoryEntry(None, sp.Stage.PROSPECT, "capture", T0, "web"),
        sp.HistoryEntry(sp.Stage.PROSPECT, sp.Stage.QUALIFIED, "qualify", T0 + timedelta(days=3)),
        sp.HistoryEntry(sp.Stage.QUALIFIED, sp.Stage.CUSTOMER, "purchase", purchases[0].at),
        sp.HistoryEntry(sp.Stage.CUSTOMER, sp.Stage.REPEAT, "purchase", purchases[1].at),
    )
    calls = (
        sp.Call(sp.CallOutcome.VOICEMAIL, T0 + timedelta(days=1)),
        sp.Call(sp.CallOutcome.INTERESTED, T0 + timedelta(days=2), "needs three lathes"),
    )
    return Account(
        "5f0c8a1e2b7d4c3e9a6b1d2c3e4f5a6b",
        "Acme Tools GmbH",
        sp.Source("inbound_inquiry", "spring-expo"),
        T0,
        email="buyer@acme.example",
        phone="+493012345678",
        attributes={"industry": "manufacturing", "employees": 120, "region": "EU"},
        stage=sp.Stage.REPEAT,
        history=history,
        purchases=purchases,
        calls=calls,
        version=17,
    )


def _money(money: sp.Money) -> dict[str, Any]:
    return {"amount": format(money.amount, "f"), "currency": money.currency}


def _attributes(values: Attributes) -> dict[str, Any]:
    # The same rule as the views: a Decimal is tagged, a user's $ key escaped.
    return {
        (f"${key}" if key.startswith("$") else key): (
            {"$decimal": format(item, "f")} if isinstance(item, Decimal) else item
        )
        for key, item in values.items()
    }


def by_hand(acct: Account) -> dict[str, Any]:
    """The account as an app would write it without the views, field by field."""
    return {
        "id": acct.id,
        "name": acct.name,
        "source": {
            "channel": acct.source.channel.value,
            "campaign": acct.source.campaign,
            "referred_by": acct.source.referred_by,
        },
        "created_at": acct.created_at.isoformat(),
        "email": acct.email,
        "phone": acct.phone,
        "attributes": _attributes(acct.attributes),
        "stage": str(acct.stage),
        "history": [
            {
                "from_stage": None if e.from_stage is None else str(e.from_stage),
                "to_stage": str(e.to_stage),
                "event": e.event,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "reason": e.reason,
            }
            for e in acct.history
        ],
        "purchases": [
            {"amount": _money(p.amount), "at": p.at.isoformat(), "reference": p.reference}
            for p in acct.purchases
        ],
        "calls": [
            {
                "outcome": c.outcome.value,
                "at": c.at.isoformat(),
                "notes": c.notes,
                "callback_at": None if c.callback_at is None else c.callback_at.isoformat(),
            }
            for c in acct.calls
        ],
        "screenings": [
            {
                "at": s.at.isoformat(),
                "criteria": s.criteria,
                "version": s.version,
                "passed": s.passed,
            }
            for s in acct.screenings
        ],
        "do_not_contact": acct.do_not_contact,
        "referral_code": acct.referral_code,
        "referral_requests": [
            {"id": r.id, "at": r.at.isoformat(), "wanted": r.wanted} for r in acct.referral_requests
        ],
        "referrals": [
            {
                "account_id": r.account_id,
                "at": r.at.isoformat(),
                "request": r.request,
                "code": r.code,
                "new": r.new,
            }
            for r in acct.referrals
        ],
        "referral_cards": [
            {"code": c.code, "count": c.count, "at": c.at.isoformat()} for c in acct.referral_cards
        ],
        "preferences": [
            {"key": p.key, "value": p.value, "at": p.at.isoformat(), "evidence": p.evidence}
            for p in acct.preferences
        ],
        "assets": [
            {
                "id": a.id,
                "model": a.model,
                "installed": a.installed.isoformat(),
                "expected_life_years": a.expected_life_years,
                "serial": a.serial,
            }
            for a in acct.assets
        ],
        "version": acct.version,
    }


def best(statement: Any, number: int, repeat: int) -> float:
    """The best time of one call, in microseconds."""
    return min(timeit.repeat(statement, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    """Time both ways, print the figures and whether the target is met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (for a smoke test)")
    args = parser.parse_args()
    number, repeat = (500, 3) if args.quick else (5000, 7)

    acct = account()
    entries = len(acct.history) + len(acct.purchases) + len(acct.calls)
    view_text = json.dumps(sp.to_json(acct))
    assert view_text == json.dumps(by_hand(acct)), "the hand-built dict must be the same JSON"
    assert sp.from_json(Account, json.loads(view_text)) == acct

    views = best(lambda: json.dumps(sp.to_json(acct)), number, repeat)
    hand = best(lambda: json.dumps(by_hand(acct)), number, repeat)
    doc = by_hand(acct)
    dumps_only = best(lambda: json.dumps(doc), number, repeat)
    reading = best(lambda: sp.from_json(Account, json.loads(view_text)), number // 5, repeat)
    ratio = views / hand
    print(f"account with {entries} entries, {len(view_text)} bytes of JSON")
    print(f"  json.dumps(to_json(account))      {views:8.1f} us")
    print(f"  json.dumps(hand-built dict)       {hand:8.1f} us")
    print(f"    of which json.dumps alone       {dumps_only:8.1f} us")
    print(f"  from_json(Account, json.loads())  {reading:8.1f} us   (for information)")
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(f"ratio {ratio:.2f}x (target at most {TARGET:.0f}x): {verdict}")


if __name__ == "__main__":
    main()
