"""Hashed usernames of deleted identities (so `IsDeleted` keeps answering after the deletion).

Revision ID: devices_0004
Revises: devices_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backbone.platform.db import UtcDateTime

revision = "devices_0004"
down_revision = "devices_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deleted_usernames",
        sa.Column("username_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("deleted_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("username_hash", name="pk_deleted_usernames"),
    )


def downgrade() -> None:
    op.drop_table("deleted_usernames")
