"""Push notifications: the port the handlers and jobs send through, and its log-only adapter."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushNotification:
    """One notification to one registered device; `name` is the original's notification name."""

    name: str
    device_id: str
    platform: str
    handle: str
    app_id: str


class PushNotifier(Protocol):
    """Deliver push notifications to devices (FCM, APNs, SSE in the original)."""

    def send(self, notification: PushNotification) -> None: ...


class LogPushNotifier:
    """The embedded default: log that a notification would be sent, never the device's handle."""

    def send(self, notification: PushNotification) -> None:
        log.info(
            "push %s to device %s (%s, app %s)",
            notification.name,
            notification.device_id,
            notification.platform,
            notification.app_id,
        )


class InMemoryPushNotifier:
    """Remember what was sent (for tests)."""

    def __init__(self) -> None:
        self.sent: list[PushNotification] = []

    def send(self, notification: PushNotification) -> None:
        self.sent.append(notification)
