"""`testbed seed --mode bulk`: plan, prepare the database, write resumable steps, export."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from backbone.platform.auth import PasswordHasher
from loadtests.seeding.bulk import (
    BulkReport,
    BulkWriter,
    SeedingError,
    ensure_progress_table,
    finished_steps,
    now_utc,
    other_seeds,
    write_steps,
)
from loadtests.seeding.database import (
    check_free_disk,
    client_tier,
    existing_identities,
    normalise_url,
    plan_key,
    prepare,
)
from loadtests.seeding.export import bulk_entries, write_export
from loadtests.seeding.planner import Plan

# How long the VACUUM waits for the writing sessions' server processes to exit (milliseconds, as a
# rule, once their connections are closed).
SESSIONS_END_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class BulkOutcome:
    report: BulkReport
    export_path: Path
    resumed: bool


def seed_bulk(
    plan: Plan,
    database_url: str,
    *,
    client_id: str,
    client_secret: str,
    export_path: Path,
    password_hash_iterations: int = 100_000,
    schema_ready: bool = False,
    progress: Callable[[str], None] = print,
) -> BulkOutcome:
    """Write the plan into the database (COPY or executemany); resume a run cut short.

    `schema_ready`: the database is migrated and has the OAuth client (a landscape's launcher
    made them), so the backbone is not built to prepare it.
    """
    started = time.perf_counter()
    if schema_ready:
        engine = sa.create_engine(normalise_url(database_url))
    else:
        engine, _ = prepare(database_url, client_id=client_id, client_secret=client_secret)
    writers = backend_pids(engine)
    try:
        tier_id = client_tier(engine, client_id)
        key = plan_key(plan)
        ensure_progress_table(engine)
        if strangers := other_seeds(engine, key):
            raise SeedingError(
                f"the database already holds another data set ({', '.join(strangers)}); seed into a fresh one"
            )
        done = finished_steps(engine, key)
        if not done and existing_identities(engine):
            raise SeedingError(
                "the database already holds identities that no seeding run wrote; seed into a fresh one"
            )
        progress("bulk: " + check_free_disk(engine, plan))
        # A resumed run takes the first run's timestamp, so its rows equal the ones it would
        # have written without the interruption.
        seeded_at = datetime.fromisoformat(next(iter(done.values()))) if done else now_utc()
        if done:
            progress(f"bulk: resuming {key}: {len(done)} steps already written")
        writer = BulkWriter(
            plan,
            engine,
            client_id=client_id,
            tier_id=tier_id,
            seeded_at=seeded_at,
            password_hasher=PasswordHasher(password_hash_iterations),
        )
        report = write_steps(writer, key, done=done, report=BulkReport(), progress=progress)
        if engine.dialect.name == "postgresql":
            vacuum_started = time.perf_counter()
            vacuum_seeded(engine, writers)
            report.tables["(vacuum analyze)"].seconds += time.perf_counter() - vacuum_started
    finally:
        engine.dispose()
    path = write_export(export_path, plan, "bulk", client_id, bulk_entries(plan))
    report.seconds = time.perf_counter() - started
    return BulkOutcome(report, path, bool(done))


def backend_pids(engine: sa.Engine) -> set[int]:
    """The server processes of every PostgreSQL session the engine hands out from now on."""
    pids: set[int] = set()
    if engine.dialect.name == "postgresql":

        def remember(dbapi_connection: Any, *_: Any) -> None:
            pids.add(dbapi_connection.info.backend_pid)

        sa.event.listen(engine, "checkout", remember)
    return pids


def vacuum_seeded(engine: sa.Engine, writers: set[int]) -> None:
    """VACUUM (ANALYZE) the database once the sessions that wrote it have ended.

    VACUUM as well as ANALYZE: since PostgreSQL 13 rows inserted alone trigger an autovacuum,
    which would otherwise pass over every seeded table in the first minute of the load, and on a
    database at a tenth of a core hold it for seconds. The writing sessions end first: a session
    reports the rows it inserted to the statistics as late as when it ends, and rows reported
    after the VACUUM count as inserted since it, enough to trigger that autovacuum all the same.
    """
    engine.dispose()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        deadline = time.monotonic() + SESSIONS_END_TIMEOUT_S
        while (
            time.monotonic() < deadline
            and connection.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                {"pids": list(writers)},
            ).scalar_one()
        ):
            time.sleep(0.01)
        connection.exec_driver_sql("VACUUM (ANALYZE)")
