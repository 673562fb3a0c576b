"""Use cases of relationship templates and relationships."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from backbone.modules.relationships import model
from backbone.modules.relationships.events import (
    PeerDeleted,
    PeerDeletionCancelled,
    PeerFeatureFlagsChanged,
    PeerToBeDeleted,
    RelationshipReactivationCompleted,
    RelationshipReactivationRequested,
    RelationshipStatusChanged,
    RelationshipTemplateAllocationsExhausted,
    RelationshipTemplateCreated,
)
from backbone.modules.relationships.model import (
    FEATURE_FLAGS_NOTIFIED_STATUSES,
    PEER_NOTIFIED_STATUSES,
    Actor,
    AuditLogEntry,
    AuditLogReason,
    NewTemplate,
    Relationship,
    RelationshipExport,
    RelationshipStatus,
    RelationshipTemplate,
    TemplateQueryItem,
    Transition,
)
from backbone.modules.relationships.repository import RelationshipRepository
from backbone.platform.auth import Principal
from backbone.platform.clock import Clock
from backbone.platform.db import Connection, Database, Page, Paged
from backbone.platform.errors import CheckQuota, DomainError, Forbidden, NotFound, no_quota_check
from backbone.platform.events import Outbox
from backbone.platform.ids import Ids

# Tells whether an identity is Active; None when no identity has that address.
IdentityIsActive = Callable[[str], bool | None]

_REACTIVATION_ANSWERS = frozenset(
    {
        AuditLogReason.AcceptanceOfReactivation,
        AuditLogReason.RejectionOfReactivation,
        AuditLogReason.RevocationOfReactivation,
    }
)


class RelationshipTemplateService:
    def __init__(
        self,
        db: Database,
        repository: RelationshipRepository,
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

    def create(self, caller: Principal, new: NewTemplate) -> RelationshipTemplate:
        now = self._clock.now()
        if new.expires_at is not None and new.expires_at <= now:
            raise DomainError(
                "error.platform.validation.invalidPropertyValue", "'expiresAt' must be in the future."
            )
        self._check_quota(caller.address, ("NumberOfRelationshipTemplates",))
        template = RelationshipTemplate(
            id=self._ids.new("RLT"),
            created_at=now,
            created_by=caller.address,
            created_by_device=caller.device_id,
            max_number_of_allocations=new.max_number_of_allocations,
            expires_at=new.expires_at,
            for_identity=new.for_identity,
            password=new.password,
            content=new.content,
        )
        with self._db.transaction() as connection:
            self._repository.add_template(connection, template)
            self._outbox.add(RelationshipTemplateCreated(template_id=template.id, created_by=caller.address))
        return template

    def count_created(self, address: str, since: datetime | None, until: datetime) -> int:
        """Templates the identity created in [since, until) (quota usage)."""
        with self._db.read() as connection:
            return self._repository.count_templates_created(connection, address, since, until)

    def get(self, caller: Principal, template_id: str, password: bytes | None) -> RelationshipTemplate:
        """Return a template the caller may see, allocating it for the caller on first access."""
        with self._db.transaction() as connection:
            return self.collect(connection, caller, template_id, password)

    def collect(
        self, connection: Connection, caller: Principal, template_id: str, password: bytes | None
    ) -> RelationshipTemplate:
        """Check access to a template and allocate it, inside the caller's transaction."""
        template = self._repository.find_template(connection, template_id, lock=True)
        if template is None:
            raise NotFound("RelationshipTemplate")
        if template.created_by == caller.address:
            return template
        allocated = bool(self._repository.allocated_by(connection, [template.id], caller.address))
        used = bool(self._repository.used_templates(connection, [template.id], caller.address))
        if not self._visible(template, caller.address, password, allocated=allocated, used=used):
            raise NotFound("RelationshipTemplate")
        if not allocated:
            self._allocate(connection, caller, template)
        return template

    def _allocate(self, connection: Connection, caller: Principal, template: RelationshipTemplate) -> None:
        maximum = template.max_number_of_allocations
        count = self._repository.count_allocations(connection, template.id) if maximum is not None else 0
        if maximum is not None and count >= maximum:
            raise model.max_number_of_allocations_exhausted()
        self._repository.add_allocation(
            connection, template.id, caller.address, caller.device_id, self._clock.now()
        )
        if maximum is not None and count + 1 == maximum:
            self._outbox.add(
                RelationshipTemplateAllocationsExhausted(
                    relationship_template_id=template.id, created_by=template.created_by
                )
            )

    def _visible(
        self,
        template: RelationshipTemplate,
        address: str,
        password: bytes | None,
        *,
        allocated: bool,
        used: bool,
    ) -> bool:
        is_creator = template.created_by == address
        if template.is_expired(self._clock.now()) and not used:
            return False
        if template.for_identity is not None and template.for_identity != address and not is_creator:
            return False
        if template.password is None or is_creator or allocated:
            return True
        return password is not None and hmac.compare_digest(password, template.password)

    def find_many(self, caller: Principal, items: Sequence[TemplateQueryItem], page: Page) -> Paged:
        """Return the listed templates the caller may see, without allocating them."""
        passwords = {item.id: item.password for item in items}
        with self._db.read() as connection:
            templates = self._repository.find_templates(connection, list(passwords))
            ids = [template.id for template in templates]
            allocated = self._repository.allocated_by(connection, ids, caller.address)
            used = self._repository.used_templates(connection, ids, caller.address)
        visible = [
            template
            for template in templates
            if template.created_by == caller.address
            or self._visible(
                template,
                caller.address,
                passwords.get(template.id),
                allocated=template.id in allocated,
                used=template.id in used,
            )
        ]
        return Paged(visible[page.offset : page.offset + page.size], page, len(visible))

    def delete(self, caller: Principal, template_id: str) -> None:
        with self._db.transaction() as connection:
            template = self._repository.find_template(connection, template_id, lock=True)
            if template is None:
                raise NotFound("RelationshipTemplate")
            if template.created_by != caller.address:
                raise Forbidden()
            self._repository.delete_template(connection, template_id)


class RelationshipService:
    def __init__(
        self,
        db: Database,
        repository: RelationshipRepository,
        templates: RelationshipTemplateService,
        outbox: Outbox,
        clock: Clock,
        ids: Ids,
        *,
        identity_is_active: IdentityIsActive,
        check_quota: CheckQuota = no_quota_check,
    ) -> None:
        self._check_quota = check_quota
        self._db = db
        self._repository = repository
        self._templates = templates
        self._outbox = outbox
        self._clock = clock
        self._ids = ids
        self._identity_is_active = identity_is_active

    def create(self, caller: Principal, template_id: str, creation_content: bytes | None) -> Relationship:
        """Request a relationship with the creator of a template."""
        self._check_quota(caller.address, ("NumberOfRelationships",))
        with self._db.transaction() as connection:
            template = self._templates.collect(connection, caller, template_id, None)
            if self._identity_is_active(template.created_by) is not True:
                raise model.peer_is_to_be_deleted()
            if template.created_by == caller.address:
                raise model.cannot_create_relationship_with_yourself()
            if self._repository.blocking_exists(connection, caller.address, template.created_by):
                raise model.relationship_to_target_already_exists()
            now = self._clock.now()
            relationship = Relationship(
                id=self._ids.new("REL"),
                relationship_template_id=template.id,
                from_address=caller.address,
                to_address=template.created_by,
                created_at=now,
                status=RelationshipStatus.Pending,
                from_has_decomposed=False,
                to_has_decomposed=False,
                creation_content=creation_content,
                creation_response_content=None,
                audit_log=(
                    AuditLogEntry(
                        id=self._ids.new("RAL"),
                        created_at=now,
                        created_by=caller.address,
                        created_by_device=caller.device_id,
                        reason=AuditLogReason.Creation,
                        old_status=None,
                        new_status=RelationshipStatus.Pending,
                    ),
                ),
            )
            self._repository.add(connection, relationship)
            self._outbox.add(
                RelationshipStatusChanged(
                    relationship_id=relationship.id,
                    new_status=RelationshipStatus.Pending.name,
                    initiator=caller.address,
                    peer=template.created_by,
                )
            )
        return relationship

    def count_for_quota(self, address: str, since: datetime | None, until: datetime) -> int:
        """Relationships created in [since, until) that count against the identity's quota."""
        with self._db.read() as connection:
            return self._repository.count_for_quota(connection, address, since, until)

    def can_create(self, caller: Principal, peer: str) -> str | None:
        """Return why no relationship to the peer can be created, or None if one can."""
        active = self._identity_is_active(peer)
        if active is None:
            raise NotFound("Identity")
        with self._db.read() as connection:
            if self._repository.blocking_exists(connection, caller.address, peer):
                return model.relationship_to_target_already_exists().code
        if not active:
            return model.peer_is_to_be_deleted().code
        return None

    def get(self, caller: Principal, relationship_id: str) -> Relationship:
        with self._db.read() as connection:
            return self._find_for(connection, caller, relationship_id)

    def find_many(self, caller: Principal, relationship_ids: Sequence[str], page: Page) -> Paged:
        with self._db.read() as connection:
            return self._repository.find_page(connection, relationship_ids, caller.address, page)

    def _find_for(
        self, connection: Connection, caller: Principal, relationship_id: str, *, lock: bool = False
    ) -> Relationship:
        relationship = self._repository.find(connection, relationship_id, lock=lock)
        if relationship is None or not relationship.is_participant(caller.address):
            raise NotFound("Relationship")
        if relationship.has_decomposed(caller.address):
            raise model.relationship_already_decomposed()
        return relationship

    # --- the state machine ----------------------------------------------------------------

    def accept(self, caller: Principal, relationship_id: str, response: bytes | None) -> Relationship:
        self._check_quota(caller.address, ("NumberOfRelationships",))
        return self._change(caller, relationship_id, lambda r, a, e: model.accept(r, a, e, response))

    def reject(self, caller: Principal, relationship_id: str, response: bytes | None) -> Relationship:
        return self._change(caller, relationship_id, lambda r, a, e: model.reject(r, a, e, response))

    def revoke(self, caller: Principal, relationship_id: str, response: bytes | None) -> Relationship:
        return self._change(caller, relationship_id, lambda r, a, e: model.revoke(r, a, e, response))

    def terminate(self, caller: Principal, relationship_id: str) -> Relationship:
        return self._change(caller, relationship_id, model.terminate)

    def request_reactivation(self, caller: Principal, relationship_id: str) -> Relationship:
        return self._change(caller, relationship_id, model.request_reactivation)

    def accept_reactivation(self, caller: Principal, relationship_id: str) -> Relationship:
        return self._change(caller, relationship_id, model.accept_reactivation)

    def reject_reactivation(self, caller: Principal, relationship_id: str) -> Relationship:
        return self._change(caller, relationship_id, model.reject_reactivation)

    def revoke_reactivation(self, caller: Principal, relationship_id: str) -> Relationship:
        return self._change(caller, relationship_id, model.revoke_reactivation)

    def decompose(self, caller: Principal, relationship_id: str) -> Relationship:
        return self._change(caller, relationship_id, model.decompose)

    def _change(
        self,
        caller: Principal,
        relationship_id: str,
        transition: Callable[[Relationship, Actor, str], Transition],
    ) -> Relationship:
        with self._db.transaction() as connection:
            relationship = self._find_for(connection, caller, relationship_id, lock=True)
            actor = Actor(caller.address, caller.device_id, self._clock.now())
            changed = transition(relationship, actor, self._ids.new("RAL"))
            self._repository.update(connection, changed.relationship, changed.entry)
            self._publish(changed, caller.address, relationship.peer_of(caller.address))
        return changed.relationship

    def _publish(self, changed: Transition, initiator: str, peer: str) -> None:
        """Raise what the original's relationship raises: a reactivation request and its answers
        raise their own events only (accepting one changes the status, yet raises no status
        change); every other transition raises the status change."""
        reason = changed.entry.reason
        relationship_id = changed.relationship.id
        if reason is AuditLogReason.ReactivationRequested:
            self._outbox.add(
                RelationshipReactivationRequested(
                    relationship_id=relationship_id, requesting_identity=initiator, peer=peer
                )
            )
        elif reason in _REACTIVATION_ANSWERS:
            self._outbox.add(
                RelationshipReactivationCompleted(
                    relationship_id=relationship_id,
                    new_relationship_status=changed.entry.new_status.name,
                    peer=peer,
                )
            )
        else:
            self._outbox.add(
                RelationshipStatusChanged(
                    relationship_id=relationship_id,
                    new_status=changed.entry.new_status.name,
                    initiator=initiator,
                    peer=peer,
                )
            )

    # --- for other modules ----------------------------------------------------------------

    def export_relationships(self) -> Iterator[RelationshipExport]:
        """Every relationship, oldest first, without contents (the operators' database export)."""
        with self._db.read(streaming=True) as connection:
            yield from self._repository.export_relationships(connection)

    def overview_for(self, participant: str, page: Page) -> Paged:
        """An identity's relationships as operators see them (including decomposed ones)."""
        with self._db.read() as connection:
            return self._repository.page_of_participant(connection, participant, page)

    def youngest_between(self, first: str, second: str) -> tuple[str, str] | None:
        """The id and status name of the newest relationship between two identities."""
        with self._db.read() as connection:
            found = self._repository.youngest_between(connection, first, second)
        return None if found is None else (found[0], found[1].name)

    def notify_peers_of_deletion(self, address: str, grace_period_ends_at: datetime) -> None:
        """Tell every peer of an identity that is to be deleted, once per relationship."""
        with self._db.transaction() as connection:
            for relationship_id, peer in self._repository.peers_of(
                connection, address, PEER_NOTIFIED_STATUSES
            ):
                self._outbox.add(
                    PeerToBeDeleted(
                        peer_of_identity_to_be_deleted=peer,
                        relationship_id=relationship_id,
                        identity_to_be_deleted=address,
                        grace_period_ends_at=grace_period_ends_at,
                    )
                )

    def knows(self, caller: str, address: str) -> bool:
        """Whether the caller knows the identity: a relationship between them (in any status), or
        an allocation of one of its templates (what the identity shows its peers, they may see)."""
        with self._db.read() as connection:
            related = self._repository.youngest_between(connection, caller, address) is not None
            return related or self._repository.has_allocated_template_of(connection, caller, address)

    def notify_peers_of_changed_feature_flags(self, address: str) -> None:
        """Tell the peers of Pending and Active relationships and whoever allocated one of the
        identity's templates, once each."""
        with self._db.transaction() as connection:
            related = self._repository.peers_of(connection, address, FEATURE_FLAGS_NOTIFIED_STATUSES)
            peers = {peer for _, peer in related} | self._repository.allocators_of_templates_of(
                connection, address
            )
            for peer in sorted(peers):
                self._outbox.add(
                    PeerFeatureFlagsChanged(peer_address=address, notified_identity_address=peer)
                )

    def notify_peers_of_cancelled_deletion(self, address: str) -> None:
        """Tell the same peers that the identity is no longer to be deleted."""
        with self._db.transaction() as connection:
            for relationship_id, peer in self._repository.peers_of(
                connection, address, PEER_NOTIFIED_STATUSES
            ):
                self._outbox.add(
                    PeerDeletionCancelled(
                        peer_of_identity_with_deletion_cancelled=peer,
                        relationship_id=relationship_id,
                        identity_with_deletion_cancelled=address,
                    )
                )

    def remove_identity(self, address: str, anonymous_address: str) -> None:
        """A deleted identity leaves: peers of Pending, Active and Terminated relationships get
        PeerDeleted, its side of every relationship is decomposed, its address is replaced by the
        anonymous one, its templates go."""
        now = self._clock.now()
        with self._db.transaction() as connection:
            for relationship_id, peer in self._repository.peers_of(
                connection, address, tuple(RelationshipStatus)
            ):
                relationship = self._repository.find(connection, relationship_id, lock=True)
                if relationship is None or relationship.has_decomposed(address):
                    continue
                if relationship.status in PEER_NOTIFIED_STATUSES:
                    self._outbox.add(
                        PeerDeleted(
                            peer_of_deleted_identity=peer,
                            relationship_id=relationship_id,
                            deleted_identity=address,
                        )
                    )
                actor = Actor(address, None, now)
                changed = model.decompose_due_to_identity_deletion(relationship, actor, self._ids.new("RAL"))
                self._repository.update(connection, changed.relationship, changed.entry)
                self._outbox.add(
                    RelationshipStatusChanged(
                        relationship_id=relationship_id,
                        new_status=changed.entry.new_status.name,
                        initiator=address,
                        peer=peer,
                        was_due_to_identity_deletion=True,
                    )
                )
            self._repository.anonymise(connection, address, anonymous_address)
            self._repository.delete_templates_of(connection, address)

    def delete_ready_for_deletion(self, older_than: datetime) -> int:
        """Housekeeping: remove relationships both sides left before `older_than`."""
        with self._db.transaction() as connection:
            return self._repository.delete_ready_for_deletion(connection, older_than)

    def delete_expired_unused_templates(self, expired_before: datetime) -> int:
        """Housekeeping: remove templates expired before the date that no relationship uses."""
        with self._db.transaction() as connection:
            return self._repository.delete_expired_unused_templates(connection, expired_before)

    def participants_of(self, relationship_id: str) -> tuple[str, str] | None:
        """The two addresses of a relationship (from, to), or None if it does not exist."""
        with self._db.read() as connection:
            relationship = self._repository.find(connection, relationship_id)
        return None if relationship is None else (relationship.from_address, relationship.to_address)

    def status_of(self, relationship_id: str) -> str | None:
        """The status name of a relationship, or None if it does not exist."""
        with self._db.read() as connection:
            status = self._repository.status_of(connection, relationship_id)
        return None if status is None else status.name
