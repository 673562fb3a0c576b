"""What the quotas module publishes."""

from __future__ import annotations

from dataclasses import dataclass

from backbone.platform.events import DomainEvent


@dataclass(frozen=True)
class TierQuotaDefinitionCreated(DomainEvent):
    tier_id: str
    tier_quota_definition_id: str


@dataclass(frozen=True)
class TierQuotaDefinitionDeleted(DomainEvent):
    tier_id: str
    tier_quota_definition_id: str
