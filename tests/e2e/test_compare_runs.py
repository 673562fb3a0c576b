"""`testbed compare` on real runs of `stage`: two repeats of one experiment are no regression at a
generous threshold, a database pool of one and one worker per node is a regression of the write route.

Both sides run the smoke scenario at 240 starts/s (180 challenge creations, a write, and 60 tag
reads per second) for 15 s through stage's gateway, with one thread per gunicorn worker: the
baseline's nodes serve two requests at a time (two workers), the candidate's one (one worker, one
connection). A node that serves one request at a time cannot overlap one request's database round
trips with another's work, so the candidate queues at any load of the machine. (With four threads
per worker the one worker's threads overlap them, and on a busy machine one process per node even
beats two on its half core: its median got better while its tail got worse.)

A run the load generator could not drive on a busy machine (late starts: INVALID) makes the
comparison refuse with exit 2, rightly, and a baseline that saturated on a busy machine cannot show
what the candidate takes away: the test then skips with the reason, except under CI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_testbed_run import run_testbed
from tests.helpers.services import unavailable

STAGE_SMOKE = [
    *("run", "--profile", "stage", "--scenario", "smoke", "--duration", "15", "--multiplier", "12"),
    *("--threads", "1"),
]
CANDIDATE_OPTIONS = ["--option", "database.pool_size=1", "--option", "nodes.workers=1"]
WRITE_ROUTE = ("POST", "/api/v2/Challenges")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A baseline repeated twice and a candidate with a pool of one and one worker per node."""
    root = tmp_path_factory.mktemp("results")
    baseline = run_testbed(*STAGE_SMOKE, "--repeat", "2", "--results", str(root / "baseline"), timeout_s=400)
    assert baseline.returncode in (0, 1), baseline.stderr
    candidate = run_testbed(
        *STAGE_SMOKE, *CANDIDATE_OPTIONS, "--results", str(root / "candidate"), timeout_s=300
    )
    assert candidate.returncode in (0, 1), candidate.stderr
    return root


def compare(*args: str) -> tuple[int, str, str]:
    answer = run_testbed("compare", *args, timeout_s=120)
    if answer.returncode == 2 and " is invalid: " in answer.stderr:
        unavailable(f"the machine was too busy for the load generator: {answer.stderr.strip()}")
    return answer.returncode, answer.stdout, answer.stderr


def group_and_candidate(results: Path) -> tuple[Path, list[Path], Path]:
    (group,) = (results / "baseline").iterdir()
    repeats = sorted(path for path in group.iterdir() if path.is_dir())
    (candidate,) = (results / "candidate").iterdir()
    return group, repeats, candidate


@pytest.mark.slow
def test_two_runs_of_the_same_experiment_compare_without_regression(results: Path) -> None:
    group, repeats, _ = group_and_candidate(results)
    assert json.loads((group / "repeats.json").read_text())["runs"] == [path.name for path in repeats]
    assert len(repeats) == 2
    status, out, err = compare(
        str(repeats[0]), str(repeats[1]), "--threshold", "25%", "--results", str(results)
    )
    assert status == 0, out + err
    assert out.startswith("Verdict: no regression")


@pytest.mark.slow
def test_a_pool_of_one_and_one_worker_is_a_regression_of_the_write_route(
    results: Path, tmp_path: Path
) -> None:
    group, repeats, candidate = group_and_candidate(results)
    for run in repeats:
        first_saturated = (run / "summary.md").read_text(encoding="utf-8").splitlines()[2]
        if not first_saturated.startswith("First saturated tier: none"):
            unavailable(f"the machine was too busy: the baseline {run.name} saturated: {first_saturated}")
    markdown = tmp_path / "comparison.md"
    status, out, err = compare(
        str(group), str(candidate), "--markdown", str(markdown), "--results", str(results)
    )
    print(markdown.read_text() if markdown.is_file() else err)
    assert status == 1, out + err
    assert out.startswith("Verdict: REGRESSION")
    text = markdown.read_text()
    assert "| `profile.database.pool_size` | 3 | 1 |" in text
    assert "| `profile.nodes.workers` | 2 | 1 |" in text
    method, route = WRITE_ROUTE
    (row,) = [line for line in text.splitlines() if line.startswith(f"| {method} | {route} |")]
    assert "| regression |" in row, row
    # The baseline's spread between its two repeats went into the intervals, and the report says
    # that the single candidate's own noise from run to run is not known.
    assert "Baseline 2 run(s), candidate 1 run(s)" in text
    assert "The candidate is a single run" in text
