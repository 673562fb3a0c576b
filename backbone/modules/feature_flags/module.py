"""The feature-flags module in the backbone: its service and its routes."""

from __future__ import annotations

from backbone.modules.feature_flags.consumer_api import add_feature_flag_routes
from backbone.modules.feature_flags.repository import FeatureFlagRepository
from backbone.modules.feature_flags.service import FeatureFlagService, Knows, LockIdentity
from backbone.platform.modules import ModuleConfig


def include_feature_flags(
    config: ModuleConfig, *, lock_identity: LockIdentity, knows: Knows
) -> FeatureFlagService:
    flags = FeatureFlagService(
        config.db, FeatureFlagRepository(config.db), config.outbox, lock_identity=lock_identity, knows=knows
    )
    config.add_consumer_routes(lambda app: add_feature_flag_routes(app, flags))
    return flags
