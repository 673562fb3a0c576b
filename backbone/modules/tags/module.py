"""The tags module in the backbone: the tag collection and its route."""

from __future__ import annotations

from backbone.modules.tags.consumer_api import add_tag_routes
from backbone.modules.tags.service import TagCollection, load_tags
from backbone.platform.modules import ModuleConfig


def include_tags(config: ModuleConfig) -> TagCollection:
    tags = load_tags(config.settings.tags_file)
    config.add_consumer_routes(lambda app: add_tag_routes(app, tags))
    return tags
