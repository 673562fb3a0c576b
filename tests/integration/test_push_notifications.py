"""Push notifications: the handlers send the original's notification names to registered devices,
`POST /api/v2/Notifications` sends configured codes to peers, and the log-only adapter never
writes a device's handle."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from falcon import testing

from backbone.apps_file import Apps, ConfiguredNotification, NotificationTranslation
from backbone.consumer_api import create_consumer_app
from backbone.platform.clock import ManualClock
from backbone.platform.push import InMemoryPushNotifier, LogConnector, PushNotification
from backbone.wiring import Services, build_services, seed
from tests.helpers.api import Account, assert_error, onboard
from tests.helpers.peers import relate, send_message
from tests.helpers.services import settings_for_tests

HANDLE = "a-secret-push-handle-of-this-device"
NOTIFICATION = "error.platform.validation.notification."


@pytest.fixture
def pushed() -> InMemoryPushNotifier:
    return InMemoryPushNotifier()


@pytest.fixture
def push_services(
    database_url: str, tmp_path: Path, clock: ManualClock, pushed: InMemoryPushNotifier
) -> Iterator[Services]:
    offer = ConfiguredNotification("NewOffer", (NotificationTranslation("en", "New offer", "Have a look."),))
    settings = settings_for_tests(database_url, tmp_path, apps=Apps(notifications=(offer,)))
    built = build_services(settings, clock=clock, push_notifier=pushed)
    seed(built)
    yield built
    built.close()


@pytest.fixture
def push_api(push_services: Services) -> testing.TestClient:
    return testing.TestClient(create_consumer_app(push_services))


def register(account: Account) -> None:
    result = account.put(
        "/api/v2/Devices/Self/PushNotifications", json={"platform": "fcm", "handle": HANDLE, "appId": "app"}
    )
    assert result.status_code == 200, result.text


def test_a_received_message_wakes_the_recipients_registered_devices(
    push_api: testing.TestClient, pushed: InMemoryPushNotifier
) -> None:
    sender, recipient = onboard(push_api), onboard(push_api)
    relate(recipient, sender)
    register(recipient)
    pushed.sent.clear()
    assert send_message(sender, recipient).status_code == 201
    assert [(p.name, p.device_id, p.platform) for p in pushed.sent] == [
        ("ExternalEventCreated", recipient.device_id, "fcm")
    ]


def test_notifications_go_to_peers_with_a_configured_code(
    push_api: testing.TestClient, pushed: InMemoryPushNotifier
) -> None:
    sender, peer, stranger = onboard(push_api), onboard(push_api), onboard(push_api)
    relate(peer, sender)
    register(peer)
    register(stranger)
    pushed.sent.clear()

    sent = sender.post("/api/v2/Notifications", json={"recipients": [peer.address], "code": "NewOffer"})
    assert sent.status_code == 204, sent.text
    assert [(p.name, p.device_id) for p in pushed.sent] == [("notification_NewOffer", peer.device_id)]

    pushed.sent.clear()
    assert_error(
        sender.post("/api/v2/Notifications", json={"recipients": [stranger.address], "code": "NewOffer"}),
        400,
        NOTIFICATION + "noRelationshipToOneOrMoreRecipientsExists",
    )
    assert_error(
        sender.post("/api/v2/Notifications", json={"recipients": [peer.address], "code": "Unknown"}),
        400,
        NOTIFICATION + "codeDoesNotExist",
    )
    assert_error(
        sender.post("/api/v2/Notifications", json={"recipients": [], "code": "NewOffer"}),
        400,
        "error.platform.validation.invalidPropertyValue",
    )
    assert_error(
        sender.post("/api/v2/Notifications", json={"recipients": "not a list", "code": "NewOffer"}),
        400,
        "error.platform.inputCannotBeParsed",
    )
    assert pushed.sent == []


def test_the_log_adapter_names_the_notification_and_device_but_never_the_handle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        LogConnector().send(
            PushNotification(
                name="ExternalEventCreated",
                device_id="DVCaaaaaaaaaaaaaaaaa",
                identity_address="did:e:localhost:dids:0123456789abcdef012345",
                device_push_identifier="DPIaaaaaaaaaaaaaaaaa",
                platform="fcm",
                handle=HANDLE,
                app_id="app",
                environment="Production",
                sent_at=datetime(2025, 1, 1, tzinfo=UTC),
            )
        )
    assert "ExternalEventCreated" in caplog.text
    assert "DVCaaaaaaaaaaaaaaaaa" in caplog.text
    assert HANDLE not in caplog.text
