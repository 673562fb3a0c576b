"""Rate profiles as pure functions of time, and the arrival times they imply.

A shape scales every flow's base rate by a factor f(t). Its integral F(t) is the expected number
of starts per unit of base rate, so the n-th start of a flow at rate r is due when r * F(t) = n.
Computing each start time from n (instead of adding intervals) keeps a long run free of drift.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from scenarios.schema import ConstantShape, RampShape, Shape, SoakShape, SpikeShape, StepShape

_EPSILON = 1e-9


@dataclass(frozen=True)
class Segment:
    """A stretch of time over which the rate factor changes linearly."""

    duration_s: float
    start_factor: float
    end_factor: float

    @property
    def slope_per_s(self) -> float:
        return (self.end_factor - self.start_factor) / self.duration_s

    @property
    def area(self) -> float:
        return (self.start_factor + self.end_factor) / 2 * self.duration_s


class RateProfile:
    """A piecewise-linear rate factor over time: f(t), its integral F(t) and the inverse of F."""

    def __init__(self, segments: tuple[Segment, ...]) -> None:
        self.segments = tuple(segment for segment in segments if segment.duration_s > 0)
        self._starts_s: list[float] = []
        self._areas_before: list[float] = []
        elapsed_s = area = 0.0
        for segment in self.segments:
            self._starts_s.append(elapsed_s)
            self._areas_before.append(area)
            elapsed_s += segment.duration_s
            area += segment.area
        self.duration_s = elapsed_s
        self.total_area = area

    def factor(self, t_s: float) -> float:
        """Return the rate factor at `t_s` seconds into the run (0 outside the run)."""
        if t_s < 0 or t_s > self.duration_s:
            return 0.0
        for start_s, segment in zip(self._starts_s, self.segments, strict=True):
            if t_s <= start_s + segment.duration_s:
                return segment.start_factor + segment.slope_per_s * (t_s - start_s)
        return 0.0

    def cumulative(self, t_s: float) -> float:
        """Return F(t): the integral of the rate factor from 0 to `t_s`."""
        if t_s <= 0:
            return 0.0
        if t_s >= self.duration_s:
            return self.total_area
        for start_s, before, segment in zip(self._starts_s, self._areas_before, self.segments, strict=True):
            if t_s <= start_s + segment.duration_s:
                tau = t_s - start_s
                return before + segment.start_factor * tau + segment.slope_per_s * tau * tau / 2
        return self.total_area

    def time_at(self, area: float) -> float | None:
        """Return the first t with F(t) = `area`, or None when the run ends before that."""
        if area > self.total_area + _EPSILON:
            return None
        if area <= 0:
            return 0.0
        for start_s, before, segment in zip(self._starts_s, self._areas_before, self.segments, strict=True):
            if area <= before + segment.area + _EPSILON and segment.area > 0:
                remaining = max(0.0, area - before)
                a, b = segment.start_factor, segment.slope_per_s
                # Solve a*tau + b*tau^2/2 = remaining in the form that stays exact when b is 0 or tiny.
                root = math.sqrt(max(0.0, a * a + 2 * b * remaining))
                tau = 2 * remaining / (a + root) if a + root > 0 else 0.0
                return start_s + min(tau, segment.duration_s)
        return self.duration_s


def profile_for(shape: Shape) -> RateProfile:
    """Return the rate profile of a shape from a scenario file."""
    segments: tuple[Segment, ...]
    match shape:
        case ConstantShape(duration_s=duration_s):
            segments = (Segment(duration_s, 1.0, 1.0),)
        case RampShape(duration_s=duration_s, from_factor=start, to_factor=end):
            segments = (Segment(duration_s, start, end),)
        case StepShape(factors=factors, step_s=step_s):
            segments = tuple(Segment(step_s, factor, factor) for factor in factors)
        case SpikeShape():
            after_s = shape.duration_s - shape.spike_at_s - shape.spike_s
            segments = (
                Segment(shape.spike_at_s, shape.base_factor, shape.base_factor),
                Segment(shape.spike_s, shape.spike_factor, shape.spike_factor),
                Segment(after_s, shape.base_factor, shape.base_factor),
            )
        case SoakShape(duration_s=duration_s, ramp_s=ramp_s):
            segments = (Segment(ramp_s, 0.0, 1.0), Segment(duration_s - ramp_s, 1.0, 1.0))
    return RateProfile(segments)


@dataclass(frozen=True)
class Share:
    """This process's part of the global schedule: every `count`-th start, beginning at `index`."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"share index {self.index} is outside 0..{self.count - 1}")


WHOLE = Share()


def start_offsets(
    profile: RateProfile,
    rate_per_s: float,
    *,
    share: Share = WHOLE,
    arrivals: str = "uniform",
    seed: int = 1,
) -> Iterator[float]:
    """Yield this process's start times (seconds from the run's start) for a flow at `rate_per_s`.

    Uniform arrivals are the global starts n = 1, 2, ... at F(t) = n / rate; a share takes every
    count-th of them, so the shares of all workers interleave into exactly the global schedule.
    Poisson arrivals give each share an independent Poisson process at rate / count, whose
    superposition is again Poisson at the full rate.
    """
    if rate_per_s <= 0:
        return
    if arrivals == "uniform":
        n = share.index + 1
        while (t_s := profile.time_at(n / rate_per_s)) is not None:
            yield t_s
            n += share.count
    elif arrivals == "poisson":
        rng = random.Random(seed * 1_000_003 + share.index)
        share_rate_per_s = rate_per_s / share.count
        expected = 0.0
        while True:
            expected += rng.expovariate(1.0)
            t_s = profile.time_at(expected / share_rate_per_s)
            if t_s is None:
                return
            yield t_s
    else:
        raise ValueError(f"unknown arrival process {arrivals!r}")


def expected_starts(profile: RateProfile, rate_per_s: float) -> float:
    """Return how many starts the whole run holds at `rate_per_s` (all shares together)."""
    return profile.total_area * rate_per_s
