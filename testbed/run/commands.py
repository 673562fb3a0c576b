"""`testbed run` (one experiment from landscape to report, leaving `results/<run-id>/` behind),
`testbed capacity` (the highest load a landscape holds, leaving `results/<search-id>/`) and
`testbed report` (render a run's or a search's report again).

Exit status of `run`: 0 every SLO met on a valid run (and, with faults or a soak, every fault
recovered, no acknowledged write lost, no drift), 1 an SLO failed or the run is invalid or a
recovery or drift verdict failed,
2 bad input, 3 the landscape, the seeding or the load generator failed, 130 interrupted.
Exit status of `capacity`: 0 a capacity bracketed by a good and a bad step, 1 only a lower bound
or no capacity, 2, 3 and 130 as for `run`.

Everything the command line names is checked before anything starts: the profile with its
changes (`--option`, `--workers`, `--threads`, `--setting`), the CPU plan, the load generator's
processes, the pool config and the scenario with its overrides (`--multiplier`, `--duration`,
`--seed`), which Locust applies to the same file in the same way; for `capacity` also the
search's plan. All problems of one kind are listed at once.

`--target URL` drives a deployment that runs elsewhere (`target.py`): its host must be in the
profile's `allowed_target_hosts`, checked before anything is sent. `--expect-load-workers N`
waits for N `testbed load-worker` processes (`load_worker.py`) to join the load generator.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import signal
import sys
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reports.manifest import CpuRecord
from reports.render import render_run
from reports.rundir import LOGS
from scenarios.faults import fault_problems, proxied_servers
from scenarios.landscape import LandscapeProfile, ProfileError, load_profile
from scenarios.pool_schema import PoolConfigError, load_pool_config
from scenarios.schema import ConstantShape, Scenario, ScenarioError, ScenarioOverrides, load_scenario
from testbed.landscape.cpu import CpuPlan, CpuPlanError, plan_cpus
from testbed.landscape.monitor import MONITOR_DIR
from testbed.processes import REPOSITORY, STOP_SIGNALS
from testbed.run.capacity import SearchPlan, SearchPlanError
from testbed.run.experiment import Experiment, Landscape, LoadPhase, Pool, RunError
from testbed.run.launched import LaunchedLandscape
from testbed.run.load_generator import (
    DEFAULT_JOIN_TIMEOUT_S,
    DEFAULT_MASTER_PORT,
    LoadGeneratorError,
    LoadGeneratorPlan,
    default_workers,
)
from testbed.run.load_worker import add_load_worker_command
from testbed.run.repeat import run_repeated
from testbed.run.target import TargetClient, TargetError, TargetLandscape, check_target, credentials_problem

RESULTS_DIR = REPOSITORY / "results"
WORK_DIR = REPOSITORY / "var" / "runs"
DEFAULT_SCENARIOS = ("production-mix", "smoke")
DEFAULT_DURATION_S = 30.0
DEFAULT_STEP_S = 30.0
DEFAULT_WARM_UP_S = 10.0
DEFAULT_RESOLUTION = 0.05
DEFAULT_MAX_STEPS = 10
DEFAULT_GROWTH = 2.0
MAX_STEP_S = 3600.0
# PBKDF2 cost of the seeded pool's passwords: a run measures its flows, not the hash at the
# backbone's 100,000 iterations (each seeded hash carries its own count, new ones the setting's).
POOL_PASSWORD_HASH_ITERATIONS = 1000


def add_run_commands(commands: Any) -> None:
    """Add `run`, `capacity` and `report` to the `testbed` parser; each sets `run`."""
    run = commands.add_parser(
        "run",
        help="run a scenario on a landscape and write results/<run-id>/ with its report",
        description="Bring the landscape up, seed, load it, collect, bring it down, report. "
        "Exit 1 when an SLO failed or the run is invalid.",
    )
    _add_experiment_options(run)
    run.add_argument("--multiplier", type=float, help="multiply every flow's rate (default the scenario's)")
    run.add_argument("--duration", type=float, metavar="SECONDS", help="override the scenario's duration")
    run.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run the same experiment N times, grouped in results/<group-id>/ (default 1)",
    )
    run.add_argument(
        "--monitor",
        action="store_true",
        help="run Prometheus on the landscape and the load generator while it runs (rules loaded, "
        "data in RUN_DIR/prometheus, docs/dashboards.md)",
    )
    run.set_defaults(run=lambda args: run_repeated(args, run_command))
    capacity = commands.add_parser(
        "capacity",
        help="find the highest arrival rate a landscape holds within its SLOs; write results/<search-id>/",
        description="Bring the landscape up and seed it once, then raise the scenario's rate step by step "
        "(warm-up, measured window) and bisect between the last good and the first bad step. Exit 0 "
        "when a capacity was bracketed, 1 when not (docs/capacity.md).",
    )
    _add_experiment_options(capacity)
    capacity.add_argument(
        "--start-multiplier", type=float, help="the first step's scenario multiplier (default the scenario's)"
    )
    capacity.add_argument(
        "--step-s",
        type=float,
        default=DEFAULT_STEP_S,
        help=f"measured window per step (default {DEFAULT_STEP_S:g})",
    )
    capacity.add_argument(
        "--warm-up-s",
        type=float,
        default=DEFAULT_WARM_UP_S,
        help=f"load before each step's measured window, not judged (default {DEFAULT_WARM_UP_S:g})",
    )
    capacity.add_argument(
        "--resolution",
        type=float,
        default=DEFAULT_RESOLUTION,
        help=f"stop bisecting when (bad - good) / good <= this (default {DEFAULT_RESOLUTION:g})",
    )
    capacity.add_argument(
        "--max-steps",
        type=int,
        default=DEFAULT_MAX_STEPS,
        help=f"at most this many steps (default {DEFAULT_MAX_STEPS})",
    )
    capacity.add_argument(
        "--growth",
        type=float,
        default=DEFAULT_GROWTH,
        help=f"multiply the rate by this while every step holds (default {DEFAULT_GROWTH:g})",
    )
    capacity.set_defaults(run=capacity_command)
    report = commands.add_parser("report", help="(re-)render the report of a run or a capacity search")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    report.set_defaults(run=lambda args: _report(args.run_dir))
    add_load_worker_command(commands)


def _add_experiment_options(parser: argparse.ArgumentParser) -> None:
    """The options `run` and `capacity` share: landscape, scenario, pool, load generator, results."""
    parser.add_argument("--profile", default="dev", help="landscape profile: dev, stage, prod or a TOML path")
    parser.add_argument(
        "--scenario", help="scenario name in scenarios/ or path (default production-mix, else smoke)"
    )
    parser.add_argument("--pool", default="test", help="identity pool to seed (default test; 'none' skips)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the pool and the arrivals (default 1)")
    parser.add_argument(
        "--password-hash-iterations",
        type=int,
        default=POOL_PASSWORD_HASH_ITERATIONS,
        help=f"PBKDF2 iterations of the seeded pool's passwords (default {POOL_PASSWORD_HASH_ITERATIONS})",
    )
    parser.add_argument("--workers", type=int, help="gunicorn workers per node (default the profile's)")
    parser.add_argument("--threads", type=int, help="threads per worker (default the profile's)")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="TABLE.KEY=VALUE",
        help="override a profile value, e.g. database.pool_size=1 or gateway.instances=2",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a backbone setting of every node, e.g. LOG_LEVEL=INFO (BACKBONE_ prefix optional)",
    )
    parser.add_argument(
        "--load-processes",
        type=int,
        metavar="N",
        help="Locust workers under one master (default one per load-generator core of the CPU plan)",
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS_DIR, help=f"where results go (default {RESULTS_DIR})"
    )
    target = parser.add_argument_group("a deployment that runs elsewhere (docs/load-model.md)")
    target.add_argument(
        "--target",
        metavar="URL",
        help="drive this running Consumer API instead of bringing the profile up; its host must be in "
        "the profile's allowed_target_hosts",
    )
    target.add_argument(
        "--prometheus",
        metavar="URL",
        help="with --target: read the server figures from this Prometheus (default none: client-side only)",
    )
    target.add_argument(
        "--credentials",
        type=Path,
        metavar="FILE",
        help="a pool seeded before (written by testbed seed): skip seeding, the personas log in from it",
    )
    target.add_argument(
        "--client-id", default="test", help="with --target: OAuth client to seed as (default test)"
    )
    target.add_argument(
        "--client-secret-env",
        default="TESTBED_CLIENT_SECRET",
        help="with --target: variable holding the client secret (default TESTBED_CLIENT_SECRET, else test)",
    )
    target.add_argument("--did-domain", help="with --target: the deployment's DID domain (default its host)")
    joining = parser.add_argument_group("load workers on other hosts (testbed load-worker)")
    joining.add_argument(
        "--expect-load-workers",
        type=int,
        default=0,
        metavar="N",
        help="wait for N `testbed load-worker` processes to join (then --load-processes defaults to 0)",
    )
    joining.add_argument(
        "--master-port",
        type=int,
        metavar="PORT",
        help=f"with --expect-load-workers: the port they connect to (default {DEFAULT_MASTER_PORT})",
    )
    joining.add_argument(
        "--load-workers-timeout",
        type=float,
        default=DEFAULT_JOIN_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for them; the run fails after (default {DEFAULT_JOIN_TIMEOUT_S:g})",
    )


def _report(run_dir: Path) -> int:
    from reports.render_cli import report_command

    return report_command(run_dir)


def _fail(message: str, command: str = "run") -> int:
    print(f"testbed {command}: {message}", file=sys.stderr)
    return 2


@dataclass(frozen=True)
class Prepared:
    """What the command line names, checked: profile, CPU plan, load generator, scenario file."""

    profile: LandscapeProfile
    overrides: dict[str, str]
    cpu: CpuPlan
    generator: LoadGeneratorPlan
    source: Path
    target: str | None = None


class BadInput(Exception):
    """The command line names something impossible; the message lists every problem."""


def _prepare(args: argparse.Namespace) -> Prepared:
    """Check the options `run` and `capacity` share, or raise BadInput with every problem."""
    if args.password_hash_iterations < 1:
        raise BadInput("--password-hash-iterations must be >= 1")
    try:
        overrides = profile_overrides(args)
        profile = load_profile(args.profile, overrides)
        cpu = plan_cpus(profile)
        workers = args.load_processes
        if workers is None:
            # Workers that join bring the load; the run starts its own only when asked.
            workers = 0 if args.expect_load_workers else default_workers(cpu.load_generator_cores)
        generator = LoadGeneratorPlan(
            cpu.load_generator_cores,
            workers,
            joining=args.expect_load_workers,
            master_port=(args.master_port or DEFAULT_MASTER_PORT) if args.expect_load_workers else None,
            join_timeout_s=args.load_workers_timeout,
        )
        if args.pool != "none" and args.credentials is None:
            load_pool_config(args.pool)
        source = scenario_path(args.scenario)
    except (ValueError, CpuPlanError, FileNotFoundError, LoadGeneratorError) as error:
        raise BadInput(str(error)) from None
    except ProfileError as error:
        raise BadInput(_listed("profile", error.problems)) from None
    except PoolConfigError as error:
        raise BadInput(_listed("pool config", error.problems)) from None
    if problems := _target_problems(args, profile):
        raise BadInput("\n  ".join(problems))
    # The CPU plan's warnings are the landscape's; a target elsewhere has none here.
    for warning in cpu.warnings if args.target is None else ():
        print(f"testbed {args.command}: warning: {warning}", file=sys.stderr)
    return Prepared(profile, overrides, cpu, generator, source, args.target)


def _target_problems(args: argparse.Namespace, profile: LandscapeProfile) -> list[str]:
    """Every problem of --target, --prometheus and --credentials; the target's host is checked
    against the profile here, before any request is sent."""
    problems = []
    if args.target is not None and getattr(args, "monitor", False):
        problems.append(
            "--monitor watches a landscape brought up here; a target elsewhere has its own Prometheus "
            "(--prometheus reads it)"
        )
    if args.target is not None:
        try:
            check_target(args.target, profile)
        except TargetError as error:
            problems.append(str(error))
    if args.prometheus is not None:
        if args.target is None:
            problems.append("--prometheus reads a target's server figures: give --target too")
        elif not args.prometheus.startswith(("http://", "https://")):
            problems.append(f"--prometheus {args.prometheus!r}: expected http(s)://HOST[:PORT]")
    if args.credentials is not None:
        if args.target is None:
            problems.append(
                "--credentials names a pool seeded before: a landscape brought up here starts empty; "
                "give --target"
            )
        elif problem := credentials_problem(args.credentials):
            problems.append(problem)
    return problems


def _landscape(
    args: argparse.Namespace,
    prepared: Prepared,
    work_dir: Path,
    logs: Path,
    proxied: frozenset[str],
    monitor_dir: Path | None = None,
) -> Landscape:
    """The profile brought up in the run's work directory (with the proxies its faults act through,
    watched by a Prometheus in `monitor_dir` with `--monitor`), or the deployment `--target`
    names."""
    if prepared.target is None:
        return LaunchedLandscape(
            prepared.profile,
            prepared.cpu,
            work_dir,
            logs,
            prepared.overrides,
            proxied=proxied,
            monitor_dir=monitor_dir if getattr(args, "monitor", False) else None,
        )
    # The official client derives addresses from the host name, as the deployment does by default.
    did_domain = args.did_domain or urllib.parse.urlsplit(prepared.target).hostname or ""
    secret = os.environ.get(args.client_secret_env) or "test"
    return TargetLandscape(
        prepared.profile,
        prepared.target,
        TargetClient(args.client_id, secret, did_domain),
        CpuRecord(load_generator_cores=prepared.cpu.load_generator_cores),
        args.prometheus,
        prepared.overrides,
    )


def _what_comes_up(args: argparse.Namespace) -> str:
    if args.target is None:
        return str(args.profile)
    return f"nothing: the target runs elsewhere ({urllib.parse.urlsplit(args.target).hostname})"


def _pool(args: argparse.Namespace) -> Pool:
    if args.credentials is not None:
        return Pool(
            f"from {args.credentials.name}", args.seed, args.password_hash_iterations, args.credentials
        )
    return Pool(args.pool, args.seed, args.password_hash_iterations)


def _listed(what: str, problems: list[str]) -> str:
    return f"invalid {what}:\n" + "\n".join(f"  {line}" for line in problems)


def _scenario(source: Path, overrides: ScenarioOverrides) -> Scenario:
    try:
        return load_scenario(source, overrides=overrides)
    except ScenarioError as error:
        raise BadInput(_listed("scenario", error.problems)) from None


def run_command(args: argparse.Namespace) -> int:
    """`testbed run`."""
    if args.multiplier is not None and not (args.multiplier > 0 and math.isfinite(args.multiplier)):
        return _fail("--multiplier must be a number > 0")
    if args.duration is not None and not (0 < args.duration <= 24 * 3600):
        return _fail("--duration must be between 0 and 86400 seconds")
    try:
        prepared = _prepare(args)
        # The main command without arguments must stay short, whatever the default scenario's length.
        duration_s = args.duration if args.duration or args.scenario else DEFAULT_DURATION_S
        scenario_overrides = ScenarioOverrides(args.multiplier, duration_s, args.seed)
        scenario = _scenario(prepared.source, scenario_overrides)
        _check_faults(scenario, prepared)
    except BadInput as error:
        return _fail(str(error))
    profile = prepared.profile
    run_id = (
        f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{prepared.source.stem}-{profile.name}-{secrets.token_hex(2)}"
    )
    run_dir = args.results / run_id
    work_dir = WORK_DIR / run_id
    work_dir.mkdir(parents=True, exist_ok=True)
    experiment = Experiment(
        run_id,
        run_dir,
        work_dir,
        _landscape(
            args, prepared, work_dir, run_dir / LOGS, proxied_servers(scenario), run_dir / MONITOR_DIR
        ),
        LoadPhase(scenario, scenario_overrides, prepared.generator),
        _pool(args),
    )
    stop_on_signals()
    try:
        experiment.run(_what_comes_up(args))
    except KeyboardInterrupt:
        print("\ntestbed run: interrupted; the landscape is down", file=sys.stderr)
        return 130
    except RunError as error:
        print(f"testbed run: {error}", file=sys.stderr)
        return 3
    report = render_run(run_dir)
    for line in (*report.headline(), *report.closing_lines()):
        print(line)
    print(f"report: {run_dir / 'report.html'}\nsummary: {run_dir / 'summary.md'}")
    if args.monitor:
        print(f"monitor: the run's time series in {run_dir / MONITOR_DIR} (docs/dashboards.md)")
    return 0 if report.slo_passed and report.valid and report.resilience_passed else 1


def _check_faults(scenario: Scenario, prepared: Prepared) -> None:
    """Every fault the profile cannot take, at once (BadInput), before anything starts."""
    problems = fault_problems(scenario, prepared.profile)
    if scenario.faults and prepared.target is not None:
        problems.append(
            f"{scenario.source}: faults act on the processes of a landscape the run brings up; "
            f"--target drives one that runs elsewhere"
        )
    throttled = [fault for fault in scenario.faults if fault.kind == "throttle-tier"]
    if throttled and prepared.cpu.hierarchy is None:
        problems.append(
            f"{scenario.source}: throttle-tier needs CPU budgets held by a cgroup (here: "
            f"{prepared.cpu.mechanism or 'no budget'}): a budget held by affinity cannot change mid-run"
        )
    if problems:
        raise BadInput(_listed("faults", problems))


def capacity_command(args: argparse.Namespace) -> int:
    """`testbed capacity`."""
    from reports.capacity import BRACKETED, CAPACITY_HTML, CAPACITY_MD, build_capacity_report
    from testbed.run.capacity_search import CapacitySearch

    problems = _search_problems(args)
    try:
        prepared = _prepare(args)
        scenario = _scenario(
            prepared.source, ScenarioOverrides(None, args.warm_up_s + args.step_s, args.seed)
        )
    except BadInput as error:
        return _fail("\n  ".join([str(error), *problems]), "capacity")
    if scenario.faults:
        problems.append(
            f"{prepared.source}: faults: a capacity search takes none (each step is judged alone)"
        )
    if not isinstance(scenario.shape, ConstantShape):
        problems.append(
            f"{prepared.source}: shape.kind: a capacity search needs a constant shape (each step holds "
            f"one rate), got {type(scenario.shape).__name__.removesuffix('Shape').lower()}"
        )
    if problems:
        return _fail("\n  ".join(problems), "capacity")
    start = scenario.multiplier if args.start_multiplier is None else args.start_multiplier
    plan = SearchPlan(start, args.growth, args.resolution, args.max_steps)
    profile = prepared.profile
    search_id = (
        f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-capacity-{prepared.source.stem}-{profile.name}-"
        f"{secrets.token_hex(2)}"
    )
    directory = args.results / search_id
    work_dir = WORK_DIR / search_id
    work_dir.mkdir(parents=True, exist_ok=True)
    search = CapacitySearch(
        search_id=search_id,
        directory=directory,
        work_dir=work_dir,
        landscape=_landscape(args, prepared, work_dir, directory / LOGS, proxied=frozenset()),
        source=prepared.source,
        pool=_pool(args),
        plan=plan,
        step_s=args.step_s,
        warm_up_s=args.warm_up_s,
        generator=prepared.generator,
    )
    stop_on_signals()
    try:
        search.run(_what_comes_up(args))
    except KeyboardInterrupt:
        print(
            f"\ntestbed capacity: interrupted; the landscape is down, the finished steps are in {directory}",
            file=sys.stderr,
        )
        return 130
    except RunError as error:
        print(f"testbed capacity: {error}", file=sys.stderr)
        return 3
    report = build_capacity_report(directory)
    for line in report.headline():
        print(line)
    print(f"report: {directory / CAPACITY_HTML}\nsummary: {directory / CAPACITY_MD}")
    return 0 if report.conclusion.status == BRACKETED else 1


def _search_problems(args: argparse.Namespace) -> list[str]:
    """Every problem of the search's own options (the start multiplier's default is checked later)."""
    problems = []
    if not 0 < args.step_s <= MAX_STEP_S:
        problems.append(f"--step-s must be between 0 and {MAX_STEP_S:g} seconds, got {args.step_s:g}")
    if not 0 <= args.warm_up_s <= MAX_STEP_S:
        problems.append(f"--warm-up-s must be between 0 and {MAX_STEP_S:g} seconds, got {args.warm_up_s:g}")
    start = 1.0 if args.start_multiplier is None else args.start_multiplier
    try:
        SearchPlan(start, args.growth, args.resolution, args.max_steps)
    except SearchPlanError as error:
        problems += str(error).splitlines()
    return problems


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


def stop_on_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP stop the command once: the first raises KeyboardInterrupt (the
    landscape and the load generator go down on the way out), later ones only say so."""
    for number in STOP_SIGNALS:
        signal.signal(number, _interrupt)


def _interrupt(number: int, frame: object) -> None:
    for each in STOP_SIGNALS:
        signal.signal(each, _already_stopping)
    raise KeyboardInterrupt


def _already_stopping(number: int, frame: object) -> None:
    print("testbed: already stopping; the landscape goes down first", file=sys.stderr)


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
