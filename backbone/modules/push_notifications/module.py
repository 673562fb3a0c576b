"""The push notifications module in the backbone: its services, its handlers and its routes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from backbone.modules.push_notifications.consumer_api import add_push_notification_routes
from backbone.modules.push_notifications.handlers import push_handlers
from backbone.modules.push_notifications.repository import PnsRegistrationRepository
from backbone.modules.push_notifications.service import (
    CommunicationLanguages,
    NotificationService,
    PushService,
)
from backbone.platform.modules import ModuleConfig
from backbone.platform.push import PushNotifier


@dataclass(frozen=True)
class PushNotificationsModule:
    push: PushService
    notifications: NotificationService


def include_push_notifications(
    config: ModuleConfig,
    *,
    notifier: PushNotifier,
    identity_is_active: Callable[[str], bool],
    relationship_between: Callable[[str, str], object | None],
    communication_languages: CommunicationLanguages,
) -> PushNotificationsModule:
    """Devices' languages (for the texts) come from the devices module; the notifications
    identities may send each other from the apps file."""
    push = PushService(
        config.db,
        PnsRegistrationRepository(config.db),
        notifier,
        config.clock,
        config.ids,
        communication_languages=communication_languages,
    )
    notifications = NotificationService(
        push, configured=config.settings.apps.notifications, relationship_between=relationship_between
    )
    config.subscribe(push_handlers(push, identity_is_active))
    config.add_consumer_routes(lambda app: add_push_notification_routes(app, push, notifications))
    return PushNotificationsModule(push, notifications)
