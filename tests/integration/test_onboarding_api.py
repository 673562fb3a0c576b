"""Onboarding through HTTP: challenges, identities, tokens, the identity and device of the caller."""

from __future__ import annotations

from datetime import timedelta

import pytest
from falcon import testing

from backbone.platform.clock import ManualClock
from backbone.platform.crypto import is_valid_address
from backbone.wiring import Services
from loadtests.keys import IdentityKey, challenge_text
from tests.helpers.api import PASSWORD, assert_error, identity_body, login, new_challenge, onboard


def test_an_anonymous_challenge_lives_ten_minutes(api: testing.TestClient, clock: ManualClock) -> None:
    result = api.simulate_post("/api/v2/Challenges", json={})
    assert result.status_code == 201
    challenge = result.json["result"]
    assert challenge["id"].startswith("CHL")
    assert len(challenge["id"]) == 20
    assert challenge["expiresAt"] == (clock.now() + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert challenge["createdBy"] is None
    assert challenge["createdByDevice"] is None


def test_an_authenticated_challenge_names_its_creator(api: testing.TestClient) -> None:
    account = onboard(api)
    created = account.post("/api/v2/Challenges", json={}).json["result"]
    assert created["createdBy"] == account.address
    assert created["createdByDevice"] == account.device_id
    fetched = account.get(f"/api/v2/Challenges/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json["result"] == created


def test_reading_a_challenge_needs_a_token_and_an_existing_unexpired_id(
    api: testing.TestClient, clock: ManualClock
) -> None:
    account = onboard(api)
    challenge = new_challenge(api)
    assert api.simulate_get(f"/api/v2/Challenges/{challenge['id']}").status_code == 401
    assert_error(account.get("/api/v2/Challenges/CHLdoesnotexist00000"), 404, "error.platform.recordNotFound")
    assert_error(account.get("/api/v2/Challenges/nonsense"), 400, "error.platform.validation.invalidId")
    clock.advance(timedelta(minutes=10, hours=1))
    account.log_in_again()
    assert_error(account.get(f"/api/v2/Challenges/{challenge['id']}"), 404, "error.platform.recordNotFound")


def test_onboarding_creates_identity_and_device(api: testing.TestClient, services: Services) -> None:
    key = IdentityKey.generate()
    result = api.simulate_post("/api/v2/Identities", json=identity_body(api, key))
    assert result.status_code == 201, result.text
    created = result.json["result"]
    assert created["address"] == key.address("localhost")
    assert is_valid_address(created["address"])
    assert created["device"]["id"].startswith("DVC")
    assert created["device"]["username"].startswith("USR")
    token = login(api, created["device"]["username"])
    assert token.status_code == 200
    assert token.json["token_type"] == "Bearer"
    assert token.json["expires_in"] == 300
    headers = {"Authorization": f"Bearer {token.json['access_token']}"}
    me = api.simulate_get("/api/v2/Identities/Self", headers=headers).json["result"]
    assert me == {
        "address": created["address"],
        "createdAt": created["createdAt"],
        "identityVersion": 1,
        "tierId": services.tiers.find_by_name_or_id("Basic").id,  # type: ignore[union-attr]
        "status": "Active",
        "deletionGracePeriodEndsAt": None,
    }
    device = api.simulate_get("/api/v2/Devices/Self", headers=headers).json["result"]
    assert device["id"] == created["device"]["id"]
    assert device["username"] == created["device"]["username"]
    assert device["createdByDevice"] == device["id"]
    assert device["communicationLanguage"] == "en"
    assert device["isBackupDevice"] is False
    assert device["lastLogin"]["time"] is not None


def test_the_address_uses_the_configured_did_domain(services: Services, tmp_path: object) -> None:
    from backbone.consumer_api import create_consumer_app
    from tests.helpers.services import settings_for_tests

    settings = settings_for_tests(
        services.settings.database_url, services.settings.var_dir, did_domain="enmeshed.example.org"
    )
    from backbone.wiring import build_services

    other = build_services(settings, clock=services.clock)
    api = testing.TestClient(create_consumer_app(other))
    key = IdentityKey.generate()
    result = api.simulate_post("/api/v2/Identities", json=identity_body(api, key))
    assert result.json["result"]["address"] == key.address("enmeshed.example.org")
    other.close()


def test_a_bad_signature_is_refused(api: testing.TestClient) -> None:
    key, impostor = IdentityKey.generate(), IdentityKey.generate()
    body = identity_body(api, key)
    body["signedChallenge"]["signature"] = impostor.sign(body["signedChallenge"]["challenge"])
    assert_error(
        api.simulate_post("/api/v2/Identities", json=body),
        400,
        "error.platform.validation.device.invalidSignature",
    )


def test_an_unknown_challenge_is_not_found(api: testing.TestClient) -> None:
    key = IdentityKey.generate()
    challenge = challenge_text({"id": "CHLunknownunknown000", "expiresAt": "2030-01-01T00:00:00.000Z"})
    body = identity_body(api, key, signedChallenge={"challenge": challenge, "signature": key.sign(challenge)})
    error = assert_error(
        api.simulate_post("/api/v2/Identities", json=body), 404, "error.platform.recordNotFound"
    )
    assert error["message"].startswith("Challenge not found.")


def test_an_expired_challenge_is_refused_an_hour_after_its_expiry(
    api: testing.TestClient, clock: ManualClock
) -> None:
    key = IdentityKey.generate()
    body = identity_body(api, key)
    clock.advance(timedelta(minutes=10, hours=1))
    assert_error(
        api.simulate_post("/api/v2/Identities", json=body),
        400,
        "error.platform.validation.device.challengeHasExpired",
    )


def test_a_challenge_is_still_accepted_within_the_hour_after_expiry(
    api: testing.TestClient, clock: ManualClock
) -> None:
    body = identity_body(api, IdentityKey.generate())
    clock.advance(timedelta(minutes=69))
    assert api.simulate_post("/api/v2/Identities", json=body).status_code == 201


def test_an_existing_address_is_refused(api: testing.TestClient) -> None:
    key = IdentityKey.generate()
    assert api.simulate_post("/api/v2/Identities", json=identity_body(api, key)).status_code == 201
    assert_error(
        api.simulate_post("/api/v2/Identities", json=identity_body(api, key)),
        400,
        "error.platform.validation.device.addressAlreadyExists",
    )


@pytest.mark.parametrize(("client_id", "secret"), [("test", "wrong"), ("nobody", "test")])
def test_a_wrong_client_is_unauthorized_with_400(
    api: testing.TestClient, client_id: str, secret: str
) -> None:
    body = identity_body(api, IdentityKey.generate(), clientId=client_id, clientSecret=secret)
    assert_error(api.simulate_post("/api/v2/Identities", json=body), 400, "error.platform.unauthorized")


def test_malformed_key_material_and_languages_are_refused(api: testing.TestClient) -> None:
    key = IdentityKey.generate()
    body = identity_body(api, key, identityPublicKey="eyJhbGciOjN9")  # {"alg":3}
    assert_error(
        api.simulate_post("/api/v2/Identities", json=body),
        400,
        "error.platform.validation.device.invalidPublicKeyFormat",
    )
    body = identity_body(api, key, deviceCommunicationLanguage="xx")
    assert_error(
        api.simulate_post("/api/v2/Identities", json=body),
        400,
        "error.platform.validation.invalidDeviceCommunicationLanguage",
    )


@pytest.mark.parametrize(
    "missing", ["clientId", "identityPublicKey", "devicePassword", "signedChallenge", "identityVersion"]
)
def test_missing_fields_are_named(api: testing.TestClient, missing: str) -> None:
    body = identity_body(api, IdentityKey.generate())
    del body[missing]
    error = assert_error(
        api.simulate_post("/api/v2/Identities", json=body),
        400,
        "error.platform.validation.invalidPropertyValue",
    )
    assert f"'{missing}'" in error["message"]


def test_wrong_passwords_are_invalid_grants_and_lock_the_device(
    api: testing.TestClient, clock: ManualClock
) -> None:
    account = onboard(api)
    for _ in range(3):
        result = login(api, account.username, "wrong")
        assert result.status_code == 400
        assert result.json["error"] == "invalid_grant"
    locked = login(api, account.username, PASSWORD)
    assert locked.status_code == 400
    assert locked.json["error"] == "access_denied"
    clock.advance(timedelta(seconds=61))
    assert login(api, account.username, PASSWORD).status_code == 200


def test_token_requests_are_checked(api: testing.TestClient) -> None:
    account = onboard(api)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    wrong_client = api.simulate_post(
        "/connect/token",
        body=f"grant_type=password&client_id=test&client_secret=nope&username={account.username}&password={PASSWORD}",
        headers=form,
    )
    assert wrong_client.status_code == 400
    assert wrong_client.json["error"] == "invalid_client"
    unknown_user = login(api, "USRnobodynobodynobod")
    assert unknown_user.json["error"] == "invalid_grant"
    for body in (
        "grant_type=client_credentials&client_id=test&client_secret=test",
        "grant_type=password&client_id=test",
    ):
        assert_error(
            api.simulate_post("/connect/token", body=body, headers=form),
            400,
            "error.platform.validation.authentication.invalidOAuthRequest",
        )


def test_passwords_with_special_characters_arrive_url_encoded(api: testing.TestClient) -> None:
    password = "a+b c&d=e!?,;:#%"
    body = identity_body(api, IdentityKey.generate(), devicePassword=password)
    created = api.simulate_post("/api/v2/Identities", json=body).json["result"]
    from urllib.parse import quote

    assert login(api, created["device"]["username"], quote(password, safe="")).status_code == 200


def test_missing_expired_and_garbage_tokens_get_401(api: testing.TestClient, clock: ManualClock) -> None:
    account = onboard(api)
    assert account.get("/api/v2/Identities/Self").status_code == 200
    no_token = api.simulate_get("/api/v2/Identities/Self")
    assert_error(no_token, 401, "error.platform.unauthorized")
    assert no_token.headers["WWW-Authenticate"].startswith("Bearer")
    garbage = api.simulate_get("/api/v2/Identities/Self", headers={"Authorization": "Bearer garbage"})
    assert garbage.status_code == 401
    clock.advance(timedelta(seconds=301))
    assert account.get("/api/v2/Identities/Self").status_code == 401


def test_is_deleted_answers_anonymously(api: testing.TestClient) -> None:
    account = onboard(api)
    result = api.simulate_get("/api/v2/Identities/IsDeleted", params={"username": account.username})
    assert result.json["result"] == {"isDeleted": False, "deletionDate": None}
    assert_error(
        api.simulate_get("/api/v2/Identities/IsDeleted", params={"username": "nobody"}),
        400,
        "error.platform.validation.invalidPropertyValue",
    )


def test_version_and_tags(api: testing.TestClient) -> None:
    assert api.simulate_get("/api/v2/Version").json == {"result": {"majorVersion": "7"}}
    tags = api.simulate_get("/api/v2/Tags")
    assert tags.status_code == 200
    assert tags.json["result"]["supportedLanguages"] == ["de", "en"]
    etag = tags.headers["ETag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    cached = api.simulate_get("/api/v2/Tags", headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert api.simulate_get("/api/v2/Tags", headers={"If-None-Match": '"other"'}).status_code == 200
