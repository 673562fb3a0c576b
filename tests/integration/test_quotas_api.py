"""Quotas as an operator sets them up through the Admin API and identities run into them: tier
quotas, individual quotas that override them, periods that end, live usage, and the tier
"Queued for Deletion" that allows nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from falcon import testing

from backbone.platform.clock import ManualClock
from loadtests.keys import IdentityKey
from tests.helpers.admin import AdminClient
from tests.helpers.api import PASSWORD, Account, assert_error, identity_body, login, onboard
from tests.helpers.files import upload
from tests.helpers.peers import create_template, relate, request_relationship, send_message

QUOTA_EXHAUSTED = "error.platform.quotaExhausted"
MIB = 1024 * 1024


def client_with_tier_quota(admin: AdminClient, name: str, metric_key: str, max_: int) -> dict[str, str]:
    """What an operator does: a tier with one quota per day, and a client that onboards into it."""
    tier = admin.post("/api/v1/Tiers", json={"name": name})
    assert tier.status_code == 201, tier.text
    tier_id = tier.json["result"]["id"]
    quota = admin.post(
        f"/api/v1/Tiers/{tier_id}/Quotas", json={"metricKey": metric_key, "max": max_, "period": "Day"}
    )
    assert quota.status_code == 201, quota.text
    client = admin.post(
        "/api/v1/Clients",
        json={"clientId": f"client-{name}", "clientSecret": "a-client-secret", "defaultTier": name},
    )
    assert client.status_code == 201, client.text
    return {"clientId": f"client-{name}", "clientSecret": "a-client-secret", "tierId": tier_id}


def onboard_through(api: testing.TestClient, client: dict[str, str]) -> Account:
    key = IdentityKey.generate()
    body = identity_body(api, key, clientId=client["clientId"], clientSecret=client["clientSecret"])
    created = api.simulate_post("/api/v2/Identities", json=body)
    assert created.status_code == 201, created.text
    result = created.json["result"]
    username = result["device"]["username"]
    token = login(api, username)
    assert token.status_code == 200, token.text
    account = Account(api, result["address"], result["device"]["id"], username, PASSWORD, key)
    account.token = token.json["access_token"]
    account.headers = {"Authorization": f"Bearer {account.token}"}
    return account


def give_individual_quota(admin: AdminClient, address: str, metric_key: str, max_: int) -> str:
    created = admin.post(
        f"/api/v1/Identities/{address}/Quotas", json={"metricKey": metric_key, "max": max_, "period": "Day"}
    )
    assert created.status_code == 201, created.text
    quota_id: str = created.json["result"]["id"]
    return quota_id


def assert_exhausted(result: testing.Result, *metric_keys: str, until: str) -> None:
    error = assert_error(result, 429, QUOTA_EXHAUSTED)
    assert error["data"] == [{"metricKey": key, "isExhaustedUntil": until} for key in metric_keys]


END_OF_FIRST_DAY = "2026-01-02T00:00:00.000Z"  # ManualClock starts at 2026-01-01 00:00 UTC


def test_sent_messages_stop_at_the_tier_quota_and_an_individual_quota_lets_more_through(
    api: testing.TestClient, admin: AdminClient, clock: ManualClock
) -> None:
    client = client_with_tier_quota(admin, "ThreeMessages", "NumberOfSentMessages", 3)
    sender = onboard_through(api, client)
    recipient = onboard(api)
    relate(recipient, sender)

    for _ in range(3):
        assert send_message(sender, recipient).status_code == 201
    assert_exhausted(send_message(sender, recipient), "NumberOfSentMessages", until=END_OF_FIRST_DAY)

    give_individual_quota(admin, sender.address, "NumberOfSentMessages", 10)
    assert send_message(sender, recipient).status_code == 201

    quotas = sender.get("/api/v2/Quotas")
    assert quotas.status_code == 200
    assert quotas.json["result"] == [
        {
            "metricKey": "NumberOfSentMessages",
            "quotas": [
                {
                    "source": "Individual",
                    "metricKey": "NumberOfSentMessages",
                    "max": 10,
                    "usage": 4,
                    "period": "Day",
                }
            ],
        }
    ]


def test_quotas_added_later_count_what_identities_without_quotas_used_before(
    api: testing.TestClient, admin: AdminClient
) -> None:
    tier = admin.post("/api/v1/Tiers", json={"name": "LimitedLater"})
    assert tier.status_code == 201, tier.text
    tier_id = tier.json["result"]["id"]
    client = admin.post(
        "/api/v1/Clients",
        json={"clientId": "client-later", "clientSecret": "a-client-secret", "defaultTier": "LimitedLater"},
    )
    assert client.status_code == 201, client.text
    through = {"clientId": "client-later", "clientSecret": "a-client-secret"}
    senders = [onboard_through(api, through), onboard_through(api, through)]
    recipient = onboard(api)
    for sender in senders:
        relate(recipient, sender)
        for _ in range(2):
            assert send_message(sender, recipient).status_code == 201

    limit = {"metricKey": "NumberOfSentMessages", "max": 2, "period": "Day"}
    quota = admin.post(f"/api/v1/Tiers/{tier_id}/Quotas", json=limit)
    assert quota.status_code == 201, quota.text
    for sender in senders:
        assert_exhausted(send_message(sender, recipient), "NumberOfSentMessages", until=END_OF_FIRST_DAY)

    other = onboard(api)
    relate(recipient, other)
    assert send_message(other, recipient).status_code == 201
    give_individual_quota(admin, other.address, "NumberOfSentMessages", 1)
    assert_exhausted(send_message(other, recipient), "NumberOfSentMessages", until=END_OF_FIRST_DAY)


def test_removing_the_individual_quota_brings_the_tier_quota_back(
    api: testing.TestClient, admin: AdminClient
) -> None:
    client = client_with_tier_quota(admin, "OneMessage", "NumberOfSentMessages", 1)
    sender = onboard_through(api, client)
    recipient = onboard(api)
    relate(recipient, sender)
    quota_id = give_individual_quota(admin, sender.address, "NumberOfSentMessages", 5)
    assert send_message(sender, recipient).status_code == 201
    assert send_message(sender, recipient).status_code == 201

    removed = admin.delete(f"/api/v1/Identities/{sender.address}/Quotas/{quota_id}")
    assert removed.status_code == 204
    assert_exhausted(send_message(sender, recipient), "NumberOfSentMessages", until=END_OF_FIRST_DAY)


def test_a_new_period_ends_the_exhaustion(
    api: testing.TestClient, admin: AdminClient, clock: ManualClock
) -> None:
    client = client_with_tier_quota(admin, "TwoMessages", "NumberOfSentMessages", 2)
    sender = onboard_through(api, client)
    recipient = onboard(api)
    relate(recipient, sender)
    for _ in range(2):
        assert send_message(sender, recipient).status_code == 201
    assert_error(send_message(sender, recipient), 429, QUOTA_EXHAUSTED)

    clock.advance(timedelta(days=1))
    sender.log_in_again()
    recipient.log_in_again()
    assert send_message(sender, recipient).status_code == 201
    usage = sender.get("/api/v2/Quotas").json["result"][0]["quotas"][0]
    assert (usage["max"], usage["usage"], usage["source"]) == (2, 1, "Tier")


def test_number_of_files_stops_at_the_tier_quota_and_an_individual_quota_lets_more_through(
    api: testing.TestClient, admin: AdminClient, clock: ManualClock
) -> None:
    client = client_with_tier_quota(admin, "ThreeFiles", "NumberOfFiles", 3)
    owner = onboard_through(api, client)
    for number in range(3):
        assert upload(owner, b"content %d" % number, clock.now()).status_code == 201
    assert_exhausted(upload(owner, b"one too many", clock.now()), "NumberOfFiles", until=END_OF_FIRST_DAY)
    assert len(owner.get("/api/v2/Files").json["result"]) == 3

    give_individual_quota(admin, owner.address, "NumberOfFiles", 10)
    assert upload(owner, b"allowed again", clock.now()).status_code == 201


def test_storage_space_stops_at_the_tier_quota_and_an_individual_quota_lets_more_through(
    api: testing.TestClient, admin: AdminClient, clock: ManualClock
) -> None:
    client = client_with_tier_quota(admin, "OneMebibyte", "UsedFileStorageSpace", 1)
    owner = onboard_through(api, client)
    assert upload(owner, b"x" * (MIB - 1), clock.now()).status_code == 201  # 0 whole MiB used
    assert upload(owner, b"y", clock.now()).status_code == 201  # now 1 MiB: the quota is reached
    assert_exhausted(upload(owner, b"z", clock.now()), "UsedFileStorageSpace", until=END_OF_FIRST_DAY)

    give_individual_quota(admin, owner.address, "UsedFileStorageSpace", 5)
    assert upload(owner, b"z", clock.now()).status_code == 201
    usage = owner.get("/api/v2/Quotas").json["result"][0]["quotas"][0]
    assert (usage["metricKey"], usage["usage"], usage["max"]) == ("UsedFileStorageSpace", 1, 5)


@pytest.mark.parametrize(
    ("metric_key", "over_the_limit"),
    [
        (
            "NumberOfRelationshipTemplates",
            lambda account, peer: account.post("/api/v2/RelationshipTemplates", json={"content": "AAAA"}),
        ),
        (
            "NumberOfTokens",
            lambda account, peer: account.post(
                "/api/v2/Tokens", json={"content": "AAAA", "expiresAt": "2026-01-05T00:00:00.000Z"}
            ),
        ),
        ("NumberOfRelationships", lambda account, peer: request_relationship(account, create_template(peer))),
    ],
)
def test_templates_tokens_and_relationships_are_limited_too(
    api: testing.TestClient, admin: AdminClient, metric_key: str, over_the_limit: Any
) -> None:
    client = client_with_tier_quota(admin, "Nothing" + metric_key[:20], metric_key, 0)
    account = onboard_through(api, client)
    peer = onboard(api)
    result = over_the_limit(account, peer)
    error = assert_error(result, 429, QUOTA_EXHAUSTED)
    assert [item["metricKey"] for item in error["data"]] == [metric_key]


def test_an_identity_queued_for_deletion_may_do_nothing_limited(
    api: testing.TestClient, clock: ManualClock
) -> None:
    account = onboard(api)
    peer = onboard(api)
    relate(peer, account)
    assert send_message(account, peer).status_code == 201
    started = account.post("/api/v2/Identities/Self/DeletionProcesses", json={})
    assert started.status_code == 201, started.text

    error = assert_error(send_message(account, peer), 429, QUOTA_EXHAUSTED)
    assert error["data"] == [
        {"metricKey": "NumberOfSentMessages", "isExhaustedUntil": "9999-12-31T23:59:59.000Z"}
    ]
    assert_error(upload(account, b"no", clock.now()), 429, QUOTA_EXHAUSTED)
    quotas = {item["metricKey"]: item["quotas"] for item in account.get("/api/v2/Quotas").json["result"]}
    assert len(quotas) == 10
    assert quotas["NumberOfSentMessages"] == [
        {"source": "Tier", "metricKey": "NumberOfSentMessages", "max": 0, "usage": 1, "period": "Total"}
    ]
