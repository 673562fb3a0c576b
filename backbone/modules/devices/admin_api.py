"""Admin API routes of OAuth clients and identities (including the OData identity list)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import falcon

from backbone.modules.devices.consumer_api import (
    CREATED_IDENTITY,
    DEVICE,
    NEW_IDENTITY_PROPERTIES,
    read_new_identity,
    render_created_identity,
    render_device,
)
from backbone.modules.devices.model import (
    IDENTITY_LIST_FIELDS,
    MAX_CLIENT_ID_LENGTH,
    ClientOverview,
    CreatedClient,
    IdentityOverview,
    OAuthClient,
)
from backbone.modules.devices.service import ClientService, IdentityService
from backbone.modules.tiers.admin_api import TIER_QUOTA
from backbone.platform.http import JSON, App, checked_id, dumps, no_content, read_json, send
from backbone.platform.odata import MAX_TOP, parse_odata
from backbone.platform.openapi import (
    address,
    array,
    boolean,
    describe,
    envelope,
    identifier,
    integer,
    nullable,
    obj,
    string,
    timestamp,
)

# Rendered quotas of an identity, and the datawallet versions of identities.
IdentityQuotas = Callable[[str], list[dict[str, Any]]]
DatawalletVersions = Callable[[Sequence[str]], dict[str, int]]

CLIENT_ID = string(min_length=1, max_length=MAX_CLIENT_ID_LENGTH)
TIER_REF = obj({"id": string(), "name": string()})
CLIENT_OVERVIEW = obj(
    {
        "clientId": string(),
        "displayName": string(),
        "defaultTier": TIER_REF,
        "createdAt": timestamp(),
        "maxIdentities": nullable(integer(minimum=0)),
        "numberOfIdentities": integer(minimum=0),
    }
)
CLIENT = obj(
    {
        "clientId": string(),
        "displayName": string(),
        "defaultTier": string(),
        "createdAt": timestamp(),
        "maxIdentities": nullable(integer(minimum=0)),
    }
)
CLIENT_DETAILS = obj({**CLIENT["properties"], "numberOfIdentities": integer(minimum=0)})
CLIENT_WITH_SECRET = obj({**CLIENT["properties"], "clientSecret": string()})
MAX_IDENTITIES = nullable(integer(minimum=0))
IDENTITY_QUOTA = obj({**TIER_QUOTA["properties"], "source": string()})
IDENTITY_DETAILS = obj(
    {
        "address": string(),
        "clientId": nullable(string()),
        "publicKey": string(),
        "tierId": string(),
        "createdAt": timestamp(),
        "identityVersion": integer(),
        "numberOfDevices": integer(minimum=0),
        "devices": array(DEVICE),
        "quotas": array(IDENTITY_QUOTA),
    }
)
IDENTITY_OVERVIEW = obj(
    {
        "address": string(),
        "createdAt": timestamp(),
        "lastLoginAt": nullable(timestamp()),
        "createdWithClient": nullable(string()),
        "datawalletVersion": nullable(integer()),
        "identityVersion": integer(),
        "tier": TIER_REF,
        "numberOfDevices": integer(minimum=0),
    }
)
ODATA_PAGE = obj(
    {"@odata.context": string(), "value": array(IDENTITY_OVERVIEW), "@odata.count": integer(minimum=0)},
    optional=["@odata.count"],
)
ODATA_QUERY = {
    "$filter": string(),
    "$orderby": string(),
    "$top": integer(minimum=0, maximum=MAX_TOP),
    "$skip": integer(minimum=0),
    "$count": boolean(),
}
CLIENTS, IDENTITIES = ("Clients",), ("Identities",)


def render_client(client: OAuthClient) -> dict[str, Any]:
    return {
        "clientId": client.client_id,
        "displayName": client.display_name,
        "defaultTier": client.default_tier_id,
        "createdAt": client.created_at,
        "maxIdentities": client.max_identities,
    }


def render_client_with_secret(created: CreatedClient) -> dict[str, Any]:
    return {**render_client(created.client), "clientSecret": created.client_secret}


def render_client_overview(overview: ClientOverview) -> dict[str, Any]:
    client = overview.client
    return {
        "clientId": client.client_id,
        "displayName": client.display_name,
        "defaultTier": {"id": overview.default_tier.id, "name": overview.default_tier.name},
        "createdAt": client.created_at,
        "maxIdentities": client.max_identities,
        "numberOfIdentities": overview.number_of_identities,
    }


class ClientsResource:
    def __init__(self, clients: ClientService) -> None:
        self._clients = clients

    @describe("Every OAuth client", {200: envelope(array(CLIENT_OVERVIEW))}, tags=CLIENTS)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, [render_client_overview(overview) for overview in self._clients.overviews()])

    @describe(
        "Register an OAuth client (id and secret are generated when left out; the secret is shown once)",
        {201: envelope(CLIENT_WITH_SECRET)},
        body=obj(
            {
                "clientId": nullable(CLIENT_ID),
                "displayName": nullable(string()),
                "clientSecret": nullable(string()),
                "defaultTier": string(min_length=1),
                "maxIdentities": MAX_IDENTITIES,
            },
            optional=["clientId", "displayName", "clientSecret", "maxIdentities"],
        ),
        tags=CLIENTS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, required=True)
        created = self._clients.create(
            client_id=body.text("clientId", required=False) or None,
            display_name=body.text("displayName", required=False) or None,
            client_secret=body.text("clientSecret", required=False) or None,
            default_tier=body.required_text("defaultTier"),
            max_identities=body.integer("maxIdentities", required=False),
        )
        send(resp, render_client_with_secret(created), 201)


class ClientResource:
    def __init__(self, clients: ClientService) -> None:
        self._clients = clients

    @describe("An OAuth client", {200: envelope(CLIENT_DETAILS)}, path={"clientId": CLIENT_ID}, tags=CLIENTS)
    def on_get(self, req: falcon.Request, resp: falcon.Response, clientId: str) -> None:
        overview = self._clients.overview(clientId)
        send(resp, {**render_client(overview.client), "numberOfIdentities": overview.number_of_identities})

    @describe(
        "Change a client's default tier and identity limit",
        {200: envelope(CLIENT)},
        body=obj(
            {"defaultTier": string(min_length=1), "maxIdentities": MAX_IDENTITIES}, optional=["maxIdentities"]
        ),
        path={"clientId": CLIENT_ID},
        tags=CLIENTS,
    )
    def on_put(self, req: falcon.Request, resp: falcon.Response, clientId: str) -> None:
        body = read_json(req, required=True)
        client = self._clients.update(
            clientId, body.required_text("defaultTier"), body.integer("maxIdentities", required=False)
        )
        send(resp, render_client(client))

    @describe("Delete an OAuth client", {204: None}, path={"clientId": CLIENT_ID}, tags=CLIENTS)
    def on_delete(self, req: falcon.Request, resp: falcon.Response, clientId: str) -> None:
        self._clients.delete(clientId)
        no_content(resp)


class ClientSecretResource:
    def __init__(self, clients: ClientService) -> None:
        self._clients = clients

    @describe(
        "Replace a client's secret (generated when empty; shown once)",
        {200: envelope(CLIENT_WITH_SECRET)},
        body=obj({"newSecret": nullable(string())}, optional=["newSecret"]),
        body_required=False,
        path={"clientId": CLIENT_ID},
        tags=CLIENTS,
    )
    def on_patch(self, req: falcon.Request, resp: falcon.Response, clientId: str) -> None:
        body = read_json(req)
        created = self._clients.change_secret(clientId, body.text("newSecret", required=False) or None)
        send(resp, render_client_with_secret(created))


class IdentitiesODataResource:
    """`GET /odata/Identities`: a small OData subset, answered in OData's format (no envelope)."""

    def __init__(self, identities: IdentityService, datawallet_versions: DatawalletVersions) -> None:
        self._identities = identities
        self._datawallet_versions = datawallet_versions

    @describe(
        "Identities, filtered (eq/gt/lt joined by and on address, createdWithClient, tier/id, createdAt), "
        "ordered, paged ($top at most 100) and counted",
        {200: ODATA_PAGE},
        query=ODATA_QUERY,
        tags=IDENTITIES,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        options = {name: value if isinstance(value, str) else value[-1] for name, value in req.params.items()}
        found, total = self._identities.overviews(parse_odata(options, IDENTITY_LIST_FIELDS))
        versions = self._datawallet_versions([overview.address for overview in found])
        body: dict[str, Any] = {
            "@odata.context": f"{req.prefix}/odata/$metadata#Identities",
            "value": [_render_overview(overview, versions.get(overview.address)) for overview in found],
        }
        if total is not None:
            body["@odata.count"] = total
        resp.content_type = JSON
        resp.data = dumps(body)


def _render_overview(overview: IdentityOverview, datawallet_version: int | None) -> dict[str, Any]:
    return {
        "address": overview.address,
        "createdAt": overview.created_at,
        "lastLoginAt": overview.last_login_at,
        "createdWithClient": overview.created_with_client,
        "datawalletVersion": datawallet_version,
        "identityVersion": overview.identity_version,
        "tier": {"id": overview.tier.id, "name": overview.tier.name},
        "numberOfDevices": overview.number_of_devices,
    }


class IdentitiesResource:
    def __init__(self, identities: IdentityService) -> None:
        self._identities = identities

    @describe(
        "Onboard an identity for a client, without the client's secret",
        {201: envelope(CREATED_IDENTITY)},
        body=obj(
            {"clientId": string(min_length=1), **NEW_IDENTITY_PROPERTIES},
            optional=["deviceCommunicationLanguage"],
        ),
        tags=IDENTITIES,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, required=True)
        created = self._identities.create_by_operator(read_new_identity(body, with_client_secret=False))
        send(resp, render_created_identity(created), 201)


class IdentityResource:
    def __init__(self, identities: IdentityService, identity_quotas: IdentityQuotas) -> None:
        self._identities = identities
        self._identity_quotas = identity_quotas

    @describe(
        "An identity with its devices and quotas",
        {200: envelope(IDENTITY_DETAILS)},
        path={"address": address()},
        tags=IDENTITIES,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, address: str) -> None:
        details = self._identities.details(address)
        identity = details.identity
        send(
            resp,
            {
                "address": identity.address,
                "clientId": identity.client_id,
                "publicKey": identity.public_key,
                "tierId": identity.tier_id,
                "createdAt": identity.created_at,
                "identityVersion": identity.identity_version,
                "numberOfDevices": len(details.devices),
                "devices": [render_device(device) for device in details.devices],
                "quotas": self._identity_quotas(identity.address),
            },
        )

    @describe(
        "Move an identity to another tier",
        {204: None},
        body=obj({"tierId": identifier("TIR")}),
        path={"address": address()},
        tags=IDENTITIES,
    )
    def on_put(self, req: falcon.Request, resp: falcon.Response, address: str) -> None:
        tier_id = checked_id(read_json(req, required=True).required_text("tierId"), "TIR", "tierId")
        self._identities.change_tier(address, tier_id)
        no_content(resp)


def add_device_admin_routes(
    app: App,
    clients: ClientService,
    identities: IdentityService,
    *,
    identity_quotas: IdentityQuotas,
    datawallet_versions: DatawalletVersions,
) -> None:
    app.add_route("/api/v1/Clients", ClientsResource(clients))
    app.add_route("/api/v1/Clients/{clientId}", ClientResource(clients))
    app.add_route("/api/v1/Clients/{clientId}/ChangeSecret", ClientSecretResource(clients))
    app.add_route("/odata/Identities", IdentitiesODataResource(identities, datawallet_versions))
    app.add_route("/api/v1/Identities", IdentitiesResource(identities))
    app.add_route("/api/v1/Identities/{address}", IdentityResource(identities, identity_quotas))
