"""CPU budgets the kernel holds: one cgroup per budgeted process, v2 or v1, behind one interface.

    hierarchy = find_hierarchy()                 # cgroup v2 with the cpu controller, else v1, else None
    group = hierarchy.group(name, role, cores=0.25, period_us=100_000)     # where it will be
    create(group)          # make it, without a quota yet (record `group` first: `remove` undoes it)
    join(group)            # in the child before exec (a fork hook): its children inherit the group
    enforce(group)         # write the quota: `cores` x period of CPU time per period
    lift(group)            # take it away again (before stopping its processes)
    read_usage(group)      # CPU time used, quota periods, throttled periods and time
    remove(group)          # once its processes have stopped

cgroup v2 keeps quota and usage in one directory (`cpu.max`, `cpu.stat`). cgroup v1 keeps the
quota in the `cpu` hierarchy (`cpu.cfs_period_us`, `cpu.cfs_quota_us`, throttling in `cpu.stat`,
nanoseconds) and the usage in the `cpuacct` hierarchy (`cpuacct.usage`, nanoseconds); where they
are mounted apart, a group is a pair of twin directories and a process joins both.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

CGROUP_V2 = "cgroup v2"
CGROUP_V1 = "cgroup v1"
AFFINITY = "affinity"
# The kernel's smallest quota per period (cgroup v1 and v2 alike); profiles keep above it.
MIN_QUOTA_US = 1_000
# Where a process's cgroups are described (a fake directory in tests).
PROC_SELF = Path("/proc/self")


class BudgetError(Exception):
    """A cgroup cannot be made, joined or read; the message names the file and the reason."""


@dataclass(frozen=True)
class CpuGroup:
    """One process's CPU budget as the kernel holds it; recorded in the landscape's state file."""

    role: str
    mechanism: str  # CGROUP_V2 or CGROUP_V1
    cores: float
    period_us: int
    # v2: the group; v1: the `cpu` group, then its `cpuacct` twin (one when they share a mount).
    directories: tuple[str, ...]

    @property
    def quota_us(self) -> int:
        return max(MIN_QUOTA_US, round(self.cores * self.period_us))


@dataclass(frozen=True)
class CpuUsage:
    """A group's counters since it was made: CPU time used, and how often the quota stopped it."""

    used_s: float
    periods: int
    throttled_periods: int
    throttled_s: float


class CgroupHierarchy(Protocol):
    """Where this process may make CPU groups: the parent directory (or directories) of its own."""

    @property
    def mechanism(self) -> str: ...

    @property
    def where(self) -> str: ...

    def group(self, name: str, role: str, cores: float, period_us: int) -> CpuGroup: ...


@dataclass(frozen=True)
class CgroupV2:
    """A cgroup v2 directory whose `cpu` controller its children may use."""

    base: Path

    @property
    def mechanism(self) -> str:
        return CGROUP_V2

    @property
    def where(self) -> str:
        return f"cpu.max under {self.base}"

    def group(self, name: str, role: str, cores: float, period_us: int) -> CpuGroup:
        return CpuGroup(role, CGROUP_V2, cores, period_us, (str(self.base / name),))


@dataclass(frozen=True)
class CgroupV1:
    """cgroup v1: a `cpu` hierarchy for the quota and a `cpuacct` one for the usage (maybe the same)."""

    cpu_base: Path
    cpuacct_base: Path

    @property
    def mechanism(self) -> str:
        return CGROUP_V1

    @property
    def where(self) -> str:
        return f"cpu.cfs_quota_us under {self.cpu_base}, cpuacct.usage under {self.cpuacct_base}"

    def group(self, name: str, role: str, cores: float, period_us: int) -> CpuGroup:
        directories = dict.fromkeys((str(self.cpu_base / name), str(self.cpuacct_base / name)))
        return CpuGroup(role, CGROUP_V1, cores, period_us, tuple(directories))


def find_hierarchy(proc: Path = PROC_SELF) -> CgroupHierarchy | None:
    """cgroup v2 where its cpu controller reaches this process's group, else v1, else None."""
    mounts = _mounts(proc)
    memberships = _memberships(proc)
    if (v2 := _v2(mounts, memberships)) is not None:
        return v2
    return _v1(mounts, memberships)


def create(group: CpuGroup) -> None:
    """Make the group's directories, without a quota yet (`enforce` writes it)."""
    first = Path(group.directories[0])
    try:
        if group.mechanism == CGROUP_V2:
            subtree = first.parent / "cgroup.subtree_control"
            if "cpu" not in subtree.read_text().split():
                subtree.write_text("+cpu")
        for directory in group.directories:
            Path(directory).mkdir(exist_ok=True)
        if group.mechanism == CGROUP_V2:
            (first / "cpu.max").write_text(f"max {group.period_us}")
        else:
            (first / "cpu.cfs_period_us").write_text(str(group.period_us))
            (first / "cpu.cfs_quota_us").write_text("-1")
    except OSError as error:
        raise BudgetError(f"cannot make the cgroup {first}: {error.strerror}") from None


def join(group: CpuGroup) -> None:
    """Move the calling process into the group (a fork hook runs this in the child before exec)."""
    add_pid(group, os.getpid())


def add_pid(group: CpuGroup, pid: int) -> None:
    """Move a process into the group; its threads and later children come along."""
    for directory in group.directories:
        try:
            (Path(directory) / "cgroup.procs").write_text(str(pid))
        except OSError as error:
            raise BudgetError(f"cannot move process {pid} into {directory}: {error.strerror}") from None


def enforce(group: CpuGroup) -> None:
    """Write the group's quota: from now on its processes get `cores` x period per period."""
    quota = Path(group.directories[0])
    try:
        if group.mechanism == CGROUP_V2:
            (quota / "cpu.max").write_text(f"{group.quota_us} {group.period_us}")
        else:
            (quota / "cpu.cfs_period_us").write_text(str(group.period_us))
            (quota / "cpu.cfs_quota_us").write_text(str(group.quota_us))
    except OSError as error:
        raise BudgetError(f"cannot set the CPU quota of {quota}: {error.strerror}") from None


def lift(group: CpuGroup) -> None:
    """Take the quota away again (before stopping: a 0.05-core budget stretches a shutdown to seconds)."""
    quota = Path(group.directories[0])
    try:
        if group.mechanism == CGROUP_V2:
            (quota / "cpu.max").write_text(f"max {group.period_us}")
        else:
            (quota / "cpu.cfs_quota_us").write_text("-1")
    except FileNotFoundError:
        pass  # never made: `up` stopped before it
    except OSError as error:
        raise BudgetError(f"cannot lift the CPU quota of {quota}: {error.strerror}") from None


def read_usage(group: CpuGroup) -> CpuUsage:
    """The group's counters: CPU time used since it was made, quota periods, throttling."""
    quota = Path(group.directories[0])
    try:
        stat = _keyed(quota / "cpu.stat")
        if group.mechanism == CGROUP_V2:
            return CpuUsage(
                used_s=stat.get("usage_usec", 0) / 1e6,
                periods=stat.get("nr_periods", 0),
                throttled_periods=stat.get("nr_throttled", 0),
                throttled_s=stat.get("throttled_usec", 0) / 1e6,
            )
        used_ns = int((Path(group.directories[-1]) / "cpuacct.usage").read_text())
    except (OSError, ValueError) as error:
        raise BudgetError(f"cannot read the CPU usage of {quota}: {error}") from None
    return CpuUsage(
        used_s=used_ns / 1e9,
        periods=stat.get("nr_periods", 0),
        throttled_periods=stat.get("nr_throttled", 0),
        throttled_s=stat.get("throttled_time", 0) / 1e9,
    )


def group_pids(group: CpuGroup) -> list[int]:
    """The processes in the group now."""
    try:
        text = (Path(group.directories[0]) / "cgroup.procs").read_text()
    except OSError:
        return []
    return [int(line) for line in text.split()]


def remove(group: CpuGroup) -> str | None:
    """Remove the group's directories; return why not (the kernel refuses while processes remain)."""
    for directory in group.directories:
        try:
            Path(directory).rmdir()
        except FileNotFoundError:
            continue
        except OSError as error:
            reason = "processes remain in it" if error.errno == errno.EBUSY else error.strerror
            return f"cgroup {directory} not removed: {reason}"
    return None


def _keyed(path: Path) -> dict[str, int]:
    """A flat-keyed cgroup file (`name value` per line) as integers."""
    values = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            values[name] = int(value)
    return values


@dataclass(frozen=True)
class _Mount:
    point: Path
    root: str
    kind: str  # cgroup or cgroup2
    options: frozenset[str]


def _mounts(proc: Path) -> list[_Mount]:
    try:
        lines = (proc / "mountinfo").read_text().splitlines()
    except OSError:
        return []
    mounts = []
    for line in lines:
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            mounts.append(_Mount(Path(fields[4]), fields[3], tail[0], frozenset(tail[2].split(","))))
    return mounts


def _memberships(proc: Path) -> dict[str, str]:
    """Controller (or "" for v2) -> this process's group path in that hierarchy."""
    try:
        lines = (proc / "cgroup").read_text().splitlines()
    except OSError:
        return {}
    groups = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            groups[controller] = path
    return groups


def _inside(mount: _Mount, path: str) -> Path:
    """The directory of group `path` (as /proc/self/cgroup names it) under the mount."""
    relative = os.path.relpath(path, mount.root) if mount.root != "/" else path.lstrip("/")
    return mount.point if relative in ("", ".") else mount.point / relative


def _v2(mounts: Sequence[_Mount], memberships: dict[str, str]) -> CgroupV2 | None:
    mount = next((mount for mount in mounts if mount.kind == "cgroup2"), None)
    if mount is None or "" not in memberships:
        return None
    own = _inside(mount, memberships[""])
    # cgroup v2 lets a group hand a controller to children only while no process is in it (the
    # root excepted), and this process is in its own group: the budgets go beside it, in its parent.
    base = own if own == mount.point else own.parent
    try:
        controllers = (base / "cgroup.controllers").read_text().split()
    except OSError:
        return None
    if "cpu" not in controllers or not os.access(base, os.W_OK):
        return None
    return CgroupV2(base)


def _v1(mounts: Sequence[_Mount], memberships: dict[str, str]) -> CgroupV1 | None:
    cpu = next((m for m in mounts if m.kind == "cgroup" and "cpu" in m.options), None)
    cpuacct = next((m for m in mounts if m.kind == "cgroup" and "cpuacct" in m.options), None)
    if cpu is None or cpuacct is None or "cpu" not in memberships or "cpuacct" not in memberships:
        return None
    cpu_base = _inside(cpu, memberships["cpu"])
    cpuacct_base = _inside(cpuacct, memberships["cpuacct"])
    usable = (cpu_base / "cpu.cfs_quota_us").exists() and (cpuacct_base / "cpuacct.usage").exists()
    if not usable or not os.access(cpu_base, os.W_OK) or not os.access(cpuacct_base, os.W_OK):
        return None
    return CgroupV1(cpu_base, cpuacct_base)
