"""Every route of the Admin API refuses callers without the API key, and unsafe ones without the pair.

Routes are read from the Falcon app, so a route added later is covered without touching this
file; only routes that need no key are named here, each with the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from falcon import testing

from backbone.admin_api import AdminConfigurationError, create_admin_app
from backbone.admin_ui.routes import UI_ROUTES
from backbone.platform.db import metadata
from backbone.platform.openapi import responders
from backbone.wiring import Services, build_services
from tests.helpers.admin import AdminClient
from tests.helpers.api import assert_error
from tests.helpers.services import settings_for_tests

# (method, template) -> why it needs no API key.
WITHOUT_KEY = {
    ("GET", "/api/v1/xsrf"): "hands out anti-forgery pairs; they are useless without the key",
    ("POST", "/api/v1/ValidateApiKey"): "answers only whether a given key is valid",
    ("GET", "/docs/v1/openapi.json"): "the API's description, generated from the code",
    ("GET", "/health"): "liveness only",
    (
        "GET",
        "/metrics",
    ): "figures for the Prometheus scraper; no identity data, and the process is never routed",
}
SAMPLE_VALUES = {
    "id": "ANCaaaaaaaaaaaaaaaaa",
    "clientId": "test",
    "tierId": "TIR00000000000000001",
    "quotaId": "QUOaaaaaaaaaaaaaaaaa",
    "tokenId": "TOKaaaaaaaaaaaaaaaaa",
    "address": "did:e:localhost:dids:0000000000000000000000",
}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def admin_routes(services: Services) -> list[tuple[str, str]]:
    """The API's routes; the Admin UI's pages take the key on their sign-in form and then a session,
    and `test_admin_ui.py` holds them to the same refusals."""
    app = create_admin_app(services)
    return sorted(
        (method.upper(), template)
        for template, method, _ in responders(app._router)
        if template not in UI_ROUTES
    )


def concrete(template: str) -> str:
    path = template
    for name, value in SAMPLE_VALUES.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"add a sample value for {template}"
    return path


def fingerprint(services: Services) -> str:
    """A digest of every row of every table: equal digests mean nothing changed."""
    digest = hashlib.sha256()
    with services.db.read() as connection:
        for table in metadata.sorted_tables:
            rows = connection.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
            digest.update(f"{table.name}:{sorted(map(repr, rows))}".encode())
    return digest.hexdigest()


@pytest.fixture
def routes(services: Services) -> list[tuple[str, str]]:
    return admin_routes(services)


@pytest.fixture
def body() -> dict[str, object]:
    """A body that would change something if the request got through."""
    return {
        "defaultTier": "Basic",
        "name": "A new tier",
        "metricKey": "NumberOfSentMessages",
        "max": 1,
        "period": "Day",
        "tierId": "TIR00000000000000001",
        "severity": "High",
        "texts": [{"language": "en", "title": "t", "body": "b"}],
    }


def test_the_key_free_routes_exist(routes: list[tuple[str, str]]) -> None:
    assert WITHOUT_KEY.keys() <= set(routes)
    assert all(why.strip() for why in WITHOUT_KEY.values())


def guarded(routes: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    return (route for route in routes if route not in WITHOUT_KEY)


@pytest.mark.parametrize("key", [None, "a-wrong-key", ""])
def test_without_the_right_key_every_route_answers_401_and_changes_nothing(
    services: Services,
    admin: AdminClient,
    routes: list[tuple[str, str]],
    body: dict[str, object],
    key: str | None,
) -> None:
    before = fingerprint(services)
    checked = 0
    for method, template in guarded(routes):
        headers = {name: value for name, value in admin.headers.items() if name != "X-API-KEY"}
        if key is not None:
            headers["X-API-KEY"] = key
        result = admin.api.simulate_request(method, concrete(template), headers=headers, json=body)
        assert_error(result, 401, "error.platform.unauthorized")
        checked += 1
    assert checked >= 25
    assert fingerprint(services) == before


def test_unsafe_methods_without_the_anti_forgery_pair_answer_400_and_change_nothing(
    services: Services, admin: AdminClient, routes: list[tuple[str, str]], body: dict[str, object]
) -> None:
    before = fingerprint(services)
    other = AdminClient(admin.api)
    variants = {
        "no pair": {"X-API-KEY": admin.key},
        "header only": {"X-API-KEY": admin.key, "X-XSRF-TOKEN": admin.xsrf_token},
        "cookie only": {"X-API-KEY": admin.key, "Cookie": f"X-XSRF-COOKIE={admin.xsrf_cookie}"},
        "token of another pair": {**admin.headers, "X-XSRF-TOKEN": other.xsrf_token},
        "forged cookie": {**admin.headers, "Cookie": "X-XSRF-COOKIE=" + "A" * 64},
    }
    unsafe = [(method, template) for method, template in guarded(routes) if method in UNSAFE]
    assert len(unsafe) >= 15
    for method, template in unsafe:
        for name, headers in variants.items():
            result = admin.api.simulate_request(method, concrete(template), headers=headers, json=body)
            assert result.status_code == 400, f"{method} {template} ({name}): {result.text}"
            assert_error(result, 400, "error.platform.validation.invalidAntiforgeryToken")
    assert fingerprint(services) == before


def test_safe_methods_need_no_anti_forgery_pair(admin: AdminClient) -> None:
    result = admin.api.simulate_get("/api/v1/Tiers", headers={"X-API-KEY": admin.key})
    assert result.status_code == 200, result.text


def test_the_anti_forgery_pair_works_on_every_worker_that_shares_the_secrets(services: Services) -> None:
    """A pair issued by one process is accepted by another built from the same settings."""
    first = AdminClient(testing.TestClient(create_admin_app(services)))
    second_services = build_services(services.settings, db=services.db)
    second = testing.TestClient(create_admin_app(second_services))
    result = second.simulate_post("/api/v1/Tiers", headers=first.headers, json={"name": "Shared pair"})
    assert result.status_code == 201, result.text


def test_xsrf_answers_the_bare_token_and_a_readable_cookie(admin: AdminClient) -> None:
    result = admin.api.simulate_get("/api/v1/xsrf", headers={"X-API-KEY": admin.key})
    assert isinstance(result.json, str)
    cookie = result.cookies["X-XSRF-COOKIE"]
    assert not cookie.http_only
    assert cookie.path == "/"


def test_validate_api_key(admin: AdminClient) -> None:
    valid = admin.api.simulate_post("/api/v1/ValidateApiKey", json={"apiKey": admin.key})
    assert valid.json == {"result": {"isValid": True}}
    invalid = admin.api.simulate_post("/api/v1/ValidateApiKey", json={"apiKey": "nope"})
    assert invalid.json == {"result": {"isValid": False}}
    missing = admin.api.simulate_post("/api/v1/ValidateApiKey")
    assert missing.json == {"result": {"isValid": False}}


def test_an_empty_key_accepts_any_key_in_development_mode(services: Services) -> None:
    open_services = build_services(
        settings_for_tests(services.settings.database_url, services.settings.var_dir, admin_api_key=""),
        db=services.db,
    )
    api = testing.TestClient(create_admin_app(open_services))
    assert api.simulate_get("/api/v1/Tiers").status_code == 200
    assert api.simulate_get("/api/v1/Tiers", headers={"X-API-KEY": "anything"}).status_code == 200


def test_an_empty_key_is_refused_outside_development_mode(services: Services) -> None:
    settings = settings_for_tests(
        services.settings.database_url, services.settings.var_dir, admin_api_key="", environment="production"
    )
    with pytest.raises(AdminConfigurationError):
        create_admin_app(build_services(settings, db=services.db))
