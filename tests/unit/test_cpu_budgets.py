"""CPU budgets: the profile's options for every tier, the plan that must fit the machine (all
problems at once), and the cgroup v2 and v1 paths on fake cgroup trees (tmp directories standing
in for /proc/self and the cgroup mounts; the real v1 path is tests/integration/test_cpu_budgets.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from scenarios.landscape import ProfileError, load_profile, parse_profile
from testbed.landscape import budgets
from testbed.landscape.budgets import CgroupV1, CgroupV2, CpuUsage, find_hierarchy
from testbed.landscape.commands import add_landscape_commands
from testbed.landscape.cpu import CpuPlanError, budget_table, plan_cpus
from testbed.landscape.launcher import Launcher
from testbed.landscape.state import LandscapeError

SOURCE = Path("budgets.toml")
BUDGETED = """
name = "budgeted"
[gateway]
instances = 1
cpu_limit = 0.1
[nodes]
count = 2
workers = 2
cpu_limit = 0.2
[database]
kind = "postgresql"
server = "private"
cpu_limit = 0.3
max_connections = 90
fsync = false
[admin_api]
cpu_limit = 0.05
[cpu]
period_ms = 20
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ProfileError) as raised:
        parse_profile(text, source=SOURCE)
    return raised.value.problems


def fake_v2(tmp_path: Path, controllers: str = "cpu io memory") -> Path:
    """A cgroup v2 mount at tmp/unified whose root group offers `controllers`; returns the fake /proc/self."""
    proc = tmp_path / "proc"
    proc.mkdir()
    mount = tmp_path / "unified"
    mount.mkdir()
    (mount / "cgroup.controllers").write_text(controllers + "\n")
    (mount / "cgroup.subtree_control").write_text("")
    (proc / "mountinfo").write_text(f"41 31 0:38 / {mount} rw,relatime - cgroup2 cgroup2 rw\n")
    (proc / "cgroup").write_text("0::/\n")
    return proc


def test_every_tier_takes_a_fractional_budget_and_the_profile_lists_its_processes() -> None:
    profile = parse_profile(BUDGETED, source=SOURCE)
    assert (profile.gateway.cpu_limit, profile.nodes.cpu_limit, profile.database.cpu_limit) == (0.1, 0.2, 0.3)
    assert profile.admin_api.cpu_limit == 0.05
    assert profile.cpu.period_ms == 20
    assert profile.database.private
    assert (profile.database.max_connections, profile.database.fsync) == (90, False)
    assert profile.database.synchronous_commit  # durability stays on unless the profile says so
    processes = {
        process.role: (process.tier, process.option, process.cpu_limit) for process in profile.processes()
    }
    assert processes == {
        "postgresql": ("database", "database.cpu_limit", 0.3),
        "admin-api": ("admin", "admin_api.cpu_limit", 0.05),
        "node1": ("node", "nodes.cpu_limit", 0.2),
        "node2": ("node", "nodes.cpu_limit", 0.2),
        "gateway1": ("gateway", "gateway.cpu_limit", 0.1),
    }


def test_bad_budget_and_server_options_are_refused_all_at_once() -> None:
    problems = problems_of(
        """
        name = "bad"
        [gateway]
        instances = 0
        cpu_limit = 0.1
        [nodes]
        cpu_limt = 0.2
        [worker]
        cpu_limit = 0.1
        [database]
        kind = "postgresql"
        url = "postgresql://h/p"
        cpu_limit = 0.3
        fsync = "yes"
        [admin_api]
        cpu_limit = 0.005
        [cpu]
        period_ms = 0
        """
    )
    text = "\n".join(problems)
    for expected in (
        "gateway.cpu_limit: is set, but there is no gateway (gateway.instances = 0)",
        "nodes.cpu_limt: is not a known option (known: count, workers, threads, cpu_limit)",
        "worker.cpu_limit: is set, but there is no worker (worker.replicas = 0)",
        'database.cpu_limit: is only for server = "private"',
        'database.fsync: is only for server = "private"',
        "database.fsync: must be true or false, got 'yes'",
        "admin_api.cpu_limit: must be a number >= 0.01, got 0.005",
        "cpu.period_ms: must be an integer in 1..1000, got 0",
    ):
        assert expected in text, f"missing {expected!r} in:\n{text}"
    assert all(problem.startswith(f"{SOURCE}: ") for problem in problems)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[database]\nkind = "postgresql"\nserver = "private"\nurl = "postgresql://h/p"',
            'database.url: is only for kind = "postgresql" and server = "external"',
        ),
        (
            '[database]\nkind = "postgresql"\nserver = "elsewhere"',
            "database.server: must be one of private, external",
        ),
        ("[database]\ncpu_limit = 0.2", 'database.cpu_limit: is only for kind = "postgresql"'),
        (
            '[database]\nkind = "postgresql"\nserver = "private"\nshared_buffers = "lots"',
            "database.shared_buffers: must be a size with a unit",
        ),
        ("[blob_store]\ncpu_limit = 0.1", 'blob_store.cpu_limit: is only for kind = "s3"'),
        (
            "[nodes]\ncpu_limit = 0.05\n[cpu]\nperiod_ms = 10",
            "nodes.cpu_limit: 0.05 cores x cpu.period_ms 10 is a quota of 0.5 ms per period",
        ),
        (
            '[database]\nkind = "postgresql"\nserver = "private"\nmax_connections = 20\n[nodes]\nworkers = 4',
            "or raise database.max_connections",
        ),
    ],
)
def test_options_of_the_private_server_and_the_budgets_that_do_not_fit_together(
    text: str, expected: str
) -> None:
    problems = problems_of(f'name = "x"\n{text}\n')
    assert any(expected in problem for problem in problems), problems


def test_the_budget_plan_names_each_tier_its_processes_budget_mechanism_and_period(tmp_path: Path) -> None:
    profile = parse_profile(BUDGETED, source=SOURCE)
    hierarchy = CgroupV2(tmp_path)
    plan = plan_cpus(profile, available={0, 1}, find=lambda: hierarchy)
    assert (plan.landscape_cores, plan.load_generator_cores) == ((0,), (1,))
    assert plan.mechanism == "cgroup v2"
    assert plan.period_us == 20_000
    assert plan.budget_total_cores == pytest.approx(0.85)
    assert plan.warnings == ()
    node = plan.process("node2")
    assert node is not None
    assert (node.cores, node.mechanism, node.limit_cores) == ((0,), "cgroup v2", 0.2)
    table = "\n".join(budget_table(plan))
    assert "node      node1, node2  0.2 each, 0.4 in all (nodes.cpu_limit)  cgroup v2  20 ms" in table
    assert "database  postgresql    0.3 (database.cpu_limit)" in table
    assert "total                   0.85 of 1 core(s)" in table


def test_budgets_beyond_the_landscape_cores_are_refused_naming_every_option_with_the_other_problems() -> None:
    profile = parse_profile(
        BUDGETED.replace("cpu_limit = 0.2", "cpu_limit = 1.0")
        + "landscape_cores = [0]\nload_generator_cores = [1]\n",
        source=SOURCE,
    )
    with pytest.raises(CpuPlanError) as raised:
        plan_cpus(profile, available={0, 1}, find=lambda: None)
    (problem,) = raised.value.problems
    assert "the CPU budgets add up to 2.45 cores" in problem
    assert (
        "(database.cpu_limit 0.3 + admin_api.cpu_limit 0.05 + nodes.count 2 x nodes.cpu_limit 1 + " in problem
    )
    assert "but the landscape has 1 core(s) (core(s) 0; core(s) 1 are the load generator's)" in problem
    for option in ("database.cpu_limit", "admin_api.cpu_limit", "nodes.cpu_limit", "gateway.cpu_limit"):
        assert option in problem
    elsewhere = parse_profile(BUDGETED + "landscape_cores = [7]\n", source=SOURCE)
    with pytest.raises(CpuPlanError) as raised:
        plan_cpus(elsewhere, available={0, 1})
    assert "name core(s) 7, but this process may use only 0, 1" in raised.value.problems[0]


def test_the_last_fallback_is_affinity_and_the_plan_warns_naming_what_holds_each_budget() -> None:
    profile = parse_profile(BUDGETED, source=SOURCE)
    plan = plan_cpus(profile, available={0, 1, 2}, find=lambda: None)
    assert plan.mechanism == "affinity"
    (warning,) = plan.warnings
    assert "no cgroup hierarchy with the cpu controller is writable here" in warning
    assert "node1 0.2 -> core(s) 0" in warning
    assert "node2 0.2 -> core(s) 1" in warning
    assert "a budget below one core is not enforced" in warning


def test_the_profile_command_shows_the_plan_and_refuses_budgets_beyond_the_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_landscape_commands(parser.add_subparsers())
    huge = tmp_path / "huge.toml"
    huge.write_text(
        BUDGETED.replace("count = 2", "count = 64")
        .replace("cpu_limit = 0.2", "cpu_limit = 4")
        .replace("max_connections = 90", "max_connections = 5000")
    )
    args = parser.parse_args(["profile", "capacity", str(huge)])
    assert args.run(args) == 2
    captured = capsys.readouterr()
    assert "capacity: 1 gateway(s), 2 node(s)" in captured.out
    assert "postgresql (private server, up to 50 connections)" in captured.out
    assert "tier      processes" in captured.out
    assert "the CPU budgets add up to 256.45 cores" in captured.err
    args = parser.parse_args(["up", "--profile", str(huge), "--state", str(tmp_path / "state.json")])
    assert args.run(args) == 2
    assert "the profile does not fit this machine" in capsys.readouterr().err
    assert not (tmp_path / "state.json").exists()


def test_the_shipped_capacity_profile_fits_one_core_beside_the_load_generator() -> None:
    for name in ("capacity", "stage", "prod"):
        profile = load_profile(name)
        plan = plan_cpus(profile, available={0, 1}, find=lambda: None)
        assert plan.budget_total_cores <= 1.0 + 1e-9, name
    capacity = load_profile("capacity")
    assert (capacity.bus.kind, capacity.blob_store.kind, capacity.database.server) == (
        "inprocess",
        "local",
        "private",
    )
    assert all(process.cpu_limit is not None for process in capacity.processes())


def test_a_private_server_without_initdb_is_refused_before_anything_starts(tmp_path: Path) -> None:
    profile = parse_profile(BUDGETED, source=SOURCE)
    plan = plan_cpus(profile, available={0, 1}, find=lambda: None)
    launcher = Launcher(
        profile, plan, state_path=tmp_path / "state.json", runs_dir=tmp_path, postgres_bin=lambda: None
    )
    with pytest.raises(LandscapeError) as raised:
        launcher.up()
    assert str(raised.value) == (
        'the profile budgeted needs initdb and postgres for database.server = "private" '
        "(apt-get install postgresql)"
    )
    assert not (tmp_path / "state.json").exists()


def test_cgroup_v2_on_a_fake_tree_is_found_made_joined_enforced_read_and_lifted(tmp_path: Path) -> None:
    hierarchy = find_hierarchy(fake_v2(tmp_path))
    assert hierarchy == CgroupV2(tmp_path / "unified")
    group = hierarchy.group("testbed-x-node1", "node1", 0.25, 100_000)
    assert group.directories == (str(tmp_path / "unified" / "testbed-x-node1"),)
    budgets.create(group)
    directory = Path(group.directories[0])
    assert (tmp_path / "unified" / "cgroup.subtree_control").read_text() == "+cpu"
    assert (directory / "cpu.max").read_text() == "max 100000"  # no quota while `up` starts
    budgets.add_pid(group, 4242)
    assert (directory / "cgroup.procs").read_text() == "4242"
    budgets.enforce(group)
    assert (directory / "cpu.max").read_text() == "25000 100000"
    (directory / "cpu.stat").write_text(
        "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n"
        "nr_periods 100\nnr_throttled 40\nthrottled_usec 1500000\n"
    )
    assert budgets.read_usage(group) == CpuUsage(2.5, 100, 40, 1.5)
    budgets.lift(group)
    assert (directory / "cpu.max").read_text() == "max 100000"


def test_below_the_root_v2_groups_go_beside_this_process_in_its_parent(tmp_path: Path) -> None:
    proc = fake_v2(tmp_path)
    session = tmp_path / "unified" / "user.slice" / "session-1.scope"
    session.mkdir(parents=True)
    (session.parent / "cgroup.controllers").write_text("cpu memory\n")
    (proc / "cgroup").write_text("0::/user.slice/session-1.scope\n")
    assert find_hierarchy(proc) == CgroupV2(tmp_path / "unified" / "user.slice")


def test_a_v2_tree_without_the_cpu_controller_is_passed_over(tmp_path: Path) -> None:
    assert find_hierarchy(fake_v2(tmp_path, controllers="io memory pids")) is None


def test_cgroup_v1_on_a_fake_tree_uses_twin_groups_for_quota_and_usage(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    cpu, cpuacct = tmp_path / "cpu", tmp_path / "cpuacct"
    for mount in (cpu, cpuacct):
        (mount / "machine").mkdir(parents=True)
    (cpu / "machine" / "cpu.cfs_quota_us").write_text("-1\n")
    (cpuacct / "machine" / "cpuacct.usage").write_text("0\n")
    (proc / "mountinfo").write_text(
        f"32 31 0:29 / {cpu} rw,relatime - cgroup cgroup rw,cpu\n"
        f"33 31 0:30 / {cpuacct} rw,relatime - cgroup cgroup rw,cpuacct\n"
        f"41 31 0:38 / {tmp_path / 'unified'} rw,relatime - cgroup2 cgroup2 rw\n"
    )
    (proc / "cgroup").write_text("2:cpuacct:/machine\n1:cpu:/machine\n0::/\n")
    hierarchy = find_hierarchy(proc)
    assert hierarchy == CgroupV1(cpu / "machine", cpuacct / "machine")
    group = hierarchy.group("testbed-x-postgresql", "postgresql", 0.4, 50_000)
    quota, usage = (Path(directory) for directory in group.directories)
    assert (quota, usage) == (
        cpu / "machine" / "testbed-x-postgresql",
        cpuacct / "machine" / "testbed-x-postgresql",
    )
    budgets.create(group)
    assert (quota / "cpu.cfs_period_us").read_text() == "50000"
    assert (quota / "cpu.cfs_quota_us").read_text() == "-1"
    budgets.add_pid(group, 99)
    assert (quota / "cgroup.procs").read_text() == (usage / "cgroup.procs").read_text() == "99"
    budgets.enforce(group)
    assert (quota / "cpu.cfs_quota_us").read_text() == "20000"
    (quota / "cpu.stat").write_text("nr_periods 10\nnr_throttled 3\nthrottled_time 120000000\n")
    (usage / "cpuacct.usage").write_text("400000000\n")
    assert budgets.read_usage(group) == CpuUsage(0.4, 10, 3, 0.12)


def test_cpu_and_cpuacct_mounted_together_make_one_directory_per_group(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    both = tmp_path / "cpu,cpuacct"
    both.mkdir()
    (both / "cpu.cfs_quota_us").write_text("-1\n")
    (both / "cpuacct.usage").write_text("0\n")
    (proc / "mountinfo").write_text(f"32 31 0:29 / {both} rw - cgroup cgroup rw,cpu,cpuacct\n")
    (proc / "cgroup").write_text("3:cpu,cpuacct:/\n")
    hierarchy = find_hierarchy(proc)
    assert hierarchy is not None
    assert hierarchy.group("g", "node1", 0.5, 100_000).directories == (str(both / "g"),)
