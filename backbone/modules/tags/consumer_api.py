"""Consumer API route of tags."""

from __future__ import annotations

import falcon

from backbone.modules.tags.service import TagCollection
from backbone.platform.http import JSON, App
from backbone.platform.openapi import array, describe, envelope, obj, string


class TagsResource:
    anonymous_methods = frozenset({"GET"})

    def __init__(self, tags: TagCollection) -> None:
        self._tags = tags

    @describe(
        "The tag collection (answers 304 to a matching If-None-Match)",
        {
            200: envelope(
                obj({"supportedLanguages": array(string()), "tagsForAttributeValueTypes": {"type": "object"}})
            ),
            304: None,
        },
        headers={"If-None-Match": string()},
        tags=("Tags",),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.set_header("ETag", self._tags.etag)
        if self._tags.etag in (req.get_header("If-None-Match") or "").split(", "):
            resp.status = 304
            return
        resp.content_type = JSON
        resp.data = self._tags.body


def add_tag_routes(app: App, tags: TagCollection) -> None:
    app.add_route("/api/v2/Tags", TagsResource(tags))
