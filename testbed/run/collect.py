"""What a run collects into its run directory while the load runs (see reports/rundir.py).

* `MetricsScraper` reads every process's `/metrics` once a second and keeps every sample; a
  server without `/metrics` (PgBouncer's pools, the primary's view of its replicas) is read by a
  `StatisticsReader` into samples of the same shape.
* `ProcessSampler` samples CPU and memory of given processes (with their children: a gunicorn
  master and its workers count as one node) once a second, the load generator included, and the
  kernel's counters of every CPU budget's cgroup (usage, quota periods, throttling).

Each runs in its own thread and writes its table when stopped. The load generator writes the
requests table itself (`loadtests/arrival/request_sink.py`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from reports.rundir import (
    BUDGET_COLUMNS,
    BUDGETS,
    PROCESS_COLUMNS,
    PROCESSES,
    SERIES,
    SERIES_COLUMNS,
    format_labels,
    write_table,
)
from testbed.landscape.budgets import BudgetError, CpuGroup, read_usage

log = logging.getLogger(__name__)
# Long enough for a node whose every worker thread is busy to answer after its queue: a scrape
# that waits is itself the evidence (`scrape_duration_seconds`).
SCRAPE_TIMEOUT_S = 5.0
FLUSH_EVERY_S = 60.0


# One sample as a statistics reader returns it: name, labels, value (base units).
Sample = tuple[str, dict[str, str], float]


@dataclass(frozen=True)
class ScrapeTarget:
    """A process whose `/metrics` the run scrapes, or whose statistics `read` returns as samples."""

    process: str
    tier: str
    url: str
    # Raises OSError when the target cannot be read (counted as a failed scrape, `up` 0).
    read: Callable[[], list[Sample]] | None = field(default=None, compare=False)


class StatisticsReader:
    """Read a PostgreSQL-protocol server's statistics over one connection it keeps (and renews)."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        samples_of: Callable[[psycopg.Connection[Any]], list[Sample]],
    ) -> None:
        self._connect = connect
        self._samples_of = samples_of
        self._connection: psycopg.Connection[Any] | None = None

    def __call__(self) -> list[Sample]:
        try:
            if self._connection is None or self._connection.closed:
                self._connection = self._connect()
            return self._samples_of(self._connection)
        except psycopg.Error as error:
            self.close()
            raise ConnectionError(str(error).strip()) from None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@dataclass(frozen=True)
class SampledProcess:
    """A process (and its children) whose CPU and memory the run samples."""

    process: str
    tier: str
    pid: int
    cpu_limit_cores: float = math.nan


@dataclass(frozen=True)
class SampledGroup:
    """A CPU budget's cgroup whose counters the run samples, with the process and tier it holds."""

    process: str
    tier: str
    group: CpuGroup


def parse_exposition(text: str, t_s: float, process: str, tier: str) -> list[tuple[Any, ...]]:
    """Return the rows of the series table for one scrape (Prometheus text format)."""
    rows = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            rows.append((t_s, process, tier, sample.name, format_labels(sample.labels), float(sample.value)))
    return rows


class _Periodic:
    """Call `tick` every `interval_s` in a daemon thread until stopped, then `finish` once."""

    def __init__(self, interval_s: float, name: str) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking and write what was collected."""
        self._stop.set()
        self._thread.join(timeout=30)
        self.finish()

    def _loop(self) -> None:
        next_s = time.monotonic()
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # a collector must never end the run
                log.exception("collector %s failed a tick", self._thread.name)
            next_s += self.interval_s
            self._stop.wait(max(0.0, next_s - time.monotonic()))

    def tick(self) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError


class MetricsScraper(_Periodic):
    """Scrape every target once a second into `<run>/series/part-NNNN.parquet`."""

    def __init__(self, targets: Sequence[ScrapeTarget], run_dir: Path, interval_s: float = 1.0) -> None:
        super().__init__(interval_s, "metrics-scraper")
        self.targets = list(targets)
        self.run_dir = run_dir
        self.failures: dict[str, int] = {}
        self._rows: list[tuple[Any, ...]] = []
        self._parts = 0
        self._flushed_s = time.monotonic()
        self._lock = threading.Lock()

    def tick(self) -> None:
        for target in self.targets:
            t_s = time.time()
            started = time.perf_counter()
            try:
                rows = self._scrape(target, t_s)
            except OSError:
                self.failures[target.process] = self.failures.get(target.process, 0) + 1
                rows = None
            took_s = time.perf_counter() - started
            up = rows is not None
            rows = rows or []
            # What a Prometheus server records of every scrape, under the same names.
            rows.append((t_s, target.process, target.tier, "up", "", 1.0 if up else 0.0))
            rows.append((t_s, target.process, target.tier, "scrape_duration_seconds", "", took_s))
            with self._lock:
                self._rows.extend(rows)
        if time.monotonic() - self._flushed_s >= FLUSH_EVERY_S:
            self._flush()

    @staticmethod
    def _scrape(target: ScrapeTarget, t_s: float) -> list[tuple[Any, ...]]:
        if target.read is not None:
            return [
                (t_s, target.process, target.tier, name, format_labels(labels), value)
                for name, labels, value in target.read()
            ]
        # The landscape's own loopback URL.
        with urllib.request.urlopen(target.url, timeout=SCRAPE_TIMEOUT_S) as answer:  # noqa: S310
            text = answer.read().decode("utf-8", "replace")
        return parse_exposition(text, t_s, target.process, target.tier)

    def _flush(self) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
        self._flushed_s = time.monotonic()
        if not rows:
            return
        frame = pd.DataFrame(rows, columns=list(SERIES_COLUMNS))
        write_table(
            frame, self.run_dir / SERIES / f"part-{self._parts:04d}.parquet", SERIES_COLUMNS, "series"
        )
        self._parts += 1

    def finish(self) -> None:
        self._flush()
        for target in self.targets:
            if isinstance(target.read, StatisticsReader):
                target.read.close()


class ProcessSampler(_Periodic):
    """Sample CPU (process and children) and resident memory once a second into processes.parquet,
    and every budget group's counters into budgets.parquet."""

    def __init__(
        self,
        processes: Iterable[SampledProcess],
        run_dir: Path,
        groups: Iterable[SampledGroup] = (),
        interval_s: float = 1.0,
    ) -> None:
        super().__init__(interval_s, "process-sampler")
        self.processes = list(processes)
        self.groups = list(groups)
        self.run_dir = run_dir
        self._rows: list[tuple[Any, ...]] = []
        self._group_rows: list[tuple[Any, ...]] = []
        # psutil's cpu_percent measures since its previous call on the same object: keep the objects.
        self._handles: dict[int, psutil.Process] = {}

    def add(self, process: SampledProcess) -> None:
        """Sample one more process from the next tick on (e.g. the load generator once it runs)."""
        self.processes.append(process)

    def _handle(self, pid: int) -> psutil.Process:
        handle = self._handles.get(pid)
        if handle is None:
            handle = self._handles[pid] = psutil.Process(pid)
            handle.cpu_percent(None)
        return handle

    def tick(self) -> None:
        t_s = time.time()
        for item in self.processes:
            try:
                root = self._handle(item.pid)
                members = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            cpu = rss = 0.0
            for member in members:
                try:
                    handle = self._handle(member.pid)
                    cpu += handle.cpu_percent(None)
                    rss += handle.memory_info().rss
                except psutil.Error:
                    self._handles.pop(member.pid, None)
            self._rows.append((t_s, item.process, item.tier, item.pid, cpu, int(rss), item.cpu_limit_cores))
        self._sample_groups()

    def _sample_groups(self) -> None:
        for sampled in self.groups:
            group = sampled.group
            t_s = time.time()
            try:
                usage = read_usage(group)
            except BudgetError:
                continue  # removed under us (the landscape is going down)
            self._group_rows.append(
                (
                    t_s,
                    sampled.process,
                    sampled.tier,
                    group.mechanism,
                    group.cores,
                    group.period_us / 1e6,
                    usage.used_s,
                    usage.periods,
                    usage.throttled_periods,
                    usage.throttled_s,
                )
            )

    def finish(self) -> None:
        frame = pd.DataFrame(self._rows, columns=list(PROCESS_COLUMNS))
        write_table(frame, self.run_dir / PROCESSES, PROCESS_COLUMNS, "processes")
        if self.groups:
            budgets = pd.DataFrame(self._group_rows, columns=list(BUDGET_COLUMNS))
            write_table(budgets, self.run_dir / BUDGETS, BUDGET_COLUMNS, "budgets")
