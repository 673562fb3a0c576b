"""Attribute tags: static configuration the client caches by ETag."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson


@dataclass(frozen=True)
class TagCollection:
    body: bytes
    etag: str


def load_tags(path: str | None = None) -> TagCollection:
    """Load the tag collection once; its ETag is the quoted base64 MD5 of the body, as upstream."""
    if path:
        with open(path, "rb") as tag_file:
            data: Any = json.load(tag_file)
    else:
        data = json.loads(resources.files("backbone.modules.tags").joinpath("tags.json").read_text("utf-8"))
    body = orjson.dumps({"result": data})
    digest = hashlib.md5(body, usedforsecurity=False).digest()
    return TagCollection(body, '"' + base64.b64encode(digest).decode("ascii") + '"')
