"""Use cases of quotas: what an operator limits per tier and per identity, the recalculation of
metric statuses after the events that change usage, and the check requests pass first."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from backbone.modules.quotas import model
from backbone.modules.quotas.events import TierQuotaDefinitionCreated, TierQuotaDefinitionDeleted
from backbone.modules.quotas.model import (
    IndividualQuota,
    MetricKey,
    MetricStatus,
    QuotaLimit,
    QuotaPeriod,
    QuotaSource,
    QuotaUsage,
    TierQuotaDefinition,
)
from backbone.modules.quotas.repository import QuotaRepository
from backbone.modules.tiers.model import QUEUED_FOR_DELETION_TIER_ID
from backbone.platform.clock import Clock
from backbone.platform.db import Database
from backbone.platform.encoding import format_datetime
from backbone.platform.errors import NotFound, QuotaExhausted
from backbone.platform.events import Outbox
from backbone.platform.ids import Ids

# Counts an identity's usage of one metric in [since, until); since None means "ever".
UsageCounter = Callable[[str, datetime | None, datetime], int]


class QuotaCheck:
    """The check a quota-limited request passes first: one lookup of the precomputed statuses."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._repository = QuotaRepository()
        self._clock = clock

    def __call__(self, address: str, metric_keys: Sequence[str]) -> None:
        """Raise QuotaExhausted naming every exhausted metric of `metric_keys`."""
        with self._db.read() as connection:
            exhausted = self._repository.exhausted(connection, address, metric_keys, self._clock.now())
        if exhausted:
            raise QuotaExhausted(
                [{"metricKey": key, "isExhaustedUntil": format_datetime(until)} for key, until in exhausted]
            )


class QuotaService:
    def __init__(
        self,
        db: Database,
        repository: QuotaRepository,
        outbox: Outbox,
        ids: Ids,
        clock: Clock,
        *,
        tier_exists: Callable[[str], bool],
        tier_of_identity: Callable[[str], str | None],
        identities_in_tier: Callable[[str], list[str]],
        usage: Mapping[MetricKey, UsageCounter],
    ) -> None:
        self._db = db
        self._repository = repository
        self._outbox = outbox
        self._ids = ids
        self._clock = clock
        self._tier_exists = tier_exists
        self._tier_of_identity = tier_of_identity
        self._identities_in_tier = identities_in_tier
        self._usage = usage

    def metrics(self) -> list[MetricKey]:
        return list(MetricKey)

    def ensure_defaults(self) -> None:
        """Give the "Queued for Deletion" tier a zero quota on every metric (nothing is allowed)."""
        with self._db.transaction() as connection:
            if self._repository.definitions_of(connection, QUEUED_FOR_DELETION_TIER_ID):
                return
            for metric in MetricKey:
                definition = TierQuotaDefinition(
                    self._ids.new("TQD"), QUEUED_FOR_DELETION_TIER_ID, metric, 0, QuotaPeriod.Total
                )
                self._repository.add_definition(connection, definition)

    def tier_quotas(self, tier_id: str) -> list[TierQuotaDefinition]:
        with self._db.read() as connection:
            return self._repository.definitions_of(connection, tier_id)

    def define_tier_quota(
        self, tier_id: str, metric_key: str, max_: int, period: QuotaPeriod
    ) -> TierQuotaDefinition:
        """Limit a metric for every identity of a tier."""
        if not self._tier_exists(tier_id):
            raise NotFound("Tier")
        if tier_id == QUEUED_FOR_DELETION_TIER_ID:
            raise model.cannot_change_queued_for_deletion_tier()
        metric = model.metric_by_key(metric_key)
        model.check_max(max_)
        definition = TierQuotaDefinition(self._ids.new("TQD"), tier_id, metric, max_, period)
        with self._db.transaction() as connection:
            existing = self._repository.definitions_of(connection, tier_id)
            if any(d.metric is metric and d.period is period for d in existing):
                raise model.duplicate_quota()
            self._repository.add_definition(connection, definition)
            self._outbox.add(
                TierQuotaDefinitionCreated(tier_id=tier_id, tier_quota_definition_id=definition.id)
            )
        return definition

    def remove_tier_quota(self, tier_id: str, definition_id: str) -> None:
        if tier_id == QUEUED_FOR_DELETION_TIER_ID:
            raise model.cannot_change_queued_for_deletion_tier()
        if not self._tier_exists(tier_id):
            raise NotFound("Tier")
        with self._db.transaction() as connection:
            if not self._repository.delete_definition(connection, tier_id, definition_id):
                raise NotFound("TierQuotaDefinition")
            self._outbox.add(
                TierQuotaDefinitionDeleted(tier_id=tier_id, tier_quota_definition_id=definition_id)
            )

    def forget_tier(self, tier_id: str) -> None:
        """Drop the definitions of a deleted tier."""
        with self._db.transaction() as connection:
            self._repository.delete_definitions_of(connection, tier_id)

    def add_individual_quota(
        self, address: str, metric_key: str, max_: int, period: QuotaPeriod
    ) -> IndividualQuota:
        """Limit a metric for one identity; it overrides the tier's quotas of that metric."""
        if self._tier_of_identity(address) is None:
            raise NotFound("Identity")
        metric = model.metric_by_key(metric_key)
        model.check_max(max_)
        quota = IndividualQuota(self._ids.new("QUO"), address, metric, max_, period)
        with self._db.transaction() as connection:
            existing = self._repository.individual_of(connection, address)
            if any(q.metric is metric and q.period is period for q in existing):
                raise model.duplicate_quota()
            self._repository.add_individual(connection, quota)
        self.recalculate(address, [metric])
        return quota

    def remove_individual_quota(self, address: str, quota_id: str) -> None:
        if self._tier_of_identity(address) is None:
            raise NotFound("Identity")
        with self._db.transaction() as connection:
            removed = self._repository.delete_individual(connection, address, quota_id)
            if removed is None:
                raise NotFound("Quota")
        self.recalculate(address, [removed])

    def quotas_of_identity(self, address: str) -> list[QuotaLimit]:
        """The limits that apply to an identity: individual ones override its tier's per metric."""
        tier_id = self._tier_of_identity(address)
        if tier_id is None:
            raise NotFound("Identity")
        with self._db.read() as connection:
            individual = self._repository.individual_of(connection, address)
            definitions = self._repository.definitions_of(connection, tier_id)
        overridden = {quota.metric for quota in individual}
        limits = [QuotaLimit(q.id, QuotaSource.Individual, q.metric, q.max, q.period) for q in individual]
        limits += [
            QuotaLimit(d.id, QuotaSource.Tier, d.metric, d.max, d.period)
            for d in definitions
            if d.metric not in overridden
        ]
        return limits

    def usage_of(self, address: str) -> list[QuotaUsage]:
        """The quotas that apply to an identity with its live usage in each one's current period."""
        now = self._clock.now()
        return [
            QuotaUsage(limit, self._count(address, limit, now)) for limit in self.quotas_of_identity(address)
        ]

    def recalculate(self, address: str, metrics: Sequence[MetricKey] | None = None) -> None:
        """Count the identity's usage and store until when each metric is exhausted."""
        try:
            limits = self.quotas_of_identity(address)
        except NotFound:
            return  # deleted meanwhile: nothing left to limit
        now = self._clock.now()
        statuses = []
        for metric in metrics or list(MetricKey):
            # max 0 is exhausted whatever the usage, so it is not counted.
            applicable = [
                (
                    self._count(address, limit, now) if limit.max else 0,
                    limit.max,
                    model.period_window(limit.period, now)[1],
                )
                for limit in limits
                if limit.metric is metric
            ]
            statuses.append(MetricStatus(metric, model.exhausted_until(applicable)))
        with self._db.transaction() as connection:
            for status in statuses:
                self._repository.save_status(connection, address, status, self._db)

    def usage_changed(self, address: str, metrics: Sequence[MetricKey] | None = None) -> None:
        """Recalculate after the identity's usage changed, unless no quota limits these metrics.

        Without a quota there is nothing to recount: the stored statuses already say "not
        exhausted", because every change of limits (a tier or individual quota added or removed,
        another tier) recalculates the identities it concerns, and a recount reads the usage
        afresh from the owning modules.
        """
        metrics = metrics or list(MetricKey)
        tier_id = self._tier_of_identity(address)
        if tier_id is None:
            return  # deleted meanwhile: nothing left to limit
        with self._db.read() as connection:
            if not self._repository.any_limit(connection, address, tier_id, metrics):
                return
        self.recalculate(address, metrics)

    def recalculate_tier(self, tier_id: str) -> None:
        """Recalculate every identity of a tier (its quota definitions changed)."""
        for address in self._identities_in_tier(tier_id):
            self.recalculate(address)

    def forget_identity(self, address: str) -> None:
        """Remove an identity's individual quotas and metric statuses (it was deleted)."""
        with self._db.transaction() as connection:
            self._repository.delete_individual_of(connection, address)
            self._repository.delete_statuses_of(connection, address)

    def _count(self, address: str, limit: QuotaLimit, now: datetime) -> int:
        counter = self._usage.get(limit.metric)
        if counter is None:
            return 0
        since, until = model.period_window(limit.period, now)
        return counter(address, since, until)
