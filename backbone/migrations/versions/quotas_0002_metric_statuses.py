"""Metric statuses: until when a metric of an identity is exhausted.

Revision ID: quotas_0002
Revises: quotas_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backbone.platform.db import UtcDateTime

revision = "quotas_0002"
down_revision = "quotas_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_statuses",
        sa.Column("owner", sa.String(80), nullable=False),
        sa.Column("metric_key", sa.String(50), nullable=False),
        sa.Column("is_exhausted_until", UtcDateTime),
        sa.PrimaryKeyConstraint("owner", "metric_key", name="pk_metric_statuses"),
    )


def downgrade() -> None:
    op.drop_table("metric_statuses")
