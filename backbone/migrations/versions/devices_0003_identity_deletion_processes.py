"""Identity deletion processes and their audit log.

Revision ID: devices_0003
Revises: devices_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backbone.platform.db import UtcDateTime

revision = "devices_0003"
down_revision = "devices_0002"
branch_labels = None
depends_on = None

_OPEN_PROCESS_STATUSES = "status IN (1, 10)"


def upgrade() -> None:
    op.create_table(
        "identity_deletion_processes",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("identity_address", sa.String(80), nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("created_by_device", sa.String(20), nullable=False),
        sa.Column("cancelled_at", UtcDateTime),
        sa.Column("cancelled_by_device", sa.String(20)),
        sa.Column("grace_period_ends_at", UtcDateTime, nullable=False),
        sa.Column("grace_period_reminder1_sent_at", UtcDateTime),
        sa.Column("grace_period_reminder2_sent_at", UtcDateTime),
        sa.Column("grace_period_reminder3_sent_at", UtcDateTime),
        sa.Column("deletion_started_at", UtcDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_identity_deletion_processes"),
    )
    op.create_index(
        "ix_identity_deletion_processes_identity_address",
        "identity_deletion_processes",
        ["identity_address", "created_at"],
    )
    op.create_index(
        "ix_identity_deletion_processes_one_open_per_identity",
        "identity_deletion_processes",
        ["identity_address"],
        unique=True,
        sqlite_where=sa.text(_OPEN_PROCESS_STATUSES),
        postgresql_where=sa.text(_OPEN_PROCESS_STATUSES),
        mssql_where=sa.text(_OPEN_PROCESS_STATUSES),
    )
    op.create_table(
        "identity_deletion_process_audit_log",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("identity_deletion_process_id", sa.String(20)),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("message_key", sa.String(50), nullable=False),
        sa.Column("old_status", sa.SmallInteger),
        sa.Column("new_status", sa.SmallInteger),
        sa.Column("identity_address_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("device_id_hash", sa.LargeBinary(32)),
        sa.Column("additional_data", sa.UnicodeText),
        sa.PrimaryKeyConstraint("id", name="pk_identity_deletion_process_audit_log"),
    )
    op.create_index(
        "ix_identity_deletion_process_audit_log_identity_address_hash",
        "identity_deletion_process_audit_log",
        ["identity_address_hash"],
    )


def downgrade() -> None:
    op.drop_table("identity_deletion_process_audit_log")
    op.drop_table("identity_deletion_processes")
