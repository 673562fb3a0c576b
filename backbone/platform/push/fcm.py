"""Firebase Cloud Messaging: the HTTP v1 API (`messages:send`) with a service account's access
token, which a signed assertion (RS256 JWT) buys at the account's `token_uri` (OAuth 2.0 JWT
bearer grant)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from backbone.platform.push import ANDROID_CHANNEL, PushNotification, PushOutcome
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

PLATFORM = "fcm"
DEFAULT_URL = "https://fcm.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME_S = 3600
# A token is renewed this long before it expires, so no request carries one that expires in flight.
TOKEN_RENEWAL_MARGIN_S = 300
# Error codes (FcmError's errorCode) that mean the device's token is no longer valid. The original
# treats INVALID_ARGUMENT as one too (the service's answer to a malformed token).
GONE = frozenset({"UNREGISTERED", "INVALID_ARGUMENT"})
_ERROR_CODE = re.compile(r"^[A-Z_]{1,40}$")


@dataclass(frozen=True)
class ServiceAccount:
    """What FCM needs of a service-account file."""

    project_id: str
    client_email: str
    private_key_id: str
    private_key: RSAPrivateKey = field(repr=False)
    token_uri: str


class TokenUnavailable(Exception):
    """The token endpoint did not hand out an access token; `verdict` says whether to retry."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


class AccessTokens:
    """Each service account's access token, kept until shortly before it expires."""

    def __init__(self, http: LazyHttpClient, *, clock: Callable[[], float] = time.time) -> None:
        self._http = http
        self._clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, account: ServiceAccount) -> str:
        # One exchange at a time: the threads of a batch wait for the first one's token.
        with self._lock:
            kept = self._tokens.get(account.client_email)
            if kept is not None and self._clock() < kept[1]:
                return kept[0]
            token, expires_in_s = self._exchange(account)
            renew_at = self._clock() + expires_in_s - TOKEN_RENEWAL_MARGIN_S
            self._tokens[account.client_email] = (token, renew_at)
            return token

    def forget(self, account: ServiceAccount) -> None:
        with self._lock:
            self._tokens.pop(account.client_email, None)

    def _exchange(self, account: ServiceAccount) -> tuple[str, float]:
        now = int(self._clock())
        assertion = jwt.encode(
            {
                "iss": account.client_email,
                "scope": SCOPE,
                "aud": account.token_uri,
                "iat": now,
                "exp": now + ASSERTION_LIFETIME_S,
            },
            account.private_key,
            algorithm="RS256",
            headers={"kid": account.private_key_id},
        )
        response = self._http.get().post(
            account.token_uri, data={"grant_type": JWT_BEARER_GRANT, "assertion": assertion}
        )
        if not response.is_success:
            raise TokenUnavailable(refused(response, f"token_{http_reason(response.status_code)}"))
        try:
            answer = response.json()
            return str(answer["access_token"]), float(answer.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise TokenUnavailable(Verdict(PushOutcome.failed, "token_unreadable")) from None


class FcmConnector:
    """Deliver notifications to Android (and other FCM) devices, with the service account of
    their app (the registration's app id)."""

    def __init__(
        self,
        accounts_by_app: Mapping[str, ServiceAccount],
        options: DeliveryOptions,
        metrics: PushMetrics | None,
        *,
        base_url: str = DEFAULT_URL,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._accounts = dict(accounts_by_app)
        self._base_url = base_url.rstrip("/")
        self._http = LazyHttpClient(options)
        self._tokens = AccessTokens(self._http)
        self._delivery = Delivery(PLATFORM, options, metrics, sleep=sleep)

    def supported_app_ids(self) -> frozenset[str] | None:
        return frozenset(self._accounts)

    def close(self) -> None:
        self._http.close()

    def send(self, notification: PushNotification) -> PushOutcome:
        account = self._accounts.get(notification.app_id)
        if account is None:
            # Registered before the app's credentials were removed from the configuration.
            return self._delivery.run(notification, lambda: Verdict(PushOutcome.failed, "unsupported_app"))
        body = fcm_message(notification)
        url = f"{self._base_url}/v1/projects/{account.project_id}/messages:send"
        return self._delivery.run(notification, lambda: self._attempt(account, url, body))

    def _attempt(self, account: ServiceAccount, url: str, body: dict[str, Any]) -> Verdict:
        try:
            token = self._tokens.get(account)
        except TokenUnavailable as unavailable:
            return unavailable.verdict
        response = self._http.get().post(url, json=body, headers={"authorization": f"Bearer {token}"})
        if response.is_success:
            return DELIVERED
        code = fcm_error_code(response)
        if code in GONE:
            return Verdict(PushOutcome.handle_gone, code)
        if response.status_code == 401:
            # The token was revoked or expired early: the next attempt exchanges a new one.
            self._tokens.forget(account)
            return Verdict(PushOutcome.failed, code, retry=True, retry_after_s=0.0)
        return refused(response, code)


def fcm_message(notification: PushNotification) -> dict[str, Any]:
    """The `messages:send` body: the original's Android channel, texts, content and collapse key."""
    android_notification: dict[str, Any] = {"channel_id": ANDROID_CHANNEL}
    android: dict[str, Any] = {"notification": android_notification}
    data = {"android_channel_id": ANDROID_CHANNEL}
    message: dict[str, Any] = {"token": notification.handle, "android": android, "data": data}
    if notification.text is not None:
        message["notification"] = {"title": notification.text.title, "body": notification.text.body}
    content = notification.content()
    if content is not None:
        # FCM data values are strings: the content travels as JSON text.
        data["content"] = orjson.dumps(content).decode()
        data["content-available"] = "1"
    if notification.collapse_id is not None:
        android["collapse_key"] = notification.collapse_id
        android_notification["tag"] = notification.collapse_id
    return {"message": message}


def fcm_error_code(response: httpx.Response) -> str:
    """FCM's error code of a refused request (`UNREGISTERED`, `QUOTA_EXCEEDED`, ...)."""
    try:
        error = response.json()["error"]
        details = error.get("details") or []
        codes = [d.get("errorCode") for d in details if str(d.get("@type", "")).endswith(".FcmError")]
        code = codes[0] if codes and codes[0] else error.get("status")
    except (ValueError, KeyError, TypeError, AttributeError):
        code = None
    return code if isinstance(code, str) and _ERROR_CODE.match(code) else http_reason(response.status_code)
