"""Use cases of push notifications: a device registers with a push service; the backbone wakes
the registered devices of identities, and identities wake their peers' devices."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from backbone.modules.push_notifications import model
from backbone.modules.push_notifications.model import (
    MAX_NOTIFICATION_RECIPIENTS,
    PnsRegistration,
    PushPlatform,
    PushRegistrationRequest,
)
from backbone.modules.push_notifications.repository import PnsRegistrationRepository
from backbone.platform.auth import Principal
from backbone.platform.clock import Clock
from backbone.platform.db import Database
from backbone.platform.errors import DomainError, InvalidPropertyValue
from backbone.platform.ids import Ids
from backbone.platform.push import PushNotification, PushNotifier


class PushService:
    """Devices' push registrations, and named push notifications to the registered devices."""

    def __init__(
        self,
        db: Database,
        registrations: PnsRegistrationRepository,
        notifier: PushNotifier,
        clock: Clock,
        ids: Ids,
    ) -> None:
        self._db = db
        self._registrations = registrations
        self._notifier = notifier
        self._clock = clock
        self._ids = ids

    def register(self, caller: Principal, request: PushRegistrationRequest) -> PnsRegistration:
        """Create or update the calling device's registration; its push identifier stays the same."""
        try:
            platform = PushPlatform(request.platform)
        except ValueError:
            raise model.invalid_pns_platform(request.platform) from None
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

    def unregister(self, caller: Principal) -> None:
        with self._db.transaction() as connection:
            self._registrations.delete(connection, caller.device_id)

    def delete_of_identity(self, address: str) -> None:
        """Forget a deleted identity's registrations."""
        with self._db.transaction() as connection:
            self._registrations.delete_of_identity(connection, address)

    def platforms_by_device(self) -> dict[str, str]:
        """The push platform each registered device uses (the operators' database export)."""
        with self._db.read() as connection:
            return {r.device_id: r.platform.value for r in self._registrations.every(connection)}

    def to_identity(self, address: str, name: str, *, except_device: str | None = None) -> int:
        with self._db.read() as connection:
            registrations = self._registrations.of_identity(connection, address, except_device)
        return self._send(registrations, name)

    def to_everyone(self, name: str) -> int:
        with self._db.read() as connection:
            registrations = self._registrations.every(connection)
        return self._send(registrations, name)

    def _send(self, registrations: Sequence[PnsRegistration], name: str) -> int:
        for registration in registrations:
            self._notifier.send(
                PushNotification(
                    name=name,
                    device_id=registration.device_id,
                    platform=registration.platform.value,
                    handle=registration.handle,
                    app_id=registration.app_id,
                )
            )
        return len(registrations)


class NotificationService:
    """`POST /Notifications`: an identity wakes its peers' devices with a configured notification."""

    def __init__(
        self,
        push: PushService,
        *,
        codes: Sequence[str],
        relationship_between: Callable[[str, str], object | None],
    ) -> None:
        self._push = push
        self._codes = frozenset(codes)
        self._relationship_between = relationship_between

    def send(self, caller: Principal, recipients: Sequence[str], code: str) -> None:
        if not 1 <= len(recipients) <= MAX_NOTIFICATION_RECIPIENTS:
            raise InvalidPropertyValue(
                f"'recipients' must contain between 1 and {MAX_NOTIFICATION_RECIPIENTS} addresses."
            )
        if code not in self._codes:
            raise DomainError(
                "error.platform.validation.notification.codeDoesNotExist",
                f"The notification code '{code}' does not exist.",
            )
        if any(self._relationship_between(caller.address, address) is None for address in recipients):
            raise DomainError(
                "error.platform.validation.notification.noRelationshipToOneOrMoreRecipientsExists",
                "There is no relationship to one or more of the recipients.",
            )
        for address in dict.fromkeys(recipients):
            self._push.to_identity(address, f"notification_{code}")
