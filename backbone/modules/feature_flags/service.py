"""Use cases of feature flags: an identity sets its own, the identities that know it read them."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from backbone.modules.feature_flags import model
from backbone.modules.feature_flags.events import FeatureFlagsOfIdentityChanged
from backbone.modules.feature_flags.repository import FeatureFlagRepository
from backbone.platform.auth import Principal
from backbone.platform.db import Database
from backbone.platform.errors import NotFound
from backbone.platform.events import Outbox

# Lock the identity's row until the transaction ends (NotFound when it is gone).
LockIdentity = Callable[[str], object]
# Whether the caller (first) knows the identity (second): a relationship, or one of its templates.
Knows = Callable[[str, str], bool]


class FeatureFlagService:
    def __init__(
        self,
        db: Database,
        repository: FeatureFlagRepository,
        outbox: Outbox,
        *,
        lock_identity: LockIdentity,
        knows: Knows,
    ) -> None:
        self._db = db
        self._repository = repository
        self._outbox = outbox
        self._lock_identity = lock_identity
        self._knows = knows

    def change(self, caller: Principal, flags: Mapping[str, bool]) -> None:
        """Set the caller's flags (new names are created); its peers hear of it."""
        model.check_change(flags)
        with self._db.transaction() as connection:
            # Two changes at once must not pass the maximum together.
            self._lock_identity(caller.address)
            existing = set(self._repository.flags_of(connection, caller.address))
            model.check_total(existing, flags)
            self._repository.set(connection, caller.address, flags)
            self._outbox.add(FeatureFlagsOfIdentityChanged(identity_address=caller.address))

    def of_identity(self, caller: Principal, address: str) -> dict[str, bool]:
        """The flags of the caller's own identity, or of one it knows; others are not found."""
        if address != caller.address and not self._knows(caller.address, address):
            raise NotFound("Identity")
        with self._db.read() as connection:
            return self._repository.flags_of(connection, address)

    def delete_of_identity(self, address: str) -> None:
        """Identity deletion: its flags go with it."""
        with self._db.transaction() as connection:
            self._repository.delete_of_identity(connection, address)
