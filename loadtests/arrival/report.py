"""Turn recorded arrivals into a report: rates, late and dropped starts, both latency views, SLOs.

The report is plain frozen data (for later result files), printable as text and writable as CSV
and JSON. A run whose generator missed its schedule says so in `problems`. The verdicts are the
report's (`reports.verdicts`, the one judge): this module only measures from its histograms.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from loadtests.arrival.latency import ArrivalRecorder, FlowCounters, LatencyHistogram, Percentiles
from reports import verdicts
from reports.manifest import SloSpec
from scenarios.schema import Scenario


@dataclass(frozen=True)
class FlowResult:
    """Start accounting and timing of one flow."""

    name: str
    target_rate_per_s: float
    achieved_rate_per_s: float
    scheduled: int
    started: int
    late: int
    late_unqueued: int
    queued: int
    dropped: int
    completed: int
    failed: int
    unfinished: int
    start_delay: Percentiles
    iteration: Percentiles

    @property
    def late_ratio(self) -> float:
        return self.late / self.started if self.started else 0.0

    @property
    def rate_ratio(self) -> float:
        return self.achieved_rate_per_s / self.target_rate_per_s if self.target_rate_per_s else math.nan


@dataclass(frozen=True)
class RouteResult:
    """Both latency views of one route."""

    method: str
    name: str
    failures: int
    service: Percentiles
    corrected: Percentiles | None


@dataclass(frozen=True)
class SloResult:
    """One threshold of one SLO, judged on the measured distribution (`reports.verdicts`)."""

    route: str
    view: str
    threshold: str
    limit: float
    measured: float
    count: int
    verdict: str


@dataclass(frozen=True)
class ArrivalReport:
    """Everything one run measured about its arrivals."""

    scenario: str
    model: str
    processes: int
    flows: tuple[FlowResult, ...]
    routes: tuple[RouteResult, ...]
    slos: tuple[SloResult, ...]
    problems: tuple[str, ...]
    # What the load generator requested before the schedule's clock started (the personas'
    # log-ins): reported, never judged.
    setup_routes: tuple[RouteResult, ...] = ()
    # The schedule's first seconds, left out of every figure above (a capacity search's warm-up).
    warm_up_s: float = 0.0

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def slo_passed(self) -> bool:
        return verdicts.slo_passed(slo.verdict for slo in self.slos)

    def route(self, method: str, name: str) -> RouteResult:
        """Return the result of one route."""
        for result in self.routes:
            if (result.method, result.name) == (method, name):
                return result
        raise KeyError(f"no requests to {method} {name}")

    def flow(self, name: str) -> FlowResult:
        """Return the result of one flow."""
        for result in self.flows:
            if result.name == name:
                return result
        raise KeyError(f"no flow {name}")


def build_report(
    recorder: ArrivalRecorder,
    scenario: Scenario,
    *,
    model: str = "open",
    processes: int = 1,
    generator_overloaded: bool = False,
    setup: ArrivalRecorder | None = None,
    warm_up_s: float = 0.0,
) -> ArrivalReport:
    """Summarise a recorder (merged over all processes) for one scenario run.

    `setup`: the requests made before the schedule's clock started, reported apart.
    """
    flows = tuple(
        _flow_result(name, latencies.counters, latencies) for name, latencies in recorder.flows.items()
    )
    slos = tuple(result for slo in scenario.slos for result in _judge(slo, recorder, model))
    problems = _problems(flows, model, generator_overloaded)
    return ArrivalReport(
        scenario=scenario.name,
        model=model,
        processes=processes,
        flows=flows,
        routes=_route_results(recorder),
        slos=slos,
        problems=tuple(problems),
        setup_routes=_route_results(setup) if setup is not None else (),
        warm_up_s=warm_up_s,
    )


def _route_results(recorder: ArrivalRecorder) -> tuple[RouteResult, ...]:
    return tuple(
        RouteResult(
            method=method,
            name=name,
            failures=latencies.failures,
            service=latencies.service.summary(),
            corrected=latencies.corrected.summary() if latencies.corrected.count else None,
        )
        for (method, name), latencies in sorted(
            recorder.routes.items(), key=lambda item: (item[0][1], item[0][0])
        )
    )


def _flow_result(name: str, counters: FlowCounters, latencies: Any) -> FlowResult:
    intended_window_s = counters.last_intended_offset_s
    actual_window_s = max(counters.last_start_offset_s, intended_window_s)
    return FlowResult(
        name=name,
        target_rate_per_s=counters.scheduled / intended_window_s if intended_window_s > 0 else math.nan,
        achieved_rate_per_s=counters.started / actual_window_s if actual_window_s > 0 else math.nan,
        scheduled=counters.scheduled,
        started=counters.started,
        late=counters.late,
        late_unqueued=counters.late_unqueued,
        queued=counters.queued,
        dropped=counters.dropped,
        completed=counters.completed,
        failed=counters.failed,
        unfinished=counters.unfinished,
        start_delay=latencies.start_delay.summary(),
        iteration=latencies.iteration.summary(),
    )


def _problems(flows: Sequence[FlowResult], model: str, generator_overloaded: bool) -> list[str]:
    problems = [verdicts.GENERATOR_WARNED_PROBLEM] if generator_overloaded else []
    if model == "open":
        problems += verdicts.schedule_problems(flows, queued=[flow.queued for flow in flows])
    return [problem.text for problem in problems]


def _judge(slo: SloSpec, recorder: ArrivalRecorder, model: str) -> list[SloResult]:
    service, corrected, failures = LatencyHistogram(), LatencyHistogram(), 0
    for (method, name), latencies in recorder.routes.items():
        if name == slo.route and slo.method in (None, method):
            service.merge(latencies.service)
            corrected.merge(latencies.corrected)
            failures += latencies.failures
    # The closed model has no intended start times, so its only view is the service view.
    view = "corrected" if slo.view == "corrected" and model == "open" else "service"
    histogram = corrected if view == "corrected" else service
    count = histogram.count
    results = [
        SloResult(
            route=slo.key,
            view=view,
            threshold=f"p{percentile:g}_ms",
            limit=limit_ms,
            measured=measured,
            count=count,
            verdict=verdicts.judge_percentile(percentile, limit_ms, measured, count),
        )
        for percentile, limit_ms in slo.percentiles_ms
        for measured in [histogram.percentile_ms(percentile)]
    ]
    if slo.max_failure_ratio is not None:
        ratio = failures / service.count if service.count else math.nan
        results.append(
            SloResult(
                route=slo.key,
                view=view,
                threshold="failure_ratio",
                limit=slo.max_failure_ratio,
                measured=ratio,
                count=service.count,
                verdict=verdicts.judge_failure_ratio(slo.max_failure_ratio, failures, service.count),
            )
        )
    return results


def format_report(report: ArrivalReport) -> str:
    """Render the report as fixed-width text tables."""
    warm_up = f", after a {report.warm_up_s:g} s warm-up left out" if report.warm_up_s else ""
    lines = [
        f"Arrivals: scenario {report.scenario}, {report.model} model, {report.processes} load "
        f"process(es){warm_up}",
    ]
    if report.model == "open":
        lines.append(
            f"{'flow':<24} {'target/s':>9} {'achieved/s':>10} {'ratio':>8} {'scheduled':>9} {'started':>8} "
            f"{'late':>7} {'late %':>7} {'queued':>7} {'dropped':>7} {'failed':>6} {'unfin.':>6}"
        )
        for flow in report.flows:
            lines.append(
                f"{flow.name[:24]:<24} {flow.target_rate_per_s:>9.2f} {flow.achieved_rate_per_s:>10.2f} "
                f"{flow.rate_ratio:>8.2%} {flow.scheduled:>9} {flow.started:>8} {flow.late:>7} "
                f"{flow.late_ratio:>7.2%} {flow.queued:>7} {flow.dropped:>7} {flow.failed:>6} "
                f"{flow.unfinished:>6}"
            )
    lines.append("")
    lines.append(_latency_header("latency (ms)"))
    for flow in report.flows:
        if report.model == "open":
            lines.append(_latency_row(f"{flow.name} start delay", flow.start_delay))
        label = "iteration from intended start" if report.model == "open" else "iteration"
        lines.append(_latency_row(f"{flow.name} {label}", flow.iteration))
    for route in report.routes:
        lines.append(_latency_row(f"{route.method} {route.name} service", route.service, route.failures))
        if route.corrected is not None:
            lines.append(
                _latency_row(f"{route.method} {route.name} corrected", route.corrected, route.failures)
            )
    if report.setup_routes:
        lines.append("")
        lines.append(_latency_header("setup before the schedule (ms), not judged"))
        for route in report.setup_routes:
            lines.append(_latency_row(f"{route.method} {route.name} service", route.service, route.failures))
    if report.slos:
        lines.append("")
        for slo in report.slos:
            comparison = (
                f"{slo.measured:.4g} {'<=' if slo.threshold == 'failure_ratio' else '<'} {slo.limit:g}"
            )
            lines.append(
                f"SLO {slo.route} {slo.threshold} ({slo.view}): {comparison}: "
                f"{verdicts.describe_verdict(slo.verdict, slo.count)}"
            )
    lines.append("")
    if report.problems:
        lines.append("INVALID or degraded run:")
        lines.extend(f"  - {problem}" for problem in report.problems)
    elif report.model == "open":
        lines.append("Schedule kept: no late, dropped or unfinished starts beyond the limits.")
    else:
        lines.append("Closed model: no schedule to keep; latencies are service times only.")
    return "\n".join(lines)


def _latency_header(title: str) -> str:
    columns = ("count", "fails", "p50", "p90", "p95", "p99", "p99.9", "max")
    return f"{title:<52} " + " ".join(f"{column:>9}" for column in columns)


def _latency_row(label: str, summary: Percentiles, failures: int = 0) -> str:
    values = (summary.p50_ms, summary.p90_ms, summary.p95_ms, summary.p99_ms, summary.p999_ms, summary.max_ms)
    return f"{label[:52]:<52} {summary.count:>9} {failures:>9} " + " ".join(
        f"{value:>9.2f}" for value in values
    )


def write_json(report: ArrivalReport, path: str | Path) -> None:
    """Write the report as JSON (NaN as null)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    data = _without_nan(asdict(report))
    data["valid"] = report.valid
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_csv(report: ArrivalReport, prefix: str) -> list[Path]:
    """Write `<prefix>_arrival_latency.csv` and `<prefix>_arrival_starts.csv`; return their paths."""
    latency_path = Path(f"{prefix}_arrival_latency.csv")
    starts_path = Path(f"{prefix}_arrival_starts.csv")
    latency_path.parent.mkdir(parents=True, exist_ok=True)
    summary_fields = [item.name for item in fields(Percentiles)]
    with latency_path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["kind", "method", "name", "view", "failures", *summary_fields])
        for route in report.routes:
            views = [("service", route.service)] + (
                [("corrected", route.corrected)] if route.corrected else []
            )
            for view, summary in views:
                writer.writerow(["route", route.method, route.name, view, route.failures, *_values(summary)])
        for flow in report.flows:
            writer.writerow(["flow", "", flow.name, "start_delay", "", *_values(flow.start_delay)])
            writer.writerow(["flow", "", flow.name, "iteration", flow.failed, *_values(flow.iteration)])
    counter_fields = [
        item.name for item in fields(FlowResult) if item.name not in ("start_delay", "iteration")
    ]
    with starts_path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(counter_fields)
        for flow in report.flows:
            writer.writerow([getattr(flow, name) for name in counter_fields])
    return [latency_path, starts_path]


def _values(summary: Percentiles) -> list[Any]:
    return [getattr(summary, item.name) for item in fields(Percentiles)]


def _without_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(item) for item in value]
    return value
