"""A landscape with PgBouncer in front of its private PostgreSQL server and one streaming replica,
brought up once with `testbed up`, every process on a budget:

- PgBouncer and the replica run in budgets of their own (their children too), PgBouncer pools in
  transaction mode with the profile's pool, the replica streams and the primary counts it in its
  quorum, and every commit in the landscape's database waits for its replay (remote_apply);
- a write followed at once by a read of the same identity sees the write, while the replica
  serves the reads: tokens, templates, datawallet modifications, a login right after onboarding,
  a sync right after a peer's message and the message it names;
- the run's scraper reads PgBouncer's pools and the replica's lag into the series;
- `down` leaves no process, listening port, cgroup or directory, also after a killed `up`.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from loadtests.client.api import ConsumerApiClient
from loadtests.client.session import CREATED, IdentitySession, modification
from reports.rundir import SERIES, SERIES_COLUMNS, read_table
from testbed.landscape.pgbouncer import admin_connection, pgbouncer_executable
from testbed.landscape.postgres import CLUSTER_USER, postgres_bin_dir
from testbed.landscape.state import LandscapeState
from testbed.run.collect import MetricsScraper
from testbed.run.launched import database_statistics_targets
from tests.e2e.test_landscape_budgets import cgroup_of, groups_of
from tests.helpers.landscape import leftovers, read_state, run_testbed, start_testbed, wait_for_state
from tests.helpers.services import unavailable

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
PROFILE = """
name = "scaled-out"
description = "PgBouncer and one streaming replica in front of a private PostgreSQL server"
environment = "production"

[gateway]
instances = 0

[nodes]
count = 1
workers = 2
threads = 4
cpu_limit = 0.3

[database]
kind = "postgresql"
server = "private"
cpu_limit = 0.2
pool_size = 3
max_overflow = 2
max_connections = 40
fsync = false
pooler = "pgbouncer"
pooler_pool_size = 4
pooler_cpu_limit = 0.1
replicas = 1
replica_cpu_limit = 0.2

[admin_api]
cpu_limit = 0.1

[backbone]
PASSWORD_HASH_ITERATIONS = 1000
LOG_LEVEL = "WARNING"
"""
PASSWORD = "A-strong-passw0rd!"
ROUNDS = 20


def require_scaling() -> None:
    if postgres_bin_dir() is None:
        unavailable("initdb/postgres are not installed (Debian package postgresql)")
    if pgbouncer_executable() is None:
        unavailable("pgbouncer is not installed (apt-get install pgbouncer)")
    if os.geteuid() != 0:
        unavailable("cgroups are writable by root only here (run the tests as root, as CI does)")


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scaled-out") / "scaled-out.toml"
    path.write_text(PROFILE)
    return path


@pytest.fixture(scope="module")
def landscape(profile_path: Path) -> Iterator[dict[str, Any]]:
    require_scaling()
    state_path = profile_path.with_name("state.json")
    up = run_testbed("up", "--profile", str(profile_path), "--state", str(state_path))
    assert up.returncode == 0, up.stdout + up.stderr
    state = read_state(state_path)
    print(f"\ntestbed up (PgBouncer, 1 replica, budgets): {state['up_seconds']} s")
    try:
        yield state
    finally:
        down = run_testbed("down", "--state", str(state_path))
        assert down.returncode == 0, down.stdout + down.stderr
        assert leftovers(state) == []
        assert not state_path.exists()


def process(state: dict[str, Any], role: str) -> dict[str, Any]:
    return next(recorded for recorded in state["processes"] if recorded["role"] == role)


def pooler_console(state: dict[str, Any]) -> str:
    return state["pooler_url"].rsplit("/", 1)[0] + "/pgbouncer"


def replica_transactions(state: dict[str, Any]) -> int:
    """Transactions PgBouncer has run on the replica's pool (SHOW STATS)."""
    with admin_connection(pooler_console(state)) as console:
        cursor = console.execute("SHOW STATS")
        names = [column.name for column in cursor.description or ()]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return int(next(row["total_xact_count"] for row in rows if row["database"] == "backbone_replica1"))


def test_pgbouncer_and_the_replica_run_in_budgets_of_their_own(landscape: dict[str, Any]) -> None:
    groups = groups_of(landscape)
    assert set(groups) == {"postgresql", "replica1", "pgbouncer", "admin-api", "node1"}
    for role, cores in (("replica1", 0.2), ("pgbouncer", 0.1)):
        group = groups[role]
        quota, usage = group.directories
        assert Path(quota, "cpu.cfs_quota_us").read_text().strip() == str(round(cores * 100_000))
        leader = psutil.Process(process(landscape, role)["pid"])
        assert leader.username() == CLUSTER_USER
        members = [leader, *leader.children(recursive=True)]
        # The replica's startup (replay) and WAL receiver processes are its postmaster's children.
        assert len(members) >= (3 if role == "replica1" else 1)
        for member in members:
            assert cgroup_of(member.pid, "cpu") == "/" + Path(quota).name, (role, member.pid)
            assert cgroup_of(member.pid, "cpuacct") == "/" + Path(usage).name, (role, member.pid)
    # The replica's directory lies inside the private server's, which `down` removes.
    replica = Path(landscape["postgres_directory"], "replica1", "data")
    assert (replica / "standby.signal").is_file()


def test_the_backbone_reaches_the_primary_through_pgbouncer_and_the_replica_streams_synchronously(
    landscape: dict[str, Any],
) -> None:
    pooler = process(landscape, "pgbouncer")
    assert landscape["pooler_url"] == f"postgresql://postgres@127.0.0.1:{pooler['port']}/backbone"
    replica = process(landscape, "replica1")
    assert landscape["replica_urls"] == [f"postgresql://postgres@127.0.0.1:{replica['port']}/backbone"]
    with admin_connection(pooler_console(landscape)) as console:
        config = {row[0]: row[1] for row in console.execute("SHOW CONFIG").fetchall()}
        assert (config["pool_mode"], config["default_pool_size"]) == ("transaction", "4")
        databases = {row[0] for row in console.execute("SHOW DATABASES").fetchall()}
        assert {"backbone", "backbone_replica1"} <= databases
    with psycopg.connect(landscape["database_url"]) as primary:
        assert primary.execute("SHOW synchronous_commit").fetchone() == ("remote_apply",)
        assert primary.execute(
            "SELECT application_name, state, sync_state FROM pg_stat_replication"
        ).fetchall() == [("replica1", "streaming", "quorum")]
    with psycopg.connect(landscape["replica_urls"][0]) as standby:
        assert standby.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)


def test_a_write_followed_by_a_read_of_the_same_identity_sees_the_write_while_the_replica_reads(
    landscape: dict[str, Any],
) -> None:
    api = ConsumerApiClient(
        landscape["node_urls"][0], client_id=landscape["client_id"], client_secret=landscape["client_secret"]
    )
    before = replica_transactions(landscape)
    # Onboarding writes the identity; its first request logs in, reading the device it just made.
    alice = api.onboard(PASSWORD)
    bob = api.onboard(PASSWORD)
    for round_ in range(ROUNDS):
        token = alice.create_token(f"token {round_}".encode())
        assert alice.get_token(token["id"])["id"] == token["id"]
        template = alice.create_template(f"template {round_}".encode())
        assert alice.get_template(template["id"])["id"] == template["id"]
        assert [item["id"] for item in alice.list_templates([template["id"]])] == [template["id"]]
        alice.push_modifications(round_ - 1 if round_ else None, [modification(f"object-{round_}")])
        assert len(alice.datawallet_modifications()) == round_ + 1
    relationship = relate(alice, bob)
    assert bob.get_relationship(relationship)["status"] == "Active"
    bob.sync_until_no_new_events()
    for round_ in range(ROUNDS):
        sent = alice.send_message([bob.address], f"message {round_}".encode())
        # The sync right after the send: the event is there, and so is the message it names.
        outcome = bob.sync_external_events()
        assert outcome.status == CREATED, round_
        assert [event["payload"]["id"] for event in outcome.events if event["type"] == "MessageReceived"] == [
            sent["id"]
        ]
        assert bob.get_message(sent["id"])["id"] == sent["id"]
    served = replica_transactions(landscape) - before
    print(f"\nthe replica served {served} read-only units of work")
    assert served >= 6 * ROUNDS


def relate(alice: IdentitySession, bob: IdentitySession) -> str:
    """An active relationship between the two, requested by bob through alice's template."""
    template = alice.create_template(b"let us relate")
    requested = bob.create_relationship(template["id"])
    alice.accept_relationship(requested["id"])
    return str(requested["id"])


def test_the_runs_scraper_reads_pgbouncers_pools_and_the_replicas_lag(
    landscape: dict[str, Any], tmp_path: Path
) -> None:
    state = LandscapeState.load(Path(landscape["state_path"]))
    targets = database_statistics_targets(state)
    assert [(target.process, target.tier) for target in targets] == [
        ("pgbouncer", "pooler"),
        ("replication", "replica"),
    ]
    scraper = MetricsScraper(targets, tmp_path)
    scraper.tick()
    time.sleep(0.2)
    scraper.tick()
    scraper.finish()
    assert scraper.failures == {}
    series = read_table(tmp_path / SERIES, SERIES_COLUMNS, "series").astype({"name": str, "labels": str})
    names = set(zip(series["name"], series["labels"], strict=True))
    for database in ("backbone", "backbone_replica1"):
        for name in ("pgbouncer_pools_client_waiting_connections", "pgbouncer_stats_transactions_total"):
            assert (name, f'database="{database}"') in names
    assert ("pg_stat_replication_replay_lag_seconds", 'application_name="replica1"') in names
    assert ("pg_stat_replication_replay_lag_bytes", 'application_name="replica1"') in names
    assert series.loc[series["name"] == "up", "value"].tolist() == [1.0] * 4


def test_a_killed_up_leaves_the_replica_and_pgbouncer_for_down_to_remove(
    profile_path: Path, tmp_path: Path
) -> None:
    require_scaling()
    state_path = tmp_path / "state.json"
    up = start_testbed(
        "up", "--profile", str(profile_path), "--state", str(state_path), log=tmp_path / "up.log"
    )
    try:
        wait_for_state(state_path, lambda s: any(p["role"] == "pgbouncer" for p in s["processes"]))
    finally:
        up.send_signal(signal.SIGKILL)
        up.wait(timeout=10)
    state = read_state(state_path)
    left_by_the_kill = leftovers(state)
    down = run_testbed("down", "--state", str(state_path))
    for what in ("replica1 process group", "pgbouncer process group", "PgBouncer directory", "cgroup "):
        assert any(item.startswith(what) for item in left_by_the_kill), (what, left_by_the_kill)
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(state) == []
    assert not state_path.exists()
