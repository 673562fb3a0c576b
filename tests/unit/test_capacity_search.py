"""The capacity search's logic on hand-built step outcomes: the next step, when to stop, the conclusion."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reports.capacity import BRACKETED, LOWER_BOUND, NONE
from reports.verdicts import BAD, GENERATOR_LIMITED, GOOD
from testbed.run.capacity import SearchPlan, SearchPlanError, StepOutcome, bracket, conclude, next_multiplier


def search(plan: SearchPlan, judge: Callable[[float], str]) -> list[StepOutcome]:
    """Run the search against a system judged by `judge(multiplier)`."""
    steps: list[StepOutcome] = []
    while (multiplier := next_multiplier(steps, plan)) is not None:
        steps.append(StepOutcome(len(steps) + 1, multiplier, judge(multiplier), f"judged at {multiplier:g}"))
    return steps


def holds_up_to(limit: float) -> Callable[[float], str]:
    return lambda multiplier: GOOD if multiplier <= limit else BAD


def test_the_search_grows_until_a_step_is_bad_then_bisects_to_the_resolution() -> None:
    plan = SearchPlan(start_multiplier=1.0, growth=2.0, resolution=0.05, max_steps=20)
    steps = search(plan, holds_up_to(11.3))

    assert [step.multiplier for step in steps[:5]] == [1, 2, 4, 8, 16]
    # Then the midpoints of the bracket: 12 bad, 10 good, 11 good, 11.5 bad; (11.5 - 11) / 11 = 4.5 %.
    assert [step.multiplier for step in steps[5:]] == [12, 10, 11, 11.5]
    conclusion = conclude(steps, plan)
    assert conclusion.status == BRACKETED
    assert conclusion.resolution_reached
    assert conclusion.capacity_multiplier == 11
    assert (conclusion.good_step, conclusion.bad_step) == (8, 9)
    assert "within the resolution 5%" in conclusion.reason


@pytest.mark.parametrize("limit", [0.7, 1.0, 3.3, 17.0, 250.0])
def test_the_bracket_always_holds_the_true_limit_within_the_resolution(limit: float) -> None:
    plan = SearchPlan(start_multiplier=1.0, resolution=0.02, max_steps=40)
    steps = search(plan, holds_up_to(limit))
    conclusion = conclude(steps, plan)
    if limit < 1.0:
        assert conclusion.status == NONE
        return
    good, bad = bracket(steps)
    assert good is not None
    assert bad is not None
    assert good.multiplier <= limit < bad.multiplier
    assert (bad.multiplier - good.multiplier) / good.multiplier <= 0.02
    assert conclusion.capacity_multiplier == good.multiplier


def test_a_first_step_that_is_already_bad_ends_the_search_without_a_capacity() -> None:
    plan = SearchPlan(start_multiplier=10.0)
    steps = search(plan, holds_up_to(3.0))

    assert [step.multiplier for step in steps] == [10.0]
    conclusion = conclude(steps, plan)
    assert conclusion.status == NONE
    assert conclusion.capacity_multiplier is None
    assert conclusion.bad_step == 1
    assert "already bad" in conclusion.reason
    assert "--start-multiplier" in conclusion.reason


def test_a_step_the_generator_could_not_drive_ends_the_search_without_a_capacity() -> None:
    """Also after a good and a bad step: a search whose steps were not all driven names no capacity."""
    plan = SearchPlan(start_multiplier=1.0, max_steps=20)

    def judge(multiplier: float) -> str:
        if multiplier == 3.0:
            return GENERATOR_LIMITED
        return holds_up_to(3.5)(multiplier)

    steps = search(plan, judge)
    assert [step.multiplier for step in steps] == [1, 2, 4, 3]
    conclusion = conclude(steps, plan)
    assert conclusion.status == NONE
    assert conclusion.capacity_multiplier is None
    assert conclusion.reason.startswith("step 4 (multiplier 3): judged at 3")


def test_the_search_stops_once_the_bracket_is_within_the_resolution() -> None:
    plan = SearchPlan(start_multiplier=10.0, resolution=0.25)
    steps = [StepOutcome(1, 10.0, GOOD), StepOutcome(2, 20.0, BAD), StepOutcome(3, 15.0, BAD)]
    assert next_multiplier(steps, plan) == 12.5
    steps.append(StepOutcome(4, 12.5, GOOD))
    # (15 - 12.5) / 12.5 = 20 %, within 25 %.
    assert next_multiplier(steps, plan) is None
    assert conclude(steps, plan).capacity_multiplier == 12.5


def test_max_steps_stop_the_search_with_a_lower_bound_or_a_wide_bracket() -> None:
    plan = SearchPlan(start_multiplier=1.0, max_steps=3)
    every_step_held = search(plan, holds_up_to(100.0))
    assert [step.multiplier for step in every_step_held] == [1, 2, 4]
    lower = conclude(every_step_held, plan)
    assert lower.status == LOWER_BOUND
    assert lower.capacity_multiplier == 4
    assert lower.bad_step is None
    assert "at least" in lower.reason

    wide = search(plan, holds_up_to(3.0))
    assert [step.multiplier for step in wide] == [1, 2, 4]
    conclusion = conclude(wide, plan)
    assert conclusion.status == BRACKETED
    assert not conclusion.resolution_reached
    assert conclusion.capacity_multiplier == 2
    assert "wider than the resolution 5% after 3 step(s)" in conclusion.reason


def test_a_good_step_above_a_bad_one_does_not_move_the_bracket() -> None:
    steps = [
        StepOutcome(1, 4.0, GOOD),
        StepOutcome(2, 8.0, BAD),
        StepOutcome(3, 6.0, BAD),
        StepOutcome(4, 7.0, GOOD),  # noise: 6 did not hold
    ]
    good, bad = bracket(steps)
    assert (good, bad) == (steps[0], steps[2])
    assert next_multiplier(steps, SearchPlan(start_multiplier=4.0, max_steps=10)) == 5.0


def test_an_interrupted_search_concludes_from_its_finished_steps() -> None:
    plan = SearchPlan(start_multiplier=1.0)
    assert conclude([], plan, interrupted=True).reason == "no step finished (interrupted)"
    one = conclude([StepOutcome(1, 1.0, GOOD)], plan, interrupted=True)
    assert one.status == LOWER_BOUND
    assert "(interrupted)" in one.reason


def test_an_impossible_plan_is_refused_with_every_problem() -> None:
    with pytest.raises(SearchPlanError) as raised:
        SearchPlan(start_multiplier=0.0, growth=1.0, resolution=1.5, max_steps=0)
    lines = str(raised.value).splitlines()
    assert lines == [
        "--start-multiplier must be a number > 0, got 0",
        "--growth must be a number above 1 and at most 100, got 1",
        "--resolution must be a number between 0 and 1, got 1.5",
        "--max-steps must be an integer in 1..100, got 0",
    ]
