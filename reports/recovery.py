"""Recovery figures of a run's faults, and its acknowledged writes, from the run directory.

For each fault (`faults.json`, written by the run as it applied them): the requests and errors
while it was active and their error codes, the corrected latency's p50/p90/p99 before it, during
it and after it, and how long after it ended the landscape was back within its SLO (the rule is
the verdicts' own: `reports/verdicts.py`, `window_within_slo`). Requests belong to a stretch by
their intended start. "Before" and "after" reach at most COMPARED_S seconds from the fault and
never into another fault.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports import verdicts
from reports.latency import nearest_rank
from reports.manifest import SloSpec
from reports.rundir import ACKNOWLEDGED_CHECK, FAULTS

COMPARED_S = 30.0
PERCENTILES = (50.0, 90.0, 99.0)
RECOVERY_COLUMNS = (
    "fault",
    "target",
    "applied_s",
    "ended_s",
    "requests_during",
    "errors_during",
    "error_codes_during",
    *(f"p{p:g}_{stretch}_ms" for stretch in ("before", "during", "after") for p in PERCENTILES),
    "within_slo_before",
    "recovered_after_s",
    "verdict",
)


def read_faults(run_dir: Path) -> list[dict[str, Any]]:
    """The faults as the run applied them (empty: a run without faults)."""
    try:
        document = json.loads((run_dir / FAULTS).read_text())
    except FileNotFoundError:
        return []
    faults = document.get("faults", []) if isinstance(document, dict) else []
    return [fault for fault in faults if isinstance(fault, dict)]


def read_acknowledged(run_dir: Path) -> dict[str, Any] | None:
    """The verifier's result (None: the run did not verify, e.g. it was interrupted)."""
    try:
        document = json.loads((run_dir / ACKNOWLEDGED_CHECK).read_text())
    except FileNotFoundError:
        return None
    return document if isinstance(document, dict) else None


def acknowledged_verdict(result: Mapping[str, Any] | None) -> str:
    if result is None:
        return verdicts.FAIL
    return verdicts.judge_acknowledged(
        int(result.get("recorded", 0)), int(result.get("lost", 0)), str(result.get("error", ""))
    )


def acknowledged_line(result: Mapping[str, Any] | None) -> str:
    """`acknowledged writes lost: 0 of 1234 (messages 12, tokens 3, ...)`, or why it is unknown."""
    if result is None:
        return "acknowledged writes lost: unknown (not verified: the run ended before the read-back)"
    if result.get("error"):
        return f"acknowledged writes lost: unknown ({result['error']})"
    tables = result.get("by_table", {})
    parts = ", ".join(f"{table} {counts['recorded']}" for table, counts in sorted(tables.items()))
    return f"acknowledged writes lost: {result.get('lost', 0)} of {result.get('recorded', 0)}" + (
        f" ({parts})" if parts else ""
    )


def recovery_table(
    requests: pd.DataFrame,
    faults: Sequence[Mapping[str, Any]],
    slos: Sequence[SloSpec],
    t0_s: float,
    end_s: float,
) -> pd.DataFrame:
    """One row per fault (RECOVERY_COLUMNS); times in seconds since `t0_s`."""
    intended = requests["intended_start_s"].to_numpy(dtype=np.float64)
    corrected = requests["corrected_latency_s"].to_numpy(dtype=np.float64) * 1000
    ok = requests["ok"].to_numpy(dtype=bool)
    limits = _p90_limits(requests, slos)
    ratio = verdicts.recovery_failure_ratio(slos)
    codes = requests["error_code"].astype(str).to_numpy()
    rows = []
    windows = [(float(f.get("applied_at_s") or f.get("planned_start_s") or 0.0), _end(f)) for f in faults]
    for index, fault in enumerate(faults):
        applied = bool(fault.get("applied_at_s"))
        start_s, stop_s = windows[index]
        previous_end = windows[index - 1][1] if index else t0_s
        next_start = windows[index + 1][0] if index + 1 < len(windows) else end_s
        before = (intended >= max(start_s - COMPARED_S, previous_end, t0_s)) & (intended < start_s)
        during = (intended >= start_s) & (intended < stop_s)
        after = (intended >= stop_s) & (intended < min(stop_s + COMPARED_S, next_start))
        figures = [
            value
            for chosen in (before, during, after)
            for value in nearest_rank(corrected[chosen], PERCENTILES)
        ]
        errors = Counter(code for code in codes[during & ~ok] if code)
        # The same rule over the whole stretch before: a landscape outside its SLO before the
        # fault cannot come back within it, and the table says so.
        judged_before = before & ~np.isnan(limits)
        within_before = verdicts.window_within_slo(
            int((corrected[judged_before] >= limits[judged_before]).sum()),
            int(judged_before.sum()),
            int((before & ~ok).sum()),
            int(before.sum()),
            ratio,
        )
        recovered = (
            _recovered_after_s(intended, corrected, ok, limits, ratio, stop_s, next_start)
            if applied
            else math.nan
        )
        label = str(fault.get("label", fault.get("kind", "?")))
        if fault.get("error"):
            label += f" (error: {fault['error']})"
        if fault.get("interrupted"):
            label += " (interrupted)"
        rows.append(
            [
                label,
                str(fault.get("target", "")),
                start_s - t0_s if applied else math.nan,
                stop_s - t0_s if applied else math.nan,
                int(during.sum()),
                int((during & ~ok).sum()),
                ", ".join(f"{code} {count}" for code, count in errors.most_common(5)),
                *figures,
                within_before,
                recovered,
                verdicts.judge_recovery(applied and not fault.get("interrupted"), recovered),
            ]
        )
    return pd.DataFrame(rows, columns=list(RECOVERY_COLUMNS))


def _end(fault: Mapping[str, Any]) -> float:
    """When the fault ended (undone, or its duration over for a node left down)."""
    if fault.get("ended_at_s"):
        return float(fault["ended_at_s"])
    start = float(fault.get("applied_at_s") or fault.get("planned_start_s") or 0.0)
    return start + float(fault.get("duration_s", 0.0))


def _p90_limits(requests: pd.DataFrame, slos: Sequence[SloSpec]) -> np.ndarray:
    """Each request's route p90 limit in ms (NaN: its SLO names none)."""
    limits = verdicts.p90_limits_ms(slos)
    methods = requests["method"].astype(str).to_numpy()
    routes = requests["route"].astype(str).to_numpy()
    looked_up = {
        (method, route): limits.get((method, route), limits.get((None, route), math.nan))
        for method, route in set(zip(methods, routes, strict=True))
    }
    return np.array([looked_up[key] for key in zip(methods, routes, strict=True)], dtype=np.float64)


def _recovered_after_s(
    intended: np.ndarray,
    corrected_ms: np.ndarray,
    ok: np.ndarray,
    limits_ms: np.ndarray,
    max_failure_ratio: float,
    ended_s: float,
    until_s: float,
) -> float:
    """Seconds from the fault's end to the first window within the SLO (NaN: none before `until_s`)."""
    start = ended_s
    while start + verdicts.RECOVERY_WINDOW_S <= until_s + 1e-9:
        chosen = (intended >= start) & (intended < start + verdicts.RECOVERY_WINDOW_S)
        judged = chosen & ~np.isnan(limits_ms)
        over = int((corrected_ms[judged] >= limits_ms[judged]).sum())
        failures = int((chosen & ~ok).sum())
        if verdicts.window_within_slo(
            over, int(judged.sum()), failures, int(chosen.sum()), max_failure_ratio
        ):
            return start - ended_s
        start += verdicts.RECOVERY_STEP_S
    return math.nan
