"""What the files module publishes."""

from __future__ import annotations

from dataclasses import dataclass

from backbone.platform.events import DomainEvent


@dataclass(frozen=True)
class FileUploaded(DomainEvent):
    file_id: str
    owner: str
    cipher_size: int


@dataclass(frozen=True)
class FileOwnershipClaimed(DomainEvent):
    file_id: str
    old_owner_address: str
    new_owner_address: str


@dataclass(frozen=True)
class FileOwnershipLocked(DomainEvent):
    file_id: str
    owner_address: str
