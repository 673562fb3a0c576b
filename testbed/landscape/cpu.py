"""CPU limits of a landscape: cgroup v2 `cpu.max` per node where writable, else CPU affinity.

The plan splits the cores this process may use into the landscape's cores and the load
generator's, so load and system under test do not compete; each node gets its limit either as a
CPU bandwidth quota (cgroup v2) or as whole cores of the landscape's share (affinity).
"""

from __future__ import annotations

import contextlib
import math
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from scenarios.landscape import LandscapeProfile

CPU_PERIOD_US = 100_000


class CpuPlanError(Exception):
    """The profile asks for cores this machine does not give this process."""


@dataclass(frozen=True)
class CpuPlan:
    """Which cores run the landscape and the load generator, and each node's limit."""

    landscape_cores: tuple[int, ...]
    load_generator_cores: tuple[int, ...]
    node_cores: tuple[tuple[int, ...], ...]
    node_quota_cores: float | None
    warnings: tuple[str, ...]

    @property
    def cores_given_to_nodes(self) -> float:
        cores = len(set().union(*self.node_cores)) if self.node_cores else 0
        if self.node_quota_cores is not None:
            return min(float(cores), self.node_quota_cores * len(self.node_cores))
        return float(cores)


def plan_cpus(profile: LandscapeProfile, available: set[int] | None = None) -> CpuPlan:
    """Split the available cores; flag a profile whose node workers outnumber the cores they get."""
    usable = sorted(available if available is not None else os.sched_getaffinity(0))
    missing = sorted(set(profile.cpu.landscape_cores + profile.cpu.load_generator_cores) - set(usable))
    if missing:
        raise CpuPlanError(
            f"{profile.source}: cpu.landscape_cores / cpu.load_generator_cores name core(s) "
            f"{', '.join(map(str, missing))}, but this process may use only {', '.join(map(str, usable))}"
        )
    load_generator = profile.cpu.load_generator_cores
    if not load_generator and profile.cpu.landscape_cores:
        load_generator = tuple(core for core in usable if core not in profile.cpu.landscape_cores)
    elif not load_generator and len(usable) > 1:
        # The last core is the load generator's: it never competes with the nodes it measures.
        load_generator = (usable[-1],)
    landscape = profile.cpu.landscape_cores or tuple(core for core in usable if core not in load_generator)
    if not landscape:
        raise CpuPlanError(f"{profile.source}: cpu.load_generator_cores leaves no core for the landscape")
    per_node = len(landscape)
    if profile.nodes.cpu_limit is not None:
        per_node = min(len(landscape), max(1, math.ceil(profile.nodes.cpu_limit)))
    node_cores = tuple(
        tuple(landscape[(index * per_node + offset) % len(landscape)] for offset in range(per_node))
        for index in range(profile.nodes.count)
    )
    plan = CpuPlan(tuple(landscape), tuple(load_generator), node_cores, profile.nodes.cpu_limit, ())
    warnings = []
    if profile.total_node_workers > plan.cores_given_to_nodes:
        warnings.append(
            f"{profile.source}: nodes.count {profile.nodes.count} x nodes.workers {profile.nodes.workers} = "
            f"{profile.total_node_workers} workers on {plan.cores_given_to_nodes:g} core(s) "
            "(cpu.landscape_cores, nodes.cpu_limit): CPU-bound figures will measure contention"
        )
    if not load_generator:
        warnings.append("only one core: the load generator shares it with the landscape")
    return CpuPlan(
        plan.landscape_cores, plan.load_generator_cores, node_cores, profile.nodes.cpu_limit, tuple(warnings)
    )


def cgroup_v2_base() -> Path | None:
    """This process's cgroup v2 directory when the cpu controller can be used below it, else None."""
    mount = _cgroup2_mount()
    if mount is None:
        return None
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    relative = next((line[3:] for line in lines if line.startswith("0::")), None)
    if relative is None:
        return None
    base = mount / relative.lstrip("/")
    try:
        controllers = (base / "cgroup.controllers").read_text().split()
    except OSError:
        return None
    return base if "cpu" in controllers else None


def make_cpu_cgroup(base: Path, name: str, cores: float) -> Path | None:
    """Create a child cgroup with `cpu.max` = `cores` worth of CPU time; None when not writable."""
    group = base / name
    try:
        subtree = base / "cgroup.subtree_control"
        if "cpu" not in subtree.read_text().split():
            subtree.write_text("+cpu")
        group.mkdir(exist_ok=True)
        (group / "cpu.max").write_text(f"{max(1000, int(cores * CPU_PERIOD_US))} {CPU_PERIOD_US}")
    except OSError:
        remove_cgroup(group)
        return None
    return group


def remove_cgroup(group: Path) -> None:
    """Remove an empty cgroup (the kernel refuses while processes remain, so stop them first)."""
    with contextlib.suppress(OSError):
        group.rmdir()


def unique_cgroup_name(landscape_id: str, role: str) -> str:
    return f"testbed-{landscape_id}-{role}-{uuid.uuid4().hex[:6]}"


def confine(cores: tuple[int, ...], cgroup: Path | None) -> Callable[[], None]:
    """What a child runs before exec: join its cgroup (if any) and keep to its cores."""

    def in_child() -> None:
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))
        if cores:
            os.sched_setaffinity(0, cores)

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


def _cgroup2_mount() -> Path | None:
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        before, _, after = line.partition(" - ")
        if after.split(" ", 1)[0] == "cgroup2":
            return Path(before.split()[4])
    return None
