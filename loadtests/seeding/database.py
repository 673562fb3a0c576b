"""The target database of a seeding run: schema, default tier and client, free space, plan key."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from backbone import migrations
from backbone.modules.tiers.model import BASIC_TIER_NAME
from backbone.settings import Settings
from backbone.wiring import build_services
from loadtests.seeding.bulk import SeedingError
from loadtests.seeding.planner import Plan

# Bytes on disk per row, tables and indexes together, measured on PostgreSQL with the heavy
# pool and rounded up; the free-space check asks for this plus a quarter.
BYTES_PER_ROW = {
    "identities": 600,
    "devices": 700,
    "relationship_templates": 500,
    "relationships": 900,
    "messages": 1_100,
    "challenges": 250,
    "datawallet_modifications": 700,
}


def plan_key(plan: Plan) -> str:
    """Names one data set: pool config name, seed and a fingerprint of config and DID domain."""
    document = repr((asdict(plan.config), plan.seed, plan.did_domain)).encode("utf-8")
    return f"{plan.config.name}:{plan.seed}:{hashlib.sha256(document).hexdigest()[:16]}"


def normalise_url(url: str) -> str:
    """psycopg 3 for PostgreSQL URLs, as the backbone does."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def needed_bytes(plan: Plan) -> int:
    totals = plan.totals
    return int(sum(BYTES_PER_ROW.get(kind, 300) * rows for kind, rows in totals.items()) * 1.25)


def check_free_disk(engine: Engine, plan: Plan) -> str:
    """Refuse to start when the database's disk cannot hold the data set; say what was checked."""
    needed = needed_bytes(plan)
    directory: Path | None = None
    if engine.dialect.name == "sqlite":
        database = engine.url.database or ""
        directory = Path(database).resolve().parent if database and database != ":memory:" else None
    elif engine.dialect.name == "postgresql" and (engine.url.host or "localhost") in (
        "localhost",
        "127.0.0.1",
        "::1",
    ):
        try:
            with engine.connect() as connection:
                directory = Path(str(connection.exec_driver_sql("SHOW data_directory").scalar_one()))
        except sa.exc.DBAPIError:
            directory = None  # not allowed to see it (no superuser)
    if directory is None or not directory.exists():
        return f"free disk: not checked (the database's directory is not visible here); needs ~{_gib(needed)}"
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise SeedingError(
            f"the data set needs about {_gib(needed)} but {directory} has {_gib(free)} free; "
            "free some space or seed a smaller pool"
        )
    return f"free disk: {_gib(free)} free at {directory}, the data set needs ~{_gib(needed)}"


def _gib(value: int) -> str:
    return f"{value / 2**30:.2f} GiB"


def prepare(database_url: str, *, client_id: str, client_secret: str) -> tuple[Engine, str]:
    """Bring the schema to head and make sure the default tiers and the OAuth client exist.

    Returns the engine and the tier id new identities get (the client's default tier).
    """
    url = normalise_url(database_url)
    with tempfile.TemporaryDirectory() as var_dir:
        settings = Settings(
            environment="development",
            database_url=url,
            var_dir=Path(var_dir),
            jwt_signing_key=b"s" * 32,  # only to build the services; no token is issued here
        )
        services = build_services(settings)
        try:
            migrations.upgrade(services.db.engine)
            services.tiers.ensure_defaults()
            services.quotas.ensure_defaults()
            services.clients.ensure(client_id, client_secret, BASIC_TIER_NAME)
        finally:
            services.db.dispose()
    engine = sa.create_engine(url)
    return engine, client_tier(engine, client_id)


def client_tier(engine: Engine, client_id: str) -> str:
    """The tier new identities of the OAuth client get (the client's default tier)."""
    with engine.connect() as connection:
        tier = connection.execute(
            sa.text("SELECT default_tier_id FROM oauth_clients WHERE client_id = :id"), {"id": client_id}
        ).scalar_one_or_none()
    if tier is None:
        raise SeedingError(f"the database has no OAuth client {client_id!r}")
    return str(tier)


def existing_identities(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql("SELECT count(*) FROM identities").scalar_one())
