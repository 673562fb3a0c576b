"""Admin API routes of announcements."""

from __future__ import annotations

from typing import Any

import falcon

from backbone.modules.announcements.model import (
    Announcement,
    AnnouncementAction,
    AnnouncementSeverity,
    AnnouncementText,
    NewAnnouncement,
)
from backbone.modules.announcements.service import AnnouncementService
from backbone.platform.errors import InvalidInput
from backbone.platform.http import App, JsonObject, checked_id, no_content, read_json, send
from backbone.platform.openapi import (
    address,
    array,
    boolean,
    describe,
    enum,
    envelope,
    identifier,
    nullable,
    obj,
    string,
    timestamp,
)

SEVERITY = enum(*(severity.name for severity in AnnouncementSeverity))
TEXT = obj({"language": string(min_length=2, max_length=2), "title": string(), "body": string()})
ACTION = obj({"displayName": {"type": "object", "additionalProperties": string()}, "link": string()})
ANNOUNCEMENT = obj(
    {
        "id": string(),
        "createdAt": timestamp(),
        "expiresAt": nullable(timestamp()),
        "severity": SEVERITY,
        "isSilent": boolean(),
        "texts": array(TEXT),
        "recipients": array(string()),
        "actions": array(ACTION),
        "iqlQuery": nullable(string()),
    }
)
NEW_ANNOUNCEMENT = obj(
    {
        "severity": SEVERITY,
        "isSilent": boolean(),
        "texts": array(TEXT, min_items=1),
        "expiresAt": nullable(timestamp()),
        "actions": array(ACTION),
        "recipients": array(address()),
        "iqlQuery": nullable(string()),
    },
    optional=["isSilent", "expiresAt", "actions", "recipients", "iqlQuery"],
)
TAGS = ("Announcements",)


def render_announcement(announcement: Announcement) -> dict[str, Any]:
    return {
        "id": announcement.id,
        "createdAt": announcement.created_at,
        "expiresAt": announcement.expires_at,
        "severity": announcement.severity.name,
        "isSilent": announcement.is_silent,
        "texts": [{"language": t.language, "title": t.title, "body": t.body} for t in announcement.texts],
        "recipients": list(announcement.recipients),
        "actions": [{"displayName": dict(a.display_name), "link": a.link} for a in announcement.actions],
        "iqlQuery": announcement.iql_query,
    }


def _display_name(action: JsonObject) -> dict[str, str]:
    raw = action.raw("displayName")
    if not isinstance(raw, dict) or not all(isinstance(value, str) for value in raw.values()):
        raise InvalidInput(f"'{action.name('displayName')}': The JSON value must be an object of texts.")
    return {str(language): text for language, text in raw.items()}


def read_new_announcement(body: JsonObject) -> NewAnnouncement:
    recipients = body.raw("recipients") or []
    if not isinstance(recipients, list) or not all(isinstance(value, str) for value in recipients):
        raise InvalidInput("'recipients': The JSON value must be an array of addresses.")
    return NewAnnouncement(
        severity=body.choice("severity", AnnouncementSeverity),
        is_silent=body.boolean("isSilent"),
        texts=[
            AnnouncementText(
                text.required_text("language"), text.required_text("title"), text.required_text("body")
            )
            for text in body.objects("texts")
        ],
        expires_at=body.timestamp("expiresAt", required=False),
        actions=[
            AnnouncementAction(_display_name(action), action.required_text("link"))
            for action in body.objects("actions", required=False)
        ],
        recipients=recipients,
        iql_query=body.text("iqlQuery", required=False),
    )


class AnnouncementsResource:
    def __init__(self, announcements: AnnouncementService) -> None:
        self._announcements = announcements

    @describe("Every announcement", {200: envelope(array(ANNOUNCEMENT))}, tags=TAGS)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, [render_announcement(announcement) for announcement in self._announcements.all()])

    @describe(
        "Publish an announcement to everyone, or to the given recipients",
        {201: envelope(ANNOUNCEMENT)},
        body=NEW_ANNOUNCEMENT,
        tags=TAGS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        new = read_new_announcement(read_json(req, required=True))
        send(resp, render_announcement(self._announcements.announce(new)), 201)


class AnnouncementResource:
    def __init__(self, announcements: AnnouncementService) -> None:
        self._announcements = announcements

    @describe("An announcement", {200: envelope(ANNOUNCEMENT)}, path={"id": identifier("ANC")}, tags=TAGS)
    def on_get(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        send(resp, render_announcement(self._announcements.get(checked_id(id, "ANC"))))

    @describe("Withdraw an announcement", {204: None}, path={"id": identifier("ANC")}, tags=TAGS)
    def on_delete(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        self._announcements.withdraw(checked_id(id, "ANC"))
        no_content(resp)


def add_announcement_admin_routes(app: App, announcements: AnnouncementService) -> None:
    app.add_route("/api/v1/Announcements", AnnouncementsResource(announcements))
    app.add_route("/api/v1/Announcements/{id}", AnnouncementResource(announcements))
