"""What the devices module publishes."""

from __future__ import annotations

from dataclasses import dataclass

from backbone.platform.events import DomainEvent


@dataclass(frozen=True)
class IdentityCreated(DomainEvent):
    address: str
    tier: str


@dataclass(frozen=True)
class BackupDeviceUsed(DomainEvent):
    identity_address: str


@dataclass(frozen=True)
class TierOfIdentityChanged(DomainEvent):
    old_tier_id: str
    new_tier_id: str
    identity_address: str
