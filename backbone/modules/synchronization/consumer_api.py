"""Consumer API routes of sync runs and the datawallet."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import falcon

from backbone.modules.synchronization.model import (
    DEFAULT_SYNC_RUN_DURATION,
    Datawallet,
    DatawalletModification,
    EventResult,
    ExternalEvent,
    ModificationType,
    NewModification,
    SyncRun,
    SyncRunType,
)
from backbone.modules.synchronization.service import FinalizedSync, SynchronizationService
from backbone.platform.errors import InvalidInput, InvalidPropertyValue
from backbone.platform.http import (
    App,
    JsonObject,
    Query,
    checked_id,
    principal_of,
    read_json,
    send,
    send_page,
)
from backbone.platform.openapi import (
    PAGE_QUERY,
    array,
    binary,
    boolean,
    describe,
    enum,
    envelope,
    identifier,
    integer,
    nullable,
    obj,
    paged,
    string,
    timestamp,
)

USHORT_MAX = 65535
_VERSION_HEADER = "X-Supported-Datawallet-Version"


TAGS = ("Synchronization",)
DATAWALLET_VERSION = integer(minimum=1, maximum=65535)
SYNC_RUN = obj(
    {
        "id": string(),
        "type": enum(*(t.name for t in SyncRunType)),
        "expiresAt": timestamp(),
        "index": integer(minimum=0),
        "createdAt": timestamp(),
        "createdBy": string(),
        "createdByDevice": string(),
        "eventCount": integer(minimum=0),
    }
)
EXTERNAL_EVENT = obj(
    {
        "id": string(),
        "type": string(),
        "index": integer(minimum=0),
        "createdAt": timestamp(),
        "syncErrorCount": integer(minimum=0),
        "payload": {"type": "object"},
    }
)
MODIFICATION = obj(
    {
        "id": string(),
        "datawalletVersion": integer(minimum=0),
        "index": integer(minimum=0),
        "objectIdentifier": string(),
        "payloadCategory": nullable(string()),
        "createdAt": timestamp(),
        "createdByDevice": string(),
        "collection": string(),
        "type": enum(*(t.name for t in ModificationType)),
        "encryptedPayload": nullable(string()),
    }
)
MODIFICATION_ITEM = obj(
    {
        "type": enum(*(t.name for t in ModificationType)),
        "objectIdentifier": string(min_length=1, max_length=100),
        "collection": string(min_length=1, max_length=50),
        "payloadCategory": nullable(string(max_length=50)),
        "encryptedPayload": nullable(binary()),
        "datawalletVersion": integer(minimum=0, maximum=65535),
    },
    optional=["payloadCategory", "encryptedPayload"],
)
CREATED_MODIFICATIONS = array(obj({"id": string(), "index": integer(minimum=0), "createdAt": timestamp()}))
FINALIZED_UPGRADE = obj(
    {"newDatawalletModificationIndex": nullable(integer()), "datawalletModifications": CREATED_MODIFICATIONS}
)
FINALIZED_EXTERNAL_EVENT_SYNC = obj(
    {**FINALIZED_UPGRADE["properties"], "newUnsyncedExternalEventsExist": boolean()}
)


def render_sync_run(run: SyncRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "type": run.type.name,
        "expiresAt": run.expires_at,
        "index": run.index,
        "createdAt": run.created_at,
        "createdBy": run.created_by,
        "createdByDevice": run.created_by_device,
        "eventCount": run.event_count,
    }


def render_external_event(event: ExternalEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type.name,
        "index": event.index,
        "createdAt": event.created_at,
        "syncErrorCount": event.sync_error_count,
        "payload": event.payload,
    }


def render_modification(item: DatawalletModification) -> dict[str, Any]:
    return {
        "id": item.id,
        "datawalletVersion": item.datawallet_version,
        "index": item.index,
        "objectIdentifier": item.object_identifier,
        "payloadCategory": item.payload_category,
        "createdAt": item.created_at,
        "createdByDevice": item.created_by_device,
        "collection": item.collection,
        "type": item.type.name,
        "encryptedPayload": item.encrypted_payload,
    }


def _created_modifications(items: list[DatawalletModification]) -> list[dict[str, Any]]:
    return [{"id": item.id, "index": item.index, "createdAt": item.created_at} for item in items]


def _render_finalized(finalized: FinalizedSync, *, with_unsynced_flag: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "newDatawalletModificationIndex": finalized.new_modification_index,
        "datawalletModifications": _created_modifications(finalized.modifications),
    }
    if with_unsynced_flag:
        body["newUnsyncedExternalEventsExist"] = finalized.new_unsynced_events_exist
    return body


def supported_datawallet_version(req: falcon.Request) -> int:
    raw = req.get_header(_VERSION_HEADER)
    try:
        version = int(raw) if raw is not None else 0
    except ValueError:
        raise InvalidInput(f"'{_VERSION_HEADER}': '{raw}' is not a number.") from None
    if not 0 < version <= USHORT_MAX:
        raise InvalidPropertyValue(f"'{_VERSION_HEADER}' must be a number between 1 and {USHORT_MAX}.")
    return version


def read_modifications(body: JsonObject, key: str, *, required: bool) -> list[NewModification]:
    return [
        NewModification(
            type=item.choice("type", ModificationType),
            object_identifier=item.required_text("objectIdentifier", max_length=100),
            collection=item.required_text("collection", max_length=50),
            payload_category=item.text("payloadCategory", required=False, max_length=50),
            encrypted_payload=item.binary("encryptedPayload", required=False),
            datawallet_version=_required_int(item, "datawalletVersion", 0, USHORT_MAX),
        )
        for item in body.objects(key, required=required)
    ]


def _required_int(body: JsonObject, key: str, minimum: int, maximum: int) -> int:
    value = body.integer(key, minimum=minimum, maximum=maximum)
    assert value is not None
    return value


class SyncRunsResource:
    def __init__(self, sync: SynchronizationService) -> None:
        self._sync = sync

    @describe(
        "Start a sync run: ExternalEventSync over the unsynced external events, or DatawalletVersionUpgrade",
        {
            200: envelope(obj({"status": enum("NoNewEvents"), "syncRun": {"type": "null"}})),
            201: envelope(obj({"status": enum("Created"), "syncRun": SYNC_RUN})),
        },
        body=obj(
            {
                "type": enum(*(t.name for t in SyncRunType)),
                "duration": integer(minimum=0, maximum=USHORT_MAX),
            },
            optional=["type", "duration"],
        ),
        body_required=False,
        headers={"X-Supported-Datawallet-Version": DATAWALLET_VERSION},
        required_headers=("X-Supported-Datawallet-Version",),
        tags=TAGS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        version = supported_datawallet_version(req)
        body = read_json(req)
        run_type = body.choice("type", SyncRunType, SyncRunType.ExternalEventSync)
        seconds = body.integer("duration", required=False, minimum=0, maximum=USHORT_MAX)
        duration = DEFAULT_SYNC_RUN_DURATION if seconds is None else timedelta(seconds=seconds)
        run = self._sync.start_sync_run(principal_of(req), run_type, duration, version)
        if run is None:
            send(resp, {"status": "NoNewEvents", "syncRun": None})
        else:
            send(resp, {"status": "Created", "syncRun": render_sync_run(run)}, 201)


class SyncRunResource:
    def __init__(self, sync: SynchronizationService) -> None:
        self._sync = sync

    @describe(
        "A sync run of the calling device",
        {200: envelope(SYNC_RUN)},
        path={"id": identifier("SYR")},
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        send(resp, render_sync_run(self._sync.get_sync_run(principal_of(req), checked_id(id, "SYR"))))


class SyncRunEventsResource:
    def __init__(self, sync: SynchronizationService) -> None:
        self._sync = sync

    @describe(
        "The external events of a sync run",
        {200: paged(EXTERNAL_EVENT)},
        path={"id": identifier("SYR")},
        query=PAGE_QUERY,
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        paged = self._sync.events_of_sync_run(principal_of(req), checked_id(id, "SYR"), Query(req).page())
        send_page(resp, paged, render_external_event)


class FinalizeExternalEventSyncResource:
    def __init__(self, sync: SynchronizationService) -> None:
        self._sync = sync

    @describe(
        "Finalize an ExternalEventSync run with the results of its events and new datawallet modifications",
        {200: envelope(FINALIZED_EXTERNAL_EVENT_SYNC)},
        body=obj(
            {
                "externalEventResults": array(
                    obj(
                        {"externalEventId": string(), "errorCode": nullable(string())}, optional=["errorCode"]
                    )
                ),
                "datawalletModifications": array(MODIFICATION_ITEM),
            },
            optional=["externalEventResults", "datawalletModifications"],
        ),
        body_required=False,
        path={"id": identifier("SYR")},
        tags=TAGS,
    )
    def on_put(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        body = read_json(req)
        results = [
            EventResult(
                external_event_id=item.required_text("externalEventId"),
                error_code=item.text("errorCode", required=False),
            )
            for item in body.objects("externalEventResults", required=False)
        ]
        finalized = self._sync.finalize_external_event_sync(
            principal_of(req),
            checked_id(id, "SYR"),
            results,
            read_modifications(body, "datawalletModifications", required=False),
        )
        send(resp, _render_finalized(finalized, with_unsynced_flag=True))


class FinalizeDatawalletVersionUpgradeResource:
    def __init__(self, sync: SynchronizationService) -> None:
        self._sync = sync

    @describe(
        "Finalize a DatawalletVersionUpgrade run: create or upgrade the datawallet",
        {200: envelope(FINALIZED_UPGRADE)},
        body=obj(
            {
                "newDatawalletVersion": integer(minimum=1, maximum=USHORT_MAX),
                "datawalletModifications": array(MODIFICATION_ITEM),
            },
            optional=["datawalletModifications"],
        ),
        path={"id": identifier("SYR")},
        tags=TAGS,
    )
    def on_put(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        body = read_json(req, required=True)
        finalized = self._sync.finalize_datawallet_version_upgrade(
            principal_of(req),
            checked_id(id, "SYR"),
            _required_int(body, "newDatawalletVersion", 1, USHORT_MAX),
            read_modifications(body, "datawalletModifications", required=False),
        )
        send(resp, _render_finalized(finalized, with_unsynced_flag=False))


class RefreshExpirationTimeResource:
    def __init__(self, sync: SynchronizationService) -> None:
        self._sync = sync

    @describe(
        "Extend an open sync run",
        {200: envelope(obj({"expiresAt": timestamp()}))},
        path={"id": identifier("SYR")},
        tags=TAGS,
    )
    def on_put(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        run = self._sync.refresh_expiration(principal_of(req), checked_id(id, "SYR"))
        send(resp, {"expiresAt": run.expires_at})


class DatawalletResource:
    def __init__(self, sync: SynchronizationService) -> None:
        self._sync = sync

    @describe(
        "The version of the caller's datawallet",
        {200: envelope(obj({"version": integer(minimum=0)}))},
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        datawallet: Datawallet = self._sync.get_datawallet(principal_of(req))
        send(resp, {"version": datawallet.version})


class DatawalletModificationsResource:
    def __init__(self, sync: SynchronizationService) -> None:
        self._sync = sync

    @describe(
        "Datawallet modifications after a local index (the newest per object, type and payload category)",
        {200: paged(MODIFICATION)},
        query={"localIndex": integer(), **PAGE_QUERY},
        headers={"X-Supported-Datawallet-Version": DATAWALLET_VERSION},
        required_headers=("X-Supported-Datawallet-Version",),
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = Query(req)
        paged = self._sync.modifications(
            principal_of(req), query.integer("localIndex"), query.page(), supported_datawallet_version(req)
        )
        send_page(resp, paged, render_modification)

    @describe(
        "Append modifications to the caller's datawallet",
        {201: envelope(obj({"newIndex": integer(), "modifications": CREATED_MODIFICATIONS}))},
        body=obj(
            {"localIndex": nullable(integer()), "modifications": array(MODIFICATION_ITEM, min_items=1)},
            optional=["localIndex"],
        ),
        headers={"X-Supported-Datawallet-Version": DATAWALLET_VERSION},
        required_headers=("X-Supported-Datawallet-Version",),
        tags=TAGS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        version = supported_datawallet_version(req)
        body = read_json(req, required=True)
        modifications = read_modifications(body, "modifications", required=True)
        if not modifications:
            raise InvalidPropertyValue("'modifications' must not be empty.")
        pushed = self._sync.push_modifications(
            principal_of(req), body.integer("localIndex", required=False), modifications, version
        )
        send(
            resp,
            {"newIndex": pushed.new_index, "modifications": _created_modifications(pushed.modifications)},
            201,
        )


def add_synchronization_routes(app: App, sync: SynchronizationService) -> None:
    app.add_route("/api/v2/SyncRuns", SyncRunsResource(sync))
    app.add_route("/api/v2/SyncRuns/{id}", SyncRunResource(sync))
    app.add_route("/api/v2/SyncRuns/{id}/ExternalEvents", SyncRunEventsResource(sync))
    app.add_route("/api/v2/SyncRuns/{id}/FinalizeExternalEventSync", FinalizeExternalEventSyncResource(sync))
    app.add_route(
        "/api/v2/SyncRuns/{id}/FinalizeDatawalletVersionUpgrade",
        FinalizeDatawalletVersionUpgradeResource(sync),
    )
    app.add_route("/api/v2/SyncRuns/{id}/RefreshExpirationTime", RefreshExpirationTimeResource(sync))
    app.add_route("/api/v2/Datawallet", DatawalletResource(sync))
    app.add_route("/api/v2/Datawallet/Modifications", DatawalletModificationsResource(sync))
