"""Compute a run's report from its tables and write it as one HTML file and a Markdown summary.

load (`rundir.read_run`) -> compute (`build_report`, pure) -> describe (`run_page`, a
`reports.page.Page`) -> write (`reports.page`). The summary opens with three lines: the SLO
verdict, the validity verdict, and the first saturated tier with the metric and value that show it.

A run whose manifest names a warm-up (`scenario.warm_up_s`, a capacity search's step) is judged on
its measured window only: requests intended before `started_at_s`, the scrapes before the last
one at or before it and the process samples before it are the warm-up's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports import charts, cpu, drift, latency, page, recovery, saturation, server, verdicts
from reports.charts import Line
from reports.manifest import RunManifest
from reports.page import Charts, Details, Headline, Page, Paragraph, Section, Table, number, rows_of
from reports.rundir import LOAD_GENERATOR, REPORT_HTML, SUMMARY_MD, Run, flows_table, read_run


@dataclass(frozen=True)
class LoadFigures:
    """The load of the measured window, all routes together."""

    window_s: float
    requests: int
    # Per flow, the schedule's start rate x the requests per started iteration; NaN without one.
    offered_requests_per_s: float
    # Requests answered inside the window, per second.
    achieved_requests_per_s: float
    # Corrected latency over every request of the window.
    p50_ms: float
    p90_ms: float
    p99_ms: float
    warm_up_s: float = 0.0
    warm_up_requests: int = 0


@dataclass(frozen=True)
class Report:
    """Every figure and verdict of one run, ready to be written."""

    run_id: str
    manifest: RunManifest
    t0_s: float
    duration_s: float
    load: LoadFigures
    routes: pd.DataFrame
    over_time: pd.DataFrame
    errors: pd.DataFrame
    flows: pd.DataFrame
    slos: pd.DataFrame
    setup: pd.DataFrame
    setup_s: float
    problems: tuple[verdicts.Problem, ...]
    rules: tuple[saturation.RuleResult, ...]
    tiers: tuple[saturation.TierVerdict, ...]
    first_saturated: saturation.TierVerdict | None
    charts: tuple[str, ...]
    # Every CPU budget with what held it, its use and throttling; every process without one.
    budgets: pd.DataFrame
    unbudgeted: pd.DataFrame
    # Every load-generator process with its host, share and CPU.
    generator: pd.DataFrame = field(default_factory=pd.DataFrame)
    # Each fault's recovery (reports/recovery.py; empty without faults), the acknowledged writes'
    # read-back (None: not verified), and a soak's drift (empty unless the shape is a soak).
    recovery: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(recovery.RECOVERY_COLUMNS))
    )
    acknowledged: dict[str, Any] | None = None
    rss_drift: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(drift.RSS_COLUMNS)))
    p90_drift: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(drift.P90_COLUMNS)))
    drift_window_s: float = 0.0
    resilience_charts: tuple[str, ...] = ()

    @property
    def has_faults(self) -> bool:
        return bool(len(self.recovery))

    @property
    def is_soak(self) -> bool:
        return self.drift_window_s > 0

    @property
    def resilience_passed(self) -> bool:
        """No fault left unrecovered, no acknowledged write lost (when verified), no drift failed."""
        judged = [*self.recovery["verdict"], *self.rss_drift["verdict"], *self.p90_drift["verdict"]]
        if self.has_faults or self.acknowledged is not None:
            judged.append(recovery.acknowledged_verdict(self.acknowledged))
        return verdicts.slo_passed(judged)

    def closing_lines(self) -> list[str]:
        """The lines after the headline: each fault's recovery, the acknowledged writes, the drift."""
        lines = []
        for row in self.recovery.to_dict("records"):
            if math.isnan(row["recovered_after_s"]):
                before = "" if row["within_slo_before"] else " (nor within it before the fault)"
                lines.append(
                    f"Fault {row['fault']}: FAIL: not back within the SLO before the run ended{before}"
                )
            else:
                lines.append(
                    f"Fault {row['fault']}: recovered {row['recovered_after_s']:.0f} s after it ended "
                    f"(errors during it: {row['errors_during']}; p90 before/during/after "
                    f"{number(row['p90_before_ms'])}/{number(row['p90_during_ms'])}/"
                    f"{number(row['p90_after_ms'])} ms)"
                )
        if self.has_faults or self.acknowledged is not None:
            lines.append(_sentence(recovery.acknowledged_line(self.acknowledged)))
        if self.is_soak:
            judged = "" if self.drift_window_s >= verdicts.MIN_DRIFT_WINDOW_S else " (too short to judge)"
            lines.append(f"Drift over {self.drift_window_s / 60:.1f} min after the ramp{judged}:")
            for row in self.rss_drift.to_dict("records"):
                lines.append(
                    f"  RSS {row['process']}: {row['pct_per_h']:+.1f} %/h ({row['mib_per_h']:+.1f} MiB/h, "
                    f"{row['start_mib']:.0f} -> {row['end_mib']:.0f} MiB) {_drift_verdict(row['verdict'])}"
                )
            for row in self.p90_drift.to_dict("records"):
                lines.append(
                    f"  p90 {row['method']} {row['route']}: {row['pct_per_h']:+.1f} %/h "
                    f"({row['ms_per_h']:+.1f} ms/h, {row['start_ms']:.1f} -> {row['end_ms']:.1f} ms) "
                    f"{_drift_verdict(row['verdict'])}"
                )
        return lines

    @property
    def slo_passed(self) -> bool:
        return bool(len(self.slos)) and verdicts.slo_passed(self.slos["verdict"])

    @property
    def valid(self) -> bool:
        return not self.problems

    def slo_missed(self) -> list[str]:
        """Every threshold missed, as `SLO threshold measured (limit L)`."""
        failed = self.slos[self.slos["verdict"] == verdicts.FAIL]
        return [
            f"{row.slo} {row.threshold} {number(row.measured)} (limit {row.limit:g})"
            for row in failed.itertuples()
        ]

    def step_verdict(self) -> verdicts.StepVerdict:
        """This run judged as a step of a capacity search."""
        return verdicts.judge_step(
            self.slo_passed, self.slo_missed(), self.problems, self.first_saturated is not None
        )

    def headline(self) -> tuple[str, str, str]:
        """Return the three opening lines: SLO verdict, validity verdict, first saturated tier."""
        if not len(self.slos):
            slo = "SLO: FAIL: no SLO could be judged (no requests)"
        elif self.slo_passed:
            too_few = int((self.slos["verdict"] == verdicts.TOO_FEW).sum())
            judged = len(self.slos) - too_few
            slo = f"SLO: PASS: all {judged} judged thresholds met" + (
                f" ({too_few} too few to judge)" if too_few else ""
            )
        else:
            missed = self.slo_missed()
            shown = "; ".join(missed[:3]) + (f"; and {len(missed) - 3} more" if len(missed) > 3 else "")
            slo = f"SLO: FAIL: {len(missed)} of {len(self.slos)} thresholds missed: {shown}"
        validity = (
            "Validity: VALID" if self.valid else "Validity: INVALID: " + "; ".join(map(str, self.problems))
        )
        first = self.first_saturated
        if not verdicts.judges_server_tiers(self.manifest.profile.server_metrics):
            tier = (
                "Server tiers: not judged: only client-side figures exist (no server metrics were read; "
                "give the target's --prometheus)"
            )
        elif first is None:
            tier = "First saturated tier: none (no tier met a saturation rule)"
        else:
            at = f" from {first.onset_s:.0f} s" if not math.isnan(first.onset_s) else ""
            tier = f"First saturated tier: {first.tier}{at}: {first.metric}: {first.figure}"
        return slo, validity, tier


def build_report(run: Run) -> Report:
    """Compute every table, verdict and chart of a run."""
    manifest = run.manifest
    requests, series, processes = run.requests, run.series, run.processes
    t0_s, end_s = run_window(manifest, requests, series, processes)
    duration_s = max(end_s - t0_s, 1e-9)
    flows = flows_table(run.arrival)
    warm_up_s = manifest.scenario.warm_up_s
    measured = requests
    if warm_up_s > 0:
        measured = requests[requests["intended_start_s"].to_numpy(dtype=np.float64) >= t0_s]
        measured = measured.reset_index(drop=True)
        series = server.since(series, t0_s)
        processes = processes[processes["t_s"].to_numpy(dtype=np.float64) >= t0_s].reset_index(drop=True)
    load = _load_figures(manifest, len(requests), measured, flows, t0_s, duration_s)
    routes = latency.route_summary(measured, duration_s).merge(
        server.server_durations(series), on=["method", "route"], how="outer"
    )
    routes = routes.sort_values(["route", "method"], ignore_index=True)
    # Routes only one side saw (the scrapes, health checks) leave gaps: counts stay integers.
    routes = routes.astype({"count": "Int64", "errors": "Int64", "server_count": "Int64"})
    window_s = latency.window_for(duration_s)
    timeline = latency.over_time(measured, t0_s, window_s)
    _, keys = latency.route_codes(measured)
    slos = verdicts.with_defaults(manifest.scenario.slos, zip(keys["method"], keys["route"], strict=True))
    setup, setup_s = latency.setup_summary(run.setup_requests)
    problems = verdicts.validity_problems(
        processes,
        flows,
        len(measured),
        model=manifest.scenario.model,
        window_s=(t0_s, end_s),
        generator_cores=len(manifest.load_generator.cores),
    )
    rules = saturation.evaluate(
        series,
        processes,
        t0_s,
        requests=measured,
        threads_per_worker=manifest.profile.threads_per_worker,
        machine_cores=float(manifest.machine.cpus),
        budgets=run.budgets,
    )
    if not verdicts.judges_server_tiers(manifest.profile.server_metrics):
        rules = []
    tiers = saturation.tier_verdicts(rules)
    resilience = _resilience(run, requests, processes, slos, t0_s, end_s)
    return Report(
        run_id=manifest.run_id,
        manifest=manifest,
        t0_s=t0_s,
        duration_s=duration_s,
        load=load,
        routes=routes,
        over_time=timeline,
        errors=latency.errors_by_code(measured),
        flows=flows,
        slos=verdicts.judge_slos(measured, slos),
        setup=setup,
        setup_s=setup_s,
        problems=tuple(problems),
        rules=tuple(rules),
        tiers=tuple(tiers),
        first_saturated=saturation.first_saturated(tiers),
        charts=tuple(_charts(timeline, series, processes, t0_s, window_s, run.budgets)),
        budgets=cpu.budget_table(manifest.profile, run.budgets, processes, (t0_s, end_s)),
        unbudgeted=cpu.unbudgeted_table(manifest.profile, processes, (t0_s, end_s)),
        generator=cpu.generator_table(manifest.load_generator, processes, (t0_s, end_s)),
        **resilience,
    )


def _resilience(
    run: Run,
    requests: pd.DataFrame,
    processes: pd.DataFrame,
    slos: list[verdicts.SloSpec],
    t0_s: float,
    end_s: float,
) -> dict[str, Any]:
    """The fault recovery, the acknowledged writes and a soak's drift, with their charts."""
    found: dict[str, Any] = {"acknowledged": recovery.read_acknowledged(run.path)}
    figures = []
    if faults := recovery.read_faults(run.path):
        found["recovery"] = recovery.recovery_table(requests, faults, slos, t0_s, end_s)
    limits = drift.soak_limits(run.manifest)
    if limits is not None:
        start_s = t0_s + limits.ramp_s
        found["drift_window_s"] = max(end_s - start_s, 1e-9)
        found["rss_drift"] = drift.rss_drift(processes, limits, start_s, end_s)
        bins = drift.p90_bins(requests, start_s, end_s)
        found["p90_drift"] = drift.p90_drift(bins, limits, start_s, end_s)
        memory = processes[processes["tier"].astype(str) != LOAD_GENERATOR]
        figures.append(
            charts.line_chart(
                "rss",
                "Resident memory per process (MiB) over the soak",
                [
                    Line(
                        str(name),
                        rows["t_s"].to_numpy(float) - t0_s,
                        rows["rss_bytes"].to_numpy(float) / 2**20,
                    )
                    for name, rows in memory.sort_values("t_s").groupby("process", observed=True)
                ],
                y_label="MiB",
            )
        )
        figures.append(
            charts.line_chart(
                "p90-drift",
                "p90 per route (corrected, ms) per bin over the soak",
                [
                    Line(
                        f"{method} {route}",
                        rows["t_s"].to_numpy(float) - t0_s,
                        rows["p90_ms"].to_numpy(float),
                    )
                    for (method, route), rows in bins.groupby(["method", "route"])
                ],
                y_label="ms",
                markers=True,
            )
        )
    found["resilience_charts"] = tuple(figures)
    return found


def _load_figures(
    manifest: RunManifest,
    requests: int,
    measured: pd.DataFrame,
    flows: pd.DataFrame,
    t0_s: float,
    duration_s: float,
) -> LoadFigures:
    warm_up_s = manifest.scenario.warm_up_s
    # The schedule's measured part; a run without a known schedule length: its whole window.
    window_s = manifest.scenario.duration_s - warm_up_s if manifest.scenario.duration_s > 0 else duration_s
    p50, p90, p99 = latency.nearest_rank(
        measured["corrected_latency_s"].to_numpy(dtype=np.float64), (50, 90, 99)
    )
    return LoadFigures(
        window_s=window_s,
        requests=len(measured),
        # The arrival engine counts the measured window's starts (it leaves a warm-up out).
        offered_requests_per_s=latency.offered_requests_per_s(measured, flows),
        achieved_requests_per_s=latency.answered_per_s(measured, t0_s, window_s),
        p50_ms=float(p50) * 1000,
        p90_ms=float(p90) * 1000,
        p99_ms=float(p99) * 1000,
        warm_up_s=warm_up_s,
        warm_up_requests=requests - len(measured),
    )


def run_window(
    manifest: RunManifest, requests: pd.DataFrame, series: pd.DataFrame, processes: pd.DataFrame
) -> tuple[float, float]:
    starts = [float(frame["t_s"].min()) for frame in (series, processes) if len(frame)]
    ends = [float(frame["t_s"].max()) for frame in (series, processes) if len(frame)]
    if len(requests):
        starts.append(float(requests["start_s"].min()))
        ends.append(float((requests["start_s"] + requests["latency_s"]).max()))
    t0_s = float(manifest.started_at_s or (min(starts) if starts else 0.0))
    end_s = float(manifest.ended_at_s or (max(ends) if ends else t0_s))
    return t0_s, end_s


def _per_process(frame: pd.DataFrame, t0_s: float, scale: float = 1.0) -> list[Line]:
    return [
        Line(str(name), rows["t_s"].to_numpy(float) - t0_s, rows["value"].to_numpy(float) * scale)
        for name, rows in frame.sort_values("t_s").groupby("process", observed=True)
    ]


def _per_process_labelled(t0_s: float, *gauges: tuple[str, pd.DataFrame]) -> list[Line]:
    """One line per process and gauge, named `<process> <label>`."""
    return [
        Line(f"{line.name} {label}", line.x, line.y)
        for label, frame in gauges
        for line in _per_process(frame, t0_s)
    ]


def _charts(
    timeline: pd.DataFrame,
    series: pd.DataFrame,
    processes: pd.DataFrame,
    t0_s: float,
    window_s: float,
    budgets: pd.DataFrame,
) -> list[str]:
    x = timeline["t_s"].to_numpy(float) + window_s / 2
    found = []
    found.append(
        charts.line_chart(
            "throughput",
            f"Throughput (requests/s per {window_s:g} s window)",
            [
                Line("requests/s", x, timeline["requests_per_s"].to_numpy(float)),
                Line("errors/s", x, timeline["errors_per_s"].to_numpy(float)),
            ],
            y_label="requests/s",
        )
    )
    found.append(
        charts.line_chart(
            "latency",
            "Latency from the intended start (corrected), per window",
            [Line(name, x, timeline[f"{name}_ms"].to_numpy(float)) for name in ("p50", "p95", "p99")],
            y_label="ms",
            limits={"50 ms": 50.0, "100 ms": 100.0},
        )
    )
    found.append(
        charts.line_chart(
            "node",
            "Node: requests in flight and busy workers",
            _per_process_labelled(
                t0_s,
                ("in flight", server.gauge(series, "http_server_active_requests")),
                ("busy workers", server.gauge(series, "backbone_gunicorn_workers_busy")),
            ),
            y_label="requests / workers",
        )
    )
    found.append(
        charts.line_chart(
            "db-pool",
            "Database pool: connections checked out and the ceiling (pool size + overflow)",
            _per_process_labelled(
                t0_s,
                (
                    "used",
                    server.gauge(series, "db_client_connection_count", db_client_connection_state="used"),
                ),
                ("max", server.gauge(series, "db_client_connection_max")),
            ),
            y_label="connections",
        )
    )
    wait = server.mean_per_interval(series, "db_client_connection_wait_time_seconds").dropna()
    found.append(
        charts.line_chart(
            "db-wait",
            "Database pool checkout wait (mean per second)",
            _per_process(wait, t0_s, 1000),
            y_label="ms",
            limits={f"{saturation.POOL_WAIT_LIMIT_S * 1000:g} ms": saturation.POOL_WAIT_LIMIT_S * 1000},
        )
    )
    backlog = server.gauge(series, "backbone_outbox_pending_events", by_process=False)
    depth = server.gauge(series, "messaging_queue_depth_messages", by_process=False)
    lag = server.mean_per_interval(series, "messaging_consumer_lag_seconds").dropna()
    events = [
        Line("outbox backlog", backlog["t_s"].to_numpy(float) - t0_s, backlog["value"].to_numpy(float)),
        Line("queue depth", depth["t_s"].to_numpy(float) - t0_s, depth["value"].to_numpy(float)),
        *(Line(f"{line.name} consumer lag (ms)", line.x, line.y) for line in _per_process(lag, t0_s, 1000)),
    ]
    found.append(charts.line_chart("events", "Events: outbox backlog, queue depth, consumer lag", events))
    cpu = processes.rename(columns={"cpu_percent": "value"})
    found.append(
        charts.line_chart(
            "cpu",
            "CPU per process (cores; 1 = one core busy), the load generator's processes included",
            _per_process(cpu[["t_s", "process", "value"]], t0_s, 0.01),
            y_label="cores",
        )
    )
    if len(budgets):
        used = saturation.budget_rates(budgets)
        found.append(
            charts.line_chart(
                "cpu-budgets",
                "CPU of each budget's cgroup, as a share of its budget (1 = the whole budget spent)",
                _per_process(used.assign(value=used["cores"] / used["budget_cores"]), t0_s),
                y_label="share of budget",
                limits={f"{saturation.CPU_LIMIT_SHARE:.0%}": saturation.CPU_LIMIT_SHARE},
            )
        )
    memory = processes.rename(columns={"rss_bytes": "value"})
    found.append(
        charts.line_chart(
            "memory",
            "Memory per process (resident, MiB)",
            _per_process(memory[["t_s", "process", "value"]], t0_s, 1 / 2**20),
            y_label="MiB",
        )
    )
    found += _sse_charts(series, t0_s)
    queued = server.gauge(series, "haproxy_backend_current_queue", by_process=True)
    if len(queued):
        found.append(
            charts.line_chart(
                "gateway",
                "Gateway: requests queued for a backend",
                _per_process(queued, t0_s),
                y_label="requests",
            )
        )
    return found


def _sse_charts(series: pd.DataFrame, t0_s: float) -> list[str]:
    """The SSE replicas (when the landscape has any): streams held, events delivered, and the
    delivery latency inside the replica, with the run's totals in the title."""
    held = server.gauge(series, "backbone_sse_connections")
    if held.empty:
        return []
    delivered = server.samples(series, "backbone_sse_events_delivered_total")
    per_second = server.per_interval(delivered, server.label_keys(delivered)) if len(delivered) else delivered
    if len(per_second):
        per_second = (
            per_second.assign(value=per_second["value"] / per_second["interval_s"])
            .groupby(["t_s", "process"], observed=True)["value"]
            .sum()
            .reset_index()
        )
    total = server.totals(series, {"delivered": "backbone_sse_events_delivered_total"})["delivered"]
    count, p99_s = server.run_quantile(series, "backbone_sse_delivery_latency_seconds", 0.99)
    latency = server.mean_per_interval(series, "backbone_sse_delivery_latency_seconds").dropna()
    title = (
        f"SSE: streams held, events delivered ({total:,.0f} in the run) and delivery latency in the"
        f" replica (p99 {p99_s * 1000:.1f} ms of {count:,.0f})"
    )
    return [
        charts.line_chart(
            "sse",
            title,
            [
                *(Line(f"{line.name} streams", line.x, line.y) for line in _per_process(held, t0_s)),
                *(Line(f"{line.name} events/s", line.x, line.y) for line in _per_process(per_second, t0_s)),
                *(
                    Line(f"{line.name} latency (ms)", line.x, line.y)
                    for line in _per_process(latency, t0_s, 1000)
                ),
            ],
            y_label="streams, events/s, ms",
        )
    ]


# The page

ROUTE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("method", "method"),
    ("route", "route"),
    ("count", "count"),
    ("rate_per_s", "req/s"),
    ("errors", "errors"),
    *((f"corrected_{stem}_ms", f"{stem} ms") for stem in ("p50", "p90", "p95", "p99", "p99.9", "max")),
    *((f"uncorrected_{stem}_ms", f"{stem} ms") for stem in ("p50", "p90", "p95", "p99", "p99.9", "max")),
    ("server_count", "count"),
    *((f"server_{stem}_ms", f"{stem} ms") for stem in ("p50", "p90", "p95", "p99", "p99.9")),
)
SLO_HEADER = ("SLO", "source", "view", "threshold", "limit", "measured", "count", "verdict")
TIER_HEADER = ("tier", "saturated", "onset", "metric", "figure")
SETUP_HEADER = ("method", "route", "count", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms")
FLOW_HEADER = (
    "flow",
    "target/s",
    "achieved/s",
    "scheduled",
    "started",
    "late",
    "late unqueued",
    "queued",
    "dropped",
    "completed",
    "failed",
    "unfinished",
)
ERROR_HEADER = ("method", "route", "status", "error code", "count")


def _tier_rows(report: Report) -> list[list[str]]:
    return [
        [
            verdict.tier,
            "SATURATED" if verdict.saturated else "no",
            "-" if math.isnan(verdict.onset_s) else f"{verdict.onset_s:.0f} s",
            verdict.metric or "-",
            verdict.figure,
        ]
        for verdict in report.tiers
    ]


def _slo_rows(report: Report) -> list[list[str]]:
    return [
        [
            str(row["slo"]),
            str(row["source"]),
            str(row["view"]),
            str(row["threshold"]),
            f"{row['limit']:g}",
            number(row["measured"], 2),
            number(int(row["count"])),
            verdicts.describe_verdict(str(row["verdict"]), int(row["count"])),
        ]
        for row in report.slos.to_dict("records")
    ]


def _setup_text(report: Report) -> str:
    """Say what the setup phase was, and how the pool's passwords were hashed."""
    iterations = report.manifest.pool_pbkdf2_iterations
    cost = (
        f" The pool's passwords were seeded with PBKDF2 at {iterations:,} iterations "
        "(the backbone hashes new passwords at its own setting): a log-in measures the landscape, "
        "not the password hash's cost."
        if iterations
        else ""
    )
    if not len(report.setup):
        return "No setup phase: the load generator requested nothing before the schedule's clock." + cost
    count = int(report.setup["count"].sum())
    return (
        f"{count:,} requests in {report.setup_s:.1f} s before the schedule's clock started (the personas "
        f"log in); reported here, never judged against the SLOs.{cost}"
    )


def _intro(report: Report) -> str:
    manifest, load = report.manifest, report.load
    text = (
        f"Scenario {manifest.scenario.name} on profile {manifest.profile.name}, "
        f"{report.duration_s:.0f} s from {manifest.started_at}; {load.requests:,} requests: offered "
        f"{number(load.offered_requests_per_s)} requests/s, answered {number(load.achieved_requests_per_s)} "
        f"requests/s in the {load.window_s:g} s measured window (corrected p50 {number(load.p50_ms)} ms, "
        f"p90 {number(load.p90_ms)} ms, p99 {number(load.p99_ms)} ms)."
    )
    if load.warm_up_s > 0:
        text += (
            f" Before it, a {load.warm_up_s:g} s warm-up at the same rate: {load.warm_up_requests:,} "
            "requests, never judged."
        )
    return text


def _generator_text(manifest: RunManifest) -> str:
    generator = manifest.load_generator
    if not generator.processes:
        return "The manifest names no load generator process."
    cores = ", ".join(map(str, generator.cores)) or "any"
    joined = sum(1 for process in generator.processes if process.joined)
    from_elsewhere = f", {joined} of them joined with testbed load-worker" if joined else ""
    return (
        f"Locust's master and {generator.workers} worker(s){from_elsewhere}; the run's own on core(s) "
        f"{cores}. The master sends the workers their shares of the schedule and generates no load. "
        "Each process is sampled with its CPU limit (a joined worker samples itself and reports to the "
        "master); the run is invalid when any of them (or all together) is CPU-bound. CPU in cores."
    )


def run_page(report: Report) -> Page:
    """Describe a run's report as a page (three verdict boxes first)."""
    slo_line, validity_line, tier_line = report.headline()
    return Page(
        title=f"Run {report.run_id}",
        headlines=(
            Headline(slo_line, page.PASS if report.slo_passed else page.FAIL, "slo-verdict"),
            Headline(validity_line, page.PASS if report.valid else page.FAIL, "validity-verdict"),
            Headline(tier_line, page.INFO, "first-saturated"),
        ),
        intro=_intro(report),
        sections=(
            *_resilience_sections(report),
            Section("Over time", (Charts(report.charts[:2]),)),
            Section(
                "Routes",
                (
                    Paragraph(
                        "Latency in ms. Corrected: from the intended start (coordinated omission "
                        "corrected); uncorrected: from the send; server: interpolated from the server's "
                        "duration histogram."
                    ),
                    Table(
                        [label for _, label in ROUTE_COLUMNS],
                        rows_of(report.routes, [column for column, _ in ROUTE_COLUMNS]),
                        groups=[("", 5), ("corrected", 6), ("uncorrected", 6), ("server", 6)],
                    ),
                ),
            ),
            Section("SLOs", (Table(SLO_HEADER, _slo_rows(report)),)),
            Section(
                "Setup phase",
                (
                    Paragraph(_setup_text(report)),
                    Table(SETUP_HEADER, rows_of(report.setup, list(report.setup.columns))),
                ),
                element_id="setup",
            ),
            Section(
                "Saturation per tier", (Table(TIER_HEADER, _tier_rows(report)), Charts(report.charts[2:]))
            ),
            Section(
                "CPU budgets",
                (
                    Paragraph(cpu.mechanism_text(report.manifest.profile)),
                    Table(cpu.BUDGET_COLUMNS, rows_of(report.budgets, list(report.budgets.columns))),
                ),
                element_id="cpu-budgets",
            ),
            Section(
                "CPU without a budget",
                (Table(cpu.UNBUDGETED_COLUMNS, rows_of(report.unbudgeted, list(report.unbudgeted.columns))),),
                element_id="cpu-unbudgeted",
            ),
            Section(
                "Arrivals (start accounting)",
                (
                    Table(
                        FLOW_HEADER,
                        rows_of(report.flows, list(report.flows.columns)),
                        empty="No start accounting (closed model or not recorded).",
                    ),
                ),
            ),
            Section(
                "Load generator",
                (
                    Paragraph(_generator_text(report.manifest)),
                    Table(cpu.GENERATOR_COLUMNS, rows_of(report.generator, list(report.generator.columns))),
                ),
            ),
            Section(
                "Errors by code",
                (
                    Table(
                        ERROR_HEADER,
                        rows_of(report.errors, list(report.errors.columns)),
                        empty="No failed request.",
                    ),
                ),
            ),
        ),
        appendix=(Details("Manifest", Table(("key", "value"), page.flat_rows(report.manifest))),),
    )


RECOVERY_HEADER = (
    "fault",
    "acted on",
    "from s",
    "to s",
    "requests",
    "errors",
    "error codes",
    *(f"p{p:g} {stretch}" for stretch in ("before", "during", "after") for p in recovery.PERCENTILES),
    "within SLO before",
    "back within SLO after s",
    "verdict",
)
RSS_HEADER = ("process", "tier", "samples", "MiB at start", "MiB at end", "MiB/h", "%/h", "verdict")
P90_HEADER = ("method", "route", "bins", "p90 ms at start", "at end", "ms/h", "%/h", "verdict")


def _resilience_sections(report: Report) -> list[Section]:
    sections = []
    if report.has_faults or report.acknowledged is not None:
        text = (
            "Each fault as applied (seconds from the measured window's start), the requests intended "
            f"while it was active, the corrected latency in ms up to {recovery.COMPARED_S:g} s before, "
            "during and after it, and how long after it ended the landscape was back within its SLO: the "
            f"first {verdicts.RECOVERY_WINDOW_S:g} s window in which at most "
            f"{verdicts.RECOVERY_OVER_P90_SHARE:.0%} of requests took longer than their route's p90 "
            "limit and the failure ratio was within the SLO's. "
            + _sentence(recovery.acknowledged_line(report.acknowledged))
            + ": every id the backbone acknowledged with a 2xx, read back from the landscape's database "
            "after the load."
        )
        rows = [
            [
                verdicts.describe_verdict(value, 0)
                if column == "verdict"
                else page.number(value)
                if isinstance(value, float)
                else str(value)
                for column, value in zip(report.recovery.columns, row, strict=True)
            ]
            for row in report.recovery.itertuples(index=False)
        ]
        sections.append(
            Section(
                "Faults and recovery",
                (Paragraph(text), Table(RECOVERY_HEADER, rows, empty="No fault in this run.")),
                element_id="faults",
            )
        )
    if report.is_soak:
        window = report.drift_window_s
        judged = (
            "judged against the soak's limits"
            if window >= verdicts.MIN_DRIFT_WINDOW_S
            else f"too short to judge (under {verdicts.MIN_DRIFT_WINDOW_S / 60:g} min), reported only"
        )
        sections.append(
            Section(
                "Drift",
                (
                    Paragraph(
                        f"Least-squares slopes over the {window / 60:.1f} min after the ramp, {judged}: "
                        "each landscape process's resident memory and each route's p90 per bin."
                    ),
                    Table(RSS_HEADER, _drift_rows(report.rss_drift)),
                    Table(P90_HEADER, _drift_rows(report.p90_drift)),
                    Charts(report.resilience_charts),
                ),
                element_id="drift",
            )
        )
    return sections


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _drift_verdict(verdict: str) -> str:
    return "not judged" if verdict == verdicts.TOO_FEW else verdicts.describe_verdict(verdict, 0)


def _drift_rows(frame: pd.DataFrame) -> list[list[str]]:
    return [
        [
            _drift_verdict(value)
            if column == "verdict"
            else page.number(value)
            if isinstance(value, float)
            else str(value)
            for column, value in zip(frame.columns, row, strict=True)
        ]
        for row in frame.itertuples(index=False)
    ]


def render_html(report: Report) -> str:
    """Return the self-contained HTML report."""
    return page.render_html(run_page(report))


def render_markdown(report: Report) -> str:
    """Return the Markdown summary (three verdict lines first)."""
    return page.render_markdown(run_page(report))


def render_run(run_dir: str | Path) -> Report:
    """Read a run directory, compute its report and write report.html and summary.md into it."""
    run = read_run(run_dir)
    report = build_report(run)
    page.write_page(run_page(report), run.path / REPORT_HTML, run.path / SUMMARY_MD)
    return report
