"""What the synchronization module publishes."""

from __future__ import annotations

from dataclasses import dataclass

from backbone.platform.events import DomainEvent


@dataclass(frozen=True)
class ExternalEventCreated(DomainEvent):
    event_id: str
    owner: str
    is_delivery_blocked: bool


@dataclass(frozen=True)
class DatawalletModified(DomainEvent):
    identity: str
    modified_by_device: str
