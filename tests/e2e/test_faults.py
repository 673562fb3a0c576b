"""Faults as scenario steps, end to end through `testbed run`:

- on `stage`, a 60 s run of the production mix with one `kill-node` and one `cut-broker` fault:
  the node is really killed and started again, the broker really cut at the landscape's own proxy,
  and the report shows each fault's recovery time and 0 acknowledged writes lost;
- a fault against a tier the profile lacks fails before anything starts, with one message;
- SIGINT inside each fault's active window, and SIGKILL of `testbed run` followed by
  `testbed down --state`: no process, group, proxy, cluster or port of the landscape remains.

The interruption tests run on a small landscape of their own (one node on SQLite; a worker on the
machine's RabbitMQ and a private PostgreSQL server only where the fault needs them) with anonymous
flows and no pool, so each costs little more than the landscape's start.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from reports.rundir import ACKNOWLEDGED_CHECK, FAULTS
from testbed.processes import REPOSITORY
from testbed.run.commands import WORK_DIR
from tests.helpers.landscape import leftovers, listening_ports, read_state, require, run_testbed

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq]
CI_SCENARIO = REPOSITORY / "scenarios" / "faults" / "ci-kill-node-cut-broker.toml"
SMALL_PROFILE = """
name = "faults-small"
environment = "production"
allowed_target_hosts = ["localhost", "127.0.0.1"]
[gateway]
instances = 0
[nodes]
count = 1
workers = 1
threads = 4
cpu_limit = 0.5
[database]
{database}
{bus}
[blob_store]
kind = "local"
[admin_api]
workers = 1
[backbone]
LOG_LEVEL = "WARNING"
"""
SQLITE = 'kind = "sqlite"'
PRIVATE_POSTGRESQL = 'kind = "postgresql"\nserver = "private"\ncpu_limit = 0.5\nmax_connections = 50'
# The machine's broker (a vhost of the landscape's own) and a worker only where the fault needs
# them: making the vhost costs seconds.
IN_PROCESS = '[bus]\nkind = "inprocess"\n[worker]\nreplicas = 0'
RABBITMQ = (
    '[bus]\nkind = "rabbitmq"\nurl = "amqp://guest:guest@127.0.0.1:5672/"\n'
    "[worker]\nreplicas = 1\ncpu_limit = 0.2"
)
# Each fault from 1 s for 40 s of a 45 s schedule: the interruption lands well inside it.
FAULTS_BY_KIND = {
    "kill-node": ("", SQLITE, IN_PROCESS),
    "kill-worker": ("", SQLITE, RABBITMQ),
    "cut-broker": ("", SQLITE, RABBITMQ),
    "throttle-tier": ('tier = "node"\ncores = 0.05', SQLITE, IN_PROCESS),
    "stop-database": ("", PRIVATE_POSTGRESQL, IN_PROCESS),
    "slow-database": ("latency_ms = 20", PRIVATE_POSTGRESQL, IN_PROCESS),
}
SMALL_SCENARIO = """
name = "fault-{kind}"
[shape]
kind = "constant"
duration_s = 45
[[flows]]
flow = "smoke.challenge"
rate_per_s = 5
[slo."POST /api/v2/Challenges"]
p90_ms = 500
[[faults]]
kind = "{kind}"
at_s = 1
duration_s = 40
{extra}
"""


def requires_landscape_tools() -> None:
    require("haproxy", "weed", "rabbitmqctl")


def test_a_stage_run_with_a_killed_node_and_a_cut_broker_reports_each_recovery_and_no_lost_write(
    tmp_path: Path,
) -> None:
    requires_landscape_tools()
    done = run_testbed(
        "run",
        "--profile",
        "stage",
        "--scenario",
        str(CI_SCENARIO),
        "--results",
        str(tmp_path),
        timeout_s=400,
    )
    # 1: an SLO or the validity may fail under faults (their verdicts are printed); 0 is fine too.
    assert done.returncode in (0, 1), done.stdout + done.stderr[-3000:]
    (run_dir,) = tmp_path.iterdir()
    faults = json.loads((run_dir / FAULTS).read_text())["faults"]
    assert [fault["kind"] for fault in faults] == ["kill-node", "cut-broker"]
    for fault in faults:
        assert fault["applied_at_s"] > 0, fault
        assert fault["ended_at_s"] > fault["applied_at_s"], fault
        assert not fault["error"], fault
        assert not fault["interrupted"], fault
    # The node was really killed and another process started in its place.
    assert faults[0]["target"] == "node1"
    assert faults[0]["stopped_pid"] > 0
    assert faults[0]["restarted_pid"] not in (0, faults[0]["stopped_pid"])
    # The broker connections really went through the proxy (its log names the target).
    assert "127.0.0.1:5672" in (run_dir / "logs" / "broker-proxy.log").read_text()
    check = json.loads((run_dir / ACKNOWLEDGED_CHECK).read_text())
    assert check["error"] == ""
    assert check["recorded"] > 0, check
    assert check["lost"] == 0, check
    assert check["found"] == check["recorded"]
    for kind in ("kill-node", "cut-broker"):
        line = next(line for line in done.stdout.splitlines() if line.startswith(f"Fault {kind}"))
        assert re.search(r"recovered \d+ s after it ended", line), done.stdout
    assert f"Acknowledged writes lost: 0 of {check['recorded']}" in done.stdout
    summary = (run_dir / "summary.md").read_text()
    assert "Faults and recovery" in summary
    assert "Acknowledged writes lost: 0 of" in summary


def test_a_fault_on_a_tier_the_profile_lacks_fails_before_anything_starts(tmp_path: Path) -> None:
    scenario = tmp_path / "no-worker.toml"
    scenario.write_text(
        SMALL_SCENARIO.format(kind="kill-worker", extra="")
        + '\n[[faults]]\nkind = "cut-broker"\nat_s = 42\nduration_s = 2\n'
    )
    done = run_testbed("run", "--profile", "dev", "--scenario", str(scenario), "--pool", "none")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.strip().splitlines() if "warning:" not in line]
    assert lines[0] == "testbed run: invalid faults:", lines
    assert len(lines) == 3, lines
    assert "faults[0] (kill-worker events at 1 s for 40 s): the profile dev has no events tier" in lines[1]
    assert "faults[1] (cut-broker broker at 42 s for 2 s): the profile dev has no broker tier" in lines[2]
    assert "Traceback" not in done.stderr
    # Nothing was started: no work directory of this scenario's run appeared.
    assert not list(WORK_DIR.glob("*-no-worker-*"))


def start_run(tmp_path: Path, kind: str) -> tuple[subprocess.Popen[bytes], Path]:
    extra, database, bus = FAULTS_BY_KIND[kind]
    profile = tmp_path / "profile.toml"
    profile.write_text(SMALL_PROFILE.format(database=database, bus=bus))
    scenario = tmp_path / f"{kind}.toml"
    scenario.write_text(SMALL_SCENARIO.format(kind=kind, extra=extra))
    log = tmp_path / "run.log"
    command = [sys.executable, "-m", "testbed.cli", "run", "--profile", str(profile)]
    command += ["--scenario", str(scenario), "--pool", "none", "--results", str(tmp_path / "results")]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=REPOSITORY, stdout=output, stderr=subprocess.STDOUT)
    return process, log


def wait_until_applied(process: subprocess.Popen[bytes], log: Path, timeout_s: float = 150) -> dict[str, Any]:
    """Wait until the run's fault is active; return the landscape's state as it is then."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")
        text = log.read_text(errors="replace")
        if match := re.search(r"testbed run (\S+): bringing up", text):
            run_id = match.group(1)
            faults_path = log.parent / "results" / run_id / FAULTS
            if faults_path.exists():
                faults = json.loads(faults_path.read_text())["faults"]
                if faults and faults[0]["applied_at_s"]:
                    return read_state(WORK_DIR / run_id / "landscape.json")
        time.sleep(0.2)
    raise AssertionError(
        f"the fault was not applied within {timeout_s} s:\n{log.read_text(errors='replace')}"
    )


def everything_left(state: dict[str, Any], load_generator: list[int]) -> list[str]:
    """The landscape's leftovers (processes, groups, ports, cgroups, cluster, vhost), its proxies'
    control ports, and the load generator's processes."""
    found = leftovers(state)
    controls = set(state.get("proxy_control_ports", {}).values())
    found += [f"proxy control port {port}" for port in sorted(controls & listening_ports())]
    found += [f"load generator process {pid}" for pid in load_generator if psutil.pid_exists(pid)]
    return found


def load_generator_of(process: subprocess.Popen[bytes]) -> list[int]:
    return [child.pid for child in psutil.Process(process.pid).children(recursive=True)]


@pytest.mark.parametrize("kind", list(FAULTS_BY_KIND))
def test_sigint_inside_a_faults_window_leaves_nothing_behind(tmp_path: Path, kind: str) -> None:
    requires_landscape_tools()
    process, log = start_run(tmp_path, kind)
    try:
        state = wait_until_applied(process, log)
        generator = load_generator_of(process)
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 130, log.read_text(errors="replace")[-3000:]
    deadline = time.monotonic() + 10
    while (left := everything_left(state, generator)) and time.monotonic() < deadline:
        time.sleep(0.2)  # the load generator's last processes exit after their master
    assert left == [], left
    assert not Path(state["state_path"]).exists()


def test_a_killed_run_leaves_its_faulted_landscape_for_down_to_remove(tmp_path: Path) -> None:
    requires_landscape_tools()
    process, log = start_run(tmp_path, "cut-broker")
    try:
        state = wait_until_applied(process, log)
        generator = load_generator_of(process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert any(item.startswith("broker-proxy process group") for item in leftovers(state)), leftovers(state)
    down = run_testbed("down", "--state", state["state_path"])
    assert down.returncode == 0, down.stdout + down.stderr
    deadline = time.monotonic() + 10
    while (left := everything_left(state, generator)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], left
