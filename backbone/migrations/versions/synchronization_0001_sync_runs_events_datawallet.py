"""Sync counters, sync runs, external events, sync errors, datawallets and their modifications.

Revision ID: synchronization_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backbone.platform.db import UtcDateTime

revision = "synchronization_0001"
down_revision = None
branch_labels = ("synchronization",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_counters",
        sa.Column("owner", sa.String(80), nullable=False),
        sa.Column("next_external_event_index", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("next_sync_run_index", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("next_modification_index", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("owner", name="pk_sync_counters"),
    )
    op.create_table(
        "datawallets",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("owner", sa.String(80), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_datawallets"),
        sa.UniqueConstraint("owner", name="uq_datawallets_owner"),
    )
    op.create_table(
        "datawallet_modifications",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("owner", sa.String(80), nullable=False),
        sa.Column("index", sa.BigInteger, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("created_by_device", sa.String(20), nullable=False),
        sa.Column("datawallet_version", sa.Integer, nullable=False),
        sa.Column("object_identifier", sa.Unicode(100), nullable=False),
        sa.Column("payload_category", sa.Unicode(50)),
        sa.Column("collection", sa.Unicode(50), nullable=False),
        sa.Column("type", sa.SmallInteger, nullable=False),
        sa.Column("encrypted_payload", sa.LargeBinary),
        sa.PrimaryKeyConstraint("id", name="pk_datawallet_modifications"),
        sa.UniqueConstraint("owner", "index", name="uq_datawallet_modifications_owner_index"),
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("type", sa.SmallInteger, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("index", sa.BigInteger, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_by_device", sa.String(20), nullable=False),
        sa.Column("finalized_at", UtcDateTime),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sync_runs"),
        sa.UniqueConstraint("created_by", "index", name="uq_sync_runs_created_by_index"),
    )
    op.create_table(
        "external_events",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("owner", sa.String(80), nullable=False),
        sa.Column("index", sa.BigInteger, nullable=False),
        sa.Column("type", sa.SmallInteger, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("payload", sa.String(200), nullable=False),
        sa.Column("sync_error_count", sa.SmallInteger, nullable=False),
        sa.Column("sync_run_id", sa.String(20)),
        sa.Column("context", sa.String(20)),
        sa.Column("is_delivery_blocked", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_external_events"),
        sa.UniqueConstraint("owner", "index", name="uq_external_events_owner_index"),
    )
    op.create_index("ix_external_events_sync_run_id", "external_events", ["sync_run_id"])
    op.create_table(
        "sync_errors",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("external_event_id", sa.String(20), nullable=False),
        sa.Column("sync_run_id", sa.String(20), nullable=False),
        sa.Column("error_code", sa.String(100), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sync_errors"),
    )
    op.create_index("ix_sync_errors_external_event_id", "sync_errors", ["external_event_id"])


def downgrade() -> None:
    for table in (
        "sync_errors",
        "external_events",
        "sync_runs",
        "datawallet_modifications",
        "datawallets",
        "sync_counters",
    ):
        op.drop_table(table)
