"""`make bench-statements`: what one request of each hot route costs, in statements and CPU.

The backbone runs on a private PostgreSQL server started for this run (`testbed/landscape/
postgres.py`) with `pg_stat_statements` preloaded; the shared server is never reconfigured. For
each route of `make bench` (same gunicorn and wrk settings), after a warm-up:

- statements per request: the calls `pg_stat_statements` counted in the bench's database during
  one wrk run (BEGIN and COMMIT included: each is a round trip too), over the requests wrk made;
- in-process CPU per request: user+system CPU of the backbone's processes (gunicorn's master
  and workers) over the same run, and the same for the PostgreSQL server's processes.

Both are per request, so the machine's other load changes them little (unlike requests/s).
`--flame-dir` also records a py-spy flame graph of the backbone's workers per route, in a
separate wrk run (sampling costs CPU: it would distort the figures above).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

from testbed.bench import writing_routes
from testbed.bench.throughput import (
    Case,
    WrkSettings,
    prepare_cases,
    run_wrk,
    write_script,
)
from testbed.landscape.postgres import ServerSettings, postgres_bin_dir, private_postgres_cluster
from testbed.processes import free_port, start_python, stop, tree_cpu_s, wait_for_http

TOP_STATEMENTS = 8


@dataclass
class Cost:
    name: str
    requests: int
    errors: int
    rps: float
    statements: int
    backbone_cpu_s: float
    database_cpu_s: float
    # (calls, query) of the most called statements.
    top: list[tuple[int, str]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.bench.statements", description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--duration", type=float, default=5, help="seconds of wrk per route")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument(
        "--only", action="append", default=[], help="run only routes whose name contains this"
    )
    parser.add_argument("--flame-dir", type=Path, help="also write a py-spy flame graph per route here")
    args = parser.parse_args(argv)
    problems = []
    if shutil.which("wrk") is None:
        problems.append("wrk is not installed (Debian package 'wrk')")
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        problems.append("PostgreSQL's initdb is not installed (Debian package 'postgresql')")
    py_spy = Path(sys.executable).parent / "py-spy"
    if args.flame_dir is not None and not py_spy.exists():
        problems.append("py-spy is not installed (make setup installs it)")
    if problems:
        print("bench-statements: " + "; ".join(problems), file=sys.stderr)
        return 2
    assert bin_dir is not None
    wrk = WrkSettings(connections=args.connections, duration_s=int(args.duration))
    settings = ServerSettings(preload_libraries=("pg_stat_statements",))
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-statements-")))
        cluster = stack.enter_context(private_postgres_cluster(bin_dir, settings))
        database_url = cluster.create_database("bench")
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("CREATE EXTENSION pg_stat_statements")
        env = {
            "BACKBONE_VAR_DIR": str(scratch / "var"),
            "BACKBONE_JWT_LIFETIME_S": "3600",
            "BACKBONE_MAX_UNRECEIVED_MESSAGES_FROM_ONE_SENDER": str(writing_routes.MAX_UNRECEIVED),
            "BACKBONE_DATABASE_URL": database_url,
            "BACKBONE_ENVIRONMENT": "development",
        }
        server_args = ["--workers", str(args.workers), "--threads", str(args.threads)]
        backbone, url = stack.enter_context(_backbone(server_args, env, scratch / "backbone.log"))
        cases = prepare_cases(
            url, scratch, database_url, wrk, lambda name: not args.only or any(o in name for o in args.only)
        )
        print("backbone cost per request on PostgreSQL (pg_stat_statements on a private server)")
        print(f"  machine: {platform.node()}, {os.cpu_count()} cores; load average {_load()}")
        print(
            f"  gunicorn: {args.workers} workers x {args.threads} threads; wrk: {wrk.threads} threads, "
            f"{wrk.connections} connections, {args.duration:g} s per route after {wrk.warmup_s} s warm-up"
        )
        costs = []
        for case in cases:
            cost = _measure(case, url, database_url, backbone, cluster.process, wrk, args.duration, scratch)
            costs.append(cost)
            print(f"  {case.name}: {cost.requests:,} requests, {cost.errors} errors", flush=True)
            if args.flame_dir is not None:
                _flame(case, url, backbone, py_spy, wrk, args.duration, args.flame_dir, scratch)
    _print(costs)
    return 1 if any(cost.errors for cost in costs) else 0


@contextmanager
def _backbone(server_args: list[str], env: dict[str, str], log: Path) -> Iterator[tuple[psutil.Process, str]]:
    port = free_port()
    with open(log, "wb") as log_file:
        process = start_python(["-m", "backbone", "serve", *server_args, "--port", str(port)], env, log_file)
        url = f"http://localhost:{port}"
        try:
            wait_for_http(url + "/health", process)
            yield psutil.Process(process.pid), url
        finally:
            stop(process)


def _cpu_s(process: psutil.Process | None) -> float:
    return 0.0 if process is None else tree_cpu_s(process)


def _measure(
    case: Case,
    url: str,
    database_url: str,
    backbone: psutil.Process,
    postmaster: Any,
    wrk: WrkSettings,
    duration_s: float,
    scratch: Path,
) -> Cost:
    script = write_script(case.route, scratch / "route.lua")
    run_wrk(url + case.route.path, script, wrk, wrk.warmup_s)
    script = write_script(case.route, scratch / "route.lua")
    database = psutil.Process(postmaster.pid) if postmaster is not None else None
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_stat_statements_reset()")
    backbone_before, database_before = _cpu_s(backbone), _cpu_s(database)
    run = run_wrk(url + case.route.path, script, wrk, duration_s)
    backbone_cpu, database_cpu = _cpu_s(backbone) - backbone_before, _cpu_s(database) - database_before
    with psycopg.connect(database_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT calls, query FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC"
        ).fetchall()
    statements = sum(int(calls) for calls, _ in rows)
    top = [(int(calls), " ".join(str(query).split())) for calls, query in rows[:TOP_STATEMENTS]]
    return Cost(case.name, run.requests, run.errors, run.rps, statements, backbone_cpu, database_cpu, top)


def _flame(
    case: Case,
    url: str,
    backbone: psutil.Process,
    py_spy: Path,
    wrk: WrkSettings,
    duration_s: float,
    out: Path,
    scratch: Path,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    name = "".join(c if c.isalnum() else "-" for c in case.name).strip("-").lower()
    target = out / f"{name}.svg"
    script = write_script(case.route, scratch / "route.lua")
    command = [str(py_spy), "record", "--pid", str(backbone.pid), "--subprocesses", "--rate", "250"]
    command += ["--duration", str(int(duration_s) + 1), "--format", "flamegraph", "-o", str(target)]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as recorder:
        run_wrk(url + case.route.path, script, wrk, duration_s)
        _, errors = recorder.communicate(timeout=duration_s + 30)
    if recorder.returncode != 0:
        print(f"  {case.name}: py-spy failed: {errors.decode(errors='replace').strip()[-300:]}")
    else:
        print(f"  {case.name}: flame graph {target}")


def _load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def _print(costs: list[Cost]) -> None:
    print()
    print(f"load average now: {_load()}")
    header = ("requests", "statements/req", "backbone CPU us/req", "database CPU us/req", "errors")
    print(f"{'route':42} " + " ".join(f"{column:>20}" for column in header))
    for cost in costs:
        per = max(cost.requests, 1)
        print(
            f"{cost.name:42} {cost.requests:>20,} {cost.statements / per:>20.2f} "
            f"{cost.backbone_cpu_s / per * 1e6:>20,.0f} {cost.database_cpu_s / per * 1e6:>20,.0f} "
            f"{cost.errors:>20}"
        )
    for cost in costs:
        print(f"\n{cost.name}: most called statements, calls per request")
        for calls, query in cost.top:
            print(f"  {calls / max(cost.requests, 1):6.2f}  {query[:150]}")


if __name__ == "__main__":
    raise SystemExit(main())
