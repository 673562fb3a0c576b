"""Use cases of push notifications: a device registers with a push service; the backbone wakes
the registered devices of identities, and identities wake their peers' devices."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from backbone.apps_file import ConfiguredNotification
from backbone.modules.push_notifications import model
from backbone.modules.push_notifications.model import (
    MAX_NOTIFICATION_RECIPIENTS,
    Notification,
    PnsRegistration,
    PushEnvironment,
    PushPlatform,
    PushRegistrationRequest,
)
from backbone.modules.push_notifications.repository import PnsRegistrationRepository
from backbone.modules.push_notifications.texts import BUILT_IN_TEXTS
from backbone.platform.auth import Principal
from backbone.platform.clock import Clock
from backbone.platform.db import Database
from backbone.platform.errors import DomainError, InvalidPropertyValue
from backbone.platform.ids import Ids
from backbone.platform.push import NotificationText, PushNotification, PushNotifier, PushOutcome

log = logging.getLogger(__name__)

TEST = "Test"
# The app id of registrations the SSE server makes (the stream names none).
SSE_APP_ID = "sse"
# The communication language of each of these devices (the devices module answers).
CommunicationLanguages = Callable[[Sequence[str]], Mapping[str, str]]


class PushService:
    """Devices' push registrations, and named push notifications to the registered devices."""

    def __init__(
        self,
        db: Database,
        registrations: PnsRegistrationRepository,
        notifier: PushNotifier,
        clock: Clock,
        ids: Ids,
        *,
        communication_languages: CommunicationLanguages,
    ) -> None:
        self._db = db
        self._registrations = registrations
        self._notifier = notifier
        self._clock = clock
        self._ids = ids
        self._communication_languages = communication_languages

    def register(self, caller: Principal, request: PushRegistrationRequest) -> PnsRegistration:
        """Create or update the calling device's registration; its push identifier stays the same."""
        try:
            platform = PushPlatform(request.platform)
        except ValueError:
            raise model.invalid_pns_platform(request.platform) from None
        supported = self._notifier.supported_app_ids(platform.value)
        if supported is not None and request.app_id not in supported:
            raise model.unsupported_app_id(supported)
        registration = PnsRegistration(
            device_id=caller.device_id,
            identity_address=caller.address,
            device_push_identifier=self._ids.new("DPI"),
            platform=platform,
            handle=request.handle if platform.takes_handle else "",
            app_id=request.app_id,
            environment=request.environment,
            updated_at=self._clock.now(),
        )
        with self._db.transaction() as connection:
            return self._registrations.upsert(connection, registration)

    def register_sse_stream(self, caller: Principal, replica_url: str) -> PnsRegistration:
        """The calling device opened an event stream on the SSE replica at `replica_url`: its
        registration (platform `sse`) records that replica, where the SSE connector posts."""
        registration = PnsRegistration(
            device_id=caller.device_id,
            identity_address=caller.address,
            device_push_identifier=self._ids.new("DPI"),
            platform=PushPlatform.sse,
            handle=replica_url,
            app_id=SSE_APP_ID,
            environment=PushEnvironment.Production,
            updated_at=self._clock.now(),
        )
        with self._db.transaction() as connection:
            return self._registrations.upsert(connection, registration)

    def end_sse_stream(self, caller: Principal, replica_url: str) -> None:
        """The device's stream on that replica closed: delete its registration, unless the device
        has registered anew meanwhile (a stream on another replica, another platform)."""
        with self._db.transaction() as connection:
            self._registrations.delete_with_handle(
                connection, [caller.device_id], PushPlatform.sse, replica_url
            )

    def end_sse_replica(self, replica_url: str) -> int:
        """The SSE replica at `replica_url` stopped: delete every registration naming it (one
        statement, where each stream's own delete would hold the shutdown up); return how many."""
        with self._db.transaction() as connection:
            return self._registrations.delete_with_handle_only(connection, PushPlatform.sse, replica_url)

    def unregister(self, caller: Principal) -> None:
        with self._db.transaction() as connection:
            self._registrations.delete(connection, caller.device_id)

    def delete_of_identity(self, address: str) -> None:
        """Forget a deleted identity's registrations."""
        with self._db.transaction() as connection:
            self._registrations.delete_of_identity(connection, address)

    def registrations_of(self, address: str) -> list[PnsRegistration]:
        """The registrations of the identity's devices."""
        with self._db.read() as connection:
            return self._registrations.of_identity(connection, address)

    def platforms_by_device(self) -> dict[str, str]:
        """The push platform each registered device uses (the operators' database export)."""
        with self._db.read() as connection:
            return {r.device_id: r.platform.value for r in self._registrations.every(connection)}

    def close(self) -> None:
        """Close the connections to the push services."""
        self._notifier.close()

    def send_test_notification(self, caller: Principal, data: Any) -> int:
        """Push `Test` with the caller's data to every registered device of the caller's identity."""
        return self.to_identity(caller.address, Notification(TEST, {"data": data}))

    def to_identity(
        self, address: str, notification: Notification, *, except_device: str | None = None
    ) -> int:
        with self._db.read() as connection:
            registrations = self._registrations.of_identity(connection, address, except_device)
            self._push_after_commit(registrations, notification)
        return len(registrations)

    def to_everyone(self, notification: Notification) -> int:
        with self._db.read() as connection:
            registrations = self._registrations.every(connection)
            self._push_after_commit(registrations, notification)
        return len(registrations)

    def _push_after_commit(
        self, registrations: Sequence[PnsRegistration], notification: Notification
    ) -> None:
        """Push once the unit of work has committed: a handler's transaction (and on SQLite the
        write lock) is not held while push services answer, and a rolled-back change pushes nothing."""
        if not registrations:
            return
        languages = self._communication_languages([r.device_id for r in registrations])
        texts = (
            notification.texts
            if notification.texts is not None
            else BUILT_IN_TEXTS.get(notification.name, {})
        )
        now = self._clock.now()
        pushes = []
        for sharing in _by_handle(registrations):
            first = sharing[0]
            push = PushNotification(
                name=notification.name,
                device_id=first.device_id,
                identity_address=first.identity_address,
                device_push_identifier=first.device_push_identifier,
                platform=first.platform.value,
                handle=first.handle,
                app_id=first.app_id,
                environment=first.environment.name,
                sent_at=now,
                text=model.text_in(texts, languages.get(first.device_id)),
                payload=notification.payload,
                collapse_id=notification.collapse_id,
            )
            pushes.append((push, [registration.device_id for registration in sharing]))
        self._db.after_commit(lambda: self._deliver(pushes))

    def _deliver(self, pushes: list[tuple[PushNotification, list[str]]]) -> None:
        outcomes = self._notifier.send([push for push, _ in pushes])
        gone = [
            (push, devices)
            for (push, devices), outcome in zip(pushes, outcomes, strict=True)
            if outcome is PushOutcome.handle_gone
        ]
        if not gone:
            return
        with self._db.transaction() as connection:
            for push, devices in gone:
                deleted = self._registrations.delete_with_handle(
                    connection, devices, PushPlatform(push.platform), push.handle
                )
                for device_id in deleted:
                    log.info(
                        "deleted the push registration of device %s: %s no longer knows it",
                        device_id,
                        push.platform,
                    )


def _by_handle(registrations: Sequence[PnsRegistration]) -> list[list[PnsRegistration]]:
    """Registrations grouped by handle: devices that share one (an app registered twice) get one
    push, as in the original; `dummy` and `sse` registrations have no handle and stay apart."""
    groups: dict[tuple[PushPlatform, str], list[PnsRegistration]] = {}
    for registration in registrations:
        key = (registration.platform, registration.handle or registration.device_id)
        groups.setdefault(key, []).append(registration)
    return list(groups.values())


class NotificationService:
    """`POST /Notifications`: an identity wakes its peers' devices with a configured notification."""

    def __init__(
        self,
        push: PushService,
        *,
        configured: Sequence[ConfiguredNotification],
        relationship_between: Callable[[str, str], object | None],
    ) -> None:
        self._push = push
        self._texts = {
            notification.code: {
                t.language: NotificationText(t.title, t.body) for t in notification.translations
            }
            for notification in configured
        }
        self._relationship_between = relationship_between

    def send(self, caller: Principal, recipients: Sequence[str], code: str) -> None:
        if not 1 <= len(recipients) <= MAX_NOTIFICATION_RECIPIENTS:
            raise InvalidPropertyValue(
                f"'recipients' must contain between 1 and {MAX_NOTIFICATION_RECIPIENTS} addresses."
            )
        if code not in self._texts:
            raise DomainError(
                "error.platform.validation.notification.codeDoesNotExist",
                f"The notification code '{code}' does not exist.",
            )
        if any(self._relationship_between(caller.address, address) is None for address in recipients):
            raise DomainError(
                "error.platform.validation.notification.noRelationshipToOneOrMoreRecipientsExists",
                "There is no relationship to one or more of the recipients.",
            )
        notification = Notification(
            f"notification_{code}",
            payload=None,
            collapse_id=f"notification_{code}",
            texts=self._texts[code],
        )
        for address in dict.fromkeys(recipients):
            self._push.to_identity(address, notification)
