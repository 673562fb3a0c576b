"""The Consumer API: create_consumer_app(services), and the gunicorn entry."""

from __future__ import annotations

import falcon

from backbone.modules.push_notifications.consumer_api import TEST_NOTIFICATION_ROUTE
from backbone.platform.health import HealthResource
from backbone.platform.http import App, BearerAuthentication, BodyLimit, RequestTelemetry, create_app, send
from backbone.platform.metrics import MetricsResource
from backbone.platform.openapi import (
    OpenApiResource,
    Schema,
    Security,
    build_document,
    describe,
    envelope,
    obj,
    string,
)
from backbone.settings import Settings
from backbone.wiring import Services, build_services

MAJOR_VERSION = "7"
OPENAPI_PATH = "/docs/v2/openapi.json"
# Infrastructure routes, not part of the API the document describes, and the route the original
# hides from its document too (for trying out a push registration).
HIDDEN_ROUTES = ("/health", "/metrics", TEST_NOTIFICATION_ROUTE)
BEARER = Security(
    schemes={"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
    requirement=lambda resource, method: (
        [] if method in getattr(resource, "anonymous_methods", frozenset()) else [{"bearer": []}]
    ),
)


class VersionResource:
    """`GET /api/v2/Version`; the official runtime checks that the major version is 6 or 7."""

    anonymous_methods = frozenset({"GET"})

    @describe(
        "The backbone's major version", {200: envelope(obj({"majorVersion": string()}))}, tags=("Version",)
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, {"majorVersion": MAJOR_VERSION})


def create_consumer_app(services: Services) -> App:
    """Assemble the Consumer API on the given services."""
    app = create_app(
        middleware=[
            RequestTelemetry(services.metrics, services.tracing),
            BodyLimit(services.settings.max_request_body_bytes),
            BearerAuthentication(services.access_tokens.verify),
        ]
    )
    for add_routes in services.consumer_routes:
        add_routes(app)
    app.add_route("/api/v2/Version", VersionResource())
    app.add_route("/health", HealthResource(services.health))
    if services.metrics is not None:
        app.add_route("/metrics", MetricsResource(services.metrics))
    app.add_route(OPENAPI_PATH, OpenApiResource(lambda: consumer_openapi(app)))
    return app


def consumer_openapi(app: App) -> Schema:
    """The OpenAPI document of the Consumer API, generated from its routes."""
    return build_document(
        app,
        title="enmeshed Backbone Consumer API (reference implementation)",
        version="v2",
        description="The API wallets and connectors use. Errors come in the backbone's error envelope.",
        security=BEARER,
        hidden=HIDDEN_ROUTES,
    )


def application() -> App:
    """Build the app inside a gunicorn worker, after fork, from the environment."""
    return create_consumer_app(build_services(Settings.from_process_env()))
