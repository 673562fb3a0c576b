"""Tables and queries of file metadata (the contents live in the blob store, named by file id)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backbone.modules.files.model import File
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

file_metadata = sa.Table(
    "file_metadata",
    metadata,
    id_column(primary_key=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    address_column("created_by", nullable=False),
    id_column("created_by_device", nullable=False),
    sa.Column("modified_at", UtcDateTime, nullable=False),
    address_column("modified_by", nullable=False),
    id_column("modified_by_device", nullable=False),
    sa.Column("deleted_at", UtcDateTime),
    address_column("deleted_by"),
    id_column("deleted_by_device"),
    address_column("owner", nullable=False),
    sa.Column("owner_signature", sa.LargeBinary, nullable=False),
    sa.Column("ownership_token", sa.String(20), nullable=False),
    sa.Column("ownership_is_locked", sa.Boolean, nullable=False),
    sa.Column("last_ownership_claim_at", UtcDateTime),
    sa.Column("cipher_size", sa.BigInteger, nullable=False),
    sa.Column("cipher_hash", sa.LargeBinary, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("encrypted_properties", sa.LargeBinary, nullable=False),
    sa.Index("ix_file_metadata_created_by", "created_by", "created_at"),
)


def _file(row: Any) -> File:
    return File(
        id=row.id,
        created_at=row.created_at,
        created_by=row.created_by,
        created_by_device=row.created_by_device,
        modified_at=row.modified_at,
        modified_by=row.modified_by,
        modified_by_device=row.modified_by_device,
        deleted_at=row.deleted_at,
        deleted_by=row.deleted_by,
        deleted_by_device=row.deleted_by_device,
        owner=row.owner,
        owner_signature=row.owner_signature,
        ownership_token=row.ownership_token,
        ownership_is_locked=row.ownership_is_locked,
        cipher_size=row.cipher_size,
        cipher_hash=row.cipher_hash,
        expires_at=row.expires_at,
        encrypted_properties=row.encrypted_properties,
    )


_FILE_BY_ID = sa.select(file_metadata).where(file_metadata.c.id == sa.bindparam("file_id"))
# Uploads are a hot path: the insert is built once, with the columns an upload sets.
_INSERTED_COLUMNS = (
    "id",
    "created_at",
    "created_by",
    "created_by_device",
    "modified_at",
    "modified_by",
    "modified_by_device",
    "owner",
    "owner_signature",
    "ownership_token",
    "ownership_is_locked",
    "cipher_size",
    "cipher_hash",
    "expires_at",
    "encrypted_properties",
)
_INSERT_FILE = file_metadata.insert().values({name: sa.bindparam(name) for name in _INSERTED_COLUMNS})


class FileRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, connection: Connection, file: File) -> None:
        connection.execute(_INSERT_FILE, {name: getattr(file, name) for name in _INSERTED_COLUMNS})

    def find(self, connection: Connection, file_id: str, *, lock: bool = False) -> File | None:
        statement = self._db.for_update(_FILE_BY_ID, file_metadata) if lock else _FILE_BY_ID
        row = connection.execute(statement, {"file_id": file_id}).first()
        return None if row is None else _file(row)

    def find_page(
        self, connection: Connection, created_by: str, file_ids: Sequence[str], now: datetime, page: Page
    ) -> Paged:
        """The caller's own files, oldest first, optionally only the given ids."""
        statement = sa.select(file_metadata).where(
            file_metadata.c.created_by == created_by,
            file_metadata.c.deleted_at.is_(None),
            file_metadata.c.expires_at > now,
        )
        if file_ids:
            statement = statement.where(file_metadata.c.id.in_(list(file_ids)))
        paged = fetch_page(
            connection, statement.order_by(file_metadata.c.created_at, file_metadata.c.id), page
        )
        return Paged([_file(row) for row in paged.items], paged.page, paged.total_records)

    def set_ownership(
        self,
        connection: Connection,
        file_id: str,
        *,
        owner: str,
        token: str,
        locked: bool,
        claimed_at: datetime | None = None,
    ) -> None:
        values: dict[str, Any] = {"owner": owner, "ownership_token": token, "ownership_is_locked": locked}
        if claimed_at is not None:
            values["last_ownership_claim_at"] = claimed_at
        connection.execute(file_metadata.update().where(file_metadata.c.id == file_id).values(values))

    def lock_ownership(self, connection: Connection, file_id: str) -> None:
        connection.execute(
            file_metadata.update().where(file_metadata.c.id == file_id).values(ownership_is_locked=True)
        )

    def delete(self, connection: Connection, file_id: str) -> None:
        connection.execute(file_metadata.delete().where(file_metadata.c.id == file_id))

    def ids(self, connection: Connection) -> list[str]:
        """Every stored file id (consistency checks against the blob store)."""
        return sorted(connection.execute(sa.select(file_metadata.c.id)).scalars())

    def count_created(
        self, connection: Connection, address: str, since: datetime | None, until: datetime
    ) -> int:
        return count_created(connection, file_metadata, address, since, until)

    def stored_bytes(
        self, connection: Connection, address: str, since: datetime | None, until: datetime
    ) -> int:
        return count_created(connection, file_metadata, address, since, until, total_of="cipher_size")

    def ids_of_identity(self, connection: Connection, address: str) -> list[str]:
        statement = sa.select(file_metadata.c.id).where(
            sa.or_(file_metadata.c.created_by == address, file_metadata.c.owner == address)
        )
        return list(connection.execute(statement).scalars())

    def expired_ids(self, connection: Connection, before: datetime) -> list[str]:
        return list(
            connection.execute(
                sa.select(file_metadata.c.id).where(file_metadata.c.expires_at < before)
            ).scalars()
        )

    def delete_many(self, connection: Connection, file_ids: Sequence[str]) -> None:
        connection.execute(file_metadata.delete().where(file_metadata.c.id.in_(list(file_ids))))
