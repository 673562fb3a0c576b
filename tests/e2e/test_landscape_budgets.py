"""A landscape on CPU budgets with a private PostgreSQL server, brought up once with `testbed up`:

- every process of a budgeted tier, and every child it forks (gunicorn's workers, PostgreSQL's
  backends), is in its own cgroup with its quota;
- a node with `cpu_limit = 0.25` under a busy loop uses 0.15 to 0.30 cores (its group's counter);
- the database is the landscape's own server with the profile's settings, in its own group;
- `down` leaves no process, listening port, cgroup or server directory, also after a killed `up`;
- budgets beyond the machine and an unknown option are refused in one message, before anything starts;
- with `--monitor`, Prometheus scrapes every tier and the CPU exporter reports each budget and its
  throttling as the kernel counts them; `down` stops the monitor's processes too.
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

from testbed.landscape.budgets import CpuGroup
from testbed.landscape.postgres import CLUSTER_USER, postgres_bin_dir
from testbed.landscape.prometheus import Prometheus
from tests.helpers.busy_loop import busy_loop_in
from tests.helpers.landscape import leftovers, read_state, require, run_testbed, start_testbed, wait_for_state
from tests.helpers.services import unavailable

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
PROFILE = """
name = "budgets"
description = "every process on a budget, a private PostgreSQL server"
environment = "production"

[gateway]
instances = 1
cpu_limit = 0.1

[nodes]
count = 1
workers = 2
threads = 2
cpu_limit = 0.25

[database]
kind = "postgresql"
server = "private"
cpu_limit = 0.3
pool_size = 2
max_overflow = 2
max_connections = 40
shared_buffers = "64MB"
work_mem = "2MB"
fsync = false

[admin_api]
cpu_limit = 0.05

[backbone]
PASSWORD_HASH_ITERATIONS = 1000
LOG_LEVEL = "WARNING"
"""


# The migration, and the monitor's processes: no tier of the landscape, no budget.
UNBUDGETED = {"migrate", "prometheus", "cpu-exporter", "postgres-exporter"}


def require_budgets() -> None:
    require("haproxy")
    if postgres_bin_dir() is None:
        unavailable("initdb/postgres are not installed (Debian package postgresql)")
    if os.geteuid() != 0:
        unavailable("cgroups are writable by root only here (run the tests as root, as CI does)")


def groups_of(state: dict[str, Any]) -> dict[str, CpuGroup]:
    return {
        group["role"]: CpuGroup(**{**group, "directories": tuple(group["directories"])})
        for group in state["cpu_groups"]
    }


def cgroup_of(pid: int, controller: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return ""


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("budgets") / "budgets.toml"
    path.write_text(PROFILE)
    return path


@pytest.fixture(scope="module")
def landscape(profile_path: Path) -> Iterator[dict[str, Any]]:
    require_budgets()
    state_path = profile_path.with_name("state.json")
    require("prometheus", "prometheus-postgres-exporter")
    up = run_testbed("up", "--profile", str(profile_path), "--state", str(state_path), "--monitor")
    assert up.returncode == 0, up.stdout + up.stderr
    state = read_state(state_path)
    print(f"\ntestbed up (budgets, private PostgreSQL): {state['up_seconds']} s")
    try:
        yield state
    finally:
        started = time.monotonic()
        down = run_testbed("down", "--state", str(state_path))
        print(f"\ntestbed down: {time.monotonic() - started:.1f} s")
        assert down.returncode == 0, down.stdout + down.stderr
        assert leftovers(state) == []
        assert not state_path.exists()


def test_every_process_and_everything_it_forks_runs_in_its_own_group_with_its_quota(
    landscape: dict[str, Any],
) -> None:
    groups = groups_of(landscape)
    assert set(groups) == {"postgresql", "admin-api", "node1", "gateway1"}
    for process in landscape["processes"]:
        if process["role"] in UNBUDGETED:
            continue
        group = groups[process["role"]]
        quota, usage = group.directories  # cgroup v1 here: the cpu group and its cpuacct twin
        assert Path(quota, "cpu.cfs_quota_us").read_text().strip() == str(round(group.cores * 100_000))
        assert Path(quota, "cpu.cfs_period_us").read_text().strip() == "100000"
        leader = psutil.Process(process["pid"])
        members = [leader, *leader.children(recursive=True)]
        assert len(members) >= (3 if process["role"] in ("node1", "postgresql") else 1)
        for member in members:
            assert cgroup_of(member.pid, "cpu") == "/" + Path(quota).name, (process["role"], member.pid)
            assert cgroup_of(member.pid, "cpuacct") == "/" + Path(usage).name, (process["role"], member.pid)


def test_a_node_with_a_quarter_core_under_a_busy_loop_uses_a_quarter_core(landscape: dict[str, Any]) -> None:
    node = groups_of(landscape)["node1"]
    use = busy_loop_in(node)
    print(f"\nnode1 (cpu_limit 0.25), busy: {use.cores:.3f} cores; throttled {use.throttled_periods}")
    assert 0.15 <= use.cores <= 0.30
    assert use.throttled_periods > 0


def test_the_monitor_scrapes_every_tier_and_sees_a_throttled_budget(landscape: dict[str, Any]) -> None:
    prometheus = Prometheus(landscape["prometheus_url"], Path(landscape["monitor_dir"]) / "prometheus.log")
    assert set(prometheus.targets_up().values()) == {"up"}
    jobs = {sample["metric"]["job"] for sample in prometheus.query("up == 1")}
    assert {"node", "gateway", "database", "testbed"} <= jobs
    node = groups_of(landscape)["node1"]
    use = busy_loop_in(node, measure_s=3.0)
    assert use.throttled_periods > 0
    time.sleep(1.5)  # one more scrape
    budget = prometheus.query('testbed_tier_cpu_budget_cores{process="node1"}')
    assert [(sample["metric"]["tier"], sample["value"][1]) for sample in budget] == [("node", "0.25")]
    throttled = prometheus.query('increase(testbed_tier_cpu_throttled_periods_total{process="node1"}[1m])')
    assert float(throttled[0]["value"][1]) > 0
    landscape_id = landscape["id"]
    connections = prometheus.query(f'pg_settings_max_connections{{landscape="{landscape_id}"}}')
    assert [sample["value"][1] for sample in connections] == ["40"]


def test_the_database_is_the_landscapes_own_server_with_the_profiles_settings(
    landscape: dict[str, Any],
) -> None:
    server = next(process for process in landscape["processes"] if process["role"] == "postgresql")
    assert landscape["database_url"].endswith(f"127.0.0.1:{server['port']}/backbone")
    assert landscape["database_name"] == ""  # nothing to drop on a shared server
    with psycopg.connect(landscape["database_url"]) as connection:
        shown = {
            name: connection.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("max_connections", "shared_buffers", "work_mem", "fsync", "synchronous_commit")
        }
        backend = connection.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        assert psutil.Process(backend).ppid() == server["pid"]
        assert cgroup_of(backend, "cpu").endswith("-postgresql")
    assert shown == {
        "max_connections": "40",
        "shared_buffers": "64MB",
        "work_mem": "2MB",
        "fsync": "off",
        "synchronous_commit": "on",
    }
    assert psutil.Process(server["pid"]).username() == CLUSTER_USER
    assert Path(landscape["postgres_directory"], "data").is_dir()


def test_a_killed_up_leaves_groups_and_a_server_that_down_removes(profile_path: Path, tmp_path: Path) -> None:
    require_budgets()
    state_path = tmp_path / "state.json"
    up = start_testbed(
        "up", "--profile", str(profile_path), "--state", str(state_path), log=tmp_path / "up.log"
    )
    try:
        wait_for_state(state_path, lambda s: any(p["role"] == "node1" for p in s["processes"]))
    finally:
        up.send_signal(signal.SIGKILL)
        up.wait(timeout=10)
    state = read_state(state_path)
    left_by_the_kill = leftovers(state)
    down = run_testbed("down", "--state", str(state_path))
    assert any(item.startswith("cgroup ") for item in left_by_the_kill), left_by_the_kill
    assert any(item.startswith("PostgreSQL directory") for item in left_by_the_kill), left_by_the_kill
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(state) == []
    assert not state_path.exists()


def test_budgets_beyond_the_machine_and_an_unknown_option_are_refused_before_anything_starts(
    profile_path: Path, tmp_path: Path
) -> None:
    cores = len(os.sched_getaffinity(0))
    too_big = tmp_path / "too-big.toml"
    too_big.write_text(PROFILE.replace("cpu_limit = 0.25", f"cpu_limit = {cores + 1}"))
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(PROFILE.replace("cpu_limit = 0.3", "cpu_limit = 0.3\ncpu_limits = 0.3"))
    for path, message in (
        (too_big, "the CPU budgets add up to"),
        (unknown, "database.cpu_limits: is not a known option"),
    ):
        state_path = tmp_path / f"{path.stem}.json"
        answer = run_testbed("up", "--profile", str(path), "--state", str(state_path))
        assert answer.returncode == 2, answer.stderr
        assert message in answer.stderr
        assert "Traceback" not in answer.stderr
        assert not state_path.exists()
