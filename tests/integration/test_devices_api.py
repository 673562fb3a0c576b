"""Devices of an identity through HTTP: second devices, backup devices, passwords, deletion, push."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from falcon import testing

from backbone.consumer_api import create_consumer_app
from backbone.modules.push_notifications.repository import pns_registrations
from backbone.platform.clock import ManualClock
from backbone.platform.events import outbox_events
from backbone.wiring import Services, build_services, seed
from loadtests.keys import IdentityKey, challenge_text
from tests.helpers.api import (
    PASSWORD,
    Account,
    add_device,
    assert_error,
    device_body,
    identity_body,
    login,
    new_challenge,
    onboard,
)
from tests.helpers.services import settings_for_tests

DEVICE_FIELDS = {"id", "username", "createdAt", "createdByDevice", "lastLogin", "communicationLanguage"}


def test_a_second_device_joins_the_identity_with_its_own_password(api: testing.TestClient) -> None:
    account = onboard(api)
    result = account.post("/api/v2/Devices", json=device_body(account, devicePassword="second-password"))
    assert result.status_code == 201, result.text
    created = result.json["result"]
    assert set(created) == {"id", "username", "createdAt", "createdByDevice", "isBackupDevice"}
    assert created["id"].startswith("DVC")
    assert len(created["id"]) == 20
    assert created["username"].startswith("USR")
    assert created["createdByDevice"] == account.device_id
    assert created["isBackupDevice"] is False

    assert login(api, created["username"], PASSWORD).json["error"] == "invalid_grant"
    token = login(api, created["username"], "second-password")
    assert token.status_code == 200
    second = {"Authorization": f"Bearer {token.json['access_token']}"}
    myself = api.simulate_get("/api/v2/Devices/Self", headers=second).json["result"]
    assert set(myself) == DEVICE_FIELDS | {"isBackupDevice"}
    assert myself["id"] == created["id"]
    assert myself["communicationLanguage"] == "en"
    assert myself["lastLogin"]["time"].endswith("Z")
    assert api.simulate_get("/api/v2/Identities/Self", headers=second).json["result"]["address"] == (
        account.address
    )


def test_the_challenge_must_be_signed_with_the_identitys_stored_key(api: testing.TestClient) -> None:
    account = onboard(api)
    challenge = challenge_text(new_challenge(api, account.headers))
    foreign = IdentityKey.generate().sign(challenge)
    body = device_body(account, signedChallenge={"challenge": challenge, "signature": foreign})
    assert_error(
        account.post("/api/v2/Devices", json=body), 400, "error.platform.validation.device.invalidSignature"
    )
    tampered = {
        "challenge": challenge.replace("Identity", "Device"),
        "signature": account.key.sign(challenge),
    }
    assert_error(
        account.post("/api/v2/Devices", json=device_body(account, signedChallenge=tampered)),
        400,
        "error.platform.validation.device.invalidSignature",
    )
    assert account.get("/api/v2/Devices").json["result"][0]["id"] == account.device_id
    assert len(account.get("/api/v2/Devices").json["result"]) == 1


def test_the_challenge_must_exist_and_be_fresh(api: testing.TestClient, clock: ManualClock) -> None:
    account = onboard(api)
    unknown = '{"expiresAt":"2030-01-01T00:00:00.000Z","id":"CHLnotanexistingone0","type":"Identity"}'
    signed = {"challenge": unknown, "signature": account.key.sign(unknown)}
    assert_error(
        account.post("/api/v2/Devices", json=device_body(account, signedChallenge=signed)),
        404,
        "error.platform.recordNotFound",
    )
    stale = device_body(account)
    clock.advance(timedelta(minutes=10, hours=1, seconds=1))
    account.log_in_again()
    assert_error(
        account.post("/api/v2/Devices", json=stale),
        400,
        "error.platform.validation.device.challengeHasExpired",
    )


def test_adding_a_device_needs_a_token_and_the_fields(api: testing.TestClient) -> None:
    account = onboard(api)
    assert api.simulate_post("/api/v2/Devices", json=device_body(account)).status_code == 401
    for missing in ("devicePassword", "signedChallenge"):
        body = device_body(account)
        del body[missing]
        error = assert_error(
            account.post("/api/v2/Devices", json=body), 400, "error.platform.validation.invalidPropertyValue"
        )
        assert f"'{missing}'" in error["message"]


def test_a_device_has_a_valid_communication_language(api: testing.TestClient) -> None:
    account = onboard(api)
    code = "error.platform.validation.invalidDeviceCommunicationLanguage"
    for language in ("xx", "english"):
        body = device_body(account, communicationLanguage=language)
        assert_error(account.post("/api/v2/Devices", json=body), 400, code)
        assert_error(account.put("/api/v2/Devices/Self", json={"communicationLanguage": language}), 400, code)
    german = add_device(account, log_in=False, communicationLanguage="de")
    assert (
        account.get("/api/v2/Devices", params={"ids": german.device_id}).json["result"][0][
            "communicationLanguage"
        ]
        == "de"
    )

    updated = account.put("/api/v2/Devices/Self", json={"communicationLanguage": "fr"})
    assert updated.status_code == 204
    assert updated.text == ""
    assert account.get("/api/v2/Devices/Self").json["result"]["communicationLanguage"] == "fr"
    assert_error(
        account.put("/api/v2/Devices/Self", json={}), 400, "error.platform.validation.invalidPropertyValue"
    )


def test_at_most_one_backup_device_which_turns_normal_on_first_login(
    api: testing.TestClient, services: Services
) -> None:
    account = onboard(api)
    backup = add_device(account, log_in=False, isBackupDevice=True)
    listed = account.get("/api/v2/Devices", params={"ids": backup.device_id}).json["result"]
    assert listed[0]["isBackupDevice"] is True
    assert_error(
        account.post("/api/v2/Devices", json=device_body(account, isBackupDevice=True)),
        400,
        "error.platform.validation.device.onlyOneBackupDeviceCanExist",
    )
    assert add_device(account, log_in=False, isBackupDevice=False).device_id.startswith("DVC")

    backup.log_in_again()
    assert backup.get("/api/v2/Devices/Self").json["result"]["isBackupDevice"] is False
    backup.log_in_again()
    assert _events_named(services, "BackupDeviceUsed") == [{"IdentityAddress": account.address}]
    # The used backup device is a normal one now, so a new backup device may be added.
    assert add_device(account, log_in=False, isBackupDevice=True).device_id.startswith("DVC")


def test_changing_the_password_needs_the_old_one(api: testing.TestClient) -> None:
    account = onboard(api)
    code = "error.platform.validation.device.changePasswordFailed"
    wrong = account.put("/api/v2/Devices/Self/Password", json={"oldPassword": "nope", "newPassword": "new!"})
    assert_error(wrong, 400, code)
    assert login(api, account.username, PASSWORD).status_code == 200

    changed = account.put(
        "/api/v2/Devices/Self/Password", json={"oldPassword": PASSWORD, "newPassword": "the new one"}
    )
    assert changed.status_code == 204
    assert changed.text == ""
    assert login(api, account.username, PASSWORD).json["error"] == "invalid_grant"
    assert login(api, account.username, "the new one").status_code == 200
    for body in (
        {"oldPassword": "the new one"},
        {"newPassword": "x"},
        {"oldPassword": "", "newPassword": "x"},
    ):
        assert_error(
            account.put("/api/v2/Devices/Self/Password", json=body),
            400,
            "error.platform.validation.invalidPropertyValue",
        )


@pytest.fixture
def production_api(database_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[testing.TestClient]:
    built = build_services(settings_for_tests(database_url, tmp_path, environment="production"), clock=clock)
    seed(built)
    built.clients.ensure("test", "test", "Basic")
    yield testing.TestClient(create_consumer_app(built))
    built.close()


def test_outside_development_new_passwords_must_be_strong(production_api: testing.TestClient) -> None:
    strong = "Str0ng-enough!"
    key = IdentityKey.generate()
    created = production_api.simulate_post(
        "/api/v2/Identities", json=identity_body(production_api, key, devicePassword=strong)
    ).json["result"]
    token = login(production_api, created["device"]["username"], strong).json["access_token"]
    account = Account(
        production_api,
        created["address"],
        created["device"]["id"],
        created["device"]["username"],
        strong,
        key,
    )
    account.headers = {"Authorization": f"Bearer {token}"}
    assert_error(
        account.put("/api/v2/Devices/Self/Password", json={"oldPassword": strong, "newPassword": "weak"}),
        400,
        "error.platform.validation.device.changePasswordFailed",
    )
    assert_error(
        account.post("/api/v2/Devices", json=device_body(account, devicePassword="weak")),
        400,
        "error.platform.validation.invalidPropertyValue",
    )
    assert add_device(account, devicePassword="An0ther-strong!").username.startswith("USR")


def test_only_never_logged_in_devices_of_the_own_identity_can_be_deleted(api: testing.TestClient) -> None:
    account, stranger = onboard(api), onboard(api)
    fresh = add_device(account, log_in=False)
    used = add_device(account)
    strangers_fresh = add_device(stranger, log_in=False)
    code = "error.platform.validation.device.deviceCannotBeDeleted"

    assert_error(account.delete(f"/api/v2/Devices/{used.device_id}"), 400, code)
    assert_error(account.delete(f"/api/v2/Devices/{account.device_id}"), 400, code)
    assert_error(account.delete(f"/api/v2/Devices/{strangers_fresh.device_id}"), 400, code)
    assert_error(account.delete("/api/v2/Devices/DVCnotanexistingone0"), 404, "error.platform.recordNotFound")
    assert_error(account.delete("/api/v2/Devices/nonsense"), 400, "error.platform.validation.invalidId")

    deleted = used.delete(f"/api/v2/Devices/{fresh.device_id}")
    assert deleted.status_code == 204
    assert deleted.text == ""
    remaining = {device["id"] for device in account.get("/api/v2/Devices").json["result"]}
    assert remaining == {account.device_id, used.device_id}
    assert login(api, fresh.username).json["error"] == "invalid_grant"
    assert_error(account.delete(f"/api/v2/Devices/{fresh.device_id}"), 404, "error.platform.recordNotFound")
    assert stranger.delete(f"/api/v2/Devices/{strangers_fresh.device_id}").status_code == 204


def test_devices_are_listed_in_pages_and_by_id(api: testing.TestClient, clock: ManualClock) -> None:
    account, stranger = onboard(api), onboard(api)
    added = []
    for _ in range(3):
        clock.advance(timedelta(seconds=1))
        added.append(add_device(account, log_in=False).device_id)
    everything = account.get("/api/v2/Devices").json
    assert "pagination" not in everything
    assert [device["id"] for device in everything["result"]] == [account.device_id, *added]
    assert everything["result"][0]["lastLogin"] is not None
    assert everything["result"][1]["lastLogin"] is None

    pages = [account.get("/api/v2/Devices", params={"pageSize": 3, "pageNumber": n}).json for n in (1, 2)]
    assert [len(page["result"]) for page in pages] == [3, 1]
    assert pages[1]["pagination"] == {"pageNumber": 2, "pageSize": 3, "totalPages": 2, "totalRecords": 4}

    picked = account.get(
        "/api/v2/Devices", query_string=f"ids={added[0]}&ids={added[2]}&ids={stranger.device_id}"
    ).json["result"]
    assert [device["id"] for device in picked] == [added[0], added[2]]
    assert_error(
        account.get("/api/v2/Devices", params={"pageSize": 201}),
        400,
        "error.platform.validation.pagination.invalidPageSize",
    )
    assert_error(
        account.get("/api/v2/Devices", params={"ids": "RELaaaaaaaaaaaaaaaaa"}),
        400,
        "error.platform.validation.invalidId",
    )


def test_a_push_registration_is_upserted_with_a_stable_identifier(
    api: testing.TestClient, services: Services
) -> None:
    account = onboard(api)
    body = {"platform": "fcm", "handle": "a-handle-of-the-fcm-service", "appId": "eu.enmeshed.app"}
    first = account.put("/api/v2/Devices/Self/PushNotifications", json=body)
    assert first.status_code == 200
    identifier = first.json["result"]["devicePushIdentifier"]
    assert identifier.startswith("DPI")
    assert len(identifier) == 20
    assert _registrations(services) == [
        (
            account.device_id,
            account.address,
            identifier,
            "fcm|a-handle-of-the-fcm-service",
            "eu.enmeshed.app",
            1,
        )
    ]

    moved = {
        "platform": "apns",
        "handle": "another-handle",
        "appId": "other.app",
        "environment": "Development",
    }
    again = account.put("/api/v2/Devices/Self/PushNotifications", json=moved).json["result"]
    assert again == {"devicePushIdentifier": identifier}
    assert _registrations(services) == [
        (account.device_id, account.address, identifier, "apns|another-handle", "other.app", 0)
    ]

    sse = {"platform": "sse", "handle": "ignored-for-sse", "appId": "connector"}
    assert account.put("/api/v2/Devices/Self/PushNotifications", json=sse).status_code == 200
    assert _registrations(services)[0][3] == "sse|"

    removed = account.delete("/api/v2/Devices/Self/PushNotifications")
    assert removed.status_code == 204
    assert removed.text == ""
    assert _registrations(services) == []
    assert account.delete("/api/v2/Devices/Self/PushNotifications").status_code == 204
    renewed = account.put("/api/v2/Devices/Self/PushNotifications", json={**body, "platform": "dummy"})
    assert renewed.json["result"]["devicePushIdentifier"] != identifier


def test_each_device_has_its_own_push_registration(api: testing.TestClient, services: Services) -> None:
    account = onboard(api)
    second = add_device(account)
    body = {"platform": "dummy", "handle": "0123456789", "appId": "app"}
    identifiers = {
        device.put("/api/v2/Devices/Self/PushNotifications", json=body).json["result"]["devicePushIdentifier"]
        for device in (account, second)
    }
    assert len(identifiers) == 2
    assert {row[0] for row in _registrations(services)} == {account.device_id, second.device_id}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"platform": "gcm"}, "error.platform.validation.invalidPnsPlatform"),
        ({"platform": "FCM"}, "error.platform.validation.invalidPnsPlatform"),
        ({"handle": "too-short"}, "error.platform.validation.invalidPropertyValue"),
        ({"handle": "h" * 501}, "error.platform.validation.invalidPropertyValue"),
        ({"appId": ""}, "error.platform.validation.invalidPropertyValue"),
        ({"environment": "Staging"}, "error.platform.validation.invalidPropertyValue"),
        ({"platform": None}, "error.platform.validation.invalidPropertyValue"),
        ({"handle": 12345678901}, "error.platform.inputCannotBeParsed"),
    ],
)
def test_push_registrations_are_validated(
    api: testing.TestClient, change: dict[str, object], code: str
) -> None:
    account = onboard(api)
    body = {"platform": "fcm", "handle": "h" * 500, "appId": "app", "environment": "Production", **change}
    assert_error(account.put("/api/v2/Devices/Self/PushNotifications", json=body), 400, code)


def test_repeated_wrong_passwords_lock_only_that_device(api: testing.TestClient, clock: ManualClock) -> None:
    account = onboard(api)
    second = add_device(account, log_in=False)
    for _ in range(3):
        assert login(api, second.username, "wrong").json["error"] == "invalid_grant"
    assert login(api, second.username).json["error"] == "access_denied"
    assert login(api, account.username).status_code == 200
    clock.advance(timedelta(seconds=61))
    assert login(api, second.username).status_code == 200


def _events_named(services: Services, name: str) -> list[object]:
    import orjson

    with services.db.engine.connect() as connection:
        rows = connection.execute(sa.select(outbox_events.c.payload).where(outbox_events.c.name == name))
        return [orjson.loads(row.payload) for row in rows]


def _registrations(services: Services) -> list[tuple[object, ...]]:
    table = pns_registrations
    columns = (
        table.c.device_id,
        table.c.identity_address,
        table.c.device_push_identifier,
        table.c.handle,
        table.c.app_id,
        table.c.environment,
    )
    with services.db.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.select(*columns).order_by(table.c.device_id))]
