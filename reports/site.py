"""`results/index.html`: the operators' page of everything under `results/`, one self-contained file.

It shows the history (reports/history.py) with a link to every report and comparison, trend
charts of each route's p90, p98 and throughput across the runs of one scenario on one profile,
and each capacity search with its limiting tier. Charts are inline SVG (reports/charts.py); the
page names no http(s) address and loads nothing, so it opens from the file system on a machine
without Grafana. Sweeps get a section of their own once they exist.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from reports import charts, latency
from reports.charts import Line
from reports.history import HISTORY_HEADER, Entry, History, entry_rows, read_capacity, run_entry, scan
from reports.manifest import read_manifest
from reports.page import STYLE
from reports.rundir import REQUEST_COLUMNS, REQUESTS, read_table

INDEX_HTML = "index.html"
TREND_PERCENTILES = (90.0, 98.0)
SITE_STYLE = STYLE + "td a{color:#1f4e9c}.note{color:#555}"


def route_figures(run_dir: Path) -> pd.DataFrame:
    """One run's per-route figures for the trends: method, route, count, rate_per_s, p90_ms, p98_ms.

    Percentiles are nearest-rank on the corrected latency, as in the run's report.
    """
    columns = ["method", "route", "count", "rate_per_s", "p90_ms", "p98_ms"]
    manifest = read_manifest(run_dir)
    requests = read_table(
        run_dir / REQUESTS, REQUEST_COLUMNS, "requests", only=("method", "route", "corrected_latency_s")
    )
    if requests.empty:
        return pd.DataFrame(columns=columns)
    codes, keys = latency.route_codes(requests)
    counts, values, _ = latency.grouped_nearest_rank(
        codes, requests["corrected_latency_s"].to_numpy(np.float64), len(keys), TREND_PERCENTILES
    )
    started, ended = manifest.started_at_s, manifest.ended_at_s
    duration_s = (
        ended - started if started is not None and ended is not None and ended > started else math.nan
    )
    keys["count"] = counts
    keys["rate_per_s"] = counts / duration_s
    keys["p90_ms"] = values[:, 0] * 1000
    keys["p98_ms"] = values[:, 1] * 1000
    return keys[columns]


def _runs_with_members(history: History) -> list[Entry]:
    """Every run: the runs at the top and those inside repeats, oldest first."""
    runs = list(history.of_kind("run"))
    for group in history.of_kind("repeats"):
        runs += [run_entry(history.results_dir / member) for member in group.members]
    return sorted(runs, key=lambda entry: (entry.started_at_s or 0.0, entry.entry_id))


def trends(runs: Sequence[Entry]) -> dict[tuple[str, str], pd.DataFrame]:
    """Per (scenario, profile) with at least two runs: every run's per-route figures, with `run`
    (1 = oldest) and `run_id` columns."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for entry in runs:
        groups.setdefault((entry.scenario, entry.profile), []).append(entry)
    found = {}
    for key, members in groups.items():
        if len(members) < 2:
            continue
        frames = [
            route_figures(entry.path).assign(run=number, run_id=entry.entry_id)
            for number, entry in enumerate(members, start=1)
        ]
        found[key] = pd.concat(frames, ignore_index=True)
    return found


def _trend_charts(index: int, frame: pd.DataFrame) -> list[str]:
    def lines(column: str) -> list[Line]:
        return [
            Line(f"{method} {route}", rows["run"].to_numpy(np.float64), rows[column].to_numpy(np.float64))
            for (method, route), rows in frame.sort_values("run").groupby(["method", "route"], sort=True)
        ]

    return [
        charts.line_chart(
            f"trend-{index}-{column}",
            title,
            lines(column),
            x_label="run (1 = oldest)",
            y_label=unit,
        )
        for column, title, unit in (
            ("p90_ms", "p90 per route (corrected latency)", "ms"),
            ("p98_ms", "p98 per route (corrected latency)", "ms"),
            ("rate_per_s", "Throughput per route", "requests/s"),
        )
    ]


def _link(entry_dir: str, page: str, text: str) -> str:
    return f'<a href="{escape(entry_dir)}/{escape(page)}">{escape(text)}</a>' if page else escape(text)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], table_id: str) -> str:
    """A table whose cells are HTML already (escaped where they hold text)."""
    head = "".join(f"<th>{escape(name)}</th>" for name in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _history_rows(history: History) -> list[list[str]]:
    rows = []
    for entry, texts in zip(history.entries, entry_rows(history.entries), strict=True):
        cells = [escape(text) for text in texts]
        cells[0] = _link(entry.path.name, entry.report, entry.entry_id)
        if entry.kind == "repeats":
            cells[0] += "<br>" + "<br>".join(
                _link(member, "report.html", Path(member).name) for member in entry.members
            )
        rows.append(cells)
    return rows


def _capacity_rows(history: History) -> list[list[str]]:
    rows = []
    for entry in history.of_kind("capacity"):
        result = read_capacity(entry.path)
        rows.append(
            [
                _link(entry.path.name, entry.report, entry.entry_id),
                escape(entry.date),
                escape(result.scenario),
                escape(result.profile),
                "-" if result.capacity_rps is None else f"{result.capacity_rps:,.1f}",
                "-" if result.multiplier is None else f"{result.multiplier:g}",
                escape(result.limiting_tier or "-"),
                escape("; ".join(result.problems) or "valid"),
            ]
        )
    return rows


def _sweep_rows(history: History) -> list[list[str]]:
    return [
        [
            _link(entry.path.name, entry.report, entry.entry_id),
            escape(entry.date),
            escape(entry.profile),
            escape(entry.scenario),
            escape(entry.verdicts),
            escape(entry.capacity),
        ]
        for entry in history.of_kind("sweep")
    ]


def _comparison_rows(history: History) -> list[list[str]]:
    return [
        [
            _link(entry.path.name, entry.report, entry.entry_id),
            escape(entry.date),
            escape(entry.members[0]),
            escape(entry.members[1]),
            escape(entry.scenario),
            escape(entry.verdicts),
        ]
        for entry in history.of_kind("comparison")
    ]


def render_site(history: History, now_s: float | None = None) -> str:
    """Return the page (HTML) for a history."""
    generated = datetime.fromtimestamp(time.time() if now_s is None else now_s, UTC)
    runs = _runs_with_members(history)
    body = [
        "<h1>Backbone testbed results</h1>",
        f'<p class="note">{len(runs)} runs, {len(history.of_kind("repeats"))} repeated experiments, '
        f"{len(history.of_kind('capacity'))} capacity searches, {len(history.of_kind('sweep'))} sweeps, "
        f"{len(history.of_kind('comparison'))} "
        f"comparisons in {escape(str(history.results_dir))}; written {generated:%Y-%m-%d %H:%M:%S} UTC "
        "by <code>testbed site</code>.</p>",
        '<h2 id="history">History</h2>',
        _table(HISTORY_HEADER, _history_rows(history), "history-table")
        if history.entries
        else "<p>No results yet: <code>testbed run</code> writes the first.</p>",
        '<h2 id="trends">Trends</h2>',
    ]
    found = trends(runs)
    if not found:
        body.append("<p>A trend needs two runs of one scenario on one profile.</p>")
    for index, ((scenario, profile), frame) in enumerate(sorted(found.items()), start=1):
        order = frame[["run", "run_id"]].drop_duplicates().sort_values("run")
        legend = ", ".join(f"{run}: {escape(run_id)}" for run, run_id in order.itertuples(index=False))
        body += [
            f"<h3>Scenario {escape(scenario)} on profile {escape(profile)}</h3>",
            f'<p class="note">Runs, oldest first: {legend}.</p>',
            *_trend_charts(index, frame),
        ]
    body += ['<h2 id="capacity">Capacity searches</h2>']
    capacity = _capacity_rows(history)
    body.append(
        _table(
            (
                "search",
                "date",
                "scenario",
                "profile",
                "capacity req/s",
                "multiplier",
                "limiting tier",
                "validity",
            ),
            capacity,
            "capacity-table",
        )
        if capacity
        else "<p>No capacity search yet (<code>testbed capacity</code>).</p>"
    )
    body += ['<h2 id="sweeps">Sweeps</h2>']
    sweeps = _sweep_rows(history)
    body.append(
        _table(
            ("sweep", "date", "profile", "scenario", "cells", "recommendation"),
            sweeps,
            "sweep-table",
        )
        if sweeps
        else "<p>No sweep yet (<code>testbed sweep FILE</code>).</p>"
    )
    body += ['<h2 id="comparisons">Comparisons</h2>']
    comparisons = _comparison_rows(history)
    body.append(
        _table(
            ("comparison", "date", "baseline", "candidate", "scenario", "verdict"),
            comparisons,
            "comparison-table",
        )
        if comparisons
        else "<p>No comparison yet (<code>testbed compare BASELINE CANDIDATE</code>).</p>"
    )
    if history.unreadable:
        body += [
            "<h2>Not readable</h2>",
            "<ul>",
            *(f"<li>{escape(line)}</li>" for line in history.unreadable),
            "</ul>",
        ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Backbone testbed results</title><style>{SITE_STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def write_site(results_dir: Path, now_s: float | None = None) -> Path:
    """Write results_dir/index.html and return its path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / INDEX_HTML
    path.write_text(render_site(scan(results_dir), now_s), encoding="utf-8")
    return path
