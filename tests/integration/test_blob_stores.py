"""The BlobStore port, on both adapters: a local directory and an S3 bucket (SeaweedFS)."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import pytest
from falcon import testing

from backbone.consumer_api import create_consumer_app
from backbone.platform.blobs import BlobNotFound, BlobStore, LocalDirectoryBlobStore
from backbone.platform.clock import ManualClock
from backbone.wiring import build_services
from tests.helpers.services import settings_for_tests


class _BreaksOff:
    """A stream that yields some bytes and then fails, like a client that disconnects."""

    def __init__(self, good_bytes: int) -> None:
        self._left = good_bytes

    def read(self, size: int = -1, /) -> bytes:
        if self._left <= 0:
            raise ConnectionResetError("the client went away")
        chunk = b"\x07" * min(size if size > 0 else self._left, self._left)
        self._left -= len(chunk)
        return chunk


def _name() -> str:
    return "FIL" + uuid.uuid4().hex[:17]


def test_a_blob_is_stored_read_listed_and_deleted(blob_store: BlobStore) -> None:
    name = _name()
    content = os.urandom(200_000)
    assert blob_store.put(name, io.BytesIO(content)) == len(content)
    assert blob_store.exists(name)
    assert name in blob_store.list_names("FIL")
    assert blob_store.list_names(name[:-1] + "!") == []
    reader = blob_store.open(name)
    assert reader.size_bytes == len(content)
    assert reader.read_all() == content

    blob_store.delete(name)
    blob_store.delete(name)  # deleting twice is no error
    assert not blob_store.exists(name)
    assert name not in blob_store.list_names()
    with pytest.raises(BlobNotFound):
        blob_store.open(name)
    blob_store.ping()


def test_a_failing_stream_leaves_nothing_behind(blob_store: BlobStore) -> None:
    before = blob_store.list_names()
    name = _name()
    with pytest.raises(ConnectionResetError):
        blob_store.put(name, _BreaksOff(150_000))
    assert not blob_store.exists(name)
    assert blob_store.list_names() == before


def test_names_are_file_ids_only(blob_store: BlobStore) -> None:
    for bad in ("../escape", "a/b", "", "x" * 101):
        with pytest.raises(ValueError, match="blob name"):
            blob_store.put(bad, io.BytesIO(b"x"))


def test_a_local_store_replaces_a_blob_atomically(tmp_path: Path) -> None:
    store = LocalDirectoryBlobStore(tmp_path / "blobs")
    store.put("FILsame", io.BytesIO(b"first"))
    with pytest.raises(ConnectionResetError):
        store.put("FILsame", _BreaksOff(10))
    assert store.open("FILsame").read_all() == b"first"
    assert store.list_names() == ["FILsame"]


class _Unreachable(LocalDirectoryBlobStore):
    def ping(self) -> None:
        raise ConnectionRefusedError("the blob store does not answer")


def test_health_reports_an_unreachable_blob_store(database_url: str, tmp_path: Path) -> None:
    services = build_services(
        settings_for_tests(database_url, tmp_path), clock=ManualClock(), blobs=_Unreachable(tmp_path)
    )
    try:
        answer = testing.TestClient(create_consumer_app(services)).simulate_get("/health")
        assert (answer.status_code, answer.text) == (503, "Unhealthy")
        assert services.health.failing() == ["blobs"]
    finally:
        services.close()
