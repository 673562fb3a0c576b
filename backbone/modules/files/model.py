"""Files: encrypted contents in BLOB storage, their metadata, and who owns them."""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import datetime

from backbone.platform.errors import DomainError, InvalidPropertyValue

MIN_CONTENT_BYTES = 1
MAX_CONTENT_BYTES = 10 * 1024 * 1024
MAX_CIPHER_HASH_BYTES = 128
MAX_OWNER_SIGNATURE_BYTES = 512
MAX_ENCRYPTED_PROPERTIES_BYTES = 1024 * 1024
OWNERSHIP_TOKEN_LENGTH = 20
# The alphabet of ownership tokens, not a secret.
OWNERSHIP_TOKEN_ALPHABET = string.ascii_letters + string.digits + "!@#$%^&*()_-+=<>?/{}[]|~"


@dataclass(frozen=True, slots=True)
class File:
    id: str
    created_at: datetime
    created_by: str
    created_by_device: str
    modified_at: datetime
    modified_by: str
    modified_by_device: str
    deleted_at: datetime | None
    deleted_by: str | None
    deleted_by_device: str | None
    owner: str
    owner_signature: bytes
    ownership_token: str
    ownership_is_locked: bool
    cipher_size: int
    cipher_hash: bytes
    expires_at: datetime
    encrypted_properties: bytes

    def is_readable(self, now: datetime) -> bool:
        """Any identity may read a file (knowing its id and key is the access control) until it
        expires or is deleted."""
        return self.deleted_at is None and self.expires_at > now


@dataclass(frozen=True, slots=True)
class FileFields:
    """The metadata an uploader sends along with the content."""

    cipher_hash: bytes
    owner_signature: bytes
    expires_at: datetime
    encrypted_properties: bytes


def content_too_large() -> DomainError:
    return InvalidPropertyValue(
        f"'content' must be between {MIN_CONTENT_BYTES} and {MAX_CONTENT_BYTES} bytes long."
    )


def content_missing() -> DomainError:
    return InvalidPropertyValue("'content' must not be empty.")


def content_given_twice() -> DomainError:
    return InvalidPropertyValue("'content' must be given once.")


def expiry_in_the_past() -> DomainError:
    return InvalidPropertyValue("'expiresAt' must be in the future.")


def cannot_claim_ownership_of_own_file() -> DomainError:
    return DomainError(
        "error.platform.validation.file.cannotClaimOwnershipOfOwnFile",
        "You cannot claim the ownership of a file you already own.",
    )
