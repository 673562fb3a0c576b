"""What the HTTP connectors share: their HTTP/2 client, and one delivery with bounded retries,
its log line and its metrics."""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import certifi
import httpx

from backbone.platform.push import PushNotification, PushOutcome
from backbone.platform.push.metrics import PushMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryOptions:
    """How the connectors talk to push services (settings `BACKBONE_PUSH_*`)."""

    # Each request (connect, write, read); a token exchange is a request too.
    timeout_s: float = 5.0
    # Requests per notification when the service answers 429 or 5xx or cannot be reached.
    max_attempts: int = 3
    # The longest wait before a retry; a Retry-After beyond it ends the delivery as failed.
    max_retry_wait_s: float = 10.0
    first_backoff_s: float = 0.5
    # Trusted besides the public CAs (a test CA, or a proxy's).
    ca_file: Path | None = None


@dataclass(frozen=True)
class Verdict:
    """How one request went: the outcome, the push service's reason, and whether to try again."""

    outcome: PushOutcome
    reason: str = ""
    retry: bool = False
    retry_after_s: float | None = None


DELIVERED = Verdict(PushOutcome.delivered)


class LazyHttpClient:
    """An HTTP/2 client made on first use: after gunicorn forks, each worker has its own."""

    def __init__(self, options: DeliveryOptions) -> None:
        self._options = options
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def get(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                quiet_http_client_logs()
                context = ssl.create_default_context(cafile=certifi.where())
                if self._options.ca_file is not None:
                    context.load_verify_locations(cafile=str(self._options.ca_file))
                self._client = httpx.Client(http2=True, timeout=self._options.timeout_s, verify=context)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def quiet_http_client_logs() -> None:
    """httpx logs every request's URL at INFO, and an APNs URL ends in the device's token."""
    for name in ("httpx", "httpcore", "hpack", "h2"):
        logging.getLogger(name).setLevel(logging.WARNING)


class Delivery:
    """Deliver one notification with bounded retries, then log and count how it went."""

    def __init__(
        self,
        platform: str,
        options: DeliveryOptions,
        metrics: PushMetrics | None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._platform = platform
        self._options = options
        self._metrics = metrics
        self._sleep = sleep

    def run(self, notification: PushNotification, attempt: Callable[[], Verdict]) -> PushOutcome:
        started = time.perf_counter()
        verdict = self._with_retries(attempt)
        if self._metrics is not None:
            self._metrics.send_duration.labels(self._platform).observe(time.perf_counter() - started)
            if verdict.outcome is PushOutcome.delivered:
                self._metrics.sent.labels(notification.name, self._platform).inc()
            else:
                self._metrics.send_errors.labels(notification.name, self._platform, verdict.reason).inc()
        level = logging.WARNING if verdict.outcome is PushOutcome.failed else logging.DEBUG
        log.log(
            level,
            "push %s to device %s (%s, app %s): %s",
            notification.name,
            notification.device_id,
            self._platform,
            notification.app_id,
            verdict.outcome.value + (f" ({verdict.reason})" if verdict.reason else ""),
        )
        return verdict.outcome

    def _with_retries(self, attempt: Callable[[], Verdict]) -> Verdict:
        for number in range(1, self._options.max_attempts + 1):
            try:
                verdict = attempt()
            except httpx.TimeoutException:
                verdict = Verdict(PushOutcome.failed, "timeout", retry=True)
            except httpx.TransportError:
                verdict = Verdict(PushOutcome.failed, "connection", retry=True)
            if not verdict.retry or number == self._options.max_attempts:
                return verdict
            wait_s = verdict.retry_after_s if verdict.retry_after_s is not None else self._backoff_s(number)
            if wait_s > self._options.max_retry_wait_s:
                return verdict
            if self._metrics is not None:
                self._metrics.retries.labels(self._platform, verdict.reason).inc()
            self._sleep(wait_s)
        raise AssertionError("unreachable: the last attempt returns")

    def _backoff_s(self, attempt: int) -> float:
        # Exponential with jitter, so the devices of one batch do not retry in step.
        return float(self._options.first_backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.0))


def retry_after_s(response: httpx.Response) -> float | None:
    """The response's Retry-After in seconds (it may be a number or an HTTP date), or None."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def refused(response: httpx.Response, reason: str) -> Verdict:
    """A refusal to retry when the service is busy (429) or failing (5xx), after its Retry-After."""
    status = response.status_code
    return Verdict(
        PushOutcome.failed,
        reason,
        retry=status == 429 or status >= 500,
        retry_after_s=retry_after_s(response),
    )


def http_reason(status: int) -> str:
    return f"http_{status}"
