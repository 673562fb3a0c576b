"""Tables and queries of tier quota definitions and individual quotas."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backbone.modules.quotas.model import (
    IndividualQuota,
    MetricKey,
    MetricStatus,
    QuotaPeriod,
    TierQuotaDefinition,
    duplicate_quota,
)
from backbone.platform.db import (
    Database,
    UtcDateTime,
    address_column,
    id_column,
    metadata,
    violation_raises,
)

tier_quota_definitions = sa.Table(
    "tier_quota_definitions",
    metadata,
    id_column(primary_key=True),
    id_column("tier_id", nullable=False),
    sa.Column("metric_key", sa.String(50), nullable=False),
    sa.Column("max", sa.Integer, nullable=False),
    sa.Column("period", sa.SmallInteger, nullable=False),
    # One definition per metric and period of a tier (the original's duplicate rule).
    sa.UniqueConstraint("tier_id", "metric_key", "period"),
)

individual_quotas = sa.Table(
    "individual_quotas",
    metadata,
    id_column(primary_key=True),
    address_column("apply_to", nullable=False),
    sa.Column("metric_key", sa.String(50), nullable=False),
    sa.Column("max", sa.Integer, nullable=False),
    sa.Column("period", sa.SmallInteger, nullable=False),
    sa.UniqueConstraint("apply_to", "metric_key", "period"),
)

# Precomputed by the handlers, read by every quota-checked request: one cheap primary-key lookup.
metric_statuses = sa.Table(
    "metric_statuses",
    metadata,
    address_column("owner", primary_key=True),
    sa.Column("metric_key", sa.String(50), primary_key=True),
    sa.Column("is_exhausted_until", UtcDateTime),
)

_EXHAUSTED = (
    sa.select(metric_statuses.c.metric_key, metric_statuses.c.is_exhausted_until)
    .where(
        metric_statuses.c.owner == sa.bindparam("owner"),
        metric_statuses.c.metric_key.in_(sa.bindparam("metric_keys", expanding=True)),
        metric_statuses.c.is_exhausted_until > sa.bindparam("now"),
    )
    .order_by(metric_statuses.c.metric_key)
)


# Whether any quota of a tier or of the identity itself limits one of the metrics: most
# identities have none, and then usage changes need no recount.
_ANY_LIMIT = sa.union_all(
    sa.select(individual_quotas.c.id).where(
        individual_quotas.c.apply_to == sa.bindparam("owner"),
        individual_quotas.c.metric_key.in_(sa.bindparam("metric_keys", expanding=True)),
    ),
    sa.select(tier_quota_definitions.c.id).where(
        tier_quota_definitions.c.tier_id == sa.bindparam("tier_id"),
        tier_quota_definitions.c.metric_key.in_(sa.bindparam("tier_metric_keys", expanding=True)),
    ),
).limit(1)
_DEFINITIONS_OF_TIER = (
    sa.select(tier_quota_definitions)
    .where(tier_quota_definitions.c.tier_id == sa.bindparam("tier_id"))
    .order_by(tier_quota_definitions.c.metric_key, tier_quota_definitions.c.period)
)
_INDIVIDUAL_OF = (
    sa.select(individual_quotas)
    .where(individual_quotas.c.apply_to == sa.bindparam("owner"))
    .order_by(individual_quotas.c.metric_key, individual_quotas.c.period)
)


def _definition(row: Any) -> TierQuotaDefinition:
    return TierQuotaDefinition(
        row.id, row.tier_id, MetricKey[row.metric_key], row.max, QuotaPeriod(row.period)
    )


def _individual(row: Any) -> IndividualQuota:
    return IndividualQuota(row.id, row.apply_to, MetricKey[row.metric_key], row.max, QuotaPeriod(row.period))


class QuotaRepository:
    def add_definition(self, connection: Connection, definition: TierQuotaDefinition) -> None:
        # A concurrent definition of the same metric and period passed the service's check.
        with violation_raises(duplicate_quota):
            connection.execute(
                tier_quota_definitions.insert().values(
                    id=definition.id,
                    tier_id=definition.tier_id,
                    metric_key=definition.metric.name,
                    max=definition.max,
                    period=definition.period.value,
                )
            )

    def definitions_of(self, connection: Connection, tier_id: str) -> list[TierQuotaDefinition]:
        return [_definition(row) for row in connection.execute(_DEFINITIONS_OF_TIER, {"tier_id": tier_id})]

    def any_limit(
        self, connection: Connection, owner: str, tier_id: str, metrics: Sequence[MetricKey]
    ) -> bool:
        """Whether an individual quota of the identity or a quota of its tier limits any of the metrics."""
        keys = [metric.name for metric in metrics]
        parameters = {"owner": owner, "metric_keys": keys, "tier_id": tier_id, "tier_metric_keys": keys}
        return connection.execute(_ANY_LIMIT, parameters).first() is not None

    def delete_definition(self, connection: Connection, tier_id: str, definition_id: str) -> bool:
        statement = tier_quota_definitions.delete().where(
            tier_quota_definitions.c.tier_id == tier_id, tier_quota_definitions.c.id == definition_id
        )
        return connection.execute(statement).rowcount == 1

    def delete_definitions_of(self, connection: Connection, tier_id: str) -> None:
        connection.execute(tier_quota_definitions.delete().where(tier_quota_definitions.c.tier_id == tier_id))

    def add_individual(self, connection: Connection, quota: IndividualQuota) -> None:
        with violation_raises(duplicate_quota):
            connection.execute(
                individual_quotas.insert().values(
                    id=quota.id,
                    apply_to=quota.address,
                    metric_key=quota.metric.name,
                    max=quota.max,
                    period=quota.period.value,
                )
            )

    def individual_of(self, connection: Connection, address: str) -> list[IndividualQuota]:
        return [_individual(row) for row in connection.execute(_INDIVIDUAL_OF, {"owner": address})]

    def delete_individual(self, connection: Connection, address: str, quota_id: str) -> MetricKey | None:
        """Delete the quota; return its metric, or None if there was no such quota."""
        statement = (
            individual_quotas.delete()
            .where(individual_quotas.c.apply_to == address, individual_quotas.c.id == quota_id)
            .returning(individual_quotas.c.metric_key)
        )
        key = connection.execute(statement).scalar_one_or_none()
        return None if key is None else MetricKey[key]

    def individual_quota_owners(self, connection: Connection) -> list[str]:
        return list(connection.execute(sa.select(individual_quotas.c.apply_to).distinct()).scalars())

    def delete_individual_of(self, connection: Connection, address: str) -> None:
        connection.execute(individual_quotas.delete().where(individual_quotas.c.apply_to == address))

    def save_status(self, connection: Connection, owner: str, status: MetricStatus, db: Database) -> None:
        upsert = db.upsert(
            metric_statuses,
            ["owner", "metric_key"],
            {
                "owner": owner,
                "metric_key": status.metric.name,
                "is_exhausted_until": status.is_exhausted_until,
            },
        )
        connection.execute(upsert)

    def exhausted(
        self, connection: Connection, owner: str, metric_keys: Sequence[str], now: datetime
    ) -> list[tuple[str, datetime]]:
        rows = connection.execute(_EXHAUSTED, {"owner": owner, "metric_keys": list(metric_keys), "now": now})
        return [(row.metric_key, row.is_exhausted_until) for row in rows]

    def statuses_of(self, connection: Connection, owner: str) -> list[MetricStatus]:
        statement = sa.select(metric_statuses).where(metric_statuses.c.owner == owner)
        return [
            MetricStatus(MetricKey[row.metric_key], row.is_exhausted_until)
            for row in connection.execute(statement)
        ]

    def delete_statuses_of(self, connection: Connection, owner: str) -> None:
        connection.execute(metric_statuses.delete().where(metric_statuses.c.owner == owner))
