"""The CPU exporter of a monitored landscape: every watched process's CPU, budget and throttling.

    python -m testbed.landscape.cpu_exporter --processes cpu-processes.json --port 9100

At each scrape it reads the list of watched processes (`monitor.py`; a run adds the load
generator's while it runs) and, for each, the kernel's counters of its budget's cgroup (usage,
scheduling periods, throttled periods and time), or without a cgroup the CPU time of its process
tree (psutil: the live members plus the children they have waited for).
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from testbed.landscape.budgets import BudgetError, read_usage
from testbed.landscape.monitor import WatchedProcess, read_watched

LABELS = ["tier", "process"]


class CpuCollector(Collector):
    """Collect the CPU figures of the processes listed in `path`, read afresh at each scrape."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        used = CounterMetricFamily(
            "testbed_tier_cpu_seconds", "CPU time the process (its cgroup, else its tree) used", labels=LABELS
        )
        budget = GaugeMetricFamily(
            "testbed_tier_cpu_budget_cores", "Cores the process may use (its CPU budget)", labels=LABELS
        )
        periods = CounterMetricFamily(
            "testbed_tier_cpu_periods", "Scheduling periods in which the budget's cgroup ran", labels=LABELS
        )
        throttled = CounterMetricFamily(
            "testbed_tier_cpu_throttled_periods",
            "Periods in which the cgroup used up its quota and was held back",
            labels=LABELS,
        )
        throttled_s = CounterMetricFamily(
            "testbed_tier_cpu_throttled_seconds", "Time the cgroup's processes were held back", labels=LABELS
        )
        try:
            watched = read_watched(self.path)
        except (OSError, ValueError):
            watched = []
        for process in watched:
            labels = [process.tier, process.process]
            if process.budget_cores is not None:
                budget.add_metric(labels, process.budget_cores)
            if process.group is not None:
                try:
                    usage = read_usage(process.group)
                except BudgetError:
                    continue  # removed under us: the landscape is going down
                used.add_metric(labels, usage.used_s)
                periods.add_metric(labels, usage.periods)
                throttled.add_metric(labels, usage.throttled_periods)
                throttled_s.add_metric(labels, usage.throttled_s)
            elif (seconds := tree_cpu_seconds(process)) is not None:
                used.add_metric(labels, seconds)
        yield from (used, budget, periods, throttled, throttled_s)


def tree_cpu_seconds(process: WatchedProcess) -> float | None:
    """User and system time of the process, its waited-for children and its live descendants."""
    try:
        root = psutil.Process(process.pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            try:
                child_times = child.cpu_times()
            except psutil.Error:
                continue
            total += child_times.user + child_times.system
    except psutil.Error:
        return None
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m testbed.landscape.cpu_exporter", description=__doc__)
    parser.add_argument("--processes", type=Path, required=True, help="the watched processes (JSON)")
    parser.add_argument("--port", type=int, required=True, help="loopback port of /metrics")
    args = parser.parse_args(argv)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CpuCollector(args.processes))
    start_http_server(args.port, addr="127.0.0.1", registry=registry)
    threading.Event().wait()


if __name__ == "__main__":
    main()
