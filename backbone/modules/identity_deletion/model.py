"""Identity deletion: an identity's deletion processes, their audit log and the grace period."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from backbone.platform.errors import DomainError

DEFAULT_GRACE_PERIOD = timedelta(days=14)
MAX_GRACE_PERIOD_DAYS = 3650


class DeletionProcessStatus(Enum):
    """The original's integers; `Deleting` is reached by the deletion job once the grace period is over."""

    Active = 1
    Cancelled = 2
    Deleting = 10


class DeletionAuditMessage(Enum):
    """The message keys of the deletion audit log (the jobs add the later ones)."""

    StartedByOwner = "StartedByOwner"
    # An operator started it (Admin API or UI); the original's key from when support could.
    StartedBySupport = "StartedBySupport"
    CancelledByOwner = "CancelledByOwner"
    GracePeriodReminder1Sent = "GracePeriodReminder1Sent"
    GracePeriodReminder2Sent = "GracePeriodReminder2Sent"
    GracePeriodReminder3Sent = "GracePeriodReminder3Sent"
    DeletionStarted = "DeletionStarted"
    DataDeleted = "DataDeleted"
    DeletionCompleted = "DeletionCompleted"
    ErrorDuringDeletion = "ErrorDuringDeletion"


# Reminders go out this long before the grace period ends (the original's defaults), latest first.
GRACE_PERIOD_REMINDERS = ((3, timedelta(days=5)), (2, timedelta(days=10)), (1, timedelta(days=12)))
REMINDER_MESSAGES = {
    1: DeletionAuditMessage.GracePeriodReminder1Sent,
    2: DeletionAuditMessage.GracePeriodReminder2Sent,
    3: DeletionAuditMessage.GracePeriodReminder3Sent,
}


@dataclass(frozen=True, slots=True)
class DeletionProcess:
    """An identity's request to be deleted once its grace period is over."""

    id: str
    identity_address: str
    status: DeletionProcessStatus
    created_at: datetime
    # None when an operator started the process.
    created_by_device: str | None
    grace_period_ends_at: datetime
    cancelled_at: datetime | None = None
    cancelled_by_device: str | None = None
    grace_period_reminder1_sent_at: datetime | None = None
    grace_period_reminder2_sent_at: datetime | None = None
    grace_period_reminder3_sent_at: datetime | None = None
    deletion_started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeletionAuditEntry:
    """What happened to a deletion process; it keeps only hashes of the identity and device."""

    id: str
    deletion_process_id: str | None
    created_at: datetime
    message_key: DeletionAuditMessage
    old_status: DeletionProcessStatus | None
    new_status: DeletionProcessStatus | None
    identity_address_hash: bytes
    device_id_hash: bytes | None
    additional_data: str | None = None


def audit_hash(value: str) -> bytes:
    """The audit log's stand-in for an address or device id (SHA-256 of its UTF-8 bytes)."""
    return hashlib.sha256(value.encode("utf-8")).digest()


def only_one_active_deletion_process_allowed() -> DomainError:
    return DomainError(
        "error.platform.validation.device.onlyOneActiveDeletionProcessAllowed",
        "Only one active deletion process is allowed per identity.",
    )


def deletion_process_is_not_in_required_status(required: DeletionProcessStatus) -> DomainError:
    return DomainError(
        "error.platform.validation.device.deletionProcessIsNotInRequiredStatus",
        f"The deletion process must be in status '{required.name}' to perform this action.",
    )


def grace_period_has_already_expired() -> DomainError:
    return DomainError(
        "error.platform.validation.device.gracePeriodHasAlreadyExpired",
        "The grace period of the deletion process has already expired.",
    )
