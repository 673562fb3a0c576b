"""Consumer API route of announcements."""

from __future__ import annotations

from typing import Any

import falcon

from backbone.modules.announcements.model import FALLBACK_LANGUAGE, Announcement, check_language
from backbone.modules.announcements.service import AnnouncementService
from backbone.platform.http import App, Query, principal_of, send
from backbone.platform.openapi import array, describe, enum, envelope, nullable, obj, string, timestamp

ANNOUNCEMENT = obj(
    {
        "id": string(),
        "createdAt": timestamp(),
        "expiresAt": nullable(timestamp()),
        "severity": enum("Low", "Medium", "High"),
        "title": string(),
        "body": string(),
        "actions": array(obj({"displayName": string(), "link": string()})),
        "iqlQuery": nullable(string()),
    }
)


def render_for_language(announcement: Announcement, language: str) -> dict[str, Any]:
    text = announcement.text_in(language)
    return {
        "id": announcement.id,
        "createdAt": announcement.created_at,
        "expiresAt": announcement.expires_at,
        "severity": announcement.severity.name,
        "title": text.title,
        "body": text.body,
        "actions": [
            {"displayName": action.display_name_in(language), "link": action.link}
            for action in announcement.actions
        ],
        "iqlQuery": announcement.iql_query,
    }


class AnnouncementsResource:
    def __init__(self, announcements: AnnouncementService) -> None:
        self._announcements = announcements

    @describe(
        "Announcements to everyone and to the caller, in a language (falling back to English)",
        {200: envelope(array(ANNOUNCEMENT))},
        query={"language": string(min_length=2, max_length=2)},
        tags=("Announcements",),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        language = (Query(req).get("language") or FALLBACK_LANGUAGE).lower()
        check_language(language)
        found = self._announcements.for_identity(principal_of(req).address)
        send(resp, [render_for_language(announcement, language) for announcement in found])


def add_announcement_routes(app: App, announcements: AnnouncementService) -> None:
    app.add_route("/api/v2/Announcements", AnnouncementsResource(announcements))
