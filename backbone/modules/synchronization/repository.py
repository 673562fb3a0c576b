"""Tables and queries of synchronization: counters, sync runs, external events, datawallets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backbone.modules.synchronization.model import (
    MAX_SYNC_ERRORS_PER_EVENT,
    Datawallet,
    DatawalletModification,
    ExternalEvent,
    ExternalEventType,
    ModificationType,
    SyncRun,
    SyncRunType,
)
from backbone.platform.db import (
    Database,
    Page,
    Paged,
    UtcDateTime,
    address_column,
    fetch_page,
    id_column,
    metadata,
)

# One row per identity: the next free indexes, and the lock that serialises sync runs,
# datawallet pushes and external-event numbering of that identity.
sync_counters = sa.Table(
    "sync_counters",
    metadata,
    address_column("owner", primary_key=True),
    sa.Column("next_external_event_index", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("next_sync_run_index", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("next_modification_index", sa.BigInteger, nullable=False, server_default="0"),
)

datawallets = sa.Table(
    "datawallets",
    metadata,
    id_column(primary_key=True),
    address_column("owner", nullable=False, unique=True),
    sa.Column("version", sa.Integer, nullable=False),
)

datawallet_modifications = sa.Table(
    "datawallet_modifications",
    metadata,
    id_column(primary_key=True),
    address_column("owner", nullable=False),
    sa.Column("index", sa.BigInteger, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    id_column("created_by_device", nullable=False),
    sa.Column("datawallet_version", sa.Integer, nullable=False),
    sa.Column("object_identifier", sa.String(100), nullable=False),
    sa.Column("payload_category", sa.String(50)),
    sa.Column("collection", sa.String(50), nullable=False),
    sa.Column("type", sa.SmallInteger, nullable=False),
    sa.Column("encrypted_payload", sa.LargeBinary),
    sa.UniqueConstraint("owner", "index"),
)

sync_runs = sa.Table(
    "sync_runs",
    metadata,
    id_column(primary_key=True),
    sa.Column("type", sa.SmallInteger, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("index", sa.BigInteger, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    address_column("created_by", nullable=False),
    id_column("created_by_device", nullable=False),
    sa.Column("finalized_at", UtcDateTime),
    sa.Column("event_count", sa.Integer, nullable=False),
    sa.UniqueConstraint("created_by", "index"),
    # A second guard, behind the identity's lock, for "one open sync run per identity".
    sa.Index(
        "ix_sync_runs_one_open_run_per_identity",
        "created_by",
        unique=True,
        sqlite_where=sa.text("finalized_at IS NULL"),
        postgresql_where=sa.text("finalized_at IS NULL"),
    ),
)

external_events = sa.Table(
    "external_events",
    metadata,
    id_column(primary_key=True),
    address_column("owner", nullable=False),
    sa.Column("index", sa.BigInteger, nullable=False),
    sa.Column("type", sa.SmallInteger, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("payload", sa.String(200), nullable=False),
    sa.Column("sync_error_count", sa.SmallInteger, nullable=False),
    id_column("sync_run_id"),
    sa.Column("context", sa.String(20)),
    sa.Column("is_delivery_blocked", sa.Boolean, nullable=False),
    sa.UniqueConstraint("owner", "index"),
    sa.Index("ix_external_events_sync_run_id", "sync_run_id"),
)

sync_errors = sa.Table(
    "sync_errors",
    metadata,
    id_column(primary_key=True),
    id_column("external_event_id", nullable=False),
    id_column("sync_run_id", nullable=False),
    sa.Column("error_code", sa.String(100), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_sync_errors_external_event_id", "external_event_id"),
)


@dataclass(frozen=True, slots=True)
class Counters:
    next_external_event_index: int
    next_sync_run_index: int
    next_modification_index: int

    @property
    def latest_modification_index(self) -> int | None:
        return self.next_modification_index - 1 if self.next_modification_index > 0 else None


def _sync_run(row: Any) -> SyncRun:
    return SyncRun(
        id=row.id,
        type=SyncRunType(row.type),
        expires_at=row.expires_at,
        index=row.index,
        created_at=row.created_at,
        created_by=row.created_by,
        created_by_device=row.created_by_device,
        finalized_at=row.finalized_at,
        event_count=row.event_count,
    )


def _external_event(row: Any) -> ExternalEvent:
    return ExternalEvent(
        id=row.id,
        owner=row.owner,
        index=row.index,
        type=ExternalEventType(row.type),
        created_at=row.created_at,
        payload=orjson.loads(row.payload),
        sync_error_count=row.sync_error_count,
        sync_run_id=row.sync_run_id,
        context=row.context,
        is_delivery_blocked=row.is_delivery_blocked,
    )


def _modification(row: Any) -> DatawalletModification:
    return DatawalletModification(
        id=row.id,
        owner=row.owner,
        index=row.index,
        created_at=row.created_at,
        created_by_device=row.created_by_device,
        datawallet_version=row.datawallet_version,
        object_identifier=row.object_identifier,
        payload_category=row.payload_category,
        collection=row.collection,
        type=ModificationType(row.type),
        encrypted_payload=row.encrypted_payload,
    )


def _unsynced(owner: Any, max_sync_errors: int = MAX_SYNC_ERRORS_PER_EVENT) -> Any:
    """Events of the owner in no run, not delivery-blocked, with fewer than `max_sync_errors` errors."""
    return sa.and_(
        external_events.c.owner == owner,
        external_events.c.sync_run_id.is_(None),
        external_events.c.is_delivery_blocked.is_(False),
        external_events.c.sync_error_count < max_sync_errors,
    )


# The statements of the connectors' once-a-second poll, built once (building them costs more
# than running them on SQLite).
_OWNER: sa.BindParameter[str] = sa.bindparam("owner", type_=sa.String)
_LATEST_SYNC_RUN = (
    sa.select(sync_runs).where(sync_runs.c.created_by == _OWNER).order_by(sync_runs.c.index.desc()).limit(1)
)
_UNSYNCED_EVENT_EXISTS_BY_MAX_ERRORS = {
    max_errors: sa.select(external_events.c.id).where(_unsynced(_OWNER, max_errors)).limit(1)
    for max_errors in (1, MAX_SYNC_ERRORS_PER_EVENT)
}
_DATAWALLET = sa.select(datawallets).where(datawallets.c.owner == _OWNER)


class SynchronizationRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- counters and locking -------------------------------------------------------------

    def lock_owner(self, connection: Connection, owner: str) -> Counters:
        """Take the identity's synchronization lock (creating its counter row when missing)."""
        statement = self._db.insert_or_touch(sync_counters, "owner", owner).returning(
            sync_counters.c.next_external_event_index,
            sync_counters.c.next_sync_run_index,
            sync_counters.c.next_modification_index,
        )
        row = connection.execute(statement).one()
        return Counters(row.next_external_event_index, row.next_sync_run_index, row.next_modification_index)

    def allocate(self, connection: Connection, owner: str, counter: str, count: int) -> int:
        """Reserve `count` consecutive indexes of a counter; return the first (caller holds the lock)."""
        column = sync_counters.c[counter]
        statement = (
            sync_counters.update()
            .where(sync_counters.c.owner == owner)
            .values({counter: column + count})
            .returning(column)
        )
        return int(connection.execute(statement).scalar_one()) - count

    # --- sync runs ------------------------------------------------------------------------

    def latest_sync_run(self, connection: Connection, owner: str) -> SyncRun | None:
        row = connection.execute(_LATEST_SYNC_RUN, {"owner": owner}).first()
        return None if row is None else _sync_run(row)

    def find_sync_run(self, connection: Connection, sync_run_id: str, owner: str) -> SyncRun | None:
        statement = sa.select(sync_runs).where(sync_runs.c.id == sync_run_id, sync_runs.c.created_by == owner)
        row = connection.execute(statement).first()
        return None if row is None else _sync_run(row)

    def add_sync_run(self, connection: Connection, run: SyncRun, event_ids: Sequence[str]) -> None:
        connection.execute(
            sync_runs.insert().values(
                id=run.id,
                type=run.type.value,
                expires_at=run.expires_at,
                index=run.index,
                created_at=run.created_at,
                created_by=run.created_by,
                created_by_device=run.created_by_device,
                finalized_at=None,
                event_count=run.event_count,
            )
        )
        if event_ids:
            connection.execute(
                external_events.update().where(external_events.c.id.in_(event_ids)).values(sync_run_id=run.id)
            )

    def finalize_sync_run(self, connection: Connection, sync_run_id: str, at: datetime) -> None:
        connection.execute(sync_runs.update().where(sync_runs.c.id == sync_run_id).values(finalized_at=at))

    def set_expiry(self, connection: Connection, sync_run_id: str, expires_at: datetime) -> None:
        connection.execute(
            sync_runs.update().where(sync_runs.c.id == sync_run_id).values(expires_at=expires_at)
        )

    # --- external events ------------------------------------------------------------------

    def unsynced_event_ids(self, connection: Connection, owner: str) -> list[str]:
        statement = sa.select(external_events.c.id).where(_unsynced(owner)).order_by(external_events.c.index)
        return list(connection.execute(statement).scalars())

    def unsynced_events_exist(
        self, connection: Connection, owner: str, max_sync_errors: int = MAX_SYNC_ERRORS_PER_EVENT
    ) -> bool:
        statement = _UNSYNCED_EVENT_EXISTS_BY_MAX_ERRORS.get(max_sync_errors)
        if statement is None:
            statement = sa.select(external_events.c.id).where(_unsynced(_OWNER, max_sync_errors)).limit(1)
        return connection.execute(statement, {"owner": owner}).first() is not None

    def event_ids_of_run(self, connection: Connection, sync_run_id: str) -> list[str]:
        statement = sa.select(external_events.c.id).where(external_events.c.sync_run_id == sync_run_id)
        return list(connection.execute(statement).scalars())

    def events_of_run(self, connection: Connection, sync_run_id: str, page: Page) -> Paged:
        statement = (
            sa.select(external_events)
            .where(external_events.c.sync_run_id == sync_run_id)
            .order_by(external_events.c.index)
        )
        paged = fetch_page(connection, statement, page)
        return Paged([_external_event(row) for row in paged.items], paged.page, paged.total_records)

    def add_external_event(self, connection: Connection, event: ExternalEvent) -> None:
        connection.execute(
            external_events.insert().values(
                id=event.id,
                owner=event.owner,
                index=event.index,
                type=event.type.value,
                created_at=event.created_at,
                payload=orjson.dumps(event.payload).decode("utf-8"),
                sync_error_count=event.sync_error_count,
                sync_run_id=event.sync_run_id,
                context=event.context,
                is_delivery_blocked=event.is_delivery_blocked,
            )
        )

    def unblock_events(
        self, connection: Connection, owners: Sequence[str], event_type: ExternalEventType, context: str
    ) -> list[tuple[str, str]]:
        """Release delivery-blocked events of a type and context; return (event id, owner) of each."""
        statement = (
            external_events.update()
            .where(
                external_events.c.owner.in_(list(owners)),
                external_events.c.type == event_type.value,
                external_events.c.context == context,
                external_events.c.is_delivery_blocked.is_(True),
            )
            .values(is_delivery_blocked=False)
            .returning(external_events.c.id, external_events.c.owner)
        )
        return [(row.id, row.owner) for row in connection.execute(statement)]

    def delete_blocked_events(
        self, connection: Connection, owners: Sequence[str], event_type: ExternalEventType, context: str
    ) -> int:
        statement = external_events.delete().where(
            external_events.c.owner.in_(list(owners)),
            external_events.c.type == event_type.value,
            external_events.c.context == context,
            external_events.c.is_delivery_blocked.is_(True),
        )
        return int(connection.execute(statement).rowcount)

    def delete_unsynced_events(self, connection: Connection, owner: str, context: str) -> int:
        """Delete the owner's events about `context` that no sync run has delivered."""
        statement = external_events.delete().where(
            external_events.c.owner == owner,
            external_events.c.context == context,
            external_events.c.sync_run_id.is_(None),
        )
        return int(connection.execute(statement).rowcount)

    def detach_with_error(
        self, connection: Connection, sync_run_id: str, failures: Sequence[tuple[str, str, str]], at: datetime
    ) -> None:
        """Give failed events back for redelivery; `failures` holds (error id, event id, code)."""
        if not failures:
            return
        event_ids = [event_id for _, event_id, _ in failures]
        connection.execute(
            external_events.update()
            .where(external_events.c.id.in_(event_ids))
            .values(sync_run_id=None, sync_error_count=external_events.c.sync_error_count + 1)
        )
        connection.execute(
            sync_errors.insert(),
            [
                {
                    "id": error_id,
                    "external_event_id": event_id,
                    "sync_run_id": sync_run_id,
                    "error_code": code[:100],
                    "created_at": at,
                }
                for error_id, event_id, code in failures
            ],
        )

    # --- datawallet -----------------------------------------------------------------------

    def find_datawallet(self, connection: Connection, owner: str) -> Datawallet | None:
        row = connection.execute(_DATAWALLET, {"owner": owner}).first()
        return None if row is None else Datawallet(row.id, row.owner, row.version)

    def datawallet_versions(self, connection: Connection, owners: Sequence[str]) -> dict[str, int]:
        statement = sa.select(datawallets.c.owner, datawallets.c.version).where(
            datawallets.c.owner.in_(list(owners))
        )
        return {row.owner: row.version for row in connection.execute(statement)}

    def add_datawallet(self, connection: Connection, datawallet: Datawallet) -> None:
        connection.execute(
            datawallets.insert().values(id=datawallet.id, owner=datawallet.owner, version=datawallet.version)
        )

    def set_datawallet_version(self, connection: Connection, owner: str, version: int) -> None:
        connection.execute(datawallets.update().where(datawallets.c.owner == owner).values(version=version))

    def add_modifications(
        self, connection: Connection, modifications: Sequence[DatawalletModification]
    ) -> None:
        if not modifications:
            return
        connection.execute(
            datawallet_modifications.insert(),
            [
                {
                    "id": item.id,
                    "owner": item.owner,
                    "index": item.index,
                    "created_at": item.created_at,
                    "created_by_device": item.created_by_device,
                    "datawallet_version": item.datawallet_version,
                    "object_identifier": item.object_identifier,
                    "payload_category": item.payload_category,
                    "collection": item.collection,
                    "type": item.type.value,
                    "encrypted_payload": item.encrypted_payload,
                }
                for item in modifications
            ],
        )

    def modifications_after(self, connection: Connection, owner: str, local_index: int, page: Page) -> Paged:
        """Modifications after `local_index`, only the newest per (object, type, payload category)."""
        table = datawallet_modifications
        rank = (
            sa.func.row_number()
            .over(
                partition_by=[table.c.object_identifier, table.c.type, table.c.payload_category],
                order_by=table.c.index.desc(),
            )
            .label("rank")
        )
        ranked = sa.select(table, rank).where(table.c.owner == owner, table.c.index > local_index).subquery()
        statement = sa.select(ranked).where(ranked.c.rank == 1).order_by(ranked.c.index)
        paged = fetch_page(connection, statement, page)
        return Paged([_modification(row) for row in paged.items], paged.page, paged.total_records)

    # --- deletion and housekeeping ---------------------------------------------------------

    def delete_of_identity(self, connection: Connection, address: str) -> None:
        events = sa.select(external_events.c.id).where(external_events.c.owner == address)
        runs = sa.select(sync_runs.c.id).where(sync_runs.c.created_by == address)
        connection.execute(
            sync_errors.delete().where(
                sa.or_(sync_errors.c.external_event_id.in_(events), sync_errors.c.sync_run_id.in_(runs))
            )
        )
        connection.execute(external_events.delete().where(external_events.c.owner == address))
        connection.execute(sync_runs.delete().where(sync_runs.c.created_by == address))
        connection.execute(
            datawallet_modifications.delete().where(datawallet_modifications.c.owner == address)
        )
        connection.execute(datawallets.delete().where(datawallets.c.owner == address))
        connection.execute(sync_counters.delete().where(sync_counters.c.owner == address))

    def delete_finalized_runs(self, connection: Connection, before: datetime) -> int:
        """Runs finalized before the date, with the events they delivered and their errors."""
        runs = sa.select(sync_runs.c.id).where(sync_runs.c.finalized_at < before)
        run_ids = list(connection.execute(runs).scalars())
        if not run_ids:
            return 0
        connection.execute(sync_errors.delete().where(sync_errors.c.sync_run_id.in_(run_ids)))
        delivered = sa.select(external_events.c.id).where(external_events.c.sync_run_id.in_(run_ids))
        connection.execute(sync_errors.delete().where(sync_errors.c.external_event_id.in_(delivered)))
        connection.execute(external_events.delete().where(external_events.c.sync_run_id.in_(run_ids)))
        connection.execute(sync_runs.delete().where(sync_runs.c.id.in_(run_ids)))
        return len(run_ids)
