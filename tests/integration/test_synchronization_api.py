"""Sync runs, external events and the datawallet through HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from falcon import testing

from backbone.modules.synchronization.model import ExternalEventType
from backbone.platform.clock import ManualClock
from backbone.wiring import Services
from tests.helpers.api import DWV, Account, add_device, assert_error, onboard


def modification(object_id: str, kind: str = "Create", version: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "objectIdentifier": object_id,
        "collection": "Relationships",
        "payloadCategory": "TechnicalData",
        "encryptedPayload": "eyJjcGgiOiJhYmMifQ",
        "datawalletVersion": version,
        **extra,
    }


def start(account: Account, version: int = 1, **body: Any) -> Any:
    headers = {"X-Supported-Datawallet-Version": str(version)}
    return account.post("/api/v2/SyncRuns", json=body or {"type": "ExternalEventSync"}, headers=headers)


def event_for(services: Services, account: Account, relationship: str = "RELaaaaaaaaaaaaaaaaa") -> str:
    event = services.synchronization.create_external_event(
        account.address, ExternalEventType.RelationshipStatusChanged, {"relationshipId": relationship}
    )
    return event.id


def test_no_events_means_no_new_events(api: testing.TestClient) -> None:
    account = onboard(api)
    result = start(account)
    assert result.status_code == 200
    assert result.json == {"result": {"status": "NoNewEvents", "syncRun": None}}


def test_an_event_is_synced_in_a_run_and_then_gone(api: testing.TestClient, services: Services) -> None:
    account = onboard(api)
    event_id = event_for(services, account)
    started = start(account)
    assert started.status_code == 201
    run = started.json["result"]["syncRun"]
    assert started.json["result"]["status"] == "Created"
    assert run["type"] == "ExternalEventSync"
    assert run["eventCount"] == 1
    assert run["index"] == 1  # the datawallet upgrade run of onboarding was index 0
    assert run["createdBy"] == account.address
    assert run["createdByDevice"] == account.device_id
    assert account.get(f"/api/v2/SyncRuns/{run['id']}").json["result"] == run
    events = account.get(f"/api/v2/SyncRuns/{run['id']}/ExternalEvents", headers=DWV).json
    assert "pagination" not in events
    assert events["result"] == [
        {
            "id": event_id,
            "type": "RelationshipStatusChanged",
            "index": 0,
            "createdAt": events["result"][0]["createdAt"],
            "syncErrorCount": 0,
            "payload": {"relationshipId": "RELaaaaaaaaaaaaaaaaa"},
        }
    ]
    finalized = account.put(
        f"/api/v2/SyncRuns/{run['id']}/FinalizeExternalEventSync",
        json={"externalEventResults": [{"externalEventId": event_id}], "datawalletModifications": []},
        headers=DWV,
    )
    assert finalized.status_code == 200
    assert finalized.json["result"] == {
        "newDatawalletModificationIndex": None,
        "datawalletModifications": [],
        "newUnsyncedExternalEventsExist": False,
    }
    assert start(account).json["result"]["status"] == "NoNewEvents"


def test_external_event_indexes_are_gap_free_per_identity(
    api: testing.TestClient, services: Services
) -> None:
    first, second = onboard(api), onboard(api)
    for account in (first, second, first, first, second):
        event_for(services, account)
    run = start(first).json["result"]["syncRun"]
    indexes = [
        event["index"] for event in first.get(f"/api/v2/SyncRuns/{run['id']}/ExternalEvents").json["result"]
    ]
    assert indexes == [0, 1, 2]


def test_a_second_run_while_one_is_open_is_refused_until_it_expires(
    api: testing.TestClient, services: Services, clock: ManualClock
) -> None:
    account = onboard(api)
    event_id = event_for(services, account)
    run = start(account).json["result"]["syncRun"]
    assert_error(
        start(account), 400, "error.platform.validation.syncRun.cannotStartSyncRunWhenAnotherSyncRunIsRunning"
    )
    assert_error(
        start(account, type="DatawalletVersionUpgrade"),
        400,
        "error.platform.validation.syncRun.cannotStartSyncRunWhenAnotherSyncRunIsRunning",
    )
    clock.advance(timedelta(seconds=11))
    restarted = start(account).json["result"]
    assert restarted["status"] == "Created"
    assert restarted["syncRun"]["id"] != run["id"]
    events = account.get(f"/api/v2/SyncRuns/{restarted['syncRun']['id']}/ExternalEvents").json["result"]
    assert [(event["id"], event["syncErrorCount"]) for event in events] == [(event_id, 1)]
    assert_error(
        account.put(f"/api/v2/SyncRuns/{run['id']}/FinalizeExternalEventSync", json={}, headers=DWV),
        400,
        "error.platform.validation.syncRun.syncRunAlreadyFinalized",
    )


def test_failed_events_are_redelivered_until_three_errors(
    api: testing.TestClient, services: Services
) -> None:
    account = onboard(api)
    failing, processed = event_for(services, account), event_for(services, account)
    sync_error_counts = []
    for attempt in range(3):
        run = start(account).json["result"]["syncRun"]
        events = account.get(f"/api/v2/SyncRuns/{run['id']}/ExternalEvents").json["result"]
        sync_error_counts += [event["syncErrorCount"] for event in events if event["id"] == failing]
        results = [{"externalEventId": failing, "errorCode": "error.runtime.unknownType"}]
        if attempt == 0:
            results.append({"externalEventId": processed})
        finalized = account.put(
            f"/api/v2/SyncRuns/{run['id']}/FinalizeExternalEventSync",
            json={"externalEventResults": results, "datawalletModifications": []},
        ).json["result"]
        # Redeliveries are not announced: the flag only counts events that never failed.
        assert finalized["newUnsyncedExternalEventsExist"] is False
    assert sync_error_counts == [0, 1, 2]
    assert start(account).json["result"]["status"] == "NoNewEvents"


def test_events_left_out_of_the_results_count_as_not_processed(
    api: testing.TestClient, services: Services
) -> None:
    account = onboard(api)
    left_out = event_for(services, account)
    run = start(account).json["result"]["syncRun"]
    finalized = account.put(f"/api/v2/SyncRuns/{run['id']}/FinalizeExternalEventSync", json={})
    assert finalized.json["result"]["newUnsyncedExternalEventsExist"] is False
    again = start(account).json["result"]["syncRun"]
    events = account.get(f"/api/v2/SyncRuns/{again['id']}/ExternalEvents").json["result"]
    assert [(event["id"], event["syncErrorCount"]) for event in events] == [(left_out, 1)]


def test_new_unsynced_events_are_announced_by_the_finalization(
    api: testing.TestClient, services: Services
) -> None:
    account = onboard(api)
    first = event_for(services, account)
    run = start(account).json["result"]["syncRun"]
    event_for(services, account)  # arrives while the run is open
    finalized = account.put(
        f"/api/v2/SyncRuns/{run['id']}/FinalizeExternalEventSync",
        json={"externalEventResults": [{"externalEventId": first}]},
    )
    assert finalized.json["result"]["newUnsyncedExternalEventsExist"] is True


def test_only_the_creating_device_and_identity_may_use_a_run(
    api: testing.TestClient, services: Services
) -> None:
    owner, stranger = onboard(api), onboard(api)
    event_for(services, owner)
    run_id = start(owner).json["result"]["syncRun"]["id"]
    assert_error(stranger.get(f"/api/v2/SyncRuns/{run_id}"), 404, "error.platform.recordNotFound")
    assert_error(
        stranger.get(f"/api/v2/SyncRuns/{run_id}/ExternalEvents"), 404, "error.platform.recordNotFound"
    )
    assert_error(
        stranger.put(f"/api/v2/SyncRuns/{run_id}/FinalizeExternalEventSync", json={}),
        404,
        "error.platform.recordNotFound",
    )


def test_refreshing_moves_the_expiry(api: testing.TestClient, services: Services, clock: ManualClock) -> None:
    account = onboard(api)
    event_for(services, account)
    run = start(account, type="ExternalEventSync", duration=2).json["result"]["syncRun"]
    clock.advance(timedelta(seconds=1))
    refreshed = account.put(f"/api/v2/SyncRuns/{run['id']}/RefreshExpirationTime").json["result"]
    assert refreshed["expiresAt"] == (clock.now() + timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_a_run_of_the_wrong_type_cannot_be_finalized_that_way(api: testing.TestClient) -> None:
    account = onboard(api)
    run = start(account, type="DatawalletVersionUpgrade").json["result"]["syncRun"]
    assert_error(
        account.put(f"/api/v2/SyncRuns/{run['id']}/FinalizeExternalEventSync", json={}),
        400,
        "error.platform.validation.syncRun.unexpectedSyncRunType",
    )


def test_the_datawallet_is_created_by_the_first_version_upgrade(api: testing.TestClient) -> None:
    account = onboard(api, with_datawallet=False)
    assert_error(account.get("/api/v2/Datawallet"), 404, "error.platform.recordNotFound")
    assert_error(start(account), 404, "error.platform.recordNotFound")
    run = start(account, type="DatawalletVersionUpgrade").json["result"]["syncRun"]
    finalized = account.put(
        f"/api/v2/SyncRuns/{run['id']}/FinalizeDatawalletVersionUpgrade",
        json={"newDatawalletVersion": 1, "datawalletModifications": [modification("DVC1")]},
    )
    assert finalized.status_code == 200
    body = finalized.json["result"]
    assert body["newDatawalletModificationIndex"] == 0
    assert [item["index"] for item in body["datawalletModifications"]] == [0]
    assert account.get("/api/v2/Datawallet").json["result"] == {"version": 1}


def test_a_datawallet_cannot_be_downgraded(api: testing.TestClient) -> None:
    account = onboard(api, with_datawallet=False)
    for version, status in ((2, 200), (1, 400)):
        run = start(account, version=2, type="DatawalletVersionUpgrade").json["result"]["syncRun"]
        result = account.put(
            f"/api/v2/SyncRuns/{run['id']}/FinalizeDatawalletVersionUpgrade",
            json={"newDatawalletVersion": version},
        )
        assert result.status_code == status
    assert result.json["error"]["code"] == "error.platform.datawallet.cannotDowngrade"


def test_an_insufficient_supported_version_is_refused(api: testing.TestClient) -> None:
    account = onboard(api, with_datawallet=False)
    run = start(account, type="DatawalletVersionUpgrade").json["result"]["syncRun"]
    account.put(
        f"/api/v2/SyncRuns/{run['id']}/FinalizeDatawalletVersionUpgrade", json={"newDatawalletVersion": 2}
    )
    code = "error.platform.validation.datawallet.insufficientSupportedDatawalletVersion"
    assert_error(start(account), 400, code)
    assert_error(account.get("/api/v2/Datawallet/Modifications", headers=DWV), 400, code)
    push = {"localIndex": None, "modifications": [modification("X")]}
    assert_error(account.post("/api/v2/Datawallet/Modifications", json=push, headers=DWV), 400, code)


def test_pushed_modifications_get_contiguous_indexes_from_zero(api: testing.TestClient) -> None:
    account = onboard(api)
    first = account.post(
        "/api/v2/Datawallet/Modifications",
        json={"localIndex": None, "modifications": [modification("A"), modification("B")]},
        headers=DWV,
    )
    assert first.status_code == 201
    assert first.json["result"]["newIndex"] == 1
    assert [item["index"] for item in first.json["result"]["modifications"]] == [0, 1]
    second = account.post(
        "/api/v2/Datawallet/Modifications",
        json={"localIndex": 1, "modifications": [modification("A", "Update")]},
        headers=DWV,
    ).json["result"]
    assert second["newIndex"] == 2


def test_a_push_must_start_from_the_latest_index(api: testing.TestClient) -> None:
    account = onboard(api)
    body = {"localIndex": None, "modifications": [modification("A")]}
    assert account.post("/api/v2/Datawallet/Modifications", json=body, headers=DWV).status_code == 201
    for stale in (None, 5, -1):
        assert_error(
            account.post("/api/v2/Datawallet/Modifications", json={**body, "localIndex": stale}, headers=DWV),
            400,
            "error.platform.validation.datawallet.datawalletNotUpToDate",
        )


def test_no_push_during_an_open_sync_run(api: testing.TestClient, services: Services) -> None:
    account = onboard(api)
    event_for(services, account)
    start(account)
    assert_error(
        account.post(
            "/api/v2/Datawallet/Modifications", json={"modifications": [modification("A")]}, headers=DWV
        ),
        400,
        "error.platform.validation.datawallet.cannotPushDatawalletModificationsDuringActiveSyncRun",
    )


def test_a_modification_may_not_claim_a_newer_datawallet_version(api: testing.TestClient) -> None:
    account = onboard(api)
    assert_error(
        account.post(
            "/api/v2/Datawallet/Modifications",
            json={"modifications": [modification("A", version=2)]},
            headers={"X-Supported-Datawallet-Version": "2"},
        ),
        400,
        "error.platform.datawallet.datawalletVersionOfModificationTooHigh",
    )


@pytest.mark.parametrize("header", [None, "0", "abc", "70000"])
def test_the_supported_version_header_is_required(api: testing.TestClient, header: str | None) -> None:
    account = onboard(api)
    headers = {} if header is None else {"X-Supported-Datawallet-Version": header}
    result = account.post("/api/v2/SyncRuns", json={}, headers=headers)
    assert result.status_code == 400
    assert "X-Supported-Datawallet-Version" in result.json["error"]["message"]


def test_modifications_are_read_deduplicated_and_after_the_local_index(api: testing.TestClient) -> None:
    account = onboard(api)
    pushes = [modification("A"), modification("B"), modification("A", "Update"), modification("A", "Update")]
    account.post("/api/v2/Datawallet/Modifications", json={"modifications": pushes}, headers=DWV)
    everything = account.get("/api/v2/Datawallet/Modifications", headers=DWV).json["result"]
    assert [(item["objectIdentifier"], item["type"], item["index"]) for item in everything] == [
        ("A", "Create", 0),
        ("B", "Create", 1),
        ("A", "Update", 3),
    ]
    assert everything[0]["encryptedPayload"] == "eyJjcGgiOiJhYmMifQ"
    assert everything[0]["createdByDevice"] == account.device_id
    after = account.get("/api/v2/Datawallet/Modifications", params={"localIndex": 1}, headers=DWV).json[
        "result"
    ]
    assert [item["index"] for item in after] == [3]


def test_modifications_page_with_total_pages(api: testing.TestClient) -> None:
    account = onboard(api)
    pushes = [modification(f"O{number}") for number in range(7)]
    account.post("/api/v2/Datawallet/Modifications", json={"modifications": pushes}, headers=DWV)
    seen: list[int] = []
    page = 1
    while True:
        body = account.get(
            "/api/v2/Datawallet/Modifications", params={"pageSize": 3, "pageNumber": page}, headers=DWV
        ).json
        seen += [item["index"] for item in body["result"]]
        assert body["pagination"] == {"pageNumber": page, "pageSize": 3, "totalPages": 3, "totalRecords": 7}
        if page == body["pagination"]["totalPages"]:
            break
        page += 1
    assert seen == list(range(7))
    assert_error(
        account.get("/api/v2/Datawallet/Modifications", params={"pageSize": 201}, headers=DWV),
        400,
        "error.platform.validation.pagination.invalidPageSize",
    )


# --- several devices of one identity ----------------------------------------------------------


def test_only_the_creating_device_may_read_finalize_or_refresh_a_run(
    api: testing.TestClient, services: Services
) -> None:
    first = onboard(api)
    second = add_device(first)
    event_for(services, first)
    run = start(first).json["result"]["syncRun"]
    base = f"/api/v2/SyncRuns/{run['id']}"
    assert second.get(base).json["result"] == run
    prefix = "error.platform.validation.syncRun."
    assert_error(
        second.get(f"{base}/ExternalEvents"),
        400,
        prefix + "cannotReadExternalEventsOfASyncRunStartedByAnotherDevice",
    )
    assert_error(
        second.put(f"{base}/FinalizeExternalEventSync", json={}),
        400,
        prefix + "cannotFinalizeSyncRunStartedByAnotherDevice",
    )
    assert_error(
        second.put(f"{base}/RefreshExpirationTime"),
        400,
        prefix + "cannotRefreshExpirationTimeOfSyncRunStartedByAnotherDevice",
    )
    assert_error(start(second), 400, prefix + "cannotStartSyncRunWhenAnotherSyncRunIsRunning")
    assert_error(
        second.post(
            "/api/v2/Datawallet/Modifications", json={"modifications": [modification("A")]}, headers=DWV
        ),
        400,
        "error.platform.validation.datawallet.cannotPushDatawalletModificationsDuringActiveSyncRun",
    )
    # The type is checked before the device, as the original does.
    assert_error(
        second.put(f"{base}/FinalizeDatawalletVersionUpgrade", json={"newDatawalletVersion": 1}),
        400,
        prefix + "unexpectedSyncRunType",
    )
    assert first.put(f"{base}/FinalizeExternalEventSync", json={}).status_code == 200


def test_another_device_finalizing_a_version_upgrade_is_refused(api: testing.TestClient) -> None:
    first = onboard(api)
    second = add_device(first)
    run = start(first, type="DatawalletVersionUpgrade").json["result"]["syncRun"]
    assert_error(
        second.put(
            f"/api/v2/SyncRuns/{run['id']}/FinalizeDatawalletVersionUpgrade", json={"newDatawalletVersion": 1}
        ),
        400,
        "error.platform.validation.syncRun.cannotFinalizeSyncRunStartedByAnotherDevice",
    )


def test_an_expired_run_of_one_device_is_cancelled_by_the_other(
    api: testing.TestClient, services: Services, clock: ManualClock
) -> None:
    first = onboard(api)
    second = add_device(first)
    event_id = event_for(services, first)
    stale = start(first, type="ExternalEventSync", duration=5).json["result"]["syncRun"]
    clock.advance(timedelta(seconds=6))
    taken_over = start(second).json["result"]["syncRun"]
    assert taken_over["createdByDevice"] == second.device_id
    assert taken_over["index"] == stale["index"] + 1
    events = second.get(f"/api/v2/SyncRuns/{taken_over['id']}/ExternalEvents").json["result"]
    assert [(event["id"], event["syncErrorCount"]) for event in events] == [(event_id, 1)]
    already = "error.platform.validation.syncRun.syncRunAlreadyFinalized"
    base = f"/api/v2/SyncRuns/{stale['id']}"
    assert_error(first.put(f"{base}/FinalizeExternalEventSync", json={}), 400, already)
    assert_error(first.get(f"{base}/ExternalEvents"), 400, already)
    assert_error(first.put(f"{base}/RefreshExpirationTime"), 400, already)


def test_an_expired_run_can_still_be_refreshed_and_finalized_by_its_device(
    api: testing.TestClient, services: Services, clock: ManualClock
) -> None:
    account = onboard(api)
    event_id = event_for(services, account)
    run = start(account, type="ExternalEventSync", duration=1).json["result"]["syncRun"]
    clock.advance(timedelta(seconds=30))
    refreshed = account.put(f"/api/v2/SyncRuns/{run['id']}/RefreshExpirationTime")
    assert refreshed.status_code == 200
    assert (
        account.get(f"/api/v2/SyncRuns/{run['id']}").json["result"]["expiresAt"]
        == (refreshed.json["result"]["expiresAt"])
    )
    finalized = account.put(
        f"/api/v2/SyncRuns/{run['id']}/FinalizeExternalEventSync",
        json={"externalEventResults": [{"externalEventId": event_id}]},
    )
    assert finalized.status_code == 200


def test_devices_share_one_datawallet_and_its_index(api: testing.TestClient) -> None:
    first = onboard(api)
    second = add_device(first)
    pushed = first.post(
        "/api/v2/Datawallet/Modifications",
        json={"localIndex": None, "modifications": [modification("A")]},
        headers=DWV,
    )
    assert pushed.json["result"]["newIndex"] == 0
    seen = second.get("/api/v2/Datawallet/Modifications", headers=DWV).json["result"]
    assert [(item["index"], item["createdByDevice"]) for item in seen] == [(0, first.device_id)]
    stale = {"localIndex": None, "modifications": [modification("B")]}
    assert_error(
        second.post("/api/v2/Datawallet/Modifications", json=stale, headers=DWV),
        400,
        "error.platform.validation.datawallet.datawalletNotUpToDate",
    )
    caught_up = second.post(
        "/api/v2/Datawallet/Modifications", json={**stale, "localIndex": 0}, headers=DWV
    ).json["result"]
    assert caught_up["newIndex"] == 1


# --- the remaining rules ----------------------------------------------------------------------


def test_a_run_of_the_other_type_cannot_be_finalized_as_an_upgrade(
    api: testing.TestClient, services: Services
) -> None:
    account = onboard(api)
    event_for(services, account)
    run = start(account).json["result"]["syncRun"]
    assert_error(
        account.put(
            f"/api/v2/SyncRuns/{run['id']}/FinalizeDatawalletVersionUpgrade", json={"newDatawalletVersion": 1}
        ),
        400,
        "error.platform.validation.syncRun.unexpectedSyncRunType",
    )


def test_finalizing_checks_modification_versions_against_the_datawallet(
    api: testing.TestClient, services: Services
) -> None:
    account = onboard(api, with_datawallet=False)
    too_high = "error.platform.datawallet.datawalletVersionOfModificationTooHigh"
    upgrade = start(account, version=3, type="DatawalletVersionUpgrade").json["result"]["syncRun"]
    body = {"newDatawalletVersion": 2, "datawalletModifications": [modification("A", version=3)]}
    assert_error(
        account.put(f"/api/v2/SyncRuns/{upgrade['id']}/FinalizeDatawalletVersionUpgrade", json=body),
        400,
        too_high,
    )
    # Nothing of the refused finalization stuck: the run is still open and there is no datawallet.
    assert_error(account.get("/api/v2/Datawallet"), 404, "error.platform.recordNotFound")
    body["datawalletModifications"] = [modification("A", version=2)]
    upgraded = account.put(f"/api/v2/SyncRuns/{upgrade['id']}/FinalizeDatawalletVersionUpgrade", json=body)
    assert upgraded.json["result"]["newDatawalletModificationIndex"] == 0

    event_for(services, account)
    run = start(account, version=3).json["result"]["syncRun"]
    finalize = f"/api/v2/SyncRuns/{run['id']}/FinalizeExternalEventSync"
    assert_error(
        account.put(finalize, json={"datawalletModifications": [modification("B", version=3)]}), 400, too_high
    )
    finalized = account.put(finalize, json={})
    # The datawallet's newest index, even when this finalization added nothing.
    assert finalized.json["result"]["newDatawalletModificationIndex"] == 0
    assert finalized.json["result"]["datawalletModifications"] == []


def test_unknown_and_malformed_sync_runs(api: testing.TestClient) -> None:
    account = onboard(api)
    unknown = "/api/v2/SyncRuns/SYRnotanexistingone0"
    not_found = "error.platform.recordNotFound"
    assert_error(account.get(unknown), 404, not_found)
    assert_error(account.get(f"{unknown}/ExternalEvents"), 404, not_found)
    assert_error(account.put(f"{unknown}/RefreshExpirationTime"), 404, not_found)
    assert_error(account.put(f"{unknown}/FinalizeExternalEventSync", json={}), 404, not_found)
    assert_error(
        account.put(f"{unknown}/FinalizeDatawalletVersionUpgrade", json={"newDatawalletVersion": 1}),
        404,
        not_found,
    )
    assert_error(account.get("/api/v2/SyncRuns/nonsense"), 400, "error.platform.validation.invalidId")
    assert_error(
        account.post("/api/v2/SyncRuns", json={"type": "Everything"}, headers=DWV),
        400,
        "error.platform.inputCannotBeParsed",
    )
    assert_error(
        account.post("/api/v2/Datawallet/Modifications", json={"modifications": []}, headers=DWV),
        400,
        "error.platform.validation.invalidPropertyValue",
    )
