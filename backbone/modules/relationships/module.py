"""The relationships module in the backbone: its services, its handlers and its routes."""

from __future__ import annotations

from dataclasses import dataclass

from backbone.modules.relationships.admin_api import add_relationship_admin_routes
from backbone.modules.relationships.consumer_api import add_relationship_routes
from backbone.modules.relationships.handlers import relationship_handlers
from backbone.modules.relationships.repository import RelationshipRepository
from backbone.modules.relationships.service import (
    IdentityIsActive,
    RelationshipService,
    RelationshipTemplateService,
)
from backbone.platform.errors import CheckQuota
from backbone.platform.modules import ModuleConfig


@dataclass(frozen=True)
class RelationshipsModule:
    templates: RelationshipTemplateService
    relationships: RelationshipService


def include_relationships(
    config: ModuleConfig,
    *,
    identity_is_active: IdentityIsActive,
    anonymous_address: str,
    check_quota: CheckQuota,
) -> RelationshipsModule:
    repository = RelationshipRepository(config.db)
    templates = RelationshipTemplateService(
        config.db, repository, config.outbox, config.clock, config.ids, check_quota=check_quota
    )
    relationships = RelationshipService(
        config.db,
        repository,
        templates,
        config.outbox,
        config.clock,
        config.ids,
        identity_is_active=identity_is_active,
        check_quota=check_quota,
    )
    config.subscribe(relationship_handlers(relationships, anonymous_address))
    references_of = config.settings.apps.public_template_references_of
    config.add_consumer_routes(
        lambda app: add_relationship_routes(app, templates, relationships, references_of)
    )
    config.add_admin_routes(lambda app: add_relationship_admin_routes(app, relationships))
    return RelationshipsModule(templates, relationships)
