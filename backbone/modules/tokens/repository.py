"""Tables and queries of tokens and their allocations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backbone.modules.tokens.model import Token
from backbone.platform.db import (
    Database,
    Page,
    Paged,
    UtcDateTime,
    address_column,
    count_created,
    fetch_page,
    id_column,
    metadata,
)

tokens = sa.Table(
    "tokens",
    metadata,
    id_column(primary_key=True),
    address_column("created_by"),
    id_column("created_by_device"),
    address_column("for_identity"),
    sa.Column("password", sa.LargeBinary),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("content", sa.LargeBinary),
    sa.Column("access_failed_count", sa.Integer, nullable=False),
    sa.Index("ix_tokens_created_by", "created_by"),
)

token_allocations = sa.Table(
    "token_allocations",
    metadata,
    id_column("token_id", primary_key=True),
    address_column("allocated_by", primary_key=True),
    id_column("allocated_by_device", nullable=False),
    sa.Column("allocated_at", UtcDateTime, nullable=False),
    sa.Index("ix_token_allocations_allocated_by", "allocated_by"),
)


def _token(row: Any) -> Token:
    return Token(
        id=row.id,
        created_by=row.created_by,
        created_by_device=row.created_by_device,
        for_identity=row.for_identity,
        password=row.password,
        created_at=row.created_at,
        expires_at=row.expires_at,
        content=row.content,
        access_failed_count=row.access_failed_count,
    )


class TokenRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._allocate = db.insert_ignoring_conflicts(token_allocations, ["token_id", "allocated_by"])

    def add(self, connection: Connection, token: Token) -> None:
        connection.execute(
            tokens.insert().values(
                id=token.id,
                created_by=token.created_by,
                created_by_device=token.created_by_device,
                for_identity=token.for_identity,
                password=token.password,
                created_at=token.created_at,
                expires_at=token.expires_at,
                content=token.content,
                access_failed_count=token.access_failed_count,
            )
        )

    def find(self, connection: Connection, token_id: str, *, lock: bool = False) -> Token | None:
        statement = sa.select(tokens).where(tokens.c.id == token_id)
        if lock:
            statement = self._db.for_update(statement, tokens)
        row = connection.execute(statement).first()
        return None if row is None else _token(row)

    def is_allocated(self, connection: Connection, token_id: str, address: str) -> bool:
        statement = sa.select(token_allocations.c.token_id).where(
            token_allocations.c.token_id == token_id, token_allocations.c.allocated_by == address
        )
        return connection.execute(statement).first() is not None

    def allocate(
        self, connection: Connection, token_id: str, address: str, device_id: str, at: datetime
    ) -> None:
        connection.execute(
            self._allocate,
            {
                "token_id": token_id,
                "allocated_by": address,
                "allocated_by_device": device_id,
                "allocated_at": at,
            },
        )

    def count_failed_access(self, connection: Connection, token_id: str) -> int:
        """Add one failed password attempt; return the new count."""
        statement = (
            tokens.update()
            .where(tokens.c.id == token_id)
            .values(access_failed_count=tokens.c.access_failed_count + 1)
            .returning(tokens.c.access_failed_count)
        )
        return int(connection.execute(statement).scalar_one())

    def set_content(
        self, connection: Connection, token_id: str, content: bytes, created_by: str, created_by_device: str
    ) -> None:
        connection.execute(
            tokens.update()
            .where(tokens.c.id == token_id)
            .values(content=content, created_by=created_by, created_by_device=created_by_device)
        )

    def delete(self, connection: Connection, token_id: str) -> None:
        connection.execute(token_allocations.delete().where(token_allocations.c.token_id == token_id))
        connection.execute(tokens.delete().where(tokens.c.id == token_id))

    def find_page(self, connection: Connection, token_ids: Sequence[str], address: str, page: Page) -> Paged:
        allocated = sa.select(token_allocations.c.token_id).where(token_allocations.c.allocated_by == address)
        statement = (
            sa.select(tokens)
            .where(
                tokens.c.id.in_(list(token_ids)),
                sa.or_(tokens.c.created_by == address, tokens.c.id.in_(allocated)),
            )
            .order_by(tokens.c.created_at, tokens.c.id)
        )
        paged = fetch_page(connection, statement, page)
        return Paged([_token(row) for row in paged.items], paged.page, paged.total_records)

    def page_created_by(self, connection: Connection, address: str, page: Page) -> Paged:
        statement = (
            sa.select(tokens).where(tokens.c.created_by == address).order_by(tokens.c.created_at, tokens.c.id)
        )
        paged = fetch_page(connection, statement, page)
        return Paged([_token(row) for row in paged.items], paged.page, paged.total_records)

    def reset_access_failed_count(self, connection: Connection, token_id: str) -> bool:
        statement = tokens.update().where(tokens.c.id == token_id).values(access_failed_count=0)
        return connection.execute(statement).rowcount == 1

    def count_created(
        self, connection: Connection, address: str, since: datetime | None, until: datetime
    ) -> int:
        return count_created(connection, tokens, address, since, until)

    def delete_of_identity(self, connection: Connection, address: str) -> int:
        """Tokens the identity created or that were only for it, and its allocations."""
        doomed = sa.select(tokens.c.id).where(
            sa.or_(tokens.c.created_by == address, tokens.c.for_identity == address)
        )
        connection.execute(
            token_allocations.delete().where(
                sa.or_(token_allocations.c.allocated_by == address, token_allocations.c.token_id.in_(doomed))
            )
        )
        statement = tokens.delete().where(
            sa.or_(tokens.c.created_by == address, tokens.c.for_identity == address)
        )
        return int(connection.execute(statement).rowcount)

    def delete_expired(self, connection: Connection, before: datetime) -> int:
        doomed = sa.select(tokens.c.id).where(tokens.c.expires_at < before)
        connection.execute(token_allocations.delete().where(token_allocations.c.token_id.in_(doomed)))
        return int(connection.execute(tokens.delete().where(tokens.c.expires_at < before)).rowcount)
