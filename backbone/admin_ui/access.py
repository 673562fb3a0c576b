"""Signing in with the Admin API key, and out again."""

from __future__ import annotations

import logging
import math

import falcon

from backbone.admin_ui.rendering import Form, Page, Renderer, see_other
from backbone.admin_ui.security import COOKIE_PATH, SESSION_COOKIE, SIGN_IN_COOKIE, Sessions, SignInThrottle
from backbone.platform.admin_auth import ApiKeys, XsrfTokens
from backbone.platform.clock import Clock
from backbone.platform.errors import DomainError

log = logging.getLogger(__name__)
HOME = "/ui/"
# The sign-in form's own anti-forgery cookie lives as long as an operator may take to type a key.
_SIGN_IN_COOKIE_S = 3600


class WrongApiKey(DomainError):
    status = 401

    def __init__(self) -> None:
        super().__init__("error.platform.unauthorized", "The API key is not valid.")


class SignInLockedOut(DomainError):
    status = 429

    def __init__(self, seconds: int) -> None:
        super().__init__(
            "error.platform.adminUi.tooManyFailedSignIns",
            f"Too many wrong keys came from your address; try again in {seconds} s.",
        )


class SignInPage(Page):
    """`/ui/sign-in`: the form that takes the Admin API key and starts a session."""

    needs_session = False

    def __init__(
        self,
        renderer: Renderer,
        keys: ApiKeys,
        sessions: Sessions,
        xsrf: XsrfTokens,
        throttle: SignInThrottle,
        clock: Clock,
    ) -> None:
        self._renderer = renderer
        self._keys = keys
        self._sessions = sessions
        self._xsrf = xsrf
        self._throttle = throttle
        self._clock = clock

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.context.ui_session is not None:
            see_other(resp, HOME)
            return
        self._form(req, resp)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        client = req.remote_addr or "unknown"
        locked_until = self._throttle.locked_until(client)
        if locked_until is not None:
            seconds = math.ceil((locked_until - self._clock.now()).total_seconds())
            log.warning("admin UI: sign-in from %s refused, locked out for %d s", client, seconds)
            self._form(req, resp, SignInLockedOut(seconds))
            return
        if not self._keys.accepts(Form.of(req).text("api_key")):
            self._throttle.failed(client)
            log.warning("admin UI: wrong API key from %s", client)
            self._form(req, resp, WrongApiKey())
            return
        self._throttle.succeeded(client)
        value, _ = self._sessions.issue()
        resp.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=int(self._sessions.lifetime.total_seconds()),
            path=COOKIE_PATH,
            secure=req.scheme == "https",
            http_only=True,
            same_site="Strict",
        )
        resp.unset_cookie(SIGN_IN_COOKIE, same_site="Strict", path=COOKIE_PATH)
        log.info("admin UI: signed in from %s", client)
        see_other(resp, HOME)

    def _form(self, req: falcon.Request, resp: falcon.Response, error: DomainError | None = None) -> None:
        # A fresh pair each time: its cookie half is kept only by this browser.
        cookie, token = self._xsrf.issue()
        resp.set_cookie(
            SIGN_IN_COOKIE,
            cookie,
            max_age=_SIGN_IN_COOKIE_S,
            path=COOKIE_PATH,
            secure=req.scheme == "https",
            http_only=True,
            same_site="Strict",
        )
        self._renderer.page(req, resp, "sign_in.html", error=error, sign_in_token=token)


class SignOutPage(Page):
    """`POST /ui/sign-out`: the browser forgets the session (a copy of the cookie would stay valid
    until it expires: sessions are not stored; docs/admin-ui.md)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.unset_cookie(SESSION_COOKIE, same_site="Strict", path=COOKIE_PATH)
        log.info("admin UI: signed out from %s", req.remote_addr)
        see_other(resp, "/ui/sign-in?notice=signed-out")
