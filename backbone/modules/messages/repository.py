"""Tables and queries of messages, their attachments and recipients."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backbone.modules.messages.model import Message, MessageExport, Recipient
from backbone.platform.db import (
    Page,
    Paged,
    UtcDateTime,
    address_column,
    count_created,
    fetch_page,
    id_column,
    metadata,
)

messages = sa.Table(
    "messages",
    metadata,
    id_column(primary_key=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    address_column("created_by", nullable=False),
    id_column("created_by_device", nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Index("ix_messages_created_by", "created_by", "created_at"),
)

message_attachments = sa.Table(
    "message_attachments",
    metadata,
    id_column("message_id", primary_key=True),
    id_column("file_id", primary_key=True),
)

message_recipients = sa.Table(
    "message_recipients",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    id_column("message_id", nullable=False),
    address_column("address", nullable=False),
    id_column("relationship_id", nullable=False),
    sa.Column("encrypted_key", sa.LargeBinary, nullable=False),
    sa.Column("received_at", UtcDateTime),
    id_column("received_by_device"),
    sa.Column("decomposed_by_recipient", sa.Boolean, nullable=False),
    sa.Column("decomposed_by_sender", sa.Boolean, nullable=False),
    sa.Index("ix_message_recipients_message_id", "message_id"),
    sa.Index("ix_message_recipients_address", "address", "received_at"),
    sa.Index("ix_message_recipients_relationship_id", "relationship_id"),
)


def _recipient(row: Any) -> Recipient:
    return Recipient(
        address=row.address,
        relationship_id=row.relationship_id,
        encrypted_key=row.encrypted_key,
        received_at=row.received_at,
        received_by_device=row.received_by_device,
        decomposed_by_recipient=row.decomposed_by_recipient,
        decomposed_by_sender=row.decomposed_by_sender,
    )


def _visible_to(address: Any) -> Any:
    """Messages the identity sent (to someone it has not decomposed with) or received (and kept)."""
    recipient = message_recipients
    sent = sa.and_(
        messages.c.created_by == address,
        sa.exists().where(recipient.c.message_id == messages.c.id, sa.not_(recipient.c.decomposed_by_sender)),
    )
    received = sa.exists().where(
        recipient.c.message_id == messages.c.id,
        recipient.c.address == address,
        sa.not_(recipient.c.decomposed_by_recipient),
    )
    return sa.or_(sent, received)


# The statements of the authenticated read (a message and its parts), built once.
_FIND_VISIBLE = sa.select(messages).where(
    messages.c.id == sa.bindparam("message_id", type_=sa.String),
    _visible_to(sa.bindparam("address", type_=sa.String)),
)
_MESSAGE_IDS: sa.BindParameter[str] = sa.bindparam("ids", expanding=True)
_RECIPIENTS_OF = (
    sa.select(message_recipients)
    .where(message_recipients.c.message_id.in_(_MESSAGE_IDS))
    .order_by(message_recipients.c.id)
)
_ATTACHMENTS_OF = (
    sa.select(message_attachments)
    .where(message_attachments.c.message_id.in_(_MESSAGE_IDS))
    .order_by(message_attachments.c.file_id)
)

# The statements of a send, built once too.
_ADD_MESSAGE = messages.insert()
_ADD_ATTACHMENTS = message_attachments.insert()
_ADD_RECIPIENTS = message_recipients.insert()
_COUNT_UNRECEIVED = (
    sa.select(sa.func.count())
    .select_from(message_recipients.join(messages, messages.c.id == message_recipients.c.message_id))
    .where(
        messages.c.created_by == sa.bindparam("sender", type_=sa.String),
        message_recipients.c.address == sa.bindparam("recipient", type_=sa.String),
        message_recipients.c.received_at.is_(None),
    )
)

_FIRST_RECIPIENT = message_recipients.alias("first_recipient")
_FIRST_RECIPIENT_ID = (
    sa.select(sa.func.min(message_recipients.c.id))
    .where(message_recipients.c.message_id == messages.c.id)
    .scalar_subquery()
)
_EXPORT_MESSAGES = (
    sa.select(
        messages.c.id,
        messages.c.created_by,
        messages.c.created_at,
        sa.func.length(messages.c.body).label("cipher_size"),
        _FIRST_RECIPIENT.c.address,
        _FIRST_RECIPIENT.c.relationship_id,
        _FIRST_RECIPIENT.c.received_at,
    )
    .select_from(messages.outerjoin(_FIRST_RECIPIENT, _FIRST_RECIPIENT.c.id == _FIRST_RECIPIENT_ID))
    .order_by(messages.c.created_at, messages.c.id)
    .execution_options(yield_per=1000)
)


class MessageRepository:
    def export_messages(self, connection: Connection) -> Iterator[MessageExport]:
        for row in connection.execute(_EXPORT_MESSAGES):
            yield MessageExport(
                id=row.id,
                created_by=row.created_by,
                created_at=row.created_at,
                cipher_size=int(row.cipher_size),
                recipient=row.address,
                relationship_id=row.relationship_id,
                received_at=row.received_at,
            )

    def add(self, connection: Connection, message: Message) -> None:
        connection.execute(
            _ADD_MESSAGE,
            {
                "id": message.id,
                "created_at": message.created_at,
                "created_by": message.created_by,
                "created_by_device": message.created_by_device,
                "body": message.body,
            },
        )
        if message.attachments:
            connection.execute(
                _ADD_ATTACHMENTS,
                [{"message_id": message.id, "file_id": file_id} for file_id in message.attachments],
            )
        connection.execute(
            _ADD_RECIPIENTS,
            [
                {
                    "message_id": message.id,
                    "address": recipient.address,
                    "relationship_id": recipient.relationship_id,
                    "encrypted_key": recipient.encrypted_key,
                    "received_at": None,
                    "received_by_device": None,
                    "decomposed_by_recipient": False,
                    "decomposed_by_sender": False,
                }
                for recipient in message.recipients
            ],
        )

    def count_unreceived(self, connection: Connection, sender: str, recipient: str) -> int:
        counted = connection.execute(_COUNT_UNRECEIVED, {"sender": sender, "recipient": recipient})
        return int(counted.scalar_one())

    def find_visible(self, connection: Connection, message_id: str, address: str) -> Message | None:
        rows = list(connection.execute(_FIND_VISIBLE, {"message_id": message_id, "address": address}))
        found = self._assemble(connection, rows)
        return found[0] if found else None

    def find_page(
        self, connection: Connection, message_ids: Sequence[str] | None, address: str, page: Page
    ) -> Paged:
        statement = (
            sa.select(messages).where(_visible_to(address)).order_by(messages.c.created_at, messages.c.id)
        )
        if message_ids is not None:
            statement = statement.where(messages.c.id.in_(list(message_ids)))
        paged = fetch_page(connection, statement, page)
        return Paged(self._assemble(connection, paged.items), paged.page, paged.total_records)

    def page_of_participant(
        self, connection: Connection, participant: str, incoming: bool, page: Page
    ) -> Paged:
        """Messages the identity received (incoming) or sent (outgoing), oldest first, as stored."""
        condition: sa.ColumnElement[bool]
        if incoming:
            condition = sa.exists().where(
                message_recipients.c.message_id == messages.c.id, message_recipients.c.address == participant
            )
        else:
            condition = messages.c.created_by == participant
        statement = sa.select(messages).where(condition).order_by(messages.c.created_at, messages.c.id)
        paged = fetch_page(connection, statement, page)
        return Paged(self._assemble(connection, paged.items), paged.page, paged.total_records)

    def _assemble(self, connection: Connection, rows: Sequence[Any]) -> list[Message]:
        if not rows:
            return []
        ids = {"ids": [row.id for row in rows]}
        recipients: dict[str, list[Recipient]] = {}
        for row in connection.execute(_RECIPIENTS_OF, ids):
            recipients.setdefault(row.message_id, []).append(_recipient(row))
        attachments: dict[str, list[str]] = {}
        for row in connection.execute(_ATTACHMENTS_OF, ids):
            attachments.setdefault(row.message_id, []).append(row.file_id)
        return [
            Message(
                id=row.id,
                created_at=row.created_at,
                created_by=row.created_by,
                created_by_device=row.created_by_device,
                body=row.body,
                attachments=tuple(attachments.get(row.id, ())),
                recipients=tuple(recipients.get(row.id, ())),
            )
            for row in rows
        ]

    def mark_received(
        self, connection: Connection, message_ids: Sequence[str], address: str, device_id: str, at: datetime
    ) -> None:
        connection.execute(
            message_recipients.update()
            .where(
                message_recipients.c.message_id.in_(list(message_ids)),
                message_recipients.c.address == address,
                message_recipients.c.received_at.is_(None),
            )
            .values(received_at=at, received_by_device=device_id)
        )

    def decompose(
        self, connection: Connection, relationship_id: str, decomposer: str, anonymous: str
    ) -> None:
        """Hide the messages of a relationship from the side that decomposed it."""
        of_relationship = message_recipients.c.relationship_id == relationship_id
        connection.execute(
            message_recipients.update()
            .where(of_relationship, message_recipients.c.address == decomposer)
            .values(decomposed_by_recipient=True)
        )
        connection.execute(
            message_recipients.update()
            .where(of_relationship, message_recipients.c.address != decomposer)
            .values(decomposed_by_sender=True)
        )
        # Once both sides forgot a message, nothing needs to know who received it.
        connection.execute(
            message_recipients.update()
            .where(
                of_relationship,
                message_recipients.c.decomposed_by_recipient,
                message_recipients.c.decomposed_by_sender,
            )
            .values(address=anonymous)
        )

    def count_sent(self, connection: Connection, sender: str, since: datetime | None, until: datetime) -> int:
        return count_created(connection, messages, sender, since, until)

    def remove_participant(self, connection: Connection, address: str, anonymous: str) -> None:
        """A deleted identity forgets all its messages and is known by the anonymous address only."""
        sent = sa.select(messages.c.id).where(messages.c.created_by == address)
        connection.execute(
            message_recipients.update()
            .where(message_recipients.c.message_id.in_(sent))
            .values(decomposed_by_sender=True)
        )
        connection.execute(
            message_recipients.update()
            .where(message_recipients.c.address == address)
            .values(decomposed_by_recipient=True, address=anonymous)
        )
        connection.execute(
            messages.update().where(messages.c.created_by == address).values(created_by=anonymous)
        )
