"""Tables and queries of identity deletion processes, their audit log and deleted usernames.

The tables were created by the devices branch of the migrations (`devices_0003`, `devices_0004`),
before identity deletion became a module of its own; revisions are never rewritten, so they
stay there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backbone.modules.identity_deletion.model import (
    DeletionAuditEntry,
    DeletionAuditMessage,
    DeletionProcess,
    DeletionProcessStatus,
    only_one_active_deletion_process_allowed,
)
from backbone.platform.db import (
    UtcDateTime,
    address_column,
    id_column,
    insert_ignoring_conflicts,
    locked,
    metadata,
    violation_raises,
)

_OPEN_PROCESS_STATUSES = (
    f"status IN ({DeletionProcessStatus.Active.value}, {DeletionProcessStatus.Deleting.value})"
)

identity_deletion_processes = sa.Table(
    "identity_deletion_processes",
    metadata,
    id_column(primary_key=True),
    address_column("identity_address", nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # Empty when an operator started the process.
    id_column("created_by_device"),
    sa.Column("cancelled_at", UtcDateTime),
    id_column("cancelled_by_device"),
    sa.Column("grace_period_ends_at", UtcDateTime, nullable=False),
    sa.Column("grace_period_reminder1_sent_at", UtcDateTime),
    sa.Column("grace_period_reminder2_sent_at", UtcDateTime),
    sa.Column("grace_period_reminder3_sent_at", UtcDateTime),
    sa.Column("deletion_started_at", UtcDateTime),
    sa.Index("ix_identity_deletion_processes_identity_address", "identity_address", "created_at"),
    # At most one open (Active or Deleting) process per identity, even when two starts race.
    sa.Index(
        "ix_identity_deletion_processes_one_open_per_identity",
        "identity_address",
        unique=True,
        sqlite_where=sa.text(_OPEN_PROCESS_STATUSES),
        postgresql_where=sa.text(_OPEN_PROCESS_STATUSES),
        mssql_where=sa.text(_OPEN_PROCESS_STATUSES),
    ),
)

# Outlives the identity: it names the identity and device by hashes only.
identity_deletion_process_audit_log = sa.Table(
    "identity_deletion_process_audit_log",
    metadata,
    id_column(primary_key=True),
    id_column("identity_deletion_process_id"),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("message_key", sa.String(50), nullable=False),
    sa.Column("old_status", sa.SmallInteger),
    sa.Column("new_status", sa.SmallInteger),
    sa.Column("identity_address_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("device_id_hash", sa.LargeBinary(32)),
    sa.Column("additional_data", sa.UnicodeText),
    sa.Index("ix_identity_deletion_process_audit_log_identity_address_hash", "identity_address_hash"),
)

# Usernames of deleted identities, hashed: `GET /Identities/IsDeleted` keeps answering true.
deleted_usernames = sa.Table(
    "deleted_usernames",
    metadata,
    sa.Column("username_hash", sa.LargeBinary(32), primary_key=True),
    sa.Column("deleted_at", UtcDateTime, nullable=False),
)
# A deletion retried after an error records the same usernames again.
_RECORD_DELETED_USERNAME = insert_ignoring_conflicts(deleted_usernames)

_processes = identity_deletion_processes
_log = identity_deletion_process_audit_log


def _deletion_process(row: Any) -> DeletionProcess:
    return DeletionProcess(
        id=row.id,
        identity_address=row.identity_address,
        status=DeletionProcessStatus(row.status),
        created_at=row.created_at,
        created_by_device=row.created_by_device,
        grace_period_ends_at=row.grace_period_ends_at,
        cancelled_at=row.cancelled_at,
        cancelled_by_device=row.cancelled_by_device,
        grace_period_reminder1_sent_at=row.grace_period_reminder1_sent_at,
        grace_period_reminder2_sent_at=row.grace_period_reminder2_sent_at,
        grace_period_reminder3_sent_at=row.grace_period_reminder3_sent_at,
        deletion_started_at=row.deletion_started_at,
    )


class DeletionProcessRepository:
    def add(self, connection: Connection, process: DeletionProcess) -> None:
        # Two starts raced past the service's check: the one-open-process index refuses the second.
        with violation_raises(only_one_active_deletion_process_allowed):
            connection.execute(
                _processes.insert().values(
                    id=process.id,
                    identity_address=process.identity_address,
                    status=process.status.value,
                    created_at=process.created_at,
                    created_by_device=process.created_by_device,
                    grace_period_ends_at=process.grace_period_ends_at,
                )
            )

    def find(
        self, connection: Connection, process_id: str, address: str, *, lock: bool = False
    ) -> DeletionProcess | None:
        statement = sa.select(_processes).where(
            _processes.c.id == process_id, _processes.c.identity_address == address
        )
        if lock:
            statement = locked(statement, _processes)
        row = connection.execute(statement).first()
        return None if row is None else _deletion_process(row)

    def of_identity(self, connection: Connection, address: str) -> list[DeletionProcess]:
        statement = (
            sa.select(_processes)
            .where(_processes.c.identity_address == address)
            .order_by(_processes.c.created_at, _processes.c.id)
        )
        return [_deletion_process(row) for row in connection.execute(statement)]

    def open_process_exists(self, connection: Connection, address: str) -> bool:
        statement = sa.select(_processes.c.id).where(
            _processes.c.identity_address == address,
            _processes.c.status.in_(
                [DeletionProcessStatus.Active.value, DeletionProcessStatus.Deleting.value]
            ),
        )
        return connection.execute(statement.limit(1)).first() is not None

    def count_by_status(self, connection: Connection) -> dict[DeletionProcessStatus, int]:
        statement = sa.select(_processes.c.status, sa.func.count()).group_by(_processes.c.status)
        return {DeletionProcessStatus(status): count for status, count in connection.execute(statement)}

    def cancel(self, connection: Connection, process_id: str, by_device: str, at: datetime) -> None:
        connection.execute(
            _processes.update()
            .where(_processes.c.id == process_id)
            .values(
                status=DeletionProcessStatus.Cancelled.value, cancelled_at=at, cancelled_by_device=by_device
            )
        )

    def active(self, connection: Connection) -> list[DeletionProcess]:
        """The Active processes, those whose grace period ends first first."""
        statement = (
            sa.select(_processes)
            .where(_processes.c.status == DeletionProcessStatus.Active.value)
            .order_by(_processes.c.grace_period_ends_at, _processes.c.id)
        )
        return [_deletion_process(row) for row in connection.execute(statement)]

    def deleting(self, connection: Connection) -> list[DeletionProcess]:
        statement = (
            sa.select(_processes)
            .where(_processes.c.status == DeletionProcessStatus.Deleting.value)
            .order_by(_processes.c.id)
        )
        return [_deletion_process(row) for row in connection.execute(statement)]

    def set_reminder_sent(self, connection: Connection, process_id: str, number: int, at: datetime) -> None:
        column = f"grace_period_reminder{number}_sent_at"
        connection.execute(_processes.update().where(_processes.c.id == process_id).values({column: at}))

    def mark_deleting(self, connection: Connection, process_id: str, at: datetime) -> bool:
        """Move an Active process to Deleting; False if someone else did (or it was cancelled)."""
        result = connection.execute(
            _processes.update()
            .where(_processes.c.id == process_id, _processes.c.status == DeletionProcessStatus.Active.value)
            .values(status=DeletionProcessStatus.Deleting.value, deletion_started_at=at)
        )
        return bool(result.rowcount == 1)

    def delete_of_identity(self, connection: Connection, address: str) -> None:
        connection.execute(_processes.delete().where(_processes.c.identity_address == address))

    def delete_cancelled(self, connection: Connection, before: datetime) -> int:
        statement = _processes.delete().where(
            _processes.c.status == DeletionProcessStatus.Cancelled.value, _processes.c.cancelled_at < before
        )
        return int(connection.execute(statement).rowcount)

    def add_audit_entry(self, connection: Connection, entry: DeletionAuditEntry) -> None:
        connection.execute(
            _log.insert().values(
                id=entry.id,
                identity_deletion_process_id=entry.deletion_process_id,
                created_at=entry.created_at,
                message_key=entry.message_key.value,
                old_status=None if entry.old_status is None else entry.old_status.value,
                new_status=None if entry.new_status is None else entry.new_status.value,
                identity_address_hash=entry.identity_address_hash,
                device_id_hash=entry.device_id_hash,
                additional_data=entry.additional_data,
            )
        )

    def audit_log(
        self, connection: Connection, identity_address_hash: bytes
    ) -> list[tuple[str, int | None, int | None]]:
        """(message key, old status, new status) of an identity's entries, oldest first."""
        statement = (
            sa.select(_log.c.message_key, _log.c.old_status, _log.c.new_status)
            .where(_log.c.identity_address_hash == identity_address_hash)
            .order_by(_log.c.created_at, _log.c.id)
        )
        return [(row.message_key, row.old_status, row.new_status) for row in connection.execute(statement)]

    def audit_entries(self, connection: Connection, identity_address_hash: bytes) -> list[DeletionAuditEntry]:
        """An identity's audit entries, oldest first (they outlive the identity and its processes)."""
        statement = (
            sa.select(_log)
            .where(_log.c.identity_address_hash == identity_address_hash)
            .order_by(_log.c.created_at, _log.c.id)
        )
        return [
            DeletionAuditEntry(
                id=row.id,
                deletion_process_id=row.identity_deletion_process_id,
                created_at=row.created_at,
                message_key=DeletionAuditMessage(row.message_key),
                old_status=None if row.old_status is None else DeletionProcessStatus(row.old_status),
                new_status=None if row.new_status is None else DeletionProcessStatus(row.new_status),
                identity_address_hash=row.identity_address_hash,
                device_id_hash=row.device_id_hash,
                additional_data=row.additional_data,
            )
            for row in connection.execute(statement)
        ]

    def delete_audit_entries(self, connection: Connection, before: datetime) -> int:
        return int(connection.execute(_log.delete().where(_log.c.created_at < before)).rowcount)

    def record_deleted_usernames(
        self, connection: Connection, usernames: Sequence[str], at: datetime
    ) -> None:
        for username in usernames:
            connection.execute(
                _RECORD_DELETED_USERNAME, {"username_hash": _username_hash(username), "deleted_at": at}
            )

    def username_deleted_at(self, connection: Connection, username: str) -> datetime | None:
        statement = sa.select(deleted_usernames.c.deleted_at).where(
            deleted_usernames.c.username_hash == _username_hash(username)
        )
        value: datetime | None = connection.execute(statement).scalar_one_or_none()
        return value


def _username_hash(username: str) -> bytes:
    return hashlib.sha256(username.strip().upper().encode("utf-8")).digest()
