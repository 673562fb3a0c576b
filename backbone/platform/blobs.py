"""BLOB storage: file contents by name, streamed in and out, never visible half-written.

The port is `BlobStore`; `LocalDirectoryBlobStore` is the embedded default (a directory under
`var/`), `S3BlobStore` speaks the S3 API through the `minio` SDK (MinIO, SeaweedFS, AWS).
Names are file ids (`[A-Za-z0-9]`), so they are safe as file and object names alike.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol, cast

CHUNK_BYTES = 64 * 1024
_NAME = re.compile(r"^[A-Za-z0-9]{1,100}$")
_INCOMING = ".incoming"


class Readable(Protocol):
    """Anything with a file-like `read(size)`."""

    def read(self, size: int = -1, /) -> bytes: ...


class BlobNotFound(Exception):
    """No blob has this name."""


class BlobReader:
    """A stored blob being read: its size, then its bytes in chunks; close it when done."""

    def __init__(self, size_bytes: int, stream: IO[bytes] | Any, on_close: Any = None) -> None:
        self.size_bytes = size_bytes
        self._stream = stream
        self._on_close = on_close

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self._stream.read(size)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK_BYTES):
            yield chunk

    def read_all(self) -> bytes:
        """Read the whole blob and close it (tests and small blobs only)."""
        try:
            return b"".join(self)
        finally:
            self.close()

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            if self._on_close is not None:
                self._on_close()


class LocalFileReader(BlobReader):
    """A blob that is a local file: servers may send it with sendfile(2) through `fileno`."""

    def __init__(self, size_bytes: int, handle: IO[bytes]) -> None:
        super().__init__(size_bytes, handle)
        self._handle = handle

    def fileno(self) -> int:
        return self._handle.fileno()

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()


class BlobStore(Protocol):
    """Where file contents live; metadata lives in the database."""

    def put(self, name: str, stream: Readable) -> int:
        """Store everything `stream` yields under `name`; return the number of bytes stored.

        If reading the stream raises, nothing is stored under `name` and the error propagates.
        """
        ...

    def open(self, name: str) -> BlobReader:
        """Open a blob for reading; raise BlobNotFound if there is none."""
        ...

    def delete(self, name: str) -> None:
        """Remove a blob; a missing one is no error."""
        ...

    def exists(self, name: str) -> bool: ...

    def list_names(self, prefix: str = "") -> list[str]:
        """The names of the stored blobs starting with `prefix`, sorted."""
        ...

    def ping(self) -> None:
        """Raise unless the store can be used (the health check)."""
        ...


def _checked(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"not a valid blob name: {name!r}")
    return name


class LocalDirectoryBlobStore:
    """Blobs as files in one directory; written to a temporary file, then renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"LocalDirectoryBlobStore({str(self.root)!r})"

    def _incoming(self) -> Path:
        incoming = self.root / _INCOMING
        incoming.mkdir(parents=True, exist_ok=True)
        return incoming

    def put(self, name: str, stream: Readable) -> int:
        target = self.root / _checked(name)
        # The temporary file lives on the same file system, so the rename is atomic.
        partial = self._incoming() / f"{name}.{uuid.uuid4().hex}"
        size = 0
        try:
            with open(partial, "wb") as out:
                while chunk := stream.read(CHUNK_BYTES):
                    out.write(chunk)
                    size += len(chunk)
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return size

    def open(self, name: str) -> BlobReader:
        try:
            handle = open(self.root / _checked(name), "rb")  # noqa: SIM115 - the reader closes it
        except FileNotFoundError:
            raise BlobNotFound(name) from None
        return LocalFileReader(os.fstat(handle.fileno()).st_size, handle)

    def delete(self, name: str) -> None:
        (self.root / _checked(name)).unlink(missing_ok=True)

    def exists(self, name: str) -> bool:
        return (self.root / _checked(name)).is_file()

    def list_names(self, prefix: str = "") -> list[str]:
        """Stored blobs; files still being written (under `.incoming/`) are counted as well."""
        if not self.root.is_dir():
            return []
        names = [path.name for path in self.root.iterdir() if path.is_file() and path.name.startswith(prefix)]
        incoming = self.root / _INCOMING
        if incoming.is_dir():
            # Left-over partial files would be half-written state; list them so tests see them.
            names += [
                f"{_INCOMING}/{path.name}" for path in incoming.iterdir() if path.name.startswith(prefix)
            ]
        return sorted(names)

    def ping(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise PermissionError(f"{self.root} is not writable")


class S3BlobStore:
    """Blobs as objects of one S3 bucket, created on first use if missing."""

    # Contents up to this size stay in memory while they are counted; larger ones spill to disk.
    _SPOOL_BYTES = 1024 * 1024

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = True,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 30.0,
    ) -> None:
        import urllib3
        from minio import Minio

        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
            maxsize=16,
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self._client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, http_client=http
        )
        self.endpoint = endpoint
        self.bucket = bucket
        self._bucket_ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3BlobStore(endpoint={self.endpoint!r}, bucket={self.bucket!r})"

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists (once per process)."""
        if self._bucket_ready:
            return
        with self._lock:
            if not self._client.bucket_exists(self.bucket):
                from minio.error import S3Error

                try:
                    self._client.make_bucket(self.bucket)
                except S3Error as error:
                    # Another process created it in the meantime.
                    if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
            self._bucket_ready = True

    def put(self, name: str, stream: Readable) -> int:
        _checked(name)
        # Read the whole content before the upload starts: a client that breaks off mid-body
        # leaves no object behind, and the object is sent with its length in one request.
        with tempfile.SpooledTemporaryFile(max_size=self._SPOOL_BYTES) as spool:
            size = 0
            while chunk := stream.read(CHUNK_BYTES):
                spool.write(chunk)
                size += len(chunk)
            spool.seek(0)
            self.ensure_bucket()
            self._client.put_object(self.bucket, name, cast(BinaryIO, spool), size)
        return size

    def open(self, name: str) -> BlobReader:
        from minio.error import S3Error

        try:
            response = self._client.get_object(self.bucket, _checked(name))
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchBucket"):
                raise BlobNotFound(name) from None
            raise
        size = int(response.headers.get("Content-Length", "0"))
        return BlobReader(size, response, on_close=response.release_conn)

    def delete(self, name: str) -> None:
        from minio.error import S3Error

        try:
            self._client.remove_object(self.bucket, _checked(name))
        except S3Error as error:
            if error.code != "NoSuchBucket":
                raise

    def exists(self, name: str) -> bool:
        from minio.error import S3Error

        try:
            self._client.stat_object(self.bucket, _checked(name))
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                return False
            raise
        return True

    def list_names(self, prefix: str = "") -> list[str]:
        if not self._client.bucket_exists(self.bucket):
            return []
        names = [item.object_name for item in self._client.list_objects(self.bucket, prefix=prefix or None)]
        return sorted(name for name in names if name)

    def ping(self) -> None:
        self._client.bucket_exists(self.bucket)
