"""Reactions of the quotas module to other modules' events: recalculate the metric statuses of
the identities whose usage or limits changed."""

from __future__ import annotations

from collections.abc import Callable

from backbone.modules.quotas.model import MetricKey
from backbone.modules.quotas.service import QuotaService
from backbone.platform.events import EventBus, Handler, PublishedEvent

# Which event changes which metrics of whom (payload fields naming the identities).
USAGE_EVENTS: dict[str, tuple[tuple[str, ...], tuple[MetricKey, ...]]] = {
    "MessageCreated": (("CreatedBy",), (MetricKey.NumberOfSentMessages,)),
    "FileUploaded": (("Owner",), (MetricKey.NumberOfFiles, MetricKey.UsedFileStorageSpace)),
    "RelationshipTemplateCreated": (("CreatedBy",), (MetricKey.NumberOfRelationshipTemplates,)),
    "TokenCreated": (("CreatedBy",), (MetricKey.NumberOfTokens,)),
    "RelationshipStatusChanged": (("Initiator", "Peer"), (MetricKey.NumberOfRelationships,)),
}


def subscribe_quota_handlers(bus: EventBus, quotas: QuotaService) -> None:
    """Recalculate after usage changes, after limits change, and forget what is deleted."""

    def usage_changed(
        fields: tuple[str, ...], metrics: tuple[MetricKey, ...]
    ) -> Callable[[PublishedEvent], None]:
        def handle(event: PublishedEvent) -> None:
            for field in fields:
                address = event.payload.get(field)
                if address:  # an anonymous token has no creator
                    quotas.usage_changed(address, list(metrics))

        return handle

    for event_name, (fields, metrics) in USAGE_EVENTS.items():
        bus.subscribe(Handler("Quotas", event_name, usage_changed(fields, metrics)))

    def identity_created(event: PublishedEvent) -> None:
        quotas.usage_changed(event.payload["Address"])

    def tier_of_identity_changed(event: PublishedEvent) -> None:
        quotas.recalculate(event.payload["IdentityAddress"])

    def tier_quotas_changed(event: PublishedEvent) -> None:
        quotas.recalculate_tier(event.payload["TierId"])

    def tier_deleted(event: PublishedEvent) -> None:
        quotas.forget_tier(event.payload["Id"])

    def identity_deleted(event: PublishedEvent) -> None:
        quotas.forget_identity(event.payload["IdentityAddress"])

    bus.subscribe(Handler("Quotas", "IdentityCreated", identity_created))
    bus.subscribe(Handler("Quotas", "TierOfIdentityChanged", tier_of_identity_changed))
    bus.subscribe(Handler("Quotas", "TierQuotaDefinitionCreated", tier_quotas_changed))
    bus.subscribe(Handler("Quotas", "TierQuotaDefinitionDeleted", tier_quotas_changed))
    bus.subscribe(Handler("Quotas", "TierDeleted", tier_deleted))
    bus.subscribe(Handler("Quotas", "IdentityDeleted", identity_deleted))
