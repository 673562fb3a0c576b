"""Tables and queries of relationship templates, their allocations, relationships and audit logs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backbone.modules.relationships.model import (
    BLOCKING_STATUSES,
    AuditLogEntry,
    AuditLogReason,
    Relationship,
    RelationshipExport,
    RelationshipStatus,
    RelationshipTemplate,
    relationship_to_target_already_exists,
)
from backbone.platform.db import (
    Database,
    Page,
    Paged,
    PrebuiltPage,
    UtcDateTime,
    address_column,
    count_created,
    id_column,
    metadata,
    violation_raises,
)

relationship_templates = sa.Table(
    "relationship_templates",
    metadata,
    id_column(primary_key=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    address_column("created_by", nullable=False),
    id_column("created_by_device", nullable=False),
    sa.Column("max_number_of_allocations", sa.Integer),
    sa.Column("expires_at", UtcDateTime),
    address_column("for_identity"),
    sa.Column("password", sa.LargeBinary),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Index("ix_relationship_templates_created_by", "created_by"),
)

relationship_template_allocations = sa.Table(
    "relationship_template_allocations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    id_column("relationship_template_id", nullable=False),
    address_column("allocated_by", nullable=False),
    id_column("allocated_by_device", nullable=False),
    sa.Column("allocated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint(
        "relationship_template_id", "allocated_by", name="uq_relationship_template_allocations"
    ),
)

_BLOCKING_CODES = ", ".join(str(status.value) for status in sorted(BLOCKING_STATUSES, key=lambda s: s.value))

relationships = sa.Table(
    "relationships",
    metadata,
    id_column(primary_key=True),
    id_column("relationship_template_id"),
    address_column("from_address", nullable=False),
    address_column("to_address", nullable=False),
    # The pair in address order, so "one relationship per pair" is one index in either direction.
    address_column("pair_low", nullable=False),
    address_column("pair_high", nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("from_has_decomposed", sa.Boolean, nullable=False),
    sa.Column("to_has_decomposed", sa.Boolean, nullable=False),
    sa.Column("creation_content", sa.LargeBinary),
    sa.Column("creation_response_content", sa.LargeBinary),
    sa.Index("ix_relationships_pair", "pair_low", "pair_high", "created_at"),
    sa.Index("ix_relationships_to_address", "to_address"),
    sa.Index("ix_relationships_relationship_template_id", "relationship_template_id"),
    sa.Index(
        "uq_relationships_blocking_pair",
        "pair_low",
        "pair_high",
        unique=True,
        sqlite_where=sa.text(f"status IN ({_BLOCKING_CODES})"),
        postgresql_where=sa.text(f"status IN ({_BLOCKING_CODES})"),
        mssql_where=sa.text(f"status IN ({_BLOCKING_CODES})"),
    ),
)

relationship_audit_log = sa.Table(
    "relationship_audit_log",
    metadata,
    id_column(primary_key=True),
    id_column("relationship_id", nullable=False),
    # Entries of one relationship often share a timestamp; the position keeps their order.
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("reason", sa.SmallInteger, nullable=False),
    sa.Column("old_status", sa.SmallInteger),
    sa.Column("new_status", sa.SmallInteger, nullable=False),
    address_column("created_by", nullable=False),
    id_column("created_by_device"),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("relationship_id", "position"),
)


def pair(first: str, second: str) -> tuple[str, str]:
    """The two addresses in a fixed order."""
    return (first, second) if first <= second else (second, first)


def _template(row: Any) -> RelationshipTemplate:
    return RelationshipTemplate(
        id=row.id,
        created_at=row.created_at,
        created_by=row.created_by,
        created_by_device=row.created_by_device,
        max_number_of_allocations=row.max_number_of_allocations,
        expires_at=row.expires_at,
        for_identity=row.for_identity,
        password=row.password,
        content=row.content,
    )


def _entry(row: Any) -> AuditLogEntry:
    return AuditLogEntry(
        id=row.id,
        created_at=row.created_at,
        created_by=row.created_by,
        created_by_device=row.created_by_device,
        reason=AuditLogReason(row.reason),
        old_status=None if row.old_status is None else RelationshipStatus(row.old_status),
        new_status=RelationshipStatus(row.new_status),
    )


def _relationship(row: Any, entries: Sequence[AuditLogEntry]) -> Relationship:
    return Relationship(
        id=row.id,
        relationship_template_id=row.relationship_template_id,
        from_address=row.from_address,
        to_address=row.to_address,
        created_at=row.created_at,
        status=RelationshipStatus(row.status),
        from_has_decomposed=row.from_has_decomposed,
        to_has_decomposed=row.to_has_decomposed,
        creation_content=row.creation_content,
        creation_response_content=row.creation_response_content,
        audit_log=tuple(entries),
    )


def _participant(address: Any) -> Any:
    """Relationships the identity takes part in and has not decomposed."""
    return sa.or_(
        sa.and_(relationships.c.from_address == address, sa.not_(relationships.c.from_has_decomposed)),
        sa.and_(relationships.c.to_address == address, sa.not_(relationships.c.to_has_decomposed)),
    )


# The statements of the relationship life cycle and of templates, built once (building them
# costs more than running them on SQLite).
_ADDRESS: sa.BindParameter[str] = sa.bindparam("address", type_=sa.String)
_TEMPLATE_IDS: sa.BindParameter[list[str]] = sa.bindparam("template_ids", expanding=True)
_ADD_TEMPLATE = relationship_templates.insert()
_TEMPLATE = sa.select(relationship_templates).where(
    relationship_templates.c.id == sa.bindparam("template_id")
)
_TEMPLATES = (
    sa.select(relationship_templates)
    .where(relationship_templates.c.id.in_(_TEMPLATE_IDS))
    .order_by(relationship_templates.c.created_at, relationship_templates.c.id)
)
_ALLOCATED_BY = sa.select(relationship_template_allocations.c.relationship_template_id).where(
    relationship_template_allocations.c.relationship_template_id.in_(_TEMPLATE_IDS),
    relationship_template_allocations.c.allocated_by == _ADDRESS,
)
_COUNT_ALLOCATIONS = sa.select(sa.func.count()).where(
    relationship_template_allocations.c.relationship_template_id == sa.bindparam("template_id")
)
_ADD_ALLOCATION = relationship_template_allocations.insert()
_USED_TEMPLATES = sa.select(relationships.c.relationship_template_id).where(
    relationships.c.relationship_template_id.in_(_TEMPLATE_IDS),
    sa.or_(relationships.c.from_address == _ADDRESS, relationships.c.to_address == _ADDRESS),
)
_ADD_RELATIONSHIP = relationships.insert()
_ADD_ENTRIES = relationship_audit_log.insert()
_UPDATE_RELATIONSHIP = (
    relationships.update()
    .where(relationships.c.id == sa.bindparam("relationship_id"))
    .values(
        status=sa.bindparam("new_status"),
        from_has_decomposed=sa.bindparam("from_decomposed"),
        to_has_decomposed=sa.bindparam("to_decomposed"),
        creation_response_content=sa.bindparam("response_content"),
    )
)
_RELATIONSHIP = sa.select(relationships).where(relationships.c.id == sa.bindparam("relationship_id"))
_PAGE_BY_IDS = PrebuiltPage(
    sa.select(relationships)
    .where(relationships.c.id.in_(sa.bindparam("relationship_ids", expanding=True)), _participant(_ADDRESS))
    .order_by(relationships.c.created_at, relationships.c.id)
)
_PAGE_OF_PARTICIPANT = PrebuiltPage(
    sa.select(relationships)
    .where(sa.or_(relationships.c.from_address == _ADDRESS, relationships.c.to_address == _ADDRESS))
    .order_by(relationships.c.created_at, relationships.c.id)
)
_ENTRIES = (
    sa.select(relationship_audit_log)
    .where(relationship_audit_log.c.relationship_id.in_(sa.bindparam("relationship_ids", expanding=True)))
    .order_by(relationship_audit_log.c.relationship_id, relationship_audit_log.c.position)
)
_LOW = sa.bindparam("low", type_=sa.String)
_HIGH = sa.bindparam("high", type_=sa.String)
_BLOCKING_EXISTS = (
    sa.select(relationships.c.id)
    .where(
        relationships.c.pair_low == _LOW,
        relationships.c.pair_high == _HIGH,
        relationships.c.status.in_([status.value for status in BLOCKING_STATUSES]),
    )
    .limit(1)
)
_YOUNGEST_BETWEEN = (
    sa.select(relationships.c.id, relationships.c.status)
    .where(relationships.c.pair_low == _LOW, relationships.c.pair_high == _HIGH)
    .order_by(relationships.c.created_at.desc(), relationships.c.id.desc())
    .limit(1)
)
_PEERS_OF = (
    sa.select(relationships.c.id, relationships.c.from_address, relationships.c.to_address)
    .where(
        sa.or_(relationships.c.from_address == _ADDRESS, relationships.c.to_address == _ADDRESS),
        relationships.c.status.in_(sa.bindparam("statuses", expanding=True)),
    )
    .order_by(relationships.c.created_at, relationships.c.id)
)
_STATUS_OF = sa.select(relationships.c.status).where(relationships.c.id == sa.bindparam("relationship_id"))
_EXPORT_RELATIONSHIPS = (
    sa.select(
        relationships.c.id,
        relationships.c.relationship_template_id,
        relationships.c.from_address,
        relationships.c.to_address,
        relationships.c.created_at,
        relationships.c.status,
        relationships.c.from_has_decomposed,
        relationships.c.to_has_decomposed,
        relationship_templates.c.created_at.label("template_created_at"),
    )
    .outerjoin(
        relationship_templates, relationship_templates.c.id == relationships.c.relationship_template_id
    )
    .order_by(relationships.c.created_at, relationships.c.id)
    .execution_options(yield_per=1000)
)
_ALLOCATORS_OF_TEMPLATES_OF = (
    sa.select(relationship_template_allocations.c.allocated_by)
    .join(
        relationship_templates,
        relationship_templates.c.id == relationship_template_allocations.c.relationship_template_id,
    )
    .where(relationship_templates.c.created_by == sa.bindparam("creator"))
    .distinct()
)


class RelationshipRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._locked_template = db.for_update(_TEMPLATE, relationship_templates)
        self._locked_relationship = db.for_update(_RELATIONSHIP, relationships)

    # --- templates ------------------------------------------------------------------------

    def add_template(self, connection: Connection, template: RelationshipTemplate) -> None:
        connection.execute(
            _ADD_TEMPLATE,
            {
                "id": template.id,
                "created_at": template.created_at,
                "created_by": template.created_by,
                "created_by_device": template.created_by_device,
                "max_number_of_allocations": template.max_number_of_allocations,
                "expires_at": template.expires_at,
                "for_identity": template.for_identity,
                "password": template.password,
                "content": template.content,
            },
        )

    def find_template(
        self, connection: Connection, template_id: str, *, lock: bool = False
    ) -> RelationshipTemplate | None:
        statement = self._locked_template if lock else _TEMPLATE
        row = connection.execute(statement, {"template_id": template_id}).first()
        return None if row is None else _template(row)

    def find_templates(
        self, connection: Connection, template_ids: Sequence[str]
    ) -> list[RelationshipTemplate]:
        rows = connection.execute(_TEMPLATES, {"template_ids": list(template_ids)})
        return [_template(row) for row in rows]

    def delete_template(self, connection: Connection, template_id: str) -> None:
        connection.execute(
            relationship_template_allocations.delete().where(
                relationship_template_allocations.c.relationship_template_id == template_id
            )
        )
        connection.execute(relationship_templates.delete().where(relationship_templates.c.id == template_id))

    def allocated_by(self, connection: Connection, template_ids: Sequence[str], address: str) -> set[str]:
        """Which of the templates the identity has allocated."""
        parameters = {"template_ids": list(template_ids), "address": address}
        return set(connection.execute(_ALLOCATED_BY, parameters).scalars())

    def count_allocations(self, connection: Connection, template_id: str) -> int:
        return int(connection.execute(_COUNT_ALLOCATIONS, {"template_id": template_id}).scalar_one())

    def add_allocation(
        self, connection: Connection, template_id: str, address: str, device_id: str, at: Any
    ) -> None:
        connection.execute(
            _ADD_ALLOCATION,
            {
                "relationship_template_id": template_id,
                "allocated_by": address,
                "allocated_by_device": device_id,
                "allocated_at": at,
            },
        )

    def used_templates(self, connection: Connection, template_ids: Sequence[str], address: str) -> set[str]:
        """Which of the templates the identity has a relationship from."""
        parameters = {"template_ids": list(template_ids), "address": address}
        return set(connection.execute(_USED_TEMPLATES, parameters).scalars())

    # --- relationships --------------------------------------------------------------------

    def add(self, connection: Connection, relationship: Relationship) -> None:
        low, high = pair(relationship.from_address, relationship.to_address)
        # A concurrent request for the same pair won; the pair index refuses this one.
        with violation_raises(relationship_to_target_already_exists):
            connection.execute(
                _ADD_RELATIONSHIP,
                {
                    "id": relationship.id,
                    "relationship_template_id": relationship.relationship_template_id,
                    "from_address": relationship.from_address,
                    "to_address": relationship.to_address,
                    "pair_low": low,
                    "pair_high": high,
                    "created_at": relationship.created_at,
                    "status": relationship.status.value,
                    "from_has_decomposed": relationship.from_has_decomposed,
                    "to_has_decomposed": relationship.to_has_decomposed,
                    "creation_content": relationship.creation_content,
                    "creation_response_content": relationship.creation_response_content,
                },
            )
            self._add_entries(connection, relationship.id, relationship.audit_log, 0)

    def _add_entries(
        self, connection: Connection, relationship_id: str, entries: Sequence[AuditLogEntry], first: int
    ) -> None:
        if not entries:
            return
        connection.execute(
            _ADD_ENTRIES,
            [
                {
                    "id": entry.id,
                    "relationship_id": relationship_id,
                    "position": first + offset,
                    "reason": entry.reason.value,
                    "old_status": None if entry.old_status is None else entry.old_status.value,
                    "new_status": entry.new_status.value,
                    "created_by": entry.created_by,
                    "created_by_device": entry.created_by_device,
                    "created_at": entry.created_at,
                }
                for offset, entry in enumerate(entries)
            ],
        )

    def update(self, connection: Connection, relationship: Relationship, entry: AuditLogEntry) -> None:
        connection.execute(
            _UPDATE_RELATIONSHIP,
            {
                "relationship_id": relationship.id,
                "new_status": relationship.status.value,
                "from_decomposed": relationship.from_has_decomposed,
                "to_decomposed": relationship.to_has_decomposed,
                "response_content": relationship.creation_response_content,
            },
        )
        self._add_entries(connection, relationship.id, [entry], len(relationship.audit_log) - 1)

    def find(
        self, connection: Connection, relationship_id: str, *, lock: bool = False
    ) -> Relationship | None:
        statement = self._locked_relationship if lock else _RELATIONSHIP
        row = connection.execute(statement, {"relationship_id": relationship_id}).first()
        if row is None:
            return None
        return _relationship(row, self._entries(connection, [row.id]).get(row.id, []))

    def find_page(
        self, connection: Connection, relationship_ids: Sequence[str], address: str, page: Page
    ) -> Paged:
        parameters = {"relationship_ids": list(relationship_ids), "address": address}
        paged = _PAGE_BY_IDS.fetch(connection, parameters, page)
        entries = self._entries(connection, [row.id for row in paged.items])
        items = [_relationship(row, entries.get(row.id, [])) for row in paged.items]
        return Paged(items, paged.page, paged.total_records)

    def page_of_participant(self, connection: Connection, address: str, page: Page) -> Paged:
        """Every relationship the identity takes part in, decomposed or not, oldest first."""
        paged = _PAGE_OF_PARTICIPANT.fetch(connection, {"address": address}, page)
        entries = self._entries(connection, [row.id for row in paged.items])
        items = [_relationship(row, entries.get(row.id, [])) for row in paged.items]
        return Paged(items, paged.page, paged.total_records)

    def _entries(self, connection: Connection, relationship_ids: list[str]) -> dict[str, list[AuditLogEntry]]:
        if not relationship_ids:
            return {}
        result: dict[str, list[AuditLogEntry]] = {}
        for row in connection.execute(_ENTRIES, {"relationship_ids": relationship_ids}):
            result.setdefault(row.relationship_id, []).append(_entry(row))
        return result

    def blocking_exists(self, connection: Connection, first: str, second: str) -> bool:
        low, high = pair(first, second)
        return connection.execute(_BLOCKING_EXISTS, {"low": low, "high": high}).first() is not None

    def youngest_between(
        self, connection: Connection, first: str, second: str
    ) -> tuple[str, RelationshipStatus] | None:
        low, high = pair(first, second)
        row = connection.execute(_YOUNGEST_BETWEEN, {"low": low, "high": high}).first()
        return None if row is None else (row.id, RelationshipStatus(row.status))

    def peers_of(
        self, connection: Connection, address: str, statuses: Sequence[RelationshipStatus]
    ) -> list[tuple[str, str]]:
        """(relationship id, peer address) of the identity's relationships in the given statuses."""
        parameters = {"address": address, "statuses": [status.value for status in statuses]}
        return [
            (row.id, row.to_address if row.from_address == address else row.from_address)
            for row in connection.execute(_PEERS_OF, parameters)
        ]

    def export_relationships(self, connection: Connection) -> Iterator[RelationshipExport]:
        for row in connection.execute(_EXPORT_RELATIONSHIPS):
            yield RelationshipExport(
                id=row.id,
                relationship_template_id=row.relationship_template_id,
                from_address=row.from_address,
                to_address=row.to_address,
                created_at=row.created_at,
                status=RelationshipStatus(row.status),
                from_has_decomposed=row.from_has_decomposed,
                to_has_decomposed=row.to_has_decomposed,
                template_created_at=row.template_created_at,
            )

    def allocators_of_templates_of(self, connection: Connection, creator: str) -> set[str]:
        """Who allocated a template the identity created."""
        return set(connection.execute(_ALLOCATORS_OF_TEMPLATES_OF, {"creator": creator}).scalars())

    def has_allocated_template_of(self, connection: Connection, allocator: str, creator: str) -> bool:
        statement = _ALLOCATORS_OF_TEMPLATES_OF.where(
            relationship_template_allocations.c.allocated_by == sa.bindparam("allocator")
        ).limit(1)
        return connection.execute(statement, {"creator": creator, "allocator": allocator}).first() is not None

    def status_of(self, connection: Connection, relationship_id: str) -> RelationshipStatus | None:
        value = connection.execute(_STATUS_OF, {"relationship_id": relationship_id}).scalar_one_or_none()
        return None if value is None else RelationshipStatus(value)

    def count_templates_created(
        self, connection: Connection, address: str, since: datetime | None, until: datetime
    ) -> int:
        return count_created(connection, relationship_templates, address, since, until)

    def count_for_quota(
        self, connection: Connection, address: str, since: datetime | None, until: datetime
    ) -> int:
        """Pending ones it requested, Active/Terminated ones it is in, DeletionProposed ones only
        the peer decomposed: the relationships that count against NumberOfRelationships."""
        table = relationships
        status = table.c.status
        counted = sa.or_(
            sa.and_(status == RelationshipStatus.Pending.value, table.c.from_address == address),
            sa.and_(
                status.in_([RelationshipStatus.Active.value, RelationshipStatus.Terminated.value]),
                sa.or_(table.c.from_address == address, table.c.to_address == address),
            ),
            sa.and_(
                status == RelationshipStatus.DeletionProposed.value,
                sa.or_(
                    sa.and_(table.c.from_address == address, ~table.c.from_has_decomposed),
                    sa.and_(table.c.to_address == address, ~table.c.to_has_decomposed),
                ),
            ),
        )
        statement = sa.select(sa.func.count()).where(counted, table.c.created_at < until)
        if since is not None:
            statement = statement.where(table.c.created_at >= since)
        return int(connection.execute(statement).scalar_one())

    def anonymise(self, connection: Connection, address: str, anonymous_address: str) -> None:
        """Replace a deleted identity's address; the pair columns take the relationship id, so
        relationships of different deleted identities with one peer never meet in the pair index."""
        for column in ("from_address", "to_address"):
            connection.execute(
                relationships.update()
                .where(relationships.c[column] == address)
                .values(
                    {
                        column: anonymous_address,
                        "pair_low": relationships.c.id,
                        "pair_high": relationships.c.id,
                    }
                )
            )
        connection.execute(
            relationship_audit_log.update()
            .where(relationship_audit_log.c.created_by == address)
            .values(created_by=anonymous_address, created_by_device=None)
        )

    def delete_templates_of(self, connection: Connection, address: str) -> None:
        """Remove the identity's templates (with their allocations) and its allocations of others'."""
        own = sa.select(relationship_templates.c.id).where(relationship_templates.c.created_by == address)
        connection.execute(
            relationship_template_allocations.delete().where(
                sa.or_(
                    relationship_template_allocations.c.allocated_by == address,
                    relationship_template_allocations.c.relationship_template_id.in_(own),
                )
            )
        )
        connection.execute(
            relationship_templates.delete().where(relationship_templates.c.created_by == address)
        )
        connection.execute(
            relationship_templates.update()
            .where(relationship_templates.c.for_identity == address)
            .values(for_identity=None)
        )

    def delete_ready_for_deletion(self, connection: Connection, older_than: datetime) -> int:
        # The status is reached by the last audit entry; its time says how long it has been so.
        reached = sa.select(relationship_audit_log.c.relationship_id).where(
            relationship_audit_log.c.new_status == RelationshipStatus.ReadyForDeletion.value,
            relationship_audit_log.c.created_at < older_than,
        )
        doomed = sa.select(relationships.c.id).where(
            relationships.c.status == RelationshipStatus.ReadyForDeletion.value,
            relationships.c.id.in_(reached),
        )
        ids = list(connection.execute(doomed).scalars())
        if ids:
            connection.execute(
                relationship_audit_log.delete().where(relationship_audit_log.c.relationship_id.in_(ids))
            )
            connection.execute(relationships.delete().where(relationships.c.id.in_(ids)))
        return len(ids)

    def delete_expired_unused_templates(self, connection: Connection, expired_before: datetime) -> int:
        used = sa.select(relationships.c.relationship_template_id).where(
            relationships.c.relationship_template_id.is_not(None)
        )
        doomed = sa.select(relationship_templates.c.id).where(
            relationship_templates.c.expires_at < expired_before, relationship_templates.c.id.not_in(used)
        )
        ids = list(connection.execute(doomed).scalars())
        if ids:
            connection.execute(
                relationship_template_allocations.delete().where(
                    relationship_template_allocations.c.relationship_template_id.in_(ids)
                )
            )
            connection.execute(relationship_templates.delete().where(relationship_templates.c.id.in_(ids)))
        return len(ids)
