"""Consumer API routes of push notifications: the calling device's registration, and the
notifications an identity sends to its peers' devices."""

from __future__ import annotations

import falcon

from backbone.modules.push_notifications.model import (
    MAX_NOTIFICATION_RECIPIENTS,
    PNS_HANDLE_MAX_LENGTH,
    PNS_HANDLE_MIN_LENGTH,
    PushEnvironment,
    PushPlatform,
    PushRegistrationRequest,
)
from backbone.modules.push_notifications.service import NotificationService, PushService
from backbone.platform.errors import InvalidInput, InvalidPropertyValue
from backbone.platform.http import App, no_content, principal_of, read_json, read_json_value, send
from backbone.platform.openapi import address, array, describe, enum, envelope, nullable, obj, string

TAGS = ("Identities and devices",)
TEST_NOTIFICATION_ROUTE = "/api/v2/Devices/Self/PushNotifications/SendTestNotification"
_ENVIRONMENTS = {environment.name: environment for environment in PushEnvironment}


class PushNotificationsResource:
    """`/Devices/Self/PushNotifications`: the calling device's push registration."""

    def __init__(self, push: PushService) -> None:
        self._push = push

    @describe(
        "Register the calling device for push notifications",
        {200: envelope(obj({"devicePushIdentifier": string()}))},
        body=obj(
            {
                "platform": enum(*(platform.value for platform in PushPlatform)),
                "handle": string(min_length=PNS_HANDLE_MIN_LENGTH, max_length=PNS_HANDLE_MAX_LENGTH),
                "appId": string(min_length=1),
                "environment": nullable(enum(*(environment.name for environment in PushEnvironment))),
            },
            optional=["environment"],
        ),
        tags=TAGS,
    )
    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, required=True)
        platform = body.required_text("platform")
        handle = body.required_text(
            "handle", min_length=PNS_HANDLE_MIN_LENGTH, max_length=PNS_HANDLE_MAX_LENGTH
        )
        app_id = body.required_text("appId")
        environment_name = body.text("environment", required=False)
        if environment_name is not None and environment_name not in _ENVIRONMENTS:
            raise InvalidPropertyValue("'environment' must be one of Development, Production.")
        registration = self._push.register(
            principal_of(req),
            PushRegistrationRequest(
                platform=platform,
                handle=handle,
                app_id=app_id,
                environment=_ENVIRONMENTS[environment_name or PushEnvironment.Production.name],
            ),
        )
        send(resp, {"devicePushIdentifier": registration.device_push_identifier})

    @describe("Remove the calling device's push registration", {204: None}, tags=TAGS)
    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._push.unregister(principal_of(req))
        no_content(resp)


class TestNotificationResource:
    """`POST /Devices/Self/PushNotifications/SendTestNotification`: push `Test`, with the body as
    its data, to every registered device of the caller's identity. Hidden from the OpenAPI
    document, as in the original (it is for trying out a device's registration)."""

    def __init__(self, push: PushService) -> None:
        self._push = push

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._push.send_test_notification(principal_of(req), read_json_value(req))
        no_content(resp)


class NotificationsResource:
    """`POST /Notifications`: push a configured notification to peers' devices."""

    def __init__(self, notifications: NotificationService) -> None:
        self._notifications = notifications

    @describe(
        "Send a configured push notification to the devices of related identities",
        {204: None},
        body=obj(
            {
                "recipients": array(address(), min_items=1, max_items=MAX_NOTIFICATION_RECIPIENTS),
                "code": string(),
            }
        ),
        tags=("Notifications",),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, required=True)
        recipients = body.raw("recipients")
        if not isinstance(recipients, list) or not all(isinstance(item, str) for item in recipients):
            raise InvalidInput("'recipients': The JSON value must be an array of addresses.")
        self._notifications.send(principal_of(req), recipients, body.required_text("code", max_length=100))
        no_content(resp)


def add_push_notification_routes(app: App, push: PushService, notifications: NotificationService) -> None:
    app.add_route("/api/v2/Devices/Self/PushNotifications", PushNotificationsResource(push))
    app.add_route(TEST_NOTIFICATION_ROUTE, TestNotificationResource(push))
    app.add_route("/api/v2/Notifications", NotificationsResource(notifications))
