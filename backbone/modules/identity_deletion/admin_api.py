"""Admin API routes of identities' deletion processes and their audit logs."""

from __future__ import annotations

from typing import Any

import falcon

from backbone.modules.identity_deletion.consumer_api import GRACE_PERIOD_BODY, read_grace_period
from backbone.modules.identity_deletion.model import (
    DeletionAuditEntry,
    DeletionAuditMessage,
    DeletionProcess,
    DeletionProcessStatus,
)
from backbone.modules.identity_deletion.service import DeletionProcessService
from backbone.platform.http import App, checked_id, read_json, send
from backbone.platform.openapi import (
    address,
    array,
    describe,
    enum,
    envelope,
    identifier,
    nullable,
    obj,
    string,
    timestamp,
)

IDENTITIES = ("Identities",)
DELETION_STATUS = enum(*(status.name for status in DeletionProcessStatus))
AUDIT_ENTRY = obj(
    {
        "id": string(),
        "createdAt": timestamp(),
        "oldStatus": nullable(DELETION_STATUS),
        "newStatus": nullable(DELETION_STATUS),
        "additionalData": nullable(string()),
        "messageKey": enum(*(message.value for message in DeletionAuditMessage)),
    }
)
DELETION_PROCESS_DETAILS = obj(
    {
        "id": string(),
        "status": DELETION_STATUS,
        "createdAt": timestamp(),
        "approvedAt": nullable(timestamp()),
        "approvedByDevice": nullable(string()),
        "gracePeriodEndsAt": nullable(timestamp()),
        "auditLog": array(AUDIT_ENTRY),
    }
)


def render_audit_entry(entry: DeletionAuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "createdAt": entry.created_at,
        "oldStatus": None if entry.old_status is None else entry.old_status.name,
        "newStatus": None if entry.new_status is None else entry.new_status.name,
        "additionalData": entry.additional_data,
        "messageKey": entry.message_key.value,
    }


def render_deletion_process_details(
    process: DeletionProcess, log: list[DeletionAuditEntry]
) -> dict[str, Any]:
    return {
        "id": process.id,
        "status": process.status.name,
        "createdAt": process.created_at,
        # Processes are started by their owner, which approves them at once (as in the original).
        "approvedAt": process.created_at,
        "approvedByDevice": process.created_by_device,
        "gracePeriodEndsAt": process.grace_period_ends_at,
        "auditLog": [render_audit_entry(entry) for entry in log],
    }


class IdentityDeletionProcessesResource:
    def __init__(self, processes: DeletionProcessService) -> None:
        self._processes = processes

    @describe(
        "An identity's deletion processes with their audit logs",
        {200: envelope(array(DELETION_PROCESS_DETAILS))},
        path={"address": address()},
        tags=IDENTITIES,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, address: str) -> None:
        found = self._processes.processes_of_identity(address)
        send(resp, [render_deletion_process_details(process, log) for process, log in found])

    @describe(
        "Start deleting an identity (after a grace period, default 14 days; its owner can cancel it)",
        {201: envelope(DELETION_PROCESS_DETAILS)},
        body=GRACE_PERIOD_BODY,
        body_required=False,
        path={"address": address()},
        tags=IDENTITIES,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, address: str) -> None:
        started = self._processes.start_by_operator(address, read_grace_period(read_json(req)))
        send(resp, render_deletion_process_details(*self._processes.details(address, started.id)), 201)


class IdentityDeletionProcessResource:
    def __init__(self, processes: DeletionProcessService) -> None:
        self._processes = processes

    @describe(
        "One deletion process of an identity with its audit log",
        {200: envelope(DELETION_PROCESS_DETAILS)},
        path={"address": address(), "id": identifier("IDP")},
        tags=IDENTITIES,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, address: str, id: str) -> None:
        details = self._processes.details(address, checked_id(id, "IDP"))
        send(resp, render_deletion_process_details(*details))


class IdentityDeletionAuditLogsResource:
    def __init__(self, processes: DeletionProcessService) -> None:
        self._processes = processes

    @describe(
        "Every deletion audit entry about an address, also after the identity is deleted",
        {200: envelope(array(AUDIT_ENTRY))},
        path={"address": address()},
        tags=IDENTITIES,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, address: str) -> None:
        send(
            resp, [render_audit_entry(entry) for entry in self._processes.audit_entries_of_identity(address)]
        )


def add_deletion_process_admin_routes(app: App, processes: DeletionProcessService) -> None:
    base = "/api/v1/Identities/{address}/DeletionProcesses"
    app.add_route(base, IdentityDeletionProcessesResource(processes))
    # The literal segment wins over the `{id}` field in Falcon's router.
    app.add_route(f"{base}/AuditLogs", IdentityDeletionAuditLogsResource(processes))
    app.add_route(f"{base}/{{id}}", IdentityDeletionProcessResource(processes))
