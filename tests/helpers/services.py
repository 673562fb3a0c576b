"""Databases and service graphs for tests: SQLite files and a PostgreSQL database per session."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from backbone import migrations
from backbone.platform.db import Database, metadata
from backbone.settings import Settings

POSTGRES_ADMIN_URL = os.environ.get(
    "BACKBONE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
FAST_HASH_ITERATIONS = 1_000
ADMIN_API_KEY = "an-admin-api-key-for-tests"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    """Skip a test whose service is missing, except under CI, where the real thing must run."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: integration services must be available)")
    pytest.skip(reason)


def postgres_reachable() -> bool:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def throwaway_postgres_database() -> Iterator[str]:
    """Create a database for this test session on the PostgreSQL server; drop it afterwards."""
    name = f"backbone_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrated_sqlite_template(directory: Path) -> Path:
    path = directory / "template.sqlite3"
    db = Database(f"sqlite:///{path}")
    migrations.upgrade(db.engine)
    db.dispose()
    return path


def fresh_sqlite(template: Path, directory: Path) -> str:
    path = directory / "backbone.sqlite3"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


def empty_postgres_tables(url: str) -> None:
    """Remove every row, keeping the schema (much faster than a new database per test)."""
    engine = sa.create_engine(url)
    names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {names}")
    engine.dispose()


def settings_for_tests(database_url: str, var_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "development",
        "database_url": database_url,
        "var_dir": var_dir,
        "password_hash_iterations": FAST_HASH_ITERATIONS,
        "jwt_signing_key": b"t" * 32,
        "admin_api_key": ADMIN_API_KEY,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]
