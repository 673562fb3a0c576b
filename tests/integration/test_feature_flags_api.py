"""Feature flags through HTTP: an identity sets its own, the identities that know it read them and
hear of changes (`PeerFeatureFlagsChanged`), everybody else finds nothing."""

from __future__ import annotations

from typing import Any

from falcon import testing

from backbone.platform.crypto import derive_address
from backbone.wiring import Services
from tests.helpers.api import Account, assert_error, onboard
from tests.helpers.peers import act, create_template, relate, sync

SELF = "/api/v2/Identities/Self/FeatureFlags"
INVALID = "error.platform.validation.invalidPropertyValue"
UNPARSEABLE = "error.platform.inputCannotBeParsed"


def flags_of(caller: Account, owner: Account) -> testing.Result:
    return caller.get(f"/api/v2/Identities/{owner.address}/FeatureFlags")


def change(account: Account, flags: Any) -> testing.Result:
    return account.patch(SELF, json=flags)


def changed(owner: Account) -> tuple[str, dict[str, Any]]:
    return ("PeerFeatureFlagsChanged", {"peerAddress": owner.address})


def test_an_identity_sets_and_switches_its_flags(api: testing.TestClient) -> None:
    alice = onboard(api)
    assert flags_of(alice, alice).json == {"result": {}}
    created = change(alice, {"feature1": True, "feature2": False})
    assert created.status_code == 204, created.text
    assert created.text == ""
    assert flags_of(alice, alice).json["result"] == {"feature1": True, "feature2": False}
    switched = change(alice, {"feature1": False, "feature2": True})
    assert switched.status_code == 204, switched.text
    assert flags_of(alice, alice).json["result"] == {"feature1": False, "feature2": True}
    # The original writes dictionary keys in camel case; names are stored as sent.
    assert change(alice, {"DarkMode": True, "URL": True}).status_code == 204
    assert flags_of(alice, alice).json["result"] == {
        "darkMode": True,
        "feature1": False,
        "feature2": True,
        "url": True,
    }


def test_who_may_read_an_identitys_flags(api: testing.TestClient) -> None:
    owner, peer, former, allocator, stranger = (onboard(api) for _ in range(5))
    assert change(owner, {"feature": True}).status_code == 204
    relate(owner, peer)
    former_id = relate(owner, former, accept=False)
    act(owner, former_id, "Reject")  # any relationship between them counts, also a rejected one
    allocator.get(f"/api/v2/RelationshipTemplates/{create_template(owner)}")

    for reader in (owner, peer, former, allocator):
        answer = flags_of(reader, owner)
        assert answer.status_code == 200, answer.text
        assert answer.json["result"] == {"feature": True}
    # A stranger, and the creator of an allocated template the other way round, find nothing.
    assert_error(flags_of(stranger, owner), 404, "error.platform.recordNotFound")
    assert change(allocator, {"x": True}).status_code == 204
    assert_error(flags_of(owner, allocator), 404, "error.platform.recordNotFound")
    nobody = derive_address(b"a key nobody onboarded with", "localhost")
    assert_error(owner.get(f"/api/v2/Identities/{nobody}/FeatureFlags"), 404, "error.platform.recordNotFound")
    error = assert_error(owner.get("/api/v2/Identities/not-an-address/FeatureFlags"), 400, INVALID)
    assert "identityAddress" in error["message"]
    assert api.simulate_get(f"/api/v2/Identities/{owner.address}/FeatureFlags").status_code == 401
    assert api.simulate_patch(SELF, json={"a": True}).status_code == 401


def test_at_most_200_flags_per_identity(api: testing.TestClient) -> None:
    alice = onboard(api)
    max_exceeded = "error.platform.validation.featureFlag.maxNumberOfFeatureFlagsExceeded"
    too_many = {f"feature{n}": True for n in range(1, 202)}
    error = assert_error(change(alice, too_many), 400, max_exceeded)
    assert error["message"] == "Only 200 feature flags can be created."
    assert flags_of(alice, alice).json["result"] == {}

    assert change(alice, {f"feature{n}": True for n in range(1, 201)}).status_code == 204
    assert_error(change(alice, {"feature201": True}), 400, max_exceeded)
    # Switching existing flags adds no name.
    assert change(alice, {"feature1": False, "feature200": False}).status_code == 204
    flags = flags_of(alice, alice).json["result"]
    assert len(flags) == 200
    assert "feature201" not in flags
    assert (flags["feature1"], flags["feature2"], flags["feature200"]) == (False, True, False)


def test_malformed_changes_are_refused(api: testing.TestClient) -> None:
    alice = onboard(api)
    error = assert_error(change(alice, {"n" * 201: True}), 400, INVALID)
    assert "feature flag name" in error["message"]
    assert_error(change(alice, {"nul\u0000": True}), 400, INVALID)
    assert change(alice, {"n" * 200: True}).status_code == 204
    assert_error(change(alice, {"feature": "yes"}), 400, UNPARSEABLE)
    assert_error(change(alice, {"feature": None}), 400, UNPARSEABLE)
    assert_error(change(alice, ["feature"]), 400, UNPARSEABLE)
    assert_error(alice.patch(SELF), 400, UNPARSEABLE)
    assert_error(alice.patch(SELF, body=b"{", headers={"Content-Type": "application/json"}), 400, UNPARSEABLE)
    assert list(flags_of(alice, alice).json["result"]) == ["n" * 200]


def test_peers_and_allocators_hear_of_changes_once(api: testing.TestClient) -> None:
    owner, active, pending, terminated, allocator, both = (onboard(api) for _ in range(6))
    relate(owner, active)
    relate(owner, pending, accept=False)
    terminated_id = relate(terminated, owner)  # from `terminated`'s template: no allocation of owner's
    act(owner, terminated_id, "Terminate")
    allocator.get(f"/api/v2/RelationshipTemplates/{create_template(owner)}")
    relate(owner, both)  # `both` allocated the template it answered, and is a peer
    for account in (owner, active, pending, terminated, allocator, both):
        sync(account)

    assert change(owner, {"feature": True}).status_code == 204
    for told in (active, pending, allocator, both):
        assert sync(told) == [changed(owner)]
    assert sync(terminated) == [], "peers of terminated relationships are not told"
    assert sync(owner) == []


def test_a_deleted_identity_leaves_no_flags(api: testing.TestClient, services: Services) -> None:
    alice = onboard(api)
    assert change(alice, {"feature": True}).status_code == 204
    services.feature_flags.delete_of_identity(alice.address)
    assert flags_of(alice, alice).json["result"] == {}
