"""What the relationships module publishes (names and fields as the original puts them on the bus)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from backbone.platform.events import DomainEvent


@dataclass(frozen=True)
class RelationshipStatusChanged(DomainEvent):
    """A relationship changed its status (creation included); `new_status` is the status name."""

    relationship_id: str
    new_status: str
    initiator: str
    peer: str
    was_due_to_identity_deletion: bool = False


@dataclass(frozen=True)
class RelationshipReactivationRequested(DomainEvent):
    relationship_id: str
    requesting_identity: str
    peer: str


@dataclass(frozen=True)
class RelationshipReactivationCompleted(DomainEvent):
    relationship_id: str
    new_relationship_status: str
    peer: str


@dataclass(frozen=True)
class RelationshipTemplateCreated(DomainEvent):
    template_id: str
    created_by: str


@dataclass(frozen=True)
class RelationshipTemplateAllocationsExhausted(DomainEvent):
    relationship_template_id: str
    created_by: str


@dataclass(frozen=True)
class PeerToBeDeleted(DomainEvent):
    peer_of_identity_to_be_deleted: str
    relationship_id: str
    identity_to_be_deleted: str
    grace_period_ends_at: datetime


@dataclass(frozen=True)
class PeerDeletionCancelled(DomainEvent):
    peer_of_identity_with_deletion_cancelled: str
    relationship_id: str
    identity_with_deletion_cancelled: str


@dataclass(frozen=True)
class PeerDeleted(DomainEvent):
    peer_of_deleted_identity: str
    relationship_id: str
    deleted_identity: str


@dataclass(frozen=True)
class PeerFeatureFlagsChanged(DomainEvent):
    peer_address: str
    notified_identity_address: str
