"""Use cases of challenges."""

from __future__ import annotations

import json
from datetime import datetime

from backbone.modules.challenges import model
from backbone.modules.challenges.model import LIFETIME, Challenge, SignedChallenge
from backbone.modules.challenges.repository import ChallengeRepository
from backbone.platform.auth import Principal
from backbone.platform.clock import Clock
from backbone.platform.crypto import MalformedKeyMaterial, raw_signature, signature_is_valid
from backbone.platform.db import Database
from backbone.platform.errors import NotFound
from backbone.platform.ids import Ids, is_valid_id


class ChallengeService:
    def __init__(self, db: Database, repository: ChallengeRepository, clock: Clock, ids: Ids) -> None:
        self._db = db
        self._repository = repository
        self._clock = clock
        self._ids = ids

    def create(self, caller: Principal | None) -> Challenge:
        challenge = Challenge(
            id=self._ids.new("CHL"),
            expires_at=self._clock.now() + LIFETIME,
            created_by=caller.address if caller else None,
            created_by_device=caller.device_id if caller else None,
        )
        # One INSERT: atomic by itself, so no BEGIN and COMMIT around it on PostgreSQL.
        with self._db.statement() as connection:
            self._repository.add(connection, challenge)
        return challenge

    def get(self, challenge_id: str) -> Challenge:
        """Return a challenge that is not long expired, for the identity that signs it."""
        challenge = self.find(challenge_id)
        if challenge is None or challenge.is_expired(self._clock.now()):
            raise NotFound("Challenge")
        return challenge

    def find(self, challenge_id: str) -> Challenge | None:
        if not is_valid_id(challenge_id, "CHL"):
            return None
        with self._db.read() as connection:
            return self._repository.find(connection, challenge_id)

    def verify_signed(self, public_key: bytes, signed: SignedChallenge) -> None:
        """Check that a challenge of ours was signed with the given identity key and is still valid."""
        try:
            signature = raw_signature(signed.signature)
        except MalformedKeyMaterial:
            raise model.invalid_signature() from None
        if not signature_is_valid(public_key, signature, signed.challenge.encode("utf-8")):
            raise model.invalid_signature()
        try:
            fields = json.loads(signed.challenge)
        except ValueError:
            raise NotFound("Challenge") from None
        challenge_id = (
            next((value for key, value in fields.items() if key.lower() == "id"), None)
            if isinstance(fields, dict)
            else None
        )
        challenge = self.find(challenge_id) if isinstance(challenge_id, str) else None
        if challenge is None:
            raise NotFound("Challenge")
        if challenge.is_expired(self._clock.now()):
            raise model.challenge_has_expired()

    def delete_of_identity(self, address: str) -> int:
        """Identity deletion: remove the challenges the identity created."""
        with self._db.transaction() as connection:
            return self._repository.delete_created_by(connection, address)

    def delete_expired(self, before: datetime) -> int:
        """Housekeeping: remove challenges that expired before the date."""
        with self._db.transaction() as connection:
            return self._repository.delete_expired(connection, before)
