"""Consumer API routes of the caller's identity's deletion processes, and whether a device
user's identity is deleted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import falcon

from backbone.modules.identity_deletion.model import (
    DEFAULT_GRACE_PERIOD,
    MAX_GRACE_PERIOD_DAYS,
    DeletionProcess,
    DeletionProcessStatus,
)
from backbone.modules.identity_deletion.service import DeletionProcessService
from backbone.platform.http import App, JsonObject, Query, checked_id, principal_of, read_json, send
from backbone.platform.openapi import (
    ERROR,
    array,
    boolean,
    describe,
    enum,
    envelope,
    identifier,
    integer,
    nullable,
    obj,
    string,
    timestamp,
)

TAGS = ("Identities and devices",)
DELETION_PROCESS = obj(
    {
        "id": string(),
        "status": enum(*(status.name for status in DeletionProcessStatus)),
        "createdAt": timestamp(),
        "createdByDevice": nullable(string()),
        "approvedAt": nullable(timestamp()),
        "approvedByDevice": nullable(string()),
        "gracePeriodEndsAt": nullable(timestamp()),
        "gracePeriodReminder1SentAt": nullable(timestamp()),
        "gracePeriodReminder2SentAt": nullable(timestamp()),
        "gracePeriodReminder3SentAt": nullable(timestamp()),
    }
)
DELETION_PROCESS_ID = {"id": identifier("IDP")}
GRACE_PERIOD_BODY = obj(
    {"lengthOfGracePeriodInDays": integer(minimum=0, maximum=MAX_GRACE_PERIOD_DAYS)},
    optional=["lengthOfGracePeriodInDays"],
)


def read_grace_period(body: JsonObject) -> timedelta:
    """`lengthOfGracePeriodInDays` of a new deletion process (14 days when left out)."""
    days = body.integer("lengthOfGracePeriodInDays", required=False, minimum=0, maximum=MAX_GRACE_PERIOD_DAYS)
    return DEFAULT_GRACE_PERIOD if days is None else timedelta(days=days)


def render_deletion_process(process: DeletionProcess) -> dict[str, Any]:
    return {
        "id": process.id,
        "status": process.status.name,
        "createdAt": process.created_at,
        "createdByDevice": process.created_by_device,
        # The original keeps the approval fields of its older, support-approved processes.
        "approvedAt": process.created_at,
        "approvedByDevice": process.created_by_device,
        "gracePeriodEndsAt": process.grace_period_ends_at,
        "gracePeriodReminder1SentAt": process.grace_period_reminder1_sent_at,
        "gracePeriodReminder2SentAt": process.grace_period_reminder2_sent_at,
        "gracePeriodReminder3SentAt": process.grace_period_reminder3_sent_at,
    }


class DeletionProcessesResource:
    """`/Identities/Self/DeletionProcesses`: the caller's identity's deletion processes."""

    def __init__(self, processes: DeletionProcessService) -> None:
        self._processes = processes

    @describe(
        "Start deleting the caller's identity (after a grace period, default 14 days)",
        {201: envelope(DELETION_PROCESS), 400: ERROR},
        body=GRACE_PERIOD_BODY,
        body_required=False,
        tags=TAGS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        grace_period = read_grace_period(read_json(req))
        send(resp, render_deletion_process(self._processes.start(principal_of(req), grace_period)), 201)

    @describe(
        "The deletion processes of the caller's identity",
        {200: envelope(array(DELETION_PROCESS))},
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, [render_deletion_process(p) for p in self._processes.list_processes(principal_of(req))])


class DeletionProcessResource:
    def __init__(self, processes: DeletionProcessService) -> None:
        self._processes = processes

    @describe(
        "A deletion process of the caller's identity",
        {200: envelope(DELETION_PROCESS)},
        path=DELETION_PROCESS_ID,
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        send(resp, render_deletion_process(self._processes.get(principal_of(req), checked_id(id, "IDP"))))


class CancelDeletionProcessResource:
    def __init__(self, processes: DeletionProcessService) -> None:
        self._processes = processes

    @describe(
        "Cancel a deletion process during its grace period",
        {200: envelope(DELETION_PROCESS), 400: ERROR},
        path=DELETION_PROCESS_ID,
        tags=TAGS,
    )
    def on_put(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        process = self._processes.cancel(principal_of(req), checked_id(id, "IDP"))
        send(resp, render_deletion_process(process))


class IdentityIsDeletedResource:
    anonymous_methods = frozenset({"GET"})

    def __init__(self, processes: DeletionProcessService) -> None:
        self._processes = processes

    @describe(
        "Whether the identity of a device user is deleted",
        {200: envelope(obj({"isDeleted": boolean(), "deletionDate": nullable(timestamp())}))},
        query={"username": string()},
        required_query=("username",),
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        is_deleted, deletion_date = self._processes.is_deleted(Query(req).get("username") or "")
        send(resp, {"isDeleted": is_deleted, "deletionDate": deletion_date})


def add_identity_deletion_routes(app: App, processes: DeletionProcessService) -> None:
    app.add_route("/api/v2/Identities/IsDeleted", IdentityIsDeletedResource(processes))
    app.add_route("/api/v2/Identities/Self/DeletionProcesses", DeletionProcessesResource(processes))
    app.add_route("/api/v2/Identities/Self/DeletionProcesses/{id}", DeletionProcessResource(processes))
    app.add_route(
        "/api/v2/Identities/Self/DeletionProcesses/{id}/Cancel", CancelDeletionProcessResource(processes)
    )
