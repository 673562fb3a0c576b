"""Messages through HTTP: sending rules, what each side sees, receipts, delivery-blocked events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from falcon import testing

from backbone.consumer_api import create_consumer_app
from backbone.modules.synchronization.repository import external_events
from backbone.platform.clock import ManualClock
from backbone.platform.encoding import b64url
from backbone.wiring import Services, build_services, seed
from tests.helpers.api import assert_error, onboard
from tests.helpers.peers import BODY, ENCRYPTED_KEY, act, relate, send_message, sync

MESSAGE = "error.platform.validation.message."
INVALID = "error.platform.validation.invalidPropertyValue"


@pytest.fixture
def limited(database_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[testing.TestClient]:
    """A backbone that allows two recipients and two unreceived messages per sender."""
    from tests.helpers.services import settings_for_tests

    settings = settings_for_tests(
        database_url, tmp_path, max_message_recipients=2, max_unreceived_messages_from_one_sender=2
    )
    built = build_services(settings, clock=clock)
    seed(built)
    yield testing.TestClient(create_consumer_app(built))
    built.close()


def received(message_id: str) -> tuple[str, dict[str, str]]:
    return ("MessageReceived", {"id": message_id})


def test_a_message_reaches_its_recipients_who_see_only_themselves(api: testing.TestClient) -> None:
    alice, bob, carol = onboard(api), onboard(api), onboard(api)
    relate(alice, bob), relate(alice, carol)
    sync(bob), sync(carol)
    sent = send_message(alice, bob, carol, attachments=[{"id": "FIL" + "a" * 17}])
    assert sent.status_code == 201, sent.text
    assert set(sent.json["result"]) == {"id", "createdAt"}
    message_id = sent.json["result"]["id"]
    assert message_id.startswith("MSG")
    assert sync(bob) == [received(message_id)]

    as_sender = alice.get(f"/api/v2/Messages/{message_id}").json["result"]
    assert [r["address"] for r in as_sender["recipients"]] == [bob.address, carol.address]
    assert all(r["receivedAt"] is None for r in as_sender["recipients"])

    read = bob.get(f"/api/v2/Messages/{message_id}")
    assert read.status_code == 200, read.text
    as_bob = read.json["result"]
    assert set(as_bob) == {
        "id",
        "createdAt",
        "createdBy",
        "createdByDevice",
        "body",
        "attachments",
        "recipients",
    }
    assert (as_bob["createdBy"], as_bob["createdByDevice"], as_bob["body"]) == (
        alice.address,
        alice.device_id,
        BODY,
    )
    assert as_bob["attachments"] == [{"id": "FIL" + "a" * 17}]
    [bob_entry] = as_bob["recipients"]
    assert (bob_entry["address"], bob_entry["encryptedKey"]) == (bob.address, ENCRYPTED_KEY)
    assert bob_entry["receivedAt"] is not None
    assert bob_entry["receivedByDevice"] == bob.device_id
    assert bob.get(f"/api/v2/Messages/{message_id}").json["result"]["recipients"] == [bob_entry], (
        "first read counts"
    )

    receipts = {
        r["address"]: r["receivedAt"]
        for r in alice.get(f"/api/v2/Messages/{message_id}").json["result"]["recipients"]
    }
    assert receipts == {bob.address: bob_entry["receivedAt"], carol.address: None}

    listed = carol.get("/api/v2/Messages", query_string=f"ids={message_id}")
    assert listed.status_code == 200, listed.text
    [as_carol] = listed.json["result"]
    assert [r["address"] for r in as_carol["recipients"]] == [carol.address]
    assert as_carol["recipients"][0]["receivedAt"] is not None, "listing marks received too"
    assert [m["id"] for m in alice.get("/api/v2/Messages").json["result"]] == [message_id]


def test_only_participants_see_a_message(api: testing.TestClient) -> None:
    alice, bob, mallory = onboard(api), onboard(api), onboard(api)
    relate(alice, bob)
    message_id = send_message(alice, bob).json["result"]["id"]
    assert_error(mallory.get(f"/api/v2/Messages/{message_id}"), 404, "error.platform.recordNotFound")
    assert mallory.get("/api/v2/Messages", query_string=f"ids={message_id}").json["result"] == []
    assert_error(mallory.get("/api/v2/Messages/MSG00000000000000000"), 404, "error.platform.recordNotFound")
    assert_error(
        mallory.get("/api/v2/Messages/REL00000000000000000"), 400, "error.platform.validation.invalidId"
    )


def test_a_message_needs_a_sendable_relationship_to_every_recipient(api: testing.TestClient) -> None:
    alice, bob, carol = onboard(api), onboard(api), onboard(api)
    assert_error(send_message(alice, bob), 400, MESSAGE + "noRelationshipToRecipientExists")
    assert_error(send_message(alice, alice), 400, MESSAGE + "noRelationshipToRecipientExists")
    relationship_id = relate(alice, bob, accept=False)
    act(alice, relationship_id, "Reject")
    assert_error(send_message(alice, bob), 400, MESSAGE + "relationshipToRecipientNotActive")
    relate(alice, carol)
    assert_error(send_message(alice, carol, bob), 400, MESSAGE + "relationshipToRecipientNotActive")


def test_messages_wait_while_the_relationship_is_pending_and_arrive_on_acceptance(
    api: testing.TestClient,
) -> None:
    alice, bob = onboard(api), onboard(api)
    relationship_id = relate(alice, bob, accept=False)
    message_id = send_message(bob, alice).json["result"]["id"]
    assert sync(alice) == [("RelationshipStatusChanged", {"relationshipId": relationship_id})]
    act(alice, relationship_id, "Accept")
    assert sync(alice) == [received(message_id)]


@pytest.mark.parametrize("ending", ["Reject", "Revoke"])
def test_waiting_messages_are_dropped_when_the_request_ends(
    api: testing.TestClient, services: Services, ending: str
) -> None:
    alice, bob = onboard(api), onboard(api)
    relationship_id = relate(alice, bob, accept=False)
    send_message(bob, alice)
    act(alice if ending == "Reject" else bob, relationship_id, ending)
    assert "MessageReceived" not in [kind for kind, _ in sync(alice)]
    with services.db.read() as connection:
        count = connection.execute(
            sa.select(sa.func.count()).where(
                external_events.c.context == relationship_id, external_events.c.type == 0
            )
        ).scalar_one()
    assert count == 0


def test_messages_wait_while_terminated_and_arrive_on_reactivation(api: testing.TestClient) -> None:
    alice, bob = onboard(api), onboard(api)
    relationship_id = relate(alice, bob)
    act(alice, relationship_id, "Terminate")
    sync(bob)
    message_id = send_message(alice, bob).json["result"]["id"]
    act(alice, relationship_id, "Reactivate")
    assert sync(bob) == [("RelationshipReactivationRequested", {"relationshipId": relationship_id})]
    act(bob, relationship_id, "Reactivate/Accept")
    assert sync(bob) == [received(message_id)]


def test_decomposition_hides_messages_from_the_side_that_decomposed(api: testing.TestClient) -> None:
    alice, bob, carol = onboard(api), onboard(api), onboard(api)
    relationship_id = relate(alice, bob)
    relate(alice, carol)
    to_both = send_message(alice, bob, carol).json["result"]["id"]
    to_alice = send_message(bob, alice).json["result"]["id"]
    act(alice, relationship_id, "Terminate")
    act(alice, relationship_id, "Decompose")
    assert_error(alice.get(f"/api/v2/Messages/{to_alice}"), 404, "error.platform.recordNotFound")
    assert [m["id"] for m in alice.get("/api/v2/Messages").json["result"]] == [to_both], "still sent to carol"
    shown = [r["address"] for r in alice.get(f"/api/v2/Messages/{to_both}").json["result"]["recipients"]]
    assert shown[1] == carol.address
    assert shown[0] not in (bob.address, carol.address), "the peer alice left is anonymised for her"
    assert shown[0].startswith("did:e:localhost:dids:")
    assert {m["id"] for m in bob.get("/api/v2/Messages").json["result"]} == {to_both, to_alice}
    as_bob = bob.get(f"/api/v2/Messages/{to_alice}").json["result"]
    assert as_bob["recipients"][0]["address"] == alice.address, "bob has not decomposed yet"

    act(bob, relationship_id, "Decompose")
    assert bob.get("/api/v2/Messages").json["result"] == []
    assert_error(bob.get(f"/api/v2/Messages/{to_both}"), 404, "error.platform.recordNotFound")
    assert carol.get(f"/api/v2/Messages/{to_both}").status_code == 200


def test_recipients_are_limited_unique_and_well_formed(limited: testing.TestClient) -> None:
    alice, bob, carol, dave = (onboard(limited) for _ in range(4))
    for peer in (bob, carol, dave):
        relate(alice, peer)
    assert_error(send_message(alice, bob, carol, dave), 400, INVALID)
    assert_error(send_message(alice), 400, INVALID)
    assert_error(send_message(alice, bob, bob), 400, INVALID)
    short_key = [{"address": bob.address, "encryptedKey": b64url(b"k" * 29)}]
    assert_error(send_message(alice, recipients=short_key), 400, INVALID)
    long_key = [{"address": bob.address, "encryptedKey": b64url(b"k" * 301)}]
    assert_error(send_message(alice, recipients=long_key), 400, INVALID)
    bad_address = [{"address": "somebody", "encryptedKey": ENCRYPTED_KEY}]
    assert_error(send_message(alice, recipients=bad_address), 400, INVALID)
    assert_error(send_message(alice, bob, body=""), 400, INVALID)
    attachments = [{"id": f"FIL{index:017d}"} for index in range(21)]
    assert_error(send_message(alice, bob, attachments=attachments), 400, INVALID)
    assert_error(
        send_message(alice, bob, attachments=[{"id": "MSG" + "a" * 17}]),
        400,
        "error.platform.validation.invalidId",
    )
    assert send_message(alice, bob, carol).status_code == 201


def test_a_sender_may_leave_only_so_many_messages_unreceived(limited: testing.TestClient) -> None:
    alice, bob, carol = onboard(limited), onboard(limited), onboard(limited)
    relate(alice, bob), relate(alice, carol)
    first = send_message(alice, bob).json["result"]["id"]
    assert send_message(alice, bob).status_code == 201
    assert_error(send_message(alice, bob), 400, MESSAGE + "maxNumberOfUnreceivedMessagesReached")
    assert send_message(alice, carol).status_code == 201, "the limit is per recipient"
    assert send_message(bob, alice).status_code == 201, "and per sender"
    bob.get(f"/api/v2/Messages/{first}")
    assert send_message(alice, bob).status_code == 201, "reading one frees a place"


def test_message_lists_page_like_every_list(api: testing.TestClient) -> None:
    alice, bob = onboard(api), onboard(api)
    relate(alice, bob)
    sent = [send_message(alice, bob).json["result"]["id"] for _ in range(3)]
    first = bob.get("/api/v2/Messages", query_string="pageSize=2")
    assert first.json["pagination"] == {"pageNumber": 1, "pageSize": 2, "totalPages": 2, "totalRecords": 3}
    second = bob.get("/api/v2/Messages", query_string="pageSize=2&pageNumber=2")
    assert {m["id"] for m in first.json["result"] + second.json["result"]} == set(sent)
    assert_error(
        bob.get("/api/v2/Messages", query_string="pageSize=201"),
        400,
        "error.platform.validation.pagination.invalidPageSize",
    )
    assert_error(
        bob.get("/api/v2/Messages", query_string="ids=nope"), 400, "error.platform.validation.invalidId"
    )
