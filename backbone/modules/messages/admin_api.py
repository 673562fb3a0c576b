"""Admin API route of messages: what operators see of an identity's messages (no bodies)."""

from __future__ import annotations

from typing import Any

import falcon

from backbone.modules.messages.model import Message
from backbone.modules.messages.service import MessageService
from backbone.platform.errors import InvalidPropertyValue
from backbone.platform.http import App, Query, send_page
from backbone.platform.openapi import (
    PAGE_QUERY,
    address,
    array,
    describe,
    enum,
    integer,
    nullable,
    obj,
    paged,
    string,
    timestamp,
)

MESSAGE_OVERVIEW = obj(
    {
        "messageId": string(),
        "senderAddress": string(),
        "senderDevice": string(),
        "sendDate": timestamp(),
        "numberOfAttachments": integer(minimum=0),
        "recipients": array(obj({"address": string(), "receivedAt": nullable(timestamp())})),
    }
)


def render_overview(message: Message) -> dict[str, Any]:
    return {
        "messageId": message.id,
        "senderAddress": message.created_by,
        "senderDevice": message.created_by_device,
        "sendDate": message.created_at,
        "numberOfAttachments": len(message.attachments),
        "recipients": [{"address": r.address, "receivedAt": r.received_at} for r in message.recipients],
    }


class MessagesOverviewResource:
    def __init__(self, messages: MessageService) -> None:
        self._messages = messages

    @describe(
        "The incoming or outgoing messages of an identity",
        {200: paged(MESSAGE_OVERVIEW)},
        query={"participant": address(), "type": enum("Incoming", "Outgoing"), **PAGE_QUERY},
        required_query=("participant", "type"),
        tags=("Messages",),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = Query(req)
        participant = query.required_address("participant")
        kind = (query.get("type") or "").lower()
        if kind not in ("incoming", "outgoing"):
            raise InvalidPropertyValue("'type' must be Incoming or Outgoing.")
        paged = self._messages.overview_for(participant, kind == "incoming", query.page())
        send_page(resp, paged, render_overview)


def add_message_admin_routes(app: App, messages: MessageService) -> None:
    app.add_route("/api/v1/Messages", MessagesOverviewResource(messages))
