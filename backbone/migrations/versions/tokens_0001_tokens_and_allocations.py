"""Tokens and their allocations.

Revision ID: tokens_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backbone.platform.db import UtcDateTime

revision = "tokens_0001"
down_revision = None
branch_labels = ("tokens",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("created_by", sa.String(80)),
        sa.Column("created_by_device", sa.String(20)),
        sa.Column("for_identity", sa.String(80)),
        sa.Column("password", sa.LargeBinary),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("content", sa.LargeBinary),
        sa.Column("access_failed_count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
    )
    op.create_index("ix_tokens_created_by", "tokens", ["created_by"])
    op.create_table(
        "token_allocations",
        sa.Column("token_id", sa.String(20), nullable=False),
        sa.Column("allocated_by", sa.String(80), nullable=False),
        sa.Column("allocated_by_device", sa.String(20), nullable=False),
        sa.Column("allocated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("token_id", "allocated_by", name="pk_token_allocations"),
    )
    op.create_index("ix_token_allocations_allocated_by", "token_allocations", ["allocated_by"])


def downgrade() -> None:
    op.drop_table("token_allocations")
    op.drop_table("tokens")
