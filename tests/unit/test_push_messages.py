"""What the connectors send, built from a notification, and how one delivery retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime as http_date

import httpx
import pytest
from prometheus_client import CollectorRegistry

from backbone.platform.push import NotificationText, PushNotification, PushOutcome
from backbone.platform.push.apns import apns_headers, apns_payload, apns_reason
from backbone.platform.push.delivery import Delivery, DeliveryOptions, Verdict, retry_after_s
from backbone.platform.push.fcm import fcm_error_code, fcm_message
from backbone.platform.push.metrics import PushMetrics

SENT_AT = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def notification(**overrides: object) -> PushNotification:
    values: dict[str, object] = {
        "name": "DatawalletModificationsCreated",
        "device_id": "DVCaaaaaaaaaaaaaaaaa",
        "identity_address": "did:e:localhost:dids:0123456789abcdef012345",
        "device_push_identifier": "DPIaaaaaaaaaaaaaaaaa",
        "platform": "apns",
        "handle": "0a1b2c3d",
        "app_id": "eu.example.app",
        "environment": "Production",
        "sent_at": SENT_AT,
        "payload": {"createdByDevice": "DVCbbbbbbbbbbbbbbbbb"},
        "collapse_id": "DatawalletModified",
    }
    values.update(overrides)
    return PushNotification(**values)  # type: ignore[arg-type]


CONTENT = {
    "accRef": "did:e:localhost:dids:0123456789abcdef012345",
    "devicePushIdentifier": "DPIaaaaaaaaaaaaaaaaa",
    "eventName": "DatawalletModificationsCreated",
    "sentAt": "2026-03-01T12:00:00.123Z",
    "payload": {"createdByDevice": "DVCbbbbbbbbbbbbbbbbb"},
}


def test_a_push_without_a_text_is_a_background_push_with_content_only() -> None:
    silent = notification()
    assert apns_headers(silent) == {
        "apns-topic": "eu.example.app",
        "apns-push-type": "background",
        "apns-priority": "5",
        "apns-expiration": "0",
        "apns-collapse-id": "DatawalletModified",
    }
    assert apns_payload(silent) == {"aps": {"content-available": 1}, "content": CONTENT}
    message = fcm_message(silent)["message"]
    assert "notification" not in message
    assert message["android"] == {
        "collapse_key": "DatawalletModified",
        "notification": {"channel_id": "ENMESHED", "tag": "DatawalletModified"},
    }


def test_the_handle_is_left_out_of_a_notifications_repr() -> None:
    assert "0a1b2c3d" not in repr(notification())
    assert "DVCaaaaaaaaaaaaaaaaa" in repr(notification())


def test_a_push_with_text_and_no_content_is_an_alert() -> None:
    text = NotificationText("Hello", "World")
    alert = notification(text=text, payload=None, collapse_id=None)
    assert apns_headers(alert)["apns-push-type"] == "alert"
    assert "apns-collapse-id" not in apns_headers(alert)
    assert apns_payload(alert) == {"aps": {"alert": {"title": "Hello", "body": "World"}}}
    assert fcm_message(alert)["message"]["data"] == {"android_channel_id": "ENMESHED"}


def response(status: int, body: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_the_services_reasons_are_read_and_anything_else_becomes_the_status() -> None:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]
    assert (
        fcm_error_code(response(404, {"error": {"status": "NOT_FOUND", "details": details}}))
        == "UNREGISTERED"
    )
    assert fcm_error_code(response(503, {"error": {"status": "UNAVAILABLE"}})) == "UNAVAILABLE"
    assert fcm_error_code(response(502, "<html>bad gateway</html>")) == "http_502"
    assert fcm_error_code(response(400, {"error": {"status": "a label with spaces"}})) == "http_400"
    assert apns_reason(response(410, {"reason": "Unregistered", "timestamp": 1})) == "Unregistered"
    assert apns_reason(response(500, {"reason": 42})) == "http_500"


def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    assert retry_after_s(response(429, headers={"Retry-After": "7"})) == 7.0
    later = http_date(datetime.now(UTC) + timedelta(seconds=100), usegmt=True)
    waited = retry_after_s(response(503, headers={"Retry-After": later}))
    assert waited is not None
    assert 90 < waited <= 100
    assert retry_after_s(response(503, headers={"Retry-After": "soon"})) is None
    assert retry_after_s(response(503)) is None


class Attempts:
    """Answers one verdict (or raises) per attempt, in order."""

    def __init__(self, *answers: Verdict | Exception) -> None:
        self.answers = list(answers)
        self.count = 0

    def __call__(self) -> Verdict:
        answer = self.answers[self.count]
        self.count += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


def delivery(waits: list[float], registry: CollectorRegistry, **options: float) -> Delivery:
    return Delivery("fcm", DeliveryOptions(**options), PushMetrics(registry), sleep=waits.append)  # type: ignore[arg-type]


def busy(after_s: float | None = None) -> Verdict:
    return Verdict(PushOutcome.failed, "UNAVAILABLE", retry=True, retry_after_s=after_s)


def test_busy_answers_and_network_errors_are_retried_with_growing_waits() -> None:
    waits: list[float] = []
    registry = CollectorRegistry()
    attempts = Attempts(httpx.ConnectTimeout("slow"), httpx.ConnectError("refused"), busy(), busy())
    outcome = delivery(waits, registry, max_attempts=4, first_backoff_s=1.0).run(notification(), attempts)
    assert (outcome, attempts.count) == (PushOutcome.failed, 4)
    assert len(waits) == 3
    assert 0.5 <= waits[0] <= 1.0
    assert 1.0 <= waits[1] <= 2.0
    assert 2.0 <= waits[2] <= 4.0
    for reason, count in (("timeout", 1), ("connection", 1), ("UNAVAILABLE", 1)):
        labels = {"platform": "fcm", "reason": reason}
        assert registry.get_sample_value("backbone_push_retries_total", labels) == count
    errors = {"event_name": "DatawalletModificationsCreated", "platform": "fcm", "reason": "UNAVAILABLE"}
    assert registry.get_sample_value("enmeshed_push_notifications_send_errors_total", errors) == 1


def test_a_retry_after_is_honoured_up_to_the_bound() -> None:
    waits: list[float] = []
    registry = CollectorRegistry()
    attempts = Attempts(busy(3.0), Verdict(PushOutcome.delivered))
    assert (
        delivery(waits, registry, max_retry_wait_s=5.0).run(notification(), attempts) is PushOutcome.delivered
    )
    assert waits == [3.0]
    too_long = Attempts(busy(30.0))
    bounded = delivery(waits, CollectorRegistry(), max_retry_wait_s=5.0)
    assert bounded.run(notification(), too_long) is PushOutcome.failed
    assert (too_long.count, waits) == (1, [3.0])


@pytest.mark.parametrize("outcome", [PushOutcome.handle_gone, PushOutcome.failed])
def test_a_final_refusal_is_not_retried(outcome: PushOutcome) -> None:
    waits: list[float] = []
    attempts = Attempts(Verdict(outcome, "SENDER_ID_MISMATCH"))
    assert delivery(waits, CollectorRegistry()).run(notification(), attempts) is outcome
    assert (attempts.count, waits) == (1, [])
