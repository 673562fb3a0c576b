"""Challenges: short-lived nonces that identities sign to prove they hold a key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

LIFETIME = timedelta(minutes=10)
# The original accepts a challenge for an hour after its expiry (Challenge.IsExpired).
GRACE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Challenge:
    id: str
    expires_at: datetime
    created_by: str | None
    created_by_device: str | None

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at <= now - GRACE
