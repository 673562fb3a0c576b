"""`make bench-capacity`: a landscape's capacity with one node and with two, side by side.

A command, not a test: it prints its figures with the machine, versions and settings it ran on.
Each search is `testbed capacity` (docs/capacity.md) on the same profile, scenario and options,
once with `nodes.count=1` and once with `nodes.count=2` (behind one gateway either way, so both
are measured through the same path), alternating (1, 2, 1, 2, ...) so the machine's drift falls
on both alike; `--repeats` searches of each give the spread. Per search:
the capacity (requests/s and scenario multiplier, or why there is none), its limiting tier, the
steps and the wall time; then per node count the median and range, and the ratio of the medians
with whether the two ranges overlap (a difference inside the spread is no difference).

    make bench-capacity BENCH_ARGS="--option database.cpu_limit=0.1 --repeats 3"
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from reports.capacity import BRACKETED, LOWER_BOUND, CapacityReport, build_capacity_report
from testbed.processes import REPOSITORY, run_to_its_end
from testbed.run.commands import stop_on_signals

HEADER = "nodes search     req/s multiplier limited by steps  wall s"
# One node and two are measured through the same path: a gateway in front of either (a profile
# without one would send the load of one node to it directly). `--option` can change it.
SAME_PATH = ("gateway.instances=1",)


@dataclass(frozen=True)
class Search:
    """One finished search (report None: it failed; see its log)."""

    nodes: int
    repeat: int
    exit_code: int
    wall_s: float
    log: Path
    report: CapacityReport | None

    @property
    def capacity_per_s(self) -> float | None:
        """The bracketed capacity in requests/s (None: a lower bound or none)."""
        if self.report is None or self.report.conclusion.status != BRACKETED:
            return None
        return self.report.capacity_requests_per_s

    def row(self) -> str:
        if self.report is None:
            return f"{self.nodes:>5} {self.repeat:>6}  failed (exit {self.exit_code}); see {self.log}"
        conclusion = self.report.conclusion
        bad = self.report.bad
        tier = (str(bad["first_saturated_tier"]) or "none named") if bad is not None else "-"
        if conclusion.status == BRACKETED:
            capacity = f"{self.report.capacity_requests_per_s:9.1f}"
        elif conclusion.status == LOWER_BOUND:
            capacity = f">={self.report.capacity_requests_per_s:7.1f}"
        else:
            capacity = f"{'none':>9}"
        multiplier = f"{conclusion.capacity_multiplier:g}" if conclusion.capacity_multiplier else "-"
        return (
            f"{self.nodes:>5} {self.repeat:>6} {capacity} {multiplier:>10} {tier:<10} "
            f"{len(self.report.steps):>5} {self.wall_s:>7.0f}  {conclusion.reason}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = Path(args.out or REPOSITORY / "var" / "bench-capacity" / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
    out.mkdir(parents=True, exist_ok=True)
    _print_header(args, out)
    stop_on_signals()
    searches: list[Search] = []
    try:
        for repeat in range(1, args.repeats + 1):
            for nodes in args.nodes:
                searches.append(_search(args, nodes, repeat, out))
                print(searches[-1].row(), flush=True)
    except KeyboardInterrupt:
        # The search in progress has taken its landscape down (run_to_its_end waited for it).
        print(f"interrupted; the landscape is down. the finished searches: {len(searches)}", flush=True)
        print(_table(searches))
        return 130
    print(_table(searches))
    print(_summary(searches, args.nodes))
    print(f"\nresults: {out}")
    return 1 if any(search.report is None for search in searches) else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench-capacity", description=(__doc__ or "").splitlines()[0])
    # Every tier on its own CPU budget and the landscape's own PostgreSQL server, so a node's share is
    # its own (docs/capacity.md); `dev` cannot be compared: one SQLite file serves one node.
    parser.add_argument("--profile", default="capacity", help="landscape profile (default capacity)")
    parser.add_argument("--scenario", default="production-mix", help="scenario (default production-mix)")
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2], help="node counts (default 1 2)")
    parser.add_argument("--repeats", type=int, default=3, help="searches per node count (default 3)")
    # The production mix's scenario 09 runs one sync per second for each of the light pool's 32
    # connectors; the test pool's 6 would each sync five times a second, and their syncs queue
    # for the connector (measured: 482 of 2,560 starts dropped at multiplier 4, no tier saturated).
    parser.add_argument("--pool", default="light", help="identity pool (default light)")
    # Short enough that a search stays under about 6 minutes on two busy cores (measured: 8 steps of
    # 15 + 5 s took 297-341 s, 10 steps 418 s), long enough for a p90 of the mix's busiest routes.
    parser.add_argument("--step-s", type=float, default=15.0, help="measured window per step (default 15)")
    parser.add_argument("--warm-up-s", type=float, default=5.0, help="warm-up per step (default 5)")
    parser.add_argument("--resolution", type=float, default=0.05, help="(bad - good) / good (default 0.05)")
    parser.add_argument("--max-steps", type=int, default=8, help="steps per search at most (default 8)")
    parser.add_argument("--start-multiplier", type=float, help="first step (default the scenario's)")
    parser.add_argument("--load-processes", type=int, help="Locust workers (default one per generator core)")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="TABLE.KEY=VALUE",
        help="a profile change for every search, e.g. database.cpu_limit=0.1",
    )
    parser.add_argument("--out", default="", help="results directory (default var/bench-capacity/<time>)")
    return parser


def _print_header(args: argparse.Namespace, out: Path) -> None:
    print("== bench-capacity ==")
    print(f"date:     {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"machine:  {platform.platform()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    print(f"python:   {platform.python_version()}; locust {metadata.version('locust')}")
    options = " ".join(f"--option {option}" for option in (*SAME_PATH, *args.option))
    print(
        f"settings: profile {args.profile}, options {options}, scenario {args.scenario}, pool {args.pool}, "
        f"nodes {' and '.join(map(str, args.nodes))}, {args.repeats} search(es) each, steps of "
        f"{args.step_s:g} s after a {args.warm_up_s:g} s warm-up, resolution {args.resolution:g}, "
        f"at most {args.max_steps} steps"
    )
    print(f"output:   {out}\n")
    print(HEADER, flush=True)


def _search(args: argparse.Namespace, nodes: int, repeat: int, out: Path) -> Search:
    results = out / f"nodes{nodes}-search{repeat}"
    results.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "testbed.cli", "capacity", "--profile", args.profile]
    command += ["--scenario", args.scenario, "--pool", args.pool, "--results", str(results)]
    command += ["--step-s", f"{args.step_s:g}", "--warm-up-s", f"{args.warm_up_s:g}"]
    command += ["--resolution", f"{args.resolution:g}", "--max-steps", str(args.max_steps)]
    if args.start_multiplier is not None:
        command += ["--start-multiplier", f"{args.start_multiplier:g}"]
    if args.load_processes is not None:
        command += ["--load-processes", str(args.load_processes)]
    for option in [*SAME_PATH, *args.option, f"nodes.count={nodes}"]:
        command += ["--option", option]
    env = {key: value for key, value in os.environ.items() if not key.startswith("BACKBONE_")}
    log = results / "capacity.log"
    started = time.monotonic()
    with log.open("wb") as output:
        exit_code = run_to_its_end(command, cwd=REPOSITORY, env=env, output=output)
    wall_s = time.monotonic() - started
    directories = [path for path in results.iterdir() if path.is_dir()]
    report = None
    if exit_code in (0, 1) and len(directories) == 1:
        report = build_capacity_report(directories[0])
    return Search(nodes, repeat, exit_code, wall_s, log, report)


def _table(searches: list[Search]) -> str:
    return "\n".join(["", HEADER, "-" * len(HEADER), *(search.row() for search in searches)])


def _summary(searches: list[Search], node_counts: Sequence[int]) -> str:
    lines = ["", "per node count (bracketed capacities only):"]
    ranges: dict[int, tuple[float, float, float]] = {}
    for nodes in node_counts:
        mine = [search for search in searches if search.nodes == nodes]
        capacities = [value for search in mine if (value := search.capacity_per_s) is not None]
        tiers = sorted(
            {
                str(search.report.bad["first_saturated_tier"]) or "none named"
                for search in mine
                if search.report is not None and search.report.bad is not None
            }
        )
        walls = [search.wall_s for search in mine]
        if not capacities:
            lines.append(f"  {nodes} node(s): no bracketed capacity in {len(mine)} search(es)")
            continue
        ranges[nodes] = (statistics.median(capacities), min(capacities), max(capacities))
        median, low, high = ranges[nodes]
        lines.append(
            f"  {nodes} node(s): median {median:.1f} requests/s (min {low:.1f}, max {high:.1f}, "
            f"{len(capacities)} of {len(mine)} searches); limiting tier(s) {', '.join(tiers) or '-'}; "
            f"wall time per search {min(walls):.0f}-{max(walls):.0f} s"
        )
    if len(ranges) >= 2:
        (first, (median_a, low_a, high_a)), (second, (median_b, low_b, high_b)) = list(ranges.items())[:2]
        overlap = max(low_a, low_b) <= min(high_a, high_b)
        lines.append(
            f"  {second} / {first} node(s): {median_b / median_a:.2f} x the median capacity "
            f"({median_b / median_a - 1:+.1%}); "
            + ("inside the spread of the searches (the ranges overlap)" if overlap else "outside the spread")
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
