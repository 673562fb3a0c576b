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
    another_sync_run_is_running,
)
from backbone.platform.db import (
    Database,
    Page,
    Paged,
    PrebuiltPage,
    UtcDateTime,
    address_column,
    flag,
    id_column,
    metadata,
    violation_raises,
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
    sa.Column("object_identifier", sa.Unicode(100), nullable=False),
    sa.Column("payload_category", sa.Unicode(50)),
    sa.Column("collection", sa.Unicode(50), nullable=False),
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
        mssql_where=sa.text("finalized_at IS NULL"),
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


@dataclass(frozen=True, slots=True)
class PollState:
    """What the connectors' poll needs to know of an identity that has a datawallet."""

    datawallet_version: int
    latest_run_open: bool
    unsynced_events_exist: bool


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
        sa.not_(external_events.c.is_delivery_blocked),
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
# Everything the poll decides on, in one query: no row without a datawallet; the newest run's
# openness is NULL without a run.
_POLL = sa.select(
    datawallets.c.version,
    sa.select(flag(sync_runs.c.finalized_at.is_(None)))
    .where(sync_runs.c.created_by == _OWNER)
    .order_by(sync_runs.c.index.desc())
    .limit(1)
    .scalar_subquery()
    .label("latest_run_open"),
    flag(_UNSYNCED_EVENT_EXISTS_BY_MAX_ERRORS[MAX_SYNC_ERRORS_PER_EVENT].exists()).label(
        "unsynced_events_exist"
    ),
).where(datawallets.c.owner == _OWNER)

# The statements of the other hot paths: sync runs, external events, datawallet pushes.
_COUNTERS = ("next_external_event_index", "next_sync_run_index", "next_modification_index")
_ALLOCATE = {
    counter: sync_counters.update()
    .where(sync_counters.c.owner == sa.bindparam("counter_owner"))
    .values({counter: sync_counters.c[counter] + sa.bindparam("count", type_=sa.BigInteger)})
    .returning(sync_counters.c[counter])
    for counter in _COUNTERS
}
_SYNC_RUN = sa.select(sync_runs).where(
    sync_runs.c.id == sa.bindparam("sync_run_id"), sync_runs.c.created_by == _OWNER
)
_ADD_SYNC_RUN = sync_runs.insert()
_ASSIGN_EVENTS_TO_RUN = (
    external_events.update()
    .where(external_events.c.id.in_(sa.bindparam("event_ids", expanding=True)))
    .values(sync_run_id=sa.bindparam("run_id"))
)
_FINALIZE_SYNC_RUN = (
    sync_runs.update().where(sync_runs.c.id == sa.bindparam("run_id")).values(finalized_at=sa.bindparam("at"))
)
_SET_EXPIRY = (
    sync_runs.update().where(sync_runs.c.id == sa.bindparam("run_id")).values(expires_at=sa.bindparam("at"))
)
_UNSYNCED_EVENT_IDS = (
    sa.select(external_events.c.id).where(_unsynced(_OWNER)).order_by(external_events.c.index)
)
_EVENT_IDS_OF_RUN = sa.select(external_events.c.id).where(
    external_events.c.sync_run_id == sa.bindparam("sync_run_id")
)
_EVENTS_OF_RUN = PrebuiltPage(
    sa.select(external_events)
    .where(external_events.c.sync_run_id == sa.bindparam("sync_run_id"))
    .order_by(external_events.c.index)
)
_ADD_EXTERNAL_EVENT = external_events.insert()
_OWNERS: sa.BindParameter[list[str]] = sa.bindparam("owners", expanding=True)


def _blocked_events_about(context: Any) -> Any:
    """The owners' delivery-blocked events of a type about the context."""
    return sa.and_(
        external_events.c.owner.in_(_OWNERS),
        external_events.c.type == sa.bindparam("event_type"),
        external_events.c.context == context,
        external_events.c.is_delivery_blocked,
    )


_UNBLOCK_EVENTS = (
    external_events.update()
    .where(_blocked_events_about(sa.bindparam("about")))
    .values(is_delivery_blocked=False)
    .returning(external_events.c.id, external_events.c.owner)
)
_DELETE_BLOCKED_EVENTS = external_events.delete().where(_blocked_events_about(sa.bindparam("about")))
_DELETE_UNSYNCED_EVENTS = external_events.delete().where(
    external_events.c.owner == _OWNER,
    external_events.c.context == sa.bindparam("about"),
    external_events.c.sync_run_id.is_(None),
)
_DETACH_EVENTS = (
    external_events.update()
    .where(external_events.c.id.in_(sa.bindparam("event_ids", expanding=True)))
    .values(sync_run_id=None, sync_error_count=external_events.c.sync_error_count + 1)
)
_ADD_SYNC_ERRORS = sync_errors.insert()
_DATAWALLET_VERSIONS = sa.select(datawallets.c.owner, datawallets.c.version).where(
    datawallets.c.owner.in_(_OWNERS)
)
_ADD_MODIFICATIONS = datawallet_modifications.insert()


def _newest_modifications_after() -> sa.Select[Any]:
    """Modifications of the owner after the local index, only the newest per (object, type,
    payload category), oldest first."""
    table = datawallet_modifications
    rank = (
        sa.func.row_number()
        .over(
            partition_by=[table.c.object_identifier, table.c.type, table.c.payload_category],
            order_by=table.c.index.desc(),
        )
        .label("rank")
    )
    ranked = (
        sa.select(table, rank)
        .where(table.c.owner == _OWNER, table.c.index > sa.bindparam("local_index", type_=sa.BigInteger))
        .subquery()
    )
    return sa.select(ranked).where(ranked.c.rank == 1).order_by(ranked.c.index)


_MODIFICATIONS_AFTER = PrebuiltPage(_newest_modifications_after())


class SynchronizationRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock_owner = db.insert_or_touch(sync_counters, "owner").returning(
            sync_counters.c.next_external_event_index,
            sync_counters.c.next_sync_run_index,
            sync_counters.c.next_modification_index,
        )

    # --- counters and locking -------------------------------------------------------------

    def lock_owner(self, connection: Connection, owner: str) -> Counters:
        """Take the identity's synchronization lock (creating its counter row when missing)."""
        row = connection.execute(self._lock_owner, {"owner": owner}).one()
        return Counters(row.next_external_event_index, row.next_sync_run_index, row.next_modification_index)

    def allocate(self, connection: Connection, owner: str, counter: str, count: int) -> int:
        """Reserve `count` consecutive indexes of a counter; return the first (caller holds the lock)."""
        after = connection.execute(_ALLOCATE[counter], {"counter_owner": owner, "count": count}).scalar_one()
        return int(after) - count

    # --- sync runs ------------------------------------------------------------------------

    def latest_sync_run(self, connection: Connection, owner: str) -> SyncRun | None:
        row = connection.execute(_LATEST_SYNC_RUN, {"owner": owner}).first()
        return None if row is None else _sync_run(row)

    def poll_state(self, connection: Connection, owner: str) -> PollState | None:
        """The datawallet version, whether the newest sync run is open and whether events wait;
        None without a datawallet."""
        row = connection.execute(_POLL, {"owner": owner}).first()
        if row is None:
            return None
        return PollState(row.version, bool(row.latest_run_open), bool(row.unsynced_events_exist))

    def find_sync_run(self, connection: Connection, sync_run_id: str, owner: str) -> SyncRun | None:
        row = connection.execute(_SYNC_RUN, {"sync_run_id": sync_run_id, "owner": owner}).first()
        return None if row is None else _sync_run(row)

    def add_sync_run(self, connection: Connection, run: SyncRun, event_ids: Sequence[str]) -> None:
        # A unique index (one open run, or the run index, per identity) refused a racing start;
        # the identity's lock prevents that, the original answers it the same way.
        with violation_raises(another_sync_run_is_running):
            connection.execute(
                _ADD_SYNC_RUN,
                {
                    "id": run.id,
                    "type": run.type.value,
                    "expires_at": run.expires_at,
                    "index": run.index,
                    "created_at": run.created_at,
                    "created_by": run.created_by,
                    "created_by_device": run.created_by_device,
                    "finalized_at": None,
                    "event_count": run.event_count,
                },
            )
        if event_ids:
            connection.execute(_ASSIGN_EVENTS_TO_RUN, {"event_ids": list(event_ids), "run_id": run.id})

    def finalize_sync_run(self, connection: Connection, sync_run_id: str, at: datetime) -> None:
        connection.execute(_FINALIZE_SYNC_RUN, {"run_id": sync_run_id, "at": at})

    def set_expiry(self, connection: Connection, sync_run_id: str, expires_at: datetime) -> None:
        connection.execute(_SET_EXPIRY, {"run_id": sync_run_id, "at": expires_at})

    # --- external events ------------------------------------------------------------------

    def unsynced_event_ids(self, connection: Connection, owner: str) -> list[str]:
        return list(connection.execute(_UNSYNCED_EVENT_IDS, {"owner": owner}).scalars())

    def unsynced_events_exist(
        self, connection: Connection, owner: str, max_sync_errors: int = MAX_SYNC_ERRORS_PER_EVENT
    ) -> bool:
        statement = _UNSYNCED_EVENT_EXISTS_BY_MAX_ERRORS.get(max_sync_errors)
        if statement is None:
            statement = sa.select(external_events.c.id).where(_unsynced(_OWNER, max_sync_errors)).limit(1)
        return connection.execute(statement, {"owner": owner}).first() is not None

    def event_ids_of_run(self, connection: Connection, sync_run_id: str) -> list[str]:
        return list(connection.execute(_EVENT_IDS_OF_RUN, {"sync_run_id": sync_run_id}).scalars())

    def events_of_run(self, connection: Connection, sync_run_id: str, page: Page) -> Paged:
        paged = _EVENTS_OF_RUN.fetch(connection, {"sync_run_id": sync_run_id}, page)
        return Paged([_external_event(row) for row in paged.items], paged.page, paged.total_records)

    def add_external_event(self, connection: Connection, event: ExternalEvent) -> None:
        connection.execute(
            _ADD_EXTERNAL_EVENT,
            {
                "id": event.id,
                "owner": event.owner,
                "index": event.index,
                "type": event.type.value,
                "created_at": event.created_at,
                "payload": orjson.dumps(event.payload).decode("utf-8"),
                "sync_error_count": event.sync_error_count,
                "sync_run_id": event.sync_run_id,
                "context": event.context,
                "is_delivery_blocked": event.is_delivery_blocked,
            },
        )

    def unblock_events(
        self, connection: Connection, owners: Sequence[str], event_type: ExternalEventType, context: str
    ) -> list[tuple[str, str]]:
        """Release delivery-blocked events of a type and context; return (event id, owner) of each."""
        parameters = {"owners": list(owners), "event_type": event_type.value, "about": context}
        return [(row.id, row.owner) for row in connection.execute(_UNBLOCK_EVENTS, parameters)]

    def delete_blocked_events(
        self, connection: Connection, owners: Sequence[str], event_type: ExternalEventType, context: str
    ) -> int:
        parameters = {"owners": list(owners), "event_type": event_type.value, "about": context}
        return int(connection.execute(_DELETE_BLOCKED_EVENTS, parameters).rowcount)

    def delete_unsynced_events(self, connection: Connection, owner: str, context: str) -> int:
        """Delete the owner's events about `context` that no sync run has delivered."""
        return int(connection.execute(_DELETE_UNSYNCED_EVENTS, {"owner": owner, "about": context}).rowcount)

    def detach_with_error(
        self, connection: Connection, sync_run_id: str, failures: Sequence[tuple[str, str, str]], at: datetime
    ) -> None:
        """Give failed events back for redelivery; `failures` holds (error id, event id, code)."""
        if not failures:
            return
        event_ids = [event_id for _, event_id, _ in failures]
        connection.execute(_DETACH_EVENTS, {"event_ids": event_ids})
        connection.execute(
            _ADD_SYNC_ERRORS,
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
        rows = connection.execute(_DATAWALLET_VERSIONS, {"owners": list(owners)})
        return {row.owner: row.version for row in rows}

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
            _ADD_MODIFICATIONS,
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
        parameters = {"owner": owner, "local_index": local_index}
        paged = _MODIFICATIONS_AFTER.fetch(connection, parameters, page)
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
