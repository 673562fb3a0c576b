"""The Admin UI's one middleware: sessions, anti-forgery tokens and the security headers."""

from __future__ import annotations

import logging
from typing import Any

import falcon

from backbone.admin_ui.rendering import Form, Page, Renderer, see_other
from backbone.admin_ui.security import (
    COOKIE_PATH,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    XSRF_FIELD,
    Sessions,
)
from backbone.platform.admin_auth import SAFE_METHODS, XsrfTokens
from backbone.platform.clock import Clock
from backbone.platform.errors import DomainError

log = logging.getLogger(__name__)
UI_PREFIX = "/ui"
SIGN_IN_PATH = "/ui/sign-in"


def invalid_form_token() -> DomainError:
    return DomainError(
        "error.platform.validation.invalidAntiforgeryToken",
        "The form's anti-forgery token is missing or invalid, so nothing was changed. Open the page "
        "again and send the form from there.",
    )


class UiProtection:
    """Pages need a live session (else: to the sign-in page); forms need their anti-forgery token.

    The sign-in form, which has no session yet, is checked against the pair of its own cookie.
    Every answer under /ui/ gets the security headers, refusals and redirects included.
    """

    def __init__(
        self, sessions: Sessions, sign_in_xsrf: XsrfTokens, renderer: Renderer, clock: Clock
    ) -> None:
        self._sessions = sessions
        self._sign_in_xsrf = sign_in_xsrf
        self._renderer = renderer
        self._clock = clock

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        if not isinstance(resource, Page) or not hasattr(resource, f"on_{req.method.lower()}"):
            return
        session = self._sessions.read(req.cookies.get(SESSION_COOKIE))
        expired = session is not None and session.expired(self._clock.now())
        req.context.ui_session = None if expired else session
        if resource.needs_session and req.context.ui_session is None:
            self._to_sign_in(req, resp, expired)
            return
        if req.method in SAFE_METHODS:
            return
        token = Form.of(req).text(XSRF_FIELD)
        if resource.needs_session:
            valid = session is not None and self._sessions.form_token_matches(session, token)
        else:
            cookies = req.get_cookie_values(SIGN_IN_COOKIE) or []
            valid = any(self._sign_in_xsrf.matches(cookie, token) for cookie in cookies)
        if not valid:
            log.warning(
                "admin UI: %s %s refused: anti-forgery token missing or invalid", req.method, req.path
            )
            self._renderer.page(req, resp, "refused.html", error=invalid_form_token())
            resp.complete = True

    def _to_sign_in(self, req: falcon.Request, resp: falcon.Response, expired: bool) -> None:
        # A form sent after the session ended changes nothing: the operator signs in and sends it again.
        see_other(resp, SIGN_IN_PATH + ("?notice=expired" if expired else ""))
        if expired:
            resp.unset_cookie(SESSION_COOKIE, same_site="Strict", path=COOKIE_PATH)
        resp.complete = True

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        if req.path == "/" or req.path == UI_PREFIX or req.path.startswith(UI_PREFIX + "/"):
            for name, value in SECURITY_HEADERS.items():
                resp.set_header(name, value)
