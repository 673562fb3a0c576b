"""Reactions of the devices module to other modules' events: push notifications with the
original's names to the devices that registered for them."""

from __future__ import annotations

from collections.abc import Callable

from backbone.modules.devices.service import PushService
from backbone.platform.events import EventBus, Handler, PublishedEvent

MODULE = "Devices"


def subscribe_device_handlers(
    bus: EventBus, push: PushService, identity_is_active: Callable[[str], bool]
) -> None:
    """Tell devices that something waits for them (they sync after a push)."""

    def external_event_created(event: PublishedEvent) -> None:
        owner = event.payload["Owner"]
        if not event.payload.get("IsDeliveryBlocked") and identity_is_active(owner):
            push.to_identity(owner, "ExternalEventCreated")

    def datawallet_modified(event: PublishedEvent) -> None:
        push.to_identity(
            event.payload["Identity"],
            "DatawalletModificationsCreated",
            except_device=event.payload["ModifiedByDevice"],
        )

    def backup_device_used(event: PublishedEvent) -> None:
        push.to_identity(event.payload["IdentityAddress"], "BackupDeviceUsed")

    def token_locked(event: PublishedEvent) -> None:
        if event.payload.get("CreatedBy"):
            push.to_identity(event.payload["CreatedBy"], "TokenLocked")

    def announcement_created(event: PublishedEvent) -> None:
        if event.payload["IsSilent"]:
            return
        recipients = event.payload.get("Recipients") or []
        if not recipients:
            push.to_everyone("NewAnnouncement")
        for address in recipients:
            push.to_identity(address, "NewAnnouncement")

    def deletion_started(event: PublishedEvent) -> None:
        push.to_identity(event.payload["IdentityAddress"], "DeletionProcessStarted")

    def deletion_cancelled(event: PublishedEvent) -> None:
        push.to_identity(event.payload["IdentityAddress"], "DeletionProcessCancelledByOwner")

    reactions = {
        "ExternalEventCreated": external_event_created,
        "DatawalletModified": datawallet_modified,
        "BackupDeviceUsed": backup_device_used,
        "TokenLocked": token_locked,
        "AnnouncementCreated": announcement_created,
        "IdentityToBeDeleted": deletion_started,
        "IdentityDeletionCancelled": deletion_cancelled,
    }
    for event_name, handle in reactions.items():
        bus.subscribe(Handler(MODULE, event_name, handle))
