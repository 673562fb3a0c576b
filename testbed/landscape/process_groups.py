"""The process groups of a landscape: who is alive, who carries its marker, and signals to them.

Every process `up` starts carries `MARKER` in its environment, so `down` finds a process that
was started in the instant before `up` could record it. A recorded leader is told from a reused
PID by its start time.
"""

from __future__ import annotations

import contextlib
import math
import os

import psutil

MARKER = "TESTBED_LANDSCAPE_ID"
_GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def started_at_s(pid: int) -> float | None:
    """When the process started (seconds since the epoch), or None when it is gone."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def is_same_process(pid: int, recorded_started_at_s: float) -> bool | None:
    """Whether `pid` is still the process recorded with that start time; None when it is gone."""
    started = started_at_s(pid)
    if started is None:
        return None
    # Start times count in clock ticks (10 ms): a reused PID starts ticks later.
    return math.isclose(started, recorded_started_at_s, abs_tol=0.005)


def marked_processes(landscape_id: str) -> list[int]:
    """Living processes carrying this landscape's marker in their environment."""
    found = []
    # Another user's environment is unreadable (None); such a process was not started by us.
    for process in psutil.process_iter(["environ", "status"]):
        environ = process.info["environ"] or {}
        if environ.get(MARKER) == landscape_id and process.info["status"] not in _GONE:
            found.append(process.pid)
    return found


def group_members(pgid: int) -> list[int]:
    """Living members of the process group `pgid`."""
    members = []
    for process in psutil.process_iter(["status"]):
        if process.info["status"] in _GONE:
            continue
        with contextlib.suppress(OSError):
            if os.getpgid(process.pid) == pgid:
                members.append(process.pid)
    return members


def group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def signal_group(pgid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, number)


def signal_process(pid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, number)
