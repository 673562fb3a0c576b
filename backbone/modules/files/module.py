"""The files module in the backbone: its service and its routes."""

from __future__ import annotations

from backbone.modules.files.consumer_api import add_file_routes
from backbone.modules.files.repository import FileRepository
from backbone.modules.files.service import FileService
from backbone.platform.blobs import BlobStore
from backbone.platform.errors import CheckQuota
from backbone.platform.modules import ModuleConfig


def include_files(config: ModuleConfig, *, blobs: BlobStore, check_quota: CheckQuota) -> FileService:
    files = FileService(
        config.db,
        FileRepository(config.db),
        blobs,
        config.outbox,
        config.clock,
        config.ids,
        check_quota=check_quota,
    )
    config.add_consumer_routes(lambda app: add_file_routes(app, files))
    return files
