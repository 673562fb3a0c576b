"""The faults of a scenario, applied to the run's own landscape at their time offsets.

A `FaultRunner` thread waits for the schedule's clock (the first load process writes when it
started, `reports.rundir.SCHEDULE_STARTED`), then takes each fault in turn: apply it at `at_s`,
undo it `duration_s` later, and write `faults.json` after every change (so an interrupted run's
report still shows what was done). Every action goes through the landscape (`FaultTarget`), which
touches only the processes, proxies and CPU groups its own state file records; the machine's
shared servers are never signalled.

The run stops the runner (and waits for it) before the landscape goes down: no fault restarts a
process while `down` stops them.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from reports.rundir import FAULTS, SCHEDULE_STARTED
from scenarios.schema import FaultSpec

# How long the runner waits for the schedule's clock before it gives up (Locust's start-up and
# the setup phase's log-ins come first).
CLOCK_TIMEOUT_S = 300.0


class FaultTarget(Protocol):
    """What a fault may do to the run's landscape, by role (node1, worker1, postgresql) or tier."""

    def kill(self, role: str) -> int: ...

    def stop_database(self) -> int: ...

    def restart(self, role: str) -> int: ...

    def cut(self, proxy: str) -> None: ...

    def restore(self, proxy: str) -> None: ...

    def delay(self, proxy: str, milliseconds: float) -> None: ...

    def throttle(self, tier: str, cores: float | None) -> list[str]: ...

    def roles(self, tier: str) -> list[str]: ...


@dataclass
class AppliedFault:
    """One fault as the run applied it (times in epoch seconds; NaN-free: 0 when it never happened)."""

    kind: str
    label: str
    tier: str
    target: str
    at_s: float
    duration_s: float
    planned_start_s: float = 0.0
    applied_at_s: float = 0.0
    ended_at_s: float = 0.0
    restart: bool = True
    error: str = ""
    interrupted: bool = False
    # The process group a kill or a stop ended, and the process started again in its place (0: none).
    stopped_pid: int = 0
    restarted_pid: int = 0


class FaultRunner(threading.Thread):
    """Apply the scenario's faults in turn from the schedule's start; `stop` ends it early."""

    def __init__(self, faults: tuple[FaultSpec, ...], target: FaultTarget, run_dir: Path) -> None:
        super().__init__(name="faults", daemon=True)
        self.faults = faults
        self.target = target
        self.run_dir = run_dir
        self.applied: list[AppliedFault] = []
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Stop at once: a fault being applied finishes its step, none is undone or started."""
        self._stopping.set()
        if self.is_alive():
            self.join()

    def run(self) -> None:
        clock_s = self._wait_for_clock()
        if clock_s is None:
            return
        for spec in self.faults:
            fault = AppliedFault(
                spec.kind,
                spec.label,
                spec.tier,
                spec.target,
                spec.at_s,
                spec.duration_s,
                planned_start_s=clock_s + spec.at_s,
                restart=spec.restart,
            )
            self.applied.append(fault)
            self._save()
            if not self._sleep_until(fault.planned_start_s):
                fault.interrupted = True
                break
            try:
                undo = self._apply(spec, fault)
            except Exception as error:
                fault.error = f"{type(error).__name__}: {error}"
                _say(f"fault {spec.label} could not be applied: {fault.error}")
                self._save()
                continue
            self._save()
            finished = self._sleep_until(fault.applied_at_s + spec.duration_s)
            if not finished:
                fault.interrupted = True
                self._save()
                break
            try:
                undo()
            except Exception as error:
                fault.error = f"undoing it failed: {type(error).__name__}: {error}"
                _say(f"fault {spec.label}: {fault.error}")
            fault.ended_at_s = time.time()
            self._save()
            _say(f"fault {spec.label}: ended")
        self._save()

    def _apply(self, spec: FaultSpec, fault: AppliedFault) -> _Undo:
        """Apply one fault; return what undoes it when its duration is over."""
        target = self.target
        undo: _Undo = _nothing
        match spec.kind:
            case "kill-node" | "kill-worker":
                role = spec.target or target.roles(spec.tier)[0]
                fault.target = role
                fault.stopped_pid = target.kill(role)
                if spec.restart:
                    undo = lambda: _restarted(fault, target.restart(role))  # noqa: E731
            case "stop-database":
                fault.target = "postgresql"
                fault.stopped_pid = target.stop_database()
                undo = lambda: _restarted(fault, target.restart("postgresql"))  # noqa: E731
            case "cut-broker":
                fault.target = "broker-proxy"
                target.cut("broker-proxy")
                undo = lambda: target.restore("broker-proxy")  # noqa: E731
            case "slow-database":
                fault.target = "database-proxy"
                target.delay("database-proxy", spec.latency_ms)
                undo = lambda: target.delay("database-proxy", 0.0)  # noqa: E731
            case "throttle-tier":
                fault.target = ", ".join(target.throttle(spec.tier, spec.cores))
                undo = lambda: [None for _ in target.throttle(spec.tier, None)]  # noqa: E731
            case _:
                raise ValueError(f"unknown fault kind {spec.kind!r}")
        fault.applied_at_s = time.time()
        _say(f"fault {spec.label}: applied to {fault.target}")
        return undo

    def _wait_for_clock(self) -> float | None:
        marker = self.run_dir / SCHEDULE_STARTED
        deadline = time.monotonic() + CLOCK_TIMEOUT_S
        while not self._stopping.is_set() and time.monotonic() < deadline:
            try:
                return float(marker.read_text().strip())
            except (OSError, ValueError):
                self._stopping.wait(0.1)
        if not self._stopping.is_set():
            _say(f"faults: the schedule's clock did not start within {CLOCK_TIMEOUT_S:g} s; none applied")
        return None

    def _sleep_until(self, epoch_s: float) -> bool:
        """Sleep until `epoch_s`; False when stopped first."""
        return not self._stopping.wait(max(epoch_s - time.time(), 0.0))

    def _save(self) -> None:
        document = {"faults": [asdict(fault) for fault in self.applied]}
        path = self.run_dir / FAULTS
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(document, indent=2))
        temporary.replace(path)


class _Undo(Protocol):
    def __call__(self) -> object: ...


def _nothing() -> None:
    return None


def _restarted(fault: AppliedFault, pid: int) -> None:
    fault.restarted_pid = pid


def _say(text: str) -> None:
    print(f"\ntestbed run: {text}", file=sys.stderr)
