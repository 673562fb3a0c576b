"""The arrival engine's figures in Prometheus format, for a live view of a run (`--monitor`).

A load worker started with `--arrival-metrics-port` serves them on loopback: per flow the starts
that fell due (offered) and were made (achieved), late and dropped starts, iterations completed,
failed and in flight, the start delay; both latency views of all requests (`view` = `service`,
the uncorrected time from send to response, or `corrected`, from the intended start). Not per
route: formatting 30 routes' histograms takes about 10 ms of the generator's one loop per scrape,
as long as a start may be late (the run's report has every route's latency anyway).

They come from the recorders the engine fills anyway, so recording a request costs nothing
more. What the worker has reported to its master is banked in Prometheus's shape when it is
taken (`bank`, every few seconds, a few seconds' worth); a scrape adds what the recorders hold
now (the warm-up included). So a scrape costs a few seconds' worth of histogram buckets, not the
whole run's, and every counter only grows.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from loadtests.arrival.latency import ArrivalRecorder, LatencyHistogram, bucket_value_us

# The backbone's SLO edges among them (reports/verdicts.py), so a share under an edge is exact.
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.16, 0.19, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_EDGES_US = tuple(edge * 1e6 for edge in BUCKETS_S)
COUNTERS = {
    "scheduled": ("testbed_arrival_starts_scheduled", "Starts that fell due on the schedule (offered)"),
    "started": ("testbed_arrival_starts", "Starts made (achieved)"),
    "late": ("testbed_arrival_starts_late", "Starts made later than the engine's tolerance"),
    "dropped": (
        "testbed_arrival_starts_dropped",
        "Starts dropped: the flow's queue was full, or the run ended",
    ),
    "completed": ("testbed_arrival_iterations_completed", "Iterations that ended without an error"),
    "failed": ("testbed_arrival_iterations_failed", "Iterations that raised"),
}
# Which Prometheus bucket each of the engine's buckets falls in (by its midpoint, within 1 % of
# what was recorded); a few thousand distinct buckets at most.
_slots: dict[int, int] = {}


def _slot(index: int) -> int:
    if (slot := _slots.get(index)) is None:
        slot = _slots[index] = bisect.bisect_left(_EDGES_US, bucket_value_us(index))
    return slot


@dataclass
class Buckets:
    """A histogram in Prometheus's buckets (not cumulative yet) and its sum in microseconds."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_S) + 1))
    sum_us: int = 0

    def add(self, counts: Mapping[Any, int], sum_us: int) -> None:
        for index, count in counts.items():
            self.counts[_slot(int(index))] += count
        self.sum_us += sum_us

    def plus(self, histograms: Iterable[LatencyHistogram]) -> Buckets:
        total = Buckets(list(self.counts), self.sum_us)
        for histogram in histograms:
            total.add(histogram.counts, histogram.sum_us)
        return total

    def exposition(self) -> tuple[list[tuple[str, float]], float]:
        cumulative, running = [], 0
        for edge, count in zip((*map(str, BUCKETS_S), "+Inf"), self.counts, strict=True):
            running += count
            cumulative.append((edge, float(running)))
        return cumulative, self.sum_us / 1e6


class ArrivalMetrics(Collector):
    """The banked figures plus what `live()` recorders hold, and the flows' iterations in flight."""

    def __init__(
        self,
        live: Callable[[], Iterable[ArrivalRecorder]],
        in_flight: Callable[[], Mapping[str, int]],
    ) -> None:
        self._live = live
        self._in_flight = in_flight
        self._counters: dict[str, dict[str, int]] = {}
        self._delays: dict[str, Buckets] = {}
        self._durations: dict[str, Buckets] = {}

    def bank(self, taken: Mapping[str, Any]) -> None:
        """Keep data taken from a recorder (`ArrivalRecorder.take`), which the recorder forgets."""
        for item in taken.get("routes", ()):
            for view in ("service", "corrected"):
                histogram = item[view]
                if histogram["count"]:
                    self._durations.setdefault(view, Buckets()).add(histogram["counts"], histogram["sum_us"])
        for flow, item in taken.get("flows", {}).items():
            totals = self._counters.setdefault(flow, dict.fromkeys(COUNTERS, 0))
            for name in COUNTERS:
                totals[name] += int(item["counters"][name])
            delay = item["start_delay"]
            self._delays.setdefault(flow, Buckets()).add(delay["counts"], delay["sum_us"])

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        counters = {flow: dict(totals) for flow, totals in self._counters.items()}
        delays: dict[str, list[LatencyHistogram]] = {}
        durations: dict[str, list[LatencyHistogram]] = {}
        for recorder in self._live():
            for flow, latencies in recorder.flows.items():
                totals = counters.setdefault(flow, dict.fromkeys(COUNTERS, 0))
                for name in COUNTERS:
                    totals[name] += getattr(latencies.counters, name)
                delays.setdefault(flow, []).append(latencies.start_delay)
            for route_latencies in recorder.routes.values():
                durations.setdefault("service", []).append(route_latencies.service)
                durations.setdefault("corrected", []).append(route_latencies.corrected)
        for name, (metric, documentation) in COUNTERS.items():
            family = CounterMetricFamily(metric, documentation, labels=["flow"])
            for flow, totals in sorted(counters.items()):
                family.add_metric([flow], totals[name])
            yield family
        in_flight = GaugeMetricFamily(
            "testbed_arrival_iterations_in_flight", "Iterations running now", labels=["flow"]
        )
        for flow, count in sorted(self._in_flight().items()):
            in_flight.add_metric([flow], count)
        yield in_flight
        delay = HistogramMetricFamily(
            "testbed_arrival_start_delay_seconds",
            "Start of an iteration after its intended time",
            labels=["flow"],
        )
        for flow in sorted(set(self._delays) | set(delays)):
            delay.add_metric(
                [flow], *self._delays.get(flow, Buckets()).plus(delays.get(flow, ())).exposition()
            )
        yield delay
        duration = HistogramMetricFamily(
            "testbed_arrival_request_duration_seconds",
            "Request latency as the client sees it: service (send to response) or corrected (from the "
            "intended start)",
            labels=["view"],
        )
        for view in sorted(set(self._durations) | set(durations)):
            total = self._durations.get(view, Buckets()).plus(durations.get(view, ()))
            if any(total.counts):
                duration.add_metric([view], *total.exposition())
        yield duration
