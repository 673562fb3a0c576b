"""Feature flags of identities.

Revision ID: feature_flags_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "feature_flags_0001"
down_revision = None
branch_labels = ("feature_flags",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_flags",
        sa.Column("owner_address", sa.String(80), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("is_enabled", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("owner_address", "name", name="pk_feature_flags"),
    )


def downgrade() -> None:
    op.drop_table("feature_flags")
