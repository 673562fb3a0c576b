"""Quotas: the metrics an operator can limit per tier and per identity, their periods, and the
exhaustion of a metric that requests are checked against."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

from backbone.platform.errors import DomainError


class MetricKey(Enum):
    """The metric keys (also the stored values) with their display names."""

    NumberOfSentMessages = "Number of Sent Messages"
    NumberOfRelationships = "Number of Relationships"
    NumberOfRelationshipTemplates = "Number of Relationship Templates"
    NumberOfFiles = "Number of Files"
    NumberOfTokens = "Number of Tokens"
    UsedFileStorageSpace = "File Storage Capacity (in Megabytes)"
    NumberOfStartedDeletionProcesses = "Number of Started Deletion Processes"
    NumberOfCreatedDatawalletModifications = "Number of Created Datawallet Modifications"
    NumberOfCreatedDevices = "Number of Created Devices"
    NumberOfCreatedChallenges = "Number of Created Challenges"

    @property
    def display_name(self) -> str:
        return self.value


class QuotaPeriod(Enum):
    """Wire names with the integers the original stores."""

    Hour = 0
    Day = 1
    Week = 2
    Month = 3
    Year = 4
    Total = 5


# A metric exhausted for good (a Total quota, or max 0) is exhausted until the end of time.
END_OF_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def period_window(period: QuotaPeriod, now: datetime) -> tuple[datetime | None, datetime]:
    """The current period as [start, end); Total starts never and ends at END_OF_TIME."""
    if period is QuotaPeriod.Total:
        return None, END_OF_TIME
    if period is QuotaPeriod.Hour:
        start = now.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is QuotaPeriod.Day:
        return day, day + timedelta(days=1)
    if period is QuotaPeriod.Week:
        start = day - timedelta(days=day.weekday())  # Monday-based, as the original
        return start, start + timedelta(days=7)
    if period is QuotaPeriod.Month:
        start = day.replace(day=1)
        following = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
        return start, following
    start = day.replace(month=1, day=1)
    return start, start.replace(year=start.year + 1)


def exhausted_until(limits: list[tuple[int, int, datetime]]) -> datetime | None:
    """Given (usage, max, end of period) per applicable quota: the latest end among exhausted ones."""
    ends = [end for usage, max_, end in limits if usage >= max_]
    return max(ends) if ends else None


@dataclass(frozen=True, slots=True)
class MetricStatus:
    """A metric of one identity and until when it is exhausted (None: it is not)."""

    metric: MetricKey
    is_exhausted_until: datetime | None


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """A quota that applies to an identity with the identity's live usage in the current period."""

    limit: QuotaLimit
    usage: int


class QuotaSource(Enum):
    Tier = "Tier"
    Individual = "Individual"


@dataclass(frozen=True, slots=True)
class TierQuotaDefinition:
    id: str
    tier_id: str
    metric: MetricKey
    max: int
    period: QuotaPeriod


@dataclass(frozen=True, slots=True)
class IndividualQuota:
    id: str
    address: str
    metric: MetricKey
    max: int
    period: QuotaPeriod


@dataclass(frozen=True, slots=True)
class QuotaLimit:
    """A limit that applies to an identity, and where it comes from."""

    id: str
    source: QuotaSource
    metric: MetricKey
    max: int
    period: QuotaPeriod


def metric_by_key(key: str) -> MetricKey:
    """Find a metric by its exact key."""
    try:
        return MetricKey[key]
    except KeyError:
        raise unsupported_metric_key(key) from None


def check_max(value: int) -> None:
    if value < 0:
        raise DomainError(
            "error.platform.quotas.invalidValueForMaxLimitInQuota",
            "The max limit of a quota must be at least 0.",
        )


def unsupported_metric_key(key: str) -> DomainError:
    return DomainError(
        "error.platform.quotas.unsupportedMetricKey", f"The metric key '{key}' is not supported."
    )


def duplicate_quota() -> DomainError:
    return DomainError(
        "error.platform.quotas.duplicateQuota",
        "A quota with the same metric and period already exists.",
    )


def cannot_change_queued_for_deletion_tier() -> DomainError:
    return DomainError(
        "error.platform.quotas.cannotCreateOrDeleteQuotaOnQueuedForDeletionTier",
        "The quotas of the tier 'Queued for Deletion' cannot be changed.",
    )
