"""Apple Push Notification service: HTTP/2 requests authenticated by an ES256 provider token,
to the sandbox or the production endpoint as the device registered."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

from backbone.platform.push import PushNotification, PushOutcome
from backbone.platform.push.delivery import (
    DELIVERED,
    Delivery,
    DeliveryOptions,
    LazyHttpClient,
    Verdict,
    http_reason,
    refused,
)
from backbone.platform.push.metrics import PushMetrics

PLATFORM = "apns"
PRODUCTION_URL = "https://api.push.apple.com"
DEVELOPMENT_URL = "https://api.sandbox.push.apple.com"
# APNs refuses provider tokens older than an hour and renewals more often than every 20 minutes.
PROVIDER_TOKEN_LIFETIME_S = 40 * 60
# The original's: low priority (the only one APNs allows for background pushes), no storing.
PRIORITY = "5"
EXPIRATION = "0"
# Reasons that mean the device's token is no longer valid (410 is always Unregistered).
GONE = frozenset({"Unregistered", "BadDeviceToken"})
# APNs took this provider token for expired: a new one is signed and the request repeated.
EXPIRED_TOKEN = "ExpiredProviderToken"  # noqa: S105 - a reason APNs answers, not a secret
_REASON = re.compile(r"^[A-Za-z]{1,40}$")


@dataclass(frozen=True)
class ApnsKey:
    """A key for token-based authentication (a `.p8` file), with its key id and team id."""

    team_id: str
    key_id: str
    private_key: EllipticCurvePrivateKey = field(repr=False)


class ProviderTokens:
    """The provider token of each key, signed anew once it is 40 minutes old."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: ApnsKey) -> str:
        with self._lock:
            now = self._clock()
            kept = self._tokens.get((key.team_id, key.key_id))
            if kept is not None and now < kept[1]:
                return kept[0]
            token = jwt.encode(
                {"iss": key.team_id, "iat": int(now)},
                key.private_key,
                algorithm="ES256",
                headers={"kid": key.key_id},
            )
            self._tokens[(key.team_id, key.key_id)] = (token, now + PROVIDER_TOKEN_LIFETIME_S)
            return token

    def forget(self, key: ApnsKey) -> None:
        with self._lock:
            self._tokens.pop((key.team_id, key.key_id), None)


class ApnsConnector:
    """Deliver notifications to Apple devices, with the key configured for their app (the
    registration's app id is the bundle id, the request's topic)."""

    def __init__(
        self,
        keys_by_bundle: Mapping[str, ApnsKey],
        options: DeliveryOptions,
        metrics: PushMetrics | None,
        *,
        production_url: str = PRODUCTION_URL,
        development_url: str = DEVELOPMENT_URL,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._keys = dict(keys_by_bundle)
        self._urls = {"Production": production_url.rstrip("/"), "Development": development_url.rstrip("/")}
        self._http = LazyHttpClient(options)
        self._tokens = ProviderTokens()
        self._delivery = Delivery(PLATFORM, options, metrics, sleep=sleep)

    def supported_app_ids(self) -> frozenset[str] | None:
        return frozenset(self._keys)

    def close(self) -> None:
        self._http.close()

    def send(self, notification: PushNotification) -> PushOutcome:
        key = self._keys.get(notification.app_id)
        if key is None:
            return self._delivery.run(notification, lambda: Verdict(PushOutcome.failed, "unsupported_app"))
        base_url = self._urls.get(notification.environment, self._urls["Production"])
        url = f"{base_url}/3/device/{quote(notification.handle, safe='')}"
        headers = apns_headers(notification)
        body = orjson.dumps(apns_payload(notification))
        return self._delivery.run(notification, lambda: self._attempt(key, url, headers, body))

    def _attempt(self, key: ApnsKey, url: str, headers: dict[str, str], body: bytes) -> Verdict:
        authorization = {"authorization": f"bearer {self._tokens.get(key)}"}
        response = self._http.get().post(url, content=body, headers=headers | authorization)
        if response.is_success:
            return DELIVERED
        status = response.status_code
        reason = apns_reason(response)
        if status == 410 or reason in GONE:
            return Verdict(PushOutcome.handle_gone, reason)
        if reason == EXPIRED_TOKEN:
            self._tokens.forget(key)
            return Verdict(PushOutcome.failed, reason, retry=True, retry_after_s=0.0)
        return refused(response, reason)


def apns_headers(notification: PushNotification) -> dict[str, str]:
    """A push with a text is an alert; one without is a background push (content only)."""
    headers = {
        "apns-topic": notification.app_id,
        "apns-push-type": "alert" if notification.text is not None else "background",
        "apns-priority": PRIORITY,
        "apns-expiration": EXPIRATION,
    }
    if notification.collapse_id is not None:
        headers["apns-collapse-id"] = notification.collapse_id
    return headers


def apns_payload(notification: PushNotification) -> dict[str, Any]:
    """`{"aps": {"content-available": 1, "alert": {"title", "body"}}, "content": {...}}`, each
    part present when the notification has it."""
    aps: dict[str, Any] = {}
    payload: dict[str, Any] = {"aps": aps}
    content = notification.content()
    if content is not None:
        aps["content-available"] = 1
        payload["content"] = content
    if notification.text is not None:
        aps["alert"] = {"title": notification.text.title, "body": notification.text.body}
    return payload


def apns_reason(response: httpx.Response) -> str:
    """APNs' reason of a refused request (`BadDeviceToken`, `TooManyRequests`, ...)."""
    try:
        reason = response.json().get("reason")
    except (ValueError, AttributeError):
        reason = None
    return reason if isinstance(reason, str) and _REASON.match(reason) else http_reason(response.status_code)
