"""The conventions every route shares: envelopes, bad input, routing, headers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from falcon import testing

from backbone.consumer_api import create_consumer_app
from backbone.wiring import Services, build_services
from loadtests.keys import IdentityKey
from tests.helpers.api import DWV, assert_error, identity_body, onboard
from tests.helpers.services import settings_for_tests

TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.mark.parametrize("body", [b"{not json", b'{"a": 1', b"\xff\xfe", b"[]", b'"text"', b"42"])
def test_malformed_json_gets_the_envelope_with_400(api: testing.TestClient, body: bytes) -> None:
    result = api.simulate_post("/api/v2/Identities", body=body, headers={"Content-Type": "application/json"})
    error = assert_error(result, 400, "error.platform.inputCannotBeParsed")
    assert error["message"].startswith("'$'")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("clientId", 5),
        ("identityVersion", "one"),
        ("identityVersion", True),
        ("signedChallenge", "x"),
        ("identityPublicKey", "***"),
        ("devicePassword", ["a"]),
    ],
)
def test_wrong_types_name_the_property(api: testing.TestClient, field: str, value: object) -> None:
    body = identity_body(api, IdentityKey.generate(), **{field: value})
    error = assert_error(
        api.simulate_post("/api/v2/Identities", json=body), 400, "error.platform.inputCannotBeParsed"
    )
    assert error["message"].startswith(f"'{field}'")


def test_json_property_names_match_case_insensitively(api: testing.TestClient) -> None:
    body = identity_body(api, IdentityKey.generate())
    shouted = {key.upper(): value for key, value in body.items()}
    assert api.simulate_post("/api/v2/Identities", json=shouted).status_code == 201


def test_byte_fields_accept_standard_base64_with_padding(api: testing.TestClient) -> None:
    key = IdentityKey.generate()
    body = identity_body(api, key)
    standard = body["identityPublicKey"].replace("-", "+").replace("_", "/")
    body["identityPublicKey"] = standard + "=" * (-len(standard) % 4)
    result = api.simulate_post("/api/v2/Identities", json=body)
    assert result.status_code == 201
    assert result.json["result"]["address"] == key.address("localhost")


def test_oversized_bodies_are_refused_before_reading(services: Services, tmp_path: Path) -> None:
    settings = settings_for_tests(services.settings.database_url, tmp_path, max_request_body_bytes=2048)
    small = build_services(settings, clock=services.clock)
    api = testing.TestClient(create_consumer_app(small))
    result = api.simulate_post("/api/v2/Identities", body=b"{" + b" " * 4096 + b"}")
    assert_error(result, 400, "error.platform.requestBodyTooLarge")
    small.close()


def test_invalid_ids_in_paths_are_400(api: testing.TestClient) -> None:
    account = onboard(api)
    for path in (
        "/api/v2/SyncRuns/SYR!!/ExternalEvents",
        "/api/v2/SyncRuns/CHLaaaaaaaaaaaaaaaaa",
        "/api/v2/SyncRuns/" + "SYR" + "a" * 30,
    ):
        assert_error(account.get(path, headers=DWV), 400, "error.platform.validation.invalidId")


def test_literal_segments_are_case_insensitive(api: testing.TestClient) -> None:
    account = onboard(api)
    assert account.get("/API/V2/identities/SELF").status_code == 200
    assert api.simulate_get("/api/v2/version").status_code == 200


def test_unknown_routes_and_methods_get_the_envelope(api: testing.TestClient) -> None:
    assert_error(api.simulate_get("/api/v2/NoSuchThing"), 404, "error.platform.routeNotFound")
    result = api.simulate_delete("/api/v2/Version")
    assert_error(result, 405, "error.platform.methodNotAllowed")
    assert "GET" in result.headers["Allow"]


def test_every_response_carries_timing_and_correlation_headers(api: testing.TestClient) -> None:
    result = api.simulate_get("/api/v2/Version", headers={"X-Correlation-ID": "corr-1"})
    assert TIME.match(result.headers["X-Request-Time"])
    assert TIME.match(result.headers["X-Response-Time"])
    assert int(result.headers["X-Response-Duration-ms"]) >= 0
    assert result.headers["X-Correlation-Id"] == "corr-1"
    assert api.simulate_get("/api/v2/NoSuchThing").headers["X-Correlation-Id"]


def test_datetimes_and_bytes_in_responses_use_the_wire_formats(api: testing.TestClient) -> None:
    account = onboard(api)
    modification = {
        "type": "Create",
        "objectIdentifier": "A",
        "collection": "C",
        "datawalletVersion": 1,
        "encryptedPayload": "+/8=",
    }
    account.post("/api/v2/Datawallet/Modifications", json={"modifications": [modification]}, headers=DWV)
    item = account.get("/api/v2/Datawallet/Modifications", headers=DWV).json["result"][0]
    assert TIME.match(item["createdAt"])
    assert item["encryptedPayload"] == "-_8"


def test_the_health_route_is_public(api: testing.TestClient) -> None:
    result = api.simulate_get("/health")
    assert result.status_code == 200
    assert result.text == "Healthy"


def test_an_unexpected_error_is_a_500_envelope_without_details(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = testing.TestClient(create_consumer_app(services))

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database on fire: password=hunter2")

    monkeypatch.setattr(services.challenges, "create", explode)
    result = api.simulate_post("/api/v2/Challenges", json={})
    error = assert_error(result, 500, "error.platform.unexpected")
    assert "hunter2" not in result.text
    assert error["message"] == "An unexpected error occurred."


def test_out_of_range_query_integers_are_refused_not_overflowed(api: testing.TestClient) -> None:
    account = onboard(api)
    huge = "9" * 25
    for query in ("pageNumber=2147483648", f"pageNumber={huge}", f"pageSize={huge}"):
        result = account.get("/api/v2/Messages", query_string=query)
        assert result.status_code == 400, f"{query}: {result.text}"
    assert_error(
        account.get("/api/v2/Datawallet/Modifications", query_string="localIndex=1" + "0" * 30, headers=DWV),
        400,
        "error.platform.inputCannotBeParsed",
    )


@pytest.mark.parametrize("expires_at", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"])
def test_datetimes_an_offset_moves_out_of_range_are_refused(api: testing.TestClient, expires_at: str) -> None:
    account = onboard(api)
    result = account.post("/api/v2/Tokens", json={"content": "AAAA", "expiresAt": expires_at})
    error = assert_error(result, 400, "error.platform.inputCannotBeParsed")
    assert error["message"].startswith("'expiresAt'")
