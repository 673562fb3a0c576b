"""Messages: an encrypted body sent to one or more peers, each with its own encrypted key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from backbone.platform.errors import DomainError

MAX_BODY_BYTES = 10 * 1024 * 1024
MIN_ENCRYPTED_KEY_BYTES = 30
MAX_ENCRYPTED_KEY_BYTES = 300
MAX_ATTACHMENTS = 20
# The youngest relationship to a recipient must be in one of these statuses to send to it.
SENDABLE_STATUSES = frozenset({"Active", "Pending", "Terminated"})


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    relationship_id: str
    encrypted_key: bytes
    received_at: datetime | None
    received_by_device: str | None
    decomposed_by_recipient: bool = False
    decomposed_by_sender: bool = False


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    created_at: datetime
    created_by: str
    created_by_device: str
    body: bytes
    attachments: tuple[str, ...]
    recipients: tuple[Recipient, ...]


@dataclass(frozen=True, slots=True)
class NewRecipient:
    address: str
    encrypted_key: bytes


@dataclass(frozen=True, slots=True)
class NewMessage:
    recipients: tuple[NewRecipient, ...]
    body: bytes
    attachments: tuple[str, ...]


def _message(code: str, message: str) -> DomainError:
    return DomainError(f"error.platform.validation.message.{code}", message)


def no_relationship_to_recipient_exists(address: str) -> DomainError:
    return _message(
        "noRelationshipToRecipientExists",
        f"Cannot send message to {address} because there is no relationship to it.",
    )


def relationship_to_recipient_not_active(address: str) -> DomainError:
    return _message(
        "relationshipToRecipientNotActive",
        f"Cannot send message to {address} because the relationship to it is not active.",
    )


def max_number_of_unreceived_messages_reached(address: str) -> DomainError:
    return _message(
        "maxNumberOfUnreceivedMessagesReached",
        f"The maximum number of unreceived messages to {address} has been reached.",
    )


@dataclass(frozen=True, slots=True)
class MessageExport:
    """A message as the operators' database export lists it: its size, never its body; the
    first recipient (as the original's export does)."""

    id: str
    created_by: str
    created_at: datetime
    cipher_size: int
    recipient: str | None
    relationship_id: str | None
    received_at: datetime | None
