"""Use cases of messages."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from backbone.modules.messages import model
from backbone.modules.messages.events import MessageCreated, MessageRecipient
from backbone.modules.messages.model import (
    SENDABLE_STATUSES,
    Message,
    MessageExport,
    NewMessage,
    Recipient,
)
from backbone.modules.messages.repository import MessageRepository
from backbone.platform.auth import Principal
from backbone.platform.clock import Clock
from backbone.platform.db import Database, Page, Paged
from backbone.platform.errors import CheckQuota, InvalidPropertyValue, NotFound, no_quota_check
from backbone.platform.events import Outbox
from backbone.platform.ids import Ids

# The id and status name of the youngest relationship between two identities, if any.
RelationshipBetween = Callable[[str, str], tuple[str, str] | None]


class MessageService:
    def __init__(
        self,
        db: Database,
        repository: MessageRepository,
        outbox: Outbox,
        clock: Clock,
        ids: Ids,
        *,
        relationship_between: RelationshipBetween,
        max_recipients: int,
        max_unreceived_from_one_sender: int,
        anonymous_address: str,
        check_quota: CheckQuota = no_quota_check,
    ) -> None:
        self._db = db
        self._repository = repository
        self._outbox = outbox
        self._clock = clock
        self._ids = ids
        self._relationship_between = relationship_between
        self._max_recipients = max_recipients
        self._max_unreceived = max_unreceived_from_one_sender
        self._anonymous_address = anonymous_address
        self._check_quota = check_quota

    def send(self, caller: Principal, new: NewMessage) -> Message:
        """Send a message to peers the caller has a relationship with."""
        if not 1 <= len(new.recipients) <= self._max_recipients:
            raise InvalidPropertyValue(
                f"'recipients' must contain between 1 and {self._max_recipients} recipients."
            )
        addresses = [recipient.address for recipient in new.recipients]
        if len(set(addresses)) != len(addresses):
            raise InvalidPropertyValue("'recipients' must not contain an address more than once.")
        self._check_quota(caller.address, ("NumberOfSentMessages",))
        with self._db.transaction() as connection:
            recipients = []
            for recipient in new.recipients:
                found = self._relationship_between(caller.address, recipient.address)
                if found is None:
                    raise model.no_relationship_to_recipient_exists(recipient.address)
                relationship_id, status = found
                if status not in SENDABLE_STATUSES:
                    raise model.relationship_to_recipient_not_active(recipient.address)
                unreceived = self._repository.count_unreceived(connection, caller.address, recipient.address)
                if unreceived >= self._max_unreceived:
                    raise model.max_number_of_unreceived_messages_reached(recipient.address)
                recipients.append(
                    Recipient(recipient.address, relationship_id, recipient.encrypted_key, None, None)
                )
            message = Message(
                id=self._ids.new("MSG"),
                created_at=self._clock.now(),
                created_by=caller.address,
                created_by_device=caller.device_id,
                body=new.body,
                attachments=new.attachments,
                recipients=tuple(recipients),
            )
            self._repository.add(connection, message)
            self._outbox.add(
                MessageCreated(
                    id=message.id,
                    created_by=caller.address,
                    recipients=tuple(MessageRecipient(r.address, r.relationship_id) for r in recipients),
                )
            )
        return message

    def count_sent(self, sender: str, since: datetime | None, until: datetime) -> int:
        """Messages the identity sent in [since, until) (quota usage)."""
        with self._db.read() as connection:
            return self._repository.count_sent(connection, sender, since, until)

    def get(self, caller: Principal, message_id: str) -> Message:
        """Return a message as the caller may see it; a recipient's first read marks it received."""
        with self._db.read() as connection:
            message = self._repository.find_visible(connection, message_id, caller.address)
        if message is None:
            raise NotFound("Message")
        return self._received(caller, [message])[0]

    def find_many(self, caller: Principal, message_ids: Sequence[str] | None, page: Page) -> Paged:
        with self._db.read() as connection:
            paged = self._repository.find_page(connection, message_ids, caller.address, page)
        return Paged(self._received(caller, paged.items), paged.page, paged.total_records)

    def _received(self, caller: Principal, found: list[Message]) -> list[Message]:
        """Mark unread messages received by the caller, and show each as the caller may see it."""
        unread = [
            message.id
            for message in found
            if any(r.address == caller.address and r.received_at is None for r in message.recipients)
        ]
        now = self._clock.now()
        if unread:
            with self._db.transaction() as connection:
                self._repository.mark_received(connection, unread, caller.address, caller.device_id, now)
        return [self._as_seen_by(caller, message, now if message.id in unread else None) for message in found]

    def _as_seen_by(self, caller: Principal, message: Message, received_now: datetime | None) -> Message:
        if message.created_by == caller.address:
            shown = tuple(
                dataclasses.replace(r, address=self._anonymous_address) if r.decomposed_by_sender else r
                for r in message.recipients
            )
        else:
            shown = tuple(
                dataclasses.replace(r, received_at=received_now, received_by_device=caller.device_id)
                if received_now is not None and r.received_at is None
                else r
                for r in message.recipients
                if r.address == caller.address
            )
        return dataclasses.replace(message, recipients=shown)

    def overview_for(self, participant: str, incoming: bool, page: Page) -> Paged:
        """What operators see of an identity's incoming or outgoing messages (no bodies shown)."""
        with self._db.read() as connection:
            return self._repository.page_of_participant(connection, participant, incoming, page)

    def export_messages(self) -> Iterator[MessageExport]:
        """Every message, oldest first, without its body (the operators' database export)."""
        with self._db.read(streaming=True) as connection:
            yield from self._repository.export_messages(connection)

    def remove_participant(self, address: str) -> None:
        """A deleted identity's messages stay for its peers, under the anonymous address."""
        with self._db.transaction() as connection:
            self._repository.remove_participant(connection, address, self._anonymous_address)

    def decompose(self, relationship_id: str, decomposer: str) -> None:
        """Hide the messages of a relationship from the identity that decomposed it."""
        with self._db.transaction() as connection:
            self._repository.decompose(connection, relationship_id, decomposer, self._anonymous_address)
