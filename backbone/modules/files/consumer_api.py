"""Consumer API routes of files: multipart upload, raw download, metadata and ownership."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import falcon
from falcon.media.multipart import MultipartFormHandler, MultipartParseOptions

from backbone.modules.files.model import (
    MAX_CIPHER_HASH_BYTES,
    MAX_ENCRYPTED_PROPERTIES_BYTES,
    MAX_OWNER_SIGNATURE_BYTES,
    File,
    FileFields,
)
from backbone.modules.files.service import FileService
from backbone.platform.errors import InvalidInput
from backbone.platform.http import (
    App,
    JsonObject,
    Query,
    checked_id,
    no_content,
    principal_of,
    read_json,
    send,
    send_page,
)
from backbone.platform.openapi import (
    ERROR,
    PAGE_QUERY,
    address,
    array,
    binary,
    boolean,
    describe,
    envelope,
    identifier,
    integer,
    nullable,
    obj,
    paged,
    string,
    timestamp,
)

TAGS = ("Files",)
CONTENT_PART = "content"
# Text parts are small; encryptedProperties (at most 1 MiB) is the largest, in base64.
_MAX_TEXT_PART_BYTES = 2 * 1024 * 1024
_MAX_CHUNKED_BODY_BYTES = 20 * 1024 * 1024


_FILE_COMMON = {
    "id": string(),
    "createdAt": timestamp(),
    "createdBy": address(),
    "createdByDevice": string(),
    "modifiedAt": timestamp(),
    "modifiedBy": address(),
    "modifiedByDevice": string(),
    "deletedAt": nullable(timestamp()),
    "deletedBy": nullable(string()),
    "deletedByDevice": nullable(string()),
    "owner": address(),
    "ownerSignature": string(),
    "cipherSize": integer(minimum=0),
    "cipherHash": string(),
    "expiresAt": timestamp(),
}
CREATED_FILE = obj({**_FILE_COMMON, "ownershipToken": string()})
FILE_METADATA = obj({**_FILE_COMMON, "ownershipIsLocked": boolean(), "encryptedProperties": string()})
FILE_ID = {"id": identifier("FIL")}
OWNERSHIP_TOKEN_BODY = obj({"ownershipToken": string()})
NEW_OWNERSHIP_TOKEN = envelope(obj({"newOwnershipToken": string()}))
UPLOAD_FORM = obj(
    {
        "content": {"type": "string", "format": "binary"},
        "cipherHash": binary(min_length=1),
        "ownerSignature": binary(min_length=1),
        "expiresAt": timestamp(),
        "encryptedProperties": binary(),
        "owner": address(),
    },
    optional=["encryptedProperties", "owner"],
)


def render_created_file(file: File) -> dict[str, Any]:
    return {
        "id": file.id,
        "createdAt": file.created_at,
        "createdBy": file.created_by,
        "createdByDevice": file.created_by_device,
        "modifiedAt": file.modified_at,
        "modifiedBy": file.modified_by,
        "modifiedByDevice": file.modified_by_device,
        "deletedAt": file.deleted_at,
        "deletedBy": file.deleted_by,
        "deletedByDevice": file.deleted_by_device,
        "owner": file.owner,
        "ownerSignature": file.owner_signature,
        "ownershipToken": file.ownership_token,
        "cipherSize": file.cipher_size,
        "cipherHash": file.cipher_hash,
        "expiresAt": file.expires_at,
    }


def render_file_metadata(file: File) -> dict[str, Any]:
    return {
        "id": file.id,
        "createdAt": file.created_at,
        "createdBy": file.created_by,
        "createdByDevice": file.created_by_device,
        "modifiedAt": file.modified_at,
        "modifiedBy": file.modified_by,
        "modifiedByDevice": file.modified_by_device,
        "deletedAt": file.deleted_at,
        "deletedBy": file.deleted_by,
        "deletedByDevice": file.deleted_by_device,
        "owner": file.owner,
        "ownerSignature": file.owner_signature,
        "ownershipIsLocked": file.ownership_is_locked,
        "cipherSize": file.cipher_size,
        "cipherHash": file.cipher_hash,
        "expiresAt": file.expires_at,
        "encryptedProperties": file.encrypted_properties,
    }


class _PartStream:
    """A body part's stream whose framing errors come out as the backbone's input errors."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, size: int = -1, /) -> bytes:
        try:
            data: bytes = self._stream.read(size)
        except falcon.MediaMalformedError as error:
            raise _malformed(error) from None
        return data


def _malformed(error: falcon.HTTPError) -> InvalidInput:
    detail = error.description or "the multipart body is malformed"
    return InvalidInput(f"'$': The multipart body cannot be parsed ({detail}).")


class _Multipart:
    """The parts of a `multipart/form-data` body, read as they arrive (never all in memory)."""

    def __init__(self, req: falcon.Request) -> None:
        if not (req.content_type or "").lower().startswith(falcon.MEDIA_MULTIPART):
            raise InvalidInput("'$': The request body must be multipart/form-data.")
        options = MultipartParseOptions()
        options.max_body_part_buffer_size = _MAX_TEXT_PART_BYTES
        # A chunked body announces no length; read it up to the request body limit.
        length = req.content_length
        if length is None:
            length = getattr(req.context, "max_body_bytes", None) or _MAX_CHUNKED_BODY_BYTES
        try:
            self._form = MultipartFormHandler(options).deserialize(
                req.bounded_stream, req.content_type, length
            )
        except (falcon.MediaMalformedError, falcon.HTTPInvalidHeader) as error:
            raise _malformed(error) from None

    def __iter__(self) -> Iterator[Any]:
        parts = iter(self._form)
        while True:
            try:
                part = next(parts)
            except StopIteration:
                return
            except falcon.MediaMalformedError as error:
                raise _malformed(error) from None
            yield part

    @staticmethod
    def text(part: Any) -> str:
        try:
            data: bytes = part.get_data()
        except falcon.MediaMalformedError as error:
            raise _malformed(error) from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"'{part.name}': The value is not UTF-8 text.") from None


def _read_fields(texts: dict[str, str]) -> FileFields:
    form = JsonObject(dict(texts))
    expires_at = form.timestamp("expiresAt")
    assert expires_at is not None
    return FileFields(
        cipher_hash=form.required_binary("cipherHash", max_bytes=MAX_CIPHER_HASH_BYTES),
        owner_signature=form.required_binary("ownerSignature", max_bytes=MAX_OWNER_SIGNATURE_BYTES),
        expires_at=expires_at,
        encrypted_properties=form.binary(
            "encryptedProperties", required=False, max_bytes=MAX_ENCRYPTED_PROPERTIES_BYTES
        )
        or b"",
    )


class FilesResource:
    def __init__(self, files: FileService) -> None:
        self._files = files

    @describe(
        "Upload a file: its encrypted content and metadata as multipart/form-data",
        {201: envelope(CREATED_FILE)},
        body=UPLOAD_FORM,
        body_type="multipart/form-data",
        tags=TAGS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Upload: the content part is streamed to storage; `owner` is ignored, as the original does."""
        form = _Multipart(req)
        with self._files.upload(principal_of(req)) as upload:
            texts: dict[str, str] = {}
            for part in form:
                if (part.name or "").lower() == CONTENT_PART:
                    upload.write_content(_PartStream(part.stream))
                else:
                    texts[part.name or ""] = form.text(part)
            file = upload.complete(_read_fields(texts))
        send(resp, render_created_file(file), 201)

    @describe(
        "The metadata of the caller's files (optionally only `ids`)",
        {200: paged(FILE_METADATA)},
        query={"ids": array(identifier("FIL")), **PAGE_QUERY},
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = Query(req)
        page = query.page()
        file_ids = [checked_id(value, "FIL", "ids") for value in query.texts("ids")]
        send_page(resp, self._files.list_own(principal_of(req), file_ids, page), render_file_metadata)


class FileResource:
    def __init__(self, files: FileService) -> None:
        self._files = files

    @describe(
        "The encrypted content of a file (no envelope)",
        {200: {"type": "string", "format": "binary"}},
        path=FILE_ID,
        response_type="application/octet-stream",
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        """The raw content, streamed from storage (no envelope)."""
        _, content = self._files.download(principal_of(req), checked_id(id, "FIL"))
        resp.content_type = "application/octet-stream"
        resp.content_length = content.size_bytes
        resp.stream = content

    @describe("Delete a file the caller owns", {204: None, 403: ERROR}, path=FILE_ID, tags=TAGS)
    def on_delete(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        self._files.delete(principal_of(req), checked_id(id, "FIL"))
        no_content(resp)


class FileMetadataResource:
    def __init__(self, files: FileService) -> None:
        self._files = files

    @describe("The metadata of a file", {200: envelope(FILE_METADATA)}, path=FILE_ID, tags=TAGS)
    def on_get(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        send(resp, render_file_metadata(self._files.get_metadata(principal_of(req), checked_id(id, "FIL"))))


class ValidateOwnershipTokenResource:
    def __init__(self, files: FileService) -> None:
        self._files = files

    @describe(
        "Whether an ownership token is the file's current one (owner only)",
        {200: envelope(obj({"isValid": boolean()})), 403: ERROR},
        body=OWNERSHIP_TOKEN_BODY,
        path=FILE_ID,
        tags=TAGS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        token = read_json(req, required=True).required_text("ownershipToken")
        is_valid = self._files.validate_ownership_token(principal_of(req), checked_id(id, "FIL"), token)
        send(resp, {"isValid": is_valid})


class RegenerateOwnershipTokenResource:
    def __init__(self, files: FileService) -> None:
        self._files = files

    @describe(
        "Replace the file's ownership token (owner only)",
        {200: NEW_OWNERSHIP_TOKEN, 403: ERROR},
        path=FILE_ID,
        tags=TAGS,
    )
    def on_patch(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        token = self._files.regenerate_ownership_token(principal_of(req), checked_id(id, "FIL"))
        send(resp, {"newOwnershipToken": token})


class ClaimOwnershipResource:
    def __init__(self, files: FileService) -> None:
        self._files = files

    @describe(
        "Become the file's owner with its current ownership token",
        {200: NEW_OWNERSHIP_TOKEN, 403: ERROR},
        body=OWNERSHIP_TOKEN_BODY,
        path=FILE_ID,
        tags=TAGS,
    )
    def on_patch(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        token = read_json(req, required=True).required_text("ownershipToken")
        new_token = self._files.claim_ownership(principal_of(req), checked_id(id, "FIL"), token)
        send(resp, {"newOwnershipToken": new_token})


def add_file_routes(app: App, files: FileService) -> None:
    app.add_route("/api/v2/Files", FilesResource(files))
    app.add_route("/api/v2/Files/{id}", FileResource(files))
    app.add_route("/api/v2/Files/{id}/Metadata", FileMetadataResource(files))
    app.add_route("/api/v2/Files/{id}/ValidateOwnershipToken", ValidateOwnershipTokenResource(files))
    app.add_route("/api/v2/Files/{id}/RegenerateOwnershipToken", RegenerateOwnershipTokenResource(files))
    app.add_route("/api/v2/Files/{id}/ClaimOwnership", ClaimOwnershipResource(files))
