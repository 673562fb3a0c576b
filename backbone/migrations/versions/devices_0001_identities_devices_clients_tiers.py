"""Tiers, OAuth clients, identities and devices.

Revision ID: devices_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backbone.platform.db import UtcDateTime

revision = "devices_0001"
down_revision = None
branch_labels = ("devices",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tiers",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("name", sa.Unicode(30), nullable=False),
        sa.Column("can_be_used_as_default_for_client", sa.Boolean, nullable=False),
        sa.Column("can_be_manually_assigned", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tiers"),
        sa.UniqueConstraint("name", name="uq_tiers_name"),
    )
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(200), nullable=False),
        sa.Column("display_name", sa.Unicode(200), nullable=False),
        sa.Column("client_secret_hash", sa.String(200), nullable=False),
        sa.Column("default_tier_id", sa.String(20), nullable=False),
        sa.Column("max_identities", sa.Integer),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_oauth_clients"),
    )
    op.create_table(
        "identities",
        sa.Column("address", sa.String(80), nullable=False),
        sa.Column("client_id", sa.String(200)),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("identity_version", sa.SmallInteger, nullable=False),
        sa.Column("tier_id", sa.String(20), nullable=False),
        sa.Column("tier_id_before_deletion", sa.String(20)),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("deletion_grace_period_ends_at", UtcDateTime),
        sa.PrimaryKeyConstraint("address", name="pk_identities"),
    )
    op.create_index("ix_identities_client_id", "identities", ["client_id"])
    op.create_index("ix_identities_tier_id", "identities", ["tier_id"])
    op.create_table(
        "devices",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("identity_address", sa.String(80), nullable=False),
        sa.Column("username", sa.String(20), nullable=False),
        sa.Column("normalized_username", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("created_by_device", sa.String(20), nullable=False),
        sa.Column("communication_language", sa.String(2), nullable=False),
        sa.Column("is_backup_device", sa.Boolean, nullable=False),
        sa.Column("last_login_at", UtcDateTime),
        sa.Column("access_failed_count", sa.Integer, nullable=False),
        sa.Column("lockout_end", UtcDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.UniqueConstraint("normalized_username", name="uq_devices_normalized_username"),
    )
    op.create_index("ix_devices_identity_address", "devices", ["identity_address"])


def downgrade() -> None:
    op.drop_table("devices")
    op.drop_table("identities")
    op.drop_table("oauth_clients")
    op.drop_table("tiers")
