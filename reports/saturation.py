"""Which tier saturated, when, and the metric that shows it.

Each rule turns the scraped metrics or the process samples into one yes/no per second of the run
("in this second the tier was at its limit"). A tier is **saturated** when at least one of its
rules holds in at least `SATURATED_SHARE` of the seconds it has data for. Its **onset** is the
first second from which the rule holds in at least `ONSET_MIN` of `ONSET_WINDOW_S` seconds.

The **first saturated tier** is the saturated tier with the earliest onset. Tiers whose onsets
lie within `ONSET_TIE_S` of the earliest count as simultaneous, and the one furthest downstream
wins (replica, database, pooler, events, node, gateway): every commit waits for the replicas'
replay, a busy database keeps PgBouncer's server connections and so its clients waiting, a full
database pool keeps the node's request slots busy and a full node queues requests in the gateway,
within the same second, but not the other way round, so the downstream tier is the cause.
docs/reports.md lists the rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports import server
from reports.rundir import OPTIONAL_TIERS, TIERS

SATURATED_SHARE = 0.20
ONSET_WINDOW_S = 5
ONSET_MIN = 3
ONSET_TIE_S = 5.0
CPU_LIMIT_SHARE = 0.90
# A budgeted tier whose work waits this long in a second for its next quota period holds every
# request it serves meanwhile: half a default (100 ms) period, 5 % of the time.
BUDGET_HELD_LIMIT_S = 0.050
POOL_WAIT_LIMIT_S = 0.010
OUTBOX_BACKLOG_LIMIT = 100
QUEUE_DEPTH_LIMIT = 100
CONSUMER_LAG_LIMIT_S = 1.0
NODE_WAIT_LIMIT_S = 0.020
# Every commit waits for the replicas' replay (remote_apply): as long as the node's wait rule.
REPLICATION_LAG_LIMIT_S = 0.020
SCRAPE_LATE_S = 0.5
OPERATOR_ROUTES = ("/metrics", "/health")
DOWNSTREAM_FIRST = ("replica", "database", "pooler", "events", "node", "gateway")


@dataclass(frozen=True)
class RuleResult:
    """One rule's judgement over the run."""

    tier: str
    rule: str
    metric: str
    seconds: int  # seconds with data
    share: float  # of those, the share in which the rule held
    onset_s: float  # seconds since the run's start; NaN when it never held long enough
    figure: str  # the value that shows it, for people

    @property
    def saturated(self) -> bool:
        return self.seconds > 0 and self.share >= SATURATED_SHARE


@dataclass(frozen=True)
class TierVerdict:
    """A tier's saturation: the rule that shows it most clearly."""

    tier: str
    saturated: bool
    onset_s: float
    metric: str
    figure: str
    share: float


def per_second(frame: pd.DataFrame, t0_s: float, condition: pd.Series) -> pd.Series:
    """Return, per whole second since `t0_s`, whether `condition` held for any row in that second."""
    if frame.empty:
        return pd.Series(dtype=bool)
    seconds = np.floor(frame["t_s"].to_numpy(dtype=np.float64) - t0_s).astype(np.int64)
    held = pd.Series(condition.to_numpy(dtype=bool), index=seconds)
    held = held[held.index >= 0]
    return held.groupby(level=0).any().sort_index()


def onset(held: pd.Series) -> float:
    """Return the first second from which `held` is true in ONSET_MIN of ONSET_WINDOW_S seconds."""
    if held.empty or not held.any():
        return math.nan
    full = held.reindex(range(int(held.index.max()) + 1), fill_value=False).to_numpy(dtype=np.int64)
    window = np.convolve(full, np.ones(ONSET_WINDOW_S, dtype=np.int64), mode="full")[ONSET_WINDOW_S - 1 :]
    # window[s] counts the true seconds in [s, s + ONSET_WINDOW_S); near the end fewer seconds remain.
    remaining = np.minimum(ONSET_WINDOW_S, len(full) - np.arange(len(full)))
    needed = np.minimum(ONSET_MIN, remaining)
    hits = np.flatnonzero((window[: len(full)] >= needed) & (full == 1))
    return float(hits[0]) if hits.size else math.nan


def _result(tier: str, rule: str, metric: str, held: pd.Series, figure: str) -> RuleResult:
    seconds = len(held)
    share = float(held.mean()) if seconds else 0.0
    return RuleResult(tier, rule, metric, seconds, share, onset(held), figure)


def _percent(share: float) -> str:
    return f"{share:.0%}"


def budget_rates(budgets: pd.DataFrame) -> pd.DataFrame:
    """Per sample interval of each budget group: cores used, quota periods and throttling in it.

    Columns: t_s (the interval's end), process, tier, mechanism, budget_cores, period_s, cores,
    interval_s, periods, throttled_periods, throttled_s.
    """
    columns = ["t_s", "process", "tier", "mechanism", "budget_cores", "period_s"]
    counters = ["used_s", "periods", "throttled_periods", "throttled_s"]
    if budgets.empty:
        return pd.DataFrame(columns=[*columns, "cores", "interval_s", *counters[1:]])
    frame = budgets.assign(process=budgets["process"].astype(str)).sort_values(["process", "t_s"])
    steps = frame.groupby("process", observed=True)[["t_s", *counters]].diff()
    rates = frame[columns].assign(
        cores=steps["used_s"] / steps["t_s"],
        interval_s=steps["t_s"],
        periods=steps["periods"],
        throttled_periods=steps["throttled_periods"],
        throttled_s=steps["throttled_s"],
    )
    return rates[steps["t_s"] > 0].reset_index(drop=True)


def budget_rules(budgets: pd.DataFrame, t0_s: float) -> list[RuleResult]:
    """Per tier with a cgroup budget, two rules from its cgroup's own counters.

    - CPU budget: a process spends >= 90 % of its budget in the second (throughput: it has no
      room left);
    - held by its quota: a process's runnable work waits >= 50 ms in the second for its next quota
      period (`throttled_s`). A small budget runs out inside a period long before it is used up
      over the second, and every request the tier serves then waits for the rest of the period:
      a database at 0.05 core with 100 ms periods fails a p98 of 100 ms at half its budget.
    """
    rates = budget_rates(budgets)
    rates = rates[rates["t_s"] >= t0_s]
    results = []
    for tier in TIERS:
        rows = rates[rates["tier"].astype(str) == tier].reset_index(drop=True)
        if rows.empty:
            continue
        results.append(_budget_use(tier, rows, t0_s))
        results.append(_budget_held(tier, rows, t0_s))
    return results


def _budget_use(tier: str, rows: pd.DataFrame, t0_s: float) -> RuleResult:
    held = per_second(rows, t0_s, _spent(rows))
    mine = _busiest(rows, rows["cores"] / rows["budget_cores"])
    figure = (
        f"{_budget_name(mine)} used p95 {mine['cores'].quantile(0.95):.2f} cores; at >= "
        f"{CPU_LIMIT_SHARE:.0%} of it in {_percent(float(held.mean()))} of seconds; {_throttled(mine)}"
    )
    metric = "cgroup CPU usage against its quota (cpu.stat, cpuacct.usage)"
    return _result(tier, "CPU budget", metric, held, figure)


def _budget_held(tier: str, rows: pd.DataFrame, t0_s: float) -> RuleResult:
    held = per_second(rows, t0_s, _waited(rows))
    waited_s = rows["throttled_s"] / rows["interval_s"]
    mine = _busiest(rows, waited_s)
    figure = (
        f"{_budget_name(mine)} waited for its quota p95 {waited_s[mine.index].quantile(0.95) * 1000:.0f} "
        f"ms per second; >= {BUDGET_HELD_LIMIT_S * 1000:g} ms in {_percent(float(held.mean()))} of "
        f"seconds; {_throttled(mine)}"
    )
    metric = "cgroup throttled time (cpu.stat throttled_time)"
    return _result(tier, "held by its quota", metric, held, figure)


def _spent(rates: pd.DataFrame) -> pd.Series:
    """Per sample interval: the group used >= 90 % of its budget."""
    return rates["cores"] >= CPU_LIMIT_SHARE * rates["budget_cores"]


def _waited(rates: pd.DataFrame) -> pd.Series:
    """Per sample interval: the group's work waited >= 50 ms a second for its next quota period."""
    return rates["throttled_s"] / rates["interval_s"] >= BUDGET_HELD_LIMIT_S


def _busiest(rows: pd.DataFrame, values: pd.Series) -> pd.DataFrame:
    """The rows of the process whose `values` have the highest p95 (the one a figure names)."""
    p95 = values.groupby(rows["process"], observed=True).quantile(0.95)
    return rows[rows["process"] == str(p95.idxmax())]


def _budget_name(rows: pd.DataFrame) -> str:
    """How a budget is named in a figure: node1 (0.2-core budget, cgroup v1, period 100 ms)."""
    budget, period_ms = rows["budget_cores"].iloc[0], rows["period_s"].iloc[0] * 1000
    return (
        f"{rows['process'].iloc[0]} ({budget:g}-core budget, {rows['mechanism'].iloc[0]}, "
        f"period {period_ms:g} ms)"
    )


def _throttled(rows: pd.DataFrame) -> str:
    return f"throttled in {int(rows['throttled_periods'].sum())} of {int(rows['periods'].sum())} periods"


def cpu_rules(
    processes: pd.DataFrame, t0_s: float, machine_cores: float, budgeted: Collection[str] = ()
) -> list[RuleResult]:
    """Per tier: a process at or above 90 % of its CPU limit (NaN limit: the machine's cores).

    Processes in `budgeted` are left out: their cgroup's counter judges them (`budget_rules`).
    """
    results = []
    processes = processes[~processes["process"].astype(str).isin(list(budgeted))]
    for tier in TIERS:
        rows = processes[processes["tier"].astype(str) == tier]
        if rows.empty:
            continue
        limit = rows["cpu_limit_cores"].fillna(machine_cores).to_numpy(dtype=np.float64)
        cores = rows["cpu_percent"].to_numpy(dtype=np.float64) / 100
        condition = pd.Series(cores >= CPU_LIMIT_SHARE * limit)
        held = per_second(rows.reset_index(drop=True), t0_s, condition)
        usage = rows.assign(cores=cores, limit=limit).groupby(rows["process"].astype(str), observed=True)
        busiest = usage["cores"].quantile(0.95).sort_values(ascending=False)
        name = str(busiest.index[0])
        figure = (
            f"{name} CPU p95 {busiest.iloc[0]:.2f} of {usage['limit'].max().loc[name]:g} cores; "
            f"at >= {CPU_LIMIT_SHARE:.0%} of its limit in {_percent(float(held.mean()))} of seconds"
        )
        results.append(_result(tier, "cpu", "process CPU (psutil)", held, figure))
    return results


def node_slot_rule(series: pd.DataFrame, t0_s: float, threads_per_worker: int) -> list[RuleResult]:
    """Node: requests in flight reach workers x threads (every request slot of the node busy)."""
    active = server.gauge(series, "http_server_active_requests")
    workers = server.gauge(series, "backbone_gunicorn_workers")
    if active.empty or workers.empty:
        return []
    joined = active.merge(workers, on=["t_s", "process"], suffixes=("_active", "_workers"))
    joined = joined[joined["value_workers"] > 0].reset_index(drop=True)
    slots = joined["value_workers"] * threads_per_worker
    # The scrape that reads the gauge is itself a request in flight: it does not count.
    held = per_second(joined, t0_s, joined["value_active"] - 1 >= slots)
    figure = (
        f"requests in flight = all {int(slots.max()) if len(slots) else 0} request slots "
        f"(workers x {threads_per_worker} threads) in {_percent(float(held.mean()) if len(held) else 0)} "
        "of seconds"
    )
    metric = "http_server_active_requests >= backbone_gunicorn_workers x threads"
    return [_result("node", "request slots", metric, held, figure)]


def node_wait_rule(series: pd.DataFrame, requests: pd.DataFrame, t0_s: float) -> list[RuleResult]:
    """Node: requests spend >= 20 ms on average outside the server (client latency - server duration)."""
    if requests.empty:
        return []
    sums = server.samples(series, f"{server.REQUEST_DURATION}_sum")
    counts = server.samples(series, f"{server.REQUEST_DURATION}_count")
    if sums.empty or counts.empty or "http_route" not in sums:
        return []
    served = []
    for frame in (sums, counts):
        frame = frame[~frame["http_route"].isin(OPERATOR_ROUTES)]
        deltas = server.per_interval(frame, server.label_keys(frame))
        seconds = np.floor(deltas["t_s"].to_numpy(dtype=np.float64) - t0_s).astype(np.int64)
        served.append(deltas["value"].groupby(seconds).sum())
    server_mean = (served[0] / served[1].where(served[1] > 0)).dropna()
    sent = np.floor(requests["start_s"].to_numpy(dtype=np.float64) - t0_s).astype(np.int64)
    client_mean = pd.Series(requests["latency_s"].to_numpy(dtype=np.float64)).groupby(sent).mean()
    # Requests sent in second s are counted by the server's scrape at about s + 1: with 1 s
    # windows and sub-second requests the per-second means still compare like with like.
    joined = pd.concat({"client": client_mean, "server": server_mean}, axis=1).dropna()
    joined = joined[joined.index >= 0]
    if joined.empty:
        return []
    wait = joined["client"] - joined["server"]
    held = (wait >= NODE_WAIT_LIMIT_S).sort_index()
    share = _percent(float(held.mean()))
    figure = (
        f"requests waited for a worker {wait.quantile(0.95) * 1000:.1f} ms (p95 of per-second means of "
        f"client latency - server duration); >= {NODE_WAIT_LIMIT_S * 1000:g} ms in {share} of seconds"
    )
    metric = "client latency - http_server_request_duration_seconds"
    return [_result("node", "waiting for a worker", metric, held, figure)]


def node_scrape_rule(series: pd.DataFrame, t0_s: float) -> list[RuleResult]:
    """Node: its own `/metrics` answers late (>= 0.5 s) or not at all: the request waited for a thread."""
    durations = server.gauge(series, "scrape_duration_seconds")
    up = server.gauge(series, "up")
    tiers = series.loc[series["name"] == "up", ["process", "tier"]].astype(str).drop_duplicates()
    nodes = set(tiers.loc[tiers["tier"] == "node", "process"])
    if durations.empty or up.empty or not nodes:
        return []
    joined = durations.merge(up, on=["t_s", "process"], suffixes=("_took", "_up"))
    joined = joined[joined["process"].isin(nodes)].reset_index(drop=True)
    late = (joined["value_took"] >= SCRAPE_LATE_S) | (joined["value_up"] == 0)
    held = per_second(joined, t0_s, late)
    share = _percent(float(held.mean()) if len(held) else 0.0)
    figure = (
        f"the node's own /metrics took p95 {joined['value_took'].quantile(0.95):.2f} s, "
        f"{int((joined['value_up'] == 0).sum())} scrapes failed; late or failed in {share} of seconds"
    )
    return [_result("node", "scrape answered late", "scrape_duration_seconds, up", held, figure)]


def pool_rules(
    series: pd.DataFrame, t0_s: float, node_at_budget: pd.Series | None = None
) -> list[RuleResult]:
    """Database: the pool is exhausted (used = pool + overflow), or checkout waits >= 10 ms on average.

    Waits do not count in the seconds `node_at_budget` marks: a node throttled by its CPU budget
    holds each connection while it waits for its next quota period, so its threads queue for
    connections the database would have served at once; that wait is the node's, and its budget
    rule shows it. An exhausted pool counts always: every connection it may open is in use.
    """
    results = []
    used = server.gauge(series, "db_client_connection_count", db_client_connection_state="used")
    ceiling = server.gauge(series, "db_client_connection_max")
    if not used.empty and not ceiling.empty:
        joined = used.merge(ceiling, on=["t_s", "process"], suffixes=("_used", "_max"))
        joined = joined[joined["value_max"] > 0].reset_index(drop=True)
        held = per_second(joined, t0_s, joined["value_used"] >= joined["value_max"])
        figure = (
            f"connections checked out = pool size + overflow ({int(joined['value_max'].max())}) in "
            f"{_percent(float(held.mean()) if len(held) else 0)} of seconds"
        )
        metric = "db_client_connection_count{state=used} >= db_client_connection_max"
        results.append(_result("database", "pool exhausted", metric, held, figure))
    wait_name = "db_client_connection_wait_time_seconds"
    if (waits := _mean_at_least(series, t0_s, wait_name, POOL_WAIT_LIMIT_S)) is not None:
        held, count, p95_s = waits
        held = _without(held, node_at_budget)
        share = float(held.mean()) if len(held) else 0.0
        figure = (
            f"pool checkout wait p95 {p95_s * 1000:.1f} ms over {int(count)} checkouts; mean wait >= "
            f"{POOL_WAIT_LIMIT_S * 1000:g} ms in {_percent(share)} of seconds"
        )
        results.append(_result("database", "pool checkout wait", wait_name, held, figure))
    return results


def _without(held: pd.Series, excluded: pd.Series | None) -> pd.Series:
    """`held`, false in the seconds `excluded` marks."""
    if excluded is None or held.empty:
        return held
    return held & ~excluded.reindex(held.index, fill_value=False).astype(bool)


def node_at_budget(budgets: pd.DataFrame, t0_s: float) -> pd.Series:
    """Per second, whether any node spent >= 90 % of its CPU budget or waited >= 50 ms for its quota
    (empty without node budgets)."""
    rates = budget_rates(budgets)
    rows = rates[(rates["t_s"] >= t0_s) & (rates["tier"].astype(str) == "node")].reset_index(drop=True)
    return per_second(rows, t0_s, _spent(rows) | _waited(rows))


def _mean_at_least(
    series: pd.DataFrame, t0_s: float, name: str, limit: float
) -> tuple[pd.Series, float, float] | None:
    """Per second, whether a histogram's mean per scrape interval was >= `limit`; with the run's count
    and p95. None when the histogram was not scraped."""
    means = server.mean_per_interval(series, name)
    if means.empty:
        return None
    means = means.dropna().reset_index(drop=True)
    count, p95 = server.run_quantile(series, name, 95)
    return per_second(means, t0_s, means["value"] >= limit), count, p95


def events_rules(series: pd.DataFrame, t0_s: float) -> list[RuleResult]:
    """Events: outbox backlog or queue depth >= 100, or consumer lag >= 1 s on average."""
    results = []
    for name, limit, what in (
        ("backbone_outbox_pending_events", OUTBOX_BACKLOG_LIMIT, "outbox backlog"),
        ("messaging_queue_depth_messages", QUEUE_DEPTH_LIMIT, "queue depth"),
    ):
        # Every process reports the same shared backlog: take the largest report per second.
        values = server.gauge(series, name, by_process=False)
        if values.empty:
            continue
        held = per_second(values, t0_s, values["value"] >= limit)
        figure = (
            f"{what} max {values['value'].max():.0f}; >= {limit} in "
            f"{_percent(float(held.mean()) if len(held) else 0)} of seconds"
        )
        results.append(_result("events", what, name, held, figure))
    lag_name = "messaging_consumer_lag_seconds"
    if (lags := _mean_at_least(series, t0_s, lag_name, CONSUMER_LAG_LIMIT_S)) is not None:
        held, _, p95_s = lags
        figure = (
            f"consumer lag p95 {p95_s:.2f} s; mean lag >= {CONSUMER_LAG_LIMIT_S:g} s in "
            f"{_percent(float(held.mean()) if len(held) else 0)} of seconds"
        )
        results.append(_result("events", "consumer lag", lag_name, held, figure))
    return results


def pooler_rules(series: pd.DataFrame, t0_s: float) -> list[RuleResult]:
    """Pooler: clients wait for one of PgBouncer's server connections (every one is in a transaction)."""
    waiting = server.samples(series, "pgbouncer_pools_client_waiting_connections")
    if waiting.empty:
        return []
    per_scrape = waiting.groupby("t_s")["value"].sum().reset_index()
    held = per_second(per_scrape, t0_s, per_scrape["value"] > 0)
    longest = server.samples(series, "pgbouncer_pools_client_maxwait_seconds")
    longest_ms = float(longest["value"].max()) * 1000 if len(longest) else 0.0
    share = _percent(float(held.mean()) if len(held) else 0)
    figure = (
        f"clients waiting for a server connection: up to {per_scrape['value'].max():.0f} at once, the "
        f"longest {longest_ms:.0f} ms; waiting in {share} of seconds"
    )
    metric = "pgbouncer_pools_client_waiting_connections > 0 (SHOW POOLS cl_waiting)"
    return [_result("pooler", "clients waiting", metric, held, figure)]


def replica_rules(series: pd.DataFrame, t0_s: float) -> list[RuleResult]:
    """Replica: a replica replays the primary's WAL >= 20 ms late (every commit waits that long)."""
    lag = server.samples(series, "pg_stat_replication_replay_lag_seconds")
    if lag.empty:
        return []
    held = per_second(lag, t0_s, lag["value"] >= REPLICATION_LAG_LIMIT_S)
    by_replica = lag.groupby("application_name")["value"].quantile(0.95).sort_values(ascending=False)
    figure = (
        f"{by_replica.index[0]} replayed p95 {by_replica.iloc[0] * 1000:.1f} ms behind the primary "
        f"(max {lag['value'].max() * 1000:.1f} ms); >= {REPLICATION_LAG_LIMIT_S * 1000:g} ms in "
        f"{_percent(float(held.mean()) if len(held) else 0)} of seconds"
    )
    metric = "pg_stat_replication_replay_lag_seconds (the primary's pg_stat_replication.replay_lag)"
    return [_result("replica", "replication lag", metric, held, figure)]


def gateway_rules(series: pd.DataFrame, t0_s: float) -> list[RuleResult]:
    """Gateway: requests queued in HAProxy for a free backend server."""
    queued = server.gauge(series, "haproxy_backend_current_queue", by_process=False)
    if queued.empty:
        return []
    held = per_second(queued, t0_s, queued["value"] > 0)
    figure = f"requests queued for a backend in {_percent(float(held.mean()) if len(held) else 0)} of seconds"
    return [_result("gateway", "backend queue", "haproxy_backend_current_queue", held, figure)]


RuleSet = Callable[[pd.DataFrame, float], list[RuleResult]]


def evaluate(
    series: pd.DataFrame,
    processes: pd.DataFrame,
    t0_s: float,
    *,
    requests: pd.DataFrame | None = None,
    threads_per_worker: int = 1,
    machine_cores: float = 1.0,
    budgets: pd.DataFrame | None = None,
) -> list[RuleResult]:
    """Apply every rule to a run's series, process samples, budget counters and (for the node's
    wait) requests."""
    budgets = budgets if budgets is not None else pd.DataFrame(columns=["process"])
    budgeted = set(budgets["process"].astype(str))
    return [
        *node_slot_rule(series, t0_s, threads_per_worker),
        *(node_wait_rule(series, requests, t0_s) if requests is not None else []),
        *node_scrape_rule(series, t0_s),
        *pool_rules(series, t0_s, node_at_budget(budgets, t0_s) if budgeted else None),
        *events_rules(series, t0_s),
        *gateway_rules(series, t0_s),
        *pooler_rules(series, t0_s),
        *replica_rules(series, t0_s),
        *(budget_rules(budgets, t0_s) if budgeted else []),
        *cpu_rules(processes, t0_s, machine_cores, budgeted),
    ]


def tier_verdicts(rules: Sequence[RuleResult]) -> list[TierVerdict]:
    """Return one verdict per tier in TIERS: saturated by its clearest rule, or not (with its best figure).

    A tier only some landscapes have (OPTIONAL_TIERS) gets a verdict only when a rule judged it.
    """
    verdicts = []
    for tier in TIERS:
        candidates = [rule for rule in rules if rule.tier == tier]
        if not candidates and tier in OPTIONAL_TIERS:
            continue
        if not candidates:
            verdicts.append(TierVerdict(tier, False, math.nan, "", "no data", 0.0))
            continue
        saturated = [rule for rule in candidates if rule.saturated]
        pool = saturated or candidates
        # The clearest evidence: the earliest onset among saturated rules, then the largest share.
        best = min(pool, key=lambda rule: (_or_inf(rule.onset_s) if saturated else 0.0, -rule.share))
        onset_s = min((_or_inf(rule.onset_s) for rule in saturated), default=math.inf)
        verdicts.append(
            TierVerdict(
                tier=tier,
                saturated=bool(saturated),
                onset_s=onset_s if math.isfinite(onset_s) else math.nan,
                metric=best.metric,
                figure=best.figure,
                share=best.share,
            )
        )
    return verdicts


def first_saturated(verdicts: Sequence[TierVerdict]) -> TierVerdict | None:
    """Return the first saturated tier (ties within ONSET_TIE_S go to the downstream tier), or None."""
    saturated = [verdict for verdict in verdicts if verdict.saturated]
    if not saturated:
        return None
    earliest = min(_or_inf(verdict.onset_s) for verdict in saturated)
    close = [verdict for verdict in saturated if _or_inf(verdict.onset_s) <= earliest + ONSET_TIE_S]
    return min(close, key=lambda verdict: DOWNSTREAM_FIRST.index(verdict.tier))


def _or_inf(value: float) -> float:
    return math.inf if math.isnan(value) else value
