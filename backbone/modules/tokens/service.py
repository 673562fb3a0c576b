"""Use cases of tokens."""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Sequence
from datetime import datetime

from backbone.modules.tokens import model
from backbone.modules.tokens.events import TokenCreated, TokenLocked
from backbone.modules.tokens.model import (
    MAX_ANONYMOUS_LIFETIME,
    MAX_FAILED_PASSWORD_ATTEMPTS,
    NewToken,
    Token,
)
from backbone.modules.tokens.repository import TokenRepository
from backbone.platform.auth import Principal
from backbone.platform.clock import Clock
from backbone.platform.db import Connection, Database, Page, Paged
from backbone.platform.errors import CheckQuota, Forbidden, NotFound, no_quota_check
from backbone.platform.events import Outbox
from backbone.platform.ids import Ids


class TokenService:
    def __init__(
        self,
        db: Database,
        repository: TokenRepository,
        outbox: Outbox,
        clock: Clock,
        ids: Ids,
        *,
        check_quota: CheckQuota = no_quota_check,
    ) -> None:
        self._check_quota = check_quota
        self._db = db
        self._repository = repository
        self._outbox = outbox
        self._clock = clock
        self._ids = ids

    def create(self, caller: Principal | None, new: NewToken) -> Token:
        """Create a token; anonymous callers may only create short-lived empty ones."""
        now = self._clock.now()
        if new.expires_at <= now:
            raise model.invalid_property("'expiresAt' must be in the future.")
        if caller is None:
            if new.content is not None:
                raise model.invalid_property("'content' must be empty when creating a token anonymously.")
            if new.expires_at >= now + MAX_ANONYMOUS_LIFETIME:
                raise model.invalid_property(
                    "'expiresAt' must be less than 5 minutes in the future when creating a token anonymously."
                )
        if caller is not None:
            self._check_quota(caller.address, ("NumberOfTokens",))
        token = Token(
            id=self._ids.new("TOK"),
            created_by=caller.address if caller else None,
            created_by_device=caller.device_id if caller else None,
            for_identity=new.for_identity,
            password=new.password,
            created_at=now,
            expires_at=new.expires_at,
            content=new.content,
            access_failed_count=0,
        )
        with self._db.transaction() as connection:
            self._repository.add(connection, token)
            self._outbox.add(TokenCreated(token_id=token.id, created_by=token.created_by))
        return token

    def count_created(self, address: str, since: datetime | None, until: datetime) -> int:
        """Tokens the identity created in [since, until) (quota usage)."""
        with self._db.read() as connection:
            return self._repository.count_created(connection, address, since, until)

    def get(self, caller: Principal | None, token_id: str, password: bytes | None) -> Token:
        """Return a token the caller may read; an authenticated first read allocates it."""
        granted = None
        with self._db.transaction() as connection:
            token = self._accessible(connection, caller, token_id, password)
            if token is not None:
                granted = token
                if caller is not None and token.created_by != caller.address:
                    self._repository.allocate(
                        connection, token.id, caller.address, caller.device_id, self._clock.now()
                    )
        # A wrong password is counted in the committed transaction above, then refused.
        if granted is None:
            raise NotFound("Token")
        return granted

    def update_content(
        self, caller: Principal, token_id: str, content: bytes, password: bytes | None
    ) -> Token:
        """Fill an empty token; the caller becomes its creator."""
        updated = None
        with self._db.transaction() as connection:
            token = self._accessible(connection, caller, token_id, password)
            if token is not None:
                if token.content is not None:
                    raise model.content_already_exists()
                self._repository.set_content(connection, token.id, content, caller.address, caller.device_id)
                updated = dataclasses.replace(
                    token, content=content, created_by=caller.address, created_by_device=caller.device_id
                )
        if updated is None:
            raise NotFound("Token")
        return updated

    def _accessible(
        self, connection: Connection, caller: Principal | None, token_id: str, password: bytes | None
    ) -> Token | None:
        """Apply the access rules; None means a wrong password, which has been counted."""
        token = self._repository.find(connection, token_id, lock=True)
        if token is None:
            raise NotFound("Token")
        if caller is not None and (
            token.created_by == caller.address
            or self._repository.is_allocated(connection, token.id, caller.address)
        ):
            return token
        if token.is_expired(self._clock.now()):
            raise NotFound("Token")
        if token.is_locked:
            raise model.too_many_failed_password_attempts()
        if token.for_identity is not None and (caller is None or caller.address != token.for_identity):
            raise NotFound("Token")
        if token.password is not None and not (
            password is not None and hmac.compare_digest(password, token.password)
        ):
            failures = self._repository.count_failed_access(connection, token.id)
            if failures == MAX_FAILED_PASSWORD_ATTEMPTS:
                self._outbox.add(TokenLocked(token_id=token.id, created_by=token.created_by))
            return None
        return token

    def find_many(self, caller: Principal, token_ids: Sequence[str], page: Page) -> Paged:
        """Tokens among the ids that the caller created or allocated."""
        with self._db.read() as connection:
            return self._repository.find_page(connection, token_ids, caller.address, page)

    def delete(self, caller: Principal, token_id: str) -> None:
        with self._db.transaction() as connection:
            token = self._repository.find(connection, token_id, lock=True)
            if token is None:
                raise NotFound("Token")
            if token.created_by != caller.address:
                raise Forbidden()
            self._repository.delete(connection, token_id)

    def created_by(self, address: str, page: Page) -> Paged:
        """The tokens an identity created, for operators."""
        with self._db.read() as connection:
            return self._repository.page_created_by(connection, address, page)

    def reset_access_failed_count(self, token_id: str) -> None:
        """Unlock a token that too many wrong passwords locked."""
        with self._db.transaction() as connection:
            if not self._repository.reset_access_failed_count(connection, token_id):
                raise NotFound("Token")

    def delete_of_identity(self, address: str) -> int:
        """Identity deletion: remove its tokens (and those only it could read) and allocations."""
        with self._db.transaction() as connection:
            return self._repository.delete_of_identity(connection, address)

    def delete_expired(self, before: datetime) -> int:
        """Housekeeping: remove tokens that expired before the date."""
        with self._db.transaction() as connection:
            return self._repository.delete_expired(connection, before)
