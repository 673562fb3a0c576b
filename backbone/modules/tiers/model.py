"""Tiers: the classes of identities that quotas are defined for and clients give new identities."""

from __future__ import annotations

from dataclasses import dataclass

from backbone.platform.errors import DomainError

BASIC_TIER_NAME = "Basic"
QUEUED_FOR_DELETION_TIER_ID = "TIR00000000000000001"
QUEUED_FOR_DELETION_TIER_NAME = "Queued for Deletion"
MIN_TIER_NAME_LENGTH = 3
MAX_TIER_NAME_LENGTH = 30


@dataclass(frozen=True, slots=True)
class Tier:
    id: str
    name: str
    can_be_used_as_default_for_client: bool = True
    can_be_manually_assigned: bool = True


@dataclass(frozen=True, slots=True)
class TierOverview:
    tier: Tier
    number_of_identities: int


def check_tier_name(name: str) -> None:
    if not MIN_TIER_NAME_LENGTH <= len(name.strip()) <= MAX_TIER_NAME_LENGTH or name != name.strip():
        raise DomainError(
            "error.platform.validation.invalidTierName",
            f"A tier name must have {MIN_TIER_NAME_LENGTH} to {MAX_TIER_NAME_LENGTH} characters "
            "without leading or trailing spaces.",
        )


def _tier_error(code: str, message: str) -> DomainError:
    # The original keeps tiers in its Devices module: the codes say `device`.
    return DomainError(f"error.platform.validation.device.{code}", message)


def tier_name_already_exists() -> DomainError:
    return _tier_error("tierNameAlreadyExists", "A tier with the given name already exists.")


def tier_id_invalid_or_does_not_exist() -> DomainError:
    return _tier_error("tierIdInvalidOrDoesNotExist", "The given tier does not exist or cannot be used here.")


def basic_tier_cannot_be_deleted() -> DomainError:
    return _tier_error("basicTierCannotBeDeleted", "The tier 'Basic' cannot be deleted.")


def queued_for_deletion_tier_cannot_be_deleted() -> DomainError:
    return _tier_error(
        "queuedForDeletionTierCannotBeDeleted", "The tier 'Queued for Deletion' cannot be deleted."
    )


def used_tier_cannot_be_deleted(reason: str) -> DomainError:
    return _tier_error("usedTierCannotBeDeleted", f"The tier cannot be deleted: {reason}")
