"""Reactions of the quotas module to other modules' events: recalculate the metric statuses of
the identities whose usage or limits changed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from backbone.modules.devices.events import IdentityCreated, TierOfIdentityChanged
from backbone.modules.files.events import FileUploaded
from backbone.modules.identity_deletion.events import IdentityDeleted
from backbone.modules.messages.events import MessageCreated
from backbone.modules.quotas.events import TierQuotaDefinitionCreated, TierQuotaDefinitionDeleted
from backbone.modules.quotas.model import MetricKey
from backbone.modules.quotas.service import QuotaService
from backbone.modules.relationships.events import RelationshipStatusChanged, RelationshipTemplateCreated
from backbone.modules.tiers.events import TierDeleted
from backbone.modules.tokens.events import TokenCreated
from backbone.platform.events import DomainEvent, Handler, on

MODULE = "Quotas"
UsageEvent = TypeVar("UsageEvent", bound=DomainEvent)


def quota_handlers(quotas: QuotaService) -> list[Handler]:
    """Recalculate after usage changes, after limits change, and forget what is deleted."""

    def usage_changed(
        event_type: type[UsageEvent],
        identities: Callable[[UsageEvent], Iterable[str | None]],
        *metrics: MetricKey,
    ) -> Handler:
        """Recount `metrics` of the identities the event names."""

        def handle(event: UsageEvent) -> None:
            for address in identities(event):
                if address:  # an anonymous token has no creator
                    quotas.usage_changed(address, list(metrics))

        return on(MODULE, event_type, handle)

    def identity_created(event: IdentityCreated) -> None:
        quotas.usage_changed(event.address)

    def tier_of_identity_changed(event: TierOfIdentityChanged) -> None:
        quotas.recalculate(event.identity_address)

    def tier_quota_definition_created(event: TierQuotaDefinitionCreated) -> None:
        quotas.recalculate_tier(event.tier_id)

    def tier_quota_definition_deleted(event: TierQuotaDefinitionDeleted) -> None:
        quotas.recalculate_tier(event.tier_id)

    def tier_deleted(event: TierDeleted) -> None:
        quotas.forget_tier(event.id)

    def identity_deleted(event: IdentityDeleted) -> None:
        quotas.forget_identity(event.identity_address)

    return [
        usage_changed(MessageCreated, lambda e: [e.created_by], MetricKey.NumberOfSentMessages),
        usage_changed(
            FileUploaded, lambda e: [e.owner], MetricKey.NumberOfFiles, MetricKey.UsedFileStorageSpace
        ),
        usage_changed(
            RelationshipTemplateCreated, lambda e: [e.created_by], MetricKey.NumberOfRelationshipTemplates
        ),
        usage_changed(TokenCreated, lambda e: [e.created_by], MetricKey.NumberOfTokens),
        usage_changed(
            RelationshipStatusChanged, lambda e: [e.initiator, e.peer], MetricKey.NumberOfRelationships
        ),
        on(MODULE, IdentityCreated, identity_created),
        on(MODULE, TierOfIdentityChanged, tier_of_identity_changed),
        on(MODULE, TierQuotaDefinitionCreated, tier_quota_definition_created),
        on(MODULE, TierQuotaDefinitionDeleted, tier_quota_definition_deleted),
        on(MODULE, TierDeleted, tier_deleted),
        on(MODULE, IdentityDeleted, identity_deleted),
    ]
