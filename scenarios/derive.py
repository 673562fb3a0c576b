"""Derive a scenario file with another duration and other rates (benchmarks, smoke runs).

Locust reads scenarios from files, so a run at ten times the rate or for five seconds gets a
file of its own, written from the parsed scenario: constant shape, the same flows, parameters,
SLOs and backbone settings, the given rates (the multiplier folded in).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from scenarios.schema import FlowSpec, Scenario


def rate_for_starts(
    original_per_s: float, duration_s: float, *, factor: float = 10.0, min_starts: int = 300
) -> float:
    """The larger of `factor` times the original rate and a rate that schedules `min_starts` starts."""
    # Uniform starts fall at n / rate for n >= 1, so min_starts of them need rate >= min_starts / duration.
    return max(factor * original_per_s, min_starts / duration_s)


def derived_text(
    scenario: Scenario, *, duration_s: float, rate_of: Callable[[FlowSpec], float], name: str = ""
) -> str:
    """The TOML text of `scenario` with a constant shape of `duration_s` and rates from `rate_of`."""
    lines = [
        f"# Derived from {scenario.source.name}: constant {duration_s:g} s, rates set per flow.",
        f"name = {_value(name or scenario.name)}",
        f"description = {_value(scenario.description)}",
        f"arrivals = {_value(scenario.arrivals)}",
        f"seed = {scenario.seed}",
        f"drain_timeout_s = {_value(scenario.drain_timeout_s)}",
        "",
        "[shape]",
        'kind = "constant"',
        f"duration_s = {_value(duration_s)}",
    ]
    for flow in scenario.flows:
        rate = rate_of(flow)
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"{flow.name}: the rate must be a number > 0, got {rate!r}")
        lines += [
            "",
            "[[flows]]",
            f"name = {_value(flow.name)}",
            f"flow = {_value(flow.flow)}",
            f"rate_per_s = {_value(rate)}",
            f"max_in_flight = {flow.max_in_flight}",
            f"max_queued = {flow.max_queued}",
            "params = {" + ", ".join(f"{key} = {_value(value)}" for key, value in flow.params.items()) + "}",
        ]
    if scenario.backbone:
        lines += ["", "[backbone]", *(f"{key} = {value}" for key, value in scenario.backbone.items())]
    for slo in scenario.slos:
        lines += ["", f"[slo.{_value(slo.key)}]"]
        lines += [f'"p{percentile:g}_ms" = {_value(limit)}' for percentile, limit in slo.percentiles_ms]
        lines.append(f"view = {_value(slo.view)}")
        if slo.max_failure_ratio is not None:
            lines.append(f"max_failure_ratio = {_value(slo.max_failure_ratio)}")
    lines += [
        "",
        "[closed]",
        f"users = {scenario.closed.users}",
        f"think_time_s = {_value(scenario.closed.think_time_s)}",
    ]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    """A TOML scalar: strings quoted as JSON strings (a subset of TOML basic strings), numbers as repr."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"cannot write {value!r} as a TOML scalar")
