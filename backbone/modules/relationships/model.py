"""Relationship templates, relationships between two identities, and their audit log."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from backbone.platform.errors import DomainError

MAX_CONTENT_BYTES = 10 * 1024 * 1024
MAX_PASSWORD_BYTES = 200


class RelationshipStatus(Enum):
    """The wire names, with the integers the original stores."""

    Pending = 10
    Active = 20
    Rejected = 30
    Revoked = 40
    Terminated = 50
    DeletionProposed = 60
    ReadyForDeletion = 70


# A pair of identities has at most one relationship in these statuses (enforced by the database).
BLOCKING_STATUSES = frozenset(
    {
        RelationshipStatus.Pending,
        RelationshipStatus.Active,
        RelationshipStatus.Terminated,
        RelationshipStatus.DeletionProposed,
    }
)
# Peers in these relationships hear that the other side is to be deleted (or no longer is).
PEER_NOTIFIED_STATUSES = (
    RelationshipStatus.Pending,
    RelationshipStatus.Active,
    RelationshipStatus.Terminated,
)
# Peers in these relationships hear that the other side changed its feature flags.
FEATURE_FLAGS_NOTIFIED_STATUSES = (RelationshipStatus.Pending, RelationshipStatus.Active)
DECOMPOSABLE_STATUSES = (
    RelationshipStatus.Rejected,
    RelationshipStatus.Revoked,
    RelationshipStatus.Terminated,
    RelationshipStatus.DeletionProposed,
)


class AuditLogReason(Enum):
    Creation = 0
    AcceptanceOfCreation = 1
    RejectionOfCreation = 2
    RevocationOfCreation = 3
    Termination = 4
    ReactivationRequested = 5
    AcceptanceOfReactivation = 6
    RejectionOfReactivation = 7
    RevocationOfReactivation = 8
    Decomposition = 9
    DecompositionDueToIdentityDeletion = 10


@dataclass(frozen=True, slots=True)
class RelationshipTemplate:
    id: str
    created_at: datetime
    created_by: str
    created_by_device: str
    max_number_of_allocations: int | None
    expires_at: datetime | None
    for_identity: str | None
    password: bytes | None
    content: bytes

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class NewTemplate:
    """A template as its creator describes it."""

    content: bytes
    expires_at: datetime | None
    max_number_of_allocations: int | None
    for_identity: str | None
    password: bytes | None


@dataclass(frozen=True, slots=True)
class TemplateQueryItem:
    """One `templates.N` entry of a list request."""

    id: str
    password: bytes | None


@dataclass(frozen=True, slots=True)
class AuditLogEntry:
    id: str
    created_at: datetime
    created_by: str
    created_by_device: str | None
    reason: AuditLogReason
    old_status: RelationshipStatus | None
    new_status: RelationshipStatus


@dataclass(frozen=True, slots=True)
class Relationship:
    id: str
    relationship_template_id: str | None
    from_address: str
    to_address: str
    created_at: datetime
    status: RelationshipStatus
    from_has_decomposed: bool
    to_has_decomposed: bool
    creation_content: bytes | None
    creation_response_content: bytes | None
    audit_log: tuple[AuditLogEntry, ...]

    def is_participant(self, address: str) -> bool:
        return address in (self.from_address, self.to_address)

    def peer_of(self, address: str) -> str:
        return self.to_address if address == self.from_address else self.from_address

    def has_decomposed(self, address: str) -> bool:
        if address == self.from_address:
            return self.from_has_decomposed
        return address == self.to_address and self.to_has_decomposed

    @property
    def open_reactivation_request(self) -> AuditLogEntry | None:
        """The reactivation request nobody answered yet: it is the newest audit entry."""
        latest = self.audit_log[-1] if self.audit_log else None
        if latest is not None and latest.reason is AuditLogReason.ReactivationRequested:
            return latest
        return None


@dataclass(frozen=True, slots=True)
class RelationshipExport:
    """A relationship as the operators' database export lists it (no contents)."""

    id: str
    relationship_template_id: str | None
    from_address: str
    to_address: str
    created_at: datetime
    status: RelationshipStatus
    from_has_decomposed: bool
    to_has_decomposed: bool
    template_created_at: datetime | None


@dataclass(frozen=True, slots=True)
class Transition:
    """A relationship after a use case, and the audit entry that records the change."""

    relationship: Relationship
    entry: AuditLogEntry


@dataclass(frozen=True, slots=True)
class Actor:
    address: str
    device_id: str | None
    now: datetime


def _record(
    relationship: Relationship,
    actor: Actor,
    entry_id: str,
    reason: AuditLogReason,
    new_status: RelationshipStatus,
    **changes: Any,
) -> Transition:
    entry = AuditLogEntry(
        id=entry_id,
        created_at=actor.now,
        created_by=actor.address,
        created_by_device=actor.device_id,
        reason=reason,
        old_status=relationship.status,
        new_status=new_status,
    )
    changed = dataclasses.replace(
        relationship, status=new_status, audit_log=(*relationship.audit_log, entry), **changes
    )
    return Transition(changed, entry)


def _ensure_status(relationship: Relationship, *allowed: RelationshipStatus) -> None:
    if relationship.status not in allowed:
        raise relationship_is_not_in_correct_status(allowed)


def accept(relationship: Relationship, actor: Actor, entry_id: str, response: bytes | None) -> Transition:
    """The addressee accepts a pending request."""
    _ensure_status(relationship, RelationshipStatus.Pending)
    if actor.address != relationship.to_address:
        raise cannot_accept_or_reject_relationship_addressed_to_someone_else()
    return _record(
        relationship,
        actor,
        entry_id,
        AuditLogReason.AcceptanceOfCreation,
        RelationshipStatus.Active,
        creation_response_content=response,
    )


def reject(relationship: Relationship, actor: Actor, entry_id: str, response: bytes | None) -> Transition:
    """The addressee turns a pending request down."""
    _ensure_status(relationship, RelationshipStatus.Pending)
    if actor.address != relationship.to_address:
        raise cannot_accept_or_reject_relationship_addressed_to_someone_else()
    return _record(
        relationship,
        actor,
        entry_id,
        AuditLogReason.RejectionOfCreation,
        RelationshipStatus.Rejected,
        creation_response_content=response,
    )


def revoke(relationship: Relationship, actor: Actor, entry_id: str, response: bytes | None) -> Transition:
    """The requester withdraws a pending request."""
    _ensure_status(relationship, RelationshipStatus.Pending)
    if actor.address != relationship.from_address:
        raise cannot_revoke_relationship_not_created_by_yourself()
    return _record(
        relationship,
        actor,
        entry_id,
        AuditLogReason.RevocationOfCreation,
        RelationshipStatus.Revoked,
        creation_response_content=response,
    )


def terminate(relationship: Relationship, actor: Actor, entry_id: str) -> Transition:
    """Either side ends an active relationship."""
    _ensure_status(relationship, RelationshipStatus.Active)
    return _record(relationship, actor, entry_id, AuditLogReason.Termination, RelationshipStatus.Terminated)


def request_reactivation(relationship: Relationship, actor: Actor, entry_id: str) -> Transition:
    """Either side asks to reactivate a terminated relationship; the status stays Terminated."""
    _ensure_status(relationship, RelationshipStatus.Terminated)
    if relationship.open_reactivation_request is not None:
        raise cannot_request_reactivation_when_there_is_an_open_reactivation_request()
    return _record(
        relationship,
        actor,
        entry_id,
        AuditLogReason.ReactivationRequested,
        RelationshipStatus.Terminated,
    )


def accept_reactivation(relationship: Relationship, actor: Actor, entry_id: str) -> Transition:
    """The peer of the requester accepts the reactivation."""
    _ensure_status(relationship, RelationshipStatus.Terminated)
    request = relationship.open_reactivation_request
    if request is None or request.created_by == actor.address:
        raise no_acceptable_relationship_reactivation_request_exists()
    return _record(
        relationship, actor, entry_id, AuditLogReason.AcceptanceOfReactivation, RelationshipStatus.Active
    )


def reject_reactivation(relationship: Relationship, actor: Actor, entry_id: str) -> Transition:
    """The peer of the requester refuses the reactivation."""
    _ensure_status(relationship, RelationshipStatus.Terminated)
    request = relationship.open_reactivation_request
    if request is None or request.created_by == actor.address:
        raise no_rejectable_reactivation_request_exists()
    return _record(
        relationship,
        actor,
        entry_id,
        AuditLogReason.RejectionOfReactivation,
        RelationshipStatus.Terminated,
    )


def revoke_reactivation(relationship: Relationship, actor: Actor, entry_id: str) -> Transition:
    """The requester withdraws its reactivation request."""
    _ensure_status(relationship, RelationshipStatus.Terminated)
    request = relationship.open_reactivation_request
    if request is None or request.created_by != actor.address:
        raise no_revocable_reactivation_request_exists()
    return _record(
        relationship,
        actor,
        entry_id,
        AuditLogReason.RevocationOfReactivation,
        RelationshipStatus.Terminated,
    )


def decompose(relationship: Relationship, actor: Actor, entry_id: str) -> Transition:
    """One side forgets the relationship; the second decomposition makes it ready for deletion."""
    if relationship.has_decomposed(actor.address):
        raise relationship_already_decomposed()
    _ensure_status(relationship, *DECOMPOSABLE_STATUSES)
    peer_has_decomposed = relationship.has_decomposed(relationship.peer_of(actor.address))
    new_status = (
        RelationshipStatus.ReadyForDeletion if peer_has_decomposed else RelationshipStatus.DeletionProposed
    )
    flag = "from_has_decomposed" if actor.address == relationship.from_address else "to_has_decomposed"
    return _record(relationship, actor, entry_id, AuditLogReason.Decomposition, new_status, **{flag: True})


def decompose_due_to_identity_deletion(relationship: Relationship, actor: Actor, entry_id: str) -> Transition:
    """The deleted identity's side forgets the relationship, whatever its status."""
    peer_has_decomposed = relationship.has_decomposed(relationship.peer_of(actor.address))
    new_status = (
        RelationshipStatus.ReadyForDeletion if peer_has_decomposed else RelationshipStatus.DeletionProposed
    )
    flag = "from_has_decomposed" if actor.address == relationship.from_address else "to_has_decomposed"
    return _record(
        relationship,
        actor,
        entry_id,
        AuditLogReason.DecompositionDueToIdentityDeletion,
        new_status,
        **{flag: True},
    )


# --- errors ---------------------------------------------------------------------------------


def _relationship(code: str, message: str) -> DomainError:
    return DomainError(f"error.platform.validation.relationship.{code}", message)


def relationship_is_not_in_correct_status(allowed: tuple[RelationshipStatus, ...]) -> DomainError:
    names = " or ".join(status.name for status in allowed)
    return _relationship(
        "relationshipIsNotInCorrectStatus",
        f"The relationship has to be in status '{names}' to perform this action.",
    )


def cannot_create_relationship_with_yourself() -> DomainError:
    return _relationship(
        "cannotCreateRelationshipWithYourself", "You cannot create a relationship to yourself."
    )


def relationship_to_target_already_exists() -> DomainError:
    return _relationship(
        "relationshipToTargetAlreadyExists",
        "A relationship to the target identity already exists. Terminate and decompose it first.",
    )


def peer_is_to_be_deleted() -> DomainError:
    return _relationship(
        "peerIsToBeDeleted", "The peer of this relationship is to be deleted; no relationship can be created."
    )


def cannot_accept_or_reject_relationship_addressed_to_someone_else() -> DomainError:
    return _relationship(
        "cannotAcceptOrRejectRelationshipAddressedToSomeoneElse",
        "Only the identity the relationship is addressed to can accept or reject it.",
    )


def cannot_revoke_relationship_not_created_by_yourself() -> DomainError:
    return _relationship(
        "cannotRevokeRelationshipNotCreatedByYourself",
        "Only the identity that created the relationship can revoke it.",
    )


def cannot_request_reactivation_when_there_is_an_open_reactivation_request() -> DomainError:
    return _relationship(
        "cannotRequestReactivationWhenThereIsAnOpenReactivationRequest",
        "There is already an open reactivation request for this relationship.",
    )


def no_acceptable_relationship_reactivation_request_exists() -> DomainError:
    return _relationship(
        "noAcceptableRelationshipReactivationRequestExists",
        "There is no reactivation request of the peer that could be accepted.",
    )


def no_rejectable_reactivation_request_exists() -> DomainError:
    return _relationship(
        "noRejectableReactivationRequestExists",
        "There is no reactivation request of the peer that could be rejected.",
    )


def no_revocable_reactivation_request_exists() -> DomainError:
    return _relationship(
        "noRevocableReactivationRequestExists",
        "There is no reactivation request of yours that could be revoked.",
    )


def relationship_already_decomposed() -> DomainError:
    return _relationship("relationshipAlreadyDecomposed", "You have already decomposed this relationship.")


def invalid_relationship_template_query_item(position: int) -> DomainError:
    return _relationship(
        "invalidRelationshipTemplateQueryItem",
        f"'templates[{position}].id' must be the id of a relationship template.",
    )


def max_number_of_allocations_exhausted() -> DomainError:
    return DomainError(
        "error.platform.validation.relationshipTemplate.maxNumberOfAllocationsExhausted",
        "The maximum number of allocations of this relationship template is exhausted.",
    )
