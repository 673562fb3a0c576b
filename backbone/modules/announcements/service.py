"""Use cases of announcements."""

from __future__ import annotations

from datetime import datetime

from backbone.modules.announcements import model
from backbone.modules.announcements.events import AnnouncementCreated, AnnouncementCreatedText
from backbone.modules.announcements.model import Announcement, NewAnnouncement
from backbone.modules.announcements.repository import AnnouncementRepository
from backbone.platform.clock import Clock
from backbone.platform.db import Database
from backbone.platform.errors import NotFound
from backbone.platform.events import Outbox
from backbone.platform.ids import Ids


class AnnouncementService:
    def __init__(
        self, db: Database, repository: AnnouncementRepository, outbox: Outbox, clock: Clock, ids: Ids
    ) -> None:
        self._db = db
        self._repository = repository
        self._outbox = outbox
        self._clock = clock
        self._ids = ids

    def announce(self, new: NewAnnouncement) -> Announcement:
        """Publish an announcement to everyone, or to the given recipients."""
        now = self._clock.now()
        model.check_new_announcement(new, now)
        announcement = Announcement(
            id=self._ids.new("ANC"),
            created_at=now,
            expires_at=new.expires_at,
            severity=new.severity,
            is_silent=new.is_silent,
            iql_query=new.iql_query,
            texts=tuple(sorted(new.texts, key=lambda text: text.language)),
            actions=tuple(new.actions),
            recipients=tuple(new.recipients),
        )
        with self._db.transaction() as connection:
            self._repository.add(connection, announcement)
            self._outbox.add(
                AnnouncementCreated(
                    id=announcement.id,
                    severity=announcement.severity.name,
                    is_silent=announcement.is_silent,
                    texts=tuple(
                        AnnouncementCreatedText(t.language, t.title, t.body) for t in announcement.texts
                    ),
                    recipients=announcement.recipients,
                )
            )
        return announcement

    def all(self) -> list[Announcement]:
        with self._db.read() as connection:
            return self._repository.all(connection)

    def get(self, announcement_id: str) -> Announcement:
        with self._db.read() as connection:
            found = self._repository.find(connection, announcement_id)
        if found is None:
            raise NotFound("Announcement")
        return found

    def withdraw(self, announcement_id: str) -> None:
        with self._db.transaction() as connection:
            if not self._repository.delete(connection, announcement_id):
                raise NotFound("Announcement")

    def for_identity(self, address: str) -> list[Announcement]:
        """What an identity sees: announcements to everyone and to it (expired ones included)."""
        with self._db.read() as connection:
            return self._repository.for_identity(connection, address)

    def delete_expired(self, before: datetime) -> int:
        """Housekeeping: remove announcements that expired before the date."""
        with self._db.transaction() as connection:
            return self._repository.delete_expired(connection, before)

    def forget_recipient(self, address: str) -> None:
        """Identity deletion: the identity is no longer a recipient of anything."""
        with self._db.transaction() as connection:
            self._repository.forget_recipient(connection, address)
