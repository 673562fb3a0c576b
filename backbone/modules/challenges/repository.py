"""The challenges table."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backbone.modules.challenges.model import Challenge
from backbone.platform.db import UtcDateTime, address_column, id_column, metadata

challenges = sa.Table(
    "challenges",
    metadata,
    id_column(primary_key=True),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    address_column("created_by"),
    id_column("created_by_device"),
    sa.Index("ix_challenges_expires_at", "expires_at"),
)


# Built once: `POST /Challenges` is a hot path, where building the statement per request cost
# more than running it (docs/decisions.md, Hot paths).
_ADD = challenges.insert()


class ChallengeRepository:
    def add(self, connection: Connection, challenge: Challenge) -> None:
        connection.execute(
            _ADD,
            {
                "id": challenge.id,
                "expires_at": challenge.expires_at,
                "created_by": challenge.created_by,
                "created_by_device": challenge.created_by_device,
            },
        )

    def find(self, connection: Connection, challenge_id: str) -> Challenge | None:
        row = connection.execute(sa.select(challenges).where(challenges.c.id == challenge_id)).first()
        if row is None:
            return None
        return Challenge(row.id, row.expires_at, row.created_by, row.created_by_device)

    def delete_created_by(self, connection: Connection, address: str) -> int:
        return int(connection.execute(challenges.delete().where(challenges.c.created_by == address)).rowcount)

    def delete_expired(self, connection: Connection, before: datetime) -> int:
        return int(connection.execute(challenges.delete().where(challenges.c.expires_at < before)).rowcount)
