"""Relationships through HTTP: creation, every transition of the state machine, its errors and events."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from falcon import testing
from sqlalchemy.exc import IntegrityError

from backbone.modules.relationships.model import Relationship, RelationshipStatus
from backbone.modules.relationships.repository import RelationshipRepository
from backbone.platform.auth import Principal
from backbone.platform.clock import ManualClock
from backbone.platform.errors import DomainError
from backbone.platform.events import outbox_events
from backbone.wiring import Services
from tests.helpers.api import Account, assert_error, onboard
from tests.helpers.peers import CONTENT, act, create_template, relate, request_relationship, sync

RELATIONSHIP = "error.platform.validation.relationship."
WRONG_STATUS = RELATIONSHIP + "relationshipIsNotInCorrectStatus"


def reasons(result: testing.Result) -> list[str]:
    return [entry["reason"] for entry in result.json["result"]["auditLog"]]


def changed(relationship_id: str) -> tuple[str, dict[str, Any]]:
    return ("RelationshipStatusChanged", {"relationshipId": relationship_id})


def test_a_request_creates_a_pending_relationship_with_its_audit_log(api: testing.TestClient) -> None:
    alice, bob = onboard(api), onboard(api)
    template_id = create_template(alice)
    created = request_relationship(bob, template_id)
    assert created.status_code == 201, created.text
    result = created.json["result"]
    assert set(result) == {"id", "relationshipTemplateId", "from", "to", "createdAt", "status", "auditLog"}
    assert result["relationshipTemplateId"] == template_id
    assert (result["from"], result["to"], result["status"]) == (bob.address, alice.address, "Pending")
    assert result["auditLog"] == [
        {
            "createdAt": result["createdAt"],
            "createdBy": bob.address,
            "createdByDevice": bob.device_id,
            "reason": "Creation",
            "oldStatus": None,
            "newStatus": "Pending",
        }
    ]
    assert sync(alice) == [changed(result["id"])]
    assert sync(bob) == []

    loaded = alice.get(f"/api/v2/Relationships/{result['id']}")
    assert loaded.status_code == 200, loaded.text
    assert loaded.json["result"]["creationContent"] == CONTENT
    assert loaded.json["result"]["creationResponseContent"] is None


def test_acceptance_activates_and_tells_the_requester(api: testing.TestClient) -> None:
    alice, bob = onboard(api), onboard(api)
    relationship_id = relate(alice, bob, accept=False)
    sync(alice)
    accepted = alice.put(
        f"/api/v2/Relationships/{relationship_id}/Accept", json={"creationResponseContent": CONTENT}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json["result"]["status"] == "Active"
    assert reasons(accepted) == ["Creation", "AcceptanceOfCreation"]
    assert accepted.json["result"]["auditLog"][1]["oldStatus"] == "Pending"
    assert sync(bob) == [changed(relationship_id)]
    assert sync(alice) == []
    assert (
        bob.get(f"/api/v2/Relationships/{relationship_id}").json["result"]["creationResponseContent"]
        == CONTENT
    )


def test_only_the_addressee_accepts_or_rejects(api: testing.TestClient) -> None:
    alice, bob = onboard(api), onboard(api)
    relationship_id = relate(alice, bob, accept=False)
    for action in ("Accept", "Reject"):
        assert_error(
            act(bob, relationship_id, action),
            400,
            RELATIONSHIP + "cannotAcceptOrRejectRelationshipAddressedToSomeoneElse",
        )


def test_rejection_ends_a_request(api: testing.TestClient) -> None:
    alice, bob = onboard(api), onboard(api)
    relationship_id = relate(alice, bob, accept=False)
    rejected = act(alice, relationship_id, "Reject")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json["result"]["status"] == "Rejected"
    assert reasons(rejected)[-1] == "RejectionOfCreation"
    assert sync(bob) == [changed(relationship_id)]
    assert_error(act(alice, relationship_id, "Accept"), 400, WRONG_STATUS)


def test_only_the_requester_revokes(api: testing.TestClient) -> None:
    alice, bob = onboard(api), onboard(api)
    relationship_id = relate(alice, bob, accept=False)
    sync(alice)
    assert_error(
        act(alice, relationship_id, "Revoke"),
        400,
        RELATIONSHIP + "cannotRevokeRelationshipNotCreatedByYourself",
    )
    revoked = act(bob, relationship_id, "Revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json["result"]["status"] == "Revoked"
    assert reasons(revoked)[-1] == "RevocationOfCreation"
    assert sync(alice) == [changed(relationship_id)]
    assert_error(act(bob, relationship_id, "Revoke"), 400, WRONG_STATUS)


def test_termination_and_every_reactivation_path(api: testing.TestClient) -> None:
    alice, bob = onboard(api), onboard(api)
    relationship_id = relate(alice, bob)
    sync(alice), sync(bob)
    assert_error(act(alice, relationship_id, "Reactivate"), 400, WRONG_STATUS)

    terminated = act(alice, relationship_id, "Terminate")
    assert terminated.json["result"]["status"] == "Terminated"
    assert sync(bob) == [changed(relationship_id)]
    assert_error(act(bob, relationship_id, "Terminate"), 400, WRONG_STATUS)
    assert_error(
        act(bob, relationship_id, "Reactivate/Accept"),
        400,
        RELATIONSHIP + "noAcceptableRelationshipReactivationRequestExists",
    )
    assert_error(
        act(bob, relationship_id, "Reactivate/Reject"),
        400,
        RELATIONSHIP + "noRejectableReactivationRequestExists",
    )
    assert_error(
        act(bob, relationship_id, "Reactivate/Revoke"),
        400,
        RELATIONSHIP + "noRevocableReactivationRequestExists",
    )

    # Bob asks, then withdraws.
    requested = act(bob, relationship_id, "Reactivate")
    assert (requested.json["result"]["status"], reasons(requested)[-1]) == (
        "Terminated",
        "ReactivationRequested",
    )
    assert sync(alice) == [("RelationshipReactivationRequested", {"relationshipId": relationship_id})]
    assert_error(
        act(alice, relationship_id, "Reactivate"),
        400,
        RELATIONSHIP + "cannotRequestReactivationWhenThereIsAnOpenReactivationRequest",
    )
    assert_error(
        act(bob, relationship_id, "Reactivate/Accept"),
        400,
        RELATIONSHIP + "noAcceptableRelationshipReactivationRequestExists",
    )
    assert_error(
        act(bob, relationship_id, "Reactivate/Reject"),
        400,
        RELATIONSHIP + "noRejectableReactivationRequestExists",
    )
    assert_error(
        act(alice, relationship_id, "Reactivate/Revoke"),
        400,
        RELATIONSHIP + "noRevocableReactivationRequestExists",
    )
    revoked = act(bob, relationship_id, "Reactivate/Revoke")
    assert (revoked.json["result"]["status"], reasons(revoked)[-1]) == (
        "Terminated",
        "RevocationOfReactivation",
    )
    completed = ("RelationshipReactivationCompleted", {"relationshipId": relationship_id})
    assert sync(alice) == [completed]

    # Bob asks again, Alice refuses.
    act(bob, relationship_id, "Reactivate")
    sync(alice)
    rejected = act(alice, relationship_id, "Reactivate/Reject")
    assert (rejected.json["result"]["status"], reasons(rejected)[-1]) == (
        "Terminated",
        "RejectionOfReactivation",
    )
    assert sync(bob) == [completed]

    # Alice asks, Bob accepts: active again.
    act(alice, relationship_id, "Reactivate")
    assert sync(bob) == [("RelationshipReactivationRequested", {"relationshipId": relationship_id})]
    accepted = act(bob, relationship_id, "Reactivate/Accept")
    assert (accepted.json["result"]["status"], reasons(accepted)[-1]) == (
        "Active",
        "AcceptanceOfReactivation",
    )
    assert sync(alice) == [completed], "an accepted reactivation raises no status change"
    assert reasons(accepted) == [
        "Creation",
        "AcceptanceOfCreation",
        "Termination",
        "ReactivationRequested",
        "RevocationOfReactivation",
        "ReactivationRequested",
        "RejectionOfReactivation",
        "ReactivationRequested",
        "AcceptanceOfReactivation",
    ]


def bus_events_about(services: Services, relationship_id: str) -> list[str]:
    """The names of the events put on the bus about the relationship, in the order raised."""
    with services.db.read() as connection:
        rows = connection.execute(
            sa.select(outbox_events.c.name, outbox_events.c.payload).order_by(outbox_events.c.created_at)
        ).all()
    return [name for name, payload in rows if relationship_id in payload]


REQUESTED, COMPLETED = "RelationshipReactivationRequested", "RelationshipReactivationCompleted"
STATUS_CHANGED = "RelationshipStatusChanged"


class Pair:
    """A template's owner and the identity that requested a relationship from it; each step checks
    what the other party syncs, that the actor syncs nothing, and the events on the bus."""

    def __init__(self, api: testing.TestClient, services: Services, clock: ManualClock) -> None:
        self.owner, self.requester = onboard(api), onboard(api)
        self._services, self._clock = services, clock
        template_id = create_template(self.owner)
        self.requester.get(f"/api/v2/RelationshipTemplates/{template_id}")
        self.id = request_relationship(self.requester, template_id).json["result"]["id"]
        self._on_bus = [STATUS_CHANGED]
        assert [kind for kind, _ in sync(self.owner)] == [STATUS_CHANGED], "creation"
        assert bus_events_about(services, self.id) == self._on_bus

    def step(self, actor: Account, action: str, peer_syncs: list[str], raised: str) -> None:
        peer = self.requester if actor is self.owner else self.owner
        self._clock.advance(timedelta(seconds=1))  # the bus events are ordered by creation time
        answer = act(actor, self.id, action)
        assert answer.status_code == 200, answer.text
        assert [kind for kind, _ in sync(peer)] == peer_syncs, f"{action}: what the peer syncs"
        assert sync(actor) == [], f"{action}: the actor hears nothing of its own change"
        self._on_bus.append(raised)
        assert bus_events_about(self._services, self.id) == self._on_bus, f"{action}: the bus"


@pytest.mark.parametrize("ending", ["Reject", "Revoke"])
def test_the_end_of_a_request_raises_status_changes(
    api: testing.TestClient, services: Services, clock: ManualClock, ending: str
) -> None:
    pair = Pair(api, services, clock)
    pair.step(pair.owner if ending == "Reject" else pair.requester, ending, [STATUS_CHANGED], STATUS_CHANGED)
    pair.step(pair.owner, "Decompose", [STATUS_CHANGED], STATUS_CHANGED)
    # ReadyForDeletion: the peer left already, nobody is told.
    pair.step(pair.requester, "Decompose", [], STATUS_CHANGED)


def test_reactivations_raise_their_own_events_only(
    api: testing.TestClient, services: Services, clock: ManualClock
) -> None:
    """A reactivation request and its rejection, revocation and acceptance raise their own event,
    never a status change (accepting one makes it Active again, as the original's does)."""
    pair = Pair(api, services, clock)
    owner, requester = pair.owner, pair.requester
    pair.step(owner, "Accept", [STATUS_CHANGED], STATUS_CHANGED)
    pair.step(owner, "Terminate", [STATUS_CHANGED], STATUS_CHANGED)
    pair.step(requester, "Reactivate", [REQUESTED], REQUESTED)
    pair.step(owner, "Reactivate/Reject", [COMPLETED], COMPLETED)
    pair.step(requester, "Reactivate", [REQUESTED], REQUESTED)
    pair.step(requester, "Reactivate/Revoke", [COMPLETED], COMPLETED)
    pair.step(owner, "Reactivate", [REQUESTED], REQUESTED)
    pair.step(requester, "Reactivate/Accept", [COMPLETED], COMPLETED)
    assert requester.get(f"/api/v2/Relationships/{pair.id}").json["result"]["status"] == "Active"
    pair.step(requester, "Terminate", [STATUS_CHANGED], STATUS_CHANGED)
    pair.step(requester, "Decompose", [STATUS_CHANGED], STATUS_CHANGED)
    pair.step(owner, "Decompose", [], STATUS_CHANGED)


def test_decomposition_by_each_side(api: testing.TestClient) -> None:
    alice, bob = onboard(api), onboard(api)
    relationship_id = relate(alice, bob)
    assert_error(act(alice, relationship_id, "Decompose"), 400, WRONG_STATUS)
    act(alice, relationship_id, "Terminate")
    sync(alice)
    # Bob has not synced the termination yet; decomposing drops that undelivered event.
    decomposed = act(bob, relationship_id, "Decompose")
    assert decomposed.status_code == 200, decomposed.text
    assert (decomposed.json["result"]["status"], reasons(decomposed)[-1]) == (
        "DeletionProposed",
        "Decomposition",
    )
    assert sync(bob) == []
    assert sync(alice) == [changed(relationship_id)]
    assert_error(
        bob.get(f"/api/v2/Relationships/{relationship_id}"),
        400,
        RELATIONSHIP + "relationshipAlreadyDecomposed",
    )
    assert_error(act(bob, relationship_id, "Decompose"), 400, RELATIONSHIP + "relationshipAlreadyDecomposed")
    assert bob.get("/api/v2/Relationships", query_string=f"ids={relationship_id}").json["result"] == []

    assert (
        alice.get(f"/api/v2/Relationships/{relationship_id}").json["result"]["status"] == "DeletionProposed"
    )
    final = act(alice, relationship_id, "Decompose")
    assert final.json["result"]["status"] == "ReadyForDeletion"
    assert sync(bob) == [], "nobody hears of ReadyForDeletion"
    assert_error(
        alice.get(f"/api/v2/Relationships/{relationship_id}"),
        400,
        RELATIONSHIP + "relationshipAlreadyDecomposed",
    )

    # The pair is free again, and CanCreate says so.
    assert alice.get("/api/v2/Relationships/CanCreate", query_string=f"peer={bob.address}").json[
        "result"
    ] == {
        "canCreate": True,
        "code": None,
    }
    assert relate(alice, bob) != relationship_id


@pytest.mark.parametrize("ending", ["Reject", "Revoke"])
def test_rejected_and_revoked_relationships_can_be_decomposed(api: testing.TestClient, ending: str) -> None:
    alice, bob = onboard(api), onboard(api)
    relationship_id = relate(alice, bob, accept=False)
    act(alice if ending == "Reject" else bob, relationship_id, ending)
    assert act(alice, relationship_id, "Decompose").json["result"]["status"] == "DeletionProposed"
    assert act(bob, relationship_id, "Decompose").json["result"]["status"] == "ReadyForDeletion"


def test_can_create_reports_what_blocks_a_new_relationship(
    api: testing.TestClient, services: Services
) -> None:
    alice, bob = onboard(api), onboard(api)

    def can_create(account: Account, peer: str) -> Any:
        return account.get("/api/v2/Relationships/CanCreate", query_string=f"peer={peer}")

    assert can_create(bob, alice.address).json["result"] == {"canCreate": True, "code": None}
    relationship_id = relate(alice, bob, accept=False)
    assert can_create(bob, alice.address).json["result"] == {
        "canCreate": False,
        "code": RELATIONSHIP + "relationshipToTargetAlreadyExists",
    }
    act(alice, relationship_id, "Reject")
    _start_deletion(alice)
    assert can_create(bob, alice.address).json["result"] == {
        "canCreate": False,
        "code": RELATIONSHIP + "peerIsToBeDeleted",
    }

    unknown = "did:e:localhost:dids:" + "0" * 20
    import hashlib

    unknown += hashlib.sha256(unknown.encode()).digest()[:1].hex()
    error = assert_error(can_create(bob, unknown), 404, "error.platform.recordNotFound")
    assert "Identity not found." in error["message"]
    assert_error(can_create(bob, "not-an-address"), 400, "error.platform.validation.invalidPropertyValue")
    assert_error(
        bob.get("/api/v2/Relationships/CanCreate"), 400, "error.platform.validation.invalidPropertyValue"
    )


def _start_deletion(account: Account) -> None:
    started = account.post("/api/v2/Identities/Self/DeletionProcesses", json={})
    assert started.status_code == 201, started.text


def test_creation_errors(api: testing.TestClient, services: Services) -> None:
    alice, bob = onboard(api), onboard(api)
    own = create_template(alice)
    assert_error(request_relationship(alice, own), 400, RELATIONSHIP + "cannotCreateRelationshipWithYourself")

    relate(alice, bob, accept=False)
    second = create_template(alice)
    assert_error(request_relationship(bob, second), 400, RELATIONSHIP + "relationshipToTargetAlreadyExists")

    protected = create_template(alice, password="cGFzc3dvcmQ=")
    carol = onboard(api)
    assert_error(request_relationship(carol, protected), 404, "error.platform.recordNotFound")
    assert_error(request_relationship(carol, "RLT" + "x" * 17), 404, "error.platform.recordNotFound")
    assert_error(request_relationship(carol, "REL" + "x" * 17), 400, "error.platform.validation.invalidId")

    _start_deletion(alice)
    assert_error(request_relationship(carol, second), 400, RELATIONSHIP + "peerIsToBeDeleted")


def test_relationships_are_listed_by_id_for_their_participants_only(api: testing.TestClient) -> None:
    alice, bob, carol = onboard(api), onboard(api), onboard(api)
    first = relate(alice, bob)
    second = relate(carol, alice)
    listed = alice.get("/api/v2/Relationships", query_string=f"ids={first}&ids={second}")
    assert listed.status_code == 200, listed.text
    assert {item["id"] for item in listed.json["result"]} == {first, second}
    assert all("creationContent" in item and item["auditLog"] for item in listed.json["result"])
    assert [
        item["id"]
        for item in bob.get("/api/v2/Relationships", query_string=f"ids={first}&ids={second}").json["result"]
    ] == [first]
    assert_error(alice.get("/api/v2/Relationships"), 400, "error.platform.validation.invalidPropertyValue")
    assert_error(carol.get(f"/api/v2/Relationships/{first}"), 404, "error.platform.recordNotFound")
    assert_error(
        carol.put(f"/api/v2/Relationships/{first}/Terminate", json={}), 404, "error.platform.recordNotFound"
    )


def test_the_database_allows_one_blocking_relationship_per_pair(services: Services) -> None:
    """Even a writer that skips the service's check cannot add a second one, in either direction."""
    repository = RelationshipRepository(services.db)
    now = services.clock.now()

    def relationship(
        relationship_id: str, from_address: str, to_address: str, status: RelationshipStatus
    ) -> Relationship:
        return Relationship(
            relationship_id, None, from_address, to_address, now, status, False, False, None, None, ()
        )

    with services.db.transaction() as connection:
        repository.add(
            connection, relationship("REL00000000000000001", "did:a", "did:b", RelationshipStatus.Rejected)
        )
        repository.add(
            connection, relationship("REL00000000000000002", "did:a", "did:b", RelationshipStatus.Active)
        )
    with pytest.raises(DomainError) as refused, services.db.transaction() as connection:
        repository.add(
            connection, relationship("REL00000000000000003", "did:b", "did:a", RelationshipStatus.Pending)
        )
    # The repository only translates the database's refusal into the service's error.
    assert refused.value.code == RELATIONSHIP + "relationshipToTargetAlreadyExists"
    assert isinstance(refused.value.__context__, IntegrityError)


def test_concurrent_requests_for_one_pair_create_one_relationship(
    api: testing.TestClient, services: Services
) -> None:
    alice, bob = onboard(api), onboard(api)
    templates = [create_template(alice), create_template(alice)]
    for template_id in templates:
        assert bob.get(f"/api/v2/RelationshipTemplates/{template_id}").status_code == 200
    caller = Principal(bob.address, bob.device_id, bob.username, "test")
    barrier = threading.Barrier(len(templates))
    outcomes: list[str] = []

    def request(template_id: str) -> None:
        barrier.wait()
        try:
            services.relationships.create(caller, template_id, None)
            outcomes.append("created")
        except DomainError as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=request, args=(template_id,)) for template_id in templates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created", RELATIONSHIP + "relationshipToTargetAlreadyExists"]
    with services.db.read() as connection:
        count = connection.execute(sa.text("SELECT count(*) FROM relationships")).scalar_one()
    assert count == 1
