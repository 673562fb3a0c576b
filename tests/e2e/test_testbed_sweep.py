"""`testbed sweep` end to end on a tiny sweep: `dev` with 1 and 2 gunicorn workers, the smoke
scenario, two 3 s steps per cell after a 1 s warm-up. Both cells get a capacity search directory
with its report, sweep.parquet one row each, the sweep report with the recommendation, and the
size on disk is printed; resuming the finished sweep reuses both cells and starts no landscape."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from reports.capacity import CAPACITY_HTML
from reports.sweep import SWEEP_HTML, SWEEP_MD, SWEEP_TABLE, read_sweep
from tests.helpers.landscape import run_testbed

TINY = """
name = "tiny"
profile = "dev"
target = { multiplier = 1 }
headroom = 0.3

[workload]
scenario = "smoke"
pool = "none"
start_multiplier = 1

[search]
step_s = 3
warm_up_s = 1
max_steps = 2

[dimensions]
nodes.workers = [1, 2]
"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    base = tmp_path_factory.mktemp("sweep")
    (base / "tiny.toml").write_text(TINY, encoding="utf-8")
    results = base / "results"
    answer = run_testbed("sweep", str(base / "tiny.toml"), "--results", str(results), timeout_s=300)
    assert answer.returncode in (0, 1), answer.stderr
    (directory,) = results.iterdir()
    return directory, answer


@pytest.mark.slow
def test_every_cell_is_searched_and_the_sweep_reports_the_recommendation(
    sweep: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    directory, answer = sweep
    cells = pd.read_parquet(directory / SWEEP_TABLE)
    assert cells["cell"].tolist() == ["cell-01", "cell-02"]
    assert cells["options"].tolist() == ['{"nodes.workers": 1}', '{"nodes.workers": 2}']
    for name in cells["cell"]:
        assert (directory / name / CAPACITY_HTML).is_file()
        assert sorted(path.name for path in (directory / name).glob("step-*"))[:1] == ["step-01"]
    # A progress line per cell and per step.
    assert "cell 1/2 (nodes.workers = 1): landscape up" in answer.stderr
    assert "cell 2/2 (nodes.workers = 2) done in" in answer.stderr
    assert "testbed sweep cell-02 (2/2): step 1 at multiplier 1" in answer.stderr
    out = answer.stdout.splitlines()
    assert out[0] == "Target: 1 x the scenario with 30% headroom: a capacity of at least 1.3 x."
    assert any(line.startswith("nodes.workers: ") for line in out)
    assert any(line.startswith("size on disk: ") for line in out)
    summary = (directory / SWEEP_MD).read_text(encoding="utf-8")
    assert summary.splitlines()[0].rstrip() == out[0]
    html = (directory / SWEEP_HTML).read_text(encoding="utf-8")
    assert 'href="cell-01/capacity.html"' in html
    record = read_sweep(directory)
    assert (record.cells_planned, record.interrupted) == (2, False)
    # 2 cells never support a fit: the report says why instead of drawing a curve.
    assert "fewer than the 4 a fit needs" in html


@pytest.mark.slow
def test_resuming_a_finished_sweep_reuses_its_cells(
    sweep: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    directory, first = sweep
    again = run_testbed("sweep", "--resume", directory.name, "--results", str(directory.parent), timeout_s=60)
    assert again.returncode == first.returncode, again.stderr
    assert "resuming: 2 of 2 cell(s) done" in again.stderr
    assert "landscape up" not in again.stderr
    assert again.stdout.splitlines()[0] == first.stdout.splitlines()[0]
