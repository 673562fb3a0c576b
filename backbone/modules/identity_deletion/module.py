"""The identity-deletion module in the backbone: its services and its routes."""

from __future__ import annotations

from dataclasses import dataclass

from backbone.modules.devices.service import IdentityService
from backbone.modules.identity_deletion.admin_api import add_deletion_process_admin_routes
from backbone.modules.identity_deletion.consumer_api import add_identity_deletion_routes
from backbone.modules.identity_deletion.repository import DeletionProcessRepository
from backbone.modules.identity_deletion.service import DeletionProcessService, IdentityDeletionJobService
from backbone.modules.push_notifications.service import PushService
from backbone.platform.modules import ModuleConfig


@dataclass(frozen=True)
class IdentityDeletionModule:
    processes: DeletionProcessService
    jobs: IdentityDeletionJobService


def include_identity_deletion(
    config: ModuleConfig, *, identities: IdentityService, push: PushService
) -> IdentityDeletionModule:
    repository = DeletionProcessRepository()
    processes = DeletionProcessService(
        config.db, repository, identities, config.outbox, config.clock, config.ids
    )
    jobs = IdentityDeletionJobService(
        config.db, repository, identities, push, config.outbox, config.clock, config.ids
    )
    config.add_consumer_routes(lambda app: add_identity_deletion_routes(app, processes))
    config.add_admin_routes(lambda app: add_deletion_process_admin_routes(app, processes))
    return IdentityDeletionModule(processes, jobs)
