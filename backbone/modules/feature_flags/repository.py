"""The table and queries of feature flags."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backbone.modules.feature_flags.model import MAX_NAME_LENGTH
from backbone.platform.db import Database, address_column, metadata

# The original's FeatureFlags: one row per (owner, name); names keep their case.
feature_flags = sa.Table(
    "feature_flags",
    metadata,
    address_column("owner_address", primary_key=True),
    sa.Column("name", sa.String(MAX_NAME_LENGTH), primary_key=True),
    sa.Column("is_enabled", sa.Boolean, nullable=False),
)

_FLAGS_OF = (
    sa.select(feature_flags.c.name, feature_flags.c.is_enabled)
    .where(feature_flags.c.owner_address == sa.bindparam("owner"))
    .order_by(feature_flags.c.name)
)


class FeatureFlagRepository:
    def __init__(self, db: Database) -> None:
        self._set = db.upsert(
            feature_flags,
            ["owner_address", "name"],
            {column: sa.bindparam(column) for column in ("owner_address", "name", "is_enabled")},
        )

    def flags_of(self, connection: Connection, owner: str) -> dict[str, bool]:
        return {row.name: row.is_enabled for row in connection.execute(_FLAGS_OF, {"owner": owner})}

    def set(self, connection: Connection, owner: str, flags: Mapping[str, bool]) -> None:
        """Create the flags that are new and switch those that exist."""
        if flags:
            rows = [{"owner_address": owner, "name": name, "is_enabled": on} for name, on in flags.items()]
            connection.execute(self._set, rows)

    def delete_of_identity(self, connection: Connection, owner: str) -> None:
        connection.execute(feature_flags.delete().where(feature_flags.c.owner_address == owner))
