"""`testbed run --target` against a landscape `testbed up` started as if it ran elsewhere, with its
load from two `testbed load-worker` processes that join the run's master (Locust's distributed
mode): the pool seeded through the Consumer API, the workers' shares, records, request parts and
CPU back at the master, the master generating no load, server tiers not judged without a
Prometheus, and a valid run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reports.manifest import CpuRecord
from reports.rundir import read_run
from scenarios.landscape import load_profile
from testbed.landscape.prometheus import prometheus_executable, running_prometheus
from testbed.processes import free_port
from testbed.run.target import TargetClient, TargetLandscape
from tests.helpers.services import unavailable

REPOSITORY = Path(__file__).resolve().parents[2]
# The dev landscape with a cheaper password hash, so seeding the test pool through the API takes
# seconds (a run measures its flows, not PBKDF2), and the loopback host allowed as the target.
PROFILE = """
name = "elsewhere"
description = "dev, driven from outside with --target"
environment = "development"
allowed_target_hosts = ["localhost"]
[gateway]
instances = 0
[nodes]
count = 1
workers = 2
threads = 4
[database]
kind = "sqlite"
[bus]
kind = "inprocess"
[blob_store]
kind = "local"
[worker]
replicas = 0
[backbone]
LOG_LEVEL = "WARNING"
PASSWORD_HASH_ITERATIONS = "1000"
"""

pytestmark = pytest.mark.slow


def start_testbed(
    *args: str, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("BACKBONE_")}
    environment.update(env or {})
    output = log.open("w") if log is not None else subprocess.PIPE
    return subprocess.Popen(
        [sys.executable, "-m", "testbed.cli", *args],
        cwd=REPOSITORY,
        env=environment,
        stdout=output,
        stderr=subprocess.STDOUT if log is not None else subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def landscape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    directory = tmp_path_factory.mktemp("elsewhere")
    profile, state_path = directory / "elsewhere.toml", directory / "state.json"
    profile.write_text(PROFILE, encoding="utf-8")
    started = time.monotonic()
    up = start_testbed("up", "--profile", str(profile), "--state", str(state_path))
    out, err = up.communicate(timeout=180)
    print(f"\ntestbed up: {time.monotonic() - started:.1f} s")
    try:
        assert up.returncode == 0, out + err
        yield profile, json.loads(state_path.read_text(encoding="utf-8"))
    finally:
        down = start_testbed("down", "--state", str(state_path))
        down.communicate(timeout=120)


@pytest.fixture(scope="module")
def run(
    landscape: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str, list[str]]:
    profile, state = landscape
    directory = tmp_path_factory.mktemp("results")
    port = str(free_port())
    arguments = ["run", "--profile", str(profile), "--target", state["node_urls"][0]]
    arguments += ["--client-id", state["client_id"], "--scenario", "smoke", "--duration", "8"]
    arguments += ["--expect-load-workers", "2", "--master-port", port, "--load-workers-timeout", "90"]
    arguments += ["--results", str(directory / "results")]
    started = time.monotonic()
    # The secret goes through the environment, as an operator's would.
    master = start_testbed(*arguments, env={"TESTBED_CLIENT_SECRET": state["client_secret"]})
    workers = [
        start_testbed("load-worker", "--master", f"localhost:{port}", log=directory / f"worker{index}.log")
        for index in (1, 2)
    ]
    try:
        out, err = master.communicate(timeout=300)
        statuses = [worker.wait(timeout=60) for worker in workers]
    finally:
        for process in (master, *workers):
            if process.poll() is None:
                process.kill()
                process.wait()
    print(f"\ntestbed run --target with 2 load workers: {time.monotonic() - started:.1f} s")
    logs = [(directory / f"worker{index}.log").read_text(encoding="utf-8") for index in (1, 2)]
    assert statuses == [0, 0], logs
    assert master.returncode in (0, 1), out + err
    runs = list((directory / "results").iterdir())
    assert len(runs) == 1, err
    assert state["client_secret"] not in out + err
    for path in runs[0].rglob("*"):
        assert not path.is_file() or state["client_secret"].encode() not in path.read_bytes(), path
    return runs[0], out + err, logs


def test_the_report_shows_the_master_without_load_and_both_workers_with_share_and_cpu(
    run: tuple[Path, str, list[str]],
) -> None:
    run_dir, output, _ = run
    data = read_run(run_dir)
    generator = data.manifest.load_generator
    processes = [(p.name, p.role, p.share, p.joined) for p in generator.processes]
    assert processes == [
        ("locust-master", "master", "", False),
        ("load-worker1", "worker", "1 of 2", True),
        ("load-worker2", "worker", "2 of 2", True),
    ]
    assert all(process.host for process in generator.processes)
    # Every process has CPU samples; only the workers sent requests, each its share's.
    sampled = data.processes[data.processes["tier"].astype(str) == "load-generator"]
    assert set(sampled["process"].astype(str)) == {"locust-master", "load-worker1", "load-worker2"}
    pids = {int(pid) for pid in sampled.loc[sampled["process"] != "locust-master", "pid"]}
    parts = {int(path.name.rsplit("-", 2)[1]) for path in (run_dir / "requests").glob("*.parquet")}
    assert parts == pids, "each worker's request parts came back to the master"
    assert len(data.requests) > 100
    summary = (run_dir / "summary.md").read_text(encoding="utf-8")
    for name, share in (("load-worker1", "1 of 2"), ("load-worker2", "2 of 2")):
        assert any(
            line.startswith(f"| {name} | worker |") and f"(joined) | {share} |" in line
            for line in summary.splitlines()
        )
    assert "| locust-master | master |" in summary
    assert_valid(output)


def assert_valid(output: str) -> None:
    """The run is valid; on a machine other work keeps far busier than its cores (a shared
    development machine, never CI), an invalid run says nothing of the feature and skips."""
    validity = next(line for line in output.splitlines() if line.startswith("Validity: "))
    if validity != "Validity: VALID" and os.environ.get("CI") != "true":
        load_1m, cores = os.getloadavg()[0], os.cpu_count() or 1
        if load_1m > 2 * cores:
            pytest.skip(f"load average {load_1m:.0f} on {cores} cores made the run invalid: {validity}")
    assert validity == "Validity: VALID", output


def test_the_target_was_seeded_through_its_api_and_its_server_tiers_are_not_judged(
    run: tuple[Path, str, list[str]],
) -> None:
    run_dir, _, _ = run
    data = read_run(run_dir)
    assert data.manifest.profile.target_host == "localhost"
    assert data.manifest.profile.server_metrics == ""
    assert data.series.empty  # no server figure without --prometheus
    assert set(data.processes["tier"].astype(str)) == {"load-generator"}
    seed_log = (run_dir / "logs" / "seed.log").read_text(encoding="utf-8")
    assert "api: identities" in seed_log
    summary = (run_dir / "summary.md").read_text(encoding="utf-8").splitlines()
    assert summary[1].startswith("Validity: ")
    assert summary[2].startswith("Server tiers: not judged: only client-side figures exist")
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "http://" not in html
    assert "https://" not in html


def test_the_targets_prometheus_gives_its_server_figures_per_job_and_instance(
    landscape: tuple[Path, dict[str, Any]], run: tuple[Path, str, list[str]], tmp_path: Path
) -> None:
    """`--prometheus URL`: every target the deployment's Prometheus scrapes is a process of the run,
    its job the tier, read through /federate without the labels Prometheus added."""
    if prometheus_executable() is None:
        unavailable("prometheus is not installed (Debian package 'prometheus')")
    profile_path, state = landscape
    node = state["node_urls"][0].removeprefix("http://").replace("localhost", "127.0.0.1")
    with running_prometheus(tmp_path / "prometheus", {"node": [node]}, scrape_interval_s=0.5) as prometheus:
        deadline = time.monotonic() + 30
        while prometheus.last_scrape("node") == 0 and time.monotonic() < deadline:
            time.sleep(0.25)
        target = TargetLandscape(
            load_profile(str(profile_path)),
            state["node_urls"][0],
            TargetClient("unused", "unused", "localhost"),
            CpuRecord(),
            prometheus.url,
        )
        [scraped] = target.scrape_targets()
        assert (scraped.process, scraped.tier) == ("node1", "node")
        assert scraped.read is not None
        samples = scraped.read()
    assert target.manifest().server_metrics == "prometheus"
    names = {name for name, _, _ in samples}
    assert "http_server_request_duration_seconds_bucket" in names
    challenges = [
        value
        for name, labels, value in samples
        if name == "http_server_request_duration_seconds_count"
        and labels.get("http_route") == "/api/v2/Challenges"
    ]
    assert sum(challenges) > 0, "the run's requests are in the node's figures"
    assert all("job" not in labels and "instance" not in labels for _, labels, _ in samples)
