"""What the feature-flags module publishes."""

from __future__ import annotations

from dataclasses import dataclass

from backbone.platform.events import DomainEvent


@dataclass(frozen=True)
class FeatureFlagsOfIdentityChanged(DomainEvent):
    identity_address: str
