"""How messages react to other modules' events."""

from __future__ import annotations

from backbone.modules.identity_deletion.events import IdentityDeleted
from backbone.modules.messages.service import MessageService
from backbone.modules.relationships.events import RelationshipStatusChanged
from backbone.platform.events import Handler, on

MODULE = "Messages"
_DECOMPOSED = frozenset({"DeletionProposed", "ReadyForDeletion"})


def message_handlers(messages: MessageService) -> list[Handler]:
    """Hide a relationship's messages from each side that decomposes it."""

    def relationship_status_changed(event: RelationshipStatusChanged) -> None:
        if event.new_status in _DECOMPOSED:
            messages.decompose(event.relationship_id, event.initiator)

    def identity_deleted(event: IdentityDeleted) -> None:
        messages.remove_participant(event.identity_address)

    return [
        on(MODULE, RelationshipStatusChanged, relationship_status_changed),
        on(MODULE, IdentityDeleted, identity_deleted),
    ]
