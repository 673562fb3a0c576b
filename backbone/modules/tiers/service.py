"""Use cases of tiers."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from backbone.modules.tiers import model
from backbone.modules.tiers.events import TierCreated, TierDeleted
from backbone.modules.tiers.model import (
    BASIC_TIER_NAME,
    QUEUED_FOR_DELETION_TIER_ID,
    QUEUED_FOR_DELETION_TIER_NAME,
    Tier,
    TierOverview,
)
from backbone.modules.tiers.repository import TierRepository
from backbone.platform.db import Database
from backbone.platform.errors import NotFound
from backbone.platform.events import Outbox
from backbone.platform.ids import Ids

# The number of identities per tier id (tiers nobody is in may be missing).
IdentitiesPerTier = Callable[[], Mapping[str, int]]
# What still uses a tier (a client's default, an identity), or None: asked before deleting it.
TierUsage = Callable[[str], str | None]


class TierService:
    """Clients and identities point at tiers; what they hold comes from the devices module,
    asked through the two functions given here (decisions.md, "Tiers, a module of their own")."""

    def __init__(
        self,
        db: Database,
        tiers: TierRepository,
        ids: Ids,
        outbox: Outbox,
        *,
        identities_per_tier: IdentitiesPerTier,
        tier_usage: TierUsage,
    ) -> None:
        self._db = db
        self._tiers = tiers
        self._ids = ids
        self._outbox = outbox
        self._identities_per_tier = identities_per_tier
        self._tier_usage = tier_usage

    def ensure_defaults(self) -> None:
        """Create `Basic` and "Queued for Deletion" when missing (the original seeds both on start)."""
        with self._db.transaction() as connection:
            if self._tiers.find(connection, QUEUED_FOR_DELETION_TIER_ID) is None:
                self._tiers.add(
                    connection, Tier(QUEUED_FOR_DELETION_TIER_ID, QUEUED_FOR_DELETION_TIER_NAME, False, False)
                )
            if self._tiers.find_by_name(connection, BASIC_TIER_NAME) is None:
                self._tiers.add(connection, Tier(self._ids.new("TIR"), BASIC_TIER_NAME, True, True))

    def find_by_name_or_id(self, name_or_id: str) -> Tier | None:
        with self._db.read() as connection:
            return self._tiers.find(connection, name_or_id) or self._tiers.find_by_name(
                connection, name_or_id
            )

    def find(self, tier_id: str) -> Tier | None:
        with self._db.read() as connection:
            return self._tiers.find(connection, tier_id)

    def get(self, tier_id: str) -> Tier:
        tier = self.find(tier_id)
        if tier is None:
            raise NotFound("Tier")
        return tier

    def exists(self, tier_id: str) -> bool:
        return self.find(tier_id) is not None

    def lookup(self) -> Callable[[str], Tier]:
        """Tier by id, for lists that show the tiers of many rows: every tier is read once (an
        installation has a handful), and one created and assigned after that read is read when
        first asked for, so a list never misses a tier its rows point at."""
        with self._db.read() as connection:
            known = {tier.id: tier for tier in self._tiers.all(connection)}

        def tier_of(tier_id: str) -> Tier:
            if tier_id not in known:
                known[tier_id] = self.get(tier_id)
            return known[tier_id]

        return tier_of

    def overviews(self) -> list[TierOverview]:
        """Every tier with its number of identities, by name."""
        with self._db.read() as connection:
            # Devices' read joins this unit of work: the counts are of the same moment.
            counts = self._identities_per_tier()
            return [TierOverview(tier, counts.get(tier.id, 0)) for tier in self._tiers.all(connection)]

    def create(self, name: str) -> Tier:
        """Add a tier that clients can use as default and operators can assign."""
        model.check_tier_name(name)
        tier = Tier(self._ids.new("TIR"), name)
        with self._db.transaction() as connection:
            if self._tiers.find_by_name(connection, name) is not None:
                raise model.tier_name_already_exists()
            self._tiers.add(connection, tier)
            self._outbox.add(TierCreated(id=tier.id, tier_name=tier.name))
        return tier

    def delete(self, tier_id: str) -> None:
        """Delete a tier nothing uses; `Basic` and "Queued for Deletion" stay."""
        if tier_id == QUEUED_FOR_DELETION_TIER_ID:
            raise model.queued_for_deletion_tier_cannot_be_deleted()
        with self._db.transaction() as connection:
            tier = self._tiers.find(connection, tier_id)
            if tier is None:
                raise NotFound("Tier")
            if tier.name == BASIC_TIER_NAME:
                raise model.basic_tier_cannot_be_deleted()
            # Devices' read joins this transaction (nested units join the outermost one).
            if (reason := self._tier_usage(tier_id)) is not None:
                raise model.used_tier_cannot_be_deleted(reason)
            self._tiers.delete(connection, tier_id)
            self._outbox.add(TierDeleted(id=tier_id))

    def default_tier_for_clients(self, name_or_id: str) -> Tier:
        """The tier a client may take as default, by name or id."""
        tier = self.find_by_name_or_id(name_or_id)
        if tier is None or not tier.can_be_used_as_default_for_client:
            raise model.tier_id_invalid_or_does_not_exist()
        return tier
