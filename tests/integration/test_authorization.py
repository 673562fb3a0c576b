"""Every route of the Consumer API, and what a third identity gets on the resources of two others.

The table below must name every (method, route template) the app registers. A route added later
without an entry fails `test_every_route_has_an_authorization_entry` on purpose: decide what an
outsider gets on it (and prove it here) before the route ships.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from falcon import testing

from backbone.consumer_api import create_consumer_app
from backbone.platform.encoding import b64url, format_datetime
from backbone.wiring import Services
from tests.helpers.api import DWV, Account, add_device, assert_error, onboard
from tests.helpers.files import upload_file
from tests.helpers.peers import CONTENT, ENCRYPTED_KEY, create_template, relate, send_message

NOT_FOUND = "error.platform.recordNotFound"
FORBIDDEN = "error.platform.forbidden"
SECRET = b64url(b"only alice and bob know this")


@dataclass(frozen=True)
class Public:
    """Anyone (or any identity) may call it; `why` says why that exposes nothing of others."""

    why: str


@dataclass(frozen=True)
class OwnOnly:
    """It acts on the caller's own data only; the path names no resource of anyone else."""

    why: str


@dataclass(frozen=True)
class Denied:
    """An outsider naming another identity's resource gets this status and code."""

    status: int
    code: str
    resource: str
    body: dict[str, Any] | None = field(default=None)


@dataclass(frozen=True)
class Hidden:
    """A list filtered to the caller: asked for others' ids, it answers an empty page."""

    resource: str


Entry = Public | OwnOnly | Denied | Hidden

ROUTES: dict[tuple[str, str], Entry] = {
    ("POST", "/connect/token"): Public("logs in with a device's own credentials"),
    ("GET", "/health"): Public("liveness only; no identity data"),
    ("GET", "/metrics"): Public("operational figures only; no identity data; the gateway hides it"),
    ("GET", "/api/v2/Version"): Public("the backbone's major version"),
    ("GET", "/docs/v2/openapi.json"): Public("the API's description, generated from the code"),
    ("GET", "/api/v2/Announcements"): OwnOnly("announcements to everyone and to the caller only"),
    ("GET", "/api/v2/Quotas"): OwnOnly("the caller's own quotas and usage"),
    ("POST", "/api/v2/Notifications"): OwnOnly(
        "pushes only to identities the caller has a relationship with (tested in test_push_notifications)"
    ),
    ("GET", "/api/v2/Tags"): Public("the configured tag collection, the same for everyone"),
    ("GET", "/r/{referenceId}"): Public("the landing page of shared links: the configured apps only"),
    ("GET", "/.well-known/apple-app-site-association"): Public("the configured iOS app ids"),
    ("GET", "/.well-known/assetlinks.json"): Public("the configured Android packages"),
    ("GET", "/api/poc/PublicRelationshipTemplateReferences"): OwnOnly(
        "what the apps file configures for the caller's own OAuth client"
    ),
    ("POST", "/api/v2/Identities"): Public("onboards a new identity from a signed challenge"),
    ("GET", "/api/v2/Identities/IsDeleted"): Public("answers only whether a username's identity is gone"),
    ("GET", "/api/v2/Identities/Self"): OwnOnly("the caller's identity"),
    ("PATCH", "/api/v2/Identities/Self/FeatureFlags"): OwnOnly("sets the caller's own feature flags"),
    # Visible to the identity, its relationship peers and allocators of its templates only.
    ("GET", "/api/v2/Identities/{identityAddress}/FeatureFlags"): Denied(404, NOT_FOUND, "identity"),
    ("GET", "/api/v2/Devices/Self"): OwnOnly("the caller's device"),
    ("PUT", "/api/v2/Devices/Self"): OwnOnly("changes the caller's device"),
    ("PUT", "/api/v2/Devices/Self/Password"): OwnOnly("changes the calling device's password"),
    ("PUT", "/api/v2/Devices/Self/PushNotifications"): OwnOnly("registers the calling device for push"),
    ("POST", "/api/v2/Devices/Self/PushNotifications/SendTestNotification"): OwnOnly(
        "pushes to the caller's own registered devices only"
    ),
    ("DELETE", "/api/v2/Devices/Self/PushNotifications"): OwnOnly(
        "removes the calling device's registration"
    ),
    ("POST", "/api/v2/Devices"): OwnOnly(
        "adds a device to the caller's identity; the challenge must be signed with that identity's key"
    ),
    ("GET", "/api/v2/Devices"): Hidden("device"),
    # The original answers a foreign device like an onboarded one: a 400, not a 404.
    ("DELETE", "/api/v2/Devices/{id}"): Denied(
        400, "error.platform.validation.device.deviceCannotBeDeleted", "new_device"
    ),
    ("POST", "/api/v2/Challenges"): Public("creates a fresh challenge for the caller"),
    ("GET", "/api/v2/Challenges/{id}"): Public(
        "the original lets any identity read a challenge: peers validate challenges others signed"
    ),
    ("GET", "/api/v2/Datawallet"): OwnOnly("the caller's datawallet"),
    ("GET", "/api/v2/Datawallet/Modifications"): OwnOnly("the caller's datawallet modifications"),
    ("POST", "/api/v2/Datawallet/Modifications"): OwnOnly("appends to the caller's datawallet"),
    ("POST", "/api/v2/SyncRuns"): OwnOnly("starts a sync run over the caller's external events"),
    ("GET", "/api/v2/SyncRuns/{id}"): Denied(404, NOT_FOUND, "sync_run"),
    ("GET", "/api/v2/SyncRuns/{id}/ExternalEvents"): Denied(404, NOT_FOUND, "sync_run"),
    ("PUT", "/api/v2/SyncRuns/{id}/FinalizeExternalEventSync"): Denied(404, NOT_FOUND, "sync_run", {}),
    ("PUT", "/api/v2/SyncRuns/{id}/FinalizeDatawalletVersionUpgrade"): Denied(
        404, NOT_FOUND, "sync_run", {"newDatawalletVersion": 1}
    ),
    ("PUT", "/api/v2/SyncRuns/{id}/RefreshExpirationTime"): Denied(404, NOT_FOUND, "sync_run", {}),
    ("POST", "/api/v2/RelationshipTemplates"): OwnOnly("creates a template of the caller"),
    ("GET", "/api/v2/RelationshipTemplates"): Hidden("template"),
    ("GET", "/api/v2/RelationshipTemplates/{id}"): Denied(404, NOT_FOUND, "template"),
    ("DELETE", "/api/v2/RelationshipTemplates/{id}"): Denied(403, FORBIDDEN, "template"),
    ("POST", "/api/v2/Relationships"): Denied(404, NOT_FOUND, "template", {"creationContent": CONTENT}),
    ("GET", "/api/v2/Relationships"): Hidden("relationship"),
    ("GET", "/api/v2/Relationships/CanCreate"): Public(
        "says only whether the caller could relate to a peer; 404 tells only whether an address exists"
    ),
    ("GET", "/api/v2/Relationships/{id}"): Denied(404, NOT_FOUND, "relationship"),
    **{
        ("PUT", f"/api/v2/Relationships/{{id}}/{action}"): Denied(404, NOT_FOUND, "relationship", {})
        for action in (
            "Accept",
            "Reject",
            "Revoke",
            "Terminate",
            "Reactivate",
            "Reactivate/Accept",
            "Reactivate/Reject",
            "Reactivate/Revoke",
            "Decompose",
        )
    },
    ("POST", "/api/v2/Messages"): Denied(
        400, "error.platform.validation.message.noRelationshipToRecipientExists", "recipient", {}
    ),
    ("GET", "/api/v2/Messages"): Hidden("message"),
    ("GET", "/api/v2/Messages/{id}"): Denied(404, NOT_FOUND, "message"),
    ("POST", "/api/v2/Tokens"): OwnOnly("creates a token of the caller"),
    ("GET", "/api/v2/Tokens"): Hidden("token"),
    ("GET", "/api/v2/Tokens/{id}"): Denied(404, NOT_FOUND, "token"),
    ("DELETE", "/api/v2/Tokens/{id}"): Denied(403, FORBIDDEN, "token"),
    ("POST", "/api/v2/Tokens/{id}/UpdateContent"): Denied(
        404, NOT_FOUND, "empty_token", {"newContent": CONTENT}
    ),
    ("POST", "/api/v2/Files"): OwnOnly("uploads a file of the caller"),
    ("GET", "/api/v2/Files"): Hidden("file"),
    ("GET", "/api/v2/Files/{id}"): Public(
        "the original lets any identity download a file: the content is encrypted, the id and key are shared"
    ),
    ("GET", "/api/v2/Files/{id}/Metadata"): Public(
        "any identity may read a file's metadata (encrypted properties) to decrypt an attachment"
    ),
    ("DELETE", "/api/v2/Files/{id}"): Denied(403, FORBIDDEN, "file"),
    ("POST", "/api/v2/Files/{id}/ValidateOwnershipToken"): Public(
        "answers only whether a token is the file's; an outsider's wrong guess locks the file"
    ),
    ("PATCH", "/api/v2/Files/{id}/RegenerateOwnershipToken"): Denied(403, FORBIDDEN, "file", {}),
    ("PATCH", "/api/v2/Files/{id}/ClaimOwnership"): Denied(
        403, FORBIDDEN, "file", {"ownershipToken": "x" * 20}
    ),
    ("POST", "/api/v2/Identities/Self/DeletionProcesses"): OwnOnly("starts the deletion of the caller"),
    ("GET", "/api/v2/Identities/Self/DeletionProcesses"): OwnOnly("the caller's deletion processes"),
    ("GET", "/api/v2/Identities/Self/DeletionProcesses/{id}"): Denied(404, NOT_FOUND, "deletion_process"),
    ("PUT", "/api/v2/Identities/Self/DeletionProcesses/{id}/Cancel"): Denied(
        404, NOT_FOUND, "deletion_process", {}
    ),
}


def registered_routes(services: Services) -> set[tuple[str, str]]:
    """Every (method, template) the Consumer API answers, read from its router."""
    router = create_consumer_app(services)._router
    routes = set()
    for template in router.templates:
        found = router.find(template.replace("{id}", "X"))
        assert found is not None, template
        for name in dir(found[0]):
            if name.startswith("on_"):
                routes.add((name[3:].upper(), template))
    return routes


def test_every_route_has_an_authorization_entry(services: Services) -> None:
    routes = registered_routes(services)
    missing = sorted(routes - ROUTES.keys())
    assert not missing, (
        f"routes without an entry in ROUTES (decide what an outsider gets, then add it): {missing}"
    )
    assert not sorted(ROUTES.keys() - routes), "entries for routes that no longer exist"
    for (method, template), entry in ROUTES.items():
        if isinstance(entry, (Public, OwnOnly)):
            assert entry.why.strip(), f"{method} {template} needs a justification"
        if isinstance(entry, OwnOnly):
            assert "{" not in template, f"{method} {template} names a resource, so it is not own-only"


@dataclass
class World:
    """Alice and Bob with shared and private resources, and Mallory, who has no relationship."""

    alice: Account
    bob: Account
    mallory: Account
    ids: dict[str, str]


@pytest.fixture
def world(api: testing.TestClient, services: Services) -> World:
    alice, bob, mallory = onboard(api), onboard(api), onboard(api)
    relationship_id = relate(alice, bob)
    template_id = create_template(alice, password=SECRET)
    assert (
        bob.get(f"/api/v2/RelationshipTemplates/{template_id}", query_string=f"password={SECRET}").status_code
        == 200
    )
    expires_at = format_datetime(services.clock.now() + timedelta(hours=1))
    token = alice.post(
        "/api/v2/Tokens", json={"content": CONTENT, "expiresAt": expires_at, "password": SECRET}
    )
    empty = alice.post("/api/v2/Tokens", json={"expiresAt": expires_at, "password": SECRET})
    message = send_message(alice, bob)
    run = alice.post("/api/v2/SyncRuns", json={"type": "ExternalEventSync"}, headers=DWV)
    assert run.status_code == 201, run.text
    leaving = onboard(api)
    process = leaving.post("/api/v2/Identities/Self/DeletionProcesses", json={})
    assert process.status_code == 201, process.text
    ids = {
        "file": upload_file(alice, b"a file of alice", services.clock.now())["id"],
        "deletion_process": process.json["result"]["id"],
        "relationship": relationship_id,
        "template": template_id,
        "token": token.json["result"]["id"],
        "empty_token": empty.json["result"]["id"],
        "message": message.json["result"]["id"],
        "sync_run": run.json["result"]["syncRun"]["id"],
        "recipient": alice.address,
        "identity": alice.address,
        "device": alice.device_id,
        "new_device": add_device(alice, log_in=False).device_id,
    }
    return World(alice, bob, mallory, ids)


DENIED = [(key, entry) for key, entry in ROUTES.items() if isinstance(entry, Denied)]
HIDDEN = [(key, entry) for key, entry in ROUTES.items() if isinstance(entry, Hidden)]


@pytest.mark.parametrize(("route", "entry"), DENIED, ids=[f"{m} {t}" for (m, t), _ in DENIED])
def test_an_outsider_is_refused_on_the_resources_of_others(
    world: World, route: tuple[str, str], entry: Denied
) -> None:
    method, template = route
    resource_id = world.ids[entry.resource]
    path = template.replace("{id}", resource_id).replace("{identityAddress}", resource_id)
    body = dict(entry.body) if entry.body is not None else None
    if template == "/api/v2/Relationships":
        body = {**(body or {}), "relationshipTemplateId": resource_id}
    if template == "/api/v2/Messages":
        body = {"recipients": [{"address": resource_id, "encryptedKey": ENCRYPTED_KEY}], "body": CONTENT}
    result = world.mallory.api.simulate_request(
        method, path, headers={**world.mallory.headers, **DWV}, json=body
    )
    assert_error(result, entry.status, entry.code)


LIST_QUERIES = {
    "template": "templates.0.id={id}",
    "relationship": "ids={id}",
    "message": "ids={id}",
    "token": "ids={id}",
    "device": "ids={id}",
    "file": "ids={id}",
}


@pytest.mark.parametrize(("route", "entry"), HIDDEN, ids=[f"{m} {t}" for (m, t), _ in HIDDEN])
def test_lists_hide_the_resources_of_others(world: World, route: tuple[str, str], entry: Hidden) -> None:
    method, template = route
    query = LIST_QUERIES[entry.resource].format(id=world.ids[entry.resource])
    mallory, alice = world.mallory, world.alice
    hidden = mallory.api.simulate_request(method, template, headers=mallory.headers, query_string=query)
    assert hidden.status_code == 200, hidden.text
    assert hidden.json["result"] == []
    shown = alice.api.simulate_request(method, template, headers=alice.headers, query_string=query)
    assert [item["id"] for item in shown.json["result"]] == [world.ids[entry.resource]], "the owner sees it"


def test_an_outsider_sees_nothing_of_others_in_its_own_lists_and_events(world: World) -> None:
    assert world.mallory.get("/api/v2/Messages").json["result"] == []
    run = world.mallory.post("/api/v2/SyncRuns", json={"type": "ExternalEventSync"}, headers=DWV)
    assert run.json["result"] == {"status": "NoNewEvents", "syncRun": None}
