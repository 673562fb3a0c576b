"""Admin API route of relationships: an identity's relationships as operators see them."""

from __future__ import annotations

from typing import Any

import falcon

from backbone.modules.relationships.model import AuditLogReason, Relationship, RelationshipStatus
from backbone.modules.relationships.service import RelationshipService
from backbone.platform.http import App, Query, send_page
from backbone.platform.openapi import (
    PAGE_QUERY,
    address,
    describe,
    enum,
    nullable,
    obj,
    paged,
    string,
    timestamp,
)

_ANSWERS = {
    AuditLogReason.AcceptanceOfCreation,
    AuditLogReason.RejectionOfCreation,
    AuditLogReason.RevocationOfCreation,
}
RELATIONSHIP_OVERVIEW = obj(
    {
        "peer": string(),
        "requestedBy": enum("Self", "Peer"),
        "templateId": nullable(string()),
        "status": enum(*(status.name for status in RelationshipStatus)),
        "creationDate": timestamp(),
        "answeredAt": nullable(timestamp()),
        "createdByDevice": nullable(string()),
        "answeredByDevice": nullable(string()),
    }
)


def render_overview(relationship: Relationship, participant: str) -> dict[str, Any]:
    created = next((e for e in relationship.audit_log if e.reason is AuditLogReason.Creation), None)
    answered = next((e for e in relationship.audit_log if e.reason in _ANSWERS), None)
    return {
        "peer": relationship.peer_of(participant),
        "requestedBy": "Self" if relationship.from_address == participant else "Peer",
        "templateId": relationship.relationship_template_id,
        "status": relationship.status.name,
        "creationDate": relationship.created_at,
        "answeredAt": answered.created_at if answered else None,
        "createdByDevice": created.created_by_device if created else None,
        "answeredByDevice": answered.created_by_device if answered else None,
    }


class RelationshipsOverviewResource:
    def __init__(self, relationships: RelationshipService) -> None:
        self._relationships = relationships

    @describe(
        "The relationships of an identity",
        {200: paged(RELATIONSHIP_OVERVIEW)},
        query={"participant": address(), **PAGE_QUERY},
        required_query=("participant",),
        tags=("Relationships",),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = Query(req)
        participant = query.required_address("participant")
        paged = self._relationships.overview_for(participant, query.page())
        send_page(resp, paged, lambda relationship: render_overview(relationship, participant))


def add_relationship_admin_routes(app: App, relationships: RelationshipService) -> None:
    app.add_route("/api/v1/Relationships", RelationshipsOverviewResource(relationships))
