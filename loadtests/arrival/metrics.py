"""The arrival engine's figures in Prometheus format, for a live view of a run (`--monitor`).

A load worker started with `--arrival-metrics-port` serves them on loopback: per flow the starts
that fell due (offered) and were made (achieved), late and dropped starts, iterations completed,
failed and in flight, the start delay; per route both latency views (`view` = `service`, the
uncorrected time from send to response, or `corrected`, from the intended start). They are read
at each scrape from the recorders the engine fills anyway: what the worker already reported to
the master plus what it holds, the warm-up included, so every counter only grows.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import fields

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from loadtests.arrival.latency import ArrivalRecorder, FlowCounters, LatencyHistogram, bucket_value_us

# The backbone's SLO edges among them (reports/verdicts.py), so a share under an edge is exact.
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.16, 0.19, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
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
_COUNTER_FIELDS = {item.name for item in fields(FlowCounters)}


class ArrivalMetrics(Collector):
    """Collect the engine's figures from `recorders()` and the flows' iterations in flight."""

    def __init__(
        self,
        recorders: Callable[[], Iterable[ArrivalRecorder]],
        in_flight: Callable[[], Mapping[str, int]],
    ) -> None:
        assert set(COUNTERS) <= _COUNTER_FIELDS
        self._recorders = recorders
        self._in_flight = in_flight

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        recorders = list(self._recorders())
        counters: dict[str, dict[str, int]] = {}
        delays: dict[str, list[LatencyHistogram]] = {}
        durations: dict[tuple[str, str, str], list[LatencyHistogram]] = {}
        for recorder in recorders:
            for flow, latencies in recorder.flows.items():
                totals = counters.setdefault(flow, dict.fromkeys(COUNTERS, 0))
                for name in COUNTERS:
                    totals[name] += getattr(latencies.counters, name)
                delays.setdefault(flow, []).append(latencies.start_delay)
            for (method, route), route_latencies in recorder.routes.items():
                durations.setdefault((method, route, "service"), []).append(route_latencies.service)
                durations.setdefault((method, route, "corrected"), []).append(route_latencies.corrected)
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
        for flow, histograms in sorted(delays.items()):
            delay.add_metric([flow], *_buckets(histograms))
        yield delay
        duration = HistogramMetricFamily(
            "testbed_arrival_request_duration_seconds",
            "Request latency as the client sees it: service (send to response) or corrected (from the "
            "intended start)",
            labels=["method", "route", "view"],
        )
        for key, histograms in sorted(durations.items()):
            if sum(histogram.count for histogram in histograms):
                duration.add_metric(list(key), *_buckets(histograms))
        yield duration


def _buckets(histograms: Iterable[LatencyHistogram]) -> tuple[list[tuple[str, float]], float]:
    """Cumulative counts at the Prometheus bucket edges (a value counts by its bucket's midpoint,
    within 1 % of what was recorded) and the sum in seconds."""
    counts = [0] * (len(BUCKETS_S) + 1)
    total_us = 0
    edges_us = [edge * 1e6 for edge in BUCKETS_S]
    for histogram in histograms:
        total_us += histogram.sum_us
        for index, count in histogram.counts.items():
            counts[bisect.bisect_left(edges_us, bucket_value_us(index))] += count
    cumulative = []
    running = 0
    for edge, count in zip((*map(str, BUCKETS_S), "+Inf"), counts, strict=True):
        running += count
        cumulative.append((edge, float(running)))
    return cumulative, total_us / 1e6
