"""Where units of work run: read-only ones on the replicas in turn, writing ones and reads that ask
for the primary on the primary, nested ones where the outermost runs; the backbone's engine
through a real PgBouncer in transaction mode, where prepared statements must be off; and why the
landscape's replicas apply every commit before it returns: streaming asynchronously, a read right
after a write misses it.

Three databases on the machine's server stand in for a primary and two replicas in the routing
tests (each says which it is); the last test streams a real replica from a private server.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import sqlalchemy as sa

from backbone.platform.db import Database, DatabaseUnreachable
from testbed.landscape.cpu import confine
from testbed.landscape.pgbouncer import PgBouncerConfig, PooledDatabase, pgbouncer_executable, write_config
from testbed.landscape.postgres import (
    PostgresCluster,
    cluster_account,
    new_cluster_directory,
    postgres_bin_dir,
    private_postgres_cluster,
)
from testbed.processes import free_port, stop, wait_until_answers
from tests.helpers.services import (
    POSTGRES_ADMIN_URL,
    postgres_reachable,
    throwaway_postgres_database,
    unavailable,
)
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.postgres
WHICH = sa.text("SELECT name FROM which")


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    """URLs of three databases, each with a table naming it: primary, replica1, replica2."""
    if not postgres_reachable():
        unavailable(f"no PostgreSQL server answers on {POSTGRES_ADMIN_URL}")
    with contextlib.ExitStack() as stack:
        urls = {
            name: stack.enter_context(throwaway_postgres_database())
            for name in ("primary", "replica1", "replica2")
        }
        for name, url in urls.items():
            engine = sa.create_engine(url)
            with engine.begin() as connection:
                connection.execute(sa.text("CREATE TABLE which (name text)"))
                connection.execute(sa.text("INSERT INTO which VALUES (:name)"), {"name": name})
            engine.dispose()
        yield urls


def where(connection: sa.Connection) -> str:
    return str(connection.execute(WHICH).scalar_one())


def test_reads_take_the_replicas_in_turn_and_writes_the_primary(servers: dict[str, str]) -> None:
    db = Database(servers["primary"], read_urls=(servers["replica1"], servers["replica2"]))
    try:
        reads = []
        for _ in range(4):
            with db.read() as connection:
                reads.append(where(connection))
        assert reads == ["replica1", "replica2", "replica1", "replica2"]
        with db.transaction() as connection:
            assert where(connection) == "primary"
            # A read inside a writing unit joins it: it sees the unit's own writes.
            with db.read() as inner:
                assert inner is connection
        with db.read(primary=True) as connection:
            assert where(connection) == "primary"
            with db.read() as inner:
                assert where(inner) == "primary"
        db.ping()
    finally:
        db.dispose()


def read_the_primary_inside_a_read(db: Database) -> None:
    with db.read(), db.read(primary=True):
        pass


def test_a_read_of_the_primary_cannot_join_a_read_a_replica_may_serve(servers: dict[str, str]) -> None:
    # Refused with or without replicas, so a call site that needs the primary is caught by any test.
    for read_urls in ((servers["replica1"],), ()):
        db = Database(servers["primary"], read_urls=read_urls)
        try:
            with pytest.raises(RuntimeError, match="cannot join a read-only unit a replica may serve"):
                read_the_primary_inside_a_read(db)
        finally:
            db.dispose()


def test_without_replicas_every_unit_runs_on_the_primary(servers: dict[str, str]) -> None:
    db = Database(servers["primary"])
    try:
        with db.read() as connection:
            assert where(connection) == "primary"
    finally:
        db.dispose()


def test_a_replica_that_is_away_makes_the_health_ping_fail(servers: dict[str, str]) -> None:
    away = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    db = Database(servers["primary"], read_urls=(away,))
    try:
        with pytest.raises(DatabaseUnreachable, match=r"cannot reach the database .*/nothing: "):
            db.ping()
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def pgbouncer(servers: dict[str, str]) -> Iterator[str]:
    """A PgBouncer (transaction pooling, 2 server connections) in front of the primary database."""
    executable = pgbouncer_executable()
    if executable is None:
        unavailable("pgbouncer is not installed (apt-get install pgbouncer)")
    server = sa.make_url(servers["primary"])
    user = server.username or "postgres"
    pooled = PooledDatabase(
        "pooled", server.host or "127.0.0.1", server.port or 5432, server.database or "", user
    )
    config = PgBouncerConfig(
        port=free_port(), user=user, pool_size=2, max_client_connections=50, databases=(pooled,)
    )
    # In the temporary directory, where PgBouncer's user (postgres, when this runs as root) reaches it.
    directory = new_cluster_directory("backbone-pgbouncer-")
    account = cluster_account()
    ini = write_config(directory, config, account)
    with open(directory / "log", "wb") as log:
        process = subprocess.Popen(
            [executable, str(ini)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=confine((), (), account),
        )

    def answers() -> bool:
        try:
            with psycopg.connect(
                config.url("pooled"), connect_timeout=2, prepare_threshold=None
            ) as connection:
                connection.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    try:
        wait_until_answers(answers, process, what="pgbouncer", timeout_s=20)
        yield config.url("pooled").replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        stop(process)
        shutil.rmtree(directory, ignore_errors=True)


def taking_turns(db: Database) -> list[str]:
    """Two connections of the engine take turns, ten transactions each of the same statement."""
    answers = []
    with db.engine.connect() as first, db.engine.connect() as second:
        for _ in range(10):
            for connection in (first, second):
                with connection.begin():
                    answers.append(where(connection))
    return answers


def test_through_pgbouncer_in_transaction_mode_units_of_work_run_without_prepared_statements(
    pgbouncer: str,
) -> None:
    db = Database(pgbouncer, prepared_statements=False, pool_size=4, max_overflow=0)
    try:
        with db.read() as connection:
            assert connection.connection.driver_connection.prepare_threshold is None  # type: ignore[union-attr]
        assert taking_turns(db) == ["primary"] * 20

        def units(_: int) -> list[str]:
            answers = []
            for _ in range(20):
                with db.transaction() as connection:
                    answers.append(where(connection))
            return answers

        # Four threads on two server connections.
        with ThreadPoolExecutor(4) as pool:
            assert [answer for answers in pool.map(units, range(4)) for answer in answers] == ["primary"] * 80
    finally:
        db.dispose()


def test_prepared_statements_are_what_transaction_pooling_breaks(pgbouncer: str) -> None:
    # psycopg prepares a statement on its connection after 5 uses, under a name of that connection;
    # PgBouncer 1.18 hands both clients the same server connection in turn, where the second
    # client's statement collides with the first's.
    db = Database(pgbouncer, pool_size=4, max_overflow=0)
    try:
        with pytest.raises(sa.exc.DBAPIError, match="prepared statement"):
            taking_turns(db)
    finally:
        db.dispose()


def fresh_writes_missed(primary: str, replica: str, writes: int = 200) -> int:
    """Write a row on the primary, read it at once on the replica; count the reads that missed it."""
    missed = 0
    with (
        psycopg.connect(primary, autocommit=True) as writer,
        psycopg.connect(replica, autocommit=True) as reader,
    ):
        table = f"fresh_{free_port()}"
        writer.execute(f"CREATE TABLE {table} (id int)")
        wait_until(
            lambda: reader.execute("SELECT to_regclass(%s)", (table,)).fetchone() != (None,),
            "the table on the replica",
        )
        for row in range(writes):
            writer.execute(f"INSERT INTO {table} VALUES (%s)", (row,))
            found = reader.execute(f"SELECT count(*) FROM {table} WHERE id = %s", (row,)).fetchone()
            missed += found == (0,)
    return missed


def test_a_replica_misses_fresh_writes_until_every_commit_waits_for_its_replay() -> None:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        unavailable("initdb/postgres are not installed (Debian package postgresql)")
    assert bin_dir is not None
    with private_postgres_cluster(bin_dir) as primary:
        database = primary.url(primary.create_database().rsplit("/", 1)[1])
        replica = PostgresCluster(
            bin_dir,
            new_cluster_directory("backbone-pg-replica-"),
            primary.settings,
            account=primary.account,
            standby_of=primary,
            name="replica1",
        )
        try:
            replica.clone()
            replica.start()
            primary.wait_until_streaming(["replica1"])
            standby = replica.url(database.rsplit("/", 1)[1])
            asynchronous = fresh_writes_missed(database, standby)
            primary.apply_synchronously(["replica1"])
            synchronous = fresh_writes_missed(database, standby)
        finally:
            replica.stop()
            shutil.rmtree(replica.directory, ignore_errors=True)
    print(
        f"\nreads on the replica right after a write that missed it: {asynchronous} of 200 streaming "
        f"asynchronously, {synchronous} of 200 with remote_apply"
    )
    assert asynchronous > 0
    assert synchronous == 0
