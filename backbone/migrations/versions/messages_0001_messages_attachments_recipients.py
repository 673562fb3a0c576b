"""Messages, their attachments and their recipients.

Revision ID: messages_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backbone.platform.db import UtcDateTime

revision = "messages_0001"
down_revision = None
branch_labels = ("messages",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_by_device", sa.String(20), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
    )
    op.create_index("ix_messages_created_by", "messages", ["created_by", "created_at"])
    op.create_table(
        "message_attachments",
        sa.Column("message_id", sa.String(20), nullable=False),
        sa.Column("file_id", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("message_id", "file_id", name="pk_message_attachments"),
    )
    op.create_table(
        "message_recipients",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(20), nullable=False),
        sa.Column("address", sa.String(80), nullable=False),
        sa.Column("relationship_id", sa.String(20), nullable=False),
        sa.Column("encrypted_key", sa.LargeBinary, nullable=False),
        sa.Column("received_at", UtcDateTime),
        sa.Column("received_by_device", sa.String(20)),
        sa.Column("decomposed_by_recipient", sa.Boolean, nullable=False),
        sa.Column("decomposed_by_sender", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_message_recipients"),
    )
    op.create_index("ix_message_recipients_message_id", "message_recipients", ["message_id"])
    op.create_index("ix_message_recipients_address", "message_recipients", ["address", "received_at"])
    op.create_index("ix_message_recipients_relationship_id", "message_recipients", ["relationship_id"])


def downgrade() -> None:
    op.drop_table("message_recipients")
    op.drop_table("message_attachments")
    op.drop_table("messages")
