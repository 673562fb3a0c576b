"""The FCM and APNs connectors against fake push services on loopback (HTTP/2 over TLS with a test
CA), driven through the Consumer API with registered devices: the protocol (token exchange,
provider token, headers, payload per kind of notification), the test notification, deleting a
registration the service no longer knows, bounded retries, the metrics, and no credential in
any log line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from falcon import testing

from backbone.consumer_api import create_consumer_app
from backbone.platform.clock import ManualClock
from backbone.platform.encoding import format_datetime
from backbone.settings import Settings
from backbone.wiring import Services, build_services, seed
from tests.helpers.api import Account, assert_error, onboard
from tests.helpers.peers import relate, send_message
from tests.helpers.push_services import Answer, FakeApns, FakeFcm, serving
from tests.helpers.services import FAST_HASH_ITERATIONS, fresh_sqlite

APP = "eu.example.wallet"
PROJECT = "example-wallet"
CLIENT_EMAIL = "backbone@example-wallet.iam.gserviceaccount.com"
TEAM_ID = "TEAM123456"
APNS_KEY_ID = "KEY9876543"
FCM_KEY_ID = "0123456789abcdef0123456789abcdef01234567"
REGISTER = "/api/v2/Devices/Self/PushNotifications"
SEND_TEST = "/api/v2/Devices/Self/PushNotifications/SendTestNotification"
NOTIFICATION_TEXTS = {
    "Notifications": {
        "Texts": [
            {
                "Code": "NewOffer",
                "Translations": {
                    "en": {"Title": "A new offer", "Body": "Have a look."},
                    "de": {"Title": "Ein neues Angebot", "Body": "Schauen Sie es sich an."},
                },
            }
        ]
    }
}


@dataclass
class Push:
    """A backbone whose connectors talk to the fakes, its Consumer API, and the fakes."""

    services: Services
    api: testing.TestClient
    fcm: FakeFcm
    apns: FakeApns
    apns_production_port: int
    apns_sandbox_port: int
    # Everything that must never appear in a log line.
    secrets: list[str]

    def metric(self, name: str, **labels: str) -> float:
        return self.services.metrics_registry.get_sample_value(name, labels) or 0.0

    def registered_platforms(self) -> dict[str, str]:
        return self.services.push.platforms_by_device()


@pytest.fixture(scope="module")
def keys() -> tuple[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048), ec.generate_private_key(
        ec.SECP256R1()
    )


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


@pytest.fixture
def push(
    tmp_path: Path,
    sqlite_template: Path,
    keys: tuple[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey],
    caplog: pytest.LogCaptureFixture,
) -> Iterator[Push]:
    fcm_key, apns_key = keys
    ca = trustme.CA()
    fcm = FakeFcm(
        client_email=CLIENT_EMAIL, key_id=FCM_KEY_ID, public_key=fcm_key.public_key(), project_id=PROJECT
    )
    apns = FakeApns(team_id=TEAM_ID, key_id=APNS_KEY_ID, public_key=apns_key.public_key(), topic=APP)
    caplog.set_level(logging.DEBUG)
    with (
        serving(fcm, ca, tmp_path) as [fcm_port],
        serving(apns, ca, tmp_path, ports=2) as [production_port, sandbox_port],
    ):
        fcm.token_uri = f"https://127.0.0.1:{fcm_port}/token"
        (tmp_path / "secrets").mkdir()
        account = {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": FCM_KEY_ID,
            "private_key": _pem(fcm_key),
            "client_email": CLIENT_EMAIL,
            "token_uri": fcm.token_uri,
        }
        (tmp_path / "secrets" / "fcm.json").write_text(json.dumps(account))
        (tmp_path / "secrets" / f"AuthKey_{APNS_KEY_ID}.p8").write_text(_pem(apns_key))
        providers = {
            "Fcm": {
                "ServiceAccounts": {"main": {"ServiceAccountFile": "secrets/fcm.json"}},
                "Apps": {APP: {"ServiceAccountName": "main"}},
            },
            "Apns": {
                "Keys": {
                    "main": {
                        "TeamId": TEAM_ID,
                        "KeyId": APNS_KEY_ID,
                        "PrivateKeyFile": f"secrets/AuthKey_{APNS_KEY_ID}.p8",
                    }
                },
                "Bundles": {APP: {"KeyName": "main"}},
            },
        }
        (tmp_path / "push.json").write_text(json.dumps(providers))
        (tmp_path / "apps.json").write_text(json.dumps(NOTIFICATION_TEXTS))
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        settings = Settings.from_env(
            {
                "BACKBONE_ENVIRONMENT": "development",
                "BACKBONE_DATABASE_URL": fresh_sqlite(sqlite_template, tmp_path),
                "BACKBONE_VAR_DIR": str(tmp_path),
                "BACKBONE_JWT_SIGNING_KEY": "k" * 32,
                "BACKBONE_PASSWORD_HASH_ITERATIONS": str(FAST_HASH_ITERATIONS),
                "BACKBONE_APPS_FILE": str(tmp_path / "apps.json"),
                "BACKBONE_PUSH_FILE": str(tmp_path / "push.json"),
                "BACKBONE_PUSH_CA_FILE": str(tmp_path / "ca.pem"),
                "BACKBONE_PUSH_FCM_URL": f"https://127.0.0.1:{fcm_port}",
                "BACKBONE_PUSH_APNS_PRODUCTION_URL": f"https://127.0.0.1:{production_port}",
                "BACKBONE_PUSH_APNS_DEVELOPMENT_URL": f"https://127.0.0.1:{sandbox_port}",
            }
        )
        services = build_services(settings, clock=ManualClock())
        seed(services)
        key_lines = [line for key in (fcm_key, apns_key) for line in _pem(key).splitlines()[1:-1]]
        landscape = Push(
            services,
            testing.TestClient(create_consumer_app(services)),
            fcm,
            apns,
            production_port,
            sandbox_port,
            secrets=key_lines,
        )
        try:
            yield landscape
        finally:
            services.close()
    # What was sent with the requests: the access tokens, the provider tokens, the devices' handles.
    sent = fcm.access_tokens + sorted(apns.provider_tokens)
    sent += [item.body["message"]["token"] for item in fcm.received] + [
        item.path[10:] for item in apns.received
    ]
    # In teardown `caplog.text` holds only the teardown's lines: read the test's own records.
    logged = "\n".join(
        record.getMessage() for when in ("setup", "call") for record in caplog.get_records(when)
    )
    assert "push" in logged, "the check reads the test's log lines"
    leaked = [secret[:12] + "..." for secret in landscape.secrets + sent if secret in logged]
    assert leaked == [], "credentials in the log"
    assert fcm.problems == []
    assert apns.problems == []


def register(account: Account, platform: str, handle: str, **fields: Any) -> str:
    result = account.put(REGISTER, json={"platform": platform, "handle": handle, "appId": APP, **fields})
    assert result.status_code == 200, result.text
    return str(result.json["result"]["devicePushIdentifier"])


def test_the_test_notification_reaches_fcm_after_the_token_exchange(push: Push) -> None:
    account = onboard(push.api)
    assert account.put("/api/v2/Devices/Self", json={"communicationLanguage": "de"}).status_code == 204
    handle = "fcm-token-of-the-device-1"
    identifier = register(account, "fcm", handle)

    assert account.post(SEND_TEST, json={"hello": ["world", 1]}).status_code == 204
    assert account.post(SEND_TEST, json="again").status_code == 204

    assert [claims["iss"] for claims in push.fcm.assertions] == [CLIENT_EMAIL], "one exchange, then reused"
    claims = push.fcm.assertions[0]
    assert claims["aud"] == push.fcm.token_uri
    assert claims["exp"] - claims["iat"] == 3600
    first, second = push.fcm.to(handle)
    assert first.http_version == "2"
    assert first.headers["authorization"] == f"Bearer {push.fcm.access_tokens[0]}"
    message = first.body["message"]
    content = json.loads(message["data"].pop("content"))
    assert message == {
        "token": handle,
        "notification": {"title": "Test", "body": "Eine Testbenachrichtigung des Backbones."},
        "android": {"notification": {"channel_id": "ENMESHED"}},
        "data": {"android_channel_id": "ENMESHED", "content-available": "1"},
    }
    assert content == {
        "accRef": account.address,
        "devicePushIdentifier": identifier,
        "eventName": "Test",
        "sentAt": format_datetime(push.services.clock.now()),
        "payload": {"data": {"hello": ["world", 1]}},
    }
    assert json.loads(second.body["message"]["data"]["content"])["payload"] == {"data": "again"}
    assert push.metric("enmeshed_push_notifications_sent_total", event_name="Test", platform="fcm") == 2
    assert push.metric("backbone_push_send_duration_seconds_count", platform="fcm") == 2


def test_the_test_notification_reaches_apns_over_http2_in_the_registered_environment(push: Push) -> None:
    production, development = onboard(push.api), onboard(push.api)
    register(production, "apns", "a1b2c3d4e5f6a1b2c3d4e5f6")
    identifier = register(development, "apns", "f6e5d4c3b2a1f6e5d4c3b2a1", environment="Development")

    assert production.post(SEND_TEST, json={}).status_code == 204
    assert development.post(SEND_TEST, json={"n": 1}).status_code == 204

    [to_production] = push.apns.to("a1b2c3d4e5f6a1b2c3d4e5f6")
    [to_sandbox] = push.apns.to("f6e5d4c3b2a1f6e5d4c3b2a1")
    assert (to_production.port, to_sandbox.port) == (push.apns_production_port, push.apns_sandbox_port)
    assert to_sandbox.http_version == "2"
    assert to_sandbox.token_header == {"alg": "ES256", "kid": APNS_KEY_ID, "typ": "JWT"}
    assert to_sandbox.token_claims["iss"] == TEAM_ID
    headers = {name: value for name, value in to_sandbox.headers.items() if name.startswith("apns-")}
    assert headers == {
        "apns-topic": APP,
        "apns-push-type": "alert",
        "apns-priority": "5",
        "apns-expiration": "0",
    }
    assert to_sandbox.body == {
        "aps": {
            "content-available": 1,
            "alert": {"title": "Test", "body": "A test notification from the backbone."},
        },
        "content": {
            "accRef": development.address,
            "devicePushIdentifier": identifier,
            "eventName": "Test",
            "sentAt": format_datetime(push.services.clock.now()),
            "payload": {"data": {"n": 1}},
        },
    }
    # One provider token serves every push until it is renewed.
    assert len(push.apns.provider_tokens) == 1


def test_each_kind_of_notification_has_its_collapse_id_and_content(push: Push) -> None:
    sender, android, iphone = onboard(push.api), onboard(push.api), onboard(push.api)
    for recipient in (android, iphone):
        relate(recipient, sender)
    register(android, "fcm", "fcm-token-of-the-device-2")
    register(iphone, "apns", "0a0b0c0d0e0f0a0b0c0d0e0f")

    assert send_message(sender, android, iphone).status_code == 201
    notified = sender.post(
        "/api/v2/Notifications", json={"recipients": [android.address, iphone.address], "code": "NewOffer"}
    )
    assert notified.status_code == 204, notified.text

    # Relating pushed too (relationship events): the last two pushes are the message's and the notification's.
    message_fcm, offer_fcm = push.fcm.to("fcm-token-of-the-device-2")[-2:]
    assert message_fcm.body["message"]["android"] == {
        "collapse_key": "ExternalEventCreated",
        "notification": {"channel_id": "ENMESHED", "tag": "ExternalEventCreated"},
    }
    assert json.loads(message_fcm.body["message"]["data"]["content"])["eventName"] == "ExternalEventCreated"
    # A notification between identities has texts but no content.
    assert offer_fcm.body["message"]["data"] == {"android_channel_id": "ENMESHED"}
    assert offer_fcm.body["message"]["notification"] == {"title": "A new offer", "body": "Have a look."}
    assert offer_fcm.body["message"]["android"]["collapse_key"] == "notification_NewOffer"

    message_apns, offer_apns = push.apns.to("0a0b0c0d0e0f0a0b0c0d0e0f")[-2:]
    assert message_apns.headers["apns-collapse-id"] == "ExternalEventCreated"
    assert message_apns.body["content"]["eventName"] == "ExternalEventCreated"
    assert offer_apns.headers["apns-collapse-id"] == "notification_NewOffer"
    assert offer_apns.headers["apns-push-type"] == "alert"
    assert offer_apns.body == {"aps": {"alert": {"title": "A new offer", "body": "Have a look."}}}


@pytest.mark.parametrize(
    ("platform", "handle", "answer", "reason"),
    [
        (
            "fcm",
            "fcm-token-unregistered",
            Answer(
                404,
                {
                    "error": {
                        "code": 404,
                        "status": "NOT_FOUND",
                        "details": [
                            {
                                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                "errorCode": "UNREGISTERED",
                            }
                        ],
                    }
                },
            ),
            "UNREGISTERED",
        ),
        (
            "fcm",
            "fcm-token-malformed",
            Answer(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT"}}),
            "INVALID_ARGUMENT",
        ),
        (
            "apns",
            "0123456789abcdef0123",
            Answer(410, {"reason": "Unregistered", "timestamp": 1}),
            "Unregistered",
        ),
        ("apns", "fedcba9876543210fedc", Answer(400, {"reason": "BadDeviceToken"}), "BadDeviceToken"),
    ],
)
def test_a_registration_the_service_no_longer_knows_is_deleted(
    push: Push, platform: str, handle: str, answer: Answer, reason: str
) -> None:
    gone, other = onboard(push.api), onboard(push.api)
    register(gone, platform, handle)
    register(other, platform, handle + "-other")
    getattr(push, platform).answer(handle, answer)

    assert gone.post(SEND_TEST, json={}).status_code == 204

    assert gone.device_id not in push.registered_platforms()
    assert push.registered_platforms()[other.device_id] == platform
    assert (
        push.metric(
            "enmeshed_push_notifications_send_errors_total",
            event_name="Test",
            platform=platform,
            reason=reason,
        )
        == 1
    )


def test_a_busy_service_is_retried_then_the_push_counts_as_failed(push: Push) -> None:
    account = onboard(push.api)
    register(account, "apns", "abcdefabcdefabcdefabcdef")
    unavailable = Answer(503, {"reason": "ServiceUnavailable"}, (("retry-after", "0"),))
    push.apns.answer("abcdefabcdefabcdefabcdef", unavailable, times=3)

    assert account.post(SEND_TEST, json={}).status_code == 204

    assert len(push.apns.to("abcdefabcdefabcdefabcdef")) == 3, "the default of three attempts"
    assert push.registered_platforms()[account.device_id] == "apns", "a failure keeps the registration"
    errors = push.metric(
        "enmeshed_push_notifications_send_errors_total",
        event_name="Test",
        platform="apns",
        reason="ServiceUnavailable",
    )
    assert errors == 1
    assert push.metric("backbone_push_retries_total", platform="apns", reason="ServiceUnavailable") == 2
    assert push.metric("enmeshed_push_notifications_sent_total", event_name="Test", platform="apns") == 0

    # A service that recovers within the attempts gets the push.
    push.apns.answer("abcdefabcdefabcdefabcdef", unavailable, times=2)
    assert account.post(SEND_TEST, json={}).status_code == 204
    assert push.metric("enmeshed_push_notifications_sent_total", event_name="Test", platform="apns") == 1


def test_a_retry_after_beyond_the_bound_is_not_waited_for(push: Push) -> None:
    account = onboard(push.api)
    register(account, "fcm", "fcm-token-of-a-busy-project")
    quota = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}
    push.fcm.answer("fcm-token-of-a-busy-project", Answer(429, quota, (("retry-after", "3600"),)))

    assert account.post(SEND_TEST, json={}).status_code == 204

    assert len(push.fcm.to("fcm-token-of-a-busy-project")) == 1
    assert (
        push.metric(
            "enmeshed_push_notifications_send_errors_total",
            event_name="Test",
            platform="fcm",
            reason="RESOURCE_EXHAUSTED",
        )
        == 1
    )


def test_a_revoked_access_token_is_exchanged_anew(push: Push) -> None:
    account = onboard(push.api)
    register(account, "fcm", "fcm-token-of-the-device-3")
    push.fcm.answer(
        "fcm-token-of-the-device-3", Answer(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
    )

    assert account.post(SEND_TEST, json={}).status_code == 204

    assert len(push.fcm.assertions) == 2
    first, second = push.fcm.to("fcm-token-of-the-device-3")
    assert first.headers["authorization"] != second.headers["authorization"]
    assert push.metric("enmeshed_push_notifications_sent_total", event_name="Test", platform="fcm") == 1


def test_registrations_name_a_configured_app_and_the_test_route_needs_a_body(push: Push) -> None:
    account = onboard(push.api)
    refused = account.put(
        REGISTER, json={"platform": "apns", "handle": "0123456789abcdef", "appId": "eu.other.app"}
    )
    error = assert_error(refused, 400, "error.platform.unsupportedAppId")
    assert APP in error["message"]
    # `dummy` only logs: any app id.
    dummy = account.put(REGISTER, json={"platform": "dummy", "handle": "0123456789", "appId": "any"})
    assert dummy.status_code == 200
    assert account.post(SEND_TEST, json={}).status_code == 204
    assert push.metric("enmeshed_push_notifications_sent_total", event_name="Test", platform="dummy") == 1
    assert_error(account.post(SEND_TEST), 400, "error.platform.inputCannotBeParsed")
    assert_error(account.post(SEND_TEST, body="null"), 400, "error.platform.inputCannotBeParsed")
    assert push.api.simulate_post(SEND_TEST, json={}).status_code == 401
    # A device without a registration gets nothing and the call still succeeds.
    assert onboard(push.api).post(SEND_TEST, json={}).status_code == 204
