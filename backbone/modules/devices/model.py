"""Identities, their devices and OAuth clients."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from backbone.modules.challenges.model import SignedChallenge
from backbone.modules.tiers.model import Tier
from backbone.platform.errors import DomainError
from backbone.platform.languages import LANGUAGE_CODES
from backbone.platform.odata import FieldType

DEFAULT_COMMUNICATION_LANGUAGE = "en"

_STRONG_PASSWORD = (
    re.compile(r"[a-z]"),
    re.compile(r"[A-Z]"),
    re.compile(r"\d"),
    re.compile(r"[^A-Za-z0-9]"),
)


class IdentityStatus(Enum):
    Active = 0
    ToBeDeleted = 1
    Deleting = 2


@dataclass(frozen=True, slots=True)
class IdentityExport:
    """An identity as the operators' database export lists it (no keys, no secrets)."""

    address: str
    client_id: str | None
    created_at: datetime
    identity_version: int
    tier_name: str
    status: IdentityStatus
    deletion_grace_period_ends_at: datetime | None
    number_of_devices: int


@dataclass(frozen=True, slots=True)
class DeviceExport:
    """A device, with what the export tells of its identity (no username, no password hash)."""

    id: str
    identity_address: str
    created_at: datetime
    last_login_at: datetime | None
    client_id: str | None
    tier_name: str
    identity_status: IdentityStatus
    identity_deletion_grace_period_ends_at: datetime | None


@dataclass(frozen=True, slots=True)
class OAuthClient:
    client_id: str
    display_name: str
    client_secret_hash: str
    default_tier_id: str
    max_identities: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Identity:
    address: str
    client_id: str | None
    public_key: bytes
    created_at: datetime
    identity_version: int
    tier_id: str
    status: IdentityStatus
    deletion_grace_period_ends_at: datetime | None


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    identity_address: str
    username: str
    created_at: datetime
    created_by_device: str
    communication_language: str
    is_backup_device: bool
    last_login_at: datetime | None

    @property
    def is_onboarded(self) -> bool:
        """A device counts as onboarded once it has logged in."""
        return self.last_login_at is not None


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the token endpoint needs to know about a device user."""

    device: Device
    password_hash: str
    access_failed_count: int
    lockout_end: datetime | None
    identity_status: IdentityStatus
    deletion_grace_period_ends_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewIdentity:
    """What a client sends to onboard an identity with its first device."""

    client_id: str
    client_secret: str
    identity_public_key: bytes
    device_password: str
    communication_language: str
    identity_version: int
    signed_challenge: SignedChallenge


@dataclass(frozen=True, slots=True)
class CreatedIdentity:
    identity: Identity
    device: Device


@dataclass(frozen=True, slots=True)
class NewDevice:
    """What an onboarded device sends to add another device to its identity."""

    device_password: str
    communication_language: str
    signed_challenge: SignedChallenge
    is_backup_device: bool


class LoginFailed(Exception):
    """The token endpoint refuses; `error` and `description` follow OAuth 2.0."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def meets_password_policy(password: str, *, development: bool) -> bool:
    """Tell whether a password passes the original's device password policy (any in development)."""
    if development:
        return bool(password)
    return len(password) >= 10 and all(rule.search(password) for rule in _STRONG_PASSWORD)


def check_password_policy(password: str, *, development: bool) -> None:
    """Refuse a new device's password that breaks the policy."""
    if not meets_password_policy(password, development=development):
        raise DomainError(
            "error.platform.validation.invalidPropertyValue",
            "'devicePassword' must have at least 10 characters with an upper-case letter, a lower-case "
            "letter, a digit and a non-alphanumeric character.",
        )


def invalid_public_key() -> DomainError:
    return DomainError(
        "error.platform.validation.device.invalidPublicKeyFormat",
        "The format of the given public key is not supported.",
    )


def address_already_exists() -> DomainError:
    return DomainError(
        "error.platform.validation.device.addressAlreadyExists",
        "The address derived from the given public key already exists. "
        "Try again with a different public key.",
    )


def client_reached_identities_limit() -> DomainError:
    return DomainError(
        "error.platform.validation.device.clientReachedIdentitiesLimit",
        "The client has reached the maximum number of identities it may create.",
    )


def invalid_client() -> DomainError:
    return DomainError(
        "error.platform.unauthorized",
        "You have to authenticate in order to execute this action. Further make sure that the auth token "
        "has not expired.",
    )


def check_communication_language(language: str) -> None:
    if language not in LANGUAGE_CODES:
        raise DomainError(
            "error.platform.validation.invalidDeviceCommunicationLanguage",
            "The given communication language is not a valid two-letter ISO 639-1 code.",
        )


def only_one_backup_device_can_exist() -> DomainError:
    return DomainError(
        "error.platform.validation.device.onlyOneBackupDeviceCanExist",
        "The identity already has a backup device; only one backup device can exist.",
    )


def device_cannot_be_deleted(reason: str) -> DomainError:
    return DomainError("error.platform.validation.device.deviceCannotBeDeleted", reason)


def change_password_failed(reason: str) -> DomainError:
    return DomainError(
        "error.platform.validation.device.changePasswordFailed", f"Changing the password failed: {reason}"
    )


# --- operators: clients, identities -------------------------------------------------

GENERATED_CLIENT_SECRET_LENGTH = 30
MAX_CLIENT_ID_LENGTH = 200
# The fields operators filter and order the identity list by (OData names).
IDENTITY_LIST_FIELDS = {
    "address": FieldType.TEXT,
    "createdWithClient": FieldType.TEXT,
    "tier/id": FieldType.TEXT,
    "createdAt": FieldType.DATETIME,
}


@dataclass(frozen=True, slots=True)
class ClientOverview:
    client: OAuthClient
    default_tier: Tier
    number_of_identities: int


@dataclass(frozen=True, slots=True)
class CreatedClient:
    """A new client with its secret in clear text: shown once, then only its hash is kept."""

    client: OAuthClient
    client_secret: str


@dataclass(frozen=True, slots=True)
class IdentityOverview:
    """One row of the operators' identity list."""

    address: str
    created_at: datetime
    last_login_at: datetime | None
    created_with_client: str | None
    identity_version: int
    tier: Tier
    number_of_devices: int


@dataclass(frozen=True, slots=True)
class IdentityDetails:
    identity: Identity
    devices: tuple[Device, ...]


def _device_error(code: str, message: str) -> DomainError:
    return DomainError(f"error.platform.validation.device.{code}", message)


def client_id_already_exists() -> DomainError:
    return _device_error(
        "clientIdAlreadyExists",
        "A client with the given client id already exists. Try a different client id.",
    )


def queued_for_deletion_tier_cannot_be_manually_assigned_or_unassigned() -> DomainError:
    return _device_error(
        "queuedForDeletionTierCannotBeManuallyAssignedOrUnassigned",
        "The tier 'Queued for Deletion' cannot be assigned to or taken from an identity by hand.",
    )


def max_identities_less_than_current_identities(current: int) -> DomainError:
    return _device_error(
        "maxIdentitiesLessThanCurrentIdentities",
        f"'maxIdentities' cannot be lower than the client's current number of identities ({current}).",
    )
