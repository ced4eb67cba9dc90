"""Recurring revenue: a purchase recorded, and the stage it moves the account to."""

from __future__ import annotations

from datetime import datetime

from salesprocess.account import Account, Purchase
from salesprocess.chronology import last_at, require_in_order
from salesprocess.commands.decision import Decision, stamped
from salesprocess.commands.qualifying import transition
from salesprocess.events import PurchaseRecorded
from salesprocess.lifecycle import Transitions

__all__ = ["record_purchase"]


def record_purchase(
    account: Account,
    moment: datetime,
    *,
    transitions: Transitions,
    purchase: Purchase,
    actor: str | None,
) -> Decision[Account]:
    """Record ``purchase``: the first makes a customer, one on a later day a repeat customer.

    Purchases are kept in time order, so that "the first purchase" is the first made.
    """
    purchase = stamped(purchase, moment)
    require_in_order(
        account, "a purchase", moment, since="its last purchase", earlier=last_at(account.purchases)
    )
    return transition(
        transitions,
        account,
        "purchase",
        moment,
        PurchaseRecorded(account.id, moment, purchase),
        actor=actor,
        purchases=(*account.purchases, purchase),
    )
