"""The CPU budgets in a report: a tier that spends its budget is saturated (judged by its cgroup's
own counters, not by the process samples), throttled periods are counted, every budget is listed
with its mechanism and period, and every process without a budget with its CPU."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reports import cpu, saturation
from reports.manifest import BudgetRecord, CpuRecord, LandscapeRecord
from reports.rundir import BUDGET_COLUMNS, PROCESS_COLUMNS, conform

T0 = 2_000_000.0


def budgets_frame(
    process: str,
    tier: str,
    budget: float,
    used_per_s: float,
    seconds: int = 20,
    waited_per_s: float | None = None,
) -> pd.DataFrame:
    """A group's cumulative counters, sampled once a second: ten periods a second, throttled when spent
    (seven periods, 0.4 s waited a second, unless `waited_per_s` says how long it waited)."""
    t = np.arange(seconds + 1)
    spent = used_per_s >= 0.95 * budget or bool(waited_per_s)
    waited = waited_per_s if waited_per_s is not None else (0.4 if spent else 0.0)
    return conform(
        pd.DataFrame(
            {
                "t_s": T0 + t,
                "process": process,
                "tier": tier,
                "mechanism": "cgroup v1",
                "budget_cores": budget,
                "period_s": 0.1,
                "used_s": used_per_s * t,
                "periods": 10 * t,
                "throttled_periods": (7 if spent else 0) * t,
                "throttled_s": waited * t,
            }
        ),
        BUDGET_COLUMNS,
        "budgets",
    )


def processes_frame(rows: list[tuple[str, str, float, float]], seconds: int = 20) -> pd.DataFrame:
    frame = pd.DataFrame(
        [
            {
                "t_s": T0 + t + 0.5,
                "process": process,
                "tier": tier,
                "pid": 1,
                "cpu_percent": cpu_percent,
                "rss_bytes": 1,
                "cpu_limit_cores": limit,
            }
            for t in range(seconds)
            for process, tier, cpu_percent, limit in rows
        ]
    )
    return conform(frame, PROCESS_COLUMNS, "processes")


def empty_series() -> pd.DataFrame:
    return pd.DataFrame(columns=["t_s", "process", "tier", "name", "labels", "value"])


def test_budget_rates_are_differences_of_the_cumulative_counters() -> None:
    rates = saturation.budget_rates(budgets_frame("postgresql", "database", 0.1, 0.099, seconds=3))
    assert len(rates) == 3  # the first sample has nothing before it
    assert rates["cores"].tolist() == pytest.approx([0.099] * 3)
    assert rates["periods"].tolist() == [10] * 3
    assert rates["throttled_periods"].tolist() == [7] * 3


def test_a_database_spending_its_budget_is_the_saturated_tier_with_its_throttling_counted() -> None:
    budgets = budgets_frame("postgresql", "database", 0.1, 0.099)
    # psutil's view of the same server would not say so against the machine's 2 cores.
    processes = processes_frame([("postgresql", "database", 9.9, 0.1)])
    rules = saturation.evaluate(empty_series(), processes, T0, machine_cores=2.0, budgets=budgets)
    first = saturation.first_saturated(saturation.tier_verdicts(rules))
    assert first is not None
    assert first.tier == "database"
    assert first.metric == "cgroup CPU usage against its quota (cpu.stat, cpuacct.usage)"
    assert "postgresql (0.1-core budget, cgroup v1, period 100 ms) used p95 0.10 cores" in first.figure
    assert "throttled in 140 of 200 periods" in first.figure
    # The budgeted process is judged by its cgroup alone, not also by the process samples.
    assert not [rule for rule in rules if rule.tier == "database" and rule.rule == "cpu"]


def test_a_tier_below_its_budget_is_not_saturated_even_when_its_process_samples_are_high() -> None:
    budgets = budgets_frame("node1", "node", 0.25, 0.1)
    processes = processes_frame([("node1", "node", 190.0, 0.25)])
    rules = saturation.evaluate(empty_series(), processes, T0, machine_cores=2.0, budgets=budgets)
    assert saturation.first_saturated(saturation.tier_verdicts(rules)) is None


def test_a_database_that_waits_for_its_quota_at_half_its_budget_is_saturated_and_named_first() -> None:
    # At 0.05 core with 100 ms periods a query that spends the period's 5 ms holds every other
    # query for the rest of the period: the database fails a p98 at half its budget. The nodes
    # wait for their quota too, but for less than 50 ms in a second.
    budgets = pd.concat(
        [
            budgets_frame("postgresql", "database", 0.05, 0.025, waited_per_s=0.08),
            budgets_frame("node1", "node", 0.2, 0.1, waited_per_s=0.03),
        ]
    )
    processes = processes_frame([("gateway1", "gateway", 5.0, math.nan)])
    rules = saturation.evaluate(empty_series(), processes, T0, machine_cores=2.0, budgets=budgets)
    by_rule = {(rule.tier, rule.rule): rule for rule in rules}
    assert not by_rule[("database", "CPU budget")].saturated
    assert by_rule[("database", "held by its quota")].saturated
    assert not by_rule[("node", "held by its quota")].saturated
    first = saturation.first_saturated(saturation.tier_verdicts(rules))
    assert first is not None
    assert first.tier == "database"
    assert first.metric == "cgroup throttled time (cpu.stat throttled_time)"
    budget = "postgresql (0.05-core budget, cgroup v1, period 100 ms)"
    assert f"{budget} waited for its quota p95 80 ms" in first.figure
    assert ">= 50 ms in 100% of seconds; throttled in 140 of 200 periods" in first.figure


def test_a_wait_for_the_quota_is_per_second_of_the_sample_interval() -> None:
    # Sampled every 2 s: 0.08 s waited per interval is 40 ms a second, under the limit.
    budgets = budgets_frame("postgresql", "database", 0.05, 0.025, waited_per_s=0.08)
    budgets = budgets.assign(t_s=T0 + 2 * (budgets["t_s"] - T0))
    rules = saturation.budget_rules(budgets, T0)
    held = next(rule for rule in rules if rule.rule == "held by its quota")
    assert not held.saturated
    assert "waited for its quota p95 40 ms per second" in held.figure


def test_processes_without_a_budget_keep_the_process_cpu_rule() -> None:
    budgets = budgets_frame("node1", "node", 0.25, 0.1)
    processes = processes_frame([("node1", "node", 10.0, 0.25), ("gateway1", "gateway", 195.0, math.nan)])
    rules = saturation.evaluate(empty_series(), processes, T0, machine_cores=2.0, budgets=budgets)
    first = saturation.first_saturated(saturation.tier_verdicts(rules))
    assert first is not None
    assert first.tier == "gateway"
    assert "gateway1 CPU p95 1.95 of 2 cores" in first.figure


def profile_record(mechanism: str = "cgroup v1") -> LandscapeRecord:
    pinned = (0,)
    return LandscapeRecord(
        name="capacity",
        cpu=CpuRecord(
            landscape_cores=(0,),
            load_generator_cores=(1,),
            period_ms=100.0,
            mechanism=mechanism,
            budgets=(
                BudgetRecord("postgresql", "database", "database.cpu_limit", 0.1, mechanism, 100.0, pinned),
                BudgetRecord("node1", "node", "nodes.cpu_limit", 0.25, mechanism, 100.0, pinned),
            ),
            warnings=("no cgroup hierarchy ...",) if mechanism == "affinity" else (),
        ),
        unsampled=("rabbitmq (the shared broker): no process of this machine visible to this user",),
    )


def test_the_budget_table_lists_each_budget_with_its_mechanism_period_use_and_throttling() -> None:
    budgets = pd.concat(
        [budgets_frame("postgresql", "database", 0.1, 0.099), budgets_frame("node1", "node", 0.25, 0.1)]
    )
    processes = processes_frame([("postgresql", "database", 9.9, 0.1), ("node1", "node", 10.0, 0.25)])
    table = cpu.budget_table(profile_record(), budgets, processes, (T0, T0 + 20))
    rows = {row["process"]: row for row in table.to_dict("records")}
    assert rows["postgresql"]["budget (cores)"] == "0.1 (database.cpu_limit)"
    assert (rows["postgresql"]["held by"], rows["postgresql"]["period"]) == ("cgroup v1", "100 ms")
    assert rows["postgresql"]["CPU p95"] == "0.10"
    assert rows["postgresql"]["at >= 90% of budget"] == "100%"
    assert rows["postgresql"]["throttled periods"] == "140 of 200 (70%)"
    assert rows["postgresql"]["throttled time"] == "8.0 s"
    assert rows["node1"]["throttled periods"] == "0 of 200 (0%)"
    assert rows["node1"]["at >= 90% of budget"] == "0%"
    assert "Budgets held by cgroup v1, quota period 100 ms" in cpu.mechanism_text(profile_record())


def test_a_budget_held_by_affinity_is_measured_by_its_process_samples_against_its_whole_cores() -> None:
    processes = processes_frame([("postgresql", "database", 95.0, 1.0), ("node1", "node", 20.0, 1.0)])
    empty = conform(pd.DataFrame(columns=list(BUDGET_COLUMNS)), BUDGET_COLUMNS, "budgets")
    profile = profile_record("affinity")
    table = cpu.budget_table(profile, empty, processes, (T0, T0 + 20))
    row = table[table["process"] == "postgresql"].iloc[0]
    assert row["budget (cores)"] == "0.1 (database.cpu_limit; held as core(s) 0)"
    assert (row["held by"], row["period"], row["throttled periods"]) == ("affinity", "-", "-")
    assert row["CPU p50"] == "0.95"
    assert row["at >= 90% of budget"] == "100%"  # of its one whole core
    assert "Warning: no cgroup hierarchy" in cpu.mechanism_text(profile)


def test_every_process_without_a_budget_is_listed_with_its_cpu_and_what_was_not_sampled() -> None:
    processes = processes_frame(
        [
            ("node1", "node", 20.0, 0.25),
            ("rabbitmq", "broker", 12.0, math.nan),
            ("locust", "load-generator", 40.0, 1.0),
        ]
    )
    table = cpu.unbudgeted_table(profile_record(), processes, (T0, T0 + 20))
    rows = {row["process"]: row for row in table.to_dict("records")}
    assert set(rows) == {"rabbitmq", "locust", "rabbitmq (the shared broker)"}
    assert rows["rabbitmq"]["CPU p95"] == "0.12"
    assert rows["rabbitmq"]["note"] == "the machine's shared broker: never budgeted, never touched"
    assert rows["locust"]["note"] == "the load generator, on cores of its own"
    assert rows["rabbitmq (the shared broker)"]["note"].startswith("not sampled: no process of this machine")
