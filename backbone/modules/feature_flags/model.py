"""Feature flags: named switches an identity sets for what it supports, shown to its peers."""

from __future__ import annotations

from collections.abc import Mapping

from backbone.platform.errors import DomainError, InvalidPropertyValue

# The original's `MaxNumberOfFeatureFlagsPerIdentity` and the length of its name column.
MAX_FEATURE_FLAGS_PER_IDENTITY = 200
MAX_NAME_LENGTH = 200


def max_number_of_feature_flags_exceeded() -> DomainError:
    return DomainError(
        "error.platform.validation.featureFlag.maxNumberOfFeatureFlagsExceeded",
        f"Only {MAX_FEATURE_FLAGS_PER_IDENTITY} feature flags can be created.",
    )


def check_change(flags: Mapping[str, bool]) -> None:
    """The original's validator of a change: every name first, then how many (the first failure
    is the one reported)."""
    # A NUL cannot be stored in PostgreSQL text (the original's column would refuse it too).
    if any(len(name) > MAX_NAME_LENGTH or "\x00" in name for name in flags):
        raise InvalidPropertyValue("Invalid feature flag name. Check length and the used characters.")
    if len(flags) > MAX_FEATURE_FLAGS_PER_IDENTITY:
        raise max_number_of_feature_flags_exceeded()


def check_total(existing: set[str], changed: Mapping[str, bool]) -> None:
    """An identity keeps at most the maximum number of flags, old and new names together."""
    if len(existing | changed.keys()) > MAX_FEATURE_FLAGS_PER_IDENTITY:
        raise max_number_of_feature_flags_exceeded()
