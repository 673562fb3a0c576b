"""Sweep files: the shipped ones read, and bad input gets one message with every problem before
anything starts (no landscape, no results directory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios.sweep_schema import GRID, ONE_AT_A_TIME, SweepError, load_sweep, parse_sweep
from testbed.cli import main
from testbed.landscape.cpu import plan_cpus

GOOD = """
name = "tiny"
profile = "capacity"
target = { multiplier = 10 }
headroom = 0.3

[dimensions]
nodes.count = [1, 2]

[options]
nodes.cpu_limit = 0.125
database.cpu_limit = 0.3
"""


def parse(text: str) -> object:
    return parse_sweep(text, source=Path("x.toml"))


@pytest.mark.parametrize("name", ["nodes", "database", "gateway", "workers"])
def test_the_shipped_sweeps_read_and_each_cell_is_a_valid_profile(name: str) -> None:
    sweep = load_sweep(name)
    assert sweep.cells
    assert sweep.target_unit == "multiplier"
    assert sweep.target == 10
    assert sweep.headroom == 0.3
    for cell in sweep.cells:
        assert set(cell.values) == set(sweep.dimensions)
        # Within a 2-core machine: core 0 the landscape's, core 1 the load generator's.
        plan = plan_cpus(cell.profile, available={0, 1}, find=lambda: None)
        assert plan.load_generator_cores == (1,)
        assert plan.budget_total_cores <= 1.0 + 1e-9


def test_nodes_is_one_to_four_nodes_at_an_eighth_of_a_core() -> None:
    sweep = load_sweep("nodes")
    assert sweep.mode == GRID
    assert [cell.profile.nodes.count for cell in sweep.cells] == [1, 2, 3, 4]
    assert {cell.profile.nodes.cpu_limit for cell in sweep.cells} == {0.125}
    assert {cell.profile.database.cpu_limit for cell in sweep.cells} == {0.3}


def test_one_at_a_time_varies_each_dimension_from_the_profile_and_measures_a_landscape_once() -> None:
    sweep = load_sweep("database")
    assert sweep.mode == ONE_AT_A_TIME
    pairs = [(cell.values["database.cpu_limit"], cell.values["database.pool_size"]) for cell in sweep.cells]
    # cpu_limit 0.4 with the profile's pool 5 is the same landscape as pool 5 with cpu_limit 0.4.
    assert pairs == [(0.1, 5), (0.2, 5), (0.3, 5), (0.4, 5), (0.4, 2), (0.4, 10)]


def test_the_command_line_target_and_headroom_replace_the_files() -> None:
    sweep = parse_sweep(GOOD, source=Path("x.toml"), target=("requests_per_s", 500.0), headroom=0.5)
    assert (sweep.target_unit, sweep.target, sweep.headroom) == ("requests_per_s", 500.0, 0.5)


def test_every_problem_of_a_sweep_file_comes_at_once() -> None:
    text = """
profile = "capacity"
mode = "zigzag"
target = { rps = 500 }
headroom = -1
colour = "blue"

[dimensions]
nodes.size = [1, 2]
nodes.count = [1, 0]
database.url = ["postgresql://elsewhere"]
"""
    with pytest.raises(SweepError) as raised:
        parse(text)
    problems = "\n".join(raised.value.problems)
    assert "colour: is not a known" in problems or "colour: unknown key" in problems
    assert "mode: must be one of grid, one-at-a-time" in problems
    assert "target: unknown unit 'rps' (allowed: multiplier, requests_per_s)" in problems
    assert "headroom: must be a number from 0 to 10" in problems
    assert "dimensions.nodes.size: not an option of a profile" in problems
    assert "dimensions.database.url: is where the landscape runs" in problems


def test_a_value_the_profile_schema_refuses_names_its_cell() -> None:
    with pytest.raises(SweepError) as raised:
        parse(GOOD.replace("nodes.count = [1, 2]", "nodes.count = [1, 0]"))
    [problem] = raised.value.problems
    assert "cell nodes.count = 0" in problem
    assert "nodes.count: must be an integer in 1..64, got 0" in problem


def run_cli(tmp_path: Path, text: str, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "sweep.toml"
    path.write_text(text, encoding="utf-8")
    results = tmp_path / "results"
    code = main(["sweep", str(path), "--results", str(results), *extra])
    assert not results.exists(), "nothing may start on bad input"
    return code, capsys.readouterr().err


def test_cells_beyond_the_machines_cores_are_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = GOOD.replace("nodes.count = [1, 2]", "nodes.count = [2, 3]").replace(
        "nodes.cpu_limit = 0.125", "nodes.cpu_limit = 100"
    )
    code, err = run_cli(tmp_path, text, capsys=capsys)
    assert code == 2
    assert err.startswith("testbed sweep: invalid sweep:\n")
    assert "cell nodes.count = 2:" in err
    assert "cell nodes.count = 3:" in err
    assert "Traceback" not in err


def test_bad_command_line_and_file_problems_come_in_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(
        tmp_path,
        GOOD.replace("nodes.count = [1, 2]", "nodes.count = [1, 2]\nnodes.colour = [1]"),
        "--target",
        "users=5",
        "--step-s",
        "-1",
        capsys=capsys,
    )
    assert code == 2
    assert "--target 'users=5': expected UNIT=VALUE with UNIT one of multiplier, requests_per_s" in err
    assert "dimensions.nodes.colour: not an option of a profile" in err
    assert err.count("testbed sweep:") == 1


def test_a_missing_file_or_resume_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", str(tmp_path / "nope.toml"), "--results", str(tmp_path)]) == 2
    assert "cannot read the sweep" in capsys.readouterr().err
    assert main(["sweep", "--resume", "nope", "--results", str(tmp_path)]) == 2
    assert "not a sweep's directory" in capsys.readouterr().err


def test_a_sweep_without_dimensions_or_profile_says_both() -> None:
    with pytest.raises(SweepError) as raised:
        parse('target = { multiplier = 1 }\nprofile = "no-such-profile"')
    problems = "\n".join(raised.value.problems)
    assert "dimensions: is required" in problems
    assert "profile: no profile 'no-such-profile'" in problems
