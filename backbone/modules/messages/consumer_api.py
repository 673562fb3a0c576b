"""Consumer API routes of messages."""

from __future__ import annotations

from typing import Any

import falcon

from backbone.modules.messages.model import (
    MAX_ATTACHMENTS,
    MAX_BODY_BYTES,
    MAX_ENCRYPTED_KEY_BYTES,
    MIN_ENCRYPTED_KEY_BYTES,
    Message,
    NewMessage,
    NewRecipient,
    Recipient,
)
from backbone.modules.messages.service import MessageService
from backbone.platform.crypto import is_valid_address
from backbone.platform.errors import InvalidPropertyValue
from backbone.platform.http import App, Query, checked_id, principal_of, read_json, send, send_page
from backbone.platform.openapi import (
    PAGE_QUERY,
    address,
    array,
    binary,
    boolean,
    describe,
    envelope,
    identifier,
    nullable,
    obj,
    paged,
    string,
    timestamp,
)

TAGS = ("Messages",)
MESSAGE = obj(
    {
        "id": string(),
        "createdAt": timestamp(),
        "createdBy": string(),
        "createdByDevice": string(),
        "body": string(),
        "attachments": array(obj({"id": string()})),
        "recipients": array(
            obj(
                {
                    "address": string(),
                    "encryptedKey": string(),
                    "receivedAt": nullable(timestamp()),
                    "receivedByDevice": nullable(string()),
                }
            )
        ),
    }
)


def render_recipient(recipient: Recipient) -> dict[str, Any]:
    return {
        "address": recipient.address,
        "encryptedKey": recipient.encrypted_key,
        "receivedAt": recipient.received_at,
        "receivedByDevice": recipient.received_by_device,
    }


def render_message(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "createdAt": message.created_at,
        "createdBy": message.created_by,
        "createdByDevice": message.created_by_device,
        "body": message.body,
        "attachments": [{"id": file_id} for file_id in message.attachments],
        "recipients": [render_recipient(recipient) for recipient in message.recipients],
    }


class MessagesResource:
    def __init__(self, messages: MessageService) -> None:
        self._messages = messages

    @describe(
        "Send a message to peers the caller has a relationship with",
        {201: envelope(obj({"id": string(), "createdAt": timestamp()}))},
        body=obj(
            {
                "recipients": array(
                    obj({"address": address(), "encryptedKey": binary(min_length=1)}), min_items=1
                ),
                "body": binary(min_length=1),
                "attachments": array(obj({"id": identifier("FIL")}), max_items=MAX_ATTACHMENTS),
            },
            optional=["attachments"],
        ),
        tags=TAGS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, required=True)
        recipients = []
        for item in body.objects("recipients"):
            address = item.required_text("address")
            if not is_valid_address(address):
                raise InvalidPropertyValue(f"'{item.name('address')}' is not a valid identity address.")
            key = item.required_binary(
                "encryptedKey", min_bytes=MIN_ENCRYPTED_KEY_BYTES, max_bytes=MAX_ENCRYPTED_KEY_BYTES
            )
            recipients.append(NewRecipient(address, key))
        attachments = body.objects("attachments", required=False)
        if len(attachments) > MAX_ATTACHMENTS:
            raise InvalidPropertyValue(f"'attachments' must not contain more than {MAX_ATTACHMENTS} items.")
        new = NewMessage(
            recipients=tuple(recipients),
            body=body.required_binary("body", min_bytes=1, max_bytes=MAX_BODY_BYTES),
            # A file attached twice is one attachment.
            attachments=tuple(
                dict.fromkeys(
                    checked_id(item.required_text("id"), "FIL", item.name("id")) for item in attachments
                )
            ),
        )
        message = self._messages.send(principal_of(req), new)
        send(resp, {"id": message.id, "createdAt": message.created_at}, 201)

    @describe(
        "The caller's messages (all, or by id); a recipient's first read marks them received",
        {200: paged(MESSAGE)},
        query={"ids": array(identifier("MSG")), **PAGE_QUERY},
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = Query(req)
        ids = [checked_id(value, "MSG", "ids") for value in query.texts("ids")]
        paged = self._messages.find_many(principal_of(req), ids or None, query.page())
        send_page(resp, paged, render_message)


class MessageResource:
    def __init__(self, messages: MessageService) -> None:
        self._messages = messages

    @describe(
        "A message of the caller; a recipient's first read marks it received",
        {200: envelope(MESSAGE)},
        path={"id": identifier("MSG")},
        query={"noBody": boolean()},
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        send(resp, render_message(self._messages.get(principal_of(req), checked_id(id, "MSG"))))


def add_message_routes(app: App, messages: MessageService) -> None:
    app.add_route("/api/v2/Messages", MessagesResource(messages))
    app.add_route("/api/v2/Messages/{id}", MessageResource(messages))
