"""Tier quota definitions and individual quotas.

Revision ID: quotas_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "quotas_0001"
down_revision = None
branch_labels = ("quotas",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tier_quota_definitions",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("tier_id", sa.String(20), nullable=False),
        sa.Column("metric_key", sa.String(50), nullable=False),
        sa.Column("max", sa.Integer, nullable=False),
        sa.Column("period", sa.SmallInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tier_quota_definitions"),
        sa.UniqueConstraint(
            "tier_id", "metric_key", "period", name="uq_tier_quota_definitions_tier_id_metric_key_period"
        ),
    )
    op.create_table(
        "individual_quotas",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("apply_to", sa.String(80), nullable=False),
        sa.Column("metric_key", sa.String(50), nullable=False),
        sa.Column("max", sa.Integer, nullable=False),
        sa.Column("period", sa.SmallInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_individual_quotas"),
        sa.UniqueConstraint(
            "apply_to", "metric_key", "period", name="uq_individual_quotas_apply_to_metric_key_period"
        ),
    )


def downgrade() -> None:
    op.drop_table("individual_quotas")
    op.drop_table("tier_quota_definitions")
