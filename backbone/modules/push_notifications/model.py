"""Push notifications: devices' registrations with push services, and what is pushed to them."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from backbone.platform.errors import DomainError
from backbone.platform.push import NotificationText

PNS_HANDLE_MIN_LENGTH = 10
PNS_HANDLE_MAX_LENGTH = 500
MAX_NOTIFICATION_RECIPIENTS = 100
# Devices whose language a notification has no text in get this one.
FALLBACK_LANGUAGE = "en"


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


def unsupported_app_id(supported: Collection[str]) -> DomainError:
    listed = ", ".join(f"'{app_id}'" for app_id in sorted(supported))
    return DomainError(
        "error.platform.unsupportedAppId",
        f"The given app id is not supported. Supported app ids are: {listed}.",
    )


@dataclass(frozen=True)
class Notification:
    """What to push to the devices of an identity.

    `name` is the original's notification name (the apps' `eventName`); `payload` what the app
    reads besides (None: the push carries no content at all); pushes with the same `collapse_id`
    replace each other on a device; `texts` per language (None: the built-in texts of `name`).
    """

    name: str
    payload: Mapping[str, Any] | None = field(default_factory=dict)
    collapse_id: str | None = None
    texts: Mapping[str, NotificationText] | None = None


def text_in(texts: Mapping[str, NotificationText], language: str | None) -> NotificationText | None:
    """The text in the device's language, else in the fallback language, else none (silent)."""
    return (texts.get(language) if language else None) or texts.get(FALLBACK_LANGUAGE)
