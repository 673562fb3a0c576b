"""The run directory `results/<run-id>/`: what a run leaves behind and how the report reads it.

    manifest.json        what ran, where, when: git revision, profile, scenario, versions, machine
                         (a typed `RunManifest` with a format version: reports/manifest.py)
    requests/*.parquet   one row per request (each load-generating process writes its own parts)
    setup/*.parquet      the same for the requests before the schedule's clock (log-ins); not judged
    series/*.parquet     every scraped Prometheus sample, per process, once a second
    processes.parquet    CPU and memory of every process (and the load generator) once a second
    budgets.parquet      the kernel's counters of every CPU budget's cgroup once a second: CPU
                         time used, quota periods, throttled periods and time
    arrival.json         the arrival engine's start accounting (scheduled, late, dropped per flow)
    faults.json          each scenario fault as applied: planned and actual start and end (epoch s)
    acknowledged/        every id the backbone acknowledged with a 2xx (JSON lines, per load process)
    acknowledged.json    the verifier's read-back of them after the load: recorded, found, lost
    logs/                the logs of the landscape's processes and of the load generator
    report.html          the rendered report (self-contained)
    summary.md           its Markdown summary

`docs/reports.md` describes every column. The columns are fixed here, in one place, and the
writers and readers check them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reports.manifest import RunManifest, read_manifest

REQUESTS = "requests"
SETUP_REQUESTS = "setup"
SERIES = "series"
PROCESSES = "processes.parquet"
BUDGETS = "budgets.parquet"
ARRIVAL = "arrival.json"
FAULTS = "faults.json"
ACKNOWLEDGED = "acknowledged"
ACKNOWLEDGED_CHECK = "acknowledged.json"
# Written once, by the first load process whose schedule's clock starts: the epoch second the
# scenario's time offsets (its faults' at_s) count from.
SCHEDULE_STARTED = "schedule-started"
LOGS = "logs"
REPORT_HTML = "report.html"
SUMMARY_MD = "summary.md"

# Column name -> dtype. Times are Unix epoch seconds (float64), durations seconds.
REQUEST_COLUMNS: dict[str, str] = {
    "intended_start_s": "float64",  # when the request should have been sent (open model)
    "start_s": "float64",  # when it was sent
    "flow": "category",
    "method": "category",
    "route": "category",  # the server's route template (one route vocabulary)
    "status": "int16",  # HTTP status; 0 when no response arrived
    "error_code": "category",  # backbone error code, exception class, or "" when it succeeded
    "ok": "bool",  # counted as success by the flow (expected business errors included)
    "latency_s": "float64",  # uncorrected: send to response (service time as the client saw it)
    "corrected_latency_s": "float64",  # from the intended start (coordinated omission corrected)
}
SERIES_COLUMNS: dict[str, str] = {
    "t_s": "float64",  # scrape time
    "process": "category",  # e.g. node-1, worker-1, gateway-1
    "tier": "category",  # gateway, node, pooler, database, replica, events, admin
    "name": "category",  # sample name as exposed, e.g. http_server_request_duration_seconds_bucket
    "labels": "category",  # the sample's labels in Prometheus notation, sorted: a="1",b="2"
    "value": "float64",
}
PROCESS_COLUMNS: dict[str, str] = {
    "t_s": "float64",
    "process": "category",
    "tier": "category",  # as above, plus load-generator
    "pid": "int64",
    "cpu_percent": "float64",  # of one core, the process and its children: 150 = 1.5 cores
    "rss_bytes": "int64",
    "cpu_limit_cores": "float64",  # its CPU budget (cgroup), or the whole cores it keeps to (NaN: none)
}
# The counters are cumulative since the group was made (`up`): rates come from differences.
BUDGET_COLUMNS: dict[str, str] = {
    "t_s": "float64",
    "process": "category",  # the budgeted process: node1, gateway1, postgresql, ...
    "tier": "category",
    "mechanism": "category",  # cgroup v2 or cgroup v1
    "budget_cores": "float64",  # its quota per period, in cores
    "period_s": "float64",  # the quota period
    "used_s": "float64",  # CPU time of every process in the group (cpu.stat usage / cpuacct.usage)
    "periods": "int64",  # quota periods in which the group ran (nr_periods)
    "throttled_periods": "int64",  # of those, periods in which the quota stopped it (nr_throttled)
    "throttled_s": "float64",  # time its processes waited for the next period (throttled time)
}
TIERS = ("gateway", "node", "pooler", "database", "replica", "events")
# Tiers only some landscapes have (PgBouncer, replicas): judged when they have data, else left out.
OPTIONAL_TIERS = ("pooler", "replica")
LOAD_GENERATOR = "load-generator"

_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class RunDirectoryError(Exception):
    """A run directory is missing a file or holds a table with the wrong columns."""


@dataclass(frozen=True)
class Run:
    """Everything a report needs from one run directory."""

    path: Path
    manifest: RunManifest
    requests: pd.DataFrame
    series: pd.DataFrame
    processes: pd.DataFrame
    arrival: Mapping[str, Any] = field(default_factory=dict)
    # The budgets' cgroup counters (BUDGET_COLUMNS); empty for runs without a cgroup budget.
    budgets: pd.DataFrame = field(default_factory=lambda: empty_frame(BUDGET_COLUMNS))
    # The setup phase's requests (the REQUEST_COLUMNS); empty for runs without one.
    setup_requests: pd.DataFrame = field(default_factory=lambda: empty_frame(REQUEST_COLUMNS))


def empty_frame(columns: Mapping[str, str]) -> pd.DataFrame:
    """Return an empty table with the given columns and dtypes."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def conform(frame: pd.DataFrame, columns: Mapping[str, str], what: str) -> pd.DataFrame:
    """Return the table with exactly the contract's columns and dtypes, or say what is missing."""
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise RunDirectoryError(f"{what}: missing column(s) {', '.join(missing)}")
    if list(frame.columns) != list(columns):
        frame = frame[list(columns)]
    # Column by column and only where needed: a 10-million-row table must not be copied whole.
    for name, dtype in columns.items():
        if str(frame[name].dtype) != dtype:
            frame[name] = frame[name].astype(pd.api.types.pandas_dtype(dtype))
    return frame


def format_labels(labels: Mapping[str, str]) -> str:
    """Return labels in sorted Prometheus notation (`a="1",b="2"`), the `labels` column's form."""
    return ",".join(f'{key}="{_escape(value)}"' for key, value in sorted(labels.items()))


def parse_labels(text: str) -> dict[str, str]:
    """Invert `format_labels`."""
    return {key: value.replace('\\"', '"').replace("\\\\", "\\") for key, value in _LABEL.findall(text)}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def write_table(frame: pd.DataFrame, path: Path, columns: Mapping[str, str], what: str) -> None:
    """Write one parquet file of a table after checking its columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conform(frame, columns, what).to_parquet(path, index=False)


def read_run(run_dir: str | Path) -> Run:
    """Read a run directory; tables that were not written come back empty."""
    path = Path(run_dir)
    manifest = read_manifest(path)
    arrival_path = path / ARRIVAL
    arrival = json.loads(arrival_path.read_text(encoding="utf-8")) if arrival_path.is_file() else {}
    return Run(
        path=path,
        manifest=manifest,
        requests=read_table(path / REQUESTS, REQUEST_COLUMNS, "requests"),
        series=read_table(path / SERIES, SERIES_COLUMNS, "series"),
        processes=read_table(path / PROCESSES, PROCESS_COLUMNS, "processes"),
        arrival=arrival,
        budgets=read_table(path / BUDGETS, BUDGET_COLUMNS, "budgets"),
        setup_requests=read_table(path / SETUP_REQUESTS, REQUEST_COLUMNS, "setup requests"),
    )


def read_table(
    path: Path, columns: Mapping[str, str], what: str, only: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read a table (one parquet file or a directory of parts) with the contract's columns.

    `only`: read just these of the contract's columns (a comparison of a 10-million-request run
    needs six of ten).
    """
    if only is not None:
        columns = {name: columns[name] for name in only}
    parts = _parts(path)
    if not parts:
        return empty_frame(columns)
    tables = [pq.read_table(part, columns=list(columns) if only is not None else None) for part in parts]
    table = pa.concat_tables(tables, promote_options="default").unify_dictionaries()
    del tables
    # One column per block and the Arrow buffers released as they convert: the peak stays near
    # the table's own size.
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    return conform(frame, columns, f"{path}: {what}")


def _parts(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(part for part in path.glob("*.parquet") if part.stat().st_size > 0)
    return []


def flows_table(arrival: Mapping[str, Any]) -> pd.DataFrame:
    """Return the arrival engine's per-flow start accounting as a table (empty for a closed run)."""
    columns = [
        "flow",
        "target_rate_per_s",
        "achieved_rate_per_s",
        "scheduled",
        "started",
        "late",
        "late_unqueued",
        "queued",
        "dropped",
        "completed",
        "failed",
        "unfinished",
    ]
    rows = [
        {"flow": flow.get("name", ""), **{name: flow.get(name) for name in columns[1:]}}
        for flow in arrival.get("flows", ())
    ]
    frame = pd.DataFrame(rows, columns=columns)
    for name in columns[1:3]:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    for name in columns[3:]:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").fillna(0).astype(np.int64)
    return frame
