"""The announcements module in the backbone: its service and its routes."""

from __future__ import annotations

from backbone.modules.announcements.admin_api import add_announcement_admin_routes
from backbone.modules.announcements.consumer_api import add_announcement_routes
from backbone.modules.announcements.repository import AnnouncementRepository
from backbone.modules.announcements.service import AnnouncementService
from backbone.platform.modules import ModuleConfig


def include_announcements(config: ModuleConfig) -> AnnouncementService:
    announcements = AnnouncementService(
        config.db, AnnouncementRepository(), config.outbox, config.clock, config.ids
    )
    config.add_consumer_routes(lambda app: add_announcement_routes(app, announcements))
    config.add_admin_routes(lambda app: add_announcement_admin_routes(app, announcements))
    return announcements
