"""The tiers module in the backbone: its service and its routes."""

from __future__ import annotations

from backbone.modules.tiers.admin_api import TierQuotas, add_tier_admin_routes
from backbone.modules.tiers.repository import TierRepository
from backbone.modules.tiers.service import IdentitiesPerTier, TierService, TierUsage
from backbone.platform.modules import ModuleConfig


def include_tiers(
    config: ModuleConfig,
    *,
    identities_per_tier: IdentitiesPerTier,
    tier_usage: TierUsage,
    tier_quotas: TierQuotas,
) -> TierService:
    """Who is in a tier and what uses it come from the devices module; a tier's quotas, shown
    by the Admin API, from the quotas module."""
    tiers = TierService(
        config.db,
        TierRepository(),
        config.ids,
        config.outbox,
        identities_per_tier=identities_per_tier,
        tier_usage=tier_usage,
    )
    config.add_admin_routes(lambda app: add_tier_admin_routes(app, tiers, tier_quotas=tier_quotas))
    return tiers
