"""Use cases of files: upload, read, list, delete, and the ownership token."""

from __future__ import annotations

import dataclasses
import hmac
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from backbone.modules.files import model
from backbone.modules.files.events import FileOwnershipClaimed, FileOwnershipLocked, FileUploaded
from backbone.modules.files.model import (
    MAX_CONTENT_BYTES,
    MIN_CONTENT_BYTES,
    OWNERSHIP_TOKEN_ALPHABET,
    OWNERSHIP_TOKEN_LENGTH,
    File,
    FileFields,
)
from backbone.modules.files.repository import FileRepository
from backbone.platform.auth import Principal
from backbone.platform.blobs import BlobNotFound, BlobReader, BlobStore, Readable
from backbone.platform.clock import Clock
from backbone.platform.db import Connection, Database, Page, Paged
from backbone.platform.errors import CheckQuota, Forbidden, NotFound, no_quota_check
from backbone.platform.events import Outbox
from backbone.platform.ids import Ids

log = logging.getLogger(__name__)


class _Limited:
    """Pass a stream through, refusing it as soon as it yields more than `max_bytes`."""

    def __init__(self, stream: Readable, max_bytes: int) -> None:
        self._stream = stream
        self._left = max_bytes

    def read(self, size: int = -1, /) -> bytes:
        # Ask for one byte more than allowed, so an oversized content is noticed without
        # reading (or storing) the rest of it.
        wanted = self._left + 1 if size < 0 else min(size, self._left + 1)
        chunk = self._stream.read(wanted)
        self._left -= len(chunk)
        if self._left < 0:
            raise model.content_too_large()
        return chunk


class Upload:
    """One file being uploaded: the content goes to the blob store first, the metadata last."""

    def __init__(self, service: FileService, caller: Principal, file_id: str) -> None:
        self._service = service
        self.caller = caller
        self.file_id = file_id
        self.size_bytes: int | None = None
        self.file: File | None = None

    def write_content(self, stream: Readable) -> None:
        """Stream the content into the blob store under the new file's id."""
        if self.size_bytes is not None:
            raise model.content_given_twice()
        self.size_bytes = 0
        self.size_bytes = self._service.blobs.put(self.file_id, _Limited(stream, MAX_CONTENT_BYTES))
        if self.size_bytes < MIN_CONTENT_BYTES:
            raise model.content_missing()

    def complete(self, fields: FileFields) -> File:
        """Record the metadata; only now does the file exist for anyone."""
        if not self.size_bytes:
            raise model.content_missing()
        self.file = self._service.record(self, fields)
        return self.file


class FileService:
    def __init__(
        self,
        db: Database,
        repository: FileRepository,
        blobs: BlobStore,
        outbox: Outbox,
        clock: Clock,
        ids: Ids,
        *,
        check_quota: CheckQuota = no_quota_check,
    ) -> None:
        self._db = db
        self._repository = repository
        self._check_quota = check_quota
        self.blobs = blobs
        self._outbox = outbox
        self._clock = clock
        self._ids = ids

    @contextmanager
    def upload(self, caller: Principal) -> Iterator[Upload]:
        """Upload a file; if the block fails or never completes, nothing of it remains."""
        # Checked before any byte is stored: a refused upload costs no storage traffic.
        self._check_quota(caller.address, ("NumberOfFiles", "UsedFileStorageSpace"))
        upload = Upload(self, caller, self._ids.new("FIL"))
        try:
            yield upload
        finally:
            if upload.file is None and upload.size_bytes is not None:
                self._discard(upload.file_id)

    def _discard(self, file_id: str) -> None:
        try:
            self.blobs.delete(file_id)
        except Exception:
            # The request fails anyway; a blob without metadata is invisible and housekeeping
            # removes orphaned blobs.
            log.warning("could not remove the content of the failed upload %s", file_id, exc_info=True)

    def record(self, upload: Upload, fields: FileFields) -> File:
        now = self._clock.now()
        if fields.expires_at <= now:
            raise model.expiry_in_the_past()
        caller = upload.caller
        file = File(
            id=upload.file_id,
            created_at=now,
            created_by=caller.address,
            created_by_device=caller.device_id,
            modified_at=now,
            modified_by=caller.address,
            modified_by_device=caller.device_id,
            deleted_at=None,
            deleted_by=None,
            deleted_by_device=None,
            owner=caller.address,
            owner_signature=fields.owner_signature,
            ownership_token=self._new_ownership_token(),
            ownership_is_locked=False,
            cipher_size=upload.size_bytes or 0,
            cipher_hash=fields.cipher_hash,
            expires_at=fields.expires_at,
            encrypted_properties=fields.encrypted_properties,
        )
        with self._db.transaction() as connection:
            self._repository.add(connection, file)
            self._outbox.add(FileUploaded(file_id=file.id, owner=file.owner, cipher_size=file.cipher_size))
        return file

    def _new_ownership_token(self) -> str:
        return self._ids.secret(OWNERSHIP_TOKEN_LENGTH, OWNERSHIP_TOKEN_ALPHABET)

    def count_created(self, address: str, since: datetime | None, until: datetime) -> int:
        """Files the identity uploaded in [since, until) (quota usage)."""
        with self._db.read() as connection:
            return self._repository.count_created(connection, address, since, until)

    def stored_mib(self, address: str, since: datetime | None, until: datetime) -> int:
        """Whole MiB of the files the identity uploaded in [since, until) (quota usage)."""
        with self._db.read() as connection:
            return self._repository.stored_bytes(connection, address, since, until) // (1024 * 1024)

    def get_metadata(self, caller: Principal, file_id: str) -> File:
        with self._db.read() as connection:
            return self._readable(connection, file_id)

    def _readable(self, connection: Connection, file_id: str, *, lock: bool = False) -> File:
        file = self._repository.find(connection, file_id, lock=lock)
        if file is None or not file.is_readable(self._clock.now()):
            raise NotFound("File")
        return file

    def download(self, caller: Principal, file_id: str) -> tuple[File, BlobReader]:
        """The file's metadata and its content, opened for streaming (the caller closes it)."""
        file = self.get_metadata(caller, file_id)
        try:
            return file, self.blobs.open(file.id)
        except BlobNotFound:
            raise NotFound("File") from None

    def list_own(self, caller: Principal, file_ids: Sequence[str], page: Page) -> Paged:
        """The files the caller created (optionally only the given ids)."""
        with self._db.read() as connection:
            return self._repository.find_page(connection, caller.address, file_ids, self._clock.now(), page)

    def delete(self, caller: Principal, file_id: str) -> None:
        """Delete a file the caller created: its metadata first, then its content."""
        with self._db.transaction() as connection:
            file = self._readable(connection, file_id, lock=True)
            if file.created_by != caller.address:
                raise Forbidden()
            self._repository.delete(connection, file.id)
        self._discard(file.id)

    # --- ownership ------------------------------------------------------------------------

    def validate_ownership_token(self, caller: Principal, file_id: str, token: str) -> bool:
        """Tell whether the token is the file's; a wrong guess by someone else locks the file."""
        with self._db.transaction() as connection:
            file = self._readable(connection, file_id, lock=True)
            is_valid = not file.ownership_is_locked and hmac.compare_digest(
                token.encode("utf-8"), file.ownership_token.encode("utf-8")
            )
            if not is_valid and caller.address != file.owner:
                self._lock(connection, file)
        return is_valid

    def regenerate_ownership_token(self, caller: Principal, file_id: str) -> str:
        """Give the file a new token (which also unlocks it); only its owner may."""
        with self._db.transaction() as connection:
            file = self._readable(connection, file_id, lock=True)
            if file.owner != caller.address:
                raise Forbidden()
            token = self._new_ownership_token()
            self._repository.set_ownership(connection, file.id, owner=file.owner, token=token, locked=False)
        return token

    def claim_ownership(self, caller: Principal, file_id: str, token: str) -> str:
        """Become the file's owner with its token; a wrong token locks the file."""
        claimed: File | None = None
        with self._db.transaction() as connection:
            file = self._readable(connection, file_id, lock=True)
            if file.owner == caller.address:
                raise model.cannot_claim_ownership_of_own_file()
            if file.ownership_is_locked:
                raise Forbidden()
            if hmac.compare_digest(token.encode("utf-8"), file.ownership_token.encode("utf-8")):
                claimed = dataclasses.replace(
                    file, owner=caller.address, ownership_token=self._new_ownership_token()
                )
                self._repository.set_ownership(
                    connection,
                    file.id,
                    owner=claimed.owner,
                    token=claimed.ownership_token,
                    locked=False,
                    claimed_at=self._clock.now(),
                )
                self._outbox.add(
                    FileOwnershipClaimed(
                        file_id=file.id, old_owner_address=file.owner, new_owner_address=caller.address
                    )
                )
            else:
                self._lock(connection, file)
        # The lock is committed above; only then is the claim refused.
        if claimed is None:
            raise Forbidden()
        return claimed.ownership_token

    def _lock(self, connection: Connection, file: File) -> None:
        if file.ownership_is_locked:
            return
        self._repository.lock_ownership(connection, file.id)
        self._outbox.add(FileOwnershipLocked(file_id=file.id, owner_address=file.owner))

    # --- consistency ----------------------------------------------------------------------

    def delete_of_identity(self, address: str) -> int:
        """Identity deletion: remove the files it created or owns, rows first, then contents."""
        with self._db.transaction() as connection:
            file_ids = self._repository.ids_of_identity(connection, address)
            self._repository.delete_many(connection, file_ids)
        self._delete_contents(file_ids)
        return len(file_ids)

    def delete_expired(self, before: datetime) -> int:
        """Housekeeping: remove files that expired before the date."""
        with self._db.transaction() as connection:
            file_ids = self._repository.expired_ids(connection, before)
            self._repository.delete_many(connection, file_ids)
        self._delete_contents(file_ids)
        return len(file_ids)

    def delete_orphaned_contents(self, settle_s: float) -> int:
        """Housekeeping: remove stored contents without metadata (e.g. of failed deletions)."""
        names = set(self.blobs.list_names(prefix="FIL"))
        # An upload stores its content first and inserts its row right after; waiting before the
        # ids are read lets every upload in flight at listing time commit its row, so it is kept.
        time.sleep(settle_s)
        orphans = sorted(names - set(self.stored_ids()))
        self._delete_contents(orphans)
        return len(orphans)

    def _delete_contents(self, file_ids: Sequence[str]) -> None:
        for file_id in file_ids:
            self.blobs.delete(file_id)  # a missing content is no error

    def stored_ids(self) -> list[str]:
        """Every file id with metadata (compared with the blob store's names by checks and tests)."""
        # It decides which contents are orphans and get deleted: the primary has every commit.
        with self._db.read(primary=True) as connection:
            return self._repository.ids(connection)
