"""Push notifications: the port the push notifications module sends through, the connectors behind
it chosen by each registration's platform, and the log-only connector.

A connector delivers one notification to one device and says how it went; `PushConnectors`
picks the connector of each notification's platform (`fcm`, `apns`, `sse`, `dummy`) and
sends a batch concurrently. A platform without a configured connector only logs, as `dummy`
does, so development mode needs no credentials.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from backbone.platform.encoding import format_datetime
from backbone.platform.push.metrics import PushMetrics

log = logging.getLogger(__name__)

# The Android notification channel the apps create; FCM messages name it.
ANDROID_CHANNEL = "ENMESHED"


@dataclass(frozen=True)
class NotificationText:
    title: str
    body: str


@dataclass(frozen=True)
class PushNotification:
    """One notification to one registered device; `name` is the original's notification name
    (its class name without `PushNotification`), which the apps read as `eventName`."""

    name: str
    device_id: str
    identity_address: str
    device_push_identifier: str
    platform: str
    # The push service's token of the device: never logged.
    handle: str = field(repr=False)
    app_id: str
    # "Development" (APNs sandbox) or "Production".
    environment: str
    sent_at: datetime
    # What the device shows; None: nothing to show (a silent push).
    text: NotificationText | None = None
    # What the app reads (the content's `payload`); None: the push has no content at all, as the
    # notifications identities send each other (`POST /api/v2/Notifications`).
    payload: Mapping[str, Any] | None = None
    # Notifications with the same id replace each other on the device.
    collapse_id: str | None = None

    def content(self) -> dict[str, Any] | None:
        """The content the apps read (FCM's data `content`, APNs' `content`), or None."""
        if self.payload is None:
            return None
        return {
            "accRef": self.identity_address,
            "devicePushIdentifier": self.device_push_identifier,
            "eventName": self.name,
            "sentAt": format_datetime(self.sent_at),
            "payload": dict(self.payload),
        }


class PushOutcome(Enum):
    delivered = "delivered"
    # The push service no longer knows the device's handle: its registration is deleted.
    handle_gone = "handle_gone"
    failed = "failed"


class PushConnector(Protocol):
    """Deliver notifications to the devices of one push platform."""

    def send(self, notification: PushNotification) -> PushOutcome: ...

    def supported_app_ids(self) -> frozenset[str] | None:
        """The app ids this connector has credentials for; None: it takes any."""
        ...

    def close(self) -> None:
        """Close its connections to the push service."""
        ...


class PushNotifier(Protocol):
    """The port: deliver a batch of notifications, each to its device's platform."""

    def send(self, notifications: Sequence[PushNotification]) -> list[PushOutcome]:
        """Deliver each notification; return the outcomes in the same order."""
        ...

    def supported_app_ids(self, platform: str) -> frozenset[str] | None:
        """The app ids a registration for `platform` may name; None: any."""
        ...

    def close(self) -> None: ...


class LogConnector:
    """Log that a notification would be sent, never the device's handle: the `dummy` platform,
    and every platform without credentials (development mode)."""

    def __init__(self, metrics: PushMetrics | None = None) -> None:
        # Only `dummy` counts its pushes as sent (as the original's dummy connector does): an FCM
        # or APNs push that was merely logged was not sent.
        self._metrics = metrics

    def send(self, notification: PushNotification) -> PushOutcome:
        log.info(
            "push %s to device %s (%s, app %s)",
            notification.name,
            notification.device_id,
            notification.platform,
            notification.app_id,
        )
        if self._metrics is not None:
            self._metrics.sent.labels(notification.name, notification.platform).inc()
        return PushOutcome.delivered

    def supported_app_ids(self) -> frozenset[str] | None:
        return None

    def close(self) -> None:
        """Nothing to close."""


class PushConnectors:
    """The connector of each platform (one registry, so a new platform is one more entry); a
    batch is sent concurrently, at most `concurrency` notifications at a time."""

    def __init__(
        self, connectors: Mapping[str, PushConnector], *, fallback: PushConnector, concurrency: int = 8
    ) -> None:
        self._connectors = dict(connectors)
        self._fallback = fallback
        self._concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def connector(self, platform: str) -> PushConnector:
        return self._connectors.get(platform, self._fallback)

    def supported_app_ids(self, platform: str) -> frozenset[str] | None:
        return self.connector(platform).supported_app_ids()

    def send(self, notifications: Sequence[PushNotification]) -> list[PushOutcome]:
        if len(notifications) <= 1 or self._concurrency == 1:
            return [self._send_one(notification) for notification in notifications]
        return list(self._executor().map(self._send_one, notifications))

    def _send_one(self, notification: PushNotification) -> PushOutcome:
        try:
            return self.connector(notification.platform).send(notification)
        except Exception:
            # A connector's bug must not fail the event handler (whose retry would push twice).
            log.exception("push %s to device %s failed", notification.name, notification.device_id)
            return PushOutcome.failed

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None
        for connector in self._connectors.values():
            connector.close()

    def _executor(self) -> ThreadPoolExecutor:
        # Made on first use, so a process that forks after building the services (gunicorn) starts
        # its threads in the worker.
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="push")
            return self._pool


class InMemoryPushNotifier:
    """Remember what was sent (for tests); every push is delivered."""

    def __init__(self) -> None:
        self.sent: list[PushNotification] = []

    def send(self, notifications: Sequence[PushNotification]) -> list[PushOutcome]:
        self.sent.extend(notifications)
        return [PushOutcome.delivered for _ in notifications]

    def supported_app_ids(self, platform: str) -> frozenset[str] | None:
        return None

    def close(self) -> None:
        """Nothing to close."""
