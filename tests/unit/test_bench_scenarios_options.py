"""`make bench-scenarios`'s options: a rate multiplier and cores of Locust's own."""

from __future__ import annotations

import os

import pytest

from testbed.bench.scenarios import _backbone_cores, _parser

CORES = sorted(os.sched_getaffinity(0))


def test_by_default_every_scenario_runs_at_ten_times_and_nothing_is_pinned() -> None:
    args = _parser().parse_args([])
    assert args.multiplier == 10
    assert args.locust_cores == ()
    assert _backbone_cores(args) == ()


@pytest.mark.skipif(len(CORES) < 2, reason="needs two cores")
def test_locust_cores_leave_the_others_to_the_backbone() -> None:
    args = _parser().parse_args(["--locust-cores", str(CORES[-1]), "--multiplier", "5"])
    assert args.multiplier == 5
    assert args.locust_cores == (CORES[-1],)
    assert _backbone_cores(args) == tuple(CORES[:-1])


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("one", "is not a comma-separated list of core numbers"),
        ("4096", "this machine's cores are"),
        (",".join(map(str, CORES)), "leaves no core for the backbone"),
    ],
)
def test_cores_the_machine_lacks_or_that_leave_none_are_refused(
    value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(["--locust-cores", value])
    assert exited.value.code == 2
    assert says in capsys.readouterr().err
