"""Compute a run's report from its tables and write it as one HTML file and a Markdown summary.

load (`rundir.read_run`) -> compute (`build_report`, pure) -> write (`render_html`,
`render_markdown`). The summary opens with three lines: the SLO verdict, the validity verdict,
and the first saturated tier with the metric and value that show it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports import charts, cpu, latency, saturation, server, verdicts
from reports.charts import Line
from reports.manifest import RunManifest
from reports.rundir import REPORT_HTML, SUMMARY_MD, Run, flows_table, read_run


@dataclass(frozen=True)
class Report:
    """Every figure and verdict of one run, ready to be written."""

    run_id: str
    manifest: RunManifest
    t0_s: float
    duration_s: float
    routes: pd.DataFrame
    over_time: pd.DataFrame
    errors: pd.DataFrame
    flows: pd.DataFrame
    slos: pd.DataFrame
    setup: pd.DataFrame
    setup_s: float
    problems: tuple[str, ...]
    rules: tuple[saturation.RuleResult, ...]
    tiers: tuple[saturation.TierVerdict, ...]
    first_saturated: saturation.TierVerdict | None
    charts: tuple[str, ...]
    # Every CPU budget with what held it, its use and throttling; every process without one.
    budgets: pd.DataFrame
    unbudgeted: pd.DataFrame

    @property
    def slo_passed(self) -> bool:
        return bool(len(self.slos)) and verdicts.slo_passed(self.slos["verdict"])

    @property
    def valid(self) -> bool:
        return not self.problems

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
            failed = self.slos[self.slos["verdict"] == verdicts.FAIL]
            shown = "; ".join(
                f"{row.slo} {row.threshold} {_number(row.measured)} (limit {row.limit:g})"
                for row in failed.head(3).itertuples()
            )
            more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
            slo = f"SLO: FAIL: {len(failed)} of {len(self.slos)} thresholds missed: {shown}{more}"
        validity = "Validity: VALID" if self.valid else "Validity: INVALID: " + "; ".join(self.problems)
        first = self.first_saturated
        if first is None:
            tier = "First saturated tier: none (no tier met a saturation rule)"
        else:
            at = f" from {first.onset_s:.0f} s" if not math.isnan(first.onset_s) else ""
            tier = f"First saturated tier: {first.tier}{at}: {first.metric}: {first.figure}"
        return slo, validity, tier


def build_report(run: Run) -> Report:
    """Compute every table, verdict and chart of a run."""
    manifest = run.manifest
    requests, series, processes = run.requests, run.series, run.processes
    t0_s, end_s = _run_window(manifest, requests, series, processes)
    duration_s = max(end_s - t0_s, 1e-9)
    routes = latency.route_summary(requests, duration_s).merge(
        server.server_durations(series), on=["method", "route"], how="outer"
    )
    routes = routes.sort_values(["route", "method"], ignore_index=True)
    # Routes only one side saw (the scrapes, health checks) leave gaps: counts stay integers.
    routes = routes.astype({"count": "Int64", "errors": "Int64", "server_count": "Int64"})
    window_s = latency.window_for(duration_s)
    timeline = latency.over_time(requests, t0_s, window_s)
    _, keys = latency.route_codes(requests)
    slos = verdicts.with_defaults(manifest.scenario.slos, zip(keys["method"], keys["route"], strict=True))
    flows = flows_table(run.arrival)
    setup, setup_s = latency.setup_summary(run.setup_requests)
    problems = verdicts.validity_problems(
        processes, flows, len(requests), model=manifest.scenario.model, window_s=(t0_s, end_s)
    )
    rules = saturation.evaluate(
        series,
        processes,
        t0_s,
        requests=requests,
        threads_per_worker=manifest.profile.threads_per_worker,
        machine_cores=float(manifest.machine.cpus),
        budgets=run.budgets,
    )
    tiers = saturation.tier_verdicts(rules)
    return Report(
        run_id=manifest.run_id,
        manifest=manifest,
        t0_s=t0_s,
        duration_s=duration_s,
        routes=routes,
        over_time=timeline,
        errors=latency.errors_by_code(requests),
        flows=flows,
        slos=verdicts.judge_slos(requests, slos),
        setup=setup,
        setup_s=setup_s,
        problems=tuple(problems),
        rules=tuple(rules),
        tiers=tuple(tiers),
        first_saturated=saturation.first_saturated(tiers),
        charts=tuple(_charts(timeline, series, processes, t0_s, window_s, run.budgets)),
        budgets=cpu.budget_table(manifest.profile, run.budgets, processes, (t0_s, end_s)),
        unbudgeted=cpu.unbudgeted_table(manifest.profile, processes, (t0_s, end_s)),
    )


def _run_window(
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
            "CPU per process (cores; 1 = one core busy), the load generator included",
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


# Writing


def _number(value: Any, digits: int = 1) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    if isinstance(value, float | np.floating):
        return f"{value:,.{digits}f}"
    return str(value)


ROUTE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("method", "method"),
    ("route", "route"),
    ("count", "count"),
    ("rate_per_s", "req/s"),
    ("errors", "errors"),
    *((f"corrected_{stem}_ms", f"{stem} ms") for stem in ("p50", "p90", "p95", "p99", "p99.9", "max")),
    *((f"uncorrected_{stem}_ms", f"{stem} ms") for stem in ("p50", "p90", "p95", "p99", "p99.9", "max")),
    ("server_count", "server count"),
    *((f"server_{stem}_ms", f"{stem} ms") for stem in ("p50", "p90", "p95", "p99", "p99.9")),
)


def _rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[list[str]]:
    return [[_number(value) for value in row] for row in frame[list(columns)].itertuples(index=False)]


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
            _number(row["measured"], 2),
            _number(int(row["count"])),
            verdicts.describe_verdict(str(row["verdict"]), int(row["count"])),
        ]
        for row in report.slos.to_dict("records")
    ]


SETUP_HEADER = ("method", "route", "count", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms")


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


def _manifest_rows(manifest: RunManifest) -> list[list[str]]:
    def flat(prefix: str, value: Any) -> list[list[str]]:
        if isinstance(value, Mapping):
            return [
                row
                for key, item in value.items()
                for row in flat(f"{prefix}.{key}" if prefix else str(key), item)
            ]
        if isinstance(value, list) and value and isinstance(value[0], Mapping):
            return [row for index, item in enumerate(value) for row in flat(f"{prefix}[{index}]", item)]
        return [[prefix, str(value)]]

    return flat("", dataclasses.asdict(manifest))


SLO_HEADER = ("SLO", "source", "view", "threshold", "limit", "measured", "count", "verdict")
TIER_HEADER = ("tier", "saturated", "onset", "metric", "figure")
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


def render_markdown(report: Report) -> str:
    """Return the Markdown summary (three verdict lines first)."""
    lines = [*(f"{line}  " for line in report.headline()), ""]
    manifest = report.manifest
    lines += [
        f"# Run {report.run_id}",
        "",
        f"Scenario `{manifest.scenario.name}` on profile `{manifest.profile.name}`, "
        f"{report.duration_s:.0f} s from {manifest.started_at}; "
        f"{int(report.routes['count'].fillna(0).sum()):,} requests.",
        "",
        "## Routes (latency in ms: corrected from the intended start | uncorrected | server histogram)",
        "",
    ]
    lines += _markdown_table(
        [label for _, label in ROUTE_COLUMNS], _rows(report.routes, [c for c, _ in ROUTE_COLUMNS])
    )
    lines += ["", "## SLOs", "", *_markdown_table(SLO_HEADER, _slo_rows(report))]
    lines += ["", "## Setup phase", "", _setup_text(report)]
    if len(report.setup):
        lines += ["", *_markdown_table(SETUP_HEADER, _rows(report.setup, list(report.setup.columns)))]
    lines += ["", "## Saturation per tier", "", *_markdown_table(TIER_HEADER, _tier_rows(report))]
    lines += ["", "## CPU budgets", "", cpu.mechanism_text(manifest.profile), ""]
    lines += _markdown_table(cpu.BUDGET_COLUMNS, _rows(report.budgets, list(report.budgets.columns)))
    lines += ["", "## CPU without a budget", ""]
    lines += _markdown_table(
        cpu.UNBUDGETED_COLUMNS, _rows(report.unbudgeted, list(report.unbudgeted.columns))
    )
    if len(report.flows):
        lines += ["", "## Arrivals (start accounting)", ""]
        lines += _markdown_table(FLOW_HEADER, _rows(report.flows, list(report.flows.columns)))
    lines += ["", "## Errors by code", ""]
    lines += (
        _markdown_table(ERROR_HEADER, _rows(report.errors, list(report.errors.columns)))
        if len(report.errors)
        else ["none"]
    )
    return "\n".join(lines) + "\n"


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return lines


STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1600px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}
.verdicts p{margin:4px 0;padding:6px 10px;border-radius:4px;font-weight:600}
.pass{background:#e6f4ea}.fail{background:#fce8e6}.info{background:#eef3fb}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right;vertical-align:top}
td:nth-child(-n+2),th{text-align:left}
figure.chart{display:inline-block;margin:8px 16px 16px 0;vertical-align:top}
figcaption{font-weight:600;margin-bottom:4px}
svg text{font-size:11px;fill:#444}
.legend .key{margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}
details{margin-top:16px}
"""


def render_html(report: Report) -> str:
    """Return the self-contained HTML report (inline CSS and SVG; no external reference)."""
    slo_line, validity_line, tier_line = report.headline()
    manifest = report.manifest
    body = [
        f"<h1>Run {escape(report.run_id)}</h1>",
        '<section class="verdicts">',
        f'<p class="{"pass" if report.slo_passed else "fail"}" id="slo-verdict">{escape(slo_line)}</p>',
        f'<p class="{"pass" if report.valid else "fail"}" id="validity-verdict">{escape(validity_line)}</p>',
        f'<p class="info" id="first-saturated">{escape(tier_line)}</p>',
        "</section>",
        f"<p>Scenario <b>{escape(manifest.scenario.name)}</b> on profile "
        f"<b>{escape(manifest.profile.name)}</b>, {report.duration_s:.0f} s from "
        f"{escape(manifest.started_at)}.</p>",
        "<h2>Over time</h2>",
        *report.charts[:2],
        "<h2>Routes</h2>",
        "<p>Latency in ms. Corrected: from the intended start (coordinated omission corrected); "
        "uncorrected: from the send; server: interpolated from the server's duration histogram.</p>",
        _html_table(
            [label for _, label in ROUTE_COLUMNS],
            _rows(report.routes, [c for c, _ in ROUTE_COLUMNS]),
            groups=[("", 5), ("corrected", 6), ("uncorrected", 6), ("server", 6)],
        ),
        "<h2>SLOs</h2>",
        _html_table(SLO_HEADER, _slo_rows(report)),
        '<h2 id="setup">Setup phase</h2>',
        f"<p>{escape(_setup_text(report))}</p>",
        _html_table(SETUP_HEADER, _rows(report.setup, list(report.setup.columns)))
        if len(report.setup)
        else "",
        "<h2>Saturation per tier</h2>",
        _html_table(TIER_HEADER, _tier_rows(report)),
        '<h2 id="cpu-budgets">CPU budgets</h2>',
        f"<p>{escape(cpu.mechanism_text(manifest.profile))}</p>",
        _html_table(cpu.BUDGET_COLUMNS, _rows(report.budgets, list(report.budgets.columns))),
        '<h2 id="cpu-unbudgeted">CPU without a budget</h2>',
        _html_table(cpu.UNBUDGETED_COLUMNS, _rows(report.unbudgeted, list(report.unbudgeted.columns))),
        *report.charts[2:],
        "<h2>Arrivals</h2>",
        _html_table(FLOW_HEADER, _rows(report.flows, list(report.flows.columns)))
        if len(report.flows)
        else "<p>No start accounting (closed model or not recorded).</p>",
        "<h2>Errors by code</h2>",
        _html_table(ERROR_HEADER, _rows(report.errors, list(report.errors.columns)))
        if len(report.errors)
        else "<p>No failed request.</p>",
        "<details><summary>Manifest</summary>",
        _html_table(("key", "value"), _manifest_rows(report.manifest)),
        "</details>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Run {escape(report.run_id)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def _html_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], groups: Sequence[tuple[str, int]] = ()
) -> str:
    head = ""
    if groups:
        head = (
            "<tr>" + "".join(f'<th colspan="{span}">{escape(name)}</th>' for name, span in groups) + "</tr>"
        )
    head += "<tr>" + "".join(f"<th>{escape(name)}</th>" for name in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{escape(value)}</td>" for value in row) + "</tr>" for row in rows)
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


def render_run(run_dir: str | Path) -> Report:
    """Read a run directory, compute its report and write report.html and summary.md into it."""
    run = read_run(run_dir)
    report = build_report(run)
    (run.path / REPORT_HTML).write_text(render_html(report), encoding="utf-8")
    (run.path / SUMMARY_MD).write_text(render_markdown(report), encoding="utf-8")
    return report
