"""`testbed run` end to end: the run directory, its report and no secret in it (dev, with two load
workers under Locust's master), the first saturated tier on `stage` with a database pool of one and
with one worker of one thread per node."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from subprocess import PIPE

import pytest

from reports.rundir import read_run
from reports.server import increase, samples, server_durations

REPOSITORY = Path(__file__).resolve().parents[2]


def run_testbed(
    *args: str, environment: dict[str, str] | None = None, timeout_s: float = 400
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BACKBONE_")}
    env.update(environment or {})
    return subprocess.run(
        [sys.executable, "-m", "testbed.cli", *args],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def run_capturing_secrets(
    *args: str, timeout_s: float = 400
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run `testbed <args>` and read its landscape's secrets from the state file while it is up.

    The state file (mode 0600) is removed by a clean `down`, so the secrets are taken on the way.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("BACKBONE_")}
    command = [sys.executable, "-m", "testbed.cli", *args]
    process = subprocess.Popen(command, cwd=REPOSITORY, env=env, stdout=PIPE, stderr=PIPE, text=True)
    assert process.stdout is not None
    assert process.stderr is not None
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=out.extend, args=(process.stdout,), daemon=True),
        threading.Thread(target=err.extend, args=(process.stderr,), daemon=True),
    ]
    for reader in readers:
        reader.start()
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while process.poll() is None and time.monotonic() < deadline:
        match = next(
            (m for line in list(err) if (m := re.match(r"testbed run (\S+): bringing up", line))), None
        )
        if match and not found:
            state_path = REPOSITORY / "var" / "runs" / match.group(1) / "landscape.json"
            try:
                state = json.loads(state_path.read_text(encoding="utf-8"))
                assert state_path.stat().st_mode & 0o077 == 0
            except (OSError, ValueError):
                state = {}
            if state.get("client_secret"):
                found = {"admin_api_key": state["admin_api_key"], "client_secret": state["client_secret"]}
        time.sleep(0.1)
    if process.poll() is None:
        process.kill()
    process.wait()
    for reader in readers:
        reader.join(timeout=10)
    answer = subprocess.CompletedProcess(command, process.returncode, "".join(out), "".join(err))
    assert len(found) == 2, answer.stderr
    assert all(len(secret) >= 16 for secret in found.values())
    return answer, found


def assert_no_secret_in(
    run_dir: Path, answer: subprocess.CompletedProcess[str], found: dict[str, str]
) -> None:
    files = [path for path in run_dir.rglob("*") if path.is_file()]
    assert any(path.suffix == ".log" for path in files)
    for name, secret in found.items():
        for path in files:
            assert secret.encode() not in path.read_bytes(), f"{name} found in {path}"
        assert secret not in answer.stdout + answer.stderr, f"{name} printed by testbed run"


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str], dict[str, str]]:
    results = tmp_path_factory.mktemp("results")
    answer, found = run_capturing_secrets(
        "run", "--scenario", "smoke", "--duration", "8", "--load-processes", "2", "--results", str(results)
    )
    runs = list(results.iterdir())
    assert answer.returncode in (0, 1), answer.stderr
    assert len(runs) == 1, answer.stderr
    return runs[0], answer, found


@pytest.mark.slow
def test_the_run_directory_holds_every_table_and_the_manifest(
    run: tuple[Path, subprocess.CompletedProcess[str], dict[str, str]],
) -> None:
    run_dir, answer, _ = run
    data = read_run(run_dir)
    manifest = data.manifest
    assert re.fullmatch(r"[0-9a-f]{40}", manifest.git.revision)
    assert manifest.profile.name == "dev"
    assert manifest.profile.nodes == {"count": 1, "workers": 2, "threads": 4, "cpu_limit": None}
    assert manifest.scenario.name == "smoke"
    assert manifest.scenario.duration_s == 8
    assert manifest.seed == 1
    assert manifest.machine.cpus >= 1
    assert manifest.versions["locust"]
    assert manifest.ended_at_s > manifest.started_at_s
    requests = data.requests
    assert len(requests) > 50
    keys = set(zip(requests["method"].astype(str), requests["route"].astype(str), strict=True))
    assert keys == {("POST", "/api/v2/Challenges"), ("GET", "/api/v2/Tags")}
    assert (requests["corrected_latency_s"] >= requests["latency_s"] - 1e-9).all()
    assert set(data.processes["tier"].astype(str)) == {"node", "admin", "load-generator"}
    # The load generator ran on the cores the CPU plan gave it, apart from the landscape's: Locust's
    # master and two workers, each sampled with its limit (the workers share the generator's cores).
    cores = manifest.profile.cpu.load_generator_cores
    assert cores != manifest.profile.cpu.landscape_cores
    generator = manifest.load_generator
    assert generator.cores == cores
    # The workers are listed in the order the master gave out the shares, which is the order they
    # happened to connect in.
    master, *workers = generator.processes
    assert (master.name, master.role) == ("locust-master", "master")
    assert sorted((process.name, process.role) for process in workers) == [
        ("locust-worker1", "worker"),
        ("locust-worker2", "worker"),
    ]
    assert [process.share for process in workers] == ["1 of 2", "2 of 2"]
    limits = data.processes.groupby("process", observed=True)["cpu_limit_cores"].max()
    worker_limit = min(1.0, len(cores) / 2)
    assert limits["locust-master"] == 1.0
    assert limits["locust-worker1"] == limits["locust-worker2"] == worker_limit
    # Each worker took its share of the schedule and wrote its own parts of the requests table.
    parts = {path.name.rsplit("-", 1)[0] for path in (run_dir / "requests").glob("*.parquet")}
    assert len(parts) == 2
    assert "http_server_request_duration_seconds_bucket" in set(data.series["name"].astype(str))
    # Client and server count the same requests per route: the scrapes bracket the load.
    answered = requests[requests["status"] > 0]
    server = server_durations(data.series).set_index(["method", "route"])
    for (method, route), count in answered.groupby(["method", "route"], observed=True).size().items():
        assert server.loc[(method, route), "server_count"] == count
    logs = (
        "node1.log",
        "admin-api.log",
        "migrate.log",
        "seed.log",
        "locust-master.log",
        "locust-worker1.log",
    )
    for name in (*logs, "locust-worker2.log"):
        assert (run_dir / "logs" / name).is_file()
    assert "req/s" in answer.stderr  # the progress line


@pytest.mark.slow
def test_the_report_opens_with_the_verdicts_and_re_renders(
    run: tuple[Path, subprocess.CompletedProcess[str], dict[str, str]],
) -> None:
    run_dir, answer, _ = run
    summary = (run_dir / "summary.md").read_text(encoding="utf-8").splitlines()
    assert summary[0].startswith("SLO: ")
    assert summary[1].startswith("Validity: ")
    assert summary[2].startswith("First saturated tier: ")
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "http://" not in html
    assert "https://" not in html
    assert html.count('class="chart"') >= 8
    # The exit status follows the verdicts, and `testbed report` says the same.
    assert (answer.returncode == 0) == (
        summary[0].startswith("SLO: PASS") and summary[1] == "Validity: VALID  "
    )
    (run_dir / "report.html").unlink()
    again = run_testbed("report", str(run_dir))
    assert (run_dir / "report.html").is_file()
    assert again.stdout.splitlines()[0] == summary[0].rstrip()
    assert again.returncode == (0 if summary[0].startswith("SLO: PASS") else 1)


@pytest.mark.slow
def test_no_secret_of_the_landscape_appears_in_the_results_or_the_logs(
    run: tuple[Path, subprocess.CompletedProcess[str], dict[str, str]],
) -> None:
    run_dir, answer, found = run
    assert_no_secret_in(run_dir, answer, found)


def test_bad_input_is_refused_with_a_clear_message() -> None:
    for args, message in (
        (["--profile", "no-such-profile"], "cannot read the profile"),
        (["--option", "nodes.workers=0"], "nodes.workers: must be an integer in 1..256, got 0"),
        (["--setting", "DB_POOL_SIZE=1"], "is set by the profile's database.pool_size"),
        (["--option", "pool"], "--option 'pool': expected NAME=VALUE"),
        (["--multiplier", "0"], "--multiplier must be a number > 0"),
        (["--scenario", "no-such-scenario"], "no scenario no-such-scenario"),
        (["--setting", "POOL"], "expected NAME=VALUE"),
        (["--load-processes", "0"], "--load-processes must be an integer in 1..64, got 0"),
    ):
        answer = run_testbed("run", *args, timeout_s=60)
        assert answer.returncode == 2, args
        assert message in answer.stderr, answer.stderr
        assert "Traceback" not in answer.stderr
    answer = run_testbed("report", "/nonexistent/run", timeout_s=60)
    assert answer.returncode == 2
    assert "not a run directory" in answer.stderr


# 30 s of the smoke scenario at 800 starts/s (a later `--multiplier` wins) through stage's gateway,
# well past what either undersized landscape serves, also on an idle machine.
STAGE_RUN = ["run", "--profile", "stage", "--scenario", "smoke", "--duration", "30", "--multiplier", "40"]


@pytest.fixture(scope="module")
def stage_pool_of_one(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str], dict[str, str]]:
    """Stage with one database connection per worker for eight threads: the threads queue for it."""
    results = tmp_path_factory.mktemp("stage-pool")
    options = ["--option", "database.pool_size=1", "--option", "database.max_overflow=0"]
    answer, found = run_capturing_secrets(
        *STAGE_RUN, "--workers", "1", "--threads", "8", *options, "--results", str(results)
    )
    assert answer.returncode in (0, 1), answer.stderr
    (run_dir,) = results.iterdir()
    return run_dir, answer, found


@pytest.mark.slow
def test_stage_with_a_pool_of_one_names_the_database_tier(
    stage_pool_of_one: tuple[Path, subprocess.CompletedProcess[str], dict[str, str]],
) -> None:
    run_dir, _, _ = stage_pool_of_one
    summary = (run_dir / "summary.md").read_text(encoding="utf-8").splitlines()
    assert summary[2].startswith("First saturated tier: database "), summary[2]
    data = read_run(run_dir)
    profile = data.manifest.profile
    assert profile.name == "stage"
    assert profile.database["pool_size"] == 1
    assert profile.overrides["database.pool_size"] == "1"
    assert "***" in profile.bus["url"]  # the broker's password is not recorded
    # Every tier was measured: the gateway's HAProxy metrics, both nodes, the worker, the server.
    scraped = data.series.groupby("tier", observed=True)["process"].unique()
    assert set(scraped["gateway"]) == {"gateway1"}
    assert set(scraped["node"]) == {"node1", "node2"}
    assert set(scraped["events"]) == {"worker1"}
    names = set(data.series["name"].astype(str))
    assert {"haproxy_backend_current_queue", "db_client_connection_wait_time_seconds_count"} <= names
    sampled = set(data.processes["tier"].astype(str))
    assert {"gateway", "node", "events", "database", "admin", "load-generator"} <= sampled
    # The shared broker is watched (never budgeted) where its process is visible, else named.
    assert "broker" in sampled or any(line.startswith("rabbitmq") for line in profile.unsampled)
    # Every budget's cgroup was sampled; the database tier is the landscape's own server.
    budgeted = {"postgresql", "node1", "node2", "worker1", "gateway1"}
    assert {budget.process for budget in profile.cpu.budgets} == budgeted
    if profile.cpu.mechanism != "affinity":
        assert set(data.budgets["process"].astype(str)) == budgeted
        assert set(data.budgets["mechanism"].astype(str)) == {profile.cpu.mechanism}
    assert profile.database["server"] == "private"
    text = (run_dir / "summary.md").read_text(encoding="utf-8")
    assert f"Budgets held by {profile.cpu.mechanism}, quota period 100 ms" in text
    assert "## CPU without a budget" in text
    # The load went through the gateway: its public frontend counted every answered request.
    assert profile.load_target == "gateway1"
    public = samples(data.series, "haproxy_frontend_http_requests_total", proxy="public")
    through_gateway = increase(public, ["proxy"])["value"].sum()
    answered = int((data.requests["status"] > 0).sum())
    assert answered > 1000
    assert answered <= through_gateway <= len(data.requests)


@pytest.mark.slow
def test_stage_runs_leave_no_secret_in_the_results_or_the_logs(
    stage_pool_of_one: tuple[Path, subprocess.CompletedProcess[str], dict[str, str]],
) -> None:
    run_dir, answer, found = stage_pool_of_one
    assert_no_secret_in(run_dir, answer, found)


@pytest.mark.slow
def test_stage_with_one_worker_of_one_thread_per_node_names_the_node_tier(tmp_path: Path) -> None:
    answer = run_testbed(*STAGE_RUN, "--workers", "1", "--threads", "1", "--results", str(tmp_path))
    assert answer.returncode in (0, 1), answer.stderr
    (run_dir,) = tmp_path.iterdir()
    first = (run_dir / "summary.md").read_text(encoding="utf-8").splitlines()[2]
    assert first.startswith("First saturated tier: node "), first
