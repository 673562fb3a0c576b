"""Identity deletion end to end: the grace period passes on the services' clock, the jobs run, the
peers hear of it, relationships are decomposed, contents leave the blob store, `IsDeleted` says
true, and housekeeping leaves no row that names the identity."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from falcon import testing

from backbone import jobs
from backbone.consumer_api import create_consumer_app
from backbone.platform.blobs import BlobStore
from backbone.platform.clock import ManualClock
from backbone.platform.db import metadata
from backbone.platform.encoding import format_datetime
from backbone.platform.push import InMemoryPushNotifier
from backbone.wiring import Services, build_services, seed
from tests.helpers.api import Account, login, onboard
from tests.helpers.files import upload_file
from tests.helpers.peers import act, relate, send_message, sync
from tests.helpers.services import settings_for_tests

PUSH_HANDLE = "a-device-push-handle-that-must-stay-secret"


@pytest.fixture
def pushed() -> InMemoryPushNotifier:
    return InMemoryPushNotifier()


@pytest.fixture
def deletion_services(
    database_url: str, tmp_path: Path, clock: ManualClock, blob_store: BlobStore, pushed: InMemoryPushNotifier
) -> Iterator[Services]:
    built = build_services(
        settings_for_tests(database_url, tmp_path), clock=clock, blobs=blob_store, push_notifier=pushed
    )
    seed(built)
    yield built
    built.close()


def register_push(account: Account) -> None:
    registered = account.put(
        "/api/v2/Devices/Self/PushNotifications",
        json={"platform": "fcm", "handle": PUSH_HANDLE, "appId": "eu.enmeshed.app"},
    )
    assert registered.status_code == 200, registered.text


def rows_naming(services: Services, *needles: str) -> list[str]:
    """`table.column` of every row whose text column contains one of the needles."""
    found = []
    with services.db.read() as connection:
        for table in metadata.sorted_tables:
            for column in table.columns:
                if not isinstance(column.type, (sa.String, sa.Text)):
                    continue
                for needle in needles:
                    statement = sa.select(sa.func.count()).where(column.contains(needle, autoescape=True))
                    if connection.execute(statement.select_from(table)).scalar_one():
                        found.append(f"{table.name}.{column.name}")
    return sorted(set(found))


def test_an_identity_is_deleted_after_its_grace_period_and_leaves_nothing_behind(
    deletion_services: Services, clock: ManualClock, pushed: InMemoryPushNotifier
) -> None:
    services = deletion_services
    api = testing.TestClient(create_consumer_app(services))
    leaving, friend, stranger, former = onboard(api), onboard(api), onboard(api), onboard(api)
    register_push(leaving)
    active_id = relate(leaving, friend)  # Active
    pending_id = relate(stranger, leaving, accept=False)  # Pending, requested by the leaving identity
    revoked_id = relate(former, leaving, accept=False)
    assert act(leaving, revoked_id, "Revoke").status_code == 200
    sync(former)
    assert send_message(leaving, friend).status_code == 201
    assert send_message(friend, leaving).status_code == 201
    file_id = upload_file(leaving, b"content that must leave the store", clock.now())["id"]
    assert services.blobs.exists(file_id)
    token = leaving.post("/api/v2/Tokens", json={"content": "AAAA", "expiresAt": "2026-03-01T00:00:00.000Z"})
    assert token.status_code == 201
    assert leaving.patch("/api/v2/Identities/Self/FeatureFlags", json={"feature": True}).status_code == 204

    named = rows_naming(services, leaving.address, leaving.username)
    expected = {
        "identities.address",
        "devices.username",
        "messages.created_by",
        "file_metadata.owner",
        "feature_flags.owner_address",
    }
    assert expected <= set(named)

    started = leaving.post("/api/v2/Identities/Self/DeletionProcesses", json={})
    assert started.status_code == 201, started.text
    assert (
        "PeerToBeDeleted",
        {"relationshipId": active_id, "deletionDate": started.json["result"]["gracePeriodEndsAt"]},
    ) in sync(friend)
    assert any(
        name == "PeerToBeDeleted" and payload["relationshipId"] == pending_id
        for name, payload in sync(stranger)
    )
    # The message from the friend woke the device up, then the deletion was announced to it.
    assert [p.name for p in pushed.sent] == [
        "ExternalEventCreated",
        "ExternalEventCreated",
        "DeletionProcessStarted",
    ]

    clock.advance(timedelta(days=2, seconds=1))  # 12 days before the end: the first reminder
    assert jobs.send_grace_period_reminders(services) == 1
    assert jobs.send_grace_period_reminders(services) == 0  # once
    assert jobs.delete_identities(services) == 0  # not yet
    assert pushed.sent[-1].name == "DeletionProcessGracePeriodReminder"
    assert pushed.sent[-1].device_id == leaving.device_id

    clock.advance(timedelta(days=12))  # the grace period of 14 days is over
    assert jobs.delete_identities(services) == 1
    assert pushed.sent[-1].name == "DeletionStarts"

    for peer in (friend, stranger):
        peer.log_in_again()
    # The original dates PeerDeleted when it is handled (the official client requires the date),
    # and the decomposition due to the deletion is a status change for the peer.
    deleted_at = format_datetime(clock.now())
    peer_deleted = ("PeerDeleted", {"relationshipId": active_id, "deletionDate": deleted_at})
    assert sync(friend) == [peer_deleted, ("RelationshipStatusChanged", {"relationshipId": active_id})]
    assert sync(stranger) == [
        ("PeerDeleted", {"relationshipId": pending_id, "deletionDate": deleted_at}),
        ("RelationshipStatusChanged", {"relationshipId": pending_id}),
    ]
    # A revoked relationship's peer hears of no deletion (neither did it of the deletion process).
    former.log_in_again()
    assert sync(former) == [("RelationshipStatusChanged", {"relationshipId": revoked_id})]
    relationship = friend.get(f"/api/v2/Relationships/{active_id}").json["result"]
    assert relationship["status"] == "DeletionProposed"
    assert relationship["auditLog"][-1]["reason"] == "DecompositionDueToIdentityDeletion"
    assert leaving.address not in (
        relationship["from"],
        relationship["to"],
        relationship["auditLog"][-1]["createdBy"],
    )
    assert friend.get("/api/v2/Messages").json["result"][0]["createdBy"] != leaving.address

    assert not services.blobs.exists(file_id)
    deleted = api.simulate_get(f"/api/v2/Identities/IsDeleted?username={leaving.username}")
    assert deleted.json["result"]["isDeleted"] is True
    assert login(api, leaving.username).status_code == 400

    clock.advance(timedelta(days=31))  # past every retention period of what the deletion produced
    jobs.housekeeping(services, orphan_settle_s=0)
    assert rows_naming(services, leaving.address, leaving.username) == []
    # What the spec keeps: the audit log (hashes only) and the relationship for the peer.
    with services.db.read() as connection:
        assert (
            connection.execute(
                sa.text("SELECT count(*) FROM identity_deletion_process_audit_log")
            ).scalar_one()
            >= 4
        )
