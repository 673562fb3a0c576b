"""Files through HTTP: upload, download, metadata, lists, deletion and ownership tokens (spec §4.7).

Tests named `stored_*` run on both databases with both blob stores (a local directory and a
bucket on SeaweedFS), so each behaviour is proven on every adapter.
"""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import timedelta
from typing import Any

import pytest
from falcon import testing
from sqlalchemy.engine import Connection

from backbone.consumer_api import create_consumer_app
from backbone.modules.files.consumer_api import add_file_routes
from backbone.modules.files.model import MAX_CONTENT_BYTES, OWNERSHIP_TOKEN_ALPHABET, File
from backbone.modules.files.repository import FileRepository
from backbone.modules.files.service import FileService
from backbone.platform.encoding import b64url, format_datetime
from backbone.wiring import Services
from tests.helpers.api import Account, assert_error, onboard
from tests.helpers.files import (
    ENCRYPTED_PROPERTIES,
    OWNER_SIGNATURE,
    file_parts,
    multipart,
    upload,
    upload_file,
)
from tests.helpers.peers import sync

FILE_FIELDS = {
    "id",
    "createdAt",
    "createdBy",
    "createdByDevice",
    "modifiedAt",
    "modifiedBy",
    "modifiedByDevice",
    "deletedAt",
    "deletedBy",
    "deletedByDevice",
    "owner",
    "ownerSignature",
    "cipherSize",
    "cipherHash",
    "expiresAt",
}
NOT_FOUND = "error.platform.recordNotFound"
FORBIDDEN = "error.platform.forbidden"


def _content(size: int) -> bytes:
    return os.urandom(size)


def test_stored_a_file_is_uploaded_downloaded_byte_for_byte_and_described(
    stored_api: testing.TestClient, stored_services: Services
) -> None:
    alice, bob = onboard(stored_api), onboard(stored_api)
    now = stored_services.clock.now()
    content = _content(300_000)
    created = upload_file(alice, content, now)

    assert created.keys() == FILE_FIELDS | {"ownershipToken"}
    assert created["id"].startswith("FIL")
    assert len(created["id"]) == 20
    assert created["createdBy"] == created["owner"] == created["modifiedBy"] == alice.address
    assert created["createdByDevice"] == alice.device_id
    assert created["cipherSize"] == len(content)
    # Byte-ish fields come back exactly as the client sent them (base64url without padding).
    assert created["cipherHash"] == b64url(hashlib.sha512(content).digest())
    assert created["ownerSignature"] == OWNER_SIGNATURE
    assert created["expiresAt"] == format_datetime(now + timedelta(days=1))
    assert created["deletedAt"] is None
    token = created["ownershipToken"]
    assert len(token) == 20
    assert set(token) <= set(OWNERSHIP_TOKEN_ALPHABET)

    # Any identity that knows the id reads the content and the metadata.
    downloaded = bob.get(f"/api/v2/Files/{created['id']}")
    assert downloaded.status_code == 200
    assert downloaded.headers["Content-Type"] == "application/octet-stream"
    assert downloaded.headers["Content-Length"] == str(len(content))
    assert downloaded.content == content
    for path in ("metadata", "Metadata"):
        metadata = bob.get(f"/api/v2/Files/{created['id']}/{path}")
        assert metadata.status_code == 200, metadata.text
        described = metadata.json["result"]
        assert described.keys() == FILE_FIELDS | {"ownershipIsLocked", "encryptedProperties"}
        assert described["encryptedProperties"] == ENCRYPTED_PROPERTIES
        assert described["ownershipIsLocked"] is False
        assert {key: described[key] for key in FILE_FIELDS} == {key: created[key] for key in FILE_FIELDS}
    assert stored_services.blobs.exists(created["id"])


def test_standard_base64_is_accepted_and_written_as_base64url(
    api: testing.TestClient, services: Services
) -> None:
    alice = onboard(api)
    digest = hashlib.sha512(b"content").digest()
    created = upload_file(
        alice,
        b"content",
        services.clock.now(),
        cipherHash=base64.b64encode(digest).decode(),
        encryptedProperties=None,
    )
    assert created["cipherHash"] == b64url(digest)
    described = alice.get(f"/api/v2/Files/{created['id']}/metadata").json["result"]
    assert described["encryptedProperties"] == ""


def test_files_are_listed_for_their_creator_only(api: testing.TestClient, services: Services) -> None:
    alice, bob = onboard(api), onboard(api)
    now = services.clock.now()
    ids = []
    for _ in range(3):
        ids.append(upload_file(alice, _content(10), now)["id"])
        services.clock.advance(timedelta(seconds=1))
    upload_file(bob, _content(10), now)

    listed = alice.get("/api/v2/Files")
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json["result"]] == ids
    assert "pagination" not in listed.json
    assert listed.json["result"][0]["encryptedProperties"] == ENCRYPTED_PROPERTIES

    paged = alice.get("/api/v2/Files", query_string="pageSize=2&pageNumber=2")
    assert [item["id"] for item in paged.json["result"]] == ids[2:]
    assert paged.json["pagination"] == {"pageNumber": 2, "pageSize": 2, "totalPages": 2, "totalRecords": 3}

    chosen = alice.get("/api/v2/Files", query_string=f"ids={ids[0]}&ids={ids[2]}")
    assert [item["id"] for item in chosen.json["result"]] == [ids[0], ids[2]]
    assert bob.get("/api/v2/Files", query_string=f"ids={ids[0]}").json["result"] == []
    assert_error(
        alice.get("/api/v2/Files", query_string="ids=REL00000000000000000"),
        400,
        "error.platform.validation.invalidId",
    )
    assert_error(
        alice.get("/api/v2/Files", query_string="pageSize=201"),
        400,
        "error.platform.validation.pagination.invalidPageSize",
    )


def test_stored_only_the_creator_deletes_a_file_and_its_content_goes_with_it(
    stored_api: testing.TestClient, stored_services: Services
) -> None:
    alice, bob = onboard(stored_api), onboard(stored_api)
    file_id = upload_file(alice, _content(1000), stored_services.clock.now())["id"]

    assert_error(bob.delete(f"/api/v2/Files/{file_id}"), 403, FORBIDDEN)
    deleted = alice.delete(f"/api/v2/Files/{file_id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(alice.get(f"/api/v2/Files/{file_id}"), 404, NOT_FOUND)
    assert_error(bob.get(f"/api/v2/Files/{file_id}/metadata"), 404, NOT_FOUND)
    assert_error(alice.delete(f"/api/v2/Files/{file_id}"), 404, NOT_FOUND)
    assert not stored_services.blobs.exists(file_id)
    assert file_id not in stored_services.files.stored_ids()


def test_expired_files_are_gone(api: testing.TestClient, services: Services) -> None:
    alice = onboard(api)
    file_id = upload_file(alice, _content(10), services.clock.now())["id"]
    services.clock.advance(timedelta(days=1, seconds=1))
    alice.log_in_again()
    assert_error(alice.get(f"/api/v2/Files/{file_id}"), 404, NOT_FOUND)
    assert_error(alice.get(f"/api/v2/Files/{file_id}/metadata"), 404, NOT_FOUND)
    assert alice.get("/api/v2/Files").json["result"] == []


def test_unknown_and_malformed_file_ids(api: testing.TestClient) -> None:
    alice = onboard(api)
    unknown = "FIL" + "x" * 17
    token = {"ownershipToken": "A" * 20}
    assert_error(alice.get(f"/api/v2/Files/{unknown}"), 404, NOT_FOUND)
    assert_error(alice.get(f"/api/v2/Files/{unknown}/metadata"), 404, NOT_FOUND)
    assert_error(alice.delete(f"/api/v2/Files/{unknown}"), 404, NOT_FOUND)
    assert_error(alice.post(f"/api/v2/Files/{unknown}/ValidateOwnershipToken", json=token), 404, NOT_FOUND)
    assert_error(alice.patch(f"/api/v2/Files/{unknown}/RegenerateOwnershipToken"), 404, NOT_FOUND)
    assert_error(alice.patch(f"/api/v2/Files/{unknown}/ClaimOwnership", json=token), 404, NOT_FOUND)
    for malformed in ("MSG" + "x" * 17, "FIL-not-an-id"):
        assert_error(alice.get(f"/api/v2/Files/{malformed}"), 400, "error.platform.validation.invalidId")
        assert_error(
            alice.get(f"/api/v2/Files/{malformed}/metadata"), 400, "error.platform.validation.invalidId"
        )


# --- ownership ------------------------------------------------------------------------------


def _patch(account: Account, path: str, body: dict[str, Any] | None = None) -> testing.Result:
    return account.patch(path, json=body)


def _validate(account: Account, file_id: str, token: str) -> testing.Result:
    return account.post(f"/api/v2/Files/{file_id}/ValidateOwnershipToken", json={"ownershipToken": token})


def test_ownership_is_claimed_with_the_token_and_the_previous_owner_hears_of_it(
    api: testing.TestClient, services: Services
) -> None:
    alice, bob = onboard(api), onboard(api)
    created = upload_file(alice, _content(10), services.clock.now())
    file_id, token = created["id"], created["ownershipToken"]

    assert _validate(alice, file_id, token).json["result"] == {"isValid": True}
    assert _validate(bob, file_id, token).json["result"] == {"isValid": True}
    assert_error(
        _patch(alice, f"/api/v2/Files/{file_id}/ClaimOwnership", {"ownershipToken": token}),
        400,
        "error.platform.validation.file.cannotClaimOwnershipOfOwnFile",
    )
    claimed = _patch(bob, f"/api/v2/Files/{file_id}/ClaimOwnership", {"ownershipToken": token})
    assert claimed.status_code == 200, claimed.text
    new_token = claimed.json["result"]["newOwnershipToken"]
    assert new_token != token
    assert len(new_token) == 20
    metadata = alice.get(f"/api/v2/Files/{file_id}/metadata").json["result"]
    assert metadata["owner"] == bob.address
    assert metadata["createdBy"] == alice.address
    assert ("FileOwnershipClaimed", {"fileId": file_id, "newOwnerAddress": bob.address}) in sync(alice)
    assert sync(bob) == []

    # Only the owner regenerates the token; the old one no longer validates.
    assert_error(_patch(alice, f"/api/v2/Files/{file_id}/RegenerateOwnershipToken"), 403, FORBIDDEN)
    regenerated = _patch(bob, f"/api/v2/Files/{file_id}/RegenerateOwnershipToken")
    assert regenerated.status_code == 200, regenerated.text
    newest = regenerated.json["result"]["newOwnershipToken"]
    assert newest not in (token, new_token)
    assert _validate(bob, file_id, new_token).json["result"] == {"isValid": False}
    assert _validate(bob, file_id, newest).json["result"] == {"isValid": True}


def test_a_wrong_token_locks_the_file_until_the_owner_regenerates_it(
    api: testing.TestClient, services: Services
) -> None:
    alice, bob, carol = onboard(api), onboard(api), onboard(api)
    created = upload_file(alice, _content(10), services.clock.now())
    file_id, token = created["id"], created["ownershipToken"]

    # The owner's own wrong guess locks nothing.
    assert _validate(alice, file_id, "x" * 20).json["result"] == {"isValid": False}
    assert alice.get(f"/api/v2/Files/{file_id}/metadata").json["result"]["ownershipIsLocked"] is False

    assert_error(
        _patch(bob, f"/api/v2/Files/{file_id}/ClaimOwnership", {"ownershipToken": "x" * 20}), 403, FORBIDDEN
    )
    assert alice.get(f"/api/v2/Files/{file_id}/metadata").json["result"]["ownershipIsLocked"] is True
    assert ("FileOwnershipLocked", {"fileId": file_id}) in sync(alice)
    # Locked: even the right token neither claims nor validates.
    assert_error(
        _patch(carol, f"/api/v2/Files/{file_id}/ClaimOwnership", {"ownershipToken": token}), 403, FORBIDDEN
    )
    assert _validate(carol, file_id, token).json["result"] == {"isValid": False}
    assert sync(alice) == [], "a file is locked (and its owner told) once"

    assert _patch(alice, f"/api/v2/Files/{file_id}/RegenerateOwnershipToken").status_code == 200
    assert alice.get(f"/api/v2/Files/{file_id}/metadata").json["result"]["ownershipIsLocked"] is False
    # A wrong validation by someone else locks it again.
    assert _validate(carol, file_id, token).json["result"] == {"isValid": False}
    assert alice.get(f"/api/v2/Files/{file_id}/metadata").json["result"]["ownershipIsLocked"] is True
    assert ("FileOwnershipLocked", {"fileId": file_id}) in sync(alice)


def test_ownership_requests_need_a_token(api: testing.TestClient, services: Services) -> None:
    alice, bob = onboard(api), onboard(api)
    file_id = upload_file(alice, _content(10), services.clock.now())["id"]
    assert_error(
        _patch(bob, f"/api/v2/Files/{file_id}/ClaimOwnership", {}),
        400,
        "error.platform.validation.invalidPropertyValue",
    )
    assert_error(
        bob.post(f"/api/v2/Files/{file_id}/ValidateOwnershipToken", body="not json"),
        400,
        "error.platform.inputCannotBeParsed",
    )


# --- bad uploads leave nothing behind -------------------------------------------------------


def _truncated(parts: list[tuple[str, bytes | str, str | None]]) -> bytes:
    body, _ = multipart(parts)
    return body[: len(body) // 2]


BAD_UPLOADS: dict[str, tuple[Any, str]] = {
    # name: (how to build the body from the default parts, expected code)
    "truncated in the content": (lambda parts: _truncated(parts), "error.platform.inputCannotBeParsed"),
    "without the closing boundary": (
        lambda parts: multipart(parts)[0].rsplit(b"--", 2)[0],
        "error.platform.inputCannotBeParsed",
    ),
    "content over 10 MiB": (
        lambda parts: multipart([("content", b"x" * (MAX_CONTENT_BYTES + 1), "cipher.bin"), *parts[1:]])[0],
        "error.platform.validation.invalidPropertyValue",
    ),
    "empty content": (
        lambda parts: multipart([("content", b"", "cipher.bin"), *parts[1:]])[0],
        "error.platform.validation.invalidPropertyValue",
    ),
    "no content": (lambda parts: multipart(parts[1:])[0], "error.platform.validation.invalidPropertyValue"),
    "content twice": (
        lambda parts: multipart([parts[0], *parts])[0],
        "error.platform.validation.invalidPropertyValue",
    ),
    "malformed base64 cipher hash": (
        lambda parts: multipart(_replace(parts, "cipherHash", "not*base64!"))[0],
        "error.platform.inputCannotBeParsed",
    ),
    "malformed base64 signature": (
        lambda parts: multipart(_replace(parts, "ownerSignature", "%%%"))[0],
        "error.platform.inputCannotBeParsed",
    ),
    "malformed base64 properties": (
        lambda parts: multipart(_replace(parts, "encryptedProperties", "a"))[0],
        "error.platform.inputCannotBeParsed",
    ),
    "cipher hash too long": (
        lambda parts: multipart(_replace(parts, "cipherHash", b64url(b"h" * 129)))[0],
        "error.platform.validation.invalidPropertyValue",
    ),
    "no cipher hash": (
        lambda parts: multipart([part for part in parts if part[0] != "cipherHash"])[0],
        "error.platform.validation.invalidPropertyValue",
    ),
    "expiry in the past": (
        lambda parts: multipart(_replace(parts, "expiresAt", "2000-01-01T00:00:00.000Z"))[0],
        "error.platform.validation.invalidPropertyValue",
    ),
    "malformed expiry": (
        lambda parts: multipart(_replace(parts, "expiresAt", "tomorrow"))[0],
        "error.platform.inputCannotBeParsed",
    ),
}


def _replace(
    parts: list[tuple[str, bytes | str, str | None]], name: str, value: str
) -> list[tuple[str, bytes | str, str | None]]:
    return [(part[0], value if part[0] == name else part[1], part[2]) for part in parts]


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_stored_a_bad_upload_gets_the_envelope_and_leaves_nothing_behind(
    stored_api: testing.TestClient, stored_services: Services, case: str
) -> None:
    alice = onboard(stored_api)
    build, code = BAD_UPLOADS[case]
    parts = file_parts(_content(100_000), stored_services.clock.now() + timedelta(days=1))
    blobs_before = stored_services.blobs.list_names()
    files_before = stored_services.files.stored_ids()

    body = build(parts)
    # Every body above carries its own boundary; reuse it in the content type.
    boundary = body.split(b"\r\n", 1)[0][2:].decode()
    result = alice.post(
        "/api/v2/Files", body=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert_error(result, 400, code)
    assert stored_services.files.stored_ids() == files_before
    assert stored_services.blobs.list_names() == blobs_before


class _RefusingRepository(FileRepository):
    def add(self, connection: Connection, file: File) -> None:
        raise RuntimeError("the database refused the row")


def test_stored_an_upload_whose_metadata_cannot_be_stored_leaves_no_content(
    stored_services: Services,
) -> None:
    """The content is stored first; if the metadata row fails, the content is removed again."""
    s = stored_services
    refusing = FileService(s.db, _RefusingRepository(s.db), s.blobs, s.outbox, s.clock, s.ids)
    app = create_consumer_app(s)
    # The modules' routes are bound to their services when included: add the file routes again.
    add_file_routes(app, refusing)
    api = testing.TestClient(app)
    alice = onboard(api)
    blobs_before = stored_services.blobs.list_names()
    result = upload(alice, _content(1000), stored_services.clock.now())
    assert_error(result, 500, "error.platform.unexpected")
    assert stored_services.blobs.list_names() == blobs_before
    assert stored_services.files.stored_ids() == []


def test_uploads_must_be_multipart(api: testing.TestClient) -> None:
    alice = onboard(api)
    assert_error(
        alice.post("/api/v2/Files", json={"content": "eA"}), 400, "error.platform.inputCannotBeParsed"
    )
    assert_error(
        alice.post("/api/v2/Files", body=b"x", headers={"Content-Type": "multipart/form-data"}),
        400,
        "error.platform.inputCannotBeParsed",
    )
