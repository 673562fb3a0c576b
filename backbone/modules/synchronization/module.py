"""The synchronization module in the backbone: its service, its handlers and its routes."""

from __future__ import annotations

from collections.abc import Callable

from backbone.modules.synchronization.consumer_api import add_synchronization_routes
from backbone.modules.synchronization.handlers import (
    RelationshipParticipants,
    RelationshipStatusOf,
    synchronization_handlers,
)
from backbone.modules.synchronization.repository import SynchronizationRepository
from backbone.modules.synchronization.service import SynchronizationService
from backbone.platform.modules import ModuleConfig


def include_synchronization(
    config: ModuleConfig,
    *,
    identity_is_active: Callable[[str], bool],
    relationship_status: RelationshipStatusOf,
    relationship_participants: RelationshipParticipants,
) -> SynchronizationService:
    synchronization = SynchronizationService(
        config.db,
        SynchronizationRepository(config.db),
        config.outbox,
        config.clock,
        config.ids,
        identity_is_active=identity_is_active,
    )
    config.subscribe(
        synchronization_handlers(
            synchronization, config.clock, relationship_status, relationship_participants
        )
    )
    config.add_consumer_routes(lambda app: add_synchronization_routes(app, synchronization))
    return synchronization
