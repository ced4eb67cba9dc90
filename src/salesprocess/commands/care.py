"""Customer service: the service profile (preferences, assets) and repair-or-replace advice."""

from __future__ import annotations

from datetime import date, datetime

from salesprocess.account import Account, Asset, Preference
from salesprocess.checks import shown
from salesprocess.chronology import last_at, require_in_order
from salesprocess.clock import utc_day
from salesprocess.commands.decision import Decision, changed, recorded, stamped
from salesprocess.customer_service import ServicePolicy, ServiceRecommendation
from salesprocess.errors import NotFound, ValidationError
from salesprocess.events import AssetRegistered, PreferenceLearned
from salesprocess.money import Money

__all__ = ["learn_preference", "recommend_service", "register_asset"]


def learn_preference(
    account: Account, moment: datetime, *, preference: Preference
) -> Decision[Account]:
    """Keep ``preference`` in the account's service profile (the latest per key wins)."""
    preference = stamped(preference, moment)
    require_in_order(
        account,
        "a preference",
        moment,
        since="its last preference",
        earlier=last_at(account.preferences),
    )
    return changed(
        account.with_changes(preferences=(*account.preferences, preference)),
        PreferenceLearned(account.id, moment, preference),
    )


def register_asset(account: Account, moment: datetime, *, asset: Asset) -> Decision[Asset]:
    """Register ``asset`` for service; refused if it was installed after ``moment``'s day."""
    if asset.installed > utc_day(moment):
        raise ValidationError(
            f"asset {shown(asset.model)} installed on {asset.installed.isoformat()}, after the day "
            f"it is registered ({utc_day(moment).isoformat()}): register equipment once "
            "it is installed",
            field="installed",
        )
    return recorded(
        asset,
        account.with_changes(assets=(*account.assets, asset)),
        AssetRegistered(account.id, moment, asset),
    )


def recommend_service(
    account: Account,
    asset_id: str,
    *,
    policy: ServicePolicy,
    repair_cost: Money,
    replacement_cost: Money,
    on: date,
) -> ServiceRecommendation:
    """Ask ``policy`` whether to repair or replace the account's asset ``asset_id``.

    Raises ``NotFound`` for an asset the account does not have. Nothing is written: the
    recommendation is advice to act on.
    """
    asset = account.asset(asset_id)
    if asset is None:
        raise NotFound(f"account {account.id} has no asset {shown(asset_id)}")
    return policy.recommend(
        account, asset, repair_cost=repair_cost, replacement_cost=replacement_cost, on=on
    )
