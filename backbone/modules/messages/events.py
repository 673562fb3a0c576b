"""What the messages module publishes."""

from __future__ import annotations

from dataclasses import dataclass

from backbone.platform.events import DomainEvent


@dataclass(frozen=True)
class MessageRecipient:
    address: str
    relationship_id: str


@dataclass(frozen=True)
class MessageCreated(DomainEvent):
    id: str
    created_by: str
    recipients: tuple[MessageRecipient, ...]
