"""Relationship templates through HTTP: visibility, passwords, allocations, listing and deletion."""

from __future__ import annotations

from datetime import timedelta

import pytest
from falcon import testing

from backbone.platform.clock import ManualClock
from backbone.platform.encoding import b64url, format_datetime
from tests.helpers.api import assert_error, onboard
from tests.helpers.peers import CONTENT, create_template, password_query, request_relationship, sync

PASSWORD = b"a hashed template password"
INVALID = "error.platform.validation.invalidPropertyValue"


def test_a_template_is_created_and_read_with_the_fields_the_client_reads(
    api: testing.TestClient, clock: ManualClock
) -> None:
    alice, bob = onboard(api), onboard(api)
    expires_at = clock.now() + timedelta(days=1)
    created = alice.post(
        "/api/v2/RelationshipTemplates",
        json={"content": CONTENT, "expiresAt": format_datetime(expires_at), "maxNumberOfAllocations": 3},
    )
    assert created.status_code == 201, created.text
    assert set(created.json["result"]) == {"id", "createdAt"}
    template_id = created.json["result"]["id"]
    assert template_id.startswith("RLT")
    assert len(template_id) == 20

    loaded = bob.get(f"/api/v2/RelationshipTemplates/{template_id}")
    assert loaded.status_code == 200, loaded.text
    assert loaded.json["result"] == {
        "id": template_id,
        "createdBy": alice.address,
        "createdByDevice": alice.device_id,
        "maxNumberOfAllocations": 3,
        "expiresAt": format_datetime(expires_at),
        "content": CONTENT,
        "createdAt": created.json["result"]["createdAt"],
        "forIdentity": None,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("expiresAt", "2025-01-01T00:00:00.000Z"),
        ("maxNumberOfAllocations", 0),
        ("forIdentity", "did:e:localhost:dids:0000000000000000000000"),
        ("password", b64url(b"p" * 201)),
    ],
)
def test_invalid_template_fields_are_refused(api: testing.TestClient, field: str, value: object) -> None:
    alice = onboard(api)
    result = alice.post("/api/v2/RelationshipTemplates", json={"content": CONTENT, field: value})
    assert_error(result, 400, INVALID)


def test_a_template_needs_content(api: testing.TestClient) -> None:
    alice = onboard(api)
    assert_error(alice.post("/api/v2/RelationshipTemplates", json={"expiresAt": None}), 400, INVALID)


def test_a_personalized_template_is_visible_only_to_its_identity_and_creator(api: testing.TestClient) -> None:
    alice, bob, carol = onboard(api), onboard(api), onboard(api)
    template_id = create_template(alice, forIdentity=bob.address)
    assert_error(
        carol.get(f"/api/v2/RelationshipTemplates/{template_id}"), 404, "error.platform.recordNotFound"
    )
    assert (
        bob.get(f"/api/v2/RelationshipTemplates/{template_id}").json["result"]["forIdentity"] == bob.address
    )
    assert alice.get(f"/api/v2/RelationshipTemplates/{template_id}").status_code == 200


def test_a_password_protected_template_needs_the_password_until_it_is_allocated(
    api: testing.TestClient,
) -> None:
    alice, bob = onboard(api), onboard(api)
    template_id = create_template(alice, password=b64url(PASSWORD))
    path = f"/api/v2/RelationshipTemplates/{template_id}"
    assert_error(bob.get(path), 404, "error.platform.recordNotFound")
    assert_error(bob.get(path, query_string=password_query(b"wrong")), 404, "error.platform.recordNotFound")
    assert alice.get(path).status_code == 200, "the creator needs no password"

    assert bob.get(path, query_string=password_query(PASSWORD)).status_code == 200
    assert bob.get(path).status_code == 200, "the allocation replaces the password"


def test_a_query_password_that_is_not_base64_is_refused(api: testing.TestClient) -> None:
    alice, bob = onboard(api), onboard(api)
    template_id = create_template(alice, password=b64url(PASSWORD))
    result = bob.get(f"/api/v2/RelationshipTemplates/{template_id}", query_string="password=%%%")
    assert_error(result, 400, "error.platform.inputCannotBeParsed")


def test_allocations_are_limited_and_their_exhaustion_is_announced_to_the_creator(
    api: testing.TestClient,
) -> None:
    alice, bob, carol = onboard(api), onboard(api), onboard(api)
    template_id = create_template(alice, maxNumberOfAllocations=1)
    path = f"/api/v2/RelationshipTemplates/{template_id}"
    assert bob.get(path).status_code == 200
    assert bob.get(path).status_code == 200, "reading again allocates nothing new"
    assert_error(
        carol.get(path), 400, "error.platform.validation.relationshipTemplate.maxNumberOfAllocationsExhausted"
    )
    assert alice.get(path).status_code == 200, "the creator never allocates"
    assert sync(alice) == [
        ("RelationshipTemplateAllocationsExhausted", {"relationshipTemplateId": template_id})
    ]


def test_an_expired_template_is_gone_except_for_identities_related_through_it(
    api: testing.TestClient, clock: ManualClock
) -> None:
    alice, bob, carol = onboard(api), onboard(api), onboard(api)
    expires_at = format_datetime(clock.now() + timedelta(minutes=5))
    template_id = create_template(alice, expiresAt=expires_at)
    assert request_relationship(bob, template_id).status_code == 201
    clock.advance(timedelta(minutes=6))
    carol.log_in_again()
    bob.log_in_again()
    path = f"/api/v2/RelationshipTemplates/{template_id}"
    assert_error(carol.get(path), 404, "error.platform.recordNotFound")
    assert bob.get(path).status_code == 200


def test_templates_are_listed_by_id_and_password_without_allocating(api: testing.TestClient) -> None:
    alice, bob = onboard(api), onboard(api)
    open_id = create_template(alice)
    protected_id = create_template(alice, password=b64url(PASSWORD))
    password = password_query(PASSWORD).split("=", 1)[1]

    listed = bob.get(
        "/api/v2/RelationshipTemplates",
        query_string=f"templates.0.id={open_id}&templates.1.id={protected_id}&templates.1.password={password}",
    )
    assert listed.status_code == 200, listed.text
    assert {item["id"] for item in listed.json["result"]} == {open_id, protected_id}
    assert "pagination" not in listed.json

    by_ids = bob.get("/api/v2/RelationshipTemplates", query_string=f"ids={open_id}&ids={protected_id}")
    assert [item["id"] for item in by_ids.json["result"]] == [open_id], "no password, no protected template"
    assert_error(
        bob.get(f"/api/v2/RelationshipTemplates/{protected_id}"), 404, "error.platform.recordNotFound"
    )


def test_a_template_list_needs_ids(api: testing.TestClient) -> None:
    alice = onboard(api)
    assert_error(alice.get("/api/v2/RelationshipTemplates"), 400, INVALID)
    assert_error(
        alice.get("/api/v2/RelationshipTemplates", query_string="templates.0.password=abc"),
        400,
        "error.platform.validation.relationship.invalidRelationshipTemplateQueryItem",
    )
    assert_error(
        alice.get("/api/v2/RelationshipTemplates", query_string="ids=FIL12345678901234567"),
        400,
        "error.platform.validation.invalidId",
    )


def test_only_the_creator_deletes_a_template(api: testing.TestClient) -> None:
    alice, bob = onboard(api), onboard(api)
    template_id = create_template(alice)
    path = f"/api/v2/RelationshipTemplates/{template_id}"
    assert_error(bob.delete(path), 403, "error.platform.forbidden")
    deleted = alice.delete(path)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(alice.get(path), 404, "error.platform.recordNotFound")
    assert_error(alice.delete(path), 404, "error.platform.recordNotFound")
