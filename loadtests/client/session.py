"""An identity's device talking to the backbone: token cache, and every flow the scenarios need.

Every method maps to one Consumer API call (named by its route template), except the few
`*_all`/`sync_*` helpers that page or loop the way the official client does.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from backbone.platform.encoding import b64url, format_datetime
from loadtests.client.api import DATAWALLET_HEADER, DEFAULT_PAGE_SIZE, ApiError, pages
from loadtests.keys import IdentityKey, challenge_text

if TYPE_CHECKING:
    from loadtests.client.api import ConsumerApiClient

NO_NEW_EVENTS = "NoNewEvents"
CREATED = "Created"


@dataclass(frozen=True)
class SyncOutcome:
    """One external-event sync: whether a run started, the events it carried, which failed."""

    status: str
    run_id: str | None = None
    events: tuple[dict[str, Any], ...] = ()
    failed_event_ids: tuple[str, ...] = ()
    new_unsynced_events_exist: bool = False
    finalize_result: Mapping[str, Any] = field(default_factory=dict)


def modification(
    object_identifier: str,
    *,
    collection: str = "Relationships",
    type_: str = "Create",
    payload: bytes = b"",
    payload_category: str | None = "TechnicalData",
) -> dict[str, Any]:
    """A datawallet modification item as the app pushes it (payload base64url, version 1)."""
    item: dict[str, Any] = {
        "objectIdentifier": object_identifier,
        "collection": collection,
        "type": type_,
        "datawalletVersion": 1,
    }
    if payload_category is not None:
        item["payloadCategory"] = payload_category
    if payload:
        item["encryptedPayload"] = b64url(payload)
    return item


def _future(seconds: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds))


class IdentitySession:
    """One device of one identity: logs in lazily and again shortly before the token expires."""

    def __init__(
        self,
        api: ConsumerApiClient,
        *,
        address: str,
        device_id: str,
        username: str,
        password: str,
        key: IdentityKey | None = None,
    ) -> None:
        self.api = api
        self.address = address
        self.device_id = device_id
        self.username = username
        self.password = password
        self.key = key
        self._token = ""
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.logins = 0

    def __repr__(self) -> str:
        return f"IdentitySession(address={self.address!r}, device_id={self.device_id!r})"

    # Authentication

    @property
    def access_token(self) -> str:
        """A token valid for at least the refresh margin; logs in when there is none."""
        with self._lock:
            if time.time() >= self._expires_at - self.api.token_refresh_margin_s:
                self._token, self._expires_at = self.api.log_in(self.username, self.password)
                self.logins += 1
            return self._token

    @property
    def token_expires_at(self) -> float:
        return self._expires_at

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def call(
        self,
        method: str,
        route: str,
        *,
        datawallet: bool = False,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """An authenticated call; returns the parsed body (None for 204)."""
        all_headers = {**self.auth_header, **(DATAWALLET_HEADER if datawallet else {}), **(headers or {})}
        return self.api.call(method, route, headers=all_headers, **kwargs).json()

    def _result(self, method: str, route: str, **kwargs: Any) -> Any:
        return self.call(method, route, **kwargs)["result"]

    # Challenges and devices

    def new_challenge(self) -> dict[str, Any]:
        """`POST /Challenges` as this device (an authenticated challenge)."""
        return self.api.new_challenge(self.auth_header)

    def get_challenge(self, challenge_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._result(
            "GET", "/api/v2/Challenges/{id}", params={"id": challenge_id}, expected=(200,)
        )
        return result

    def add_device(self, password: str, *, is_backup_device: bool = False) -> IdentitySession:
        """Register another device (the identity key signs an authenticated challenge)."""
        if self.key is None:
            raise ValueError("adding a device needs the identity key of the session")
        challenge = challenge_text(self.new_challenge())
        created = self._result(
            "POST",
            "/api/v2/Devices",
            json_body={
                "devicePassword": password,
                "isBackupDevice": is_backup_device,
                "signedChallenge": {
                    "challenge": challenge,
                    "signature": self.key.sign(challenge),
                    "@type": "ChallengeSigned",
                },
            },
            expected=(201,),
        )
        return IdentitySession(
            self.api,
            address=self.address,
            device_id=created["id"],
            username=created["username"],
            password=password,
            key=self.key,
        )

    def change_password(self, new_password: str) -> None:
        self.call(
            "PUT",
            "/api/v2/Devices/Self/Password",
            json_body={"oldPassword": self.password, "newPassword": new_password},
            expected=(204,),
        )
        self.password = new_password

    def identity(self) -> dict[str, Any]:
        result: dict[str, Any] = self._result("GET", "/api/v2/Identities/Self", expected=(200,))
        return result

    def register_push(
        self, handle: str | None = None, *, platform: str = "dummy", app_id: str = "loadtest"
    ) -> str:
        """Register this device for push notifications; returns its push identifier."""
        result = self._result(
            "PUT",
            "/api/v2/Devices/Self/PushNotifications",
            json_body={
                "platform": platform,
                "handle": handle or "handle-" + secrets.token_hex(8),
                "appId": app_id,
                "environment": "Development",
            },
            expected=(200,),
        )
        return str(result["devicePushIdentifier"])

    def unregister_push(self) -> None:
        self.call("DELETE", "/api/v2/Devices/Self/PushNotifications", expected=(204,))

    # Relationship templates and relationships

    def create_template(
        self,
        content: bytes = b"template",
        *,
        max_allocations: int | None = None,
        expires_in_s: float | None = None,
        for_identity: str | None = None,
        password: bytes | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"content": b64url(content)}
        if max_allocations is not None:
            body["maxNumberOfAllocations"] = max_allocations
        if expires_in_s is not None:
            body["expiresAt"] = _future(expires_in_s)
        if for_identity is not None:
            body["forIdentity"] = for_identity
        if password is not None:
            body["password"] = b64url(password)
        result: dict[str, Any] = self._result(
            "POST", "/api/v2/RelationshipTemplates", json_body=body, expected=(201,)
        )
        return result

    def get_template(self, template_id: str, *, password: bytes | None = None) -> dict[str, Any]:
        query = {"password": b64url(password)} if password is not None else None
        result: dict[str, Any] = self._result(
            "GET",
            "/api/v2/RelationshipTemplates/{id}",
            params={"id": template_id},
            query=query,
            expected=(200,),
        )
        return result

    def list_templates(self, ids: Sequence[str], page_size: int = DEFAULT_PAGE_SIZE) -> list[dict[str, Any]]:
        """Every template of `ids` (the list endpoint needs ids), paged through."""
        return self._list_by_ids("/api/v2/RelationshipTemplates", ids, page_size)

    def delete_template(self, template_id: str) -> None:
        self.call("DELETE", "/api/v2/RelationshipTemplates/{id}", params={"id": template_id}, expected=(204,))

    def can_create_relationship(self, peer: str) -> dict[str, Any]:
        result: dict[str, Any] = self._result(
            "GET", "/api/v2/Relationships/CanCreate", query={"peer": peer}, expected=(200,)
        )
        return result

    def create_relationship(
        self, template_id: str, content: bytes = b"request", *, expected_errors: Collection[str] = ()
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._result(
            "POST",
            "/api/v2/Relationships",
            json_body={"relationshipTemplateId": template_id, "creationContent": b64url(content)},
            expected=(201,),
            expected_errors=expected_errors,
        )
        return result

    def get_relationship(self, relationship_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._result(
            "GET", "/api/v2/Relationships/{id}", params={"id": relationship_id}, expected=(200,)
        )
        return result

    def list_relationships(
        self, ids: Sequence[str], page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[dict[str, Any]]:
        return self._list_by_ids("/api/v2/Relationships", ids, page_size)

    def _answer(
        self, relationship_id: str, action: str, body: Any, expected_errors: Collection[str]
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._result(
            "PUT",
            "/api/v2/Relationships/{id}/" + action,
            params={"id": relationship_id},
            json_body=body,
            expected=(200,),
            expected_errors=expected_errors,
        )
        return result

    def accept_relationship(
        self, relationship_id: str, content: bytes = b"accepted", *, expected_errors: Collection[str] = ()
    ) -> dict[str, Any]:
        body = {"creationResponseContent": b64url(content)}
        return self._answer(relationship_id, "Accept", body, expected_errors)

    def reject_relationship(
        self, relationship_id: str, *, expected_errors: Collection[str] = ()
    ) -> dict[str, Any]:
        return self._answer(relationship_id, "Reject", {}, expected_errors)

    def revoke_relationship(
        self, relationship_id: str, *, expected_errors: Collection[str] = ()
    ) -> dict[str, Any]:
        return self._answer(relationship_id, "Revoke", {}, expected_errors)

    def terminate_relationship(
        self, relationship_id: str, *, expected_errors: Collection[str] = ()
    ) -> dict[str, Any]:
        return self._answer(relationship_id, "Terminate", {}, expected_errors)

    def request_reactivation(
        self, relationship_id: str, *, expected_errors: Collection[str] = ()
    ) -> dict[str, Any]:
        return self._answer(relationship_id, "Reactivate", {}, expected_errors)

    def accept_reactivation(
        self, relationship_id: str, *, expected_errors: Collection[str] = ()
    ) -> dict[str, Any]:
        return self._answer(relationship_id, "Reactivate/Accept", {}, expected_errors)

    def reject_reactivation(
        self, relationship_id: str, *, expected_errors: Collection[str] = ()
    ) -> dict[str, Any]:
        return self._answer(relationship_id, "Reactivate/Reject", {}, expected_errors)

    def revoke_reactivation(
        self, relationship_id: str, *, expected_errors: Collection[str] = ()
    ) -> dict[str, Any]:
        return self._answer(relationship_id, "Reactivate/Revoke", {}, expected_errors)

    def decompose_relationship(
        self, relationship_id: str, *, expected_errors: Collection[str] = ()
    ) -> dict[str, Any]:
        return self._answer(relationship_id, "Decompose", {}, expected_errors)

    # Tokens

    def create_token(
        self,
        content: bytes = b"token",
        *,
        expires_in_s: float = 3600,
        for_identity: str | None = None,
        password: bytes | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"content": b64url(content), "expiresAt": _future(expires_in_s)}
        if for_identity is not None:
            body["forIdentity"] = for_identity
        if password is not None:
            body["password"] = b64url(password)
        result: dict[str, Any] = self._result("POST", "/api/v2/Tokens", json_body=body, expected=(201,))
        return result

    def get_token(self, token_id: str, *, password: bytes | None = None) -> dict[str, Any]:
        query = {"password": b64url(password)} if password is not None else None
        result: dict[str, Any] = self._result(
            "GET", "/api/v2/Tokens/{id}", params={"id": token_id}, query=query, expected=(200,)
        )
        return result

    def list_tokens(self, ids: Sequence[str], page_size: int = DEFAULT_PAGE_SIZE) -> list[dict[str, Any]]:
        return self._list_by_ids("/api/v2/Tokens", ids, page_size)

    # Messages

    def send_message(
        self,
        recipients: Iterable[str],
        body: bytes = b"message",
        *,
        attachments: Sequence[str] = (),
        expected_errors: Collection[str] = (),
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._result(
            "POST",
            "/api/v2/Messages",
            json_body={
                "recipients": [
                    {"address": address, "encryptedKey": b64url(b"key-for-" + address.encode())}
                    for address in recipients
                ],
                "body": b64url(body),
                "attachments": [{"id": file_id} for file_id in attachments],
            },
            expected=(201,),
            expected_errors=expected_errors,
        )
        return result

    def get_message(self, message_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._result(
            "GET", "/api/v2/Messages/{id}", params={"id": message_id}, expected=(200,)
        )
        return result

    def list_messages(
        self, ids: Sequence[str] | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[dict[str, Any]]:
        """Every message the identity sent or received (or those of `ids`), paged through."""
        return list(
            pages(
                lambda number, size: self.call(
                    "GET",
                    "/api/v2/Messages",
                    query={"ids": list(ids) if ids else None, "pageNumber": number, "pageSize": size},
                    expected=(200,),
                ),
                page_size,
            )
        )

    # Files

    def upload_file(
        self, content: bytes, *, expires_in_s: float = 3600, encrypted_properties: bytes = b"properties"
    ) -> dict[str, Any]:
        """`POST /Files` as the official client sends it (multipart, content as `cipher.bin`)."""
        boundary = "----loadtests" + secrets.token_hex(12)
        fields = {
            "cipherHash": b64url(b"hash-" + secrets.token_bytes(8)),
            "ownerSignature": b64url(b"signature"),
            "expiresAt": _future(expires_in_s),
            "encryptedProperties": b64url(encrypted_properties),
        }
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields.items()
        ]
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="cipher.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
        parts.append(f"--{boundary}--\r\n".encode())
        result: dict[str, Any] = self._result(
            "POST",
            "/api/v2/Files",
            raw_body=b"".join(parts),
            content_type=f"multipart/form-data; boundary={boundary}",
            expected=(201,),
        )
        return result

    def download_file(self, file_id: str) -> bytes:
        response = self.api.call(
            "GET", "/api/v2/Files/{id}", params={"id": file_id}, headers=self.auth_header, expected=(200,)
        )
        return response.body

    def file_metadata(self, file_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._result(
            "GET", "/api/v2/Files/{id}/Metadata", params={"id": file_id}, expected=(200,)
        )
        return result

    # Datawallet and sync runs

    def create_datawallet(self, version: int = 1) -> None:
        """What the app does right after onboarding: a DatawalletVersionUpgrade run."""
        run = self.start_sync_run("DatawalletVersionUpgrade")
        self.call(
            "PUT",
            "/api/v2/SyncRuns/{id}/FinalizeDatawalletVersionUpgrade",
            params={"id": run["syncRun"]["id"]},
            json_body={"newDatawalletVersion": version, "datawalletModifications": []},
            datawallet=True,
            expected=(200,),
        )

    def datawallet(self) -> dict[str, Any]:
        result: dict[str, Any] = self._result("GET", "/api/v2/Datawallet", datawallet=True, expected=(200,))
        return result

    def datawallet_modifications(
        self, local_index: int | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[dict[str, Any]]:
        """Every modification after `local_index` (None: from index 0), paged through."""
        return list(
            pages(
                lambda number, size: self.call(
                    "GET",
                    "/api/v2/Datawallet/Modifications",
                    query={"localIndex": local_index, "pageNumber": number, "pageSize": size},
                    datawallet=True,
                    expected=(200,),
                ),
                page_size,
            )
        )

    def push_modifications(
        self,
        local_index: int | None,
        modifications: Sequence[Mapping[str, Any]],
        *,
        expected_errors: Collection[str] = (),
    ) -> dict[str, Any]:
        """Push modifications after `local_index` (None when the datawallet is empty)."""
        result: dict[str, Any] = self._result(
            "POST",
            "/api/v2/Datawallet/Modifications",
            json_body={"localIndex": local_index, "modifications": list(modifications)},
            datawallet=True,
            expected=(201,),
            expected_errors=expected_errors,
        )
        return result

    def start_sync_run(
        self,
        run_type: str = "ExternalEventSync",
        *,
        duration_s: int | None = None,
        expected_errors: Collection[str] = (),
    ) -> dict[str, Any]:
        """Start a sync run: `{status: "Created", syncRun}` or `{status: "NoNewEvents", syncRun: None}`."""
        body: dict[str, Any] = {"type": run_type}
        if duration_s is not None:
            body["duration"] = duration_s
        result: dict[str, Any] = self._result(
            "POST",
            "/api/v2/SyncRuns",
            json_body=body,
            datawallet=True,
            expected=(200, 201),
            expected_errors=expected_errors,
        )
        return result

    def sync_run_events(self, run_id: str, page_size: int = DEFAULT_PAGE_SIZE) -> list[dict[str, Any]]:
        return list(
            pages(
                lambda number, size: self.call(
                    "GET",
                    "/api/v2/SyncRuns/{id}/ExternalEvents",
                    params={"id": run_id},
                    query={"pageNumber": number, "pageSize": size},
                    datawallet=True,
                    expected=(200,),
                ),
                page_size,
            )
        )

    def finalize_external_event_sync(
        self,
        run_id: str,
        results: Sequence[Mapping[str, Any]],
        modifications: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """Finalize with `results` = `[{externalEventId, errorCode?}]` and optional modifications."""
        result: dict[str, Any] = self._result(
            "PUT",
            "/api/v2/SyncRuns/{id}/FinalizeExternalEventSync",
            params={"id": run_id},
            json_body={"externalEventResults": list(results), "datawalletModifications": list(modifications)},
            datawallet=True,
            expected=(200,),
        )
        return result

    def sync_external_events(
        self,
        *,
        error_code_for: Any = None,
        modifications: Sequence[Mapping[str, Any]] = (),
    ) -> SyncOutcome:
        """One sync as the client does it: start, read every event, finalize with the results.

        `error_code_for(event)` returns an error code to report for an event, or None to report it
        processed; the backbone redelivers events reported with an error.
        """
        started = self.start_sync_run()
        if started["status"] == NO_NEW_EVENTS:
            return SyncOutcome(NO_NEW_EVENTS)
        run_id = started["syncRun"]["id"]
        events = self.sync_run_events(run_id)
        results: list[dict[str, Any]] = []
        failed: list[str] = []
        for event in events:
            code = error_code_for(event) if error_code_for else None
            if code:
                failed.append(event["id"])
                results.append({"externalEventId": event["id"], "errorCode": code})
            else:
                results.append({"externalEventId": event["id"]})
        finalized = self.finalize_external_event_sync(run_id, results, modifications)
        return SyncOutcome(
            CREATED,
            run_id,
            tuple(events),
            tuple(failed),
            bool(finalized.get("newUnsyncedExternalEventsExist")),
            finalized,
        )

    def sync_until_no_new_events(self, max_runs: int = 1000) -> int:
        """Sync (every event processed) until the backbone has nothing new; returns events synced."""
        synced = 0
        for _ in range(max_runs):
            outcome = self.sync_external_events()
            if outcome.status == NO_NEW_EVENTS:
                return synced
            synced += len(outcome.events)
        raise RuntimeError(f"{self.address} still had new events after {max_runs} sync runs")

    # Helpers

    def _list_by_ids(self, route: str, ids: Sequence[str], page_size: int) -> list[dict[str, Any]]:
        # The id list travels in the query string; chunks keep URLs well under common limits.
        items: list[dict[str, Any]] = []
        for start in range(0, len(ids), 100):
            chunk = list(ids[start : start + 100])
            items.extend(
                pages(
                    lambda number, size, chunk=chunk: self.call(
                        "GET",
                        route,
                        query={"ids": chunk, "pageNumber": number, "pageSize": size},
                        expected=(200,),
                    ),
                    page_size,
                )
            )
        return items


__all__ = ["ApiError", "IdentitySession", "SyncOutcome", "modification"]
