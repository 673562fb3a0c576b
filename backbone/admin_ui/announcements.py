"""Announcements: list, publish (texts in several languages, to everyone or to recipients), delete."""

from __future__ import annotations

from itertools import zip_longest

import falcon

from backbone.admin_ui.rendering import Form, Page, Renderer, as_json, see_other
from backbone.modules.announcements.admin_api import read_new_announcement
from backbone.modules.announcements.model import AnnouncementSeverity
from backbone.modules.announcements.service import AnnouncementService
from backbone.platform.errors import DomainError
from backbone.platform.http import checked_id

ANNOUNCEMENTS = "/ui/announcements"
# Rows of texts the form offers; rows left without title and body are not sent.
TEXT_ROWS = 4
DEFAULT_LANGUAGES = ("en", "de")


def text_rows(form: Form) -> list[tuple[str, str, str]]:
    """(language, title, body) of every row of the form, the defaults where it has none."""
    sent = list(zip_longest(form.texts("language"), form.texts("title"), form.texts("body"), fillvalue=""))
    if not sent:
        sent = [(language, "", "") for language in DEFAULT_LANGUAGES]
    return (sent + [("", "", "")] * TEXT_ROWS)[: max(TEXT_ROWS, len(sent))]


def new_announcement_body(form: Form) -> dict[str, object]:
    """The form as the body of `POST /api/v1/Announcements`."""
    return {
        "severity": form.text("severity"),
        "isSilent": form.checked("silent"),
        "expiresAt": form.optional("expiresAt"),
        "texts": [
            {"language": language, "title": title, "body": body}
            for language, title, body in text_rows(form)
            if title or body
        ],
        "recipients": form.text("recipients").split(),
    }


class _AnnouncementPages(Page):
    def __init__(self, renderer: Renderer, announcements: AnnouncementService) -> None:
        self._renderer = renderer
        self._announcements = announcements

    def _show(
        self, req: falcon.Request, resp: falcon.Response, form: Form, error: DomainError | None = None
    ) -> None:
        self._renderer.page(
            req,
            resp,
            "announcements.html",
            error=error,
            form=form,
            rows=text_rows(form),
            severities=[severity.name for severity in AnnouncementSeverity],
            announcements=self._announcements.all(),
        )


class AnnouncementsPage(_AnnouncementPages):
    """`/ui/announcements`: every announcement, and the form that publishes one."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._show(req, resp, Form({}))

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = Form.of(req)
        try:
            self._announcements.announce(read_new_announcement(as_json(new_announcement_body(form))))
        except DomainError as error:
            self._show(req, resp, form, error)
            return
        see_other(resp, f"{ANNOUNCEMENTS}?notice=announcement-published")


class AnnouncementDeletionPage(_AnnouncementPages):
    """`POST /ui/announcements/{id}/delete`: withdraw an announcement."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        try:
            self._announcements.withdraw(checked_id(id, "ANC"))
        except DomainError as error:
            self._show(req, resp, Form({}), error)
            return
        see_other(resp, f"{ANNOUNCEMENTS}?notice=announcement-deleted")
