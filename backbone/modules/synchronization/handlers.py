"""External events: how synchronization turns other modules' events into what identities sync."""

from __future__ import annotations

from collections.abc import Callable

from backbone.modules.files.events import FileOwnershipClaimed, FileOwnershipLocked
from backbone.modules.identity_deletion.events import IdentityDeletionProcessStarted
from backbone.modules.messages.events import MessageCreated
from backbone.modules.relationships.events import (
    PeerDeleted,
    PeerDeletionCancelled,
    PeerFeatureFlagsChanged,
    PeerToBeDeleted,
    RelationshipReactivationCompleted,
    RelationshipReactivationRequested,
    RelationshipStatusChanged,
    RelationshipTemplateAllocationsExhausted,
)
from backbone.modules.synchronization.model import ExternalEventType
from backbone.modules.synchronization.service import SynchronizationService
from backbone.modules.tokens.events import TokenLocked
from backbone.platform.clock import Clock
from backbone.platform.encoding import format_datetime
from backbone.platform.events import Handler, on

MODULE = "Synchronization"
# Messages wait while the relationship is not (yet, or no longer) active.
_BLOCKING_RELATIONSHIP_STATUSES = frozenset({"Pending", "Terminated"})
_ENDED_BEFORE_ACTIVE = frozenset({"Rejected", "Revoked"})
_DECOMPOSED = frozenset({"DeletionProposed", "ReadyForDeletion"})

# The status name of a relationship, or None if it does not exist.
RelationshipStatusOf = Callable[[str], str | None]
# The two participants of a relationship, or None if it does not exist.
RelationshipParticipants = Callable[[str], tuple[str, str] | None]


class ExternalEventHandlers:
    """One method per consumed event; each runs in the handler's own transaction."""

    def __init__(
        self,
        sync: SynchronizationService,
        clock: Clock,
        relationship_status: RelationshipStatusOf,
        relationship_participants: RelationshipParticipants,
    ) -> None:
        self._sync = sync
        self._clock = clock
        self._relationship_status = relationship_status
        self._relationship_participants = relationship_participants

    def message_created(self, event: MessageCreated) -> None:
        """Tell each recipient about the message; hold it back while the relationship is not active."""
        recipients = sorted(event.recipients, key=lambda recipient: recipient.address)
        # Lock first, then read the status: a concurrent acceptance either is already visible
        # here, or its unblocking waits for these locks and then sees the new events.
        self._sync.lock_owners([recipient.address for recipient in recipients])
        for recipient in recipients:
            status = self._relationship_status(recipient.relationship_id)
            self._sync.create_external_event(
                recipient.address,
                ExternalEventType.MessageReceived,
                {"id": event.id},
                context=recipient.relationship_id,
                blocked=status in _BLOCKING_RELATIONSHIP_STATUSES,
            )

    def relationship_status_changed(self, event: RelationshipStatusChanged) -> None:
        relationship_id, status = event.relationship_id, event.new_status
        participants = [event.initiator, event.peer]
        self._sync.lock_owners(participants)
        if status == "Active":
            self._sync.unblock_external_events(
                participants, ExternalEventType.MessageReceived, relationship_id
            )
        elif status in _ENDED_BEFORE_ACTIVE:
            self._sync.delete_blocked_external_events(
                participants, ExternalEventType.MessageReceived, relationship_id
            )
        elif status in _DECOMPOSED:
            self._sync.delete_unsynced_external_events(event.initiator, relationship_id)
        if status != "ReadyForDeletion":
            self._sync.create_external_event(
                event.peer,
                ExternalEventType.RelationshipStatusChanged,
                {"relationshipId": relationship_id},
                context=relationship_id,
            )

    def relationship_reactivation_requested(self, event: RelationshipReactivationRequested) -> None:
        self._sync.create_external_event(
            event.peer,
            ExternalEventType.RelationshipReactivationRequested,
            {"relationshipId": event.relationship_id},
            context=event.relationship_id,
        )

    def relationship_reactivation_completed(self, event: RelationshipReactivationCompleted) -> None:
        """Tell the peer; an accepted reactivation (Active again) releases the messages that
        waited while it was terminated, as an acceptance of the request does."""
        relationship_id = event.relationship_id
        if event.new_relationship_status == "Active":
            participants = self._relationship_participants(relationship_id)
            if participants is not None:
                self._sync.unblock_external_events(
                    participants, ExternalEventType.MessageReceived, relationship_id
                )
        self._sync.create_external_event(
            event.peer,
            ExternalEventType.RelationshipReactivationCompleted,
            {"relationshipId": relationship_id},
            context=relationship_id,
        )

    def relationship_template_allocations_exhausted(
        self, event: RelationshipTemplateAllocationsExhausted
    ) -> None:
        self._sync.create_external_event(
            event.created_by,
            ExternalEventType.RelationshipTemplateAllocationsExhausted,
            {"relationshipTemplateId": event.relationship_template_id},
        )

    def token_locked(self, event: TokenLocked) -> None:
        if event.created_by is not None:
            self._sync.create_external_event(
                event.created_by, ExternalEventType.TokenLocked, {"tokenId": event.token_id}
            )

    def file_ownership_claimed(self, event: FileOwnershipClaimed) -> None:
        self._sync.create_external_event(
            event.old_owner_address,
            ExternalEventType.FileOwnershipClaimed,
            {"fileId": event.file_id, "newOwnerAddress": event.new_owner_address},
        )

    def file_ownership_locked(self, event: FileOwnershipLocked) -> None:
        self._sync.create_external_event(
            event.owner_address, ExternalEventType.FileOwnershipLocked, {"fileId": event.file_id}
        )

    def peer_to_be_deleted(self, event: PeerToBeDeleted) -> None:
        self._sync.create_external_event(
            event.peer_of_identity_to_be_deleted,
            ExternalEventType.PeerToBeDeleted,
            {
                "relationshipId": event.relationship_id,
                "deletionDate": format_datetime(event.grace_period_ends_at),
            },
            context=event.relationship_id,
        )

    def peer_deleted(self, event: PeerDeleted) -> None:
        # The original dates it when the event is handled (the peer's data is gone by then).
        self._sync.create_external_event(
            event.peer_of_deleted_identity,
            ExternalEventType.PeerDeleted,
            {"relationshipId": event.relationship_id, "deletionDate": format_datetime(self._clock.now())},
            context=event.relationship_id,
        )

    def peer_deletion_cancelled(self, event: PeerDeletionCancelled) -> None:
        self._sync.create_external_event(
            event.peer_of_identity_with_deletion_cancelled,
            ExternalEventType.PeerDeletionCancelled,
            {"relationshipId": event.relationship_id},
            context=event.relationship_id,
        )

    def identity_deletion_process_started(self, event: IdentityDeletionProcessStarted) -> None:
        self._sync.create_external_event(
            event.identity_address,
            ExternalEventType.IdentityDeletionProcessStarted,
            {"deletionProcessId": event.deletion_process_id},
        )

    def peer_feature_flags_changed(self, event: PeerFeatureFlagsChanged) -> None:
        self._sync.create_external_event(
            event.notified_identity_address,
            ExternalEventType.PeerFeatureFlagsChanged,
            {"peerAddress": event.peer_address},
        )


def synchronization_handlers(
    sync: SynchronizationService,
    clock: Clock,
    relationship_status: RelationshipStatusOf,
    relationship_participants: RelationshipParticipants,
) -> list[Handler]:
    """The external-event handlers (queues `Synchronization.<EventName>`)."""
    handlers = ExternalEventHandlers(sync, clock, relationship_status, relationship_participants)
    return [
        on(MODULE, MessageCreated, handlers.message_created),
        on(MODULE, RelationshipStatusChanged, handlers.relationship_status_changed),
        on(MODULE, RelationshipReactivationRequested, handlers.relationship_reactivation_requested),
        on(MODULE, RelationshipReactivationCompleted, handlers.relationship_reactivation_completed),
        on(
            MODULE,
            RelationshipTemplateAllocationsExhausted,
            handlers.relationship_template_allocations_exhausted,
        ),
        on(MODULE, TokenLocked, handlers.token_locked),
        on(MODULE, FileOwnershipClaimed, handlers.file_ownership_claimed),
        on(MODULE, FileOwnershipLocked, handlers.file_ownership_locked),
        on(MODULE, IdentityDeletionProcessStarted, handlers.identity_deletion_process_started),
        on(MODULE, PeerToBeDeleted, handlers.peer_to_be_deleted),
        on(MODULE, PeerDeletionCancelled, handlers.peer_deletion_cancelled),
        on(MODULE, PeerDeleted, handlers.peer_deleted),
        on(MODULE, PeerFeatureFlagsChanged, handlers.peer_feature_flags_changed),
    ]
