"""The Admin API: create_admin_app(services), and the gunicorn entry.

Operators only: every route needs the `X-API-KEY` header, and unsafe methods the anti-forgery
cookie/header pair from `GET /api/v1/xsrf`; the Admin UI's pages under /ui/ take the key on a
sign-in form instead (`backbone/admin_ui/`). The gateway never routes to this process.
"""

from __future__ import annotations

import falcon

from backbone.admin_ui.routes import UI_ROUTES, add_admin_ui
from backbone.platform.admin_auth import (
    API_KEY_HEADER,
    XSRF_COOKIE,
    XSRF_HEADER,
    AdminProtection,
    ApiKeys,
    InvalidApiKey,
    XsrfTokens,
)
from backbone.platform.health import HealthResource
from backbone.platform.http import (
    JSON,
    App,
    BodyLimit,
    RequestTelemetry,
    create_app,
    dumps,
    error_body,
    read_json,
    send,
)
from backbone.platform.metrics import MetricsResource
from backbone.platform.openapi import (
    OpenApiResource,
    Schema,
    Security,
    boolean,
    build_document,
    describe,
    envelope,
    obj,
    string,
)
from backbone.settings import Settings
from backbone.wiring import Services, build_services

OPENAPI_PATH = "/docs/v1/openapi.json"
# Infrastructure, and the Admin UI's pages (`GET /` leads to them): not operations of the API.
HIDDEN_ROUTES = ("/health", "/metrics", *UI_ROUTES)
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ADMIN_SECURITY = Security(
    schemes={
        "apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER},
        "xsrfHeader": {"type": "apiKey", "in": "header", "name": XSRF_HEADER},
        "xsrfCookie": {"type": "apiKey", "in": "cookie", "name": XSRF_COOKIE},
    },
    requirement=lambda resource, method: (
        []
        if method in getattr(resource, "anonymous_methods", frozenset())
        else [{"apiKey": [], "xsrfHeader": [], "xsrfCookie": []} if method in _UNSAFE else {"apiKey": []}]
    ),
)


class AdminConfigurationError(Exception):
    """The Admin API must not start like this (an empty API key outside development mode)."""


class XsrfResource:
    """`GET /api/v1/xsrf`: a fresh anti-forgery pair; the body is the bare token (no envelope)."""

    anonymous_methods = frozenset({"GET"})

    def __init__(self, xsrf: XsrfTokens) -> None:
        self._xsrf = xsrf

    @describe(
        f"Get an anti-forgery token: send it as {XSRF_HEADER} with the {XSRF_COOKIE} cookie set here",
        {200: string()},
        tags=("Authentication",),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        cookie, token = self._xsrf.issue()
        resp.set_cookie(XSRF_COOKIE, cookie, http_only=False, secure=False, path="/", same_site="Strict")
        resp.set_header("Cache-Control", "no-store")
        resp.content_type = JSON
        resp.data = dumps(token)


class ValidateApiKeyResource:
    """`POST /api/v1/ValidateApiKey`: lets the admin UI check a key before using it."""

    anonymous_methods = frozenset({"POST"})

    def __init__(self, keys: ApiKeys) -> None:
        self._keys = keys

    @describe(
        "Tell whether an API key is valid",
        {200: envelope(obj({"isValid": boolean()}))},
        body=obj({"apiKey": string()}, optional=["apiKey"]),
        body_required=False,
        tags=("Authentication",),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        candidate = read_json(req).text("apiKey", required=False)
        send(resp, {"isValid": self._keys.accepts(candidate)})


def _handle_invalid_api_key(req: falcon.Request, resp: falcon.Response, _e: Exception, _: object) -> None:
    resp.status = 401
    resp.content_type = JSON
    resp.data = error_body("error.platform.unauthorized", f"A valid {API_KEY_HEADER} header is required.")


def create_admin_app(services: Services) -> App:
    """Assemble the Admin API on the given services."""
    settings = services.settings
    if not settings.admin_api_key and not settings.development:
        raise AdminConfigurationError("BACKBONE_ADMIN_API_KEY must be set outside development mode")
    keys = ApiKeys(settings.admin_api_key)
    xsrf = XsrfTokens(services.xsrf_key)
    app = create_app(
        middleware=[
            RequestTelemetry(services.metrics, services.tracing),
            BodyLimit(settings.max_request_body_bytes),
            AdminProtection(keys, xsrf),
        ]
    )
    app.add_error_handler(InvalidApiKey, _handle_invalid_api_key)
    app.add_route("/api/v1/xsrf", XsrfResource(xsrf))
    app.add_route("/api/v1/ValidateApiKey", ValidateApiKeyResource(keys))
    for add_routes in services.admin_routes:
        add_routes(app)
    add_admin_ui(app, services, keys)
    app.add_route("/health", HealthResource(services.health))
    if services.metrics is not None:
        app.add_route("/metrics", MetricsResource(services.metrics))
    app.add_route(OPENAPI_PATH, OpenApiResource(lambda: admin_openapi(app)))
    return app


def admin_openapi(app: App) -> Schema:
    """The OpenAPI document of the Admin API, generated from its routes."""
    return build_document(
        app,
        title="enmeshed Backbone Admin API (reference implementation)",
        version="v1",
        description=(
            f"Operators' API. Every route needs {API_KEY_HEADER}; POST, PUT, PATCH and DELETE also need "
            f"the {XSRF_COOKIE} cookie and the {XSRF_HEADER} header from GET /api/v1/xsrf."
        ),
        security=ADMIN_SECURITY,
        hidden=HIDDEN_ROUTES,
    )


def application() -> App:
    """Build the app inside a gunicorn worker, after fork, from the environment."""
    return create_admin_app(build_services(Settings.from_process_env()))
