"""Reactions to other modules' events: push notifications with the original's names to the
devices that registered for them."""

from __future__ import annotations

from collections.abc import Callable

from backbone.modules.announcements.events import AnnouncementCreated
from backbone.modules.devices.events import BackupDeviceUsed
from backbone.modules.identity_deletion.events import IdentityDeletionCancelled, IdentityToBeDeleted
from backbone.modules.push_notifications.model import Notification
from backbone.modules.push_notifications.service import PushService
from backbone.modules.synchronization.events import DatawalletModified, ExternalEventCreated
from backbone.modules.tokens.events import TokenLocked
from backbone.platform.events import Handler, on
from backbone.platform.push import NotificationText

# Push notifications belong to the original's Devices module: the queues keep its name.
MODULE = "Devices"
# A newer one replaces an older one on the device (the original's notification ids).
EXTERNAL_EVENT_CREATED = Notification("ExternalEventCreated", collapse_id="ExternalEventCreated")


def push_handlers(push: PushService, identity_is_active: Callable[[str], bool]) -> list[Handler]:
    """Tell devices that something waits for them (they sync after a push)."""

    def external_event_created(event: ExternalEventCreated) -> None:
        if not event.is_delivery_blocked and identity_is_active(event.owner):
            push.to_identity(event.owner, EXTERNAL_EVENT_CREATED)

    def datawallet_modified(event: DatawalletModified) -> None:
        notification = Notification(
            "DatawalletModificationsCreated",
            {"createdByDevice": event.modified_by_device},
            collapse_id="DatawalletModified",
        )
        push.to_identity(event.identity, notification, except_device=event.modified_by_device)

    def backup_device_used(event: BackupDeviceUsed) -> None:
        push.to_identity(event.identity_address, Notification("BackupDeviceUsed"))

    def token_locked(event: TokenLocked) -> None:
        if event.created_by:
            push.to_identity(event.created_by, Notification("TokenLocked"))

    def announcement_created(event: AnnouncementCreated) -> None:
        if event.is_silent:
            return
        notification = Notification(
            "NewAnnouncement",
            {"announcementId": event.id},
            texts={text.language: NotificationText(text.title, text.body) for text in event.texts},
        )
        if not event.recipients:
            push.to_everyone(notification)
        for address in event.recipients:
            push.to_identity(address, notification)

    def deletion_started(event: IdentityToBeDeleted) -> None:
        push.to_identity(event.identity_address, Notification("DeletionProcessStarted"))

    def deletion_cancelled(event: IdentityDeletionCancelled) -> None:
        push.to_identity(event.identity_address, Notification("DeletionProcessCancelledByOwner"))

    return [
        on(MODULE, ExternalEventCreated, external_event_created),
        on(MODULE, DatawalletModified, datawallet_modified),
        on(MODULE, BackupDeviceUsed, backup_device_used),
        on(MODULE, TokenLocked, token_locked),
        on(MODULE, AnnouncementCreated, announcement_created),
        on(MODULE, IdentityToBeDeleted, deletion_started),
        on(MODULE, IdentityDeletionCancelled, deletion_cancelled),
    ]
