"""Pages, forms and answers of the Admin UI: Jinja2 templates rendered on the server."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import falcon
import jinja2

from backbone.platform.errors import DomainError
from backbone.platform.http import JsonObject, read_form_fields

HTML = "text/html; charset=utf-8"
_URLENCODED = "application/x-www-form-urlencoded"

# What a page says after a redirect (`?notice=<key>`); only these texts are ever shown.
NOTICES = {
    "signed-out": "You are signed out.",
    "expired": "Your session has expired; sign in again.",
    "client-saved": "The client was saved.",
    "client-deleted": "The client was deleted.",
    "tier-created": "The tier was created.",
    "tier-deleted": "The tier was deleted.",
    "quota-added": "The quota was added.",
    "quota-removed": "The quota was removed.",
    "deletion-started": "The identity's deletion process was started.",
    "announcement-published": "The announcement was published.",
    "announcement-deleted": "The announcement was deleted.",
}


class Form:
    """The fields of a submitted form; anything but a URL-encoded form has none."""

    def __init__(self, fields: Mapping[str, list[str]]) -> None:
        self._fields = fields

    @classmethod
    def of(cls, req: falcon.Request) -> Form:
        cached: Form | None = getattr(req.context, "ui_form", None)
        if cached is not None:
            return cached
        fields: dict[str, list[str]] = {}
        if (req.content_type or "").split(";")[0].strip().lower() == _URLENCODED:
            fields = read_form_fields(req)
        form = req.context.ui_form = cls(fields)
        return form

    def text(self, name: str) -> str:
        values = self._fields.get(name)
        return values[-1].strip() if values else ""

    def texts(self, name: str) -> list[str]:
        return [value.strip() for value in self._fields.get(name, [])]

    def optional(self, name: str) -> str | None:
        return self.text(name) or None

    def number(self, name: str) -> int | str | None:
        """An integer field as the JSON readers expect it: a number, or the text that is not one
        (so the Admin API's reader names the problem), or None when empty."""
        text = self.text(name)
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            return text

    def checked(self, name: str) -> bool:
        return self.text(name) in ("on", "true", "1")


def as_json(values: dict[str, Any]) -> JsonObject:
    """Hand form values to the Admin API's readers, so both refuse bad input with the same words."""
    return JsonObject(values)


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


class Renderer:
    """Render templates into answers; every page knows the session's anti-forgery token."""

    def __init__(self, *, any_key_signs_in: bool) -> None:
        self._environment = jinja2.Environment(
            loader=jinja2.PackageLoader("backbone.admin_ui", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._environment.filters["when"] = _when
        self._environment.globals["any_key_signs_in"] = any_key_signs_in

    def page(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        template: str,
        *,
        error: DomainError | None = None,
        **context: Any,
    ) -> None:
        """Render the template; a page that shows an error answers with the error's status."""
        session = getattr(req.context, "ui_session", None)
        resp.status = 200 if error is None else error.status
        resp.content_type = HTML
        resp.text = self._environment.get_template(template).render(
            signed_in=session is not None,
            xsrf_token=session.xsrf_token if session else "",
            notice=NOTICES.get(req.get_param("notice") or ""),
            error=error,
            **context,
        )


def see_other(resp: falcon.Response, location: str) -> None:
    """Answer a form with a redirect to the page that shows its result (reloading resends nothing)."""
    resp.status = 303
    resp.location = location
    resp.data = b""


class Page:
    """A resource of the UI, guarded by `UiProtection` (session and anti-forgery token).

    The Admin API key arrives once, on the sign-in form, and then as the session: the Admin
    API's middleware, which wants it as a header, lets the UI's methods through.
    """

    anonymous_methods = frozenset({"GET", "POST"})
    needs_session = True
