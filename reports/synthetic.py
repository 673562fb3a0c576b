"""A synthetic run directory with consistent tables, for `make bench-report` and the report tests.

Requests follow a log-normal latency per route; the scraped series are what two nodes, a worker
and a database would expose for exactly those requests (the duration histogram's buckets count
the same requests), the process samples cover every tier and the load generator, and each node
has a CPU budget of NODE_BUDGET_CORES held by a cgroup v1 group whose counters the run sampled.
`stress` makes one tier saturate: "database" (pool exhausted, long checkout waits), "node" (every
request slot busy, node CPU at its budget, throttled) or None.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from reports.manifest import (
    BudgetRecord,
    CpuRecord,
    LandscapeRecord,
    Machine,
    RunManifest,
    ScenarioRecord,
    SloSpec,
    write_manifest,
)
from reports.rundir import (
    ARRIVAL,
    BUDGET_COLUMNS,
    BUDGETS,
    PROCESS_COLUMNS,
    PROCESSES,
    REQUEST_COLUMNS,
    REQUESTS,
    SERIES,
    SERIES_COLUMNS,
    SETUP_REQUESTS,
    format_labels,
    write_table,
)

ROUTES = (
    ("GET", "/api/v2/Challenges/{id}", 0.004),
    ("POST", "/api/v2/Challenges", 0.006),
    ("GET", "/api/v2/Messages", 0.012),
    ("POST", "/api/v2/Messages", 0.020),
    ("GET", "/api/v2/Datawallet/Modifications", 0.010),
    ("POST", "/api/v2/Datawallet/Modifications", 0.015),
    ("POST", "/api/v2/Tokens", 0.018),
    ("GET", "/api/v2/Files/{id}", 0.030),
    ("POST", "/api/v2/SyncRuns", 0.014),
    ("GET", "/api/v2/Relationships", 0.011),
)
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.16, 0.19, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
NODES = ("node-1", "node-2")
WORKERS_PER_NODE = 2
THREADS = 4
POOL_MAX = 15
SETUP_LOGINS = 200
NODE_BUDGET_CORES = 0.5


def write_synthetic_run(
    run_dir: str | Path,
    *,
    requests: int = 100_000,
    duration_s: int = 60,
    seed: int = 1,
    stress: str | None = None,
    parts: int = 2,
) -> Path:
    """Write a complete run directory (without the report) and return its path."""
    path = Path(run_dir)
    rng = np.random.default_rng(seed)
    t0_s = float(int(time.time()) - duration_s - 5)
    frame = _requests(rng, requests, duration_s, t0_s, stress)
    for index, part in enumerate(np.array_split(np.arange(len(frame)), parts)):
        write_table(frame.iloc[part], path / REQUESTS / f"part-{index}.parquet", REQUEST_COLUMNS, "requests")
    write_table(_setup(rng, t0_s), path / SETUP_REQUESTS / "part-0.parquet", REQUEST_COLUMNS, "setup")
    write_table(
        _series(rng, frame, duration_s, t0_s, stress),
        path / SERIES / "part-0.parquet",
        SERIES_COLUMNS,
        "series",
    )
    write_table(_processes(rng, duration_s, t0_s, stress), path / PROCESSES, PROCESS_COLUMNS, "processes")
    write_table(_budgets(rng, duration_s, t0_s, stress), path / BUDGETS, BUDGET_COLUMNS, "budgets")
    write_manifest(
        path,
        RunManifest(
            run_id=path.name,
            started_at_s=t0_s,
            ended_at_s=t0_s + duration_s,
            seed=seed,
            synthetic=True,
            scenario=ScenarioRecord(
                name="synthetic",
                model="open",
                slos=(SloSpec(route="/api/v2/Messages", method="GET", percentiles_ms=((95.0, 80.0),)),),
            ),
            profile=LandscapeRecord(
                name="synthetic",
                nodes={
                    "count": len(NODES),
                    "workers": WORKERS_PER_NODE,
                    "threads": THREADS,
                    "cpu_limit": NODE_BUDGET_CORES,
                },
                threads_per_worker=THREADS,
                cpu=CpuRecord(
                    landscape_cores=(0,),
                    load_generator_cores=(1,),
                    mechanism="cgroup v1",
                    budgets=tuple(
                        BudgetRecord(
                            node, "node", "nodes.cpu_limit", NODE_BUDGET_CORES, "cgroup v1", 100.0, (0,)
                        )
                        for node in NODES
                    ),
                ),
            ),
            machine=Machine(cpus=2),
        ),
    )
    rate = requests / duration_s
    flow = {"name": "synthetic", "target_rate_per_s": rate, "achieved_rate_per_s": rate}
    flow |= {"scheduled": requests, "started": requests, "completed": requests}
    flow |= dict.fromkeys(("late", "late_unqueued", "queued", "dropped", "failed", "unfinished"), 0)
    (path / ARRIVAL).write_text(json.dumps({"flows": [flow]}) + "\n", encoding="utf-8")
    return path


def _setup(rng: np.random.Generator, t0_s: float, logins: int = SETUP_LOGINS) -> pd.DataFrame:
    """The personas' log-ins in the seconds before the schedule's clock starts."""
    latency = rng.lognormal(np.log(0.004), 0.3, logins)
    start = t0_s - 3 + np.sort(rng.uniform(0, 2.5, logins))
    return pd.DataFrame(
        {
            "intended_start_s": start,
            "start_s": start,
            "flow": "",
            "method": "POST",
            "route": "/connect/token",
            "status": np.full(logins, 200, dtype=np.int16),
            "error_code": "",
            "ok": True,
            "latency_s": latency,
            "corrected_latency_s": latency,
        }
    )


def _requests(
    rng: np.random.Generator, count: int, duration_s: int, t0_s: float, stress: str | None
) -> pd.DataFrame:
    route_index = rng.integers(0, len(ROUTES), count)
    medians = np.array([median for _, _, median in ROUTES])[route_index]
    if stress is not None:
        medians = medians * 4
    latency = rng.lognormal(np.log(medians), 0.5).astype(np.float64)
    start = t0_s + np.sort(rng.uniform(0, duration_s, count))
    delay = np.where(rng.random(count) < 0.05, rng.exponential(0.02, count), 0.0)
    status = np.where(rng.random(count) < 0.002, 400, 200).astype(np.int16)
    ok = status < 400
    method_names = sorted({method for method, _, _ in ROUTES})
    method_codes = np.array([method_names.index(method) for method, _, _ in ROUTES])[route_index]
    route_names = sorted({route for _, route, _ in ROUTES})
    route_codes = np.array([route_names.index(route) for _, route, _ in ROUTES])[route_index]
    return pd.DataFrame(
        {
            "intended_start_s": start - delay,
            "start_s": start,
            "flow": _categorical(np.zeros(count, dtype=np.int8), ["synthetic"]),
            "method": _categorical(method_codes, method_names),
            "route": _categorical(route_codes, route_names),
            "status": status,
            "error_code": _categorical(
                (~ok).astype(np.int8), ["", "error.platform.validation.invalidPropertyValue"]
            ),
            "ok": ok,
            "latency_s": latency,
            "corrected_latency_s": latency + delay,
        }
    )


def _categorical(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    # pandas takes an array of codes as it is; its stubs declare only sequences.
    return pd.Categorical.from_codes(cast(Sequence[int], codes), categories=pd.Index(names))


def _series(
    rng: np.random.Generator, requests: pd.DataFrame, duration_s: int, t0_s: float, stress: str | None
) -> pd.DataFrame:
    columns: dict[str, list[Any]] = {name: [] for name in SERIES_COLUMNS}

    def add(
        t: np.ndarray, process: str, tier: str, name: str, labels: dict[str, str], values: np.ndarray
    ) -> None:
        columns["t_s"].append(t)
        columns["value"].append(np.asarray(values, dtype=np.float64))
        for key, value in (
            ("process", process),
            ("tier", tier),
            ("name", name),
            ("labels", format_labels(labels)),
        ):
            columns[key].append(np.full(len(t), value, dtype=object))

    seconds = np.arange(duration_s + 1)
    times = t0_s + seconds + 0.05
    node_of = rng.integers(0, len(NODES), len(requests))
    edges = np.array([*BUCKETS_S, np.inf])
    second_of = np.clip(
        np.floor(requests["start_s"].to_numpy() + requests["latency_s"].to_numpy() - t0_s), 0, duration_s
    ).astype(np.int64)
    bucket_of = np.searchsorted(edges, requests["latency_s"].to_numpy(), side="left")
    route_keys = requests["method"].astype(str) + " " + requests["route"].astype(str)
    route_codes = pd.Categorical(route_keys, categories=[f"{m} {r}" for m, r, _ in ROUTES]).codes
    status = requests["status"].to_numpy()
    for node_index, node in enumerate(NODES):
        mine = node_of == node_index
        for route_code, (method, route, _) in enumerate(ROUTES):
            for code in (200, 400):
                chosen = mine & (route_code == route_codes) & (status == code)
                if not chosen.any():
                    continue
                per = np.zeros((duration_s + 1, len(edges)))
                np.add.at(per, (second_of[chosen], bucket_of[chosen]), 1)
                cumulative = np.cumsum(np.cumsum(per, axis=1), axis=0)
                labels = {
                    "http_request_method": method,
                    "http_route": route,
                    "http_response_status_code": str(code),
                }
                for index, edge in enumerate(edges):
                    le = "+Inf" if np.isinf(edge) else f"{edge:g}"
                    add(
                        times,
                        node,
                        "node",
                        "http_server_request_duration_seconds_bucket",
                        {**labels, "le": le},
                        cumulative[:, index],
                    )
                add(
                    times,
                    node,
                    "node",
                    "http_server_request_duration_seconds_count",
                    labels,
                    cumulative[:, -1],
                )
        slots = WORKERS_PER_NODE * THREADS
        full = stress in ("database", "node")
        in_flight = np.full(len(seconds), slots) if full else rng.integers(0, slots // 2, len(seconds))
        # The gauge counts the scrape that reads it.
        add(times, node, "node", "http_server_active_requests", {}, in_flight + 1)
        add(times, node, "node", "backbone_gunicorn_workers", {}, np.full(len(seconds), WORKERS_PER_NODE))
        add(
            times, node, "node", "backbone_gunicorn_workers_busy", {}, np.minimum(in_flight, WORKERS_PER_NODE)
        )
        pool_used = (
            np.full(len(seconds), POOL_MAX) if stress == "database" else np.minimum(in_flight, POOL_MAX // 3)
        )
        add(
            times,
            node,
            "node",
            "db_client_connection_count",
            {"db_client_connection_state": "used"},
            pool_used,
        )
        add(
            times,
            node,
            "node",
            "db_client_connection_count",
            {"db_client_connection_state": "idle"},
            POOL_MAX - pool_used,
        )
        add(times, node, "node", "db_client_connection_max", {}, np.full(len(seconds), POOL_MAX))
        checkouts = np.cumsum(rng.integers(50, 100, len(seconds))).astype(np.float64)
        mean_wait = 0.2 if stress == "database" else 0.0004
        add(times, node, "node", "db_client_connection_wait_time_seconds_count", {}, checkouts)
        add(times, node, "node", "db_client_connection_wait_time_seconds_sum", {}, checkouts * mean_wait)
        for edge in (0.001, 0.01, 0.1, 1.0, np.inf):
            share = 1.0 if edge > mean_wait * 2 else 0.3
            le = "+Inf" if np.isinf(edge) else f"{edge:g}"
            add(
                times,
                node,
                "node",
                "db_client_connection_wait_time_seconds_bucket",
                {"le": le},
                checkouts * share,
            )
        add(times, node, "node", "backbone_outbox_pending_events", {}, rng.integers(0, 5, len(seconds)))
    consumed = np.cumsum(rng.integers(5, 20, len(seconds))).astype(np.float64)
    queue = {"messaging_destination_name": "Synchronization.MessageCreated", "messaging_system": "rabbitmq"}
    add(
        times,
        "worker-1",
        "events",
        "messaging_queue_depth_messages",
        queue,
        rng.integers(0, 10, len(seconds)),
    )
    add(times, "worker-1", "events", "messaging_consumer_lag_seconds_count", queue, consumed)
    add(times, "worker-1", "events", "messaging_consumer_lag_seconds_sum", queue, consumed * 0.02)
    frame = pd.DataFrame({key: np.concatenate(values) for key, values in columns.items()})
    return frame.astype(SERIES_COLUMNS)


def _processes(rng: np.random.Generator, duration_s: int, t0_s: float, stress: str | None) -> pd.DataFrame:
    rows = []
    seconds = np.arange(duration_s + 1)
    plan = [
        ("node-1", "node", 1001, NODE_BUDGET_CORES, 0.99 if stress == "node" else 0.3),
        ("node-2", "node", 1002, NODE_BUDGET_CORES, 0.99 if stress == "node" else 0.3),
        ("worker-1", "events", 1003, 1.0, 0.1),
        ("postgresql", "database", 1004, np.nan, 0.2),
        ("gateway-1", "gateway", 1005, 1.0, 0.15),
        ("locust", "load-generator", 1006, 1.0, 0.4),
    ]
    for name, tier, pid, limit, load in plan:
        cores = np.clip(rng.normal(load, 0.02, len(seconds)), 0, None) * (1.0 if np.isnan(limit) else limit)
        rows.append(
            pd.DataFrame(
                {
                    "t_s": t0_s + seconds + 0.5,
                    "process": name,
                    "tier": tier,
                    "pid": pid,
                    "cpu_percent": cores * 100,
                    "rss_bytes": (100 + rng.normal(0, 1, len(seconds))).astype(np.int64) * 2**20,
                    "cpu_limit_cores": limit,
                }
            )
        )
    return pd.concat(rows, ignore_index=True).astype(PROCESS_COLUMNS)


def _budgets(rng: np.random.Generator, duration_s: int, t0_s: float, stress: str | None) -> pd.DataFrame:
    """The nodes' cgroup counters: cumulative CPU time, quota periods and throttling."""
    seconds = np.arange(duration_s + 1)
    share = 0.99 if stress == "node" else 0.3
    frames = []
    for node in NODES:
        used_per_s = np.clip(rng.normal(share, 0.02, len(seconds)), 0, 1) * NODE_BUDGET_CORES
        # Ten 100 ms periods a second; a budget spent to the last 5 % stops the node in most of them.
        throttled = np.where(used_per_s >= 0.95 * NODE_BUDGET_CORES, 8, 0)
        frames.append(
            pd.DataFrame(
                {
                    "t_s": t0_s + seconds + 0.5,
                    "process": node,
                    "tier": "node",
                    "mechanism": "cgroup v1",
                    "budget_cores": NODE_BUDGET_CORES,
                    "period_s": 0.1,
                    "used_s": np.cumsum(used_per_s),
                    "periods": np.cumsum(np.full(len(seconds), 10)),
                    "throttled_periods": np.cumsum(throttled),
                    "throttled_s": np.cumsum(throttled * 0.05),
                }
            )
        )
    return pd.concat(frames, ignore_index=True).astype(BUDGET_COLUMNS)


def main(argv: list[str] | None = None) -> int:
    """`python -m reports.synthetic DIR [--requests N] [--duration-s S] [--stress TIER]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m reports.synthetic", description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--duration-s", type=int, default=60)
    parser.add_argument("--stress", choices=("database", "node"))
    parser.add_argument("--parts", type=int, default=2)
    options = parser.parse_args(argv)
    write_synthetic_run(
        options.run_dir,
        requests=options.requests,
        duration_s=options.duration_s,
        stress=options.stress,
        parts=options.parts,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def write_synthetic_sweep(directory: Path, *, counts: Sequence[int] = (1, 2, 3, 4, 6, 8, 10, 12)) -> Path:
    """A sweep's directory over `nodes.count` whose cells' capacities follow a known USL (lambda 40
    requests/s, sigma 0.08, kappa 0.012: the peak near 8.7 nodes), with sweep.json and
    sweep.parquet as `testbed sweep` writes them; each cell's capacity directory holds a one-line
    capacity report so the sweep report's links lead somewhere. For the sweep report's tests."""
    from reports.sweep import SweepRecord, write_cells, write_sweep

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    rows = []
    for index, count in enumerate(counts, 1):
        name = f"cell-{index:02d}"
        capacity = 40 * count / (1 + 0.08 * (count - 1) + 0.012 * count * (count - 1))
        capacity *= 1 + 0.02 * float(rng.standard_normal())
        cores = {"node": 0.125 * count, "database": 0.3, "gateway": 0.1, "admin": 0.05}
        (directory / name).mkdir(exist_ok=True)
        (directory / name / "capacity.html").write_text(f"<p>{name}</p>\n", encoding="utf-8")
        node_share = min(1.0, 0.95 - 0.05 * count)
        rows.append(
            {
                "cell": name,
                "capacity_dir": name,
                "options": json.dumps({"nodes.count": count}),
                "cores": json.dumps(cores),
                "cost": sum(cores.values()),
                "capacity_requests_per_s": capacity,
                "capacity_multiplier": capacity / 20,
                "status": "bracketed",
                "limiting_tier": "node" if count < 4 else "database",
                "limiting_evidence": "CPU budget: 97 % of 0.125 core"
                if count < 4
                else "CPU budget: 95 % of 0.3 core",
                "valid": True,
                "reason": "step 3 held and step 4 did not",
                "saturation": json.dumps(
                    {"node": node_share, "database": 0.4 + 0.07 * count, "gateway": 0.3}
                ),
            }
        )
    write_cells(directory, rows)
    now = time.time()
    write_sweep(
        directory,
        SweepRecord(
            sweep_id=directory.name,
            name="synthetic-nodes",
            source="scenarios/sweeps/nodes.toml",
            profile="capacity",
            scenario="production-mix",
            pool="test",
            dimensions={"nodes.count": list(counts)},
            cells_planned=len(counts),
            target_unit="requests_per_s",
            target=100.0,
            headroom=0.3,
            step_s=20,
            warm_up_s=10,
            started_at_s=now - 600,
            ended_at_s=now,
        ),
    )
    return directory
