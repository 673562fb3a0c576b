"""Announcements with their texts, actions and recipients.

Revision ID: announcements_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backbone.platform.db import UtcDateTime

revision = "announcements_0001"
down_revision = None
branch_labels = ("announcements",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "announcements",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime),
        sa.Column("severity", sa.SmallInteger, nullable=False),
        sa.Column("is_silent", sa.Boolean, nullable=False),
        sa.Column("iql_query", sa.UnicodeText),
        sa.PrimaryKeyConstraint("id", name="pk_announcements"),
    )
    op.create_table(
        "announcement_texts",
        sa.Column("announcement_id", sa.String(20), nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("title", sa.UnicodeText, nullable=False),
        sa.Column("body", sa.UnicodeText, nullable=False),
        sa.PrimaryKeyConstraint("announcement_id", "language", name="pk_announcement_texts"),
    )
    op.create_table(
        "announcement_actions",
        sa.Column("announcement_id", sa.String(20), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("display_name", sa.UnicodeText, nullable=False),
        sa.Column("link", sa.UnicodeText, nullable=False),
        sa.PrimaryKeyConstraint("announcement_id", "position", name="pk_announcement_actions"),
    )
    op.create_table(
        "announcement_recipients",
        sa.Column("announcement_id", sa.String(20), nullable=False),
        sa.Column("address", sa.String(80), nullable=False),
        sa.PrimaryKeyConstraint("announcement_id", "address", name="pk_announcement_recipients"),
    )
    op.create_index("ix_announcement_recipients_address", "announcement_recipients", ["address"])


def downgrade() -> None:
    op.drop_table("announcement_recipients")
    op.drop_table("announcement_actions")
    op.drop_table("announcement_texts")
    op.drop_table("announcements")
