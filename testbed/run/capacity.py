"""The capacity search's logic: which multiplier to try next, and what the steps so far conclude.

Pure functions of the steps' outcomes (`reports.verdicts`: good, bad, generator-limited); the
steps themselves run in `capacity_search.py`. docs/capacity.md, "The capacity search":

* The first step runs at the start multiplier. While every step was good, the next multiplies the
  last by the growth factor.
* Once a step is bad, the search bisects between the highest good step below the lowest bad one
  and that bad one (the midpoint of the two multipliers), until (bad - good) / good is at most the
  resolution. The capacity is the good step's.
* A first step that is already bad ends the search without a capacity (start lower); so does a
  step the load generator could not drive, whenever it comes: its figures say nothing of the
  system, and a search whose steps were not all driven names no capacity.
* After `max_steps` steps the search stops where it is: with a bad step, the capacity is the good
  one's, bracketed more widely than the resolution; without one, the highest good step is a lower
  bound only. An interrupted search concludes the same way from the steps it finished.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from reports.capacity import BRACKETED, LOWER_BOUND, NONE, Conclusion
from reports.verdicts import BAD, GENERATOR_LIMITED, GOOD


class SearchPlanError(ValueError):
    """The search's options are impossible; the message lists every problem, one per line."""


@dataclass(frozen=True)
class SearchPlan:
    """Where the search starts, how it grows, when it is precise enough and when it stops."""

    start_multiplier: float
    growth: float = 2.0
    resolution: float = 0.05
    max_steps: int = 10

    def __post_init__(self) -> None:
        problems = []
        if not (self.start_multiplier > 0 and math.isfinite(self.start_multiplier)):
            problems.append(f"--start-multiplier must be a number > 0, got {self.start_multiplier:g}")
        if not (1 < self.growth <= 100):
            problems.append(f"--growth must be a number above 1 and at most 100, got {self.growth:g}")
        if not (0 < self.resolution < 1):
            problems.append(f"--resolution must be a number between 0 and 1, got {self.resolution:g}")
        if not (1 <= self.max_steps <= 100):
            problems.append(f"--max-steps must be an integer in 1..100, got {self.max_steps}")
        if problems:
            raise SearchPlanError("\n".join(problems))


@dataclass(frozen=True)
class StepOutcome:
    """One finished step: its number (from 1), multiplier and outcome (GOOD, BAD, GENERATOR_LIMITED)."""

    step: int
    multiplier: float
    outcome: str
    reason: str = ""


def bracket(steps: Sequence[StepOutcome]) -> tuple[StepOutcome | None, StepOutcome | None]:
    """Return (the highest good step below the lowest bad one, the lowest bad step); either may be None.

    A good step above a bad one (noise between two close multipliers) does not move the bracket:
    the bad step below it already showed a load the system did not hold.
    """
    bad = min((step for step in steps if step.outcome == BAD), key=lambda step: step.multiplier, default=None)
    ceiling = bad.multiplier if bad is not None else math.inf
    good = max(
        (step for step in steps if step.outcome == GOOD and step.multiplier < ceiling),
        key=lambda step: step.multiplier,
        default=None,
    )
    return good, bad


def width(good: StepOutcome, bad: StepOutcome) -> float:
    """The bracket's relative width, (bad - good) / good."""
    return (bad.multiplier - good.multiplier) / good.multiplier


def next_multiplier(steps: Sequence[StepOutcome], plan: SearchPlan) -> float | None:
    """Return the multiplier of the next step, or None when the search is over."""
    if not steps:
        return plan.start_multiplier
    if len(steps) >= plan.max_steps or any(step.outcome == GENERATOR_LIMITED for step in steps):
        return None
    good, bad = bracket(steps)
    if good is None:
        return None  # the first step was already bad
    if bad is None:
        return good.multiplier * plan.growth
    if width(good, bad) <= plan.resolution:
        return None
    return (good.multiplier + bad.multiplier) / 2


def conclude(steps: Sequence[StepOutcome], plan: SearchPlan, *, interrupted: bool = False) -> Conclusion:
    """Return what the finished steps say: a capacity bracketed by a good and a bad step, a lower
    bound, or no capacity, with the reason in one sentence."""
    stopped = " (interrupted)" if interrupted else ""
    if not steps:
        return Conclusion(NONE, f"no step finished{stopped}")
    limited = next((step for step in steps if step.outcome == GENERATOR_LIMITED), None)
    if limited is not None:
        return Conclusion(
            NONE,
            f"step {limited.step} (multiplier {limited.multiplier:g}): {limited.reason}; a search whose "
            "steps were not all driven names no capacity",
        )
    good, bad = bracket(steps)
    if good is None:
        assert bad is not None
        return Conclusion(
            NONE,
            f"the first step (multiplier {bad.multiplier:g}) was already bad: {bad.reason}; "
            "start lower (--start-multiplier)",
            bad_step=bad.step,
        )
    if bad is None:
        return Conclusion(
            LOWER_BOUND,
            f"every step held up to multiplier {good.multiplier:g} after {len(steps)} step(s){stopped}: "
            "the capacity is at least that (raise --max-steps or --start-multiplier to bracket it)",
            capacity_multiplier=good.multiplier,
            good_step=good.step,
        )
    reached = width(good, bad) <= plan.resolution
    how = (
        f"within the resolution {plan.resolution:.0%}"
        if reached
        else f"wider than the resolution {plan.resolution:.0%} after {len(steps)} step(s){stopped}"
    )
    return Conclusion(
        BRACKETED,
        f"step {good.step} (multiplier {good.multiplier:g}) held and step {bad.step} (multiplier "
        f"{bad.multiplier:g}) did not: {width(good, bad):.1%} apart, {how}",
        capacity_multiplier=good.multiplier,
        good_step=good.step,
        bad_step=bad.step,
        resolution_reached=reached,
    )
