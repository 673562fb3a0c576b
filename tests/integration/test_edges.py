"""The edges an attacker or a careless client tries, on SQLite and PostgreSQL (docs/decisions.md, Edges).

Text the database cannot store on the routes where it once reached PostgreSQL, chunked bodies,
the login lockout's counting, unknown usernames' cost, malformed token claims and the bound
parameters a server error's log line must not carry.
"""

from __future__ import annotations

import base64
import logging
import struct
from datetime import timedelta
from pathlib import Path
from typing import Any

import falcon
import jwt
import pytest
from falcon import testing

from backbone.consumer_api import create_consumer_app
from backbone.modules.devices.model import LoginFailed
from backbone.modules.devices.repository import IdentityRepository
from backbone.modules.devices.service import LoginService
from backbone.modules.tiers.repository import tiers
from backbone.platform.auth import PasswordHasher
from backbone.platform.clock import ManualClock
from backbone.platform.db import Database
from backbone.wiring import Services, build_services
from loadtests.keys import IdentityKey
from tests.helpers.api import DWV, PASSWORD, Account, assert_error, identity_body, login, onboard
from tests.helpers.services import FAST_HASH_ITERATIONS, settings_for_tests

INVALID_PROPERTY_VALUE = "error.platform.validation.invalidPropertyValue"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


# --- text the database cannot store --------------------------------------------------------


def _token_form(**fields: str) -> str:
    values = {"grant_type": "password", "client_id": "test", "client_secret": "test", **fields}
    return "&".join(f"{name}={value}" for name, value in values.items())


@pytest.mark.parametrize("field", ["username", "client_id"])
def test_nul_in_a_token_request_is_refused_without_logging_in(api: testing.TestClient, field: str) -> None:
    account = onboard(api)
    fields = {"username": account.username, "password": PASSWORD, "client_id": "test"}
    fields[field] += "%00"
    result = api.simulate_post("/connect/token", body=_token_form(**fields), headers=FORM)
    error = assert_error(result, 400, INVALID_PROPERTY_VALUE)
    assert f"'{field}'" in error["message"]


def test_nul_in_an_onboarding_client_id_is_refused_and_creates_nothing(
    api: testing.TestClient, services: Services
) -> None:
    key = IdentityKey.generate()
    result = api.simulate_post("/api/v2/Identities", json=identity_body(api, key, clientId="test\x00"))
    assert_error(result, 400, INVALID_PROPERTY_VALUE)
    assert services.clients.count_identities("test") == 0


@pytest.mark.parametrize("field", ["handle", "appId"])
def test_nul_in_a_push_registration_is_refused(api: testing.TestClient, field: str) -> None:
    account = onboard(api)
    registration = {"platform": "fcm", "handle": "a-push-handle-of-a-phone", "appId": "eu.enmeshed.app"}
    registration[field] += "\x00"
    assert_error(
        account.put("/api/v2/Devices/Self/PushNotifications", json=registration), 400, INVALID_PROPERTY_VALUE
    )


def _modification(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "Create",
        "objectIdentifier": "OBJ1",
        "collection": "Relationships",
        "payloadCategory": "Userdata",
        "encryptedPayload": "eyJjcGgiOiJhYmMifQ",
        "datawalletVersion": 1,
        **overrides,
    }


@pytest.mark.parametrize("field", ["objectIdentifier", "collection", "payloadCategory"])
def test_nul_in_a_datawallet_modification_is_refused_and_stores_nothing(
    api: testing.TestClient, field: str
) -> None:
    account = onboard(api)
    body = {"localIndex": None, "modifications": [_modification(**{field: "some\x00thing"})]}
    error = assert_error(
        account.post("/api/v2/Datawallet/Modifications", json=body, headers=DWV), 400, INVALID_PROPERTY_VALUE
    )
    assert f"'modifications[0].{field}'" in error["message"]
    assert account.get("/api/v2/Datawallet/Modifications", headers=DWV).json["result"] == []


def test_nul_in_a_query_parameter_or_path_field_is_refused(api: testing.TestClient) -> None:
    account = onboard(api)
    assert_error(
        api.simulate_get("/api/v2/Identities/IsDeleted", query_string="username=USR%00"),
        400,
        INVALID_PROPERTY_VALUE,
    )
    assert_error(account.get("/api/v2/Messages/MSG%00"), 400, INVALID_PROPERTY_VALUE)


def test_nul_in_a_property_name_is_refused(api: testing.TestClient) -> None:
    account = onboard(api)
    body = {"localIndex": None, "modifications": [_modification()], "ex\x00tra": 1}
    assert_error(
        account.post("/api/v2/Datawallet/Modifications", json=body, headers=DWV), 400, INVALID_PROPERTY_VALUE
    )


def test_an_unpaired_surrogate_cannot_be_parsed(api: testing.TestClient) -> None:
    account = onboard(api)
    body = (
        b'{"localIndex": null, "modifications": [{"type": "Create", "objectIdentifier": "\\ud800", '
        b'"collection": "c", "datawalletVersion": 1}]}'
    )
    result = account.post(
        "/api/v2/Datawallet/Modifications", body=body, headers={**DWV, "Content-Type": "application/json"}
    )
    assert_error(result, 400, "error.platform.inputCannotBeParsed")


def test_other_control_characters_are_stored_and_answered_as_sent(api: testing.TestClient) -> None:
    account = onboard(api)
    collection = "tab\there, bell\x07, escape\x1b, delete\x7f, next line\x85"
    body = {"localIndex": None, "modifications": [_modification(collection=collection)]}
    assert account.post("/api/v2/Datawallet/Modifications", json=body, headers=DWV).status_code == 201
    stored = account.get("/api/v2/Datawallet/Modifications", headers=DWV).json["result"]
    assert [item["collection"] for item in stored] == [collection]


# --- chunked bodies --------------------------------------------------------------------------


def _chunked(account: Account, method: str, path: str, body: bytes, **headers: str) -> testing.Result:
    """As gunicorn hands a chunked body to the app: no Content-Length, the body already joined."""
    return account.api.simulate_request(
        method,
        path,
        body=body,
        headers={
            **account.headers,
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
            **headers,
        },
        extras={"CONTENT_LENGTH": ""},
    )


def test_a_chunked_body_is_read(api: testing.TestClient, clock: ManualClock) -> None:
    account = onboard(api)
    started = _chunked(
        account, "POST", "/api/v2/Identities/Self/DeletionProcesses", b'{"lengthOfGracePeriodInDays": 1}'
    )
    assert started.status_code == 201, started.text
    ends_at = started.json["result"]["gracePeriodEndsAt"]
    assert ends_at == (clock.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_a_chunked_sync_run_request_starts_the_type_it_names(api: testing.TestClient) -> None:
    account = onboard(api, with_datawallet=False)
    run = _chunked(account, "POST", "/api/v2/SyncRuns", b'{"type": "DatawalletVersionUpgrade"}', **DWV)
    assert run.status_code == 201, run.text
    assert run.json["result"]["syncRun"]["type"] == "DatawalletVersionUpgrade"


def test_a_chunked_body_over_the_limit_is_refused(services: Services, tmp_path: Path) -> None:
    settings = settings_for_tests(services.settings.database_url, tmp_path, max_request_body_bytes=4096)
    small = build_services(settings, clock=services.clock)
    try:
        api = testing.TestClient(create_consumer_app(small))
        account = onboard(api)
        body = b'{"lengthOfGracePeriodInDays": 1, "padding": "' + b"x" * 5000 + b'"}'
        result = _chunked(account, "POST", "/api/v2/Identities/Self/DeletionProcesses", body)
        assert_error(result, 400, "error.platform.requestBodyTooLarge")
        assert account.get("/api/v2/Identities/Self/DeletionProcesses").json["result"] == []
    finally:
        small.close()


def test_a_chunked_token_request_logs_in(api: testing.TestClient) -> None:
    account = onboard(api)
    form = _token_form(username=account.username, password=PASSWORD).encode()
    result = _chunked(account, "POST", "/connect/token", form, **FORM)
    assert result.status_code == 200, result.text


# --- the login lockout and unknown usernames -----------------------------------------------


def test_a_success_resets_the_count_and_an_ended_lockout_counts_afresh(
    api: testing.TestClient, clock: ManualClock
) -> None:
    account = onboard(api)
    for password in ("wrong", "wrong", PASSWORD, "wrong", "wrong"):
        login(api, account.username, password)
    assert login(api, account.username).status_code == 200
    for _ in range(3):
        assert login(api, account.username, "wrong").json["error"] == "invalid_grant"
    assert login(api, account.username).json["error"] == "access_denied"
    clock.advance(timedelta(seconds=61))
    for _ in range(3):
        assert login(api, account.username, "wrong").json["error"] == "invalid_grant"
    assert login(api, account.username).json["error"] == "access_denied"


class CountingHasher(PasswordHasher):
    """Counts the checks and the cost of each stored hash it checks against."""

    def __init__(self, iterations: int) -> None:
        super().__init__(iterations)
        self.checked_costs: list[int] = []

    def verify(self, password: str, stored: str) -> bool:
        self.checked_costs.append(struct.unpack(">I", base64.b64decode(stored)[5:9])[0])
        return super().verify(password, stored)


def test_an_unknown_username_costs_one_hash_of_the_configured_cost(
    api: testing.TestClient, services: Services
) -> None:
    account = onboard(api)  # its password hashed at FAST_HASH_ITERATIONS
    configured = 2 * FAST_HASH_ITERATIONS
    hasher = CountingHasher(configured)
    logins = LoginService(
        services.db,
        IdentityRepository(),
        services.clients,
        hasher,
        services.access_tokens,
        services.outbox,
        services.clock,
        max_failed_logins=3,
        lockout=timedelta(minutes=1),
    )
    for username in ("USRnobodynobodynobod", account.username):
        with pytest.raises(LoginFailed, match="username/password"):
            logins.issue_token("test", "test", username, "wrong")
    assert hasher.checked_costs == [configured, FAST_HASH_ITERATIONS]


# --- token claims ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"nmshd_address": ["did:e:localhost:dids:0123456789abcdef012345"]},
        {"nmshd_address": "not an address"},
        {"device_id": 7},
        {"device_id": "not a device id"},
        {"client_id": {"id": "test"}},
        {"name": None},
        {"exp": "9999999999"},
        {"exp": 9_999_999_999.5},
    ],
    ids=lambda claims: "-".join(f"{name}={type(value).__name__}" for name, value in claims.items()),
)
def test_a_signed_token_with_a_malformed_claim_gets_401(
    api: testing.TestClient, services: Services, claims: dict[str, Any]
) -> None:
    account = onboard(api)
    good = jwt.decode(account.token, options={"verify_signature": False})
    forged = jwt.encode({**good, **claims}, services.settings.jwt_signing_key, algorithm="HS256")
    headers = {"Authorization": f"Bearer {forged}", **DWV}
    for result in (
        api.simulate_get("/api/v2/Messages", headers=headers),
        api.simulate_post("/api/v2/SyncRuns", json={}, headers=headers),
    ):
        assert_error(result, 401, "error.platform.unauthorized")


# --- bound parameters in a server error's log ------------------------------------------------

SECRET = "a-password-hash-nobody-may-see"


class ForcedServerError:
    """Writes the same tier twice, the second time named with the secret: a 500 from the database."""

    anonymous_methods = frozenset({"POST"})

    def __init__(self, db: Database) -> None:
        self._db = db

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        row = {
            "id": "TIRforcedservererror",
            "can_be_used_as_default_for_client": False,
            "can_be_manually_assigned": False,
        }
        with self._db.transaction() as connection:
            connection.execute(tiers.insert(), {**row, "name": "forced"})
            connection.execute(tiers.insert(), {**row, "name": SECRET})


def test_a_server_error_logs_no_bound_parameter(services: Services, caplog: pytest.LogCaptureFixture) -> None:
    app = create_consumer_app(services)
    app.add_route("/forced-server-error", ForcedServerError(services.db))
    with caplog.at_level(logging.ERROR):
        result = testing.TestClient(app).simulate_post("/forced-server-error")
    assert_error(result, 500, "error.platform.unexpected")
    assert "INSERT INTO tiers" in caplog.text  # the error was logged, with its statement
    assert "hide_parameters=True" in caplog.text
    assert SECRET not in caplog.text
    assert SECRET not in result.text


# --- paging ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "prefix"),
    [
        ("/api/v2/Relationships", "REL"),
        ("/api/v2/Messages", "MSG"),
        ("/api/v2/Tokens", "TOK"),
        ("/api/v2/Devices", "DVC"),
        ("/api/v2/Files", "FIL"),
    ],
)
def test_the_last_possible_page_is_an_empty_page(api: testing.TestClient, path: str, prefix: str) -> None:
    # Its offset, (2**31 - 2) * 200, is beyond a 32-bit integer: PostgreSQL refused it as a parameter.
    account = onboard(api)
    query = f"pageNumber=2147483647&pageSize=200&ids={prefix}{'a' * 17}"
    result = account.get(path, query_string=query, headers=DWV)
    assert result.status_code == 200, result.text
    assert result.json["result"] == []
