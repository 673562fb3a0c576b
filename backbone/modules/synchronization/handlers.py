"""External events: how synchronization turns other modules' events into what identities sync."""

from __future__ import annotations

from collections.abc import Callable

from backbone.modules.synchronization.model import ExternalEventType
from backbone.modules.synchronization.service import SynchronizationService
from backbone.platform.events import EventBus, Handler, PublishedEvent

MODULE = "Synchronization"
# Messages wait while the relationship is not (yet, or no longer) active.
_BLOCKING_RELATIONSHIP_STATUSES = frozenset({"Pending", "Terminated"})
_ENDED_BEFORE_ACTIVE = frozenset({"Rejected", "Revoked"})
_DECOMPOSED = frozenset({"DeletionProposed", "ReadyForDeletion"})

# The status name of a relationship, or None if it does not exist.
RelationshipStatusOf = Callable[[str], str | None]


class ExternalEventHandlers:
    """One method per consumed event; each runs in the handler's own transaction."""

    def __init__(self, sync: SynchronizationService, relationship_status: RelationshipStatusOf) -> None:
        self._sync = sync
        self._relationship_status = relationship_status

    def message_created(self, event: PublishedEvent) -> None:
        """Tell each recipient about the message; hold it back while the relationship is not active."""
        recipients = sorted(event.payload["Recipients"], key=lambda recipient: recipient["Address"])
        # Lock first, then read the status: a concurrent acceptance either is already visible
        # here, or its unblocking waits for these locks and then sees the new events.
        self._sync.lock_owners([recipient["Address"] for recipient in recipients])
        for recipient in recipients:
            relationship_id = recipient["RelationshipId"]
            status = self._relationship_status(relationship_id)
            self._sync.create_external_event(
                recipient["Address"],
                ExternalEventType.MessageReceived,
                {"id": event.payload["Id"]},
                context=relationship_id,
                blocked=status in _BLOCKING_RELATIONSHIP_STATUSES,
            )

    def relationship_status_changed(self, event: PublishedEvent) -> None:
        payload = event.payload
        relationship_id, status = payload["RelationshipId"], payload["NewStatus"]
        initiator, peer = payload["Initiator"], payload["Peer"]
        participants = [initiator, peer]
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
            self._sync.delete_unsynced_external_events(initiator, relationship_id)
        if status != "ReadyForDeletion":
            self._sync.create_external_event(
                peer,
                ExternalEventType.RelationshipStatusChanged,
                {"relationshipId": relationship_id},
                context=relationship_id,
            )

    def relationship_reactivation_requested(self, event: PublishedEvent) -> None:
        relationship_id = event.payload["RelationshipId"]
        self._sync.create_external_event(
            event.payload["Peer"],
            ExternalEventType.RelationshipReactivationRequested,
            {"relationshipId": relationship_id},
            context=relationship_id,
        )

    def relationship_reactivation_completed(self, event: PublishedEvent) -> None:
        relationship_id = event.payload["RelationshipId"]
        self._sync.create_external_event(
            event.payload["Peer"],
            ExternalEventType.RelationshipReactivationCompleted,
            {"relationshipId": relationship_id},
            context=relationship_id,
        )

    def relationship_template_allocations_exhausted(self, event: PublishedEvent) -> None:
        self._sync.create_external_event(
            event.payload["CreatedBy"],
            ExternalEventType.RelationshipTemplateAllocationsExhausted,
            {"relationshipTemplateId": event.payload["RelationshipTemplateId"]},
        )

    def token_locked(self, event: PublishedEvent) -> None:
        creator = event.payload["CreatedBy"]
        if creator is not None:
            self._sync.create_external_event(
                creator, ExternalEventType.TokenLocked, {"tokenId": event.payload["TokenId"]}
            )

    def file_ownership_claimed(self, event: PublishedEvent) -> None:
        self._sync.create_external_event(
            event.payload["OldOwnerAddress"],
            ExternalEventType.FileOwnershipClaimed,
            {"fileId": event.payload["FileId"], "newOwnerAddress": event.payload["NewOwnerAddress"]},
        )

    def file_ownership_locked(self, event: PublishedEvent) -> None:
        self._sync.create_external_event(
            event.payload["OwnerAddress"],
            ExternalEventType.FileOwnershipLocked,
            {"fileId": event.payload["FileId"]},
        )

    def peer_to_be_deleted(self, event: PublishedEvent) -> None:
        relationship_id = event.payload["RelationshipId"]
        self._sync.create_external_event(
            event.payload["PeerOfIdentityToBeDeleted"],
            ExternalEventType.PeerToBeDeleted,
            {"relationshipId": relationship_id, "deletionDate": event.payload["GracePeriodEndsAt"]},
            context=relationship_id,
        )

    def peer_deleted(self, event: PublishedEvent) -> None:
        relationship_id = event.payload["RelationshipId"]
        self._sync.create_external_event(
            event.payload["PeerOfDeletedIdentity"],
            ExternalEventType.PeerDeleted,
            {"relationshipId": relationship_id},
            context=relationship_id,
        )

    def peer_deletion_cancelled(self, event: PublishedEvent) -> None:
        relationship_id = event.payload["RelationshipId"]
        self._sync.create_external_event(
            event.payload["PeerOfIdentityWithDeletionCancelled"],
            ExternalEventType.PeerDeletionCancelled,
            {"relationshipId": relationship_id},
            context=relationship_id,
        )


def subscribe_synchronization_handlers(
    bus: EventBus, sync: SynchronizationService, relationship_status: RelationshipStatusOf
) -> None:
    """Subscribe the external-event handlers (queues `Synchronization.<EventName>`)."""
    handlers = ExternalEventHandlers(sync, relationship_status)
    reactions = {
        "MessageCreated": handlers.message_created,
        "RelationshipStatusChanged": handlers.relationship_status_changed,
        "RelationshipReactivationRequested": handlers.relationship_reactivation_requested,
        "RelationshipReactivationCompleted": handlers.relationship_reactivation_completed,
        "RelationshipTemplateAllocationsExhausted": handlers.relationship_template_allocations_exhausted,
        "TokenLocked": handlers.token_locked,
        "FileOwnershipClaimed": handlers.file_ownership_claimed,
        "FileOwnershipLocked": handlers.file_ownership_locked,
        "PeerToBeDeleted": handlers.peer_to_be_deleted,
        "PeerDeletionCancelled": handlers.peer_deletion_cancelled,
        "PeerDeleted": handlers.peer_deleted,
    }
    for event_name, handle in reactions.items():
        bus.subscribe(Handler(MODULE, event_name, handle))
