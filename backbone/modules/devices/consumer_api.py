"""Consumer API routes of identities and devices, and the OAuth token endpoint."""

from __future__ import annotations

from typing import Any

import falcon

from backbone.modules.challenges.model import SignedChallenge
from backbone.modules.devices.model import (
    DEFAULT_COMMUNICATION_LANGUAGE,
    CreatedIdentity,
    Device,
    Identity,
    IdentityStatus,
    LoginFailed,
    NewDevice,
    NewIdentity,
)
from backbone.modules.devices.service import (
    DeviceService,
    IdentityService,
    LoginService,
)
from backbone.platform.errors import DomainError
from backbone.platform.http import (
    JSON,
    App,
    JsonObject,
    Query,
    checked_id,
    dumps,
    no_content,
    principal_of,
    read_form,
    read_json,
    send,
    send_page,
)
from backbone.platform.openapi import (
    ERROR,
    PAGE_QUERY,
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

TAGS = ("Identities and devices",)
LANGUAGE = string(min_length=2, max_length=2)
SIGNED_CHALLENGE = obj({"challenge": string(min_length=1), "signature": binary(min_length=1)})
NEW_IDENTITY_PROPERTIES = {
    "identityPublicKey": binary(min_length=1),
    "devicePassword": string(min_length=1),
    "deviceCommunicationLanguage": nullable(LANGUAGE),
    "identityVersion": integer(minimum=0, maximum=255),
    "signedChallenge": SIGNED_CHALLENGE,
}
CREATED_IDENTITY = obj(
    {
        "address": string(),
        "createdAt": timestamp(),
        "device": obj({"id": string(), "username": string(), "createdAt": timestamp()}),
    }
)
IDENTITY = obj(
    {
        "address": string(),
        "createdAt": timestamp(),
        "identityVersion": integer(),
        "tierId": string(),
        "status": enum(*(status.name for status in IdentityStatus)),
        "deletionGracePeriodEndsAt": nullable(timestamp()),
    }
)
DEVICE = obj(
    {
        "id": string(),
        "username": string(),
        "createdAt": timestamp(),
        "createdByDevice": string(),
        "lastLogin": nullable(obj({"time": timestamp()})),
        "communicationLanguage": string(),
        "isBackupDevice": boolean(),
    }
)


def render_identity(identity: Identity) -> dict[str, Any]:
    return {
        "address": identity.address,
        "createdAt": identity.created_at,
        "identityVersion": identity.identity_version,
        "tierId": identity.tier_id,
        "status": identity.status.name,
        "deletionGracePeriodEndsAt": identity.deletion_grace_period_ends_at,
    }


def render_created_identity(created: CreatedIdentity) -> dict[str, Any]:
    device = created.device
    return {
        "address": created.identity.address,
        "createdAt": created.identity.created_at,
        "device": {"id": device.id, "username": device.username, "createdAt": device.created_at},
    }


def render_device(device: Device) -> dict[str, Any]:
    return {
        "id": device.id,
        "username": device.username,
        "createdAt": device.created_at,
        "createdByDevice": device.created_by_device,
        "lastLogin": {"time": device.last_login_at} if device.last_login_at else None,
        "communicationLanguage": device.communication_language,
        "isBackupDevice": device.is_backup_device,
    }


class TokenResource:
    """`POST /connect/token`: the OAuth 2.0 password grant, answered in OAuth's own format."""

    anonymous_methods = frozenset({"POST"})

    def __init__(self, logins: LoginService) -> None:
        self._logins = logins

    @describe(
        "Log a device in (OAuth 2.0 password grant); answered in OAuth's format, not the envelope",
        {
            200: obj(
                {"access_token": string(), "token_type": enum("Bearer"), "expires_in": integer(minimum=1)}
            ),
            400: {"anyOf": [ERROR, obj({"error": string(), "error_description": string()})]},
        },
        body=obj(
            {
                "grant_type": enum("password"),
                "client_id": string(),
                "client_secret": string(),
                "username": string(),
                "password": string(),
            }
        ),
        body_type="application/x-www-form-urlencoded",
        tags=("Authentication",),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = read_form(req)
        if form.get("grant_type") != "password" or not form.get("username") or not form.get("password"):
            raise DomainError(
                "error.platform.validation.authentication.invalidOAuthRequest",
                "The token request must use grant_type 'password' with a username and a password.",
            )
        try:
            token = self._logins.issue_token(
                form.get("client_id", ""), form.get("client_secret", ""), form["username"], form["password"]
            )
        except LoginFailed as failure:
            resp.status = 400
            resp.content_type = JSON
            resp.data = dumps({"error": failure.error, "error_description": failure.description})
            return
        resp.content_type = JSON
        resp.set_header("Cache-Control", "no-store")
        resp.data = dumps(
            {"access_token": token.access_token, "token_type": "Bearer", "expires_in": token.expires_in_s}
        )


def read_new_identity(body: JsonObject, *, with_client_secret: bool) -> NewIdentity:
    """The onboarding request (operators onboard without the client's secret)."""
    return NewIdentity(
        client_id=body.required_text("clientId"),
        client_secret=body.required_text("clientSecret") if with_client_secret else "",
        identity_public_key=body.required_binary("identityPublicKey"),
        device_password=body.required_text("devicePassword"),
        communication_language=body.text("deviceCommunicationLanguage", required=False)
        or DEFAULT_COMMUNICATION_LANGUAGE,
        identity_version=body.integer("identityVersion", minimum=0, maximum=255) or 0,
        signed_challenge=read_signed_challenge(body),
    )


def read_signed_challenge(body: JsonObject) -> SignedChallenge:
    signed = body.obj("signedChallenge")
    assert signed is not None
    return SignedChallenge(
        challenge=signed.required_text("challenge"), signature=signed.required_binary("signature")
    )


class IdentitiesResource:
    anonymous_methods = frozenset({"POST"})

    def __init__(self, identities: IdentityService) -> None:
        self._identities = identities

    @describe(
        "Onboard an identity with its first device from a challenge signed with the identity key",
        {201: envelope(CREATED_IDENTITY)},
        body=obj(
            {"clientId": string(), "clientSecret": string(), **NEW_IDENTITY_PROPERTIES},
            optional=["deviceCommunicationLanguage"],
        ),
        tags=TAGS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, required=True)
        created = self._identities.create(read_new_identity(body, with_client_secret=True))
        send(resp, render_created_identity(created), 201)


class IdentitySelfResource:
    def __init__(self, identities: IdentityService) -> None:
        self._identities = identities

    @describe("The caller's identity", {200: envelope(IDENTITY)}, tags=TAGS)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, render_identity(self._identities.get(principal_of(req).address)))


class DevicesResource:
    def __init__(self, devices: DeviceService) -> None:
        self._devices = devices

    @describe(
        "Add a device to the caller's identity (challenge signed with the identity key)",
        {
            201: envelope(
                obj(
                    {
                        "id": string(),
                        "username": string(),
                        "createdAt": timestamp(),
                        "createdByDevice": string(),
                        "isBackupDevice": boolean(),
                    }
                )
            )
        },
        body=obj(
            {
                "devicePassword": string(min_length=1),
                "communicationLanguage": nullable(LANGUAGE),
                "signedChallenge": SIGNED_CHALLENGE,
                "isBackupDevice": boolean(),
            },
            optional=["communicationLanguage", "isBackupDevice"],
        ),
        tags=TAGS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, required=True)
        device = self._devices.register(
            principal_of(req),
            NewDevice(
                device_password=body.required_text("devicePassword"),
                communication_language=body.text("communicationLanguage", required=False)
                or DEFAULT_COMMUNICATION_LANGUAGE,
                signed_challenge=read_signed_challenge(body),
                is_backup_device=body.boolean("isBackupDevice"),
            ),
        )
        send(
            resp,
            {
                "id": device.id,
                "username": device.username,
                "createdAt": device.created_at,
                "createdByDevice": device.created_by_device,
                "isBackupDevice": device.is_backup_device,
            },
            201,
        )

    @describe(
        "The devices of the caller's identity",
        {200: paged(DEVICE)},
        query={"ids": array(identifier("DVC")), **PAGE_QUERY},
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = Query(req)
        page = query.page()
        device_ids = [checked_id(value, "DVC", "ids") for value in query.texts("ids")]
        send_page(resp, self._devices.list_devices(principal_of(req), device_ids, page), render_device)


class DeviceSelfResource:
    def __init__(self, devices: DeviceService) -> None:
        self._devices = devices

    @describe("The calling device", {200: envelope(DEVICE)}, tags=TAGS)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, render_device(self._devices.get(principal_of(req))))

    @describe(
        "Change the calling device's communication language",
        {204: None},
        body=obj({"communicationLanguage": LANGUAGE}),
        tags=TAGS,
    )
    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, required=True)
        self._devices.update_communication_language(
            principal_of(req), body.required_text("communicationLanguage")
        )
        no_content(resp)


class DevicePasswordResource:
    def __init__(self, devices: DeviceService) -> None:
        self._devices = devices

    @describe(
        "Change the calling device's password",
        {204: None},
        body=obj({"oldPassword": string(min_length=1), "newPassword": string(min_length=1)}),
        tags=TAGS,
    )
    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, required=True)
        self._devices.change_password(
            principal_of(req), body.required_text("oldPassword"), body.required_text("newPassword")
        )
        no_content(resp)


class DeviceResource:
    def __init__(self, devices: DeviceService) -> None:
        self._devices = devices

    @describe(
        "Delete a device of the caller's identity that has never logged in",
        {204: None},
        path={"id": identifier("DVC")},
        tags=TAGS,
    )
    def on_delete(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        self._devices.delete(principal_of(req), checked_id(id, "DVC"))
        no_content(resp)


def add_device_routes(
    app: App, identities: IdentityService, devices: DeviceService, logins: LoginService
) -> None:
    app.add_route("/connect/token", TokenResource(logins))
    app.add_route("/api/v2/Identities", IdentitiesResource(identities))
    app.add_route("/api/v2/Identities/Self", IdentitySelfResource(identities))
    app.add_route("/api/v2/Devices", DevicesResource(devices))
    app.add_route("/api/v2/Devices/Self", DeviceSelfResource(devices))
    app.add_route("/api/v2/Devices/Self/Password", DevicePasswordResource(devices))
    app.add_route("/api/v2/Devices/{id}", DeviceResource(devices))
