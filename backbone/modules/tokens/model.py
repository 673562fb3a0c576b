"""Tokens: small, optionally password-protected payloads that identities share out of band."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from backbone.platform.errors import DomainError

MAX_CONTENT_BYTES = 10 * 1024 * 1024
MAX_PASSWORD_BYTES = 200
MAX_FAILED_PASSWORD_ATTEMPTS = 100
# Anonymous callers may only create empty tokens that live this long at most (device onboarding).
MAX_ANONYMOUS_LIFETIME = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    created_by: str | None
    created_by_device: str | None
    for_identity: str | None
    password: bytes | None
    created_at: datetime
    expires_at: datetime
    content: bytes | None
    access_failed_count: int

    @property
    def is_password_protected(self) -> bool:
        return self.password is not None

    @property
    def is_locked(self) -> bool:
        return self.access_failed_count >= MAX_FAILED_PASSWORD_ATTEMPTS

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at <= now


@dataclass(frozen=True, slots=True)
class NewToken:
    content: bytes | None
    expires_at: datetime
    for_identity: str | None
    password: bytes | None


def too_many_failed_password_attempts() -> DomainError:
    return DomainError(
        "error.platform.token.tooManyFailedPasswordAttempts",
        "The token is locked after too many failed password attempts.",
    )


def content_already_exists() -> DomainError:
    return DomainError(
        "error.platform.token.contentUpdateNotPossibleBecauseContentAlreadyExists",
        "The content of this token cannot be updated because it already has content.",
    )


def invalid_property(message: str) -> DomainError:
    return DomainError("error.platform.validation.invalidPropertyValue", message)
