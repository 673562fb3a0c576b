"""Challenges: short-lived nonces that identities sign to prove they hold a key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from backbone.platform.errors import DomainError

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


@dataclass(frozen=True, slots=True)
class SignedChallenge:
    """A challenge of ours, signed with the identity key (proof of possession)."""

    challenge: str
    signature: bytes


def invalid_signature() -> DomainError:
    return DomainError(
        "error.platform.validation.device.invalidSignature", "The given signature is not valid."
    )


def challenge_has_expired() -> DomainError:
    return DomainError(
        "error.platform.validation.device.challengeHasExpired",
        "The given challenge has expired. Obtain a new challenge and try again.",
    )
