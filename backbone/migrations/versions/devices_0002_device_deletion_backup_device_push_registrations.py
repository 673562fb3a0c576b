"""Deleted devices, at most one backup device per identity, push notification registrations.

Revision ID: devices_0002
Revises: devices_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backbone.platform.db import UtcDateTime

revision = "devices_0002"
down_revision = "devices_0001"
branch_labels = None
depends_on = None

_ONE_BACKUP_DEVICE = "is_backup_device AND deleted_at IS NULL"
# A filtered index compares a bit column with a value; it takes no bare boolean.
_ONE_BACKUP_DEVICE_ON_SQL_SERVER = "is_backup_device = 1 AND deleted_at IS NULL"


def upgrade() -> None:
    op.add_column("devices", sa.Column("deleted_at", UtcDateTime))
    op.add_column("devices", sa.Column("deleted_by_device", sa.String(20)))
    op.create_index(
        "ix_devices_one_backup_device_per_identity",
        "devices",
        ["identity_address"],
        unique=True,
        sqlite_where=sa.text(_ONE_BACKUP_DEVICE),
        postgresql_where=sa.text(_ONE_BACKUP_DEVICE),
        mssql_where=sa.text(_ONE_BACKUP_DEVICE_ON_SQL_SERVER),
    )
    op.create_table(
        "pns_registrations",
        sa.Column("device_id", sa.String(20), nullable=False),
        sa.Column("identity_address", sa.String(80), nullable=False),
        sa.Column("device_push_identifier", sa.String(20), nullable=False),
        sa.Column("handle", sa.String(510), nullable=False),
        sa.Column("app_id", sa.Text, nullable=False),
        sa.Column("environment", sa.SmallInteger, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("device_id", name="pk_pns_registrations"),
        sa.UniqueConstraint("device_push_identifier", name="uq_pns_registrations_device_push_identifier"),
    )
    op.create_index("ix_pns_registrations_identity_address", "pns_registrations", ["identity_address"])


def downgrade() -> None:
    op.drop_table("pns_registrations")
    op.drop_index("ix_devices_one_backup_device_per_identity", table_name="devices")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("deleted_by_device")
        batch.drop_column("deleted_at")
