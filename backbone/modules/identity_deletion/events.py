"""What the identity-deletion module publishes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from backbone.platform.events import DomainEvent


@dataclass(frozen=True)
class IdentityToBeDeleted(DomainEvent):
    identity_address: str
    grace_period_ends_at: datetime


@dataclass(frozen=True)
class IdentityDeletionProcessStarted(DomainEvent):
    """Someone other than the identity (an operator) started its deletion: the identity learns it
    from an external event. Its own start raises none: its device already knows."""

    identity_address: str
    deletion_process_id: str


@dataclass(frozen=True)
class IdentityDeletionCancelled(DomainEvent):
    identity_address: str


@dataclass(frozen=True)
class IdentityDeleted(DomainEvent):
    identity_address: str
