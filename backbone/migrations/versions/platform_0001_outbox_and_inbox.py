"""Outbox of domain events and inbox of handled events.

Revision ID: platform_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backbone.platform.db import UtcDateTime

revision = "platform_0001"
down_revision = None
branch_labels = ("platform",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("payload", sa.UnicodeText, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("traceparent", sa.String(55)),
        sa.Column("claimed_until", UtcDateTime),
        sa.Column("published_at", UtcDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_events"),
    )
    op.create_index(
        "ix_outbox_events_unpublished",
        "outbox_events",
        ["created_at"],
        sqlite_where=sa.text("published_at IS NULL"),
        postgresql_where=sa.text("published_at IS NULL"),
        mssql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "inbox_handled_events",
        sa.Column("handler", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("handled_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("handler", "event_id", name="pk_inbox_handled_events"),
    )


def downgrade() -> None:
    op.drop_table("inbox_handled_events")
    op.drop_index("ix_outbox_events_unpublished", table_name="outbox_events")
    op.drop_table("outbox_events")
