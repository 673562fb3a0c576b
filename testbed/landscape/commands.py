"""`testbed up`, `testbed down` and `testbed profile`: landscapes from profiles, as local processes.

    testbed up --profile stage [--state FILE] [--monitor]
                                                 start it; print the URLs and the time it took
    testbed down [--state FILE]                  stop exactly what that `up` started
    testbed profile stage prod my.toml           validate profiles; show the CPU plan and budget
    testbed monitor DIR                          serve the time series a --monitor run left in DIR

Exit status: 0 done, 1 the landscape could not come up or go down, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from scenarios.landscape import PROFILES_DIR, ProfileError, load_profile
from testbed.landscape.cpu import CpuPlanError, budget_table, plan_cpus
from testbed.landscape.launcher import Launcher
from testbed.landscape.monitor import MONITOR_DIR, serving_recorded
from testbed.landscape.state import DEFAULT_STATE, LandscapeError, LandscapeState
from testbed.landscape.teardown import tear_down
from testbed.processes import ProcessExited


def add_landscape_commands(commands: Any) -> None:
    """Add `up`, `down` and `profile` to the `testbed` parser; each sets `run`."""
    shipped = ", ".join(sorted(path.stem for path in PROFILES_DIR.glob("*.toml")))
    up = commands.add_parser(
        "up",
        help="bring a landscape up as local processes (gateway, nodes, worker, Admin API, ...)",
        description="Start a landscape on free loopback ports and wait until it is healthy.",
    )
    up.add_argument("--profile", required=True, help=f"profile name ({shipped}) or path to a TOML file")
    up.add_argument("--state", type=Path, default=DEFAULT_STATE, help=f"state file (default {DEFAULT_STATE})")
    up.add_argument(
        "--monitor",
        action="store_true",
        help="also start Prometheus scraping every tier (with exporters and the boards' rules); "
        "data in the landscape's run directory (docs/dashboards.md)",
    )
    up.set_defaults(run=_up)

    down = commands.add_parser("down", help="stop the landscape of a state file and remove what it created")
    down.add_argument(
        "--state", type=Path, default=DEFAULT_STATE, help=f"state file (default {DEFAULT_STATE})"
    )
    down.set_defaults(run=_down)

    monitor = commands.add_parser(
        "monitor",
        help="serve the time series of a --monitor run (or landscape) on a loopback Prometheus",
        description="Start a read-only Prometheus on DIR/prometheus (or DIR itself) and print its URL; "
        "point a Grafana with the boards' datasource at it (docs/dashboards.md). Ctrl-C stops it.",
    )
    monitor.add_argument("directory", type=Path, metavar="DIR", help="a run directory (or its prometheus/)")
    monitor.set_defaults(run=_monitor)

    profile = commands.add_parser("profile", help="validate landscape profiles and show their plan")
    profile.add_argument("profiles", nargs="+", metavar="PROFILE", help=f"name ({shipped}) or path")
    profile.set_defaults(run=_check_profiles)


def _up(args: argparse.Namespace) -> int:
    try:
        profile = load_profile(args.profile)
        cpu = plan_cpus(profile)
    except ProfileError as error:
        return _fail("invalid profile:\n" + "\n".join(f"  {line}" for line in error.problems))
    except CpuPlanError as error:
        return _fail(
            "the profile does not fit this machine:\n" + "\n".join(f"  {line}" for line in error.problems)
        )
    for warning in cpu.warnings:
        print(f"testbed: warning: {warning}", file=sys.stderr)
    launcher = Launcher(profile, cpu, state_path=args.state, say=lambda text: print(text, file=sys.stderr))
    if args.monitor:
        launcher.monitor_dir = Path(launcher.state.run_dir) / MONITOR_DIR
    # The handler only takes note: raising inside it could land in a fork handler, which swallows
    # exceptions. Set explicitly: a shell starts background commands with SIGINT ignored.
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, lambda *_: launcher.interrupted.set())
    print(f"testbed: bringing up {profile.name} as landscape {launcher.state.id}", file=sys.stderr)
    try:
        state = launcher.up()
    except KeyboardInterrupt:
        print("testbed: interrupted; nothing of the landscape is left running", file=sys.stderr)
        return 130
    except LandscapeError as error:
        print(f"testbed: {error}", file=sys.stderr)
        return 1
    _summary(state)
    return 0


def _summary(state: LandscapeState) -> None:
    print(f"landscape {state.id} ({state.profile}) is up in {state.up_seconds} s")
    for url in state.gateway_urls:
        print(f"  gateway    {url}")
    for url in state.gateway_operator_urls:
        print(f"  gateway operator port (health, metrics, stats) {url}")
    for url in state.node_urls:
        print(f"  node       {url}")
    for url in state.worker_urls:
        print(f"  worker     {url}")
    for url in state.sse_urls:
        print(f"  SSE server {url}")
    print(f"  Admin API  {state.admin_url}")
    if state.postgres_directory:
        server = next(process for process in state.processes if process.role == "postgresql")
        print(f"  PostgreSQL the landscape's own server on port {server.port} ({state.postgres_directory})")
    for process in state.processes:
        if process.role.startswith("replica"):
            print(f"  {process.role:<10} a streaming replica on port {process.port}")
    if state.pooler_url:
        pooler = next(process for process in state.processes if process.role == "pgbouncer")
        print(f"  PgBouncer  port {pooler.port} (transaction pooling; the backbone's database URL)")
    if state.cpu_groups:
        period_ms = state.cpu_groups[0].period_us / 1000
        held = ", ".join(f"{group.role} {group.cores:g}" for group in state.cpu_groups)
        print(f"  CPU budgets {state.cpu_groups[0].mechanism}, period {period_ms:g} ms: {held}")
    if state.prometheus_url:
        print(f"  Prometheus {state.prometheus_url} (--monitor; data in {state.monitor_dir})")
    print(f"  OAuth client {state.client_id} (tier without quotas {state.tier_id})")
    if state.load_generator_cores:
        print(f"  load generator cores {', '.join(map(str, state.load_generator_cores))}")
    print(f"  state      {state.state_path} (holds the secrets; mode 0600)")


def _monitor(args: argparse.Namespace) -> int:
    directory = args.directory
    if (directory / MONITOR_DIR).is_dir():
        directory = directory / MONITOR_DIR
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _stop)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="testbed-monitor-") as work_dir,
            serving_recorded(directory, Path(work_dir)) as prometheus,
        ):
            print(f"Prometheus {prometheus.url} serves the time series in {directory} (Ctrl-C stops it)")
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
    except FileNotFoundError as error:
        return _fail(str(error))
    except (ProcessExited, TimeoutError) as error:
        print(f"testbed: {error}", file=sys.stderr)
        return 1
    return 0


def _stop(number: int, frame: object) -> None:
    raise KeyboardInterrupt


def _down(args: argparse.Namespace) -> int:
    try:
        state = LandscapeState.load(args.state)
    except LandscapeError as error:
        return _fail(str(error))
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    problems = tear_down(state, say=lambda text: print(text, file=sys.stderr))
    if problems:
        return 1
    print(f"landscape {state.id} ({state.profile}) is down")
    return 0


def _check_profiles(args: argparse.Namespace) -> int:
    status = 0
    for name in args.profiles:
        try:
            profile = load_profile(name)
            cpu = plan_cpus(profile)
        except (ProfileError, CpuPlanError) as error:
            print("\n".join(error.problems), file=sys.stderr)
            status = 2
            continue
        database = profile.database.kind
        if profile.database.kind == "postgresql":
            needed = profile.database_connections_needed()
            database += f" ({profile.database.server} server, up to {needed} connections"
            if profile.database.pooled:
                database += f" to PgBouncer, which opens {profile.database.pooler_pool_size} per database"
            if profile.database.replicas:
                database += f", {profile.database.replicas} streaming replica(s)"
            database += ")"
        print(
            f"{profile.source}: {profile.name}: {profile.gateway.instances} gateway(s), "
            f"{profile.nodes.count} node(s) x {profile.nodes.workers} workers"
            f" x {profile.nodes.threads} threads, {database}, bus {profile.bus.kind}, "
            f"blobs {profile.blob_store.kind}, {profile.worker.replicas} worker(s)"
        )
        print(
            f"  cores: the landscape's {', '.join(map(str, cpu.landscape_cores))}, "
            f"the load generator's {', '.join(map(str, cpu.load_generator_cores)) or '(shared)'}"
        )
        for line in budget_table(cpu):
            print(f"  {line}")
        for warning in cpu.warnings:
            print(f"  warning: {warning}")
    return status


def _fail(message: str) -> int:
    print(f"testbed: {message}", file=sys.stderr)
    return 2
