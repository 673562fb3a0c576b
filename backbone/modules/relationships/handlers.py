"""How relationships react to other modules' events."""

from __future__ import annotations

from backbone.modules.relationships.service import RelationshipService
from backbone.platform.encoding import parse_datetime
from backbone.platform.events import EventBus, Handler, PublishedEvent

MODULE = "Relationships"


def subscribe_relationship_handlers(
    bus: EventBus, relationships: RelationshipService, anonymous_address: str
) -> None:
    """Fan an identity's deletion (and its cancellation) out to its peers, one event per relationship;
    a deleted identity leaves its relationships under the anonymous address."""

    def identity_to_be_deleted(event: PublishedEvent) -> None:
        relationships.notify_peers_of_deletion(
            event.payload["IdentityAddress"], parse_datetime(event.payload["GracePeriodEndsAt"])
        )

    def identity_deletion_cancelled(event: PublishedEvent) -> None:
        relationships.notify_peers_of_cancelled_deletion(event.payload["IdentityAddress"])

    bus.subscribe(Handler(MODULE, "IdentityToBeDeleted", identity_to_be_deleted))
    bus.subscribe(
        Handler(
            MODULE,
            "IdentityDeleted",
            lambda event: relationships.remove_identity(event.payload["IdentityAddress"], anonymous_address),
        )
    )
    bus.subscribe(Handler(MODULE, "IdentityDeletionCancelled", identity_deletion_cancelled))
