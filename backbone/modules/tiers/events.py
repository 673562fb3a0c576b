"""What the tiers module publishes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from backbone.platform.events import DomainEvent


@dataclass(frozen=True)
class TierCreated(DomainEvent):
    id: str
    tier_name: str

    def payload(self) -> dict[str, Any]:
        # `name` is taken by the event's own name; the payload keeps the original's `Name`.
        return {"Id": self.id, "Name": self.tier_name}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Self:
        return cls(id=payload["Id"], tier_name=payload["Name"])


@dataclass(frozen=True)
class TierDeleted(DomainEvent):
    id: str
