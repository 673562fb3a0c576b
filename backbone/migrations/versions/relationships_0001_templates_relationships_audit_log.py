"""Relationship templates, their allocations, relationships and the relationship audit log.

Revision ID: relationships_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backbone.platform.db import UtcDateTime

revision = "relationships_0001"
down_revision = None
branch_labels = ("relationships",)
depends_on = None

# Pending, Active, Terminated, DeletionProposed: at most one such relationship per pair.
_BLOCKING = "status IN (10, 20, 50, 60)"


def upgrade() -> None:
    op.create_table(
        "relationship_templates",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_by_device", sa.String(20), nullable=False),
        sa.Column("max_number_of_allocations", sa.Integer),
        sa.Column("expires_at", UtcDateTime),
        sa.Column("for_identity", sa.String(80)),
        sa.Column("password", sa.LargeBinary),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_relationship_templates"),
    )
    op.create_index("ix_relationship_templates_created_by", "relationship_templates", ["created_by"])
    op.create_table(
        "relationship_template_allocations",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("relationship_template_id", sa.String(20), nullable=False),
        sa.Column("allocated_by", sa.String(80), nullable=False),
        sa.Column("allocated_by_device", sa.String(20), nullable=False),
        sa.Column("allocated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_relationship_template_allocations"),
        sa.UniqueConstraint(
            "relationship_template_id", "allocated_by", name="uq_relationship_template_allocations"
        ),
    )
    op.create_table(
        "relationships",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("relationship_template_id", sa.String(20)),
        sa.Column("from_address", sa.String(80), nullable=False),
        sa.Column("to_address", sa.String(80), nullable=False),
        sa.Column("pair_low", sa.String(80), nullable=False),
        sa.Column("pair_high", sa.String(80), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("from_has_decomposed", sa.Boolean, nullable=False),
        sa.Column("to_has_decomposed", sa.Boolean, nullable=False),
        sa.Column("creation_content", sa.LargeBinary),
        sa.Column("creation_response_content", sa.LargeBinary),
        sa.PrimaryKeyConstraint("id", name="pk_relationships"),
    )
    op.create_index("ix_relationships_pair", "relationships", ["pair_low", "pair_high", "created_at"])
    op.create_index("ix_relationships_to_address", "relationships", ["to_address"])
    op.create_index(
        "ix_relationships_relationship_template_id", "relationships", ["relationship_template_id"]
    )
    op.create_index(
        "uq_relationships_blocking_pair",
        "relationships",
        ["pair_low", "pair_high"],
        unique=True,
        sqlite_where=sa.text(_BLOCKING),
        postgresql_where=sa.text(_BLOCKING),
        mssql_where=sa.text(_BLOCKING),
    )
    op.create_table(
        "relationship_audit_log",
        sa.Column("id", sa.String(20), nullable=False),
        sa.Column("relationship_id", sa.String(20), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("reason", sa.SmallInteger, nullable=False),
        sa.Column("old_status", sa.SmallInteger),
        sa.Column("new_status", sa.SmallInteger, nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_by_device", sa.String(20)),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_relationship_audit_log"),
        sa.UniqueConstraint(
            "relationship_id", "position", name="uq_relationship_audit_log_relationship_id_position"
        ),
    )


def downgrade() -> None:
    for table in (
        "relationship_audit_log",
        "relationships",
        "relationship_template_allocations",
        "relationship_templates",
    ):
        op.drop_table(table)
