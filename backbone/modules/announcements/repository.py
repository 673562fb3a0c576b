"""Tables and queries of announcements, their texts, actions and recipients."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backbone.modules.announcements.model import (
    Announcement,
    AnnouncementAction,
    AnnouncementSeverity,
    AnnouncementText,
)
from backbone.platform.db import UtcDateTime, address_column, id_column, metadata

announcements = sa.Table(
    "announcements",
    metadata,
    id_column(primary_key=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime),
    sa.Column("severity", sa.SmallInteger, nullable=False),
    sa.Column("is_silent", sa.Boolean, nullable=False),
    sa.Column("iql_query", sa.UnicodeText),
)

announcement_texts = sa.Table(
    "announcement_texts",
    metadata,
    id_column("announcement_id", primary_key=True),
    sa.Column("language", sa.String(2), primary_key=True),
    sa.Column("title", sa.UnicodeText, nullable=False),
    sa.Column("body", sa.UnicodeText, nullable=False),
)

announcement_actions = sa.Table(
    "announcement_actions",
    metadata,
    id_column("announcement_id", primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    # {"<language>": "<text>"}, as JSON text (the original keeps it as a JSON column).
    sa.Column("display_name", sa.UnicodeText, nullable=False),
    sa.Column("link", sa.UnicodeText, nullable=False),
)

announcement_recipients = sa.Table(
    "announcement_recipients",
    metadata,
    id_column("announcement_id", primary_key=True),
    address_column("address", primary_key=True),
    sa.Index("ix_announcement_recipients_address", "address"),
)


class AnnouncementRepository:
    def add(self, connection: Connection, announcement: Announcement) -> None:
        connection.execute(
            announcements.insert().values(
                id=announcement.id,
                created_at=announcement.created_at,
                expires_at=announcement.expires_at,
                severity=announcement.severity.value,
                is_silent=announcement.is_silent,
                iql_query=announcement.iql_query,
            )
        )
        connection.execute(
            announcement_texts.insert(),
            [
                {"announcement_id": announcement.id, "language": t.language, "title": t.title, "body": t.body}
                for t in announcement.texts
            ],
        )
        if announcement.actions:
            connection.execute(
                announcement_actions.insert(),
                [
                    {
                        "announcement_id": announcement.id,
                        "position": position,
                        "display_name": orjson.dumps(dict(action.display_name)).decode("utf-8"),
                        "link": action.link,
                    }
                    for position, action in enumerate(announcement.actions)
                ],
            )
        if announcement.recipients:
            connection.execute(
                announcement_recipients.insert(),
                [
                    {"announcement_id": announcement.id, "address": address}
                    for address in announcement.recipients
                ],
            )

    def find(self, connection: Connection, announcement_id: str) -> Announcement | None:
        rows = list(connection.execute(sa.select(announcements).where(announcements.c.id == announcement_id)))
        found = self._assemble(connection, rows)
        return found[0] if found else None

    def all(self, connection: Connection) -> list[Announcement]:
        statement = sa.select(announcements).order_by(announcements.c.created_at, announcements.c.id)
        return self._assemble(connection, list(connection.execute(statement)))

    def for_identity(self, connection: Connection, address: str) -> list[Announcement]:
        """Announcements addressed to everyone (no recipients) or to the identity."""
        recipients = announcement_recipients
        to_everyone = ~sa.exists().where(recipients.c.announcement_id == announcements.c.id)
        to_address = sa.exists().where(
            recipients.c.announcement_id == announcements.c.id, recipients.c.address == address
        )
        statement = (
            sa.select(announcements)
            .where(sa.or_(to_everyone, to_address))
            .order_by(announcements.c.created_at, announcements.c.id)
        )
        return self._assemble(connection, list(connection.execute(statement)))

    def delete(self, connection: Connection, announcement_id: str) -> bool:
        for child in (announcement_texts, announcement_actions, announcement_recipients):
            connection.execute(child.delete().where(child.c.announcement_id == announcement_id))
        deleted = connection.execute(announcements.delete().where(announcements.c.id == announcement_id))
        return deleted.rowcount == 1

    def _assemble(self, connection: Connection, rows: Sequence[Any]) -> list[Announcement]:
        if not rows:
            return []
        ids = [row.id for row in rows]
        texts: dict[str, list[AnnouncementText]] = {}
        statement = (
            sa.select(announcement_texts)
            .where(announcement_texts.c.announcement_id.in_(ids))
            .order_by(announcement_texts.c.language)
        )
        for row in connection.execute(statement):
            texts.setdefault(row.announcement_id, []).append(
                AnnouncementText(row.language, row.title, row.body)
            )
        actions: dict[str, list[AnnouncementAction]] = {}
        statement = (
            sa.select(announcement_actions)
            .where(announcement_actions.c.announcement_id.in_(ids))
            .order_by(announcement_actions.c.position)
        )
        for row in connection.execute(statement):
            action = AnnouncementAction(orjson.loads(row.display_name), row.link)
            actions.setdefault(row.announcement_id, []).append(action)
        recipients: dict[str, list[str]] = {}
        statement = (
            sa.select(announcement_recipients)
            .where(announcement_recipients.c.announcement_id.in_(ids))
            .order_by(announcement_recipients.c.address)
        )
        for row in connection.execute(statement):
            recipients.setdefault(row.announcement_id, []).append(row.address)
        return [
            Announcement(
                id=row.id,
                created_at=row.created_at,
                expires_at=row.expires_at,
                severity=AnnouncementSeverity(row.severity),
                is_silent=row.is_silent,
                iql_query=row.iql_query,
                texts=tuple(texts.get(row.id, ())),
                actions=tuple(actions.get(row.id, ())),
                recipients=tuple(recipients.get(row.id, ())),
            )
            for row in rows
        ]

    def delete_expired(self, connection: Connection, before: datetime) -> int:
        doomed = list(
            connection.execute(
                sa.select(announcements.c.id).where(announcements.c.expires_at < before)
            ).scalars()
        )
        for table in (announcement_texts, announcement_actions, announcement_recipients):
            connection.execute(table.delete().where(table.c.announcement_id.in_(doomed)))
        connection.execute(announcements.delete().where(announcements.c.id.in_(doomed)))
        return len(doomed)

    def forget_recipient(self, connection: Connection, address: str) -> None:
        connection.execute(
            announcement_recipients.delete().where(announcement_recipients.c.address == address)
        )
