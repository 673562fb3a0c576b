"""`make bench-scenarios`: the original's ten scenarios and the production mix on the light pool.

A command, not a test: it prints its figures with the machine, versions and settings it ran on.

1. A fresh PostgreSQL database gets the light pool in bulk (as `testbed seed --mode bulk` does).
2. `backbone serve` runs on it (the limits from the scenario files, see
   `scenarios/backbone_limits.py`; the Basic tier, which has no quotas).
3. Each scenario runs 60 s at the larger of 10 times (`--multiplier`) its original rate and a
   rate that schedules at least 300 starts; then the production mix runs 120 s at 10 times
   (scenario 09 at 1 times).
4. A run meets the bar when its achieved start rate is within 2 % of the target, under 1 % of its
   starts are late and no iteration ended in an unexpected failure. The table says which did;
   the line after each run says how much CPU the load generator (Locust) and the backbone used,
   in cores: a generator near all of its cores limits the run, otherwise the server side does.

Load generator and server share this machine's cores unless `--locust-cores` gives Locust cores
of its own (the backbone then runs on the others; the PostgreSQL server is not moved): the
figures say what this machine sustains, and a run whose generator missed its schedule says so.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psutil
import psycopg

from loadtests.seeding.bulk import SeedingError
from scenarios.backbone_limits import backbone_limits
from scenarios.derive import rate_for_starts
from scenarios.pool_schema import PoolConfigError
from scenarios.schema import load_scenario
from testbed.bench.scenario_runs import (
    CONNECTOR_SYNC_FLOW,
    PRODUCTION_MIX,
    SCENARIO_FILES,
    ScenarioRun,
    run_scenario,
)
from testbed.processes import free_port, start_python, stop, tree_cpu_s, wait_for_http
from testbed.seed import plan_pool, seed_bulk_pool

# The development client `migrate` seeds, in a database that lives for one benchmark.
DEVELOPMENT_CLIENT_SECRET = "test"  # noqa: S105
ADMIN_URL = os.environ.get("BACKBONE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # A terminated benchmark still stops its server and drops its database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-scenarios-"))
    out.mkdir(parents=True, exist_ok=True)
    _print_header(args, out)
    runs: list[ScenarioRun] = []
    with fresh_database() as database_url:
        credentials = out / "light-pool.json"
        started = time.perf_counter()
        try:
            the_plan = plan_pool(args.pool, seed=1, did_domain="localhost", say=print)
            seed_bulk_pool(
                the_plan,
                database_url,
                client_id="test",
                client_secret=DEVELOPMENT_CLIENT_SECRET,
                export_path=credentials,
                password_hash_iterations=args.password_hash_iterations,
            )
        except (PoolConfigError, SeedingError) as error:
            print(f"bench-scenarios: seeding the {args.pool} pool failed: {error}")
            return 1
        print(f"seeded the {args.pool} pool in bulk in {time.perf_counter() - started:.1f} s\n", flush=True)
        limits = backbone_limits(load_scenario(PRODUCTION_MIX).backbone)
        with serving(database_url, args, limits.environment(), out) as (url, backbone):
            for path in SCENARIO_FILES:
                if args.only and not any(part in path.stem for part in args.only):
                    continue
                scenario = load_scenario(path)
                rates = {
                    flow.name: rate_for_starts(
                        scenario.rate_per_s(flow), args.duration_s, factor=args.multiplier
                    )
                    for flow in scenario.flows
                }
                runs.append(
                    _run(path, path.stem, rates, args.duration_s, url, credentials, out, args, backbone)
                )
            if not args.only or "production-mix" in args.only:
                mix = load_scenario(PRODUCTION_MIX)
                rates = {
                    flow.name: mix.rate_per_s(flow) * (1 if flow.flow == CONNECTOR_SYNC_FLOW else 10)
                    for flow in mix.flows
                }
                runs.append(
                    _run(
                        PRODUCTION_MIX,
                        "production-mix",
                        rates,
                        args.mix_duration_s,
                        url,
                        credentials,
                        out,
                        args,
                        backbone,
                    )
                )
    print(_table(runs))
    failed = [run for run in runs if run.problems()]
    for run in failed:
        print(f"\n{run.name} misses the bar (log: {run.log_path}):")
        for problem in run.problems():
            print(f"  - {problem}")
    print(f"\nraw output: {out}")
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench-scenarios", description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default="light", help="pool config to seed (default light)")
    parser.add_argument("--duration-s", type=float, default=60.0, help="each scenario's run (default 60)")
    parser.add_argument(
        "--mix-duration-s", type=float, default=120.0, help="the production mix (default 120)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="gunicorn workers of backbone serve (default 2)"
    )
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    parser.add_argument(
        "--multiplier",
        type=float,
        default=10.0,
        help="each scenario's rate, times its original (default 10; at least 300 starts a run)",
    )
    parser.add_argument(
        "--locust-cores",
        type=_cores,
        default=(),
        help="comma-separated cores for Locust alone, e.g. 1; the backbone runs on the others "
        "(default: both share every core)",
    )
    parser.add_argument(
        "--password-hash-iterations",
        type=int,
        default=1000,
        help="PBKDF2 cost of the seeded passwords (default 1000: the scenarios measure their flows, "
        "not a login storm of every identity at each run's start)",
    )
    parser.add_argument(
        "--only", nargs="*", default=[], help="run only scenarios whose name contains one of these"
    )
    parser.add_argument("--out", default="", help="directory for logs and JSON (default a temporary one)")
    return parser


def _cores(text: str) -> tuple[int, ...]:
    """The `--locust-cores` list: cores of this machine, leaving at least one for the backbone."""
    try:
        cores = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of core numbers") from None
    available = sorted(os.sched_getaffinity(0))
    unknown = [core for core in cores if core not in available]
    if not cores or unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: this machine's cores are {available}")
    if len(cores) == len(available):
        raise argparse.ArgumentTypeError(f"{text!r} leaves no core for the backbone ({available})")
    return cores


def _backbone_cores(args: argparse.Namespace) -> tuple[int, ...]:
    if not args.locust_cores:
        return ()
    return tuple(core for core in sorted(os.sched_getaffinity(0)) if core not in args.locust_cores)


def _print_header(args: argparse.Namespace, out: Path) -> None:
    print("== bench-scenarios ==")
    print(f"date:     {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"machine:  {platform.platform()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    print(f"python:   {platform.python_version()}; locust {metadata.version('locust')}")
    print(
        f"settings: pool {args.pool} (bulk, PostgreSQL), backbone serve --workers {args.workers} "
        f"--threads {args.threads}, each scenario {args.duration_s:g} s at "
        f"max({args.multiplier:g}x, >= 300 starts), production mix {args.mix_duration_s:g} s at 10x "
        f"(09 at 1x), one Locust process"
    )
    if args.locust_cores:
        print(
            f"cores:    Locust on {list(args.locust_cores)}, backbone serve on "
            f"{list(_backbone_cores(args))}, the PostgreSQL server unpinned"
        )
    print(f"output:   {out}\n", flush=True)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new PostgreSQL database for this run, dropped afterwards."""
    name = f"bench_scenarios_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def serving(
    database_url: str, args: argparse.Namespace, limits: dict[str, str], out: Path
) -> Iterator[tuple[str, psutil.Process]]:
    """`backbone serve` on a free port against the seeded database: its URL and its process."""
    port = free_port()
    environment = {
        "BACKBONE_DATABASE_URL": database_url,
        "BACKBONE_JWT_SIGNING_KEY": secrets.token_urlsafe(48),
        "BACKBONE_VAR_DIR": str(out / "var"),
        "BACKBONE_LOG_LEVEL": "WARNING",
        **limits,
    }
    with (out / "server.log").open("wb") as log:
        process = start_python(
            [
                "-m",
                "backbone",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--threads",
                str(args.threads),
            ],
            environment,
            log,
            cores=_backbone_cores(args),
        )
        try:
            url = f"http://localhost:{port}"
            wait_for_http(f"{url}/health", process, timeout_s=60)
            yield url, psutil.Process(process.pid)
        finally:
            stop(process)


def _run(
    path: Path,
    name: str,
    rates: dict[str, float],
    duration_s: float,
    url: str,
    credentials: Path,
    out: Path,
    args: argparse.Namespace,
    backbone: psutil.Process,
) -> ScenarioRun:
    total = sum(rates.values())
    print(f"-- {name}: {duration_s:g} s at {total:.3f} starts/s --", flush=True)
    backbone_before = tree_cpu_s(backbone)
    run = run_scenario(
        path,
        host=url,
        credentials=credentials,
        directory=out,
        name=name,
        rates_per_s=rates,
        duration_s=duration_s,
        cores=args.locust_cores,
    )
    wall_s = max(run.wall_s, 1e-9)
    locust_of = f" of {len(args.locust_cores)}" if args.locust_cores else ""
    backbone_of = f" of {len(_backbone_cores(args))}" if args.locust_cores else ""
    backbone_cores = (tree_cpu_s(backbone) - backbone_before) / wall_s
    print(
        f"   CPU in cores: Locust {run.generator_cpu_s / wall_s:.2f}{locust_of}, backbone "
        f"{backbone_cores:.2f}{backbone_of} ({wall_s:.0f} s, logins included)",
        flush=True,
    )
    if not run.arrivals:
        print(f"   no arrival report (exit {run.exit_code}); see {run.log_path}", flush=True)
    return run


def _table(runs: list[ScenarioRun]) -> str:
    header = (
        f"{'scenario / flow':<36} {'target/s':>9} {'achieved/s':>10} {'ratio':>8} {'started':>8} "
        f"{'late %':>7} {'failed':>6} {'it p50 ms':>9} {'it p99 ms':>9}  outcomes"
    )
    lines = ["", header, "-" * len(header)]
    for run in runs:
        if not run.arrivals:
            lines.append(f"{run.name:<36} (no report; see {run.log_path})")
            continue
        for name, rate in run.rates_per_s.items():
            flow = run.flow(name)
            achieved = float(flow["achieved_rate_per_s"] or 0.0)
            late = flow["late"] / flow["started"] if flow["started"] else 0.0
            iteration = flow["iteration"]
            outcomes = ", ".join(
                f"{label} {count}" for label, count in sorted(run.outcomes.get(name, {}).items())
            )
            label = name if len(run.rates_per_s) == 1 else f"{run.name}: {name}"
            lines.append(
                f"{label[:36]:<36} {rate:>9.3f} {achieved:>10.3f} {achieved / rate:>8.2%} "
                f"{flow['started']:>8} {late:>7.2%} {flow['failed']:>6} "
                f"{iteration['p50_ms'] or 0:>9.1f} {iteration['p99_ms'] or 0:>9.1f}  {outcomes}"
            )
        lines.append(f"{'':<36} -> {'meets the bar' if not run.problems() else 'MISSES the bar'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
