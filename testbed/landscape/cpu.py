"""The CPU plan of a landscape: cores for the landscape and for the load generator, a budget per process.

The plan splits the cores this process may use into the landscape's and the load generator's, so
load and system under test do not compete. Every process with a `cpu_limit` gets its budget held
by the kernel: a cgroup of its own, v2 `cpu.max` where a v2 hierarchy offers the cpu controller,
else v1 `cpu.cfs_quota_us` (`budgets.py`). Only where neither is writable is a budget held by CPU
affinity to whole cores of the landscape's share, and the plan says so in a warning. The budgets
must fit the landscape's cores: a profile asking for more is refused, every problem at once.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from scenarios.landscape import LandscapeProfile
from scenarios.reader import ConfigError
from testbed.landscape import budgets
from testbed.landscape.budgets import AFFINITY, CgroupHierarchy, CpuGroup, find_hierarchy

# How many processes of a tier there are, by the option that counts them.
_COUNT_OPTIONS = {
    "nodes.cpu_limit": "nodes.count",
    "gateway.cpu_limit": "gateway.instances",
    "worker.cpu_limit": "worker.replicas",
    "database.replica_cpu_limit": "database.replicas",
}


class CpuPlanError(ConfigError):
    """The profile asks for cores or budgets this machine does not give this process."""


@dataclass(frozen=True)
class PlannedProcess:
    """A landscape process: the cores it keeps to, its budget and what holds the budget."""

    role: str
    tier: str
    option: str
    cpu_limit: float | None
    cores: tuple[int, ...]
    # budgets.CGROUP_V2, budgets.CGROUP_V1 or budgets.AFFINITY; "" without a budget.
    mechanism: str

    @property
    def limit_cores(self) -> float:
        """What it may use: its budget under a cgroup, its whole cores under affinity (NaN: no budget)."""
        if self.cpu_limit is None:
            return math.nan
        return float(len(self.cores)) if self.mechanism == AFFINITY else self.cpu_limit


@dataclass(frozen=True)
class CpuPlan:
    """Which cores run the landscape and the load generator, and every process's budget."""

    landscape_cores: tuple[int, ...]
    load_generator_cores: tuple[int, ...]
    period_us: int
    processes: tuple[PlannedProcess, ...]
    warnings: tuple[str, ...]
    # Where the budgets' cgroups are made; None: no budget, or affinity holds them.
    hierarchy: CgroupHierarchy | None = field(default=None, compare=False)

    @property
    def mechanism(self) -> str:
        """What holds the budgets: a cgroup hierarchy, affinity, or "" when there is no budget."""
        if not self.budgeted:
            return ""
        return self.hierarchy.mechanism if self.hierarchy is not None else AFFINITY

    @property
    def budgeted(self) -> tuple[PlannedProcess, ...]:
        return tuple(process for process in self.processes if process.cpu_limit is not None)

    @property
    def budget_total_cores(self) -> float:
        return sum(process.cpu_limit or 0.0 for process in self.processes)

    def process(self, role: str) -> PlannedProcess | None:
        return next((process for process in self.processes if process.role == role), None)

    def cores_of(self, role: str) -> tuple[int, ...]:
        """The cores a process keeps to (a one-shot process like the migration: the landscape's)."""
        planned = self.process(role)
        return planned.cores if planned is not None else self.landscape_cores


def plan_cpus(
    profile: LandscapeProfile,
    available: set[int] | None = None,
    find: Callable[[], CgroupHierarchy | None] = find_hierarchy,
) -> CpuPlan:
    """Split the available cores, plan every budget; refuse budgets beyond the landscape's cores."""
    usable = sorted(available if available is not None else os.sched_getaffinity(0))
    landscape, load_generator, problems = _split_cores(profile, usable)
    if not problems:
        total = sum(process.cpu_limit or 0.0 for process in profile.processes())
        if total > len(landscape) + 1e-9:
            problems.append(_budgets_beyond(profile, total, landscape, load_generator))
    if problems:
        raise CpuPlanError(problems)
    budgeted = [process for process in profile.processes() if process.cpu_limit is not None]
    hierarchy = find() if budgeted else None
    planned = []
    next_core = 0
    for process in profile.processes():
        cores, mechanism = landscape, ""
        if process.cpu_limit is not None and hierarchy is not None:
            mechanism = hierarchy.mechanism
        elif process.cpu_limit is not None:
            # Affinity: whole cores of the landscape's share, handed out round-robin.
            count = min(len(landscape), max(1, math.ceil(process.cpu_limit)))
            cores = tuple(
                sorted({landscape[(next_core + offset) % len(landscape)] for offset in range(count)})
            )
            next_core += count
            mechanism = AFFINITY
        planned.append(
            PlannedProcess(process.role, process.tier, process.option, process.cpu_limit, cores, mechanism)
        )
    plan = CpuPlan(
        landscape_cores=landscape,
        load_generator_cores=load_generator,
        period_us=profile.cpu.period_ms * 1000,
        processes=tuple(planned),
        warnings=(),
        hierarchy=hierarchy,
    )
    return dataclasses.replace(plan, warnings=tuple(_warnings(profile, plan)))


def budget_table(plan: CpuPlan) -> list[str]:
    """The budget plan as aligned lines: tier, processes, budget, mechanism, period; then the rest."""
    rows = [("tier", "processes", "budget (cores)", "mechanism", "period")]
    period = f"{plan.period_us / 1000:g} ms"
    tiers: dict[tuple[str, str], list[PlannedProcess]] = {}
    for process in plan.budgeted:
        tiers.setdefault((process.tier, process.option), []).append(process)
    for (tier, option), processes in tiers.items():
        cores = processes[0].cpu_limit or 0.0
        budget = f"{cores:g}" if len(processes) == 1 else f"{cores:g} each, {cores * len(processes):g} in all"
        roles = ", ".join(process.role for process in processes)
        rows.append((tier, roles, f"{budget} ({option})", processes[0].mechanism, period))
    available = len(plan.landscape_cores)
    rows.append(("total", "", f"{plan.budget_total_cores:g} of {available} core(s)", "", ""))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    if len(rows) == 2:
        lines = ["no CPU budgets: every process shares the landscape's cores"]
    if unbudgeted := [process.role for process in plan.processes if process.cpu_limit is None]:
        lines.append(f"without a budget (sharing the landscape's cores): {', '.join(unbudgeted)}")
    return lines


def _split_cores(
    profile: LandscapeProfile, usable: Sequence[int]
) -> tuple[tuple[int, ...], tuple[int, ...], list[str]]:
    """The landscape's cores and the load generator's (by default the last core), with any problems."""
    problems = []
    missing = sorted(set(profile.cpu.landscape_cores + profile.cpu.load_generator_cores) - set(usable))
    if missing:
        problems.append(
            f"{profile.source}: cpu.landscape_cores / cpu.load_generator_cores name core(s) "
            f"{', '.join(map(str, missing))}, but this process may use only {', '.join(map(str, usable))}"
        )
    load_generator = profile.cpu.load_generator_cores
    if not load_generator and profile.cpu.landscape_cores:
        load_generator = tuple(core for core in usable if core not in profile.cpu.landscape_cores)
    elif not load_generator and len(usable) > 1:
        # The last core is the load generator's: it never competes with the landscape it measures.
        load_generator = (usable[-1],)
    landscape = profile.cpu.landscape_cores or tuple(core for core in usable if core not in load_generator)
    if not landscape:
        problems.append(f"{profile.source}: cpu.load_generator_cores leaves no core for the landscape")
    return tuple(landscape), tuple(load_generator), problems


def _budgets_beyond(
    profile: LandscapeProfile, total: float, landscape: Sequence[int], load_generator: Sequence[int]
) -> str:
    """Say that the budgets exceed the landscape's cores, with every budget and the options to change."""
    counts: dict[str, int] = {}
    cores: dict[str, float] = {}
    for process in profile.processes():
        if process.cpu_limit is not None:
            counts[process.option] = counts.get(process.option, 0) + 1
            cores[process.option] = process.cpu_limit
    terms = [
        f"{_COUNT_OPTIONS[option]} {count} x {option} {cores[option]:g}"
        if option in _COUNT_OPTIONS
        else f"{option} {cores[option]:g}"
        for option, count in counts.items()
    ]
    generator = (
        f"; core(s) {', '.join(map(str, load_generator))} are the load generator's" if load_generator else ""
    )
    return (
        f"{profile.source}: the CPU budgets add up to {total:g} cores ({' + '.join(terms)}), but the "
        f"landscape has {len(landscape)} core(s) (core(s) {', '.join(map(str, landscape))}{generator}); "
        f"lower {', '.join(counts)}, or give the landscape more cores (cpu.landscape_cores, "
        "cpu.load_generator_cores)"
    )


def _warnings(profile: LandscapeProfile, plan: CpuPlan) -> Iterator[str]:
    if plan.mechanism == AFFINITY:
        held = ", ".join(
            f"{process.role} {process.cpu_limit:g} -> core(s) {', '.join(map(str, process.cores))}"
            for process in plan.budgeted
        )
        yield (
            f"{profile.source}: no cgroup hierarchy with the cpu controller is writable here, so CPU "
            f"affinity to whole cores holds the budgets ({held}): a budget below one core is not enforced"
        )
    if profile.nodes.cpu_limit is None and profile.total_node_workers > len(plan.landscape_cores):
        yield (
            f"{profile.source}: nodes.count {profile.nodes.count} x nodes.workers {profile.nodes.workers} = "
            f"{profile.total_node_workers} workers on {len(plan.landscape_cores)} core(s) without a budget "
            "(cpu.landscape_cores, nodes.cpu_limit): CPU-bound figures will measure contention"
        )
    if not plan.load_generator_cores:
        yield "only one core: the load generator shares it with the landscape"


def confine(
    cores: Sequence[int], groups: Sequence[CpuGroup] = (), account: tuple[int, int] | None = None
) -> Callable[[], None]:
    """What a child runs before exec: join its CPU groups, keep to its cores, become `account`.

    In the child, so nothing it starts (gunicorn's workers, PostgreSQL's backends) runs outside
    its group for an instant. `account` (uid, gid) comes last: joining a group needs root.
    """
    pinned = tuple(cores)

    def in_child() -> None:
        for group in groups:
            budgets.join(group)
        if pinned:
            os.sched_setaffinity(0, pinned)
        if account is not None:
            uid, gid = account
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)

    return in_child


def pin_load_generator(cores: Iterable[int]) -> None:
    """Keep the calling process (the load generator) to its cores, apart from the landscape's."""
    if cores := tuple(cores):
        os.sched_setaffinity(0, cores)


@contextmanager
def load_generator_pinned(cores: Iterable[int]) -> Iterator[None]:
    """Pin the calling process to the load generator's cores for a block, then restore it."""
    before = os.sched_getaffinity(0)
    pin_load_generator(cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
