"""The migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from backbone import migrations
from backbone.platform.db import metadata
from backbone.wiring import Services


def test_migrated_schema_matches_the_declared_tables(services: Services) -> None:
    with services.db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_nothing_is_pending_after_upgrade(services: Services) -> None:
    assert migrations.pending(services.db.engine) == set()
