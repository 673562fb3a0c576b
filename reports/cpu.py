"""CPU of a run, by budget: every budget beside the mechanism and period that held it, with its use
and throttling; then the CPU of every process that had no budget.

A budget held by a cgroup is measured by the cgroup's own counters (`budgets.parquet`); one held
by affinity (the last fallback) by the process samples (`processes.parquet`), since no kernel
counter belongs to it alone. Figures cover the load's window only.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reports.manifest import BudgetRecord, LandscapeRecord, LoadGeneratorRecord
from reports.rundir import LOAD_GENERATOR
from reports.saturation import CPU_LIMIT_SHARE, budget_rates

BUDGET_COLUMNS = (
    "tier",
    "process",
    "budget (cores)",
    "held by",
    "period",
    "CPU p50",
    "CPU p95",
    f"at >= {CPU_LIMIT_SHARE:.0%} of budget",
    "throttled periods",
    "throttled time",
)
UNBUDGETED_COLUMNS = ("tier", "process", "CPU p50", "CPU p95", "CPU max", "note")
# What a process without a budget is, by tier.
NOTES = {
    LOAD_GENERATOR: "the load generator, on cores of its own",
    "broker": "the machine's shared broker: never budgeted, never touched",
    "database": "an external server: its CPU includes other databases' work",
    "admin": "the Admin API (operators only)",
}


def budget_table(
    profile: LandscapeRecord, budgets: pd.DataFrame, processes: pd.DataFrame, window_s: tuple[float, float]
) -> pd.DataFrame:
    """One row per budgeted process: its budget, mechanism, period, use and throttling in the window."""
    rates = budget_rates(budgets)
    rates = rates[(rates["t_s"] >= window_s[0]) & (rates["t_s"] <= window_s[1] + 1)]
    samples = _in_window(processes, window_s)
    rows = []
    for budget in profile.cpu.budgets:
        mine = rates[rates["process"].astype(str) == budget.process]
        throttled = time = "-"
        if budget.mechanism == "affinity" or mine.empty:
            used = samples.loc[samples["process"].astype(str) == budget.process, "cpu_percent"] / 100
            limit = float(len(budget.pinned_cores)) if budget.mechanism == "affinity" else budget.cores
        else:
            used, limit = mine["cores"], budget.cores
            periods, stopped = int(mine["periods"].sum()), int(mine["throttled_periods"].sum())
            share = f" ({stopped / periods:.0%})" if periods else ""
            throttled = f"{stopped:,} of {periods:,}{share}"
            time = f"{float(mine['throttled_s'].sum()):.1f} s"
        rows.append(
            [
                budget.tier,
                budget.process,
                _budget(budget),
                budget.mechanism,
                f"{budget.period_ms:g} ms" if budget.mechanism != "affinity" else "-",
                _cores(used, 0.50),
                _cores(used, 0.95),
                f"{float((used >= CPU_LIMIT_SHARE * limit).mean()):.0%}" if len(used) else "-",
                throttled,
                time,
            ]
        )
    return pd.DataFrame(rows, columns=list(BUDGET_COLUMNS))


def unbudgeted_table(
    profile: LandscapeRecord, processes: pd.DataFrame, window_s: tuple[float, float]
) -> pd.DataFrame:
    """One row per sampled process without a budget, and one per process the run could not sample."""
    budgeted = {budget.process for budget in profile.cpu.budgets}
    samples = _in_window(processes, window_s)
    samples = samples[~samples["process"].astype(str).isin(budgeted)]
    rows = []
    keys = [samples["tier"].astype(str), samples["process"].astype(str)]
    for (tier, process), group in samples.groupby(keys, observed=True, sort=True):
        used = group["cpu_percent"] / 100
        note = NOTES.get(str(tier), "")
        rows.append(
            [str(tier), str(process), _cores(used, 0.50), _cores(used, 0.95), _cores(used, 1.0), note]
        )
    for line in profile.unsampled:
        name, _, reason = line.partition(": ")
        rows.append(["-", name, "-", "-", "-", f"not sampled: {reason}"])
    return pd.DataFrame(rows, columns=list(UNBUDGETED_COLUMNS))


def mechanism_text(profile: LandscapeRecord) -> str:
    """One sentence on what held the budgets, and any warning of the plan."""
    cpu = profile.cpu
    if not cpu.budgets:
        text = "No process had a CPU budget: every process shared the landscape's cores"
    else:
        text = f"Budgets held by {cpu.mechanism}, quota period {cpu.period_ms:g} ms"
    cores = ", ".join(map(str, cpu.landscape_cores)) or "-"
    generator = ", ".join(map(str, cpu.load_generator_cores)) or "shared"
    text += f"; the landscape on core(s) {cores}, the load generator on {generator}."
    return " ".join([text, *(f"Warning: {warning}" for warning in cpu.warnings)])


def _budget(budget: BudgetRecord) -> str:
    if budget.mechanism == "affinity":
        cores = ", ".join(map(str, budget.pinned_cores))
        return f"{budget.cores:g} ({budget.option}; held as core(s) {cores})"
    return f"{budget.cores:g} ({budget.option})"


def _cores(values: pd.Series, quantile: float) -> str:
    array = values.to_numpy(dtype=np.float64)
    array = array[~np.isnan(array)]
    if not len(array):
        return "-"
    value = float(np.quantile(array, quantile))
    return "-" if math.isnan(value) else f"{value:.2f}"


def _in_window(processes: pd.DataFrame, window_s: tuple[float, float]) -> pd.DataFrame:
    return processes[(processes["t_s"] >= window_s[0]) & (processes["t_s"] <= window_s[1] + 1)]


GENERATOR_COLUMNS = ("process", "role", "host", "share", "CPU p50", "CPU p95", "CPU max", "CPU limit")


def generator_table(
    generator: LoadGeneratorRecord, processes: pd.DataFrame, window_s: tuple[float, float]
) -> pd.DataFrame:
    """One row per load-generator process: its role, host, share of the schedule and CPU (cores) in
    the window; a process without samples shows "-"."""
    samples = _in_window(processes, window_s)
    rows = []
    for process in generator.processes:
        used = samples.loc[samples["process"].astype(str) == process.name, "cpu_percent"] / 100
        where = process.host + (" (joined)" if process.joined else "")
        share = process.share or ("none" if process.role == "master" else "-")
        rows.append(
            [process.name, process.role, where or "-", share]
            + [_cores(used, quantile) for quantile in (0.50, 0.95, 1.0)]
            + [f"{process.cpu_limit_cores:g}"]
        )
    return pd.DataFrame(rows, columns=list(GENERATOR_COLUMNS))
