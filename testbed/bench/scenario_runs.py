"""Run upstream scenarios headless against a running backbone and judge what the engine counted.

Shared by `make bench-scenarios` and the CI smoke test: each run is one Locust process (Locust
monkey-patches the process it runs in, so never the caller's) with the arrival report and the
outcome counts written as JSON.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.verdicts import MAX_LATE_RATIO
from scenarios.derive import derived_text
from scenarios.schema import FlowSpec, Scenario, load_scenario
from testbed.processes import LOCUSTFILE, REPOSITORY

SCENARIO_FILES = tuple(sorted(REPOSITORY.glob("scenarios/[0-9][0-9]-*.toml")))
PRODUCTION_MIX = REPOSITORY / "scenarios" / "production-mix.toml"
CONNECTOR_SYNC_FLOW = "upstream.connector-sync"
MAX_RATE_DEVIATION = 0.02


@dataclass(frozen=True)
class ScenarioRun:
    """What one headless run left behind."""

    name: str
    exit_code: int
    rates_per_s: dict[str, float]
    arrivals: dict[str, Any]
    outcomes: dict[str, dict[str, int]]
    log_path: Path
    duration_s: float
    # CPU seconds the Locust process used, and the wall seconds it ran (its logins included).
    generator_cpu_s: float = 0.0
    wall_s: float = 0.0

    def flow(self, name: str) -> dict[str, Any]:
        for flow in self.arrivals.get("flows", ()):
            if flow["name"] == name:
                return dict(flow)
        raise KeyError(f"{self.name}: no flow {name} in the arrival report (see {self.log_path})")

    def unexpected_failures(self) -> dict[str, int]:
        """Failure labels with counts, over all flows (empty: none)."""
        found: dict[str, int] = {}
        for labels in self.outcomes.values():
            for label, count in labels.items():
                if label.startswith("failed:"):
                    found[label] = found.get(label, 0) + count
        return found

    def problems(self) -> list[str]:
        """Why this run misses the benchmark's bar: rate, late starts, unexpected failures."""
        problems = []
        for name, rate in self.rates_per_s.items():
            flow = self.flow(name)
            achieved = float(flow["achieved_rate_per_s"] or 0.0)
            if abs(achieved / rate - 1) > MAX_RATE_DEVIATION:
                problems.append(f"{name}: achieved {achieved:.3f}/s of {rate:.3f}/s")
            if flow["started"] and flow["late"] / flow["started"] >= MAX_LATE_RATIO:
                problems.append(f"{name}: {flow['late'] / flow['started']:.2%} of starts late")
            if flow["failed"] or flow["dropped"] or flow["unfinished"]:
                problems.append(
                    f"{name}: {flow['failed']} failed, {flow['dropped']} dropped, "
                    f"{flow['unfinished']} unfinished"
                )
        problems += [f"{label}: {count}" for label, count in self.unexpected_failures().items()]
        problems += [f"engine: {problem}" for problem in self.arrivals.get("problems", ())]
        return problems


def connector_count(credentials: Path) -> int:
    """How many connector identities the credentials file holds (scenario 09 runs nc per second)."""
    document = json.loads(credentials.read_text(encoding="utf-8"))
    return sum(1 for entry in document["identities"] if str(entry.get("pool", "")).startswith("c"))


def write_derived(
    scenario: Scenario, rates_per_s: dict[str, float], duration_s: float, directory: Path, name: str
) -> Path:
    def rate_of(flow: FlowSpec) -> float:
        return rates_per_s[flow.name]

    path = directory / f"{name}.toml"
    path.write_text(
        derived_text(scenario, duration_s=duration_s, rate_of=rate_of, name=name), encoding="utf-8"
    )
    return path


def run_scenario(
    scenario_path: Path,
    *,
    host: str,
    credentials: Path,
    directory: Path,
    name: str,
    rates_per_s: dict[str, float],
    duration_s: float,
    timeout_s: float | None = None,
    requests_dir: Path | None = None,
    cores: Sequence[int] = (),
) -> ScenarioRun:
    """Run a derived copy of the scenario (constant `duration_s`, the given rates per flow).

    `requests_dir`: also write the per-request tables there (`requests/`, `setup/`).
    `cores`: keep the Locust process to these cores.
    """
    pinned = tuple(cores)
    scenario = load_scenario(scenario_path)
    derived = write_derived(scenario, rates_per_s, duration_s, directory, name)
    arrivals_path = directory / f"{name}.arrivals.json"
    outcomes_path = directory / f"{name}.outcomes.json"
    log_path = directory / f"{name}.locust.log"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("BACKBONE_")}
    # The CPU of this process's waited-for children grows by exactly the Locust process's.
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with log_path.open("wb") as log:
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(LOCUSTFILE),
                "--headless",
                "--only-summary",
                "--scenario",
                str(derived),
                "-H",
                host,
                "--credentials",
                str(credentials),
                "--arrival-json",
                str(arrivals_path),
                "--outcomes-json",
                str(outcomes_path),
                "--loglevel",
                "WARNING",
                *(["--requests-dir", str(requests_dir)] if requests_dir is not None else []),
            ],
            cwd=REPOSITORY,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout_s or duration_s + scenario.drain_timeout_s + 60,
            check=False,
            preexec_fn=(lambda: os.sched_setaffinity(0, pinned)) if pinned else None,
        )
    wall_s = time.monotonic() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    generator_cpu_s = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    arrivals = json.loads(arrivals_path.read_text(encoding="utf-8")) if arrivals_path.exists() else {}
    outcomes = json.loads(outcomes_path.read_text(encoding="utf-8")) if outcomes_path.exists() else {}
    return ScenarioRun(
        name,
        completed.returncode,
        rates_per_s,
        arrivals,
        outcomes,
        log_path,
        duration_s,
        generator_cpu_s,
        wall_s,
    )
