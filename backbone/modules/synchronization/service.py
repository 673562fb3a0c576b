"""Use cases of synchronization: sync runs, external events and the datawallet."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backbone.modules.synchronization import model
from backbone.modules.synchronization.events import DatawalletModified, ExternalEventCreated
from backbone.modules.synchronization.model import (
    NOT_PROCESSED,
    SYNC_RUN_CANCELED,
    Datawallet,
    DatawalletModification,
    EventResult,
    ExternalEvent,
    ExternalEventType,
    NewModification,
    SyncRun,
    SyncRunType,
)
from backbone.modules.synchronization.repository import Counters, SynchronizationRepository
from backbone.platform.auth import Principal
from backbone.platform.clock import Clock
from backbone.platform.db import Database, Page, Paged
from backbone.platform.errors import NotFound
from backbone.platform.events import Outbox
from backbone.platform.ids import Ids

SYNC_RUN_REFRESH = timedelta(seconds=10)


@dataclass(frozen=True)
class FinalizedSync:
    new_modification_index: int | None
    modifications: list[DatawalletModification]
    new_unsynced_events_exist: bool = False


@dataclass(frozen=True)
class PushedModifications:
    new_index: int
    modifications: list[DatawalletModification]


class SynchronizationService:
    def __init__(
        self,
        db: Database,
        repository: SynchronizationRepository,
        outbox: Outbox,
        clock: Clock,
        ids: Ids,
        *,
        identity_is_active: Callable[[str], bool],
    ) -> None:
        self._db = db
        self._repository = repository
        self._outbox = outbox
        self._clock = clock
        self._ids = ids
        self._identity_is_active = identity_is_active

    # --- sync runs ------------------------------------------------------------------------

    def start_sync_run(
        self, caller: Principal, run_type: SyncRunType, duration: timedelta, supported_version: int
    ) -> SyncRun | None:
        """Start a sync run; None means there is nothing to sync (NoNewEvents)."""
        owner = caller.address
        if run_type is SyncRunType.ExternalEventSync:
            # The poll's read-only answer also refuses identities that are to be deleted.
            if self._nothing_to_sync(owner, supported_version):
                return None
        elif not self._identity_is_active(owner):
            raise model.identity_to_be_deleted()
        with self._db.transaction() as connection:
            counters = self._repository.lock_owner(connection, owner)
            datawallet = self._repository.find_datawallet(connection, owner)
            if run_type is SyncRunType.ExternalEventSync and datawallet is None:
                raise NotFound("Datawallet")
            if datawallet is not None and datawallet.version > supported_version:
                raise model.insufficient_supported_datawallet_version()
            self._cancel_expired_run(connection, owner)
            event_ids: list[str] = []
            if run_type is SyncRunType.ExternalEventSync:
                event_ids = self._repository.unsynced_event_ids(connection, owner)
                if not event_ids:
                    return None
            now = self._clock.now()
            run = SyncRun(
                id=self._ids.new("SYR"),
                type=run_type,
                expires_at=now + duration,
                index=counters.next_sync_run_index,
                created_at=now,
                created_by=owner,
                created_by_device=caller.device_id,
                finalized_at=None,
                event_count=len(event_ids),
            )
            self._repository.allocate(connection, owner, "next_sync_run_index", 1)
            self._repository.add_sync_run(connection, run, event_ids)
        return run

    def _nothing_to_sync(self, owner: str, supported_version: int) -> bool:
        """Answer the connectors' once-a-second poll without taking the identity's write lock."""
        with self._db.read() as connection:
            if not self._identity_is_active(owner):
                raise model.identity_to_be_deleted()
            state = self._repository.poll_state(connection, owner)
        if state is None or state.datawallet_version > supported_version or state.latest_run_open:
            return False
        return not state.unsynced_events_exist

    def _cancel_expired_run(self, connection: Any, owner: str) -> None:
        latest = self._repository.latest_sync_run(connection, owner)
        if latest is None or latest.is_finalized:
            return
        now = self._clock.now()
        if not latest.is_expired(now):
            raise model.another_sync_run_is_running()
        failures = [
            (self._ids.new("SYE"), event_id, SYNC_RUN_CANCELED)
            for event_id in self._repository.event_ids_of_run(connection, latest.id)
        ]
        self._repository.detach_with_error(connection, latest.id, failures, now)
        self._repository.finalize_sync_run(connection, latest.id, now)

    def get_sync_run(self, caller: Principal, sync_run_id: str) -> SyncRun:
        with self._db.read() as connection:
            run = self._repository.find_sync_run(connection, sync_run_id, caller.address)
        if run is None:
            raise NotFound("SyncRun")
        return run

    def events_of_sync_run(self, caller: Principal, sync_run_id: str, page: Page) -> Paged:
        with self._db.read() as connection:
            run = self._find_run(connection, caller, sync_run_id)
            # The original checks these two the other way round than for finalizing and refreshing.
            if run.is_finalized:
                raise model.sync_run_already_finalized()
            if run.created_by_device != caller.device_id:
                raise model.started_by_another_device("read")
            return self._repository.events_of_run(connection, run.id, page)

    def refresh_expiration(self, caller: Principal, sync_run_id: str) -> SyncRun:
        """Give the caller's open run another ten seconds from now (also once it has expired)."""
        with self._db.transaction() as connection:
            self._repository.lock_owner(connection, caller.address)
            run = self._find_run(connection, caller, sync_run_id)
            self._check_open_run_of_device(run, caller, "refresh")
            expires_at = self._clock.now() + SYNC_RUN_REFRESH
            self._repository.set_expiry(connection, run.id, expires_at)
        return dataclasses.replace(run, expires_at=expires_at)

    def finalize_external_event_sync(
        self,
        caller: Principal,
        sync_run_id: str,
        results: Sequence[EventResult],
        modifications: Sequence[NewModification],
    ) -> FinalizedSync:
        owner = caller.address
        with self._db.transaction() as connection:
            counters = self._repository.lock_owner(connection, owner)
            run = self._run_to_finalize(connection, caller, sync_run_id, SyncRunType.ExternalEventSync)
            now = self._clock.now()
            error_by_event = {result.external_event_id: result.error_code for result in results}
            failures = []
            for event_id in self._repository.event_ids_of_run(connection, run.id):
                if event_id not in error_by_event:
                    failures.append((self._ids.new("SYE"), event_id, NOT_PROCESSED))
                elif error_by_event[event_id]:
                    failures.append((self._ids.new("SYE"), event_id, str(error_by_event[event_id])))
            self._repository.detach_with_error(connection, run.id, failures, now)
            datawallet = self._repository.find_datawallet(connection, owner)
            if datawallet is None:
                raise NotFound("Datawallet")
            created = self._append(
                connection, caller, datawallet, counters.next_modification_index, modifications
            )
            self._repository.finalize_sync_run(connection, run.id, now)
            # Like the original, only events that never failed count: redeliveries of failing
            # events must not keep the client's sync loop going.
            unsynced_exist = self._repository.unsynced_events_exist(connection, owner, max_sync_errors=1)
        return FinalizedSync(_latest_index(counters, created), created, unsynced_exist)

    def finalize_datawallet_version_upgrade(
        self,
        caller: Principal,
        sync_run_id: str,
        new_version: int,
        modifications: Sequence[NewModification],
    ) -> FinalizedSync:
        owner = caller.address
        with self._db.transaction() as connection:
            counters = self._repository.lock_owner(connection, owner)
            run = self._run_to_finalize(connection, caller, sync_run_id, SyncRunType.DatawalletVersionUpgrade)
            datawallet = self._repository.find_datawallet(connection, owner)
            if datawallet is None:
                datawallet = Datawallet(self._ids.new("DWL"), owner, new_version)
                self._repository.add_datawallet(connection, datawallet)
            elif new_version < datawallet.version:
                raise model.cannot_downgrade(datawallet.version, new_version)
            elif new_version > datawallet.version:
                datawallet = Datawallet(datawallet.id, owner, new_version)
                self._repository.set_datawallet_version(connection, owner, new_version)
            created = self._append(
                connection, caller, datawallet, counters.next_modification_index, modifications
            )
            self._repository.finalize_sync_run(connection, run.id, self._clock.now())
        return FinalizedSync(_latest_index(counters, created), created)

    def _find_run(self, connection: Any, caller: Principal, sync_run_id: str) -> SyncRun:
        run = self._repository.find_sync_run(connection, sync_run_id, caller.address)
        if run is None:
            raise NotFound("SyncRun")
        return run

    def _run_to_finalize(
        self, connection: Any, caller: Principal, sync_run_id: str, expected: SyncRunType
    ) -> SyncRun:
        run = self._find_run(connection, caller, sync_run_id)
        if run.type is not expected:
            raise model.unexpected_sync_run_type(expected)
        self._check_open_run_of_device(run, caller, "finalize")
        return run

    @staticmethod
    def _check_open_run_of_device(run: SyncRun, caller: Principal, action: str) -> None:
        if run.created_by_device != caller.device_id:
            raise model.started_by_another_device(action)
        if run.is_finalized:
            raise model.sync_run_already_finalized()

    # --- datawallet -----------------------------------------------------------------------

    def get_datawallet(self, caller: Principal) -> Datawallet:
        with self._db.read() as connection:
            datawallet = self._repository.find_datawallet(connection, caller.address)
        if datawallet is None:
            raise NotFound("Datawallet")
        return datawallet

    def datawallet_versions(self, owners: Sequence[str]) -> dict[str, int]:
        """The datawallet version of each owner that has a datawallet."""
        if not owners:
            return {}
        with self._db.read() as connection:
            return self._repository.datawallet_versions(connection, owners)

    def modifications(
        self, caller: Principal, local_index: int | None, page: Page, supported_version: int
    ) -> Paged:
        with self._db.read() as connection:
            datawallet = self._repository.find_datawallet(connection, caller.address)
            if datawallet is not None and datawallet.version > supported_version:
                raise model.insufficient_supported_datawallet_version()
            start = -1 if local_index is None else local_index
            return self._repository.modifications_after(connection, caller.address, start, page)

    def push_modifications(
        self,
        caller: Principal,
        local_index: int | None,
        modifications: Sequence[NewModification],
        supported_version: int,
    ) -> PushedModifications:
        owner = caller.address
        with self._db.transaction() as connection:
            counters = self._repository.lock_owner(connection, owner)
            latest_run = self._repository.latest_sync_run(connection, owner)
            if latest_run is not None and not latest_run.is_finalized:
                raise model.push_during_active_sync_run()
            datawallet = self._repository.find_datawallet(connection, owner)
            if datawallet is None:
                raise NotFound("Datawallet")
            if datawallet.version > supported_version:
                raise model.insufficient_supported_datawallet_version()
            latest_index = counters.latest_modification_index
            if latest_index is not None and latest_index != local_index:
                raise model.datawallet_not_up_to_date(local_index, latest_index)
            created = self._append(
                connection, caller, datawallet, counters.next_modification_index, modifications
            )
        return PushedModifications(created[-1].index, created)

    def _append(
        self,
        connection: Any,
        caller: Principal,
        datawallet: Datawallet,
        next_index: int,
        modifications: Sequence[NewModification],
    ) -> list[DatawalletModification]:
        if not modifications:
            return []
        for item in modifications:
            if item.datawallet_version > datawallet.version:
                raise model.modification_version_too_high(item.datawallet_version, datawallet.version)
        first = self._repository.allocate(
            connection, caller.address, "next_modification_index", len(modifications)
        )
        assert first == next_index, "the counter moved while the identity's lock was held"
        now = self._clock.now()
        created = [
            DatawalletModification(
                id=self._ids.new("DWM"),
                owner=caller.address,
                index=first + offset,
                created_at=now,
                created_by_device=caller.device_id,
                datawallet_version=item.datawallet_version,
                object_identifier=item.object_identifier,
                payload_category=item.payload_category,
                collection=item.collection,
                type=item.type,
                encrypted_payload=item.encrypted_payload,
            )
            for offset, item in enumerate(modifications)
        ]
        self._repository.add_modifications(connection, created)
        self._outbox.add(DatawalletModified(identity=caller.address, modified_by_device=caller.device_id))
        return created

    # --- external events ------------------------------------------------------------------

    def lock_owners(self, owners: Sequence[str]) -> None:
        """Take the synchronization locks of several identities, in address order (no deadlocks)."""
        with self._db.transaction() as connection:
            for owner in sorted(set(owners)):
                self._hold_lock(connection, owner)

    def _hold_lock(self, connection: Any, owner: str) -> None:
        """Take the identity's lock unless this transaction already holds it (handlers lock the
        participants first and then call use cases that lock them again)."""
        held: set[str] = self._db.transaction_state().setdefault("synchronization_locks", set())
        if owner not in held:
            self._repository.lock_owner(connection, owner)
            held.add(owner)

    def unblock_external_events(
        self, owners: Sequence[str], event_type: ExternalEventType, context: str
    ) -> int:
        """Release the owners' delivery-blocked events of a type about `context`."""
        with self._db.transaction() as connection:
            self.lock_owners(owners)
            released = self._repository.unblock_events(connection, owners, event_type, context)
            for event_id, owner in released:
                self._outbox.add(
                    ExternalEventCreated(event_id=event_id, owner=owner, is_delivery_blocked=False)
                )
        return len(released)

    def delete_blocked_external_events(
        self, owners: Sequence[str], event_type: ExternalEventType, context: str
    ) -> int:
        """Drop the owners' delivery-blocked events of a type about `context` (never to be delivered)."""
        with self._db.transaction() as connection:
            self.lock_owners(owners)
            return self._repository.delete_blocked_events(connection, owners, event_type, context)

    def delete_unsynced_external_events(self, owner: str, context: str) -> int:
        """Drop the owner's undelivered events about `context` (it no longer wants to hear of it)."""
        with self._db.transaction() as connection:
            self._hold_lock(connection, owner)
            return self._repository.delete_unsynced_events(connection, owner, context)

    def create_external_event(
        self,
        owner: str,
        event_type: ExternalEventType,
        payload: dict[str, Any],
        *,
        context: str | None = None,
        blocked: bool = False,
    ) -> ExternalEvent:
        """Record an event for an identity, with the next gap-free index of that identity."""
        with self._db.transaction() as connection:
            self._hold_lock(connection, owner)
            index = self._repository.allocate(connection, owner, "next_external_event_index", 1)
            event = ExternalEvent(
                id=self._ids.new("SYI"),
                owner=owner,
                index=index,
                type=event_type,
                created_at=self._clock.now(),
                payload=payload,
                sync_error_count=0,
                sync_run_id=None,
                context=context,
                is_delivery_blocked=blocked,
            )
            self._repository.add_external_event(connection, event)
            self._outbox.add(
                ExternalEventCreated(event_id=event.id, owner=owner, is_delivery_blocked=blocked)
            )
        return event

    def delete_of_identity(self, address: str) -> None:
        """Identity deletion: remove its events, sync runs, errors, datawallet and counters."""
        with self._db.transaction() as connection:
            self._repository.delete_of_identity(connection, address)

    def delete_finalized_runs(self, before: datetime) -> int:
        """Housekeeping: remove sync runs finalized before the date (with what they delivered)."""
        with self._db.transaction() as connection:
            return self._repository.delete_finalized_runs(connection, before)


def _latest_index(counters: Counters, created: list[DatawalletModification]) -> int | None:
    """The index of the datawallet's newest modification after a finalization (None if it has none)."""
    return created[-1].index if created else counters.latest_modification_index
