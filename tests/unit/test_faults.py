"""Faults in scenario files, checked against a profile; the recovery figures, the acknowledged-writes
record and the soak's drift, each on data whose answer is known."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loadtests.arrival.acknowledged import AcknowledgedWrites, acknowledged_ids
from reports import drift, recovery, verdicts
from reports.manifest import SloSpec
from reports.rundir import SCHEDULE_STARTED
from scenarios.faults import fault_problems, proxied_servers
from scenarios.landscape import load_profile
from scenarios.schema import ScenarioError, load_scenario, parse_scenario
from testbed.run.acknowledged import recorded_writes, verify_acknowledged
from testbed.run.faults import FaultRunner

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
SOURCE = Path("scenarios/faulty.toml")
BASE = """
[shape]
kind = "constant"
duration_s = 60
[[flows]]
flow = "smoke.challenge"
rate_per_s = 5
"""


def faults_of(text: str) -> Any:
    return parse_scenario(BASE + text, source=SOURCE).faults


def problems_of(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(BASE + text, source=SOURCE)
    return raised.value.problems


def test_a_fault_has_a_kind_a_window_and_its_tier() -> None:
    (kill,) = faults_of('[[faults]]\nkind = "kill-node"\nat_s = 10\nduration_s = 5\n')
    assert (kill.kind, kill.tier, kill.at_s, kill.ends_at_s, kill.restart) == (
        "kill-node",
        "node",
        10,
        15,
        True,
    )
    assert kill.label == "kill-node node at 10 s for 5 s"
    (slow,) = faults_of('[[faults]]\nkind = "slow-database"\nat_s = 0\nduration_s = 5\nlatency_ms = 40\n')
    assert (slow.tier, slow.latency_ms) == ("database", 40)


def test_every_problem_of_the_faults_is_listed_at_once() -> None:
    problems = problems_of(
        '[[faults]]\nkind = "unplug"\nat_s = 1\nduration_s = 1\n'
        '[[faults]]\nkind = "cut-broker"\nat_s = 10\nduration_s = 10\nlatency_ms = 5\n'
        '[[faults]]\nkind = "kill-node"\nat_s = 15\nduration_s = 2\n'
        '[[faults]]\nkind = "throttle-tier"\nat_s = 50\nduration_s = 20\n'
    )
    assert problems == [
        "scenarios/faulty.toml: faults[0].kind: must be one of kill-node, kill-worker, stop-database, "
        "slow-database, cut-broker, throttle-tier, got 'unplug'",
        "scenarios/faulty.toml: faults[1].latency_ms: applies to slow-database only, not cut-broker",
        "scenarios/faulty.toml: faults[3].tier: is required",
        "scenarios/faulty.toml: faults[3].cores: is required",
        "scenarios/faulty.toml: faults[3].duration_s: the fault ends at 70 s, after the run's 60 s",
        "scenarios/faulty.toml: faults: kill-node node at 15 s for 2 s starts before cut-broker broker at "
        "10 s for 10 s ends; faults take turns, so each recovery is its own",
    ]


def test_a_fault_the_profile_cannot_take_is_named_with_the_reason() -> None:
    scenario = parse_scenario(
        BASE
        + '[[faults]]\nkind = "kill-worker"\nat_s = 1\nduration_s = 1\n'
        + '[[faults]]\nkind = "stop-database"\nat_s = 3\nduration_s = 1\n'
        + '[[faults]]\nkind = "kill-node"\ntarget = "node3"\nat_s = 5\nduration_s = 1\n'
        + '[[faults]]\nkind = "throttle-tier"\ntier = "gateway"\ncores = 0.1\nat_s = 7\nduration_s = 1\n',
        source=SOURCE,
    )
    problems = fault_problems(scenario, load_profile("dev"))
    assert [line.split(": ", 2)[2] for line in problems] == [
        "the profile dev has no events tier (its tiers: admin, node)",
        'the profile dev has no database server of its own to stop (database.server = "private" needed; '
        "a shared server is never touched)",
        "no process 'node3' in the node tier of dev (it has node1)",
        "the profile dev has no gateway tier (its tiers: admin, node)",
    ]
    assert fault_problems(scenario, load_profile("stage"))[0].endswith("(it has node1, node2)")


def test_the_catalogue_runs_on_the_production_mix_and_stage_takes_every_fault() -> None:
    mix = load_scenario(SCENARIOS / "production-mix.toml")
    catalogue = sorted((SCENARIOS / "faults").glob("*.toml"))
    kinds = set()
    for path in catalogue:
        scenario = load_scenario(path)
        assert [flow.name for flow in scenario.flows] == [flow.name for flow in mix.flows], path
        if not path.name.startswith("ci-"):  # CI's file has an SLO of its own (a shared machine)
            assert scenario.slos == mix.slos
        assert fault_problems(scenario, load_profile("stage")) == [], path
        kinds |= {fault.kind for fault in scenario.faults}
    assert kinds == {
        "kill-node",
        "kill-worker",
        "stop-database",
        "slow-database",
        "cut-broker",
        "throttle-tier",
    }
    assert proxied_servers(load_scenario(SCENARIOS / "faults" / "cut-broker.toml")) == {"broker"}


def test_flows_from_refuses_tables_of_its_own_and_a_missing_file(tmp_path: Path) -> None:
    source = tmp_path / "x.toml"
    source.write_text('flows_from = "nowhere.toml"\n[shape]\nkind = "constant"\nduration_s = 5\n')
    with pytest.raises(ScenarioError) as raised:
        load_scenario(source)
    assert any("flows_from: nowhere.toml: cannot be read" in line for line in raised.value.problems)
    source.write_text(f'flows_from = "{SCENARIOS / "smoke.toml"}"\n' + BASE)
    with pytest.raises(ScenarioError) as raised:
        load_scenario(source)
    assert any(
        line.endswith("flows: comes from flows_from") or "flows: comes from" in line
        for line in raised.value.problems
    )


class FakeLandscape:
    """Records what the runner asked for, in order, with the time."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def roles(self, tier: str) -> list[str]:
        return [f"{tier}1", f"{tier}2"]

    def kill(self, role: str) -> int:
        self.calls.append(("kill", role))
        return 111

    def stop_database(self) -> int:
        self.calls.append(("stop-database",))
        return 222

    def restart(self, role: str) -> int:
        self.calls.append(("restart", role))
        return 333

    def cut(self, proxy: str) -> None:
        self.calls.append(("cut", proxy))

    def restore(self, proxy: str) -> None:
        self.calls.append(("restore", proxy))

    def delay(self, proxy: str, milliseconds: float) -> None:
        self.calls.append(("delay", proxy, f"{milliseconds:g}"))

    def throttle(self, tier: str, cores: float | None) -> list[str]:
        self.calls.append(("throttle", tier, str(cores)))
        return [f"{tier}1"]


def test_the_runner_applies_and_undoes_each_fault_from_the_schedules_clock(tmp_path: Path) -> None:
    faults = faults_of(
        '[[faults]]\nkind = "kill-node"\nat_s = 0\nduration_s = 0.2\n'
        '[[faults]]\nkind = "slow-database"\nlatency_ms = 30\nat_s = 0.3\nduration_s = 0.1\n'
        '[[faults]]\nkind = "kill-worker"\nrestart = false\nat_s = 0.5\nduration_s = 0.1\n'
        '[[faults]]\nkind = "throttle-tier"\ntier = "node"\ncores = 0.05\nat_s = 0.7\nduration_s = 0.1\n'
    )
    landscape = FakeLandscape()
    runner = FaultRunner(faults, landscape, tmp_path)
    runner.start()
    time.sleep(0.2)
    assert landscape.calls == []  # no clock yet: nothing applied
    (tmp_path / SCHEDULE_STARTED).write_text(f"{time.time():.3f}\n")
    runner.join(timeout=10)
    assert landscape.calls == [
        ("kill", "node1"),
        ("restart", "node1"),
        ("delay", "database-proxy", "30"),
        ("delay", "database-proxy", "0"),
        ("kill", "events1"),
        ("throttle", "node", "0.05"),
        ("throttle", "node", "None"),
    ]
    applied = json.loads((tmp_path / "faults.json").read_text())["faults"]
    assert [fault["target"] for fault in applied] == ["node1", "database-proxy", "events1", "node1"]
    assert applied[0]["stopped_pid"] == 111
    assert applied[0]["restarted_pid"] == 333
    for fault in applied:
        assert fault["ended_at_s"] - fault["applied_at_s"] >= fault["duration_s"] - 0.01


def test_a_stopped_runner_undoes_nothing_and_says_it_was_interrupted(tmp_path: Path) -> None:
    faults = faults_of('[[faults]]\nkind = "cut-broker"\nat_s = 0\nduration_s = 30\n')
    landscape = FakeLandscape()
    (tmp_path / SCHEDULE_STARTED).write_text(f"{time.time():.3f}\n")
    runner = FaultRunner(faults, landscape, tmp_path)
    runner.start()
    deadline = time.monotonic() + 5
    while not landscape.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    runner.stop()
    assert time.monotonic() - started < 1
    assert landscape.calls == [("cut", "broker-proxy")]
    (fault,) = json.loads((tmp_path / "faults.json").read_text())["faults"]
    assert fault["interrupted"]
    assert not fault["ended_at_s"]


def test_acknowledged_writes_are_the_ids_of_2xx_answers_to_the_writes() -> None:
    single = json.dumps({"result": {"id": "MSGabc"}}).encode()
    listed = json.dumps({"result": {"modifications": [{"id": "DWMa"}, {"id": "DWMb"}]}}).encode()
    finalised = json.dumps({"result": {"datawalletModifications": [{"id": "DWMc"}]}}).encode()
    assert acknowledged_ids("POST", "/api/v2/Messages", 201, single) == ("messages", ["MSGabc"])
    assert acknowledged_ids("POST", "/api/v2/Datawallet/Modifications", 201, listed) == (
        "datawallet_modifications",
        ["DWMa", "DWMb"],
    )
    route = "/api/v2/SyncRuns/{id}/FinalizeExternalEventSync"
    assert acknowledged_ids("PUT", route, 200, finalised) == ("datawallet_modifications", ["DWMc"])
    assert acknowledged_ids("POST", "/api/v2/Messages", 500, single) is None
    assert acknowledged_ids("GET", "/api/v2/Messages", 200, single) is None
    assert acknowledged_ids("POST", "/api/v2/Tokens", 201, b"<html>") is None


def test_the_verifier_reads_every_acknowledged_id_back_and_counts_the_lost(tmp_path: Path) -> None:
    import sqlalchemy as sa

    database = tmp_path / "backbone.sqlite3"
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE messages (id TEXT PRIMARY KEY)"))
        connection.execute(sa.text("CREATE TABLE tokens (id TEXT PRIMARY KEY)"))
        connection.execute(sa.text("INSERT INTO messages VALUES ('M1'), ('M2')"))
        connection.execute(sa.text("INSERT INTO tokens VALUES ('T1')"))
    engine.dispose()
    writes = AcknowledgedWrites(tmp_path)
    for body in ('{"result": {"id": "M1"}}', '{"result": {"id": "M2"}}', '{"result": {"id": "M3"}}'):
        writes.record("POST", "/api/v2/Messages", 201, body.encode())
    writes.record("POST", "/api/v2/Tokens", 201, b'{"result": {"id": "T1"}}')
    writes.close()
    assert recorded_writes(tmp_path) == {"messages": {"M1", "M2", "M3"}, "tokens": {"T1"}}
    result = verify_acknowledged(tmp_path, f"sqlite:///{database}")
    assert (result["recorded"], result["found"], result["lost"]) == (4, 3, 1)
    assert result["lost_ids"] == ["messages/M3"]
    assert recovery.acknowledged_verdict(result) == verdicts.FAIL
    assert recovery.acknowledged_line(result).startswith("acknowledged writes lost: 1 of 4")
    unreadable = verify_acknowledged(tmp_path, f"sqlite:///{tmp_path / 'missing' / 'x.sqlite3'}")
    assert unreadable["error"]
    assert recovery.acknowledged_verdict(unreadable) == verdicts.FAIL


def requests_over(seconds: range, t0: float, latency_ms: Any, ok: Any, per_s: int = 20) -> pd.DataFrame:
    """`per_s` requests per second of POST /x, latency and success by the second."""
    rows = []
    for second in seconds:
        for index in range(per_s):
            start = t0 + second + index / per_s
            rows.append(
                {
                    "intended_start_s": start,
                    "start_s": start,
                    "flow": "f",
                    "method": "POST",
                    "route": "/x",
                    "status": 201 if ok(second) else 503,
                    "error_code": "" if ok(second) else "HTTP 503",
                    "ok": bool(ok(second)),
                    "latency_s": latency_ms(second) / 1000,
                    "corrected_latency_s": latency_ms(second) / 1000,
                }
            )
    return pd.DataFrame(rows)


def test_recovery_is_the_first_window_within_the_slo_after_the_fault_ended() -> None:
    t0 = 1000.0
    # Fault from 20 s to 30 s: failures during it, slow until 36 s, then fine again.
    requests = requests_over(
        range(60),
        t0,
        latency_ms=lambda s: 300 if 20 <= s < 36 else 20,
        ok=lambda s: not 20 <= s < 30,
    )
    fault = {
        "kind": "kill-node",
        "label": "kill-node node1 at 20 s for 10 s",
        "target": "node1",
        "applied_at_s": t0 + 20,
        "ended_at_s": t0 + 30,
        "duration_s": 10,
    }
    slos = [SloSpec(route="/x", method="POST", percentiles_ms=((90.0, 100.0),))]
    (row,) = recovery.recovery_table(requests, [fault], slos, t0, t0 + 60).itertuples()
    assert row.requests_during == 200
    assert row.errors_during == 200
    assert row.error_codes_during == "HTTP 503 200"
    assert (row.p90_before_ms, row.p90_during_ms, row.p90_after_ms) == (20, 300, 300)
    assert row.within_slo_before
    assert row.recovered_after_s == 6  # the first 5 s window without a slow request starts at 36 s
    assert row.verdict == verdicts.PASS
    never = requests_over(range(60), t0, latency_ms=lambda s: 300 if s >= 20 else 20, ok=lambda s: True)
    (row,) = recovery.recovery_table(never, [fault], slos, t0, t0 + 60).itertuples()
    assert math.isnan(row.recovered_after_s)
    assert row.verdict == verdicts.FAIL
    slow_throughout = requests_over(range(60), t0, latency_ms=lambda s: 300, ok=lambda s: True)
    (row,) = recovery.recovery_table(slow_throughout, [fault], slos, t0, t0 + 60).itertuples()
    assert not row.within_slo_before


def test_drift_is_the_fitted_growth_per_hour_judged_only_on_a_long_enough_window() -> None:
    t = np.arange(0.0, 1800.0, 1.0)
    processes = pd.DataFrame(
        {
            "t_s": np.concatenate([t, t]),
            "process": ["node1"] * len(t) + ["worker1"] * len(t),
            "tier": ["node"] * len(t) + ["events"] * len(t),
            "pid": 1,
            "cpu_percent": 10.0,
            # node1: 100 MiB growing 20 MiB/h (20 %/h); worker1 flat at 50 MiB.
            "rss_bytes": np.concatenate([(100 + 20 * t / 3600) * 2**20, np.full(len(t), 50 * 2**20)]).astype(
                np.int64
            ),
            "cpu_limit_cores": 1.0,
        }
    )
    limits = drift.SoakLimits(ramp_s=0.0, max_rss_growth_pct_per_h=10.0, max_p90_growth_pct_per_h=50.0)
    table = drift.rss_drift(processes, limits, 0.0, 1800.0).set_index("process")
    assert table.loc["node1", "mib_per_h"] == pytest.approx(20, rel=1e-3)
    assert table.loc["node1", "pct_per_h"] == pytest.approx(20, rel=1e-3)
    assert table.loc["node1", "verdict"] == verdicts.FAIL
    assert table.loc["worker1", "verdict"] == verdicts.PASS
    short = drift.rss_drift(processes[processes["t_s"] < 300], limits, 0.0, 300.0)
    assert set(short["verdict"]) == {verdicts.TOO_FEW}
    # p90 from 20 ms growing to 30 ms over the half hour: +50 %/h of 20 ms = 20 ms/h.
    requests = requests_over(
        range(1800), 0.0, latency_ms=lambda s: 20 + 10 * s / 1800, ok=lambda s: True, per_s=2
    )
    bins = drift.p90_bins(requests, 0.0, 1800.0)
    assert len(bins) == 30
    (row,) = drift.p90_drift(bins, limits, 0.0, 1800.0).itertuples()
    assert row.ms_per_h == pytest.approx(20, rel=0.05)
    assert row.verdict == verdicts.FAIL  # 50 %/h is not under the 50 %/h limit
