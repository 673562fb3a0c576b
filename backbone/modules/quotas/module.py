"""The quotas module in the backbone: its service, its handlers and its routes."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from backbone.modules.quotas.admin_api import add_quota_admin_routes
from backbone.modules.quotas.consumer_api import add_quota_routes
from backbone.modules.quotas.handlers import quota_handlers
from backbone.modules.quotas.model import MetricKey
from backbone.modules.quotas.repository import QuotaRepository
from backbone.modules.quotas.service import QuotaService, UsageCounter
from backbone.platform.modules import ModuleConfig


def include_quotas(
    config: ModuleConfig,
    *,
    tier_exists: Callable[[str], bool],
    tier_of_identity: Callable[[str], str | None],
    identities_in_tier: Callable[[str], list[str]],
    usage: Mapping[MetricKey, UsageCounter],
) -> QuotaService:
    """Quotas count each metric's usage with the owning module's counter (`usage`)."""
    quotas = QuotaService(
        config.db,
        QuotaRepository(),
        config.outbox,
        config.ids,
        config.clock,
        tier_exists=tier_exists,
        tier_of_identity=tier_of_identity,
        identities_in_tier=identities_in_tier,
        usage=usage,
    )
    config.subscribe(quota_handlers(quotas))
    config.add_consumer_routes(lambda app: add_quota_routes(app, quotas))
    config.add_admin_routes(lambda app: add_quota_admin_routes(app, quotas))
    return quotas
