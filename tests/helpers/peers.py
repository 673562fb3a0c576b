"""Relate identities, share templates and tokens, send messages, and collect external events."""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any

from falcon import testing

from backbone.platform.encoding import b64url
from tests.helpers.api import DWV, Account

CONTENT = b64url(b'{"cph":"template content","alg":3,"@type":"CryptoCipher"}')
ENCRYPTED_KEY = b64url(b"k" * 64)
BODY = b64url(b'{"cph":"message body","alg":3}')


def password_query(password: bytes) -> str:
    """`?password=` as the client sends it: standard base64, url-encoded."""
    return "password=" + urllib.parse.quote(base64.b64encode(password).decode("ascii"), safe="")


def create_template(account: Account, **fields: Any) -> str:
    body = {"content": CONTENT, **fields}
    result = account.post("/api/v2/RelationshipTemplates", json=body)
    assert result.status_code == 201, result.text
    template_id: str = result.json["result"]["id"]
    return template_id


def request_relationship(requester: Account, template_id: str) -> testing.Result:
    return requester.post(
        "/api/v2/Relationships",
        json={"relationshipTemplateId": template_id, "creationContent": CONTENT},
    )


def relate(owner: Account, requester: Account, *, accept: bool = True) -> str:
    """Let `requester` answer a template of `owner`; `owner` accepts unless told not to."""
    template_id = create_template(owner)
    loaded = requester.get(f"/api/v2/RelationshipTemplates/{template_id}")
    assert loaded.status_code == 200, loaded.text
    created = request_relationship(requester, template_id)
    assert created.status_code == 201, created.text
    relationship_id: str = created.json["result"]["id"]
    if accept:
        accepted = owner.put(f"/api/v2/Relationships/{relationship_id}/Accept", json={})
        assert accepted.status_code == 200, accepted.text
    return relationship_id


def act(account: Account, relationship_id: str, action: str) -> testing.Result:
    return account.put(f"/api/v2/Relationships/{relationship_id}/{action}", json={})


def send_message(sender: Account, *recipients: Account, **overrides: Any) -> testing.Result:
    body = {
        "recipients": [{"address": r.address, "encryptedKey": ENCRYPTED_KEY} for r in recipients],
        "body": BODY,
        "attachments": [],
        **overrides,
    }
    return sender.post("/api/v2/Messages", json=body)


def sync(account: Account) -> list[tuple[str, dict[str, Any]]]:
    """Run one external-event sync like the client does; return (type, payload) of each event."""
    collected: list[tuple[str, dict[str, Any]]] = []
    while True:
        started = account.post("/api/v2/SyncRuns", json={"type": "ExternalEventSync"}, headers=DWV)
        assert started.status_code in (200, 201), started.text
        run = started.json["result"]["syncRun"]
        if run is None:
            return collected
        listed = account.get(f"/api/v2/SyncRuns/{run['id']}/ExternalEvents", headers=DWV)
        assert listed.status_code == 200, listed.text
        events = listed.json["result"]
        collected.extend((event["type"], event["payload"]) for event in events)
        finalized = account.put(
            f"/api/v2/SyncRuns/{run['id']}/FinalizeExternalEventSync",
            json={
                "externalEventResults": [{"externalEventId": event["id"]} for event in events],
                "datawalletModifications": [],
            },
            headers=DWV,
        )
        assert finalized.status_code == 200, finalized.text
        if not finalized.json["result"]["newUnsyncedExternalEventsExist"]:
            return collected
