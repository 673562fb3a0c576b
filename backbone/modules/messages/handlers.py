"""How messages react to other modules' events."""

from __future__ import annotations

from backbone.modules.messages.service import MessageService
from backbone.platform.events import EventBus, Handler, PublishedEvent

_DECOMPOSED = frozenset({"DeletionProposed", "ReadyForDeletion"})


def subscribe_message_handlers(bus: EventBus, messages: MessageService) -> None:
    """Hide a relationship's messages from each side that decomposes it."""

    def relationship_status_changed(event: PublishedEvent) -> None:
        if event.payload["NewStatus"] in _DECOMPOSED:
            messages.decompose(event.payload["RelationshipId"], event.payload["Initiator"])

    def identity_deleted(event: PublishedEvent) -> None:
        messages.remove_participant(event.payload["IdentityAddress"])

    bus.subscribe(Handler("Messages", "RelationshipStatusChanged", relationship_status_changed))
    bus.subscribe(Handler("Messages", "IdentityDeleted", identity_deleted))
