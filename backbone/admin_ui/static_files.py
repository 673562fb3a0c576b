"""The UI's style sheet, script and icon, shipped as package data and served from memory."""

from __future__ import annotations

from importlib import resources

import falcon

from backbone.admin_ui.rendering import Page, Renderer
from backbone.platform.errors import DomainError

STATIC_FILES = {
    "ui.css": "text/css; charset=utf-8",
    "ui.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}


class NoSuchPage(DomainError):
    status = 404

    def __init__(self) -> None:
        super().__init__("error.platform.routeNotFound", "There is no page at this address.")


class StaticFile(Page):
    """`GET /ui/static/{name}`: one of the files above; needs no session (they hold nothing)."""

    anonymous_methods = frozenset({"GET"})
    needs_session = False

    def __init__(self, renderer: Renderer) -> None:
        self._renderer = renderer
        folder = resources.files("backbone.admin_ui").joinpath("static")
        self._files = {
            name: (media_type, folder.joinpath(name).read_bytes())
            for name, media_type in STATIC_FILES.items()
        }

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        found = self._files.get(name)
        if found is None:
            self._renderer.page(req, resp, "refused.html", error=NoSuchPage())
            return
        resp.content_type, resp.data = found


class NotFoundSink:
    """The sink of every other path under /ui/: a page that says so, in the UI's frame."""

    def __init__(self, renderer: Renderer) -> None:
        self._renderer = renderer

    def __call__(self, req: falcon.Request, resp: falcon.Response, **_: str) -> None:
        self._renderer.page(req, resp, "refused.html", error=NoSuchPage())
