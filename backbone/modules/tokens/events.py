"""What the tokens module publishes."""

from __future__ import annotations

from dataclasses import dataclass

from backbone.platform.events import DomainEvent


@dataclass(frozen=True)
class TokenCreated(DomainEvent):
    token_id: str
    created_by: str | None


@dataclass(frozen=True)
class TokenLocked(DomainEvent):
    token_id: str
    created_by: str | None
