"""Rate profiles and the start times they imply."""

from __future__ import annotations

import itertools
import math

import pytest

from loadtests.arrival.shapes import RateProfile, Segment, Share, expected_starts, profile_for, start_offsets
from scenarios.schema import ConstantShape, RampShape, SoakShape, SpikeShape, StepShape


def test_constant_rate_starts_evenly_and_ends_on_the_last_due_start() -> None:
    offsets = list(start_offsets(profile_for(ConstantShape(duration_s=60)), 300))

    assert len(offsets) == 18_000
    assert offsets[0] == pytest.approx(1 / 300)
    assert offsets[-1] == pytest.approx(60.0)
    gaps = {round(later - earlier, 9) for earlier, later in itertools.pairwise(offsets)}
    assert gaps == {round(1 / 300, 9)}


def test_start_times_are_computed_from_their_number_so_they_do_not_drift() -> None:
    profile = profile_for(ConstantShape(duration_s=3600))

    # The last of 3.6 million starts, reached directly through a share that holds only it.
    last = start_offsets(profile, 1000, share=Share(index=3_599_999, count=3_600_000))

    assert next(last) == 3600.0
    assert next(last, None) is None


def test_ramp_integrates_to_a_triangle_and_its_inverse_agrees() -> None:
    profile = profile_for(RampShape(duration_s=10, from_factor=0, to_factor=2))

    assert profile.factor(5) == pytest.approx(1.0)
    assert profile.cumulative(10) == pytest.approx(10.0)
    assert profile.cumulative(5) == pytest.approx(2.5)
    for t_s in (0.1, 1.0, 4.2, 7.77, 9.99):
        assert profile.time_at(profile.cumulative(t_s)) == pytest.approx(t_s)
    assert len(list(start_offsets(profile, 50))) == 500


def test_a_decreasing_ramp_inverts_too() -> None:
    profile = profile_for(RampShape(duration_s=8, from_factor=3, to_factor=1))

    for t_s in (0.5, 2.0, 7.9):
        assert profile.time_at(profile.cumulative(t_s)) == pytest.approx(t_s)


def test_step_holds_each_factor_for_one_step() -> None:
    profile = profile_for(StepShape(factors=(0.5, 1.0, 2.0), step_s=10))

    assert profile.duration_s == 30
    assert [profile.factor(t_s) for t_s in (5, 15, 25)] == [0.5, 1.0, 2.0]
    assert expected_starts(profile, 100) == pytest.approx(3500)
    assert len(list(start_offsets(profile, 100))) == 3500


def test_spike_adds_its_burst_on_top_of_the_base_rate() -> None:
    profile = profile_for(SpikeShape(duration_s=30, spike_at_s=10, spike_s=5, spike_factor=4))

    assert [profile.factor(t_s) for t_s in (5, 12, 20)] == [1.0, 4.0, 1.0]
    offsets = list(start_offsets(profile, 10))
    assert len(offsets) == 10 * (25 + 5 * 4)
    assert sum(1 for t_s in offsets if 10 < t_s <= 15) == 200


def test_soak_ramps_up_then_holds() -> None:
    profile = profile_for(SoakShape(duration_s=100, ramp_s=20))

    assert profile.factor(10) == pytest.approx(0.5)
    assert profile.factor(50) == 1.0
    assert profile.cumulative(100) == pytest.approx(90.0)


def test_zero_factor_stretches_start_nothing() -> None:
    profile = RateProfile((Segment(5, 0, 0), Segment(5, 1, 1)))

    offsets = list(start_offsets(profile, 10))

    assert len(offsets) == 50
    assert min(offsets) > 5


def test_shares_of_uniform_arrivals_interleave_into_the_whole_schedule() -> None:
    profile = profile_for(RampShape(duration_s=20))
    whole = list(start_offsets(profile, 40))

    parts = [list(start_offsets(profile, 40, share=Share(index, 3))) for index in range(3)]

    assert sorted(t_s for part in parts for t_s in part) == whole
    assert [len(part) for part in parts] == [134, 133, 133]


def test_poisson_arrivals_are_reproducible_and_near_the_expected_count() -> None:
    profile = profile_for(ConstantShape(duration_s=100))

    first = list(start_offsets(profile, 50, arrivals="poisson", seed=3))
    again = list(start_offsets(profile, 50, arrivals="poisson", seed=3))
    other_share = list(start_offsets(profile, 50, share=Share(1, 2), arrivals="poisson", seed=3))

    assert first == again
    assert abs(len(first) - 5000) < 5 * math.sqrt(5000)
    assert abs(len(other_share) - 2500) < 5 * math.sqrt(2500)
    assert other_share[:10] != first[:10]
    assert first == sorted(first)


def test_a_share_must_lie_inside_its_count() -> None:
    with pytest.raises(ValueError, match="outside"):
        Share(index=2, count=2)
