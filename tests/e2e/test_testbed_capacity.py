"""`testbed capacity` end to end on `dev`: a 3-step search of the smoke scenario (5 s steps after a
2 s warm-up) names a capacity and a limiting tier, or says why it could not; every step is a run
directory of the one landscape; an interrupted search leaves nothing running and keeps its
finished steps; bad options are refused at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from reports.capacity import BRACKETED, CAPACITY_HTML, CAPACITY_MD, NONE, STEPS_TABLE, read_search
from reports.render import build_report
from reports.rundir import flows_table, read_run
from reports.verdicts import BAD, GOOD
from testbed.landscape.process_groups import marked_processes
from testbed.run.capacity import SearchPlan, StepOutcome, next_multiplier
from tests.helpers.landscape import run_testbed

REPOSITORY = Path(__file__).resolve().parents[2]
STEP_S, WARM_UP_S = 5.0, 2.0
SEARCH = [
    "capacity",
    "--profile",
    "dev",
    "--scenario",
    "smoke",
    "--pool",
    "none",
    "--step-s",
    str(STEP_S),
    "--warm-up-s",
    str(WARM_UP_S),
    "--start-multiplier",
    "2",
    "--max-steps",
    "3",
]


def leftovers(directory: Path, landscape_id: str) -> list[int]:
    """Processes of the landscape, or load generators writing into the search's directory."""
    found = marked_processes(landscape_id)
    for process in psutil.process_iter(["cmdline"]):
        if any(str(directory) in part for part in process.info["cmdline"] or ()):
            found.append(process.pid)
    return found


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    results = tmp_path_factory.mktemp("capacity")
    answer = run_testbed(*SEARCH, "--results", str(results), timeout_s=400)
    assert answer.returncode in (0, 1), answer.stderr
    (directory,) = results.iterdir()
    return directory, answer


@pytest.mark.slow
def test_the_search_names_a_capacity_and_a_limiting_tier_or_why_it_could_not(
    search: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    directory, answer = search
    capacity, tier, bound = (line.rstrip() for line in (directory / CAPACITY_MD).read_text().splitlines()[:3])
    assert answer.stdout.splitlines()[:3] == [capacity, tier, bound]
    steps = pd.read_parquet(directory / STEPS_TABLE)
    conclusion = read_search(directory).conclusion
    assert 1 <= len(steps) <= 3
    assert steps["step"].tolist() == list(range(1, len(steps) + 1))
    # The search followed its own rule from the first step to the last, and stopped where it should.
    plan = SearchPlan(start_multiplier=2.0, max_steps=3)
    outcomes = [StepOutcome(row.step, row.multiplier, row.outcome) for row in steps.itertuples()]
    for index, row in enumerate(steps.itertuples()):
        assert next_multiplier(outcomes[:index], plan) == row.multiplier
    assert next_multiplier(outcomes, plan) is None
    for row in steps.itertuples():
        assert row.requests > 0
        assert row.offered_requests_per_s > 0
        assert row.p50_ms <= row.p90_ms <= row.p99_ms
    if conclusion.status == NONE:
        assert capacity.startswith("Capacity: none (smoke on dev): ")
        assert len(capacity) > len("Capacity: none (smoke on dev): ") + 20  # the reason
    else:
        good = steps[steps["step"] == conclusion.good_step].iloc[0]
        assert good["outcome"] == GOOD
        rate = (
            f"{good['achieved_requests_per_s']:,.1f} requests/s at scenario multiplier {good['multiplier']:g}"
        )
        assert rate in capacity
    if conclusion.bad_step is not None:
        bad = steps[steps["step"] == conclusion.bad_step].iloc[0]
        assert bad["outcome"] == BAD
        named = bad["first_saturated_tier"]
        assert tier.startswith(f"Limiting tier: {named} at step" if named else "Limiting tier: none named")
        assert bound.startswith(f"Bounded by: {'the SLO' if not bad['slo_passed'] else 'step'}")
    else:
        assert tier.startswith("Limiting tier: not ")
    assert (answer.returncode == 0) == (conclusion.status == BRACKETED)
    html = (directory / CAPACITY_HTML).read_text(encoding="utf-8")
    assert 'data-chart="capacity-latency"' in html
    assert 'data-chart="capacity-throughput"' in html
    assert "http://" not in html
    assert "https://" not in html


@pytest.mark.slow
def test_every_step_is_a_run_directory_of_the_one_landscape_with_its_warm_up_left_out(
    search: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    directory, _ = search
    steps = pd.read_parquet(directory / STEPS_TABLE)
    landscapes = set()
    for row in steps.itertuples():
        run = read_run(directory / row.run_dir)
        assert (directory / row.run_dir / "report.html").is_file()
        manifest = run.manifest
        landscapes.add((manifest.profile.landscape_id, manifest.profile.up_seconds))
        assert manifest.scenario.multiplier == row.multiplier
        assert (manifest.scenario.warm_up_s, manifest.scenario.duration_s) == (WARM_UP_S, WARM_UP_S + STEP_S)
        assert [process.role for process in manifest.load_generator.processes] == ["master", "worker"]
        sampled = set(run.processes.loc[run.processes["tier"] == "load-generator", "process"].astype(str))
        assert sampled == {"locust-master", "locust-worker1"}
        # The arrival engine counted the measured window's starts only: the warm-up's are apart.
        scheduled = int(flows_table(run.arrival)["scheduled"].sum())
        assert 0.75 <= scheduled / (row.offered_iterations_per_s * STEP_S) <= 1.25
        report = build_report(run)
        assert report.load.requests == row.requests
        # The warm-up's requests are in the table but not judged.
        assert report.load.warm_up_requests > 0
        assert len(run.requests) == report.load.requests + report.load.warm_up_requests
        assert (report.step_verdict().outcome, report.step_verdict().reason) == (row.outcome, row.reason)
    # The landscape came up once for the whole search, and its logs are the search's.
    assert len(landscapes) == 1
    assert (directory / "logs" / "node1.log").is_file()
    (landscape_id, _) = landscapes.pop()
    assert leftovers(directory, landscape_id) == []


@pytest.mark.slow
def test_testbed_report_renders_the_capacity_report_again(
    search: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    directory, answer = search
    first = (directory / CAPACITY_MD).read_text(encoding="utf-8").splitlines()[0].rstrip()
    (directory / CAPACITY_HTML).unlink()
    again = run_testbed("report", str(directory), timeout_s=120)
    assert again.returncode == answer.returncode
    assert again.stdout.splitlines()[0] == first
    assert (directory / CAPACITY_HTML).is_file()


@pytest.mark.slow
def test_an_interrupted_search_leaves_nothing_running_and_keeps_its_finished_steps(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BACKBONE_")}
    # Short steps at a rate any machine holds (4 starts/s), so the first step is good and a second
    # one starts: only their number matters here.
    short = ["--step-s", "3", "--warm-up-s", "1", "--start-multiplier", "0.2"]
    command = [sys.executable, "-m", "testbed.cli", *SEARCH, *short, "--results", str(tmp_path)]
    process = subprocess.Popen(command, cwd=REPOSITORY, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lines.extend, args=(process.stderr,), daemon=True)
    reader.start()
    deadline = time.monotonic() + 180
    # Step 2's load generator is starting: the signal comes while its processes run.
    while not any("(multiplier 0.4)" in line for line in lines):
        assert process.poll() is None, "".join(lines)
        assert time.monotonic() < deadline, "".join(lines)
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 130, "".join(lines)
    reader.join(timeout=10)
    (directory,) = tmp_path.iterdir()
    record = read_search(directory)
    assert record.interrupted
    steps = pd.read_parquet(directory / STEPS_TABLE)
    assert steps["step"].tolist() == [1]
    assert (directory / "step-01" / "report.html").is_file()
    summary = (directory / CAPACITY_MD).read_text(encoding="utf-8").splitlines()
    assert summary[0].startswith("Capacity: ")
    assert "interrupted" in "".join(lines)
    landscape_id = read_run(directory / "step-01").manifest.profile.landscape_id
    assert leftovers(directory, landscape_id) == []
    assert not (REPOSITORY / "var" / "runs" / directory.name / "landscape.json").exists()


def test_bad_options_are_refused_at_once_with_every_problem() -> None:
    answer = run_testbed(
        "capacity",
        "--step-s",
        "0",
        "--resolution",
        "2",
        "--max-steps",
        "0",
        "--load-processes",
        "0",
        timeout_s=60,
    )
    assert answer.returncode == 2
    assert "--step-s must be between 0 and 3600 seconds, got 0" in answer.stderr
    assert "--load-processes must be an integer in 1..64, got 0" in answer.stderr
    assert "Traceback" not in answer.stderr
    answer = run_testbed("capacity", "--resolution", "2", "--max-steps", "0", "--growth", "1", timeout_s=60)
    assert answer.returncode == 2
    for problem in (
        "--resolution must be a number between 0 and 1, got 2",
        "--max-steps must be an integer in 1..100, got 0",
        "--growth must be a number above 1 and at most 100, got 1",
    ):
        assert problem in answer.stderr
    answer = run_testbed(
        "capacity", "--scenario", "scenarios/bare-shapes.toml", "--pool", "none", timeout_s=60
    )
    assert answer.returncode == 2
    assert "a capacity search needs a constant shape" in answer.stderr
