"""Push notifications: devices' registrations with push services, and what is pushed to them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from backbone.platform.errors import DomainError

PNS_HANDLE_MIN_LENGTH = 10
PNS_HANDLE_MAX_LENGTH = 500
MAX_NOTIFICATION_RECIPIENTS = 100


class PushPlatform(Enum):
    """Push notification services a device can register with (wire names in lower case)."""

    fcm = "fcm"
    apns = "apns"
    dummy = "dummy"
    sse = "sse"

    @property
    def takes_handle(self) -> bool:
        # The original stores no handle for these two: SSE pushes by address, dummy only logs.
        return self in (PushPlatform.fcm, PushPlatform.apns)


class PushEnvironment(Enum):
    Development = 0
    Production = 1


@dataclass(frozen=True, slots=True)
class PnsRegistration:
    """A device's registration with a push notification service (one per device)."""

    device_id: str
    identity_address: str
    device_push_identifier: str
    platform: PushPlatform
    handle: str
    app_id: str
    environment: PushEnvironment
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PushRegistrationRequest:
    platform: str
    handle: str
    app_id: str
    environment: PushEnvironment


def invalid_pns_platform(platform: str) -> DomainError:
    return DomainError(
        "error.platform.validation.invalidPnsPlatform",
        f"The push notification platform '{platform}' is not one of fcm, apns, dummy, sse.",
    )
