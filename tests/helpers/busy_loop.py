"""A busy loop inside a CPU budget's cgroup, measured by the group's own counters."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass

from testbed.landscape import budgets
from testbed.landscape.budgets import CpuGroup
from testbed.landscape.cpu import confine

SETTLE_S = 0.5


@dataclass(frozen=True)
class BusyLoopUse:
    """What the group used while the loop ran: cores, quota periods, throttled periods and time."""

    cores: float
    periods: int
    throttled_periods: int
    throttled_s: float
    pids: tuple[int, ...]
    loop_pid: int


def busy_loop_in(group: CpuGroup, measure_s: float = 3.0) -> BusyLoopUse:
    """Run `while True: pass` in the group (joined in its fork hook) and read the group around it."""
    busy = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"], preexec_fn=confine((), (group,)), start_new_session=True
    )
    try:
        time.sleep(SETTLE_S)  # past the first periods
        before, started = budgets.read_usage(group), time.monotonic()
        time.sleep(measure_s)
        after, elapsed_s = budgets.read_usage(group), time.monotonic() - started
        pids = tuple(budgets.group_pids(group))
    finally:
        busy.kill()
        busy.wait()
    return BusyLoopUse(
        cores=(after.used_s - before.used_s) / elapsed_s,
        periods=after.periods - before.periods,
        throttled_periods=after.throttled_periods - before.throttled_periods,
        throttled_s=after.throttled_s - before.throttled_s,
        pids=pids,
        loop_pid=busy.pid,
    )
