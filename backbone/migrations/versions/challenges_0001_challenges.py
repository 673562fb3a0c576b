"""Challenges.

Revision ID: challenges_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backbone.platform.db import UtcDateTime

revision = "challenges_0001"
down_revision = None
branch_labels = ("challenges",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "challenges",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("created_by", sa.String(80)),
        sa.Column("created_by_device", sa.String(20)),
        sa.PrimaryKeyConstraint("id", name="pk_challenges"),
    )
    op.create_index("ix_challenges_expires_at", "challenges", ["expires_at"])


def downgrade() -> None:
    op.drop_table("challenges")
