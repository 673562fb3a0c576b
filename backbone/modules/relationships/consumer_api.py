"""Consumer API routes of relationship templates and relationships."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from backbone.apps_file import PublicTemplateReference
from backbone.modules.relationships import model
from backbone.modules.relationships.model import (
    MAX_CONTENT_BYTES,
    MAX_PASSWORD_BYTES,
    AuditLogEntry,
    AuditLogReason,
    NewTemplate,
    Relationship,
    RelationshipStatus,
    RelationshipTemplate,
    TemplateQueryItem,
)
from backbone.modules.relationships.service import RelationshipService, RelationshipTemplateService
from backbone.platform.auth import Principal
from backbone.platform.crypto import is_valid_address
from backbone.platform.errors import InvalidPropertyValue
from backbone.platform.http import (
    App,
    Query,
    checked_id,
    no_content,
    optional_address,
    principal_of,
    query_password,
    read_json,
    send,
    send_page,
)
from backbone.platform.ids import is_valid_id
from backbone.platform.openapi import (
    ERROR,
    PAGE_QUERY,
    address,
    array,
    binary,
    boolean,
    describe,
    enum,
    envelope,
    identifier,
    integer,
    nullable,
    obj,
    paged,
    string,
    timestamp,
)

TAGS = ("Relationships",)
PUBLIC_TEMPLATE_REFERENCE = obj({"title": string(), "description": string(), "truncatedReference": string()})
TEMPLATES = ("Relationship templates",)
TEMPLATE = obj(
    {
        "id": string(),
        "createdBy": string(),
        "createdByDevice": string(),
        "maxNumberOfAllocations": nullable(integer(minimum=1)),
        "expiresAt": nullable(timestamp()),
        "content": string(),
        "createdAt": timestamp(),
        "forIdentity": nullable(string()),
    }
)
STATUS = enum(*(status.name for status in RelationshipStatus))
AUDIT_LOG_ENTRY = obj(
    {
        "createdAt": timestamp(),
        "createdBy": string(),
        "createdByDevice": nullable(string()),
        "reason": enum(*(reason.name for reason in AuditLogReason)),
        "oldStatus": nullable(STATUS),
        "newStatus": STATUS,
    }
)
METADATA = obj(
    {
        "id": string(),
        "relationshipTemplateId": nullable(string()),
        "from": string(),
        "to": string(),
        "createdAt": timestamp(),
        "status": STATUS,
        "auditLog": array(AUDIT_LOG_ENTRY),
    }
)
RELATIONSHIP = obj(
    {
        **METADATA["properties"],
        "creationContent": nullable(string()),
        "creationResponseContent": nullable(string()),
    }
)


def render_template(template: RelationshipTemplate) -> dict[str, Any]:
    return {
        "id": template.id,
        "createdBy": template.created_by,
        "createdByDevice": template.created_by_device,
        "maxNumberOfAllocations": template.max_number_of_allocations,
        "expiresAt": template.expires_at,
        "content": template.content,
        "createdAt": template.created_at,
        "forIdentity": template.for_identity,
    }


def render_entry(entry: AuditLogEntry) -> dict[str, Any]:
    return {
        "createdAt": entry.created_at,
        "createdBy": entry.created_by,
        "createdByDevice": entry.created_by_device,
        "reason": entry.reason.name,
        "oldStatus": None if entry.old_status is None else entry.old_status.name,
        "newStatus": entry.new_status.name,
    }


def render_metadata(relationship: Relationship) -> dict[str, Any]:
    return {
        "id": relationship.id,
        "relationshipTemplateId": relationship.relationship_template_id,
        "from": relationship.from_address,
        "to": relationship.to_address,
        "createdAt": relationship.created_at,
        "status": relationship.status.name,
        "auditLog": [render_entry(entry) for entry in relationship.audit_log],
    }


def render_relationship(relationship: Relationship) -> dict[str, Any]:
    return {
        **render_metadata(relationship),
        "creationContent": relationship.creation_content,
        "creationResponseContent": relationship.creation_response_content,
    }


class RelationshipTemplatesResource:
    def __init__(self, templates: RelationshipTemplateService) -> None:
        self._templates = templates

    @describe(
        "Create a relationship template",
        {201: envelope(obj({"id": string(), "createdAt": timestamp()}))},
        body=obj(
            {
                "content": binary(),
                "expiresAt": nullable(timestamp()),
                "maxNumberOfAllocations": nullable(integer(minimum=1, maximum=2**31 - 1)),
                "forIdentity": nullable(address()),
                "password": nullable(binary(min_length=1)),
            },
            optional=["expiresAt", "maxNumberOfAllocations", "forIdentity", "password"],
        ),
        tags=TEMPLATES,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, required=True)
        new = NewTemplate(
            content=body.required_binary("content", min_bytes=0, max_bytes=MAX_CONTENT_BYTES),
            expires_at=body.timestamp("expiresAt", required=False),
            max_number_of_allocations=body.integer(
                "maxNumberOfAllocations", required=False, minimum=1, maximum=2**31 - 1
            ),
            for_identity=optional_address(body, "forIdentity"),
            password=body.binary("password", required=False, min_bytes=1, max_bytes=MAX_PASSWORD_BYTES),
        )
        template = self._templates.create(principal_of(req), new)
        send(resp, {"id": template.id, "createdAt": template.created_at}, 201)

    @describe(
        "Templates by id (`templates.N.id` with `templates.N.password`, or `ids`), without allocating them",
        {200: paged(TEMPLATE)},
        query={"ids": array(identifier("RLT")), **PAGE_QUERY},
        tags=TEMPLATES,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = Query(req)
        items = []
        for position, item in enumerate(query.objects("templates", ("id", "password"))):
            template_id = item["id"]
            if not template_id or not is_valid_id(template_id, "RLT"):
                raise model.invalid_relationship_template_query_item(position)
            items.append(TemplateQueryItem(template_id, query_password(item["password"])))
        if not items:
            items = [TemplateQueryItem(checked_id(value, "RLT", "ids"), None) for value in query.texts("ids")]
        if not items:
            raise InvalidPropertyValue("'templates' must not be empty.")
        paged = self._templates.find_many(principal_of(req), items, query.page())
        send_page(resp, paged, render_template)


class RelationshipTemplateResource:
    def __init__(self, templates: RelationshipTemplateService) -> None:
        self._templates = templates

    @describe(
        "A template (allocates it for the caller)",
        {200: envelope(TEMPLATE)},
        path={"id": identifier("RLT")},
        query={"password": string()},
        tags=TEMPLATES,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        password = query_password(Query(req).get("password"))
        send(resp, render_template(self._templates.get(principal_of(req), checked_id(id, "RLT"), password)))

    @describe(
        "Delete a template of the caller",
        {204: None, 403: ERROR},
        path={"id": identifier("RLT")},
        tags=TEMPLATES,
    )
    def on_delete(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        self._templates.delete(principal_of(req), checked_id(id, "RLT"))
        no_content(resp)


class RelationshipsResource:
    def __init__(self, relationships: RelationshipService) -> None:
        self._relationships = relationships

    @describe(
        "Request a relationship with a template's creator",
        {201: envelope(METADATA)},
        body=obj(
            {"relationshipTemplateId": identifier("RLT"), "creationContent": nullable(binary())},
            optional=["creationContent"],
        ),
        tags=TAGS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, required=True)
        template_id = checked_id(
            body.required_text("relationshipTemplateId"), "RLT", "relationshipTemplateId"
        )
        content = body.binary("creationContent", required=False, max_bytes=MAX_CONTENT_BYTES)
        relationship = self._relationships.create(principal_of(req), template_id, content)
        send(resp, render_metadata(relationship), 201)

    @describe(
        "Relationships of the caller by id",
        {200: paged(RELATIONSHIP)},
        query={"ids": array(identifier("REL"), min_items=1), **PAGE_QUERY},
        required_query=("ids",),
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = Query(req)
        ids = [checked_id(value, "REL", "ids") for value in query.texts("ids")]
        if not ids:
            raise InvalidPropertyValue("'ids' must not be empty.")
        paged = self._relationships.find_many(principal_of(req), ids, query.page())
        send_page(resp, paged, render_relationship)


class RelationshipResource:
    def __init__(self, relationships: RelationshipService) -> None:
        self._relationships = relationships

    @describe(
        "A relationship of the caller",
        {200: envelope(RELATIONSHIP)},
        path={"id": identifier("REL")},
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        relationship = self._relationships.get(principal_of(req), checked_id(id, "REL"))
        send(resp, render_relationship(relationship))


class CanCreateResource:
    def __init__(self, relationships: RelationshipService) -> None:
        self._relationships = relationships

    @describe(
        "Whether the caller could request a relationship with a peer",
        {200: envelope(obj({"canCreate": boolean(), "code": nullable(string())})), 404: ERROR},
        query={"peer": address()},
        required_query=("peer",),
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        peer = Query(req).get("peer")
        if not peer:
            raise InvalidPropertyValue("'peer' must not be empty.")
        if not is_valid_address(peer):
            raise InvalidPropertyValue("'peer' is not a valid identity address.")
        code = self._relationships.can_create(principal_of(req), peer)
        send(resp, {"canCreate": code is None, "code": code})


class PublicRelationshipTemplateReferencesResource:
    """`/api/poc/PublicRelationshipTemplateReferences`: the templates the caller's app advertises
    (per OAuth client, from the apps file; the original's proof of concept)."""

    def __init__(self, references_of: Callable[[str], tuple[PublicTemplateReference, ...]]) -> None:
        self._references_of = references_of

    @describe(
        "The public relationship templates configured for the caller's OAuth client",
        {200: envelope(array(PUBLIC_TEMPLATE_REFERENCE))},
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        references = self._references_of(principal_of(req).client_id)
        send(
            resp,
            [
                {
                    "title": reference.title,
                    "description": reference.description,
                    "truncatedReference": reference.truncated_reference,
                }
                for reference in references
            ],
        )


_Action = Callable[[Principal, str], Relationship]


class RelationshipActionResource:
    """`PUT /Relationships/{id}/<action>`: one step of the state machine."""

    def __init__(self, action: _Action) -> None:
        self._action = action

    @describe(
        "Take a step of the relationship's life cycle (terminate, reactivation, decomposition)",
        {200: envelope(METADATA)},
        body={"type": "object"},
        body_required=False,
        path={"id": identifier("REL")},
        tags=TAGS,
    )
    def on_put(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        send(resp, render_metadata(self._action(principal_of(req), checked_id(id, "REL"))))


class RelationshipAnswerResource:
    """Accept, reject or revoke a request, with an optional `creationResponseContent`."""

    def __init__(self, action: Callable[[Principal, str, bytes | None], Relationship]) -> None:
        self._action = action

    @describe(
        "Answer a relationship request (accept, reject or revoke), optionally with response content",
        {200: envelope(METADATA)},
        body=obj({"creationResponseContent": nullable(binary())}, optional=["creationResponseContent"]),
        body_required=False,
        path={"id": identifier("REL")},
        tags=TAGS,
    )
    def on_put(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        body = read_json(req)
        response = body.binary("creationResponseContent", required=False, max_bytes=MAX_CONTENT_BYTES)
        send(resp, render_metadata(self._action(principal_of(req), checked_id(id, "REL"), response)))


def add_relationship_routes(
    app: App,
    templates: RelationshipTemplateService,
    relationships: RelationshipService,
    public_template_references_of: Callable[[str], tuple[PublicTemplateReference, ...]],
) -> None:
    app.add_route("/api/v2/RelationshipTemplates", RelationshipTemplatesResource(templates))
    app.add_route("/api/v2/RelationshipTemplates/{id}", RelationshipTemplateResource(templates))
    app.add_route("/api/v2/Relationships", RelationshipsResource(relationships))
    app.add_route("/api/v2/Relationships/CanCreate", CanCreateResource(relationships))
    app.add_route(
        "/api/poc/PublicRelationshipTemplateReferences",
        PublicRelationshipTemplateReferencesResource(public_template_references_of),
    )
    app.add_route("/api/v2/Relationships/{id}", RelationshipResource(relationships))
    answers = {
        "Accept": relationships.accept,
        "Reject": relationships.reject,
        "Revoke": relationships.revoke,
    }
    for name, answer in answers.items():
        app.add_route(f"/api/v2/Relationships/{{id}}/{name}", RelationshipAnswerResource(answer))
    actions: dict[str, _Action] = {
        "Terminate": relationships.terminate,
        "Reactivate": relationships.request_reactivation,
        "Reactivate/Accept": relationships.accept_reactivation,
        "Reactivate/Reject": relationships.reject_reactivation,
        "Reactivate/Revoke": relationships.revoke_reactivation,
        "Decompose": relationships.decompose,
    }
    for name, action in actions.items():
        app.add_route(f"/api/v2/Relationships/{{id}}/{name}", RelationshipActionResource(action))
