"""Sync runs, external events and the datawallet of an identity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from backbone.platform.errors import DomainError

MAX_SYNC_ERRORS_PER_EVENT = 3
DEFAULT_SYNC_RUN_DURATION = timedelta(seconds=10)
SYNC_RUN_CANCELED = "syncRunCanceled"
NOT_PROCESSED = "notProcessed"


class SyncRunType(Enum):
    ExternalEventSync = 0
    DatawalletVersionUpgrade = 1


class ExternalEventType(Enum):
    """The wire names, with the integers the original stores."""

    MessageReceived = 0
    RelationshipStatusChanged = 10
    RelationshipReactivationRequested = 12
    RelationshipReactivationCompleted = 13
    IdentityDeletionProcessStarted = 20
    IdentityDeletionProcessStatusChanged = 21
    PeerToBeDeleted = 22
    PeerDeletionCancelled = 23
    PeerDeleted = 24
    TokenLocked = 30
    PeerFeatureFlagsChanged = 40
    RelationshipTemplateAllocationsExhausted = 50
    FileOwnershipLocked = 60
    FileOwnershipClaimed = 61


class ModificationType(Enum):
    Create = 0
    Update = 1
    Delete = 2
    CacheChanged = 3


@dataclass(frozen=True, slots=True)
class SyncRun:
    id: str
    type: SyncRunType
    expires_at: datetime
    index: int
    created_at: datetime
    created_by: str
    created_by_device: str
    finalized_at: datetime | None
    event_count: int

    @property
    def is_finalized(self) -> bool:
        return self.finalized_at is not None

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at < now


@dataclass(frozen=True, slots=True)
class ExternalEvent:
    id: str
    owner: str
    index: int
    type: ExternalEventType
    created_at: datetime
    payload: dict[str, Any]
    sync_error_count: int
    sync_run_id: str | None
    context: str | None
    is_delivery_blocked: bool


@dataclass(frozen=True, slots=True)
class Datawallet:
    id: str
    owner: str
    version: int


@dataclass(frozen=True, slots=True)
class NewModification:
    """A datawallet modification as a device pushes it."""

    type: ModificationType
    object_identifier: str
    collection: str
    payload_category: str | None
    encrypted_payload: bytes | None
    datawallet_version: int


@dataclass(frozen=True, slots=True)
class DatawalletModification:
    id: str
    owner: str
    index: int
    created_at: datetime
    created_by_device: str
    datawallet_version: int
    object_identifier: str
    payload_category: str | None
    collection: str
    type: ModificationType
    encrypted_payload: bytes | None


@dataclass(frozen=True, slots=True)
class EventResult:
    external_event_id: str
    error_code: str | None


def _validation(code: str, message: str) -> DomainError:
    return DomainError(f"error.platform.validation.{code}", message)


def another_sync_run_is_running() -> DomainError:
    return _validation(
        "syncRun.cannotStartSyncRunWhenAnotherSyncRunIsRunning",
        "Another sync run is currently active. Finalize it or wait until it expires.",
    )


def identity_to_be_deleted() -> DomainError:
    return _validation(
        "syncRun.cannotStartSyncRunWhileIdentityIsToBeDeleted",
        "A sync run cannot be started while the identity is to be deleted.",
    )


def insufficient_supported_datawallet_version() -> DomainError:
    return _validation(
        "datawallet.insufficientSupportedDatawalletVersion",
        "The datawallet of this identity has a higher version than the one the client supports.",
    )


def sync_run_already_finalized() -> DomainError:
    return _validation("syncRun.syncRunAlreadyFinalized", "The sync run is already finalized.")


def unexpected_sync_run_type(expected: SyncRunType) -> DomainError:
    return _validation("syncRun.unexpectedSyncRunType", f"The sync run is not of type '{expected.name}'.")


def started_by_another_device(action: str) -> DomainError:
    codes = {
        "read": "cannotReadExternalEventsOfASyncRunStartedByAnotherDevice",
        "finalize": "cannotFinalizeSyncRunStartedByAnotherDevice",
        "refresh": "cannotRefreshExpirationTimeOfSyncRunStartedByAnotherDevice",
    }
    return _validation(f"syncRun.{codes[action]}", "The sync run was started by another device.")


def datawallet_not_up_to_date(local_index: int | None, latest_index: int) -> DomainError:
    return _validation(
        "datawallet.datawalletNotUpToDate",
        f"The local index ({local_index}) does not match the latest datawallet modification "
        f"({latest_index}). "
        "Pull the newest modifications first.",
    )


def push_during_active_sync_run() -> DomainError:
    return _validation(
        "datawallet.cannotPushDatawalletModificationsDuringActiveSyncRun",
        "Datawallet modifications cannot be pushed while a sync run is active.",
    )


def cannot_downgrade(current: int, requested: int) -> DomainError:
    return DomainError(
        "error.platform.datawallet.cannotDowngrade",
        f"The datawallet cannot be downgraded from version {current} to version {requested}.",
    )


def modification_version_too_high(version: int, datawallet_version: int) -> DomainError:
    return DomainError(
        "error.platform.datawallet.datawalletVersionOfModificationTooHigh",
        f"A modification has datawallet version {version}, "
        f"higher than the datawallet's {datawallet_version}.",
    )
