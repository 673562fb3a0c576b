"""How relationships react to other modules' events."""

from __future__ import annotations

from backbone.modules.feature_flags.events import FeatureFlagsOfIdentityChanged
from backbone.modules.identity_deletion.events import (
    IdentityDeleted,
    IdentityDeletionCancelled,
    IdentityToBeDeleted,
)
from backbone.modules.relationships.service import RelationshipService
from backbone.platform.events import Handler, on

MODULE = "Relationships"


def relationship_handlers(relationships: RelationshipService, anonymous_address: str) -> list[Handler]:
    """Fan an identity's deletion (and its cancellation) out to its peers, one event per relationship;
    a deleted identity leaves its relationships under the anonymous address; changed feature flags
    are told to the peers."""

    def identity_to_be_deleted(event: IdentityToBeDeleted) -> None:
        relationships.notify_peers_of_deletion(event.identity_address, event.grace_period_ends_at)

    def identity_deleted(event: IdentityDeleted) -> None:
        relationships.remove_identity(event.identity_address, anonymous_address)

    def identity_deletion_cancelled(event: IdentityDeletionCancelled) -> None:
        relationships.notify_peers_of_cancelled_deletion(event.identity_address)

    def feature_flags_changed(event: FeatureFlagsOfIdentityChanged) -> None:
        relationships.notify_peers_of_changed_feature_flags(event.identity_address)

    return [
        on(MODULE, IdentityToBeDeleted, identity_to_be_deleted),
        on(MODULE, IdentityDeleted, identity_deleted),
        on(MODULE, IdentityDeletionCancelled, identity_deletion_cancelled),
        on(MODULE, FeatureFlagsOfIdentityChanged, feature_flags_changed),
    ]
