"""Use cases of identity deletion: the identity starts and cancels its deletion process; the jobs
remind it during the grace period and delete it afterwards."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta

from backbone.modules.devices.service import IdentityService
from backbone.modules.identity_deletion import model
from backbone.modules.identity_deletion.events import (
    IdentityDeleted,
    IdentityDeletionCancelled,
    IdentityDeletionProcessStarted,
    IdentityToBeDeleted,
)
from backbone.modules.identity_deletion.model import (
    DEFAULT_GRACE_PERIOD,
    GRACE_PERIOD_REMINDERS,
    REMINDER_MESSAGES,
    DeletionAuditEntry,
    DeletionAuditMessage,
    DeletionProcess,
    DeletionProcessStatus,
    audit_hash,
)
from backbone.modules.identity_deletion.repository import DeletionProcessRepository
from backbone.modules.push_notifications.model import Notification
from backbone.modules.push_notifications.service import PushService
from backbone.platform.auth import Principal
from backbone.platform.clock import Clock
from backbone.platform.db import Connection, Database
from backbone.platform.errors import DomainError, NotFound
from backbone.platform.events import Outbox
from backbone.platform.ids import Ids, is_valid_id


class DeletionProcessService:
    """An identity's deletion processes: started by the identity itself or by an operator, cancelled
    by the identity."""

    def __init__(
        self,
        db: Database,
        processes: DeletionProcessRepository,
        identities: IdentityService,
        outbox: Outbox,
        clock: Clock,
        ids: Ids,
    ) -> None:
        self._db = db
        self._processes = processes
        self._identities = identities
        self._outbox = outbox
        self._clock = clock
        self._ids = ids

    def start(self, caller: Principal, grace_period: timedelta = DEFAULT_GRACE_PERIOD) -> DeletionProcess:
        """Queue the caller's identity for deletion after the grace period."""
        return self._start(
            caller.address, caller.device_id, DeletionAuditMessage.StartedByOwner, grace_period
        )

    def start_by_operator(
        self, address: str, grace_period: timedelta = DEFAULT_GRACE_PERIOD
    ) -> DeletionProcess:
        """Queue an identity for deletion on an operator's word (Admin API, Admin UI): no device
        started it, and the owner can cancel it during the grace period as its own."""
        return self._start(address, None, DeletionAuditMessage.StartedBySupport, grace_period)

    def _start(
        self, address: str, device_id: str | None, message: DeletionAuditMessage, grace_period: timedelta
    ) -> DeletionProcess:
        now = self._clock.now()
        process = DeletionProcess(
            id=self._ids.new("IDP"),
            identity_address=address,
            status=DeletionProcessStatus.Active,
            created_at=now,
            created_by_device=device_id,
            grace_period_ends_at=now + grace_period,
        )
        with self._db.transaction() as connection:
            # The identity's row lock orders concurrent starts and cancellations.
            self._identities.get_for_update(address)
            if self._processes.open_process_exists(connection, address):
                raise model.only_one_active_deletion_process_allowed()
            self._processes.add(connection, process)
            self._audit(connection, address, device_id, process.id, message, None, process.status)
            self._identities.queue_for_deletion(address, process.grace_period_ends_at)
            self._outbox.add(
                IdentityToBeDeleted(
                    identity_address=address, grace_period_ends_at=process.grace_period_ends_at
                )
            )
            if device_id is None:
                self._outbox.add(
                    IdentityDeletionProcessStarted(identity_address=address, deletion_process_id=process.id)
                )
        return process

    def list_processes(self, caller: Principal) -> list[DeletionProcess]:
        with self._db.read() as connection:
            return self._processes.of_identity(connection, caller.address)

    def get(self, caller: Principal, process_id: str) -> DeletionProcess:
        with self._db.read() as connection:
            process = self._processes.find(connection, process_id, caller.address)
        if process is None:
            raise NotFound("IdentityDeletionProcess")
        return process

    def cancel(self, caller: Principal, process_id: str) -> DeletionProcess:
        """Cancel an active process before its grace period ends; the identity is restored."""
        now = self._clock.now()
        with self._db.transaction() as connection:
            self._identities.get_for_update(caller.address)
            process = self._processes.find(connection, process_id, caller.address, lock=True)
            if process is None:
                raise NotFound("IdentityDeletionProcess")
            if process.status is not DeletionProcessStatus.Active:
                raise model.deletion_process_is_not_in_required_status(DeletionProcessStatus.Active)
            if process.grace_period_ends_at <= now:
                raise model.grace_period_has_already_expired()
            self._processes.cancel(connection, process.id, caller.device_id, now)
            self._audit(
                connection,
                caller.address,
                caller.device_id,
                process.id,
                DeletionAuditMessage.CancelledByOwner,
                process.status,
                DeletionProcessStatus.Cancelled,
            )
            self._identities.restore_after_cancelled_deletion(caller.address)
            self._outbox.add(IdentityDeletionCancelled(identity_address=caller.address))
        return dataclasses.replace(
            process,
            status=DeletionProcessStatus.Cancelled,
            cancelled_at=now,
            cancelled_by_device=caller.device_id,
        )

    def is_deleted(self, username: str) -> tuple[bool, datetime | None]:
        """Tell whether the identity of a device user is gone (its deletion grace period is over)."""
        if not is_valid_id(username, "USR"):
            raise DomainError(
                "error.platform.validation.invalidPropertyValue", "'username' is not a valid username."
            )
        with self._db.read() as connection:
            identity = self._identities.of_user(username)
            deleted_at = None if identity else self._processes.username_deleted_at(connection, username)
        ends_at = identity.deletion_grace_period_ends_at if identity else None
        if ends_at is not None and ends_at <= self._clock.now():
            return True, ends_at
        if deleted_at is not None:
            return True, deleted_at
        return False, None

    def audit_log(self, address: str) -> list[tuple[str, int | None, int | None]]:
        """The deletion audit entries of an identity (message key, old and new status)."""
        with self._db.read() as connection:
            return self._processes.audit_log(connection, audit_hash(address))

    def processes_of_identity(self, address: str) -> list[tuple[DeletionProcess, list[DeletionAuditEntry]]]:
        """An identity's deletion processes with their audit entries, for operators."""
        with self._db.read() as connection:
            self._identities.get(address)
            processes = self._processes.of_identity(connection, address)
            entries = self._processes.audit_entries(connection, audit_hash(address))
        return [
            (process, [entry for entry in entries if entry.deletion_process_id == process.id])
            for process in processes
        ]

    def details(self, address: str, process_id: str) -> tuple[DeletionProcess, list[DeletionAuditEntry]]:
        """One deletion process of an identity with its audit entries, for operators."""
        for process, log in self.processes_of_identity(address):
            if process.id == process_id:
                return process, log
        raise NotFound("IdentityDeletionProcess")

    def count_by_status(self) -> dict[DeletionProcessStatus, int]:
        """How many processes are in each status (every status, zero included), for operators."""
        with self._db.read() as connection:
            counts = self._processes.count_by_status(connection)
        return {status: counts.get(status, 0) for status in DeletionProcessStatus}

    def audit_entries_of_identity(self, address: str) -> list[DeletionAuditEntry]:
        """Every audit entry about an identity, also after its deletion (found by its address hash)."""
        with self._db.read() as connection:
            return self._processes.audit_entries(connection, audit_hash(address))

    def _audit(
        self,
        connection: Connection,
        address: str,
        device_id: str | None,
        process_id: str,
        message: DeletionAuditMessage,
        old: DeletionProcessStatus | None,
        new: DeletionProcessStatus | None,
    ) -> None:
        self._processes.add_audit_entry(
            connection,
            DeletionAuditEntry(
                id=self._ids.new("IDA"),
                deletion_process_id=process_id,
                created_at=self._clock.now(),
                message_key=message,
                old_status=old,
                new_status=new,
                identity_address_hash=audit_hash(address),
                device_id_hash=None if device_id is None else audit_hash(device_id),
            ),
        )


class IdentityDeletionJobService:
    """The identity-deletion jobs' use cases: reminders, starting and finishing deletions."""

    def __init__(
        self,
        db: Database,
        processes: DeletionProcessRepository,
        identities: IdentityService,
        push: PushService,
        outbox: Outbox,
        clock: Clock,
        ids: Ids,
    ) -> None:
        self._db = db
        self._processes = processes
        self._identities = identities
        self._push = push
        self._outbox = outbox
        self._clock = clock
        self._ids = ids

    def send_reminders(self) -> int:
        """Remind identities whose grace period ends soon (each reminder once; only the latest due)."""
        now = self._clock.now()
        sent = 0
        # What a job reads decides what it does once and for good (docs/decisions.md, "Read replicas").
        with self._db.read(primary=True) as connection:
            processes = self._processes.active(connection)
        for process in processes:
            for number, before_end in GRACE_PERIOD_REMINDERS:
                if now < process.grace_period_ends_at - before_end:
                    continue
                if getattr(process, f"grace_period_reminder{number}_sent_at") is not None:
                    break
                with self._db.transaction() as connection:
                    # Earlier reminders that were not sent in time are skipped, not sent late.
                    for skipped in range(1, number + 1):
                        if getattr(process, f"grace_period_reminder{skipped}_sent_at") is None:
                            self._processes.set_reminder_sent(connection, process.id, skipped, now)
                    self._audit(
                        connection, process, REMINDER_MESSAGES[number], process.status, process.status
                    )
                days_left = math.ceil((process.grace_period_ends_at - now) / timedelta(days=1))
                reminder = Notification(
                    "DeletionProcessGracePeriodReminder", {"daysUntilDeletion": days_left}
                )
                self._push.to_identity(process.identity_address, reminder)
                sent += 1
                break
        return sent

    def start_due_deletions(self) -> list[DeletionProcess]:
        """Move processes whose grace period is over to Deleting and announce IdentityDeleted;
        return them together with those a failed run left in Deleting (to be retried)."""
        now = self._clock.now()
        with self._db.read(primary=True) as connection:
            due = [p for p in self._processes.active(connection) if p.grace_period_ends_at <= now]
            left_over = self._processes.deleting(connection)
        started = []
        for process in due:
            with self._db.transaction() as connection:
                if not self._processes.mark_deleting(connection, process.id, now):
                    continue
                self._identities.mark_deleting(process.identity_address)
                self._audit(
                    connection,
                    process,
                    DeletionAuditMessage.DeletionStarted,
                    DeletionProcessStatus.Active,
                    DeletionProcessStatus.Deleting,
                )
                self._outbox.add(IdentityDeleted(identity_address=process.identity_address))
            self._push.to_identity(process.identity_address, Notification("DeletionStarts"))
            started.append(dataclasses.replace(process, status=DeletionProcessStatus.Deleting))
        return started + left_over

    def finish(self, process: DeletionProcess) -> None:
        """Remove the identity with its devices, push registrations and processes; the audit log
        and the deleted usernames keep only hashes."""
        address = process.identity_address
        with self._db.transaction() as connection:
            self._audit(connection, process, DeletionAuditMessage.DataDeleted, process.status, process.status)
            usernames = self._identities.usernames_of(address)
            self._processes.record_deleted_usernames(connection, usernames, self._clock.now())
            self._processes.delete_of_identity(connection, address)
            self._push.delete_of_identity(address)
            self._identities.remove(address)
            self._audit(connection, process, DeletionAuditMessage.DeletionCompleted, process.status, None)

    def record_error(self, process: DeletionProcess, error: Exception) -> None:
        with self._db.transaction() as connection:
            self._audit(
                connection,
                process,
                DeletionAuditMessage.ErrorDuringDeletion,
                process.status,
                process.status,
                additional_data=type(error).__name__,
            )

    def delete_cancelled_processes(self, before: datetime) -> int:
        """Housekeeping: remove processes cancelled before the date."""
        with self._db.transaction() as connection:
            return self._processes.delete_cancelled(connection, before)

    def delete_audit_entries(self, before: datetime) -> int:
        """Housekeeping: remove audit-log entries older than the retention period."""
        with self._db.transaction() as connection:
            return self._processes.delete_audit_entries(connection, before)

    def _audit(
        self,
        connection: Connection,
        process: DeletionProcess,
        message: DeletionAuditMessage,
        old: DeletionProcessStatus | None,
        new: DeletionProcessStatus | None,
        additional_data: str | None = None,
    ) -> None:
        self._processes.add_audit_entry(
            connection,
            DeletionAuditEntry(
                id=self._ids.new("IDA"),
                deletion_process_id=process.id,
                created_at=self._clock.now(),
                message_key=message,
                old_status=old,
                new_status=new,
                identity_address_hash=audit_hash(process.identity_address),
                device_id_hash=None,
                additional_data=additional_data,
            ),
        )
