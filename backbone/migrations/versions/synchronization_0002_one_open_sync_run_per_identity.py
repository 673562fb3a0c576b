"""At most one unfinalized sync run per identity, enforced by the database too.

Revision ID: synchronization_0002
Revises: synchronization_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "synchronization_0002"
down_revision = "synchronization_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_sync_runs_one_open_run_per_identity",
        "sync_runs",
        ["created_by"],
        unique=True,
        sqlite_where=sa.text("finalized_at IS NULL"),
        postgresql_where=sa.text("finalized_at IS NULL"),
        mssql_where=sa.text("finalized_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_sync_runs_one_open_run_per_identity", table_name="sync_runs")
