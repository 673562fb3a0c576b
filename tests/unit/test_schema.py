"""Scenario files: the examples parse, and a broken file names the file, the key and the problem."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import loadtests.flows.bare  # registers the flows the examples use
import loadtests.flows.smoke  # the smoke flows of `testbed run`
import loadtests.flows.sse  # the SSE persona
import loadtests.flows.upstream  # noqa: F401  (and the upstream scenarios' flows)
from loadtests.flows import registered_flows
from scenarios.schema import (
    ConstantShape,
    ScenarioError,
    ScenarioOverrides,
    SoakShape,
    SpikeShape,
    StepShape,
    load_scenario,
    parse_scenario,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
SOURCE = Path("scenarios/broken.toml")
VALID = """
name = "ok"
[shape]
kind = "constant"
duration_s = 10
[[flows]]
flow = "bare.constant"
rate_per_s = 5
"""


def problems_of(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(text, source=SOURCE, **kwargs)  # type: ignore[arg-type]
    return raised.value.problems


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda path: path.name)
def test_every_example_scenario_is_valid(path: Path) -> None:
    scenario = load_scenario(path, known_flows=registered_flows())

    assert scenario.flows
    assert scenario.duration_s > 0


def test_a_valid_file_becomes_frozen_dataclasses_with_defaults() -> None:
    scenario = parse_scenario(VALID, source=SOURCE)

    assert scenario.shape == ConstantShape(duration_s=10)
    (flow,) = scenario.flows
    assert (flow.name, flow.flow, flow.rate_per_s, flow.max_in_flight, flow.max_queued) == (
        "bare.constant",
        "bare.constant",
        5.0,
        1000,
        0,
    )
    assert scenario.multiplier == 1.0
    assert scenario.arrivals == "uniform"
    with pytest.raises(dataclasses.FrozenInstanceError):
        scenario.multiplier = 2.0  # type: ignore[misc]


def test_the_multiplier_scales_every_flow() -> None:
    scenario = parse_scenario("multiplier = 2.5\n" + VALID, source=SOURCE)

    assert scenario.rate_per_s(scenario.flows[0]) == 12.5


def test_shapes_and_slos_are_parsed() -> None:
    text = VALID.replace('kind = "constant"\nduration_s = 10', 'kind = "step"\nfactors = [1, 2]\nstep_s = 5')
    text += '[slo."POST /api/v1/Tokens"]\np90_ms = 160\n"p99.9_ms" = 190\nmax_failure_ratio = 0.01\n'

    scenario = parse_scenario(text, source=SOURCE)

    assert scenario.shape == StepShape(factors=(1.0, 2.0), step_s=5.0)
    (slo,) = scenario.slos
    assert (slo.method, slo.route, slo.percentiles_ms, slo.view) == (
        "POST",
        "/api/v1/Tokens",
        ((90.0, 160.0), (99.9, 190.0)),
        "corrected",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            VALID.replace("rate_per_s = 5", "rate_per_s = -3"),
            "flows[0].rate_per_s: must be a number > 0, got -3",
        ),
        (
            VALID.replace("rate_per_s = 5", 'rate_per_s = "5"'),
            "flows[0].rate_per_s: must be a number, got '5'",
        ),
        (
            VALID.replace("rate_per_s = 5", "rat_per_s = 5"),
            "flows[0].rat_per_s: unknown key (expected one of:",
        ),
        (
            VALID.replace("rate_per_s = 5", "rate_per_s = 5\nmax_in_flight = 0"),
            "flows[0].max_in_flight: must be",
        ),
        (
            VALID.replace('kind = "constant"', 'kind = "wave"'),
            "shape.kind: must be one of constant, ramp, step",
        ),
        (VALID.replace('kind = "constant"\n', ""), "shape.kind: is required"),
        (VALID.replace("duration_s = 10", "duration_s = 10\nfactors = [1]"), "shape.factors: unknown key"),
        (VALID.replace("[shape]", "[shap]"), "shap: unknown key"),
        (
            VALID.replace('name = "ok"', 'name = "ok"\narrivals = "bursty"'),
            "arrivals: must be one of uniform",
        ),
        (VALID + '[slo."GET /x"]\np90 = 5\n', 'slo."GET /x".p90: unknown key (expected pNN_ms'),
        (VALID + '[slo."GET /x"]\nview = "corrected"\n', 'slo."GET /x": names no threshold'),
        (VALID + '[slo."nowhere"]\np90_ms = 5\n', "slo.nowhere: the key must be a route template"),
        (VALID + "[[flows]]\nflow = 'bare.constant'\nrate_per_s = 1\n", "flows[1].name: duplicate flow name"),
        ("[[flows]]\nflow = 'x'\nrate_per_s = 1\n", "shape: is required"),
        ("[shape]\nkind = 'constant'\nduration_s = 1\n", "flows: is required"),
        ("name = [", "(syntax): "),
    ],
)
def test_a_broken_file_names_the_file_the_key_and_the_problem(text: str, expected: str) -> None:
    problems = problems_of(text)

    assert any(problem.startswith(f"{SOURCE}: ") and expected in problem for problem in problems), problems


def test_a_spike_must_end_within_the_run() -> None:
    text = VALID.replace(
        'kind = "constant"\nduration_s = 10',
        'kind = "spike"\nduration_s = 10\nspike_at_s = 8\nspike_s = 5\nspike_factor = 3',
    )

    assert problems_of(text) == [f"{SOURCE}: shape.spike_s: the spike ends at 13 s, after duration_s (10 s)"]


def test_a_spike_within_the_run_is_accepted() -> None:
    text = VALID.replace(
        'kind = "constant"\nduration_s = 10',
        'kind = "spike"\nduration_s = 10\nspike_at_s = 2\nspike_s = 5\nspike_factor = 3',
    )

    assert parse_scenario(text, source=SOURCE).shape == SpikeShape(10, 2, 5, 3)


def test_every_problem_is_reported_at_once() -> None:
    text = VALID.replace("rate_per_s = 5", "rate_per_s = 0\nmax_queued = -1").replace(
        "duration_s = 10", "duration_s = 0"
    )

    problems = problems_of(text)

    assert [problem.split(": ")[1] for problem in problems] == [
        "shape.duration_s",
        "flows[0].rate_per_s",
        "flows[0].max_queued",
    ]


def test_an_unknown_flow_is_rejected_when_the_registry_is_given() -> None:
    problems = problems_of(VALID.replace("bare.constant", "bare.konstant"), known_flows=registered_flows())

    assert problems[0].startswith(f"{SOURCE}: flows[0].flow: unknown flow 'bare.konstant' (registered: ")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"

    with pytest.raises(ScenarioError, match=r"absent\.toml: \(file\): cannot be read"):
        load_scenario(missing)


def test_command_line_overrides_apply_to_the_file_before_validation() -> None:
    text = VALID.replace('kind = "constant"\nduration_s = 10', 'kind = "soak"\nduration_s = 60\nramp_s = 20')
    overrides = ScenarioOverrides(multiplier=4.0, duration_s=8.0, seed=3)

    scenario = parse_scenario(text, source=SOURCE, overrides=overrides)

    assert (scenario.multiplier, scenario.duration_s, scenario.seed) == (4.0, 8.0, 3)
    assert scenario.shape == SoakShape(duration_s=8.0, ramp_s=4.0)  # the ramp moved inside the run
    assert scenario.rate_per_s(scenario.flows[0]) == 20.0
    assert overrides.given() == {"multiplier": 4.0, "duration_s": 8.0, "seed": 3}
    assert ScenarioOverrides().given() == {}


def test_an_override_is_held_to_the_file_s_rules() -> None:
    step = VALID.replace('kind = "constant"\nduration_s = 10', 'kind = "step"\nfactors = [1, 2]\nstep_s = 5')

    assert problems_of(step, overrides=ScenarioOverrides(duration_s=8.0)) == [
        f"{SOURCE}: shape.duration_s: the duration cannot be overridden: the step shape has none"
    ]
    assert problems_of(VALID, overrides=ScenarioOverrides(multiplier=-1.0)) == [
        f"{SOURCE}: multiplier: must be a number > 0, got -1.0"
    ]
