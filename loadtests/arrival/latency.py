"""Latency in two views, recorded as full distributions that merge across processes.

The service view runs from the actual send of a request to its response. The corrected (user)
view runs from when the request should have been sent: for the first request of an iteration it
adds the iteration's start delay (the queueing that a closed-loop generator would hide); the
later requests of an iteration carry no extra delay, because the iteration as a whole is
measured separately, from its intended start.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

# 64 linear sub-buckets per power of two bound the relative error of a recorded value by 1/64 of
# its magnitude (half of that around the bucket's midpoint): HDR-histogram precision with a dict.
_SUB_BUCKET_BITS = 6
_SUB_BUCKETS = 1 << _SUB_BUCKET_BITS
REPORTED_PERCENTILES = (50.0, 90.0, 95.0, 98.0, 99.0, 99.9)


def _bucket_index(value_us: int) -> int:
    if value_us < 2 * _SUB_BUCKETS:
        return value_us
    shift = value_us.bit_length() - _SUB_BUCKET_BITS - 1
    return 2 * _SUB_BUCKETS + (shift - 1) * _SUB_BUCKETS + (value_us >> shift) - _SUB_BUCKETS


def bucket_value_us(index: int) -> float:
    """Return the midpoint of a bucket, in microseconds."""
    if index < 2 * _SUB_BUCKETS:
        return float(index)
    shift = (index - 2 * _SUB_BUCKETS) // _SUB_BUCKETS + 1
    top = (index - 2 * _SUB_BUCKETS) % _SUB_BUCKETS + _SUB_BUCKETS
    return (top << shift) + ((1 << shift) - 1) / 2


@dataclass(frozen=True)
class Percentiles:
    """A summary of one distribution in milliseconds, from its full histogram."""

    count: int
    min_ms: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p98_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


class LatencyHistogram:
    """Count durations in log-linear buckets (about 1 % resolution) with exact count, min and max."""

    __slots__ = ("count", "counts", "max_us", "min_us", "sum_us")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.sum_us = 0
        self.min_us = 0
        self.max_us = 0

    def record_s(self, duration_s: float) -> None:
        """Record one duration given in seconds (negative values count as 0)."""
        value_us = max(0, round(duration_s * 1_000_000))
        index = _bucket_index(value_us)
        self.counts[index] = self.counts.get(index, 0) + 1
        self.min_us = value_us if self.count == 0 else min(self.min_us, value_us)
        self.max_us = max(self.max_us, value_us)
        self.count += 1
        self.sum_us += value_us

    def percentile_ms(self, percent: float) -> float:
        """Return the smallest recorded value with at least `percent` % of all values at or below it."""
        if self.count == 0:
            return math.nan
        if percent >= 100:
            return self.max_us / 1000
        rank = max(1, math.ceil(self.count * percent / 100))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                # A bucket's midpoint can lie outside what was recorded; the exact extremes cannot.
                return min(max(bucket_value_us(index), self.min_us), self.max_us) / 1000
        return self.max_us / 1000

    def summary(self) -> Percentiles:
        """Return count, min, mean, the reported percentiles and max, in milliseconds."""
        p50, p90, p95, p98, p99, p999 = (self.percentile_ms(p) for p in REPORTED_PERCENTILES)
        return Percentiles(
            count=self.count,
            min_ms=self.min_us / 1000 if self.count else math.nan,
            mean_ms=self.sum_us / self.count / 1000 if self.count else math.nan,
            p50_ms=p50,
            p90_ms=p90,
            p95_ms=p95,
            p98_ms=p98,
            p99_ms=p99,
            p999_ms=p999,
            max_ms=self.max_us / 1000 if self.count else math.nan,
        )

    def merge(self, other: LatencyHistogram) -> None:
        """Add another histogram's values to this one."""
        if other.count == 0:
            return
        for index, count in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + count
        self.min_us = other.min_us if self.count == 0 else min(self.min_us, other.min_us)
        self.max_us = max(self.max_us, other.max_us)
        self.count += other.count
        self.sum_us += other.sum_us

    def to_data(self) -> dict[str, Any]:
        """Return a plain form that survives msgpack and JSON (bucket keys as strings)."""
        return {
            "counts": {str(index): count for index, count in self.counts.items()},
            "count": self.count,
            "sum_us": self.sum_us,
            "min_us": self.min_us,
            "max_us": self.max_us,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> LatencyHistogram:
        """Rebuild a histogram from `to_data`."""
        histogram = cls()
        histogram.counts = {int(index): int(count) for index, count in data["counts"].items()}
        histogram.count = int(data["count"])
        histogram.sum_us = int(data["sum_us"])
        histogram.min_us = int(data["min_us"])
        histogram.max_us = int(data["max_us"])
        return histogram


class IterationLatency:
    """The corrected view of one iteration: only its first request carries the start delay."""

    __slots__ = ("_pending_delay_s", "flow", "open_model", "warm_up")

    def __init__(
        self, start_delay_s: float, *, open_model: bool = True, flow: str = "", warm_up: bool = False
    ) -> None:
        self.open_model = open_model
        self.flow = flow
        # Started in the schedule's warm-up: its requests are recorded apart.
        self.warm_up = warm_up
        self._pending_delay_s = max(0.0, start_delay_s)

    def corrected_s(self, service_s: float) -> float | None:
        """Return the corrected latency of a request that took `service_s` (None in the closed model)."""
        if not self.open_model:
            return None
        delay_s, self._pending_delay_s = self._pending_delay_s, 0.0
        return service_s + delay_s


@dataclass
class FlowCounters:
    """What happened to one flow's starts; all fields add up across processes except the offsets."""

    scheduled: int = 0
    started: int = 0
    late: int = 0
    late_unqueued: int = 0
    queued: int = 0
    dropped: int = 0
    completed: int = 0
    failed: int = 0
    unfinished: int = 0
    # Offsets from the run's start; they merge by maximum, not by sum.
    last_intended_offset_s: float = 0.0
    last_start_offset_s: float = 0.0

    def merge(self, other: FlowCounters) -> None:
        """Add another process's counters to these."""
        for item in fields(self):
            if item.name.endswith("_offset_s"):
                setattr(self, item.name, max(getattr(self, item.name), getattr(other, item.name)))
            else:
                setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


RouteKey = tuple[str, str]


@dataclass
class RouteLatencies:
    """Both latency views of one route (method and Locust request name)."""

    service: LatencyHistogram = field(default_factory=LatencyHistogram)
    corrected: LatencyHistogram = field(default_factory=LatencyHistogram)
    failures: int = 0


@dataclass
class FlowLatencies:
    """One flow's start delays, iteration durations and start counters."""

    start_delay: LatencyHistogram = field(default_factory=LatencyHistogram)
    iteration: LatencyHistogram = field(default_factory=LatencyHistogram)
    counters: FlowCounters = field(default_factory=FlowCounters)


class ArrivalRecorder:
    """Collect both latency views per route and start accounting per flow, mergeable across workers."""

    def __init__(self) -> None:
        self.routes: dict[RouteKey, RouteLatencies] = {}
        self.flows: dict[str, FlowLatencies] = {}

    def route(self, method: str, name: str) -> RouteLatencies:
        """Return (creating it on first use) the latencies of one route."""
        key = (method, name)
        if (latencies := self.routes.get(key)) is None:
            latencies = self.routes[key] = RouteLatencies()
        return latencies

    def flow(self, name: str) -> FlowLatencies:
        """Return (creating it on first use) the record of one flow."""
        if (latencies := self.flows.get(name)) is None:
            latencies = self.flows[name] = FlowLatencies()
        return latencies

    def request(
        self, method: str, name: str, service_s: float, corrected_s: float | None, *, failed: bool
    ) -> None:
        """Record one request in the service view and, in the open model, the corrected view."""
        latencies = self.route(method, name)
        latencies.service.record_s(service_s)
        if corrected_s is not None:
            latencies.corrected.record_s(corrected_s)
        if failed:
            latencies.failures += 1

    def take(self) -> dict[str, Any]:
        """Return everything recorded since the last call as plain data, and forget it."""
        data = self.to_data()
        self.routes = {}
        for latencies in self.flows.values():
            latencies.start_delay = LatencyHistogram()
            latencies.iteration = LatencyHistogram()
            latencies.counters = FlowCounters()
        return data

    def to_data(self) -> dict[str, Any]:
        """Return everything recorded as plain data (for worker reports and result files)."""
        return {
            "routes": [
                {
                    "method": method,
                    "name": name,
                    "failures": latencies.failures,
                    "service": latencies.service.to_data(),
                    "corrected": latencies.corrected.to_data(),
                }
                for (method, name), latencies in self.routes.items()
            ],
            "flows": {
                name: {
                    "start_delay": latencies.start_delay.to_data(),
                    "iteration": latencies.iteration.to_data(),
                    "counters": vars(latencies.counters).copy(),
                }
                for name, latencies in self.flows.items()
            },
        }

    def merge_data(self, data: Mapping[str, Any]) -> None:
        """Add data from `take` or `to_data` (of another process) to this recorder."""
        for item in data.get("routes", ()):
            latencies = self.route(item["method"], item["name"])
            latencies.service.merge(LatencyHistogram.from_data(item["service"]))
            latencies.corrected.merge(LatencyHistogram.from_data(item["corrected"]))
            latencies.failures += int(item["failures"])
        for name, item in data.get("flows", {}).items():
            flow = self.flow(name)
            flow.start_delay.merge(LatencyHistogram.from_data(item["start_delay"]))
            flow.iteration.merge(LatencyHistogram.from_data(item["iteration"]))
            flow.counters.merge(FlowCounters(**item["counters"]))


def merged(recorders: Iterable[ArrivalRecorder]) -> ArrivalRecorder:
    """Return one recorder holding the data of all given recorders."""
    total = ArrivalRecorder()
    for recorder in recorders:
        total.merge_data(recorder.to_data())
    return total
