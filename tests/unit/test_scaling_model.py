"""The scaling model on synthetic capacities drawn from a known Universal Scalability Law.

lambda = 100, sigma = 0.1, kappa = 0.01 (N* = sqrt(0.9 / 0.01) = 9.49), 3 repetitions per N and
4 % multiplicative noise, over 100 seeds: the 95 % bootstrap intervals must contain the true
values in at least 90 seeds, and the N* estimate be within 20 % in at least 90.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from reports.scaling_model import AMDAHL, USL, fit_dimension, usl

LAM, SIGMA, KAPPA = 100.0, 0.1, 0.01
TRUE_PEAK = math.sqrt((1 - SIGMA) / KAPPA)
SEEDS = range(100)


def noisy(
    ns: list[float], seed: int, *, sigma: float = SIGMA, kappa: float = KAPPA
) -> tuple[np.ndarray, np.ndarray]:
    n = np.repeat(np.array(ns, dtype=float), 3)
    rng = np.random.default_rng(seed)
    return n, usl(n, LAM, sigma, kappa) * (1 + 0.04 * rng.standard_normal(n.size))


def test_the_bootstrap_intervals_cover_the_true_parameters_in_90_of_100_seeds() -> None:
    covered = {"sigma": 0, "kappa": 0, "peak": 0}
    close_peak = 0
    for seed in SEEDS:
        fit = fit_dimension("nodes.count", *noisy([1, 2, 4, 6, 8, 10, 12, 16, 20], seed))
        assert fit.fitted, fit.refusal
        assert fit.model == USL
        assert fit.sigma_ci
        assert fit.kappa_ci
        assert fit.n_star_ci
        covered["sigma"] += fit.sigma_ci.contains(SIGMA)
        covered["kappa"] += fit.kappa_ci.contains(KAPPA)
        covered["peak"] += fit.n_star_ci.contains(TRUE_PEAK)
        close_peak += abs(fit.n_star / TRUE_PEAK - 1) <= 0.2
    assert min(covered.values()) >= 90, covered
    assert close_peak >= 90


def test_a_sweep_that_stops_before_the_knee_is_refused_in_most_seeds() -> None:
    refused = [fit_dimension("nodes.count", *noisy([1, 2, 3, 4], seed)) for seed in SEEDS]
    knee = sum("did not pass the knee" in fit.refusal for fit in refused)
    assert knee > 50, knee
    assert all(not fit.fitted for fit in refused if "knee" in fit.refusal)


def test_fewer_than_four_valid_points_are_refused_and_invalid_ones_do_not_count() -> None:
    fit = fit_dimension("nodes.count", [1, 2, 3, 4, 5], [100, 180, math.nan, 0, 250])
    assert not fit.fitted
    assert "3 valid point(s), fewer than the 4" in fit.refusal
    assert "no model" in fit.summary()


def test_noise_without_a_trend_is_refused_for_its_r_squared() -> None:
    rng = np.random.default_rng(3)
    n = np.repeat([1.0, 2, 3, 4, 5, 6], 3)
    fit = fit_dimension("gateway.instances", n, 100 * (1 + 0.3 * rng.standard_normal(n.size)).clip(0.1))
    assert not fit.fitted
    assert "R^2" in fit.refusal
    assert "below the floor" in fit.refusal


def test_a_levelled_capacity_without_retrograde_is_amdahl_and_says_why() -> None:
    n, x = noisy([1, 2, 4, 8, 16, 32, 64], 0, sigma=0.5, kappa=0.0)
    fit = fit_dimension("database.cpu_limit", n * 0.1, x)  # the unit does not matter: N = value / 0.1
    assert fit.fitted, fit.refusal
    assert fit.model == AMDAHL, fit.summary()
    assert "no retrograde" in fit.reason
    assert math.isinf(fit.peak_value)
    assert fit.sigma == pytest.approx(0.5, rel=0.1)
    assert fit.sigma_ci
    assert fit.sigma_ci.low <= fit.sigma <= fit.sigma_ci.high
    band = fit.band(3.2)
    assert band.low <= fit.predict(3.2) <= band.high
    assert fit.predict(0.1) == pytest.approx(LAM, rel=0.1)


def test_the_summary_names_model_parameters_and_intervals() -> None:
    fit = fit_dimension("nodes.count", *noisy([1, 2, 4, 6, 8, 10, 12, 16, 20], 0))
    text = fit.summary()
    assert text.startswith("nodes.count: USL (R^2 ")
    assert "kappa" in text
    assert "peak at" in text
    assert "USL fits better than Amdahl" in text
