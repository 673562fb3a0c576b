"""The Admin API through HTTP: clients, tiers, identities, quotas, overviews and tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from falcon import testing

from backbone.modules.devices.repository import oauth_clients
from backbone.modules.tiers.model import QUEUED_FOR_DELETION_TIER_ID
from backbone.platform.encoding import format_datetime
from backbone.platform.events import outbox_events
from backbone.wiring import Services
from loadtests.keys import IdentityKey, challenge_text
from tests.helpers.admin import AdminClient
from tests.helpers.api import PASSWORD, assert_error, identity_body, login, onboard
from tests.helpers.peers import CONTENT, password_query, relate, send_message, sync

DEVICE = "error.platform.validation.device."
QFD = QUEUED_FOR_DELETION_TIER_ID


def events_named(services: Services, name: str) -> list[dict[str, Any]]:
    import orjson

    with services.db.read() as connection:
        rows = connection.execute(
            sa.select(outbox_events.c.payload).where(outbox_events.c.name == name)
        ).all()
    return [orjson.loads(row.payload) for row in rows]


def basic_tier_id(admin: AdminClient) -> str:
    tiers = admin.get("/api/v1/Tiers").json["result"]
    return next(tier["id"] for tier in tiers if tier["name"] == "Basic")


def create_tier(admin: AdminClient, name: str) -> str:
    created = admin.post("/api/v1/Tiers", json={"name": name})
    assert created.status_code == 201, created.text
    tier_id: str = created.json["result"]["id"]
    return tier_id


# --- clients ---------------------------------------------------------------------------------


def test_a_client_created_without_id_and_secret_gets_both_generated_and_can_onboard(
    admin: AdminClient, api: testing.TestClient, services: Services
) -> None:
    created = admin.post("/api/v1/Clients", json={"defaultTier": "Basic", "maxIdentities": 5})
    assert created.status_code == 201, created.text
    client = created.json["result"]
    assert client["clientId"].startswith("CLT")
    assert len(client["clientId"]) == 20
    assert len(client["clientSecret"]) == 30
    assert client["displayName"] == client["clientId"]
    assert client["defaultTier"] == basic_tier_id(admin)
    assert client["maxIdentities"] == 5
    key = IdentityKey.generate()
    body = identity_body(api, key, clientId=client["clientId"], clientSecret=client["clientSecret"])
    assert api.simulate_post("/api/v2/Identities", json=body).status_code == 201
    # Stored hashed, and never shown again.
    with services.db.read() as connection:
        stored = connection.execute(
            sa.select(oauth_clients.c.client_secret_hash).where(
                oauth_clients.c.client_id == client["clientId"]
            )
        ).scalar_one()
    assert client["clientSecret"] not in stored
    for shown in (admin.get("/api/v1/Clients"), admin.get(f"/api/v1/Clients/{client['clientId']}")):
        assert client["clientSecret"] not in shown.text
        assert "clientSecret" not in shown.text


def test_clients_are_listed_with_their_tier_and_number_of_identities(
    admin: AdminClient, api: testing.TestClient
) -> None:
    onboard(api)
    listed = admin.get("/api/v1/Clients")
    assert listed.status_code == 200
    test = next(client for client in listed.json["result"] if client["clientId"] == "test")
    assert test["defaultTier"] == {"id": basic_tier_id(admin), "name": "Basic"}
    assert test["numberOfIdentities"] == 1
    assert test["maxIdentities"] is None
    assert set(test) == {
        "clientId",
        "displayName",
        "defaultTier",
        "createdAt",
        "maxIdentities",
        "numberOfIdentities",
    }
    one = admin.get("/api/v1/Clients/test").json["result"]
    assert one["defaultTier"] == basic_tier_id(admin)
    assert one["numberOfIdentities"] == 1


def test_client_creation_errors(admin: AdminClient) -> None:
    assert admin.post("/api/v1/Clients", json={"clientId": "mine", "defaultTier": "Basic"}).status_code == 201
    assert_error(
        admin.post("/api/v1/Clients", json={"clientId": "mine", "defaultTier": "Basic"}),
        400,
        DEVICE + "clientIdAlreadyExists",
    )
    assert_error(
        admin.post("/api/v1/Clients", json={"defaultTier": "No such tier"}),
        400,
        DEVICE + "tierIdInvalidOrDoesNotExist",
    )
    assert_error(
        admin.post("/api/v1/Clients", json={"defaultTier": QFD}), 400, DEVICE + "tierIdInvalidOrDoesNotExist"
    )
    assert_error(
        admin.post("/api/v1/Clients", json={}), 400, "error.platform.validation.invalidPropertyValue"
    )
    assert_error(admin.get("/api/v1/Clients/unknown"), 404, "error.platform.recordNotFound")


def test_changing_the_secret_retires_the_old_one(admin: AdminClient, api: testing.TestClient) -> None:
    admin.post(
        "/api/v1/Clients", json={"clientId": "app", "clientSecret": "old-secret", "defaultTier": "Basic"}
    )
    changed = admin.patch("/api/v1/Clients/app/ChangeSecret", json={"newSecret": "new-secret"})
    assert changed.status_code == 200, changed.text
    assert changed.json["result"]["clientSecret"] == "new-secret"
    old = identity_body(api, IdentityKey.generate(), clientId="app", clientSecret="old-secret")
    assert_error(api.simulate_post("/api/v2/Identities", json=old), 400, "error.platform.unauthorized")
    new = identity_body(api, IdentityKey.generate(), clientId="app", clientSecret="new-secret")
    assert api.simulate_post("/api/v2/Identities", json=new).status_code == 201
    generated = admin.patch("/api/v1/Clients/app/ChangeSecret", json={"newSecret": ""})
    assert len(generated.json["result"]["clientSecret"]) == 30
    assert_error(
        admin.patch("/api/v1/Clients/unknown/ChangeSecret", json={}), 404, "error.platform.recordNotFound"
    )


def test_updating_a_client_checks_its_identity_limit(admin: AdminClient, api: testing.TestClient) -> None:
    tier_id = create_tier(admin, "Premium")
    onboard(api)
    onboard(api)
    assert_error(
        admin.put("/api/v1/Clients/test", json={"defaultTier": tier_id, "maxIdentities": 1}),
        400,
        DEVICE + "maxIdentitiesLessThanCurrentIdentities",
    )
    updated = admin.put("/api/v1/Clients/test", json={"defaultTier": tier_id, "maxIdentities": 2})
    assert updated.status_code == 200, updated.text
    assert updated.json["result"]["defaultTier"] == tier_id
    assert updated.json["result"]["maxIdentities"] == 2
    assert_error(
        api.simulate_post("/api/v2/Identities", json=identity_body(api, IdentityKey.generate())),
        400,
        DEVICE + "clientReachedIdentitiesLimit",
    )
    assert_error(
        admin.put("/api/v1/Clients/nope", json={"defaultTier": tier_id}), 404, "error.platform.recordNotFound"
    )


def test_a_deleted_client_can_no_longer_onboard(admin: AdminClient, api: testing.TestClient) -> None:
    assert admin.delete("/api/v1/Clients/test").status_code == 204
    assert_error(admin.get("/api/v1/Clients/test"), 404, "error.platform.recordNotFound")
    assert_error(admin.delete("/api/v1/Clients/test"), 404, "error.platform.recordNotFound")
    assert_error(
        api.simulate_post("/api/v2/Identities", json=identity_body(api, IdentityKey.generate())),
        400,
        "error.platform.unauthorized",
    )


# --- tiers and quota definitions ----------------------------------------------------------------


def test_tiers_are_created_listed_and_deleted(
    admin: AdminClient, api: testing.TestClient, services: Services
) -> None:
    tier_id = create_tier(admin, "Premium")
    assert tier_id.startswith("TIR")
    listed = {tier["name"]: tier for tier in admin.get("/api/v1/Tiers").json["result"]}
    assert listed["Premium"] == {
        "id": tier_id,
        "name": "Premium",
        "canBeUsedAsDefaultForClient": True,
        "canBeManuallyAssigned": True,
        "numberOfIdentities": 0,
    }
    assert listed["Queued for Deletion"]["canBeManuallyAssigned"] is False
    assert events_named(services, "TierCreated") == [{"Id": tier_id, "Name": "Premium"}]
    assert admin.delete(f"/api/v1/Tiers/{tier_id}").status_code == 204
    assert events_named(services, "TierDeleted") == [{"Id": tier_id}]
    assert_error(admin.get(f"/api/v1/Tiers/{tier_id}"), 404, "error.platform.recordNotFound")


def test_tier_errors(admin: AdminClient, api: testing.TestClient) -> None:
    create_tier(admin, "Premium")
    assert_error(admin.post("/api/v1/Tiers", json={"name": "Premium"}), 400, DEVICE + "tierNameAlreadyExists")
    for name in ("ab", "x" * 31, " padded "):
        assert_error(
            admin.post("/api/v1/Tiers", json={"name": name}), 400, "error.platform.validation.invalidTierName"
        )
    assert_error(
        admin.delete(f"/api/v1/Tiers/{basic_tier_id(admin)}"), 400, DEVICE + "basicTierCannotBeDeleted"
    )
    assert_error(admin.delete(f"/api/v1/Tiers/{QFD}"), 400, DEVICE + "queuedForDeletionTierCannotBeDeleted")
    used = create_tier(admin, "Used")
    admin.post("/api/v1/Clients", json={"defaultTier": used})
    assert_error(admin.delete(f"/api/v1/Tiers/{used}"), 400, DEVICE + "usedTierCannotBeDeleted")
    assigned = create_tier(admin, "Assigned")
    account = onboard(api)
    assert admin.put(f"/api/v1/Identities/{account.address}", json={"tierId": assigned}).status_code == 204
    assert_error(admin.delete(f"/api/v1/Tiers/{assigned}"), 400, DEVICE + "usedTierCannotBeDeleted")
    assert_error(admin.delete("/api/v1/Tiers/TIRaaaaaaaaaaaaaaaaa"), 404, "error.platform.recordNotFound")
    assert_error(admin.get("/api/v1/Tiers/not-a-tier"), 400, "error.platform.validation.invalidId")


def test_tier_quotas_are_defined_shown_and_removed(admin: AdminClient, services: Services) -> None:
    tier_id = create_tier(admin, "Premium")
    created = admin.post(
        f"/api/v1/Tiers/{tier_id}/Quotas",
        json={"metricKey": "NumberOfSentMessages", "max": 10, "period": "Day"},
    )
    assert created.status_code == 201, created.text
    quota = created.json["result"]
    assert quota["id"].startswith("TQD")
    assert quota["metric"] == {"key": "NumberOfSentMessages", "displayName": "Number of Sent Messages"}
    assert (quota["max"], quota["period"]) == (10, "Day")
    shown = admin.get(f"/api/v1/Tiers/{tier_id}").json["result"]
    assert shown == {"id": tier_id, "name": "Premium", "quotas": [quota]}
    assert events_named(services, "TierQuotaDefinitionCreated") == [
        {"TierId": tier_id, "TierQuotaDefinitionId": quota["id"]}
    ]
    assert admin.delete(f"/api/v1/Tiers/{tier_id}/Quotas/{quota['id']}").status_code == 204
    assert admin.get(f"/api/v1/Tiers/{tier_id}").json["result"]["quotas"] == []
    assert len(events_named(services, "TierQuotaDefinitionDeleted")) == 1
    assert_error(
        admin.delete(f"/api/v1/Tiers/{tier_id}/Quotas/{quota['id']}"), 404, "error.platform.recordNotFound"
    )


def test_a_deleted_tier_takes_its_quotas_along(admin: AdminClient, services: Services) -> None:
    tier_id = create_tier(admin, "Short lived")
    admin.post(
        f"/api/v1/Tiers/{tier_id}/Quotas", json={"metricKey": "NumberOfFiles", "max": 1, "period": "Total"}
    )
    assert admin.delete(f"/api/v1/Tiers/{tier_id}").status_code == 204
    assert services.quotas.tier_quotas(tier_id) == []


def test_quota_errors(admin: AdminClient) -> None:
    tier_id = create_tier(admin, "Premium")
    path = f"/api/v1/Tiers/{tier_id}/Quotas"
    good = {"metricKey": "NumberOfTokens", "max": 5, "period": "Month"}
    assert admin.post(path, json=good).status_code == 201
    assert_error(admin.post(path, json=good), 400, "error.platform.quotas.duplicateQuota")
    assert_error(
        admin.post(path, json={**good, "metricKey": "NumberOfCats"}),
        400,
        "error.platform.quotas.unsupportedMetricKey",
    )
    assert_error(
        admin.post(path, json={**good, "max": -1, "period": "Year"}),
        400,
        "error.platform.quotas.invalidValueForMaxLimitInQuota",
    )
    assert_error(
        admin.post(f"/api/v1/Tiers/{QFD}/Quotas", json=good),
        400,
        "error.platform.quotas.cannotCreateOrDeleteQuotaOnQueuedForDeletionTier",
    )
    qfd_quota = admin.get(f"/api/v1/Tiers/{QFD}").json["result"]["quotas"][0]["id"]
    assert_error(
        admin.delete(f"/api/v1/Tiers/{QFD}/Quotas/{qfd_quota}"),
        400,
        "error.platform.quotas.cannotCreateOrDeleteQuotaOnQueuedForDeletionTier",
    )
    assert_error(
        admin.post(path, json={**good, "period": "Decade"}), 400, "error.platform.inputCannotBeParsed"
    )
    assert_error(
        admin.post("/api/v1/Tiers/TIRaaaaaaaaaaaaaaaaa/Quotas", json=good),
        404,
        "error.platform.recordNotFound",
    )


def test_the_queued_for_deletion_tier_allows_nothing(admin: AdminClient) -> None:
    quotas = admin.get(f"/api/v1/Tiers/{QFD}").json["result"]["quotas"]
    assert len(quotas) == 10
    assert {(quota["max"], quota["period"]) for quota in quotas} == {(0, "Total")}


def test_the_metric_list(admin: AdminClient) -> None:
    metrics = admin.get("/api/v1/Metrics").json["result"]
    assert len(metrics) == 10
    assert {"key": "UsedFileStorageSpace", "displayName": "File Storage Capacity (in Megabytes)"} in metrics


# --- identities --------------------------------------------------------------------------------


def test_operators_onboard_an_identity_without_the_client_secret(
    admin: AdminClient, api: testing.TestClient
) -> None:
    challenge = admin.post("/api/v1/Challenges")
    assert challenge.status_code == 201, challenge.text
    key = IdentityKey.generate()
    text = challenge_text(challenge.json["result"])
    body = {
        "clientId": "test",
        "identityPublicKey": key.identity_public_key(),
        "devicePassword": PASSWORD,
        "identityVersion": 1,
        "signedChallenge": {"challenge": text, "signature": key.sign(text)},
    }
    created = admin.post("/api/v1/Identities", json=body)
    assert created.status_code == 201, created.text
    device = created.json["result"]["device"]
    assert login(api, device["username"]).status_code == 200
    assert_error(
        admin.post("/api/v1/Identities", json={**body, "clientId": "nope"}),
        400,
        "error.platform.unauthorized",
    )


def test_an_identity_with_its_devices_and_quotas(admin: AdminClient, api: testing.TestClient) -> None:
    account = onboard(api)
    tier_id = basic_tier_id(admin)
    admin.post(
        f"/api/v1/Tiers/{tier_id}/Quotas", json={"metricKey": "NumberOfFiles", "max": 5, "period": "Day"}
    )
    admin.post(
        f"/api/v1/Tiers/{tier_id}/Quotas", json={"metricKey": "NumberOfTokens", "max": 9, "period": "Day"}
    )
    path = f"/api/v1/Identities/{account.address}"
    individual = admin.post(
        f"{path}/Quotas", json={"metricKey": "NumberOfFiles", "max": 50, "period": "Week"}
    )
    assert individual.status_code == 201, individual.text
    assert individual.json["result"]["id"].startswith("QUO")
    shown = admin.get(path).json["result"]
    assert shown["address"] == account.address
    assert shown["clientId"] == "test"
    assert shown["tierId"] == tier_id
    assert shown["numberOfDevices"] == 1
    assert [device["id"] for device in shown["devices"]] == [account.device_id]
    assert shown["devices"][0]["lastLogin"] is not None
    # The individual quota overrides the tier's quota of the same metric.
    quotas = {(quota["source"], quota["metric"]["key"], quota["max"]) for quota in shown["quotas"]}
    assert quotas == {("Individual", "NumberOfFiles", 50), ("Tier", "NumberOfTokens", 9)}
    assert_error(
        admin.post(f"{path}/Quotas", json={"metricKey": "NumberOfFiles", "max": 1, "period": "Week"}),
        400,
        "error.platform.quotas.duplicateQuota",
    )
    quota_id = individual.json["result"]["id"]
    assert admin.delete(f"{path}/Quotas/{quota_id}").status_code == 204
    assert_error(admin.delete(f"{path}/Quotas/{quota_id}"), 404, "error.platform.recordNotFound")
    unknown = "/api/v1/Identities/did:e:localhost:dids:0000000000000000000000"
    assert_error(admin.get(unknown), 404, "error.platform.recordNotFound")
    assert_error(
        admin.post(f"{unknown}/Quotas", json={"metricKey": "NumberOfFiles", "max": 1, "period": "Week"}),
        404,
        "error.platform.recordNotFound",
    )


def test_changing_the_tier_of_an_identity(
    admin: AdminClient, api: testing.TestClient, services: Services
) -> None:
    account = onboard(api)
    old_tier = basic_tier_id(admin)
    new_tier = create_tier(admin, "Premium")
    path = f"/api/v1/Identities/{account.address}"
    assert admin.put(path, json={"tierId": new_tier}).status_code == 204
    assert account.get("/api/v2/Identities/Self").json["result"]["tierId"] == new_tier
    assert events_named(services, "TierOfIdentityChanged") == [
        {"OldTierId": old_tier, "NewTierId": new_tier, "IdentityAddress": account.address}
    ]
    assert_error(
        admin.put(path, json={"tierId": QFD}),
        400,
        DEVICE + "queuedForDeletionTierCannotBeManuallyAssignedOrUnassigned",
    )
    assert_error(
        admin.put(path, json={"tierId": "TIRaaaaaaaaaaaaaaaaa"}), 404, "error.platform.recordNotFound"
    )
    assert_error(admin.put(path, json={"tierId": "nope"}), 400, "error.platform.validation.invalidId")


# --- the OData identity list ---------------------------------------------------------------------


@pytest.fixture
def three(admin: AdminClient, api: testing.TestClient, services: Services) -> list[str]:
    """Three identities an hour apart; the second on its own client and tier."""
    premium = create_tier(admin, "Premium")
    admin.post("/api/v1/Clients", json={"clientId": "other", "clientSecret": "other", "defaultTier": premium})
    addresses = []
    for client in ("test", "other", "test"):
        key = IdentityKey.generate()
        body = identity_body(api, key, clientId=client, clientSecret=client)
        created = api.simulate_post("/api/v2/Identities", json=body)
        assert created.status_code == 201, created.text
        addresses.append(created.json["result"]["address"])
        services.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    return addresses


def odata(admin: AdminClient, query: str) -> testing.Result:
    return admin.get("/odata/Identities", query_string=query)


def test_the_identity_list_in_odata_format(
    admin: AdminClient, api: testing.TestClient, three: list[str]
) -> None:
    result = odata(admin, "")
    assert result.status_code == 200, result.text
    body = result.json
    assert body["@odata.context"].endswith("/odata/$metadata#Identities")
    assert "@odata.count" not in body
    assert sorted(item["address"] for item in body["value"]) == sorted(three)
    second = next(item for item in body["value"] if item["address"] == three[1])
    assert second["createdWithClient"] == "other"
    assert second["tier"]["name"] == "Premium"
    assert second["numberOfDevices"] == 1
    assert second["lastLoginAt"] is None
    assert second["datawalletVersion"] is None
    assert set(second) == {
        "address",
        "createdAt",
        "lastLoginAt",
        "createdWithClient",
        "datawalletVersion",
        "identityVersion",
        "tier",
        "numberOfDevices",
    }
    account = onboard(api)
    listed = odata(admin, f"$filter=address eq '{account.address}'").json["value"]
    assert listed[0]["datawalletVersion"] == 1
    assert listed[0]["lastLoginAt"] is not None


def test_filtering_ordering_and_paging_identities(admin: AdminClient, three: list[str]) -> None:
    def addresses(query: str) -> list[str]:
        result = odata(admin, query)
        assert result.status_code == 200, result.text
        return [item["address"] for item in result.json["value"]]

    assert addresses(f"$filter=address eq '{three[0]}'") == [three[0]]
    assert addresses("$filter=createdWithClient eq 'other'") == [three[1]]
    premium = odata(admin, "$filter=createdWithClient eq 'other'").json["value"][0]["tier"]["id"]
    assert addresses(f"$filter=tier/id eq '{premium}'") == [three[1]]
    created = [odata(admin, f"$filter=address eq '{a}'").json["value"][0]["createdAt"] for a in three]
    assert addresses(f"$filter=createdAt gt {created[0]}&$orderby=createdAt") == three[1:]
    assert addresses(f"$filter=createdAt lt {created[2]} and createdWithClient eq 'test'") == [three[0]]
    assert addresses("$orderby=createdAt desc") == three[::-1]
    assert addresses("$orderby=createdAt&$top=1&$skip=1") == [three[1]]
    counted = odata(admin, "$count=true&$top=1").json
    assert counted["@odata.count"] == 3
    assert len(counted["value"]) == 1


@pytest.mark.parametrize(
    "query",
    [
        "$top=101",
        "$top=-1",
        "$skip=x",
        "$count=maybe",
        "$select=address",
        "$expand=tier",
        "$filter=address ne 'x'",
        "$filter=address eq 'x' or address eq 'y'",
        "$filter=numberOfDevices gt 1",
        "$filter=address eq x",
        "$filter=address eq 'unterminated",
        "$filter=createdAt gt yesterday",
        "$filter=address eq",
        "$filter=(address eq 'x')",
        "$orderby=address asc, createdAt desc",
        "$orderby=createdAt sideways",
        "$orderby=secret",
    ],
)
def test_unsupported_odata_is_refused_with_a_clear_message(admin: AdminClient, query: str) -> None:
    error = assert_error(odata(admin, query), 400, "error.platform.validation.invalidODataQuery")
    assert error["message"]


def test_a_quote_inside_an_odata_text_is_data(admin: AdminClient, three: list[str]) -> None:
    result = odata(admin, "$filter=createdWithClient eq 'o''ther'' or 1=1 --'")
    assert result.status_code == 200
    assert result.json["value"] == []


# --- overviews and tokens ------------------------------------------------------------------------


def test_overviews_of_messages_relationships_and_tokens(
    admin: AdminClient, api: testing.TestClient, services: Services
) -> None:
    alice, bob = onboard(api), onboard(api)
    relate(alice, bob)
    sent = send_message(alice, bob)
    assert sent.status_code == 201, sent.text
    outgoing = admin.get("/api/v1/Messages", query_string=f"participant={alice.address}&type=Outgoing").json[
        "result"
    ]
    assert len(outgoing) == 1
    assert outgoing[0]["messageId"] == sent.json["result"]["id"]
    assert outgoing[0]["senderAddress"] == alice.address
    assert outgoing[0]["numberOfAttachments"] == 0
    assert outgoing[0]["recipients"][0]["address"] == bob.address
    incoming = admin.get("/api/v1/Messages", query_string=f"participant={bob.address}&type=Incoming").json[
        "result"
    ]
    assert [item["messageId"] for item in incoming] == [sent.json["result"]["id"]]
    assert (
        admin.get("/api/v1/Messages", query_string=f"participant={bob.address}&type=Outgoing").json["result"]
        == []
    )
    assert_error(
        admin.get("/api/v1/Messages", query_string=f"participant={bob.address}"),
        400,
        "error.platform.validation.invalidPropertyValue",
    )

    relationships = admin.get("/api/v1/Relationships", query_string=f"participant={bob.address}").json[
        "result"
    ]
    assert len(relationships) == 1
    overview = relationships[0]
    assert overview["peer"] == alice.address
    assert overview["requestedBy"] == "Self"
    assert overview["status"] == "Active"
    assert overview["answeredAt"] is not None
    assert overview["answeredByDevice"] == alice.device_id
    assert overview["createdByDevice"] == bob.device_id
    assert_error(
        admin.get("/api/v1/Relationships", query_string="participant=nobody"),
        400,
        "error.platform.validation.invalidPropertyValue",
    )

    expires_at = format_datetime(services.clock.now() + timedelta(days=1))
    token = alice.post("/api/v2/Tokens", json={"content": CONTENT, "expiresAt": expires_at})
    tokens = admin.get("/api/v1/Tokens", query_string=f"createdBy={alice.address}").json["result"]
    assert [item["id"] for item in tokens] == [token.json["result"]["id"]]
    assert tokens[0]["content"] == CONTENT


def test_resetting_the_failed_password_count_unlocks_a_token(
    admin: AdminClient, api: testing.TestClient, services: Services
) -> None:
    alice, bob = onboard(api), onboard(api)
    expires_at = format_datetime(services.clock.now() + timedelta(days=1))
    created = alice.post(
        "/api/v2/Tokens", json={"content": CONTENT, "expiresAt": expires_at, "password": CONTENT}
    )
    token_id = created.json["result"]["id"]
    wrong = password_query(b"wrong")
    for _ in range(100):
        assert bob.get(f"/api/v2/Tokens/{token_id}", query_string=wrong).status_code == 404
    assert_error(
        bob.get(f"/api/v2/Tokens/{token_id}", query_string=wrong),
        400,
        "error.platform.token.tooManyFailedPasswordAttempts",
    )
    assert admin.patch(f"/api/v1/Tokens/{token_id}/ResetAccessFailedCount").status_code == 204
    assert bob.get(f"/api/v2/Tokens/{token_id}", query_string=wrong).status_code == 404
    assert_error(
        admin.patch("/api/v1/Tokens/TOKaaaaaaaaaaaaaaaaa/ResetAccessFailedCount"),
        404,
        "error.platform.recordNotFound",
    )


# --- deletion processes ----------------------------------------------------------------------


def test_deletion_processes_of_an_identity_with_their_audit_logs(
    admin: AdminClient, api: testing.TestClient, services: Services
) -> None:
    alice, bob = onboard(api), onboard(api)
    processes = "/api/v2/Identities/Self/DeletionProcesses"
    first = alice.post(processes, json={}).json["result"]
    services.clock.advance(timedelta(seconds=1))  # audit entries are ordered by time
    assert alice.put(f"{processes}/{first['id']}/Cancel").status_code == 200
    services.clock.advance(timedelta(seconds=1))
    second = alice.post(processes, json={"lengthOfGracePeriodInDays": 3}).json["result"]
    foreign = bob.post(processes, json={}).json["result"]

    base = f"/api/v1/Identities/{alice.address}/DeletionProcesses"
    listed = admin.get(base)
    assert listed.status_code == 200, listed.text
    assert [(p["id"], p["status"]) for p in listed.json["result"]] == [
        (first["id"], "Cancelled"),
        (second["id"], "Active"),
    ]
    first_log = listed.json["result"][0]["auditLog"]
    assert [(e["messageKey"], e["oldStatus"], e["newStatus"]) for e in first_log] == [
        ("StartedByOwner", None, "Active"),
        ("CancelledByOwner", "Active", "Cancelled"),
    ]

    one = admin.get(f"{base}/{second['id']}").json["result"]
    assert one["gracePeriodEndsAt"] == second["gracePeriodEndsAt"]
    assert [e["messageKey"] for e in one["auditLog"]] == ["StartedByOwner"]
    assert set(one) == {
        "id",
        "status",
        "createdAt",
        "approvedAt",
        "approvedByDevice",
        "gracePeriodEndsAt",
        "auditLog",
    }

    audit = admin.get(f"{base}/AuditLogs").json["result"]
    assert [e["messageKey"] for e in audit] == ["StartedByOwner", "CancelledByOwner", "StartedByOwner"]

    # Another identity's process is not found under Alice's address; unknown ones neither.
    assert_error(admin.get(f"{base}/{foreign['id']}"), 404, "error.platform.recordNotFound")
    assert_error(admin.get(f"{base}/IDP00000000000000000"), 404, "error.platform.recordNotFound")
    assert_error(admin.get(f"{base}/not-an-id"), 400, "error.platform.validation.invalidId")
    unknown = "did:e:localhost:dids:0000000000000000000000"
    assert_error(
        admin.get(f"/api/v1/Identities/{unknown}/DeletionProcesses"), 404, "error.platform.recordNotFound"
    )
    assert admin.get(f"/api/v1/Identities/{unknown}/DeletionProcesses/AuditLogs").json["result"] == []


def test_an_operator_starts_a_deletion_the_owner_sees_and_can_cancel(
    admin: AdminClient, api: testing.TestClient, services: Services
) -> None:
    alice, bob = onboard(api), onboard(api)
    relate(alice, bob)
    base = f"/api/v1/Identities/{alice.address}/DeletionProcesses"
    started = admin.post(base, json={"lengthOfGracePeriodInDays": 7})
    assert started.status_code == 201, started.text
    process = started.json["result"]
    assert process["status"] == "Active"
    assert process["approvedByDevice"] is None
    assert [(e["messageKey"], e["oldStatus"], e["newStatus"]) for e in process["auditLog"]] == [
        ("StartedBySupport", None, "Active")
    ]
    assert process["gracePeriodEndsAt"] == format_datetime(services.clock.now() + timedelta(days=7))
    # The same rules as a start by the owner: queued for deletion, one open process at a time.
    assert admin.get(f"/api/v1/Identities/{alice.address}").json["result"]["tierId"] == QFD
    assert_error(admin.post(base), 400, DEVICE + "onlyOneActiveDeletionProcessAllowed")
    assert_error(
        alice.post("/api/v2/Identities/Self/DeletionProcesses", json={}),
        400,
        DEVICE + "onlyOneActiveDeletionProcessAllowed",
    )
    assert [event["IdentityAddress"] for event in events_named(services, "IdentityToBeDeleted")] == [
        alice.address
    ]
    assert [event["PeerOfIdentityToBeDeleted"] for event in events_named(services, "PeerToBeDeleted")] == [
        bob.address
    ]

    assert [kind for kind, _ in sync(bob)][-1] == "PeerToBeDeleted"

    # The owner sees it without a creating device, and cancels it as its own.
    own = alice.get("/api/v2/Identities/Self/DeletionProcesses").json["result"]
    assert [(p["id"], p["createdByDevice"]) for p in own] == [(process["id"], None)]
    cancelled = alice.put(f"/api/v2/Identities/Self/DeletionProcesses/{process['id']}/Cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert admin.get(f"/api/v1/Identities/{alice.address}").json["result"]["tierId"] != QFD
    # The owner's devices learn of the operator's start from an external event (no sync runs while
    # the identity is to be deleted, so it comes with the next sync); the owner's own start raises
    # none: its device already knows.
    assert [event for event in sync(alice) if event[0] == "IdentityDeletionProcessStarted"] == [
        ("IdentityDeletionProcessStarted", {"deletionProcessId": process["id"]})
    ]
    started_by_owner = alice.post("/api/v2/Identities/Self/DeletionProcesses", json={})
    assert started_by_owner.status_code == 201, started_by_owner.text
    alice.put(f"/api/v2/Identities/Self/DeletionProcesses/{started_by_owner.json['result']['id']}/Cancel")
    assert "IdentityDeletionProcessStarted" not in [kind for kind, _ in sync(alice)]

    assert_error(
        admin.post(base, json={"lengthOfGracePeriodInDays": -1}),
        400,
        "error.platform.validation.invalidPropertyValue",
    )
    unknown = "did:e:localhost:dids:0000000000000000000000"
    assert_error(
        admin.post(f"/api/v1/Identities/{unknown}/DeletionProcesses"), 404, "error.platform.recordNotFound"
    )
