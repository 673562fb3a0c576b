"""Identity deletion processes through HTTP: start, list, get, cancel, and what peers see (spec §4.2)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from falcon import testing

from backbone.modules.tiers.model import QUEUED_FOR_DELETION_TIER_ID
from backbone.platform.encoding import format_datetime
from backbone.wiring import Services
from tests.helpers.api import DWV, Account, assert_error, login, onboard
from tests.helpers.peers import act, relate, sync

PROCESSES = "/api/v2/Identities/Self/DeletionProcesses"
DEVICE = "error.platform.validation.device."
PROCESS_FIELDS = {
    "id",
    "status",
    "createdAt",
    "createdByDevice",
    "approvedAt",
    "approvedByDevice",
    "gracePeriodEndsAt",
    "gracePeriodReminder1SentAt",
    "gracePeriodReminder2SentAt",
    "gracePeriodReminder3SentAt",
}


def start(account: Account, **body: Any) -> testing.Result:
    return account.post(PROCESSES, json=body)


def started(account: Account, **body: Any) -> dict[str, Any]:
    result = start(account, **body)
    assert result.status_code == 201, result.text
    process: dict[str, Any] = result.json["result"]
    return process


def cancel(account: Account, process_id: str) -> testing.Result:
    return account.put(f"{PROCESSES}/{process_id}/Cancel")


def identity(account: Account) -> dict[str, Any]:
    result: dict[str, Any] = account.get("/api/v2/Identities/Self").json["result"]
    return result


def test_starting_queues_the_identity_for_deletion(api: testing.TestClient, services: Services) -> None:
    alice = onboard(api)
    tier_before = identity(alice)["tierId"]
    now = services.clock.now()
    process = started(alice)

    assert process.keys() == PROCESS_FIELDS
    assert process["id"].startswith("IDP")
    assert process["status"] == "Active"
    assert process["createdAt"] == process["approvedAt"] == format_datetime(now)
    assert process["createdByDevice"] == process["approvedByDevice"] == alice.device_id
    assert process["gracePeriodEndsAt"] == format_datetime(now + timedelta(days=14))
    assert process["gracePeriodReminder1SentAt"] is None

    me = identity(alice)
    assert me["status"] == "ToBeDeleted"
    assert me["tierId"] == QUEUED_FOR_DELETION_TIER_ID != tier_before
    assert me["deletionGracePeriodEndsAt"] == process["gracePeriodEndsAt"]
    assert alice.get(PROCESSES).json["result"] == [process]
    assert alice.get(f"{PROCESSES}/{process['id']}").json["result"] == process
    assert services.deletion_processes.audit_log(alice.address) == [("StartedByOwner", None, 1)]

    assert_error(start(alice), 400, DEVICE + "onlyOneActiveDeletionProcessAllowed")
    assert len(alice.get(PROCESSES).json["result"]) == 1


def test_the_grace_period_can_be_chosen(api: testing.TestClient, services: Services) -> None:
    alice, bob = onboard(api), onboard(api)
    process = started(alice, lengthOfGracePeriodInDays=3)
    assert process["gracePeriodEndsAt"] == format_datetime(services.clock.now() + timedelta(days=3))
    for bad in (-1, 3651):
        assert_error(
            start(bob, lengthOfGracePeriodInDays=bad), 400, "error.platform.validation.invalidPropertyValue"
        )
    assert_error(start(bob, lengthOfGracePeriodInDays="3"), 400, "error.platform.inputCannotBeParsed")
    assert bob.get(PROCESSES).json["result"] == []


def test_cancelling_restores_the_identity(api: testing.TestClient, services: Services) -> None:
    alice = onboard(api)
    tier_before = identity(alice)["tierId"]
    process = started(alice)
    services.clock.advance(timedelta(days=1))
    alice.log_in_again()

    cancelled = cancel(alice, process["id"])
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json["result"] == {**process, "status": "Cancelled"}
    me = identity(alice)
    assert (me["status"], me["tierId"], me["deletionGracePeriodEndsAt"]) == ("Active", tier_before, None)
    assert services.deletion_processes.audit_log(alice.address) == [
        ("StartedByOwner", None, 1),
        ("CancelledByOwner", 1, 2),
    ]
    assert_error(cancel(alice, process["id"]), 400, DEVICE + "deletionProcessIsNotInRequiredStatus")

    # A cancelled process does not block a new one.
    again = started(alice)
    assert [item["status"] for item in alice.get(PROCESSES).json["result"]] == ["Cancelled", "Active"]
    assert again["id"] != process["id"]


def test_after_the_grace_period_the_identity_is_deleted_for_good(
    api: testing.TestClient, services: Services
) -> None:
    alice = onboard(api)
    process = started(alice, lengthOfGracePeriodInDays=1)
    is_deleted = api.simulate_get("/api/v2/Identities/IsDeleted", query_string=f"username={alice.username}")
    assert is_deleted.json["result"] == {"isDeleted": False, "deletionDate": None}

    services.clock.advance(timedelta(days=1, seconds=1))
    is_deleted = api.simulate_get("/api/v2/Identities/IsDeleted", query_string=f"username={alice.username}")
    assert is_deleted.json["result"] == {"isDeleted": True, "deletionDate": process["gracePeriodEndsAt"]}
    assert login(api, alice.username).json["error"] == "invalid_grant"


def test_a_process_cannot_be_cancelled_once_its_grace_period_is_over(
    api: testing.TestClient, services: Services
) -> None:
    alice = onboard(api)
    process = started(alice, lengthOfGracePeriodInDays=0)
    assert_error(cancel(alice, process["id"]), 400, DEVICE + "gracePeriodHasAlreadyExpired")


def test_unknown_malformed_and_foreign_processes(api: testing.TestClient) -> None:
    alice, bob = onboard(api), onboard(api)
    foreign = started(bob)["id"]
    for process_id in ("IDP" + "x" * 17, foreign):
        assert_error(alice.get(f"{PROCESSES}/{process_id}"), 404, "error.platform.recordNotFound")
        assert_error(cancel(alice, process_id), 404, "error.platform.recordNotFound")
    assert_error(alice.get(f"{PROCESSES}/REL{'x' * 17}"), 400, "error.platform.validation.invalidId")
    assert_error(cancel(alice, "not-an-id"), 400, "error.platform.validation.invalidId")


def test_peers_hear_of_the_deletion_and_of_its_cancellation(
    api: testing.TestClient, services: Services
) -> None:
    alice, bob, carol, dave = onboard(api), onboard(api), onboard(api), onboard(api)
    active = relate(alice, bob)
    pending = relate(carol, alice, accept=False)
    rejected = relate(alice, dave, accept=False)
    act(alice, rejected, "Reject")
    for account in (alice, bob, carol, dave):
        sync(account)

    process = started(alice)
    deletion_date = process["gracePeriodEndsAt"]
    assert sync(bob) == [("PeerToBeDeleted", {"relationshipId": active, "deletionDate": deletion_date})]
    assert sync(carol) == [("PeerToBeDeleted", {"relationshipId": pending, "deletionDate": deletion_date})]
    assert sync(dave) == []

    cancel(alice, process["id"])
    assert sync(bob) == [("PeerDeletionCancelled", {"relationshipId": active})]
    assert sync(carol) == [("PeerDeletionCancelled", {"relationshipId": pending})]
    assert sync(dave) == []


@pytest.mark.parametrize("run_type", ["ExternalEventSync", "DatawalletVersionUpgrade"])
def test_no_sync_run_starts_while_the_identity_is_to_be_deleted(
    api: testing.TestClient, run_type: str
) -> None:
    alice, bob = onboard(api), onboard(api)
    relate(alice, bob)
    process = started(alice)
    assert_error(
        alice.post("/api/v2/SyncRuns", json={"type": run_type}, headers=DWV),
        400,
        "error.platform.validation.syncRun.cannotStartSyncRunWhileIdentityIsToBeDeleted",
    )
    cancel(alice, process["id"])
    resumed = alice.post("/api/v2/SyncRuns", json={"type": run_type}, headers=DWV)
    assert resumed.status_code in (200, 201), resumed.text


def test_no_relationship_starts_with_an_identity_that_is_to_be_deleted(api: testing.TestClient) -> None:
    from tests.helpers.peers import create_template, request_relationship

    alice, bob = onboard(api), onboard(api)
    template = create_template(alice)
    assert bob.get(f"/api/v2/RelationshipTemplates/{template}").status_code == 200
    process = started(alice)

    code = "error.platform.validation.relationship.peerIsToBeDeleted"
    can_create = bob.get("/api/v2/Relationships/CanCreate", query_string=f"peer={alice.address}")
    assert can_create.json["result"] == {"canCreate": False, "code": code}
    assert_error(request_relationship(bob, template), 400, code)

    cancel(alice, process["id"])
    assert bob.get("/api/v2/Relationships/CanCreate", query_string=f"peer={alice.address}").json[
        "result"
    ] == {
        "canCreate": True,
        "code": None,
    }
    assert request_relationship(bob, template).status_code == 201
