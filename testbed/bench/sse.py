"""`make bench-sse`: thousands of event streams held open on one SSE server process.

    python -m testbed.bench.sse [--connections 5000] [--hold-s 60] [--sample 1000]

Seeds the `sse` pool (5,000 apps with one device each, related to 50 connectors) in bulk at a
low password-hash cost into a database of its own on the PostgreSQL server
($BACKBONE_TEST_POSTGRES_URL), starts the Consumer API (in-process bus: its requests push) and one
`backbone serve-sse` on the landscape's cores, logs every device in before the measured window,
then opens one stream per device from an asyncio client (httpx) pinned to the load generator's
core, holds them `--hold-s` seconds while the connectors send one message to each of a sample of
the apps, and prints: streams connected and still connected at the end, events delivered, the
delivery latency (message sent to event read by the client) p50/p99/max, the SSE process's
memory per stream and CPU, the client's CPU, and the machine's load average. Exit 0 when >= 99 %
of the streams stayed connected, >= 99.9 % of the events arrived and p99 < 1 s; else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from backbone.platform.encoding import b64url
from loadtests.identities import SeededIdentity, load_identities
from loadtests.seeding.database import normalise_url
from loadtests.seeding.planner import plan
from scenarios.pool_schema import load_pool_config
from testbed.processes import free_port, start_python, stop, wait_for_http

ADMIN_URL = os.environ.get("BACKBONE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CLIENT_SECRET = "test"  # noqa: S105 - the development client, in a database that lives for one run
SIGNING_KEY = "bench-sse-signing-key-" + "k" * 16
HASH_ITERATIONS = 1_000
STAYED_TARGET, DELIVERED_TARGET, P99_TARGET_S = 0.99, 0.999, 1.0
# Streams per HTTP client: httpx scans its pool on every request, so many small pools.
STREAMS_PER_CLIENT = 250
ENCRYPTED_KEY = b64url(b"k" * 64)
BODY = b64url(b'{"cph":"an event for an open stream","alg":3}')


@dataclass
class Tally:
    connected: int = 0
    refused: int = 0
    ended_early: int = 0
    sent: dict[str, float] = field(default_factory=dict)
    # How long each message request took (the Consumer API's share of the delivery latency).
    request_s: list[float] = field(default_factory=list)
    arrived: dict[str, float] = field(default_factory=dict)
    send_errors: int = 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.bench.sse", description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=5000, help="streams to hold (default 5000)")
    parser.add_argument("--hold-s", type=float, default=60.0, help="the measured window (default 60)")
    parser.add_argument("--sample", type=int, default=1000, help="apps that get a message (default 1000)")
    args = parser.parse_args(argv)
    if not 1 <= args.connections <= 5000 or not 1 <= args.sample <= args.connections or args.hold_s < 10:
        print(
            "bench-sse: --connections 1..5000 (the pool's apps), --sample 1..connections, --hold-s >= 10",
            file=sys.stderr,
        )
        return 2
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            pass
    except psycopg.OperationalError as error:
        print(f"bench-sse: PostgreSQL is not reachable at {ADMIN_URL}: {error}", file=sys.stderr)
        return 2
    name = f"bench_sse_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory(prefix="bench-sse-") as scratch:
            return _bench(args, normalise_url(f"{ADMIN_URL.rpartition('/')[0]}/{name}"), Path(scratch))
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _cores() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The landscape's cores and the load generator's (the last one), as `testbed run` splits them."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return tuple(cores), tuple(cores)
    return tuple(cores[:-1]), (cores[-1],)


def _bench(args: argparse.Namespace, url: str, scratch: Path) -> int:
    from loadtests.seeding.bulk_run import seed_bulk

    the_plan = plan(load_pool_config("sse"), seed=1)
    export = scratch / "credentials.json"
    started = time.perf_counter()
    seed_bulk(
        the_plan,
        url,
        client_id="test",
        client_secret=CLIENT_SECRET,
        export_path=export,
        password_hash_iterations=HASH_ITERATIONS,
        progress=lambda line: None,
    )
    seeded_s = time.perf_counter() - started
    print(f"bench-sse: seeded {the_plan.totals['identities']:,} identities in {seeded_s:.1f} s")
    identities = load_identities(export)
    server_cores, client_cores = _cores()
    os.sched_setaffinity(0, client_cores)
    environment = {
        "BACKBONE_ENVIRONMENT": "production",
        "BACKBONE_DATABASE_URL": url,
        "BACKBONE_VAR_DIR": str(scratch),
        "BACKBONE_JWT_SIGNING_KEY": SIGNING_KEY,
        "BACKBONE_JWT_LIFETIME_S": "3600",
        "BACKBONE_LOG_LEVEL": "WARNING",
        "BACKBONE_SSE_MAX_CONNECTIONS": str(args.connections + 100),
        "BACKBONE_DB_POOL_SIZE": "8",
    }
    api_port, sse_port = free_port(), free_port()
    with open(scratch / "api.log", "wb") as api_log, open(scratch / "sse.log", "wb") as sse_log:
        api = start_python(
            ["-m", "backbone", "serve", "--port", str(api_port), "--workers", "1", "--threads", "8"],
            environment,
            api_log,
            cores=server_cores,
        )
        sse = start_python(
            ["-m", "backbone", "serve-sse", "--port", str(sse_port)], environment, sse_log, cores=server_cores
        )
        try:
            wait_for_http(f"http://127.0.0.1:{api_port}/health", api, 60)
            wait_for_http(f"http://127.0.0.1:{sse_port}/health", sse, 60)
            return asyncio.run(
                _measure(args, identities.of_pool("s"), identities.of_pool("t"), api_port, sse_port, sse.pid)
            )
        finally:
            stop(sse)
            stop(api)
            for path in (scratch / "api.log", scratch / "sse.log"):
                if errors := [
                    line for line in path.read_text(errors="replace").splitlines() if "ERROR" in line
                ]:
                    print(f"bench-sse: {path.name}: {len(errors)} error lines, first: {errors[0]}")


async def _log_in(client: httpx.AsyncClient, identity: SeededIdentity) -> str:
    device = identity.devices[0]
    form = {
        "grant_type": "password",
        "client_id": "test",
        "client_secret": CLIENT_SECRET,
        "username": device.username,
        "password": device.password,
    }
    response = await client.post("/connect/token", data=form)
    response.raise_for_status()
    return str(response.json()["access_token"])


async def _tokens(base: str, identities: list[SeededIdentity]) -> dict[str, str]:
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def one(identity: SeededIdentity) -> tuple[str, str]:
            async with limit:
                return identity.address, await _log_in(client, identity)

        return dict(await asyncio.gather(*(one(identity) for identity in identities)))


async def _hold(
    client: httpx.AsyncClient,
    url: str,
    token: str,
    address: str,
    tally: Tally,
    opened: asyncio.Event,
    stop_at: asyncio.Event,
) -> None:
    try:
        async with client.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response:
            if response.status_code != 200:
                tally.refused += 1
                opened.set()
                return
            lines = response.aiter_lines()
            async for line in lines:
                if line == "event: ConnectionOpened":
                    tally.connected += 1
                    opened.set()
                elif line == "event: ExternalEventCreated":
                    tally.arrived.setdefault(address, time.monotonic())
            if not stop_at.is_set():
                tally.ended_early += 1
    except httpx.HTTPError:
        if not opened.is_set():
            tally.refused += 1
        elif not stop_at.is_set():
            tally.ended_early += 1
    finally:
        opened.set()


async def _send_messages(
    base: str, pairs: list[tuple[str, str]], tokens: dict[str, str], window_s: float, tally: Tally
) -> None:
    """One message to each sampled app from its connector, spread evenly over the window."""
    interval = window_s / max(1, len(pairs))
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def send(sender: str, recipient: str) -> None:
            async with limit:
                body = {
                    "recipients": [{"address": recipient, "encryptedKey": ENCRYPTED_KEY}],
                    "body": BODY,
                    "attachments": [],
                }
                headers = {"Authorization": f"Bearer {tokens[sender]}"}
                sent_at = time.monotonic()
                try:
                    response = await client.post("/api/v2/Messages", json=body, headers=headers)
                except httpx.TransportError:
                    # A keep-alive connection the server closed just then: once more on a new one.
                    sent_at = time.monotonic()
                    try:
                        response = await client.post("/api/v2/Messages", json=body, headers=headers)
                    except httpx.HTTPError:
                        tally.send_errors += 1
                        return
                if response.status_code == 201:
                    tally.sent[recipient] = sent_at
                    tally.request_s.append(time.monotonic() - sent_at)
                else:
                    tally.send_errors += 1

        tasks = []
        for sender, recipient in pairs:
            tasks.append(asyncio.create_task(send(sender, recipient)))
            await asyncio.sleep(interval)
        await asyncio.gather(*tasks)


async def _measure(
    args: argparse.Namespace,
    apps: list[SeededIdentity],
    connectors: list[SeededIdentity],
    api_port: int,
    sse_port: int,
    sse_pid: int,
) -> int:
    api_base, sse_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{sse_port}/api/v2/sse"
    apps = apps[: args.connections]
    started = time.perf_counter()
    tokens = await _tokens(api_base, [*apps, *connectors])
    print(f"bench-sse: {len(tokens):,} tokens in {time.perf_counter() - started:.1f} s (before the window)")
    server = psutil.Process(sse_pid)
    me = psutil.Process()
    rss_before = server.memory_info().rss
    tally, stop_at = Tally(), asyncio.Event()
    clients = [
        httpx.AsyncClient(
            timeout=httpx.Timeout(30, read=None),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
        )
        for _ in range(0, len(apps), STREAMS_PER_CLIENT)
    ]
    started = time.perf_counter()
    holders, openings = [], []
    for number, app in enumerate(apps):
        opened = asyncio.Event()
        openings.append(opened)
        client = clients[number // STREAMS_PER_CLIENT]
        holders.append(
            asyncio.create_task(
                _hold(client, sse_url, tokens[app.address], app.address, tally, opened, stop_at)
            )
        )
        if number % 100 == 99:
            # Connect in steps, as apps come online, rather than one burst of 5,000 SYNs.
            await asyncio.gather(*(event.wait() for event in openings[-100:]))
    await asyncio.gather(*(event.wait() for event in openings))
    connect_s = time.perf_counter() - started
    at_start = tally.connected
    print(
        f"bench-sse: {at_start:,} of {len(apps):,} streams connected in {connect_s:.1f} s"
        f" ({tally.refused} refused)"
    )
    await asyncio.sleep(2)
    rss_held = server.memory_info().rss
    server_cpu_before, my_cpu_before = server.cpu_times(), me.cpu_times()
    window_started = time.perf_counter()
    related = {app.address: app.relationships[0].peer for app in apps if app.relationships}
    sample = random.Random(1).sample(sorted(related), min(args.sample, len(related)))
    await _send_messages(api_base, [(related[app], app) for app in sample], tokens, args.hold_s - 5, tally)
    await asyncio.sleep(max(0.0, args.hold_s - (time.perf_counter() - window_started)))
    window_s = time.perf_counter() - window_started
    server_cpu_after, my_cpu_after = server.cpu_times(), me.cpu_times()
    still_open = sum(1 for holder in holders if not holder.done())
    stop_at.set()
    for holder in holders:
        holder.cancel()
    await asyncio.gather(*holders, return_exceptions=True)
    for client in clients:
        await client.aclose()
    in_replica = await _replica_latency(f"http://127.0.0.1:{sse_port}/metrics")
    server_cpu_s = _cpu(server_cpu_after) - _cpu(server_cpu_before)
    client_cpu_s = _cpu(my_cpu_after) - _cpu(my_cpu_before)
    print(f"bench-sse: {in_replica}")
    return _verdict(
        len(apps), at_start, still_open, tally, window_s, rss_before, rss_held, server_cpu_s, client_cpu_s
    )


async def _replica_latency(url: str) -> str:
    """The replica's own delivery latency (connector request to event handed to the connection)."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(url)).text
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(text):
        if family.name == "backbone_sse_delivery_latency_seconds":
            buckets = [
                (float(sample.labels["le"]), sample.value)
                for sample in family.samples
                if sample.name.endswith("_bucket")
            ]
    if not buckets or buckets[-1][1] == 0:
        return "in the replica: no deliveries"
    total = buckets[-1][1]
    bounds = {q: next(le for le, count in buckets if count >= q * total) for q in (0.5, 0.99)}
    return (
        f"in the replica (connector request to the event handed to the connection, bucket bounds):"
        f" p50 <= {bounds[0.5] * 1000:g} ms, p99 <= {bounds[0.99] * 1000:g} ms of {total:,.0f}"
    )


def _cpu(times: psutil._common.pcputimes) -> float:  # type: ignore[name-defined]
    return float(times.user + times.system)


def nearest(values: list[float], q: float) -> float:
    """The nearest-rank percentile (NaN of nothing)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _verdict(
    wanted: int,
    at_start: int,
    still_open: int,
    tally: Tally,
    window_s: float,
    rss_before: int,
    rss_held: int,
    server_cpu_s: float,
    client_cpu_s: float,
) -> int:
    latencies = sorted(
        tally.arrived[address] - sent for address, sent in tally.sent.items() if address in tally.arrived
    )
    sent = len(tally.sent)
    delivered = len(latencies)

    def rank(q: float) -> float:
        return nearest(latencies, q)

    stayed = still_open / wanted
    delivered_ratio = delivered / sent if sent else 0.0
    load = os.getloadavg()
    per_stream_kib = (rss_held - rss_before) / max(1, at_start) / 1024
    lines = [
        f"window {window_s:.0f} s; machine load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        " (the cores are shared)",
        f"streams held to the end {still_open:,} of {wanted:,} ({stayed:.2%}; connected at the start"
        f" {at_start:,}, ended early {tally.ended_early})",
        f"events delivered {delivered:,} of {sent:,} messages ({delivered_ratio:.3%};"
        f" {tally.send_errors} sends failed)",
        f"delivery latency (message sent to event read) p50 {rank(0.5) * 1000:.0f} ms,"
        f" p99 {rank(0.99) * 1000:.0f} ms, max {rank(1.0) * 1000:.0f} ms",
        f"of which the message request (the Consumer API) p50 {nearest(tally.request_s, 0.5) * 1000:.0f} ms,"
        f" p99 {nearest(tally.request_s, 0.99) * 1000:.0f} ms",
        f"SSE process memory {rss_before / 2**20:.0f} MiB before, {rss_held / 2**20:.0f} MiB holding"
        f" the streams: {per_stream_kib:.1f} KiB per stream",
        f"SSE process CPU {server_cpu_s / window_s:.1%} of a core; the client's"
        f" {client_cpu_s / window_s:.1%} of its core",
    ]
    ok = stayed >= STAYED_TARGET and delivered_ratio >= DELIVERED_TARGET and rank(0.99) < P99_TARGET_S
    lines.append(
        f"{'PASS' if ok else 'FAIL'} (targets: >= {STAYED_TARGET:.0%} held, >= {DELIVERED_TARGET:.1%}"
        f" delivered, p99 < {P99_TARGET_S:g} s)"
    )
    for line in lines:
        print(f"bench-sse: {line}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
