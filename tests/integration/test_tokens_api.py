"""Tokens through HTTP: anonymous and authenticated use, passwords, locking, allocations, content updates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from falcon import testing

from backbone.platform.clock import ManualClock
from backbone.platform.encoding import b64url, format_datetime
from tests.helpers.api import assert_error, onboard
from tests.helpers.peers import CONTENT, password_query, sync

PASSWORD = b"a hashed token password"
NOT_FOUND = "error.platform.recordNotFound"
INVALID = "error.platform.validation.invalidPropertyValue"


def in_minutes(clock: ManualClock, minutes: float) -> str:
    return format_datetime(clock.now() + timedelta(minutes=minutes))


def test_an_authenticated_token_is_read_by_others_and_allocated(
    api: testing.TestClient, clock: ManualClock
) -> None:
    alice, bob, carol = onboard(api), onboard(api), onboard(api)
    created = alice.post("/api/v2/Tokens", json={"content": CONTENT, "expiresAt": in_minutes(clock, 60)})
    assert created.status_code == 201, created.text
    assert set(created.json["result"]) == {"id", "createdAt"}
    token_id = created.json["result"]["id"]
    assert token_id.startswith("TOK")

    loaded = bob.get(f"/api/v2/Tokens/{token_id}")
    assert loaded.status_code == 200, loaded.text
    assert loaded.json["result"] == {
        "id": token_id,
        "createdBy": alice.address,
        "createdByDevice": alice.device_id,
        "forIdentity": None,
        "createdAt": created.json["result"]["createdAt"],
        "expiresAt": in_minutes(clock, 60),
        "content": CONTENT,
        "isPasswordProtected": False,
    }
    anonymous = api.simulate_get(f"/api/v2/Tokens/{token_id}")
    assert anonymous.status_code == 200
    assert anonymous.json["result"]["content"] == CONTENT

    for account, expected in ((alice, [token_id]), (bob, [token_id]), (carol, [])):
        listed = account.get("/api/v2/Tokens", query_string=f"ids={token_id}")
        assert [item["id"] for item in listed.json["result"]] == expected
    assert [
        item["id"]
        for item in bob.get("/api/v2/Tokens", query_string=f"tokens.0.id={token_id}").json["result"]
    ] == [token_id]
    assert_error(bob.get("/api/v2/Tokens"), 400, INVALID)
    assert_error(
        api.simulate_get("/api/v2/Tokens", query_string=f"ids={token_id}"), 401, "error.platform.unauthorized"
    )


def test_anonymous_callers_create_only_short_lived_empty_tokens(
    api: testing.TestClient, clock: ManualClock
) -> None:
    with_content = api.simulate_post(
        "/api/v2/Tokens", json={"content": CONTENT, "expiresAt": in_minutes(clock, 1)}
    )
    assert_error(with_content, 400, INVALID)
    too_long = api.simulate_post("/api/v2/Tokens", json={"expiresAt": in_minutes(clock, 5)})
    assert_error(too_long, 400, INVALID)
    created = api.simulate_post("/api/v2/Tokens", json={"expiresAt": in_minutes(clock, 4)})
    assert created.status_code == 201, created.text
    loaded = api.simulate_get(f"/api/v2/Tokens/{created.json['result']['id']}")
    assert loaded.json["result"]["content"] is None
    assert loaded.json["result"]["createdBy"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("expiresAt", "2025-01-01T00:00:00Z"), ("password", ""), ("forIdentity", "did:e:localhost:dids:nope")],
)
def test_invalid_token_fields_are_refused(
    api: testing.TestClient, clock: ManualClock, field: str, value: str
) -> None:
    alice = onboard(api)
    body = {"content": CONTENT, "expiresAt": in_minutes(clock, 60), field: value}
    assert_error(alice.post("/api/v2/Tokens", json=body), 400, INVALID)


def test_a_personalized_token_is_only_for_its_identity(api: testing.TestClient, clock: ManualClock) -> None:
    alice, bob, carol = onboard(api), onboard(api), onboard(api)
    body = {"content": CONTENT, "expiresAt": in_minutes(clock, 60), "forIdentity": bob.address}
    token_id = alice.post("/api/v2/Tokens", json=body).json["result"]["id"]
    assert_error(carol.get(f"/api/v2/Tokens/{token_id}"), 404, NOT_FOUND)
    assert_error(api.simulate_get(f"/api/v2/Tokens/{token_id}"), 404, NOT_FOUND)
    assert bob.get(f"/api/v2/Tokens/{token_id}").json["result"]["forIdentity"] == bob.address


def test_a_password_protects_a_token_and_too_many_failures_lock_it(
    api: testing.TestClient, clock: ManualClock
) -> None:
    alice, bob, carol = onboard(api), onboard(api), onboard(api)
    body = {"content": CONTENT, "expiresAt": in_minutes(clock, 60), "password": b64url(PASSWORD)}
    token_id = alice.post("/api/v2/Tokens", json=body).json["result"]["id"]
    path = f"/api/v2/Tokens/{token_id}"
    assert_error(bob.get(path), 404, NOT_FOUND)
    loaded = bob.get(path, query_string=password_query(PASSWORD))
    assert loaded.status_code == 200, loaded.text
    assert loaded.json["result"]["isPasswordProtected"] is True
    assert bob.get(path).status_code == 200, "the allocation replaces the password"

    for _ in range(98):
        assert carol.get(path, query_string=password_query(b"wrong")).status_code == 404
    assert sync(alice) == []
    assert carol.get(path, query_string=password_query(b"wrong")).status_code == 404, "the 100th failure"
    assert_error(
        carol.get(path, query_string=password_query(PASSWORD)),
        400,
        "error.platform.token.tooManyFailedPasswordAttempts",
    )
    assert sync(alice) == [("TokenLocked", {"tokenId": token_id})]
    assert alice.get(path).status_code == 200, "the creator still reads it"
    assert bob.get(path).status_code == 200, "so does an identity that allocated it"


def test_an_expired_token_is_gone_except_for_its_creator(api: testing.TestClient, clock: ManualClock) -> None:
    alice, bob = onboard(api), onboard(api)
    token_id = alice.post(
        "/api/v2/Tokens", json={"content": CONTENT, "expiresAt": in_minutes(clock, 2)}
    ).json["result"]["id"]
    clock.advance(timedelta(minutes=3))
    alice.log_in_again()
    bob.log_in_again()
    assert_error(bob.get(f"/api/v2/Tokens/{token_id}"), 404, NOT_FOUND)
    assert alice.get(f"/api/v2/Tokens/{token_id}").status_code == 200


def test_only_the_creator_deletes_a_token(api: testing.TestClient, clock: ManualClock) -> None:
    alice, bob = onboard(api), onboard(api)
    token_id = alice.post(
        "/api/v2/Tokens", json={"content": CONTENT, "expiresAt": in_minutes(clock, 60)}
    ).json["result"]["id"]
    assert_error(bob.delete(f"/api/v2/Tokens/{token_id}"), 403, "error.platform.forbidden")
    assert alice.delete(f"/api/v2/Tokens/{token_id}").status_code == 204
    assert_error(alice.get(f"/api/v2/Tokens/{token_id}"), 404, NOT_FOUND)
    assert_error(alice.delete(f"/api/v2/Tokens/{token_id}"), 404, NOT_FOUND)


def test_an_empty_token_gets_content_once(api: testing.TestClient, clock: ManualClock) -> None:
    alice, bob = onboard(api), onboard(api)
    token_id = api.simulate_post("/api/v2/Tokens", json={"expiresAt": in_minutes(clock, 4)}).json["result"][
        "id"
    ]
    path = f"/api/v2/Tokens/{token_id}/UpdateContent"
    assert_error(alice.post(path, json={"newContent": ""}), 400, INVALID)
    updated = alice.post(path, json={"newContent": CONTENT})
    assert updated.status_code == 200, updated.text
    assert updated.json["result"] == {
        "id": token_id,
        "createdBy": alice.address,
        "createdByDevice": alice.device_id,
        "forIdentity": None,
        "createdAt": updated.json["result"]["createdAt"],
        "expiresAt": in_minutes(clock, 4),
        "isPasswordProtected": False,
    }
    assert api.simulate_get(f"/api/v2/Tokens/{token_id}").json["result"]["content"] == CONTENT
    assert_error(
        bob.post(path, json={"newContent": CONTENT}),
        400,
        "error.platform.token.contentUpdateNotPossibleBecauseContentAlreadyExists",
    )


def test_updating_a_protected_empty_token_needs_its_password(
    api: testing.TestClient, clock: ManualClock
) -> None:
    alice, bob = onboard(api), onboard(api)
    body = {"expiresAt": in_minutes(clock, 60), "password": b64url(PASSWORD)}
    token_id = alice.post("/api/v2/Tokens", json=body).json["result"]["id"]
    path = f"/api/v2/Tokens/{token_id}/UpdateContent"
    assert_error(bob.post(path, json={"newContent": CONTENT, "password": b64url(b"wrong")}), 404, NOT_FOUND)
    assert bob.post(path, json={"newContent": CONTENT, "password": b64url(PASSWORD)}).status_code == 200


def test_unknown_and_malformed_token_ids(api: testing.TestClient) -> None:
    alice = onboard(api)
    assert_error(alice.get("/api/v2/Tokens/TOK00000000000000000"), 404, NOT_FOUND)
    assert_error(alice.get("/api/v2/Tokens/MSG00000000000000000"), 400, "error.platform.validation.invalidId")
