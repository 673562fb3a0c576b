"""`testbed sweep FILE`: a capacity search on every landscape of a sweep file, the scaling model and
the operator's recommendation, leaving `results/<sweep-id>/` behind (docs/scaling-guide.md).

Exit status: 0 a measured cell holds the target with its headroom, 1 none does (the report says
what would), 2 bad input, 3 a landscape, the seeding or the load generator failed, 130 interrupted
(`--resume ID` continues with the cells not done).

Everything is checked before the first landscape comes up, every problem in one message: the
sweep file (dimensions, values each cell's profile accepts, target and headroom), each cell's CPU
plan (its budgets within the landscape's cores), the pool, the scenario (a constant shape) and the
search's options.
"""

from __future__ import annotations

import argparse
import math
import secrets
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reports.manifest import ManifestError
from reports.sweep import SWEEP_FILE, read_sweep
from scenarios.pool_schema import PoolConfigError, load_pool_config
from scenarios.schema import ConstantShape, ScenarioError, ScenarioOverrides, load_scenario
from scenarios.sweep_schema import TARGET_UNITS, Sweep, SweepError, load_sweep
from testbed.landscape.cpu import CpuPlan, CpuPlanError, plan_cpus
from testbed.run.capacity import SearchPlan, SearchPlanError
from testbed.run.commands import MAX_STEP_S, POOL_PASSWORD_HASH_ITERATIONS, RESULTS_DIR, scenario_path

DEFAULT_STEP_S = 20.0
DEFAULT_WARM_UP_S = 10.0
DEFAULT_MAX_STEPS = 8
DEFAULT_RESOLUTION = 0.1
DEFAULT_GROWTH = 2.0
KEEP_REQUESTS = ("all", "none")


def add_sweep_command(commands: Any) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="a capacity search on every landscape of a sweep file; the scaling model and the recommendation",
        description="For every cell of the sweep file: the landscape up, the capacity search, the landscape "
        "down; then sweep.parquet, the scaling model and the sweep report in results/<sweep-id>/. Exit 0 "
        "when a measured cell holds the target with headroom, 1 when none does (docs/scaling-guide.md).",
    )
    sweep.add_argument(
        "file", metavar="FILE", nargs="?", help="sweep file: a name in scenarios/sweeps/ or a path"
    )
    sweep.add_argument(
        "--target",
        metavar="UNIT=VALUE",
        help="the target load, multiplier=10 or requests_per_s=500 (default the file's)",
    )
    sweep.add_argument(
        "--headroom", type=float, help="needed capacity = target x (1 + H) (default the file's)"
    )
    sweep.add_argument(
        "--resume", metavar="ID", help="continue the sweep results/ID/ with the cells not done"
    )
    sweep.add_argument(
        "--keep-requests",
        choices=KEEP_REQUESTS,
        default="all",
        help="none: drop each finished cell's per-request tables (its reports stay) (default all)",
    )
    sweep.add_argument(
        "--step-s", type=float, help=f"measured window per step (default the file's, else {DEFAULT_STEP_S:g})"
    )
    sweep.add_argument(
        "--warm-up-s",
        type=float,
        help=f"load before each step's window (default the file's, else {DEFAULT_WARM_UP_S:g})",
    )
    sweep.add_argument(
        "--max-steps",
        type=int,
        help=f"at most this many steps per cell (default the file's, else {DEFAULT_MAX_STEPS})",
    )
    sweep.add_argument(
        "--results", type=Path, default=RESULTS_DIR, help=f"where results go (default {RESULTS_DIR})"
    )
    sweep.set_defaults(run=sweep_command)


@dataclass(frozen=True)
class PreparedSweep:
    """A sweep file with everything its cells need, checked."""

    sweep: Sweep
    plans: tuple[CpuPlan, ...]
    source: Path
    search: SearchPlan
    step_s: float
    warm_up_s: float


def parse_target(text: str | None) -> tuple[tuple[str, float] | None, list[str]]:
    """`--target multiplier=10` -> (("multiplier", 10.0), []); a problem line otherwise."""
    if text is None:
        return None, []
    unit, equals, value = text.partition("=")
    problems = []
    if not equals or unit.strip() not in TARGET_UNITS:
        problems.append(f"--target {text!r}: expected UNIT=VALUE with UNIT one of {', '.join(TARGET_UNITS)}")
    try:
        amount = float(value)
    except ValueError:
        amount = math.nan
    if not (amount > 0 and math.isfinite(amount)):
        problems.append(f"--target {text!r}: the value must be a number > 0")
    return (unit.strip(), amount), problems


def prepare(args: argparse.Namespace, file: str) -> PreparedSweep:
    """Check everything the sweep needs; raise SweepError with every problem."""
    target, problems = parse_target(args.target)
    if args.headroom is not None and not 0 <= args.headroom <= 10:
        problems.append(f"--headroom must be a number from 0 to 10 (0.3 is 30 %), got {args.headroom:g}")
    try:
        sweep = load_sweep(
            file, target=None if problems else target, headroom=args.headroom if not problems else None
        )
    except SweepError as error:
        raise SweepError(problems + error.problems) from None
    plans = []
    for cell in sweep.cells:
        try:
            plans.append(plan_cpus(cell.profile))
        except CpuPlanError as error:
            problems += [f"{sweep.source}: cell {cell.label()}: {problem}" for problem in error.problems]
    if sweep.pool != "none":
        try:
            load_pool_config(sweep.pool)
        except PoolConfigError as error:
            problems += error.problems
    step_s = _pick(args.step_s, sweep.search.get("step_s"), DEFAULT_STEP_S)
    warm_up_s = _pick(args.warm_up_s, sweep.search.get("warm_up_s"), DEFAULT_WARM_UP_S)
    if not 0 < step_s <= MAX_STEP_S:
        problems.append(f"--step-s must be between 0 and {MAX_STEP_S:g} seconds, got {step_s:g}")
    if not 0 <= warm_up_s <= MAX_STEP_S:
        problems.append(f"--warm-up-s must be between 0 and {MAX_STEP_S:g} seconds, got {warm_up_s:g}")
    source = Path()
    start = 1.0
    try:
        source = scenario_path(sweep.scenario)
        scenario = load_scenario(source, overrides=ScenarioOverrides(None, warm_up_s + step_s, sweep.seed))
        start = scenario.multiplier if sweep.start_multiplier is None else sweep.start_multiplier
        if not isinstance(scenario.shape, ConstantShape):
            problems.append(f"{source}: shape.kind: a capacity search needs a constant shape")
    except FileNotFoundError as error:
        problems.append(str(error))
    except ScenarioError as error:
        problems += error.problems
    max_steps = int(_pick(args.max_steps, sweep.search.get("max_steps"), DEFAULT_MAX_STEPS))
    search = SearchPlan(1.0)
    try:
        search = SearchPlan(
            start,
            sweep.search.get("growth", DEFAULT_GROWTH),
            sweep.search.get("resolution", DEFAULT_RESOLUTION),
            max_steps,
        )
    except SearchPlanError as error:
        problems += str(error).splitlines()
    if problems:
        raise SweepError(problems)
    return PreparedSweep(sweep, tuple(plans), source, search, step_s, warm_up_s)


def _pick(given: float | None, in_file: float | None, default: float) -> float:
    return given if given is not None else in_file if in_file is not None else default


def sweep_command(args: argparse.Namespace) -> int:
    """`testbed sweep`."""
    from testbed.sweep.runner import SweepRun

    results: Path = args.results
    if args.resume:
        directory = results / args.resume
        try:
            record = read_sweep(directory)
        except ManifestError as error:
            return _fail(f"--resume {args.resume}: {error}")
        if args.target is None:
            args.target = f"{record.target_unit}={record.target:g}"
        if args.headroom is None:
            args.headroom = record.headroom
        args.step_s = record.step_s if args.step_s is None else args.step_s
        args.warm_up_s = record.warm_up_s if args.warm_up_s is None else args.warm_up_s
        file = str(directory / SWEEP_FILE)
        sweep_id = args.resume
        if args.file:
            print(f"testbed sweep: resuming {sweep_id} from its own copy of the sweep file", file=sys.stderr)
    elif args.file:
        file, sweep_id = args.file, ""
    else:
        return _fail("name a sweep file (e.g. scenarios/sweeps/nodes.toml) or --resume ID")
    try:
        prepared = prepare(args, file)
    except SweepError as error:
        return _fail("invalid sweep:\n" + "\n".join(f"  {line}" for line in error.problems))
    if not sweep_id:
        sweep_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-sweep-{prepared.sweep.name}-{secrets.token_hex(2)}"
        directory = results / sweep_id
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(prepared.sweep.source, directory / SWEEP_FILE)
    run = SweepRun(
        sweep_id=sweep_id,
        directory=results / sweep_id,
        prepared=prepared,
        pool_hash_iterations=POOL_PASSWORD_HASH_ITERATIONS,
        keep_requests=args.keep_requests,
    )
    return run.run()


def _fail(message: str) -> int:
    print(f"testbed sweep: {message}", file=sys.stderr)
    return 2
