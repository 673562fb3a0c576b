"""CPU budgets on this machine's cgroup hierarchy (v1 here and in CI: `cpu` and `cpuacct` mounted
apart), and the private PostgreSQL server a landscape starts.

- a busy loop that joined a 0.25-core group in its fork hook uses 0.15 to 0.30 cores by the group's
  own counter, is throttled, and its group is removed once it has stopped;
- the private server takes the profile's settings and, as root, runs as the `postgres` user;
- a port in use is one clear message;
- the run samples each group's counters into the budgets table.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from reports.manifest import RunManifest, write_manifest
from reports.rundir import read_run
from testbed.landscape import budgets
from testbed.landscape.budgets import CgroupV2, CpuGroup, find_hierarchy
from testbed.landscape.cpu import confine
from testbed.landscape.postgres import (
    INITIAL_DATABASES,
    PostgresCluster,
    PostgresError,
    ServerSettings,
    cluster_account,
    new_cluster_directory,
    postgres_bin_dir,
    private_postgres_cluster,
)
from testbed.run.collect import ProcessSampler, SampledGroup
from tests.helpers.busy_loop import busy_loop_in
from tests.helpers.services import unavailable


@pytest.fixture
def group() -> Iterator[CpuGroup]:
    hierarchy = find_hierarchy()
    if hierarchy is None:
        unavailable("no cgroup hierarchy with the cpu controller is writable here (run as root)")
        return
    made = hierarchy.group(f"testbed-test-{os.getpid()}-busy", "node1", 0.25, 100_000)
    budgets.create(made)
    try:
        yield made
    finally:
        budgets.lift(made)
        budgets.remove(made)


def test_a_busy_loop_in_a_quarter_core_group_uses_a_quarter_core_and_is_throttled(group: CpuGroup) -> None:
    budgets.enforce(group)
    use = busy_loop_in(group)
    print(
        f"\n{group.mechanism}: a busy loop with a 0.25-core budget used {use.cores:.3f} cores; "
        f"throttled in {use.throttled_periods} of {use.periods} periods"
    )
    assert use.pids == (use.loop_pid,)
    assert 0.15 <= use.cores <= 0.30
    assert use.throttled_periods >= use.periods * 0.5
    assert use.throttled_s > 0
    assert budgets.remove(group) is None
    assert not any(Path(directory).exists() for directory in group.directories)


def test_a_group_with_a_process_in_it_is_not_removed_and_says_why(group: CpuGroup) -> None:
    sleeper = subprocess.Popen(["sleep", "30"], preexec_fn=confine((), (group,)))
    try:
        problem = budgets.remove(group)
        assert problem is not None
        assert "processes remain in it" in problem
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    found = postgres_bin_dir()
    if found is None:
        unavailable("initdb/postgres are not installed (Debian package postgresql)")
    return found  # type: ignore[return-value]


def test_the_private_server_takes_the_profile_settings_and_runs_as_the_postgres_user(bin_dir: Path) -> None:
    settings = ServerSettings(max_connections=42, shared_buffers="32MB", work_mem="2MB", fsync=False)
    with private_postgres_cluster(bin_dir, settings) as cluster:
        url = cluster.create_database()
        with psycopg.connect(url) as connection:
            shown = {
                name: connection.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                for name in ("max_connections", "shared_buffers", "work_mem", "fsync", "synchronous_commit")
            }
            listen = connection.execute("SHOW listen_addresses").fetchone()[0]  # type: ignore[index]
        assert shown == {
            "max_connections": "42",
            "shared_buffers": "32MB",
            "work_mem": "2MB",
            "fsync": "off",
            "synchronous_commit": "on",
        }
        assert listen == "127.0.0.1"
        assert cluster.process is not None
        owner = Path(f"/proc/{cluster.process.pid}").stat().st_uid
        assert owner == (cluster_account() or (os.geteuid(), 0))[0]
        directory = cluster.directory
    assert not directory.exists()


# Tables autovacuum would analyse or vacuum for their inserts at its next round, by its own thresholds
# (it never analyses TOAST tables or pg_statistic).
DUE_FOR_AUTOVACUUM = """
SELECT s.relname FROM pg_stat_all_tables s JOIN pg_class c ON c.oid = s.relid
WHERE c.relkind = 'r' AND c.oid <> 'pg_catalog.pg_statistic'::regclass
      AND s.n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8
        + current_setting('autovacuum_analyze_scale_factor')::float8 * greatest(c.reltuples, 0)
   OR s.n_ins_since_vacuum > current_setting('autovacuum_vacuum_insert_threshold')::float8
        + current_setting('autovacuum_vacuum_insert_scale_factor')::float8 * greatest(c.reltuples, 0)
"""


def test_the_databases_initdb_made_leave_autovacuum_nothing_to_do(bin_dir: Path) -> None:
    # Autovacuum's first round through template1's catalogs came inside a measured step and held
    # a 0.05-core server for 0.9 s of one second.
    with private_postgres_cluster(bin_dir, ServerSettings()) as cluster:
        cluster.create_database()
        for database in INITIAL_DATABASES:
            with psycopg.connect(cluster.url(database)) as connection:
                due = [row[0] for row in connection.execute(DUE_FOR_AUTOVACUUM)]
            assert due == [], f"{database}: {due}"


def test_a_port_in_use_is_one_clear_message(bin_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cluster = PostgresCluster(
            bin_dir, new_cluster_directory("backbone-pg-"), port=port, account=cluster_account()
        )
        try:
            cluster.init()
            with pytest.raises(PostgresError) as raised:
                cluster.start()
        finally:
            cluster.stop()
            subprocess.run(["rm", "-rf", str(cluster.directory)], check=True)
    assert str(raised.value) == f"postgresql: port {port} on 127.0.0.1 is in use by another process"


def test_the_run_samples_each_groups_counters_into_the_budgets_table(tmp_path: Path) -> None:
    group = CgroupV2(tmp_path / "cgroup").group("testbed-x-postgresql", "postgresql", 0.4, 100_000)
    directory = Path(group.directories[0])
    directory.mkdir(parents=True)
    sampler = ProcessSampler([], tmp_path / "run", [SampledGroup("postgresql", "database", group)], 0.05)
    for used_us, periods, throttled in ((1_000_000, 10, 0), (1_400_000, 20, 8)):
        (directory / "cpu.stat").write_text(
            f"usage_usec {used_us}\nnr_periods {periods}\nnr_throttled {throttled}\n"
            f"throttled_usec {throttled * 50_000}\n"
        )
        sampler.tick()
    sampler.finish()
    write_manifest(tmp_path / "run", RunManifest(run_id="t"))
    table = read_run(tmp_path / "run").budgets
    assert table["process"].astype(str).tolist() == ["postgresql", "postgresql"]
    assert table["tier"].astype(str).tolist() == ["database", "database"]
    assert table["mechanism"].astype(str).tolist() == ["cgroup v2", "cgroup v2"]
    assert table["budget_cores"].tolist() == [0.4, 0.4]
    assert table["period_s"].tolist() == [0.1, 0.1]
    assert table["used_s"].tolist() == [1.0, 1.4]
    assert table["throttled_periods"].tolist() == [0, 8]
    assert table["throttled_s"].tolist() == [0.0, 0.4]
