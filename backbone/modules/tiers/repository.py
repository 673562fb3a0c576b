"""The tiers table and its queries. Its migration stays in the devices branch
(`devices_0001_identities_devices_clients_tiers`): the schema did not change when the code moved."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backbone.modules.tiers import model
from backbone.modules.tiers.model import Tier
from backbone.platform.db import id_column, metadata, violation_raises

tiers = sa.Table(
    "tiers",
    metadata,
    id_column(primary_key=True),
    sa.Column("name", sa.Unicode(30), nullable=False, unique=True),
    sa.Column("can_be_used_as_default_for_client", sa.Boolean, nullable=False),
    sa.Column("can_be_manually_assigned", sa.Boolean, nullable=False),
)


def _tier(row: Any) -> Tier:
    return Tier(row.id, row.name, row.can_be_used_as_default_for_client, row.can_be_manually_assigned)


class TierRepository:
    def add(self, connection: Connection, tier: Tier) -> None:
        # A concurrent creation of the same name passed the service's check; the unique name refuses it.
        with violation_raises(model.tier_name_already_exists):
            connection.execute(
                tiers.insert().values(
                    id=tier.id,
                    name=tier.name,
                    can_be_used_as_default_for_client=tier.can_be_used_as_default_for_client,
                    can_be_manually_assigned=tier.can_be_manually_assigned,
                )
            )

    def find(self, connection: Connection, tier_id: str) -> Tier | None:
        row = connection.execute(sa.select(tiers).where(tiers.c.id == tier_id)).first()
        return None if row is None else _tier(row)

    def find_by_name(self, connection: Connection, name: str) -> Tier | None:
        row = connection.execute(sa.select(tiers).where(tiers.c.name == name)).first()
        return None if row is None else _tier(row)

    def all(self, connection: Connection) -> list[Tier]:
        """Every tier, by name."""
        return [_tier(row) for row in connection.execute(sa.select(tiers).order_by(tiers.c.name))]

    def delete(self, connection: Connection, tier_id: str) -> bool:
        return connection.execute(tiers.delete().where(tiers.c.id == tier_id)).rowcount == 1
