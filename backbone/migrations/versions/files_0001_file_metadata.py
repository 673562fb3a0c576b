"""File metadata (the contents live in the blob store).

Revision ID: files_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backbone.platform.db import UtcDateTime

revision = "files_0001"
down_revision = None
branch_labels = ("files",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "file_metadata",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_by_device", sa.String(20), nullable=False),
        sa.Column("modified_at", UtcDateTime, nullable=False),
        sa.Column("modified_by", sa.String(80), nullable=False),
        sa.Column("modified_by_device", sa.String(20), nullable=False),
        sa.Column("deleted_at", UtcDateTime),
        sa.Column("deleted_by", sa.String(80)),
        sa.Column("deleted_by_device", sa.String(20)),
        sa.Column("owner", sa.String(80), nullable=False),
        sa.Column("owner_signature", sa.LargeBinary, nullable=False),
        sa.Column("ownership_token", sa.String(20), nullable=False),
        sa.Column("ownership_is_locked", sa.Boolean, nullable=False),
        sa.Column("last_ownership_claim_at", UtcDateTime),
        sa.Column("cipher_size", sa.BigInteger, nullable=False),
        sa.Column("cipher_hash", sa.LargeBinary, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("encrypted_properties", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_file_metadata"),
    )
    op.create_index("ix_file_metadata_created_by", "file_metadata", ["created_by", "created_at"])


def downgrade() -> None:
    op.drop_table("file_metadata")
