"""`testbed run`: one experiment from landscape to report, leaving `results/<run-id>/` behind.

    up -> seed the pool -> scrape + sample from before the load -> Locust headless with the
    arrival engine (live progress line) -> stop collecting -> down -> manifest -> report

Exit status: 0 every SLO met on a valid run, 1 an SLO failed or the run is invalid, 2 bad input,
3 the landscape, the seeding or the load generator failed, 130 interrupted.

**Landscapes.** Every profile comes up through `testbed up`'s launcher (`LaunchedLandscape`), in
the run's work directory: `dev` as one node on SQLite, `stage` and `prod` with their gateways,
PostgreSQL, RabbitMQ, SeaweedFS and workers. The run scrapes every node, worker and gateway,
samples every process it started (and the PostgreSQL server), seeds through the landscape's own
OAuth client, and keeps the load generator on the cores the CPU plan gives it.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

import psutil
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loadtests.flows.upstream import SECRET_VARIABLE
from reports.render import render_run
from reports.rundir import ARRIVAL, LOAD_GENERATOR, LOGS, REQUESTS, write_manifest
from scenarios.landscape import LandscapeProfile, ProfileError, load_profile
from scenarios.schema import ScenarioError, load_scenario
from testbed.collect import MetricsScraper, ProcessSampler, SampledProcess, ScrapeTarget
from testbed.cpu import CpuPlan, CpuPlanError, plan_cpus
from testbed.landscape import LandscapeError, LandscapeState, Launcher, tear_down
from testbed.processes import REPOSITORY, start_python, stop

RESULTS_DIR = REPOSITORY / "results"
WORK_DIR = REPOSITORY / "var" / "runs"
DEFAULT_SCENARIOS = ("production-mix", "smoke")
DEFAULT_DURATION_S = 30.0
PROGRESS_EVERY_S = 2.0
# PBKDF2 cost of the seeded pool's passwords: a run measures its flows, not the hash at the
# backbone's 100,000 iterations (each seeded hash carries its own count, new ones the setting's).
POOL_PASSWORD_HASH_ITERATIONS = 1000


class RunError(Exception):
    """A step of the run failed; the message says which and where its log is."""


class Landscape(Protocol):
    """What a run needs from a landscape."""

    base_url: str
    database_url: str
    client_id: str
    client_secret: str
    load_generator_cores: tuple[int, ...]

    def up(self) -> None: ...

    def down(self) -> None: ...

    def scrape_targets(self) -> list[ScrapeTarget]: ...

    def sampled_processes(self) -> list[SampledProcess]: ...

    def manifest(self) -> dict[str, Any]: ...


# Process roles of a launched landscape -> the report's tiers.
ROLE_TIERS = (("gateway", "gateway"), ("node", "node"), ("worker", "events"), ("admin-api", "admin"))


@dataclass
class LaunchedLandscape:
    """A profile brought up by `testbed up`'s launcher inside the run's work directory."""

    profile: LandscapeProfile
    cpu: CpuPlan
    work_dir: Path
    logs_dir: Path
    overrides: Mapping[str, str] = field(default_factory=dict)
    state: LandscapeState | None = None

    @property
    def _state(self) -> LandscapeState:
        if self.state is None:
            raise RunError("the landscape is not up")
        return self.state

    @property
    def base_url(self) -> str:
        # With several gateways the load goes through the first (Locust targets one host).
        return self._state.consumer_urls[0]

    @property
    def database_url(self) -> str:
        # SQLite (dev) lives in the landscape's run directory, where the backbone puts it.
        state = self._state
        return state.database_url or f"sqlite:///{Path(state.run_dir) / 'var' / 'backbone.sqlite3'}"

    @property
    def client_id(self) -> str:
        return self._state.client_id

    @property
    def client_secret(self) -> str:
        return self._state.client_secret

    @property
    def load_generator_cores(self) -> tuple[int, ...]:
        return self.cpu.load_generator_cores

    def up(self) -> None:
        launcher = Launcher(
            self.profile,
            self.cpu,
            state_path=self.work_dir / "landscape.json",
            runs_dir=self.work_dir / "landscape",
            say=lambda text: print(f"testbed run: {text}", file=sys.stderr),
        )
        self.state = launcher.state
        # While the launcher starts processes a signal only takes note (raising inside a fork
        # handler would be swallowed); the launcher stops at its next step and tears down.
        previous = {
            number: signal.signal(number, lambda *_: launcher.interrupted.set())
            for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        try:
            launcher.up()
        except LandscapeError as error:
            raise RunError(f"the {self.profile.name} landscape did not come up: {error}") from None
        finally:
            self._keep_logs()
            for number, handler in previous.items():
                signal.signal(number, handler)

    def down(self) -> None:
        if self.state is None:
            return
        problems = tear_down(self.state, say=lambda text: print(f"testbed run: {text}", file=sys.stderr))
        self._keep_logs()
        if problems:
            raise RunError("the landscape did not go down cleanly: " + "; ".join(problems))

    def _keep_logs(self) -> None:
        """Copy the landscape's process logs into the run directory (they are evidence)."""
        if self.state is None:
            return
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        for log in (Path(self.state.run_dir) / "logs").glob("*.log"):
            shutil.copyfile(log, self.logs_dir / log.name)

    def scrape_targets(self) -> list[ScrapeTarget]:
        state = self._state
        targets = [
            ScrapeTarget(f"node{index}", "node", _loopback(url) + "/metrics")
            for index, url in enumerate(state.node_urls, start=1)
        ]
        targets += [
            ScrapeTarget(f"worker{index}", "events", _loopback(url) + "/metrics")
            for index, url in enumerate(state.worker_urls, start=1)
        ]
        targets += [
            ScrapeTarget(f"gateway{index}", "gateway", _loopback(url) + "/metrics")
            for index, url in enumerate(state.gateway_operator_urls, start=1)
        ]
        return targets

    def sampled_processes(self) -> list[SampledProcess]:
        sampled = []
        for process in self._state.processes:
            tier = next((tier for prefix, tier in ROLE_TIERS if process.role.startswith(prefix)), None)
            if tier is None or not psutil.pid_exists(process.pid):
                continue  # the migration has exited; SeaweedFS serves no request path we measure
            limit = self._node_cpu_limit(process.role) if tier == "node" else math.nan
            sampled.append(SampledProcess(process.role, tier, process.pid, cpu_limit_cores=limit))
        if (server := postgresql_server_pid(self.database_url)) is not None:
            # The machine's shared server: its CPU includes other databases' work, if any.
            sampled.append(SampledProcess("postgresql", "database", server))
        return sampled

    def _node_cpu_limit(self, role: str) -> float:
        if self.cpu.node_quota_cores is not None:
            return self.cpu.node_quota_cores
        index = int(role.removeprefix("node")) - 1
        cores = self.cpu.node_cores[index] if index < len(self.cpu.node_cores) else ()
        return float(len(cores)) if cores else math.nan

    def manifest(self) -> dict[str, Any]:
        profile, state = self.profile, self._state
        return {
            "name": profile.name,
            "description": profile.description,
            "source": _relative(profile.source),
            "overrides": dict(self.overrides),
            "environment": profile.environment,
            "landscape_id": state.id,
            "up_seconds": state.up_seconds,
            # A role, not a URL: the report is a file without any http(s) reference.
            "load_target": "gateway1" if state.gateway_urls else "node1",
            "gateway": asdict(profile.gateway),
            "nodes": asdict(profile.nodes),
            "threads_per_worker": profile.nodes.threads,
            # write_manifest writes the passwords in these URLs as ***.
            "database": asdict(profile.database),
            "bus": asdict(profile.bus),
            "blob_store": asdict(profile.blob_store),
            "worker_replicas": profile.worker_replicas,
            "admin_api_workers": profile.admin_api_workers,
            "cpu": {
                "landscape_cores": list(self.cpu.landscape_cores),
                "node_cores": [list(cores) for cores in self.cpu.node_cores],
                "node_quota_cores": self.cpu.node_quota_cores,
                "load_generator_cores": list(self.cpu.load_generator_cores),
                "warnings": list(self.cpu.warnings),
            },
            "backbone": dict(profile.backbone),
        }


def _loopback(url: str) -> str:
    return url.replace("//localhost:", "//127.0.0.1:")


def _relative(path: Path) -> str:
    """The path from the repository's root when it lies inside, else as given."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPOSITORY)) if resolved.is_relative_to(REPOSITORY) else str(path)


def postgresql_server_pid(database_url: str) -> int | None:
    """The PID of the PostgreSQL server behind `database_url` when it runs on this machine."""
    if not database_url.startswith(("postgresql", "postgres:")):
        return None
    import psycopg

    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        with psycopg.connect(url, connect_timeout=5) as connection:
            row = connection.execute("SELECT pg_backend_pid()").fetchone()
            # Asked while the connection is open: once closed, its backend exits and has no parent.
            # A backend's parent is the postmaster, which the sampler follows to every backend.
            return psutil.Process(int(row[0])).ppid() if row else None
    except psycopg.Error:
        return None
    except psutil.Error:
        return None  # a server on another host or in another PID namespace


def add_run_commands(commands: Any) -> None:
    """Add `run` and `report` to the `testbed` parser; each sets `run`."""
    run = commands.add_parser(
        "run",
        help="run a scenario on a landscape and write results/<run-id>/ with its report",
        description="Bring the landscape up, seed, load it, collect, bring it down, report. "
        "Exit 1 when an SLO failed or the run is invalid.",
    )
    run.add_argument("--profile", default="dev", help="landscape profile: dev, stage, prod or a TOML path")
    run.add_argument(
        "--scenario", help="scenario name in scenarios/ or path (default production-mix, else smoke)"
    )
    run.add_argument("--multiplier", type=float, help="multiply every flow's rate (default the scenario's)")
    run.add_argument("--duration", type=float, metavar="SECONDS", help="override the scenario's duration")
    run.add_argument("--pool", default="test", help="identity pool to seed (default test; 'none' skips)")
    run.add_argument("--seed", type=int, default=1, help="seed of the pool and the arrivals (default 1)")
    run.add_argument(
        "--password-hash-iterations",
        type=int,
        default=POOL_PASSWORD_HASH_ITERATIONS,
        help=f"PBKDF2 iterations of the seeded pool's passwords (default {POOL_PASSWORD_HASH_ITERATIONS})",
    )
    run.add_argument("--workers", type=int, help="gunicorn workers per node (default the profile's)")
    run.add_argument("--threads", type=int, help="threads per worker (default the profile's)")
    run.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="TABLE.KEY=VALUE",
        help="override a profile value, e.g. database.pool_size=1 or gateway.instances=2",
    )
    run.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a backbone setting of every node, e.g. LOG_LEVEL=INFO (BACKBONE_ prefix optional)",
    )
    run.add_argument(
        "--results", type=Path, default=RESULTS_DIR, help=f"where runs go (default {RESULTS_DIR})"
    )
    run.set_defaults(run=run_command)
    report = commands.add_parser("report", help="(re-)render the report of a run directory")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    report.set_defaults(run=lambda args: _report(args.run_dir))


def _report(run_dir: Path) -> int:
    from reports.render_cli import report_command

    return report_command(run_dir)


def _fail(message: str) -> int:
    print(f"testbed run: {message}", file=sys.stderr)
    return 2


def scenario_path(name: str | None) -> Path:
    """Resolve a scenario name or path; no name: the first default that exists."""
    candidates = [name] if name else list(DEFAULT_SCENARIOS)
    for candidate in candidates:
        for path in (Path(candidate), REPOSITORY / "scenarios" / f"{candidate}.toml"):
            if path.is_file():
                return path.resolve()
    raise FileNotFoundError(
        f"no scenario {name or ' or '.join(DEFAULT_SCENARIOS)} (a name in scenarios/ or a path)"
    )


def effective_scenario(source: Path, multiplier: float | None, duration_s: float | None, seed: int) -> str:
    """Return the scenario's TOML text with the command line's overrides applied."""
    document = tomllib.loads(source.read_text(encoding="utf-8"))
    if multiplier is not None:
        document["multiplier"] = multiplier
    document["seed"] = seed
    if duration_s is not None:
        shape = document.get("shape", {})
        if "duration_s" not in shape:
            raise ValueError(
                f"--duration: the {shape.get('kind', '?')} shape of {source.name} has no duration_s"
            )
        shape["duration_s"] = duration_s
        for key in ("spike_at_s", "ramp_s"):
            # Keep a spike or a ramp inside a shortened run, in proportion.
            if key in shape and shape[key] >= duration_s:
                shape[key] = duration_s / 2
    return to_toml(document)


def to_toml(document: Mapping[str, Any]) -> str:
    """Write the subset of TOML scenario files use: scalars, arrays of scalars, tables, arrays of tables."""
    lines: list[str] = []

    def scalar(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return repr(value)
        if isinstance(value, list):
            return "[" + ", ".join(scalar(item) for item in value) + "]"
        return json.dumps(str(value))

    def key(name: str) -> str:
        return name if name.replace("_", "").replace("-", "").isalnum() else json.dumps(name)

    def table(prefix: str, items: Mapping[str, Any]) -> None:
        for name, value in items.items():
            if not isinstance(value, dict) and not (
                isinstance(value, list) and value and isinstance(value[0], dict)
            ):
                lines.append(f"{key(name)} = {scalar(value)}")
        for name, value in items.items():
            path = f"{prefix}.{key(name)}" if prefix else key(name)
            if isinstance(value, dict):
                lines.extend(["", f"[{path}]"])
                table(path, value)
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                for item in value:
                    lines.extend(["", f"[[{path}]]"])
                    table(path, item)

    table("", document)
    return "\n".join(lines) + "\n"


def run_command(args: argparse.Namespace) -> int:
    """`testbed run`."""
    if args.multiplier is not None and not (args.multiplier > 0 and math.isfinite(args.multiplier)):
        return _fail("--multiplier must be a number > 0")
    if args.duration is not None and not (0 < args.duration <= 24 * 3600):
        return _fail("--duration must be between 0 and 86400 seconds")
    if args.password_hash_iterations < 1:
        return _fail("--password-hash-iterations must be >= 1")
    try:
        overrides = profile_overrides(args)
        profile = load_profile(args.profile, overrides)
        cpu = plan_cpus(profile)
    except ValueError as error:
        return _fail(str(error))
    except ProfileError as error:
        return _fail("invalid profile:\n" + "\n".join(f"  {line}" for line in error.problems))
    except CpuPlanError as error:
        return _fail(str(error))
    try:
        source = scenario_path(args.scenario)
        # The main command without arguments must stay short, whatever the default scenario's length.
        duration_s = args.duration if args.duration or args.scenario else DEFAULT_DURATION_S
        text = effective_scenario(source, args.multiplier, duration_s, args.seed)
    except (FileNotFoundError, ValueError, tomllib.TOMLDecodeError) as error:
        return _fail(str(error))
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{source.stem}-{profile.name}-{secrets.token_hex(2)}"
    run_dir = args.results / run_id
    work_dir = WORK_DIR / run_id
    work_dir.mkdir(parents=True, exist_ok=True)
    scenario_file = work_dir / "scenario.toml"
    scenario_file.write_text(text, encoding="utf-8")
    try:
        load_scenario(scenario_file)
    except ScenarioError as error:
        return _fail("invalid scenario:\n" + "\n".join(f"  {line}" for line in error.problems))
    for warning in cpu.warnings:
        print(f"testbed run: warning: {warning}", file=sys.stderr)
    landscape = LaunchedLandscape(profile, cpu, work_dir, run_dir / LOGS, overrides)
    experiment = Experiment(run_id, run_dir, work_dir, landscape, scenario_file, source, args)
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _interrupt)
    try:
        experiment.run()
    except KeyboardInterrupt:
        print("\ntestbed run: interrupted; the landscape is down", file=sys.stderr)
        return 130
    except RunError as error:
        print(f"testbed run: {error}", file=sys.stderr)
        return 3
    report = render_run(run_dir)
    for line in report.headline():
        print(line)
    print(f"report: {run_dir / 'report.html'}\nsummary: {run_dir / 'summary.md'}")
    return 0 if report.slo_passed and report.valid else 1


def profile_overrides(args: argparse.Namespace) -> dict[str, str]:
    """The command line's changes to the profile: --option, --workers, --threads and --setting."""
    overrides: dict[str, str] = {}
    for flag, items, table in (("--option", args.option, ""), ("--setting", args.setting, "backbone.")):
        for item in items:
            name, equals, value = item.partition("=")
            name = name.strip()
            if not equals or not name:
                raise ValueError(f"{flag} {item!r}: expected NAME=VALUE")
            if table:
                name = table + name.upper().removeprefix("BACKBONE_")
                value = json.dumps(value)  # a setting is always a string
            overrides[name] = value
    if args.workers is not None:
        overrides["nodes.workers"] = str(args.workers)
    if args.threads is not None:
        overrides["nodes.threads"] = str(args.threads)
    return overrides


def _interrupt(number: int, frame: object) -> None:
    raise KeyboardInterrupt


@dataclass
class Experiment:
    """The steps of one run, in order, with the landscape brought down whatever happens."""

    run_id: str
    run_dir: Path
    work_dir: Path
    landscape: Landscape
    scenario_file: Path
    scenario_source: Path
    args: argparse.Namespace
    started_at_s: float = 0.0
    ended_at_s: float = 0.0

    def run(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        logs = self.run_dir / LOGS
        print(f"testbed run {self.run_id}: bringing up {self.args.profile}", file=sys.stderr)
        self.landscape.up()
        scraper = sampler = None
        try:
            self._seed(logs)
            scraper = MetricsScraper(self.landscape.scrape_targets(), self.run_dir)
            sampler = ProcessSampler(self.landscape.sampled_processes(), self.run_dir)
            scraper.start()
            sampler.start()
            time.sleep(1.5)  # a scrape before the first request: counters' increases start from it
            self._load(logs, sampler)
            time.sleep(1.5)  # and one after the last
        finally:
            for collector in (scraper, sampler):
                if collector is not None:
                    collector.stop()
            print("testbed run: bringing the landscape down", file=sys.stderr)
            self.landscape.down()
        self._write_manifest(scraper)

    def _seed(self, logs: Path) -> None:
        if self.args.pool == "none":
            return
        print(f"testbed run: seeding pool {self.args.pool}", file=sys.stderr)
        args = ["-m", "testbed.cli", "seed", "--pool", self.args.pool, "--mode", "bulk"]
        args += ["--seed", str(self.args.seed), "--database-url", self.landscape.database_url]
        args += ["--export", str(self.work_dir / "credentials.json")]
        args += ["--password-hash-iterations", str(self.args.password_hash_iterations)]
        # The identities belong to the landscape's OAuth client, whose tier has no quotas.
        args += ["--client-id", self.landscape.client_id]
        with (logs / "seed.log").open("ab") as log:
            process = start_python(args, self._client_secret(), log)
            if process.wait() != 0:
                raise RunError(f"seeding the pool failed; see {logs / 'seed.log'}")

    def _load(self, logs: Path, sampler: ProcessSampler) -> None:
        stats_prefix = self.work_dir / "locust"
        args = ["-m", "locust", "-f", str(REPOSITORY / "loadtests" / "locustfile.py"), "--headless"]
        args += ["--only-summary", "--scenario", str(self.scenario_file), "-H", self.landscape.base_url]
        args += ["--arrival-json", str(self.run_dir / ARRIVAL), "--requests-dir", str(self.run_dir)]
        args += ["--csv", str(stats_prefix), "--csv-full-history", "--loglevel", "WARNING"]
        if self.args.pool != "none":
            # The personas of the upstream scenarios log in as the seeded identities.
            args += ["--credentials", str(self.work_dir / "credentials.json")]
        scenario = load_scenario(self.scenario_file)
        budget_s = scenario.duration_s + scenario.drain_timeout_s + 60
        what = f"{scenario.name} for {scenario.duration_s:g} s (multiplier {scenario.multiplier:g})"
        print(f"testbed run: {what}", file=sys.stderr)
        with (logs / "locust.log").open("ab") as log:
            self.started_at_s = time.time()
            locust = start_python(args, self._client_secret(), log, cores=self.landscape.load_generator_cores)
            # One Locust process runs on one core at most, whatever cores it may use.
            sampler.add(SampledProcess("locust", LOAD_GENERATOR, locust.pid, cpu_limit_cores=1.0))
            try:
                self._watch(locust, stats_prefix, budget_s)
            finally:
                stop(locust)
                self.ended_at_s = time.time()
        if not (self.run_dir / ARRIVAL).is_file():
            raise RunError(f"the load generator wrote no results; see {logs / 'locust.log'}")

    def _client_secret(self) -> dict[str, str]:
        return {SECRET_VARIABLE: self.landscape.client_secret}

    def _watch(self, locust: subprocess.Popen[bytes], stats_prefix: Path, budget_s: float) -> None:
        interactive = sys.stderr.isatty()
        last_print = 0.0
        while locust.poll() is None:
            elapsed_s = time.time() - self.started_at_s
            if elapsed_s > budget_s:
                print(
                    "\ntestbed run: the load generator overran its time budget; stopping it", file=sys.stderr
                )
                return
            if time.monotonic() - last_print >= (PROGRESS_EVERY_S if interactive else 10.0):
                last_print = time.monotonic()
                line = progress_line(
                    elapsed_s, stats_prefix.with_name(stats_prefix.name + "_stats_history.csv")
                )
                print(
                    ("\r" + line) if interactive else line, end="" if interactive else "\n", file=sys.stderr
                )
            time.sleep(0.25)
        # The last line sums the whole run, however short it was next to the printing interval.
        line = progress_line(
            time.time() - self.started_at_s, stats_prefix.with_name(stats_prefix.name + "_stats_history.csv")
        )
        print(("\r" + line) if interactive else line, file=sys.stderr)

    def _write_manifest(self, scraper: MetricsScraper | None) -> None:
        scenario = load_scenario(self.scenario_file)
        # The load's window starts with the first intended start, not with Locust's process (whose
        # start-up can take seconds): rates and onsets count from there.
        first_s = first_intended_start_s(self.run_dir / REQUESTS)
        if first_s is not None:
            self.started_at_s = max(self.started_at_s, first_s)
        manifest = {
            "run_id": self.run_id,
            "started_at_s": self.started_at_s,
            "ended_at_s": self.ended_at_s,
            "started_at": datetime.fromtimestamp(self.started_at_s, UTC).isoformat(),
            "ended_at": datetime.fromtimestamp(self.ended_at_s, UTC).isoformat(),
            "seed": self.args.seed,
            "pool": self.args.pool,
            "pool_pbkdf2_iterations": (
                None if self.args.pool == "none" else self.args.password_hash_iterations
            ),
            "git": git_revision(),
            "profile": self.landscape.manifest(),
            "scenario": {
                "name": scenario.name,
                "source": _relative(self.scenario_source),
                "model": "open",
                "multiplier": scenario.multiplier,
                "duration_s": scenario.duration_s,
                "arrivals": scenario.arrivals,
                "flows": [
                    {"name": flow.name, "flow": flow.flow, "rate_per_s": scenario.rate_per_s(flow)}
                    for flow in scenario.flows
                ],
                "slos": [
                    {
                        "route": slo.route,
                        "method": slo.method,
                        "percentiles_ms": [list(item) for item in slo.percentiles_ms],
                        "view": slo.view,
                        "max_failure_ratio": slo.max_failure_ratio,
                    }
                    for slo in scenario.slos
                ],
                "text": self.scenario_file.read_text(encoding="utf-8"),
            },
            "versions": versions(),
            "machine": machine(),
            "scrape_failures": dict(scraper.failures) if scraper is not None else {},
        }
        write_manifest(self.run_dir, manifest)


def first_intended_start_s(directory: Path) -> float | None:
    """Return the earliest intended start in the request parts (reading that column only)."""
    earliest = [
        pc.min(pq.read_table(part, columns=["intended_start_s"])["intended_start_s"]).as_py()
        for part in directory.glob("*.parquet")
    ]
    found = [value for value in earliest if value is not None]
    return min(found) if found else None


def progress_line(elapsed_s: float, history: Path) -> str:
    """Return `elapsed, rate, p95, errors` from the last aggregated row of Locust's stats history."""
    row = _last_aggregated(history)
    if row is None:
        return f"{elapsed_s:6.0f} s  starting"
    rate = _float(row.get("Requests/s"))
    p95 = _float(row.get("95%"))
    errors = int(_float(row.get("Total Failure Count")) or 0)
    total = int(_float(row.get("Total Request Count")) or 0)
    return f"{elapsed_s:6.0f} s  {rate:8.1f} req/s  p95 {p95:6.0f} ms  errors {errors}/{total}"


def _last_aggregated(history: Path) -> dict[str, str] | None:
    try:
        with history.open(encoding="utf-8", newline="") as file:
            rows = [row for row in csv.DictReader(file) if row.get("Name") == "Aggregated"]
    except OSError:
        return None
    return rows[-1] if rows else None


def _float(text: str | None) -> float:
    try:
        return float(text or "nan")
    except ValueError:
        return math.nan


def git_revision() -> dict[str, Any]:
    """Return the repository's revision and whether the working tree had changes."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=REPOSITORY, capture_output=True, text=True, check=False)
        return result.stdout.strip()

    return {
        "revision": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def versions() -> dict[str, str]:
    """Return the versions of Python and the packages a run depends on."""
    found = {"python": platform.python_version()}
    for package in (
        "backbone-testbed",
        "locust",
        "falcon",
        "gunicorn",
        "sqlalchemy",
        "pandas",
        "prometheus-client",
    ):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def machine() -> dict[str, Any]:
    """Return what the run ran on."""
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "load_average_1m": os.getloadavg()[0],
    }
