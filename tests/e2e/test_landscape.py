"""`testbed up` / `testbed down` for real: HAProxy, gunicorn nodes, the worker, the Admin API,
PostgreSQL, RabbitMQ and SeaweedFS as local processes.

- the stage profile comes up, the official client's whole flow passes through the gateway, and
  `down` leaves no process, no listening port, no cgroup, no server directory and no vhost behind;
- an `up` interrupted (Ctrl-C) or killed half-way leaves nothing behind (killed: after `down`);
- two gateways in front of three nodes spread requests over every node; a node stopped mid-run
  costs no safe request and no acknowledged write; `/metrics`, `/health` and the Admin API are
  not reachable through the gateway; a body over the limit is refused before any node sees it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from scenarios.landscape import load_profile
from testbed.landscape.cpu import load_generator_pinned
from testbed.landscape.postgres import postgres_bin_dir
from tests.helpers.drain import drain_endpoint, subscribed_handlers
from tests.helpers.landscape import (
    announce_body,
    group_members,
    leftovers,
    node_request_counts,
    open_url,
    read_state,
    request,
    require,
    run_testbed,
    start_testbed,
    wait_for_state,
)
from tests.helpers.services import POSTGRES_ADMIN_URL, postgres_reachable, unavailable

REAL_CLIENT = Path(__file__).resolve().parents[1] / "real-client"
# The whole flow of the real-client spec: onboarding, a relationship and a message with a file,
# a second device rebuilding both from the datawallet; plus an announcement through the Admin API
# (the other checks run against single servers in tests/real-client/).
CHECKS = ["onboarding.js", "relationship-and-message.js", "second-device.js", "announcements.js"]

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def require_stage() -> None:
    require("haproxy", "rabbitmqctl", "weed")
    stage = load_profile("stage")
    if postgres_bin_dir() is None:
        unavailable("initdb/postgres for the stage profile's private server are not installed (postgresql)")
    from tests.helpers.rabbitmq import rabbitmq_reachable

    if not rabbitmq_reachable(stage.bus.url):
        unavailable(f"the stage profile's RabbitMQ broker does not answer ({stage.source})")


@pytest.fixture(scope="module")
def node_executable() -> str:
    executable = shutil.which("node")
    if executable is None:
        unavailable("Node.js is not installed")
    if not (REAL_CLIENT / "node_modules" / "@nmshd" / "transport").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=REAL_CLIENT, check=True
        )
    return executable  # type: ignore[return-value]


@pytest.mark.rabbitmq
@pytest.mark.s3
def test_stage_comes_up_serves_the_official_client_through_the_gateway_and_goes_down_completely(
    tmp_path: Path, node_executable: str
) -> None:
    require_stage()
    state_path = tmp_path / "state.json"
    started = time.monotonic()
    up = run_testbed("up", "--profile", "stage", "--state", str(state_path))
    elapsed_s = time.monotonic() - started
    assert up.returncode == 0, up.stdout + up.stderr
    state = read_state(state_path)
    print(
        f"\ntestbed up --profile stage: {elapsed_s:.1f} s wall clock, "
        f"{state['up_seconds']} s by its own account"
    )
    try:
        assert f"is up in {state['up_seconds']} s" in up.stdout
        assert state["gateway_urls"][0] in up.stdout
        for secret in (state["client_secret"], state["admin_api_key"]):
            assert secret not in up.stdout + up.stderr
        assert os.stat(state_path).st_mode & 0o077 == 0
        assert len(state["node_urls"]) == 2
        assert len(state["worker_urls"]) == 1
        for url in state["node_urls"] + state["worker_urls"] + [state["admin_url"]]:
            assert open_url(f"{url}/health") == 200
        database_url = state["database_url"].replace("postgresql://", "postgresql+psycopg://", 1)
        with drain_endpoint(database_url, subscribed_handlers(tmp_path)) as drain_url:
            for check in CHECKS:
                environment = {
                    "NMSHD_TEST_BASEURL": state["gateway_urls"][0],
                    "NMSHD_TEST_CLIENTID": state["client_id"],
                    "NMSHD_TEST_CLIENTSECRET": state["client_secret"],
                    "NMSHD_TEST_BASEURL_ADMIN_API": state["admin_url"],
                    "NMSHD_TEST_ADMIN_API_KEY": state["admin_api_key"],
                    "NMSHD_TEST_DRAIN_URL": drain_url,
                    "DATAWALLET": "true",
                    "PATH": os.environ.get("PATH", ""),
                }
                result = subprocess.run(
                    [node_executable, check],
                    cwd=REAL_CLIENT,
                    env=environment,
                    capture_output=True,
                    text=True,
                    timeout=240,
                    check=False,
                )
                assert result.returncode == 0, f"{check} through the gateway failed:\n{result.stderr[-4000:]}"
                assert json.loads(result.stdout.strip().splitlines()[-1])["ok"] is True
    finally:
        down = run_testbed("down", "--state", str(state_path))
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(state) == []
    assert not state_path.exists()


@pytest.mark.rabbitmq
@pytest.mark.s3
def test_an_up_interrupted_half_way_takes_everything_down(tmp_path: Path) -> None:
    require_stage()
    state_path = tmp_path / "state.json"
    up = start_testbed("up", "--profile", "stage", "--state", str(state_path), log=tmp_path / "up.log")
    try:
        # Half-way: the database, the vhost and SeaweedFS exist, the migrations run, no node yet.
        wait_for_state(state_path, lambda s: any(p["role"] == "migrate" for p in s["processes"]))
        state = read_state(state_path)
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=60)
        # Had the signal come too late, the landscape would be up: never leave it running.
        state_left = state_path.exists()
        if state_left:
            run_testbed("down", "--state", str(state_path))
    log = (tmp_path / "up.log").read_text()
    assert code == 130, log
    assert "interrupted" in log
    assert not state_left
    assert state["postgres_directory"]
    assert state["cpu_groups"]
    assert state["rabbitmq_vhost"]
    assert leftovers(state) == []


@pytest.mark.rabbitmq
@pytest.mark.s3
def test_a_killed_up_leaves_a_state_file_that_down_cleans_up_completely(tmp_path: Path) -> None:
    require_stage()
    state_path = tmp_path / "state.json"
    up = start_testbed("up", "--profile", "stage", "--state", str(state_path), log=tmp_path / "up.log")
    try:
        wait_for_state(state_path, lambda s: any(p["role"] == "node2" for p in s["processes"]))
    finally:
        up.kill()
        up.wait(timeout=10)
    state = read_state(state_path)
    # Killed without a chance to clean up: its processes, database and vhost are still there.
    left_by_the_kill = leftovers(state)
    down = run_testbed("down", "--state", str(state_path))
    assert left_by_the_kill
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(state) == []
    assert not state_path.exists()


SPREAD_PROFILE = """
name = "spread"
description = "2 gateways x 3 nodes on PostgreSQL, for the balancing and failover tests"
environment = "production"

[gateway]
instances = 2
max_request_body_bytes = 1048576
retries = 3
health_check_interval_ms = 500

[nodes]
count = 3
workers = 1
threads = 4

[database]
kind = "postgresql"
url = "{url}"
pool_size = 2
max_overflow = 2

[backbone]
PASSWORD_HASH_ITERATIONS = 1000
LOG_LEVEL = "WARNING"
"""


@pytest.fixture(scope="module")
def spread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two gateways in front of three nodes, up for the module's tests."""
    require("haproxy")
    if not postgres_reachable():
        unavailable(f"no PostgreSQL server answers on {POSTGRES_ADMIN_URL}")
    directory = tmp_path_factory.mktemp("spread")
    profile = directory / "spread.toml"
    profile.write_text(SPREAD_PROFILE.format(url=POSTGRES_ADMIN_URL))
    state_path = directory / "state.json"
    up = run_testbed("up", "--profile", str(profile), "--state", str(state_path))
    assert up.returncode == 0, up.stdout + up.stderr
    state = read_state(state_path)
    print(f"\ntestbed up (2 gateways x 3 nodes): {state['up_seconds']} s")
    try:
        yield state
    finally:
        down = run_testbed("down", "--state", str(state_path))
        assert down.returncode == 0, down.stdout + down.stderr
        assert leftovers(state) == []


def test_requests_through_both_gateways_reach_every_node(spread: dict[str, Any]) -> None:
    source, before = node_request_counts(spread)
    for index in range(60):
        gateway = spread["gateway_urls"][index % 2]
        status, _ = request(f"{gateway}/api/v2/Version")
        assert status == 200
    _, after = node_request_counts(spread)
    served = [late - early for early, late in zip(before, after, strict=True)]
    print(f"\nrequests per node ({source}): {served}")
    assert sum(served) >= 60
    assert all(count >= 10 for count in served), served


def test_every_node_process_keeps_to_the_landscape_cores_apart_from_the_load_generator(
    spread: dict[str, Any],
) -> None:
    landscape_cores = set(os.sched_getaffinity(0)) - set(spread["load_generator_cores"])
    for process in spread["processes"]:
        if process["role"] == "migrate":
            continue
        members = group_members(process["pid"])
        assert members, process["role"]
        for pid in members:  # the gunicorn master and its forked workers alike
            cores = os.sched_getaffinity(pid)
            assert cores <= landscape_cores, (process["role"], pid, cores)
            assert not cores & set(spread["load_generator_cores"])
    with load_generator_pinned(spread["load_generator_cores"]):
        if spread["load_generator_cores"]:
            assert os.sched_getaffinity(0) == set(spread["load_generator_cores"])


def test_the_gateway_hides_metrics_health_and_the_admin_api_and_ui(spread: dict[str, Any]) -> None:
    gateway = spread["gateway_urls"][0]
    key = {"X-API-KEY": spread["admin_api_key"]}
    for path in (
        "/metrics",
        "/health",
        "/api/v1/Clients",
        "/api/v1/Tiers",
        "/odata/Identities",
        "/api/v1/xsrf",
        "/",
        "/ui/",
        "/ui/sign-in",
    ):
        status, body = request(f"{gateway}{path}", headers=key)
        assert status == 404, path
        assert json.loads(body)["error"]["code"] == "error.platform.routeNotFound"
        assert spread["client_id"].encode() not in body
    # Directly, on their own ports, they answer.
    assert open_url(f"{spread['admin_url']}/api/v1/Clients", key) == 200
    assert open_url(f"{spread['node_urls'][0]}/health") == 200
    assert open_url(f"{spread['gateway_operator_urls'][0]}/health") == 200


def test_a_body_over_the_limit_is_refused_by_the_gateway_before_any_node(spread: dict[str, Any]) -> None:
    gateway = spread["gateway_urls"][1]
    _, before = node_request_counts(spread)
    status, body = announce_body(f"{gateway}/api/v2/Challenges", size=1024 * 1024 + 1)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "error.platform.requestBodyTooLarge"
    _, after = node_request_counts(spread)
    assert after == before
    status, _ = request(f"{gateway}/api/v2/Challenges", method="POST", body=b"{}")
    assert status == 201


def test_stopping_a_node_mid_run_loses_no_safe_request_and_no_acknowledged_write(
    spread: dict[str, Any],
) -> None:
    gateways = spread["gateway_urls"]
    stop = threading.Event()
    lock = threading.Lock()
    reads: list[int] = []
    writes: list[tuple[int, str | None]] = []

    def client(number: int) -> None:
        gateway = gateways[number % len(gateways)]
        while not stop.is_set():
            status, _ = request(f"{gateway}/api/v2/Version")
            with lock:
                reads.append(status)
            status, body = request(f"{gateway}/api/v2/Challenges", method="POST", body=b"{}")
            challenge = json.loads(body)["result"]["id"] if status == 201 else None
            with lock:
                writes.append((status, challenge))

    stopped = next(process for process in spread["processes"] if process["role"] == "node2")
    with load_generator_pinned(spread["load_generator_cores"]), ThreadPoolExecutor(max_workers=6) as pool:
        for number in range(6):
            pool.submit(client, number)
        time.sleep(2)
        os.killpg(stopped["pid"], signal.SIGTERM)
        time.sleep(4)
        stop.set()
    failed_reads = [status for status in reads if status != 200]
    failed_writes = [status for status, _ in writes if status != 201]
    acknowledged = [challenge for status, challenge in writes if status == 201]
    print(
        f"\nwith node2 stopped mid-run: {len(reads)} reads ({len(failed_reads)} failed), "
        f"{len(writes)} writes ({len(failed_writes)} not acknowledged: {sorted(set(failed_writes))})"
    )
    assert len(reads) > 50
    assert failed_reads == []
    # A write that reached the stopping node and got no answer cannot be retried safely; it is
    # reported to the client (502/503), never acknowledged.
    assert set(failed_writes) <= {502, 503}
    with psycopg.connect(spread["database_url"]) as connection:
        stored = {
            row[0]
            for row in connection.execute(
                "SELECT id FROM challenges WHERE id = ANY(%s)", (acknowledged,)
            ).fetchall()
        }
    assert stored == set(acknowledged)
    # Both gateways' health checks took node2 out of the rotation.
    for url in spread["gateway_operator_urls"]:
        _, body = request(f"{url}/stats;csv")
        lines = body.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        status = {
            row["svname"]: row["status"]
            for row in (dict(zip(header, line.split(","), strict=False)) for line in lines[1:])
        }
        assert status["node2"].startswith("DOWN"), status
        assert status["node1"] == status["node3"] == "UP", status
