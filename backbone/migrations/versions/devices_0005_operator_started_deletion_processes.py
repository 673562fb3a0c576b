"""Deletion processes an operator started have no device that created them.

Revision ID: devices_0005
Revises: devices_0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "devices_0005"
down_revision = "devices_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_deletion_processes") as batch:
        batch.alter_column("created_by_device", existing_type=sa.String(20), nullable=True)


def downgrade() -> None:
    # Fails while an operator-started process exists, rather than deleting it.
    with op.batch_alter_table("identity_deletion_processes") as batch:
        batch.alter_column("created_by_device", existing_type=sa.String(20), nullable=False)
