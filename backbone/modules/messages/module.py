"""The messages module in the backbone: its service, its handlers and its routes."""

from __future__ import annotations

from backbone.modules.messages.admin_api import add_message_admin_routes
from backbone.modules.messages.consumer_api import add_message_routes
from backbone.modules.messages.handlers import message_handlers
from backbone.modules.messages.repository import MessageRepository
from backbone.modules.messages.service import MessageService, RelationshipBetween
from backbone.platform.errors import CheckQuota
from backbone.platform.modules import ModuleConfig


def include_messages(
    config: ModuleConfig,
    *,
    relationship_between: RelationshipBetween,
    anonymous_address: str,
    check_quota: CheckQuota,
) -> MessageService:
    messages = MessageService(
        config.db,
        MessageRepository(),
        config.outbox,
        config.clock,
        config.ids,
        relationship_between=relationship_between,
        max_recipients=config.settings.max_message_recipients,
        max_unreceived_from_one_sender=config.settings.max_unreceived_messages_from_one_sender,
        anonymous_address=anonymous_address,
        check_quota=check_quota,
    )
    config.subscribe(message_handlers(messages))
    config.add_consumer_routes(lambda app: add_message_routes(app, messages))
    config.add_admin_routes(lambda app: add_message_admin_routes(app, messages))
    return messages
