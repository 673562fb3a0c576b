"""The scaling model of a sweep: the Universal Scalability Law fitted to the cells' capacities along
one dimension, with bootstrap intervals, or the plain reason why the cells cannot support a fit.

    X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1))

N is the dimension's value relative to the smallest one measured (so lambda is the capacity at the
smallest value and N = 1 there, whatever the unit: nodes, cores, connections). sigma is contention
(the serial share), kappa coherency (the cost of keeping N copies in step); with kappa > 0 the
capacity peaks at N* = sqrt((1 - sigma) / kappa) and falls beyond it.

The fit (docs/scaling-guide.md):

* SciPy's `curve_fit` with bounds (lambda > 0, 0 <= sigma <= 1, 0 <= kappa <= KAPPA_MAX), started
  from the linearised fit: N / X = (1 + sigma (N - 1) + kappa N (N - 1)) / lambda is linear in
  (1 / lambda, sigma / lambda, kappa / lambda). Residuals are relative (a capacity's noise grows
  with it).
* Amdahl's law (kappa = 0, two parameters) is fitted too and chosen when its AIC is not worse or
  USL's kappa interval reaches 0: the data then show no retrograde and the simpler model says so.
  It has no peak; its ceiling is lambda / sigma.
* The 95 % intervals are percentile intervals of a case bootstrap (the points resampled with
  replacement). Each resample is refitted by a batched, bounded Levenberg-Marquardt started from
  the full fit (the same model and bounds as `curve_fit`): a few hundred `curve_fit` calls per fit
  would be the slowest part of a report, the batched refit is one array computation.

Refusals, in this order, each with the sentence the report prints instead of a curve:

* fewer than MIN_POINTS valid capacities, or fewer than 3 distinct values of the dimension;
* R^2 of the chosen model below R2_FLOOR;
* the sweep did not pass the knee: USL's peak N* lies beyond the largest measured value (or kappa
  is 0, N* unbounded), or under Amdahl the largest value's capacity is still below PLATEAU of the
  ceiling, so nothing says where the capacity stops rising.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import OptimizeWarning, curve_fit

USL = "USL"
AMDAHL = "Amdahl"

MIN_POINTS = 4
R2_FLOOR = 0.8  # below it the model explains too little of the capacities to draw
PLATEAU = 0.9  # Amdahl's largest measured capacity must reach this share of its ceiling
KAPPA_MAX = 10.0
CONFIDENCE = 0.95
RESAMPLES = 200
REFIT_ITERATIONS = 25

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Interval:
    """A 95 % interval; `high` may be infinite (N* unbounded in some resamples)."""

    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def text(self, digits: int = 3) -> str:
        high = "unbounded" if math.isinf(self.high) else f"{self.high:.{digits}g}"
        return f"[{self.low:.{digits}g}, {high}]"


@dataclass(frozen=True)
class ScalingFit:
    """One dimension's fit, or its refusal (`refusal` says why; then no parameter is set).

    `base` is the smallest measured value of the dimension: N = value / base.
    """

    dimension: str
    base: float
    points: int
    model: str = ""
    reason: str = ""  # why this model (or, with `refusal`, empty)
    refusal: str = ""
    lam: float = math.nan
    sigma: float = math.nan
    kappa: float = math.nan
    r_squared: float = math.nan
    sigma_ci: Interval | None = None
    kappa_ci: Interval | None = None
    n_star: float = math.inf  # in N; `peak_value` in the dimension's unit
    n_star_ci: Interval | None = None
    x_star: float = math.nan
    x_star_ci: Interval | None = None
    samples: Floats = field(default_factory=lambda: np.empty((0, 3)), repr=False, compare=False)

    @property
    def fitted(self) -> bool:
        return not self.refusal

    @property
    def peak_value(self) -> float:
        """N* in the dimension's unit (inf without a peak)."""
        return self.n_star * self.base

    def predict(self, value: float) -> float:
        """The model's capacity at one value of the dimension."""
        return float(usl(np.array([value / self.base]), self.lam, self.sigma, self.kappa)[0])

    def band(self, value: float) -> Interval:
        """The 95 % interval of the capacity at one value, from the bootstrap's parameters."""
        n = value / self.base
        predicted = _usl_batch(np.full((1,), n), self.samples)[:, 0]
        low, high = _percentiles(predicted)
        return Interval(low, high)

    def summary(self) -> str:
        """The fit in one sentence, or the refusal."""
        if self.refusal:
            return f"{self.dimension}: no model: {self.refusal}"
        assert self.sigma_ci is not None
        parts = [
            f"{self.dimension}: {self.model} (R^2 {self.r_squared:.3f}): sigma {self.sigma:.3g} "
            f"{self.sigma_ci.text()}"
        ]
        if self.model == USL:
            assert self.kappa_ci
            assert self.n_star_ci
            assert self.x_star_ci
            parts.append(
                f"kappa {self.kappa:.3g} {self.kappa_ci.text()}, peak at {self.peak_value:.3g} "
                f"{Interval(self.n_star_ci.low * self.base, self.n_star_ci.high * self.base).text()} "
                f"with capacity {self.x_star:.4g} {self.x_star_ci.text(4)}"
            )
        else:
            parts.append(f"no peak; ceiling {self.lam / max(self.sigma, 1e-12):.4g}")
        return ", ".join(parts) + f"; {self.reason}"


def usl(n: Floats, lam: float, sigma: float, kappa: float) -> Floats:
    """The Universal Scalability Law at N (relative to the base)."""
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


def peak(sigma: float, kappa: float) -> float:
    """N* = sqrt((1 - sigma) / kappa); infinite when kappa is 0."""
    return math.sqrt(max(1 - sigma, 0.0) / kappa) if kappa > 0 else math.inf


def linearised(n: Floats, x: Floats) -> tuple[float, float, float]:
    """The start of the fit: least squares of N / X on (1, N - 1, N (N - 1)), clipped to the bounds."""
    design = np.column_stack([np.ones_like(n), n - 1, n * (n - 1)])
    (a, b, c), *_ = np.linalg.lstsq(design, n / x, rcond=None)
    lam = 1 / a if a > 0 else float(np.max(x / n))
    return lam, float(np.clip(b * lam, 0, 1)), float(np.clip(c * lam, 0, KAPPA_MAX))


def fit_dimension(
    dimension: str, values: Sequence[float] | Floats, capacities: Sequence[float] | Floats
) -> ScalingFit:
    """Fit the cells' capacities (NaN or non-positive ones are not valid and left out) along one
    dimension; the answer is a fit with its intervals or a refusal with its reason."""
    raw_v = np.asarray(values, dtype=float)
    raw_x = np.asarray(capacities, dtype=float)
    keep = np.isfinite(raw_v) & np.isfinite(raw_x) & (raw_x > 0) & (raw_v > 0)
    v, x = raw_v[keep], raw_x[keep]
    base = float(v.min()) if v.size else 1.0
    refused = ScalingFit(dimension, base, int(v.size))
    if v.size < MIN_POINTS:
        return _refuse(refused, f"{v.size} valid point(s), fewer than the {MIN_POINTS} a fit needs")
    if np.unique(v).size < 3:
        return _refuse(refused, f"{np.unique(v).size} distinct value(s) of {dimension}, fewer than 3")
    n = v / base
    usl_params = _curve_fit(n, x, amdahl=False)
    amdahl_params = _curve_fit(n, x, amdahl=True)
    usl_aic, amdahl_aic = _aic(n, x, usl_params, 3), _aic(n, x, amdahl_params, 2)
    usl_samples = _bootstrap(n, x, np.array(usl_params), amdahl=False)
    kappa_low = _percentiles(usl_samples[:, 2])[0]
    if amdahl_aic <= usl_aic or kappa_low <= 0:
        model, params = AMDAHL, amdahl_params
        why = (
            f"fits as well with one parameter fewer (AIC {amdahl_aic:.1f} against USL's {usl_aic:.1f})"
            if amdahl_aic <= usl_aic
            else "is chosen because USL's kappa interval reaches 0"
        )
        reason = f"Amdahl (kappa = 0) {why}: the capacities show no retrograde"
    else:
        model, params = USL, usl_params
        reason = f"USL fits better than Amdahl (AIC {usl_aic:.1f} against {amdahl_aic:.1f})"
    lam, sigma, kappa = params
    r2 = _r_squared(n, x, params)
    if r2 < R2_FLOOR:
        return _refuse(refused, f"R^2 {r2:.2f} of the {model} fit is below the floor {R2_FLOOR}")
    largest = float(n.max())
    if model == USL and peak(sigma, kappa) > largest:
        return _refuse(
            refused,
            f"the sweep did not pass the knee: the fitted peak N* = {peak(sigma, kappa) * base:.3g} lies "
            f"beyond the largest measured {dimension} {largest * base:g}, so N* is unbounded by the data",
        )
    if model == AMDAHL:
        ceiling = lam / max(sigma, 1e-12)
        reached = float(usl(np.array([largest]), lam, sigma, 0.0)[0]) / ceiling
        if reached < PLATEAU:
            return _refuse(
                refused,
                f"the sweep did not pass the knee: the capacity still rises at the largest measured "
                f"{dimension} {largest * base:g} ({reached:.0%} of the Amdahl ceiling), so N* is unbounded",
            )
    samples = usl_samples if model == USL else _bootstrap(n, x, np.array(params), amdahl=True)
    n_stars = np.array([peak(s, k) for _, s, k in samples])
    bounded = np.isfinite(n_stars)
    x_stars = np.array(
        [usl(np.array([ns]), *row)[0] for ns, row in zip(n_stars[bounded], samples[bounded], strict=True)]
    )
    n_star = peak(sigma, kappa)
    return ScalingFit(
        dimension,
        base,
        int(v.size),
        model=model,
        reason=reason,
        lam=lam,
        sigma=sigma,
        kappa=kappa,
        r_squared=r2,
        sigma_ci=Interval(*_percentiles(samples[:, 1])),
        kappa_ci=Interval(*_percentiles(samples[:, 2])),
        n_star=n_star,
        n_star_ci=Interval(*_percentiles(n_stars)),
        x_star=float(usl(np.array([n_star]), lam, sigma, kappa)[0]) if math.isfinite(n_star) else math.nan,
        x_star_ci=Interval(*_percentiles(x_stars)) if model == USL else None,
        samples=samples,
    )


def _refuse(fit: ScalingFit, reason: str) -> ScalingFit:
    return ScalingFit(fit.dimension, fit.base, fit.points, refusal=reason)


def _curve_fit(n: Floats, x: Floats, *, amdahl: bool) -> tuple[float, float, float]:
    lam0, sigma0, kappa0 = linearised(n, x)
    lam0 = max(lam0, 1e-9)
    with warnings.catch_warnings():
        # A parameter at its bound leaves no covariance; the bootstrap gives the intervals anyway.
        warnings.simplefilter("ignore", OptimizeWarning)
        if amdahl:
            popt, _ = curve_fit(
                lambda n_, lam, sigma: usl(n_, lam, sigma, 0.0),
                n,
                x,
                p0=[lam0, min(max(sigma0, 1e-6), 1.0)],
                sigma=x,
                bounds=([0.0, 0.0], [np.inf, 1.0]),
                maxfev=10_000,
            )
            return float(popt[0]), float(popt[1]), 0.0
        popt, _ = curve_fit(
            usl,
            n,
            x,
            p0=[lam0, min(max(sigma0, 1e-6), 1.0), min(max(kappa0, 1e-9), KAPPA_MAX)],
            sigma=x,
            bounds=([0.0, 0.0, 0.0], [np.inf, 1.0, KAPPA_MAX]),
            maxfev=10_000,
        )
    return float(popt[0]), float(popt[1]), float(popt[2])


def _rss(n: Floats, x: Floats, params: tuple[float, float, float]) -> float:
    return float(np.sum(((x - usl(n, *params)) / x) ** 2))


def _aic(n: Floats, x: Floats, params: tuple[float, float, float], k: int) -> float:
    return n.size * math.log(max(_rss(n, x, params), 1e-300) / n.size) + 2 * k


def _r_squared(n: Floats, x: Floats, params: tuple[float, float, float]) -> float:
    total = float(np.sum((x - x.mean()) ** 2))
    residual = float(np.sum((x - usl(n, *params)) ** 2))
    return 1 - residual / total if total > 0 else 0.0


def _usl_batch(n: Floats, params: Floats) -> Floats:
    """X at every N (columns) for every parameter row (rows)."""
    lam, sigma, kappa = (params[:, i : i + 1] for i in range(3))
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


def _bootstrap(n: Floats, x: Floats, start: Floats, *, amdahl: bool, seed: int = 0) -> Floats:
    """RESAMPLES parameter rows, one per case resample, refitted together (see the module's text)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n.size, size=(RESAMPLES, n.size))
    ns, xs = n[picks], x[picks]
    params = np.tile(start, (RESAMPLES, 1))
    free = 2 if amdahl else 3
    upper = np.array([np.inf, 1.0, KAPPA_MAX])
    damping = np.full(RESAMPLES, 1e-3)
    cost = np.sum(((xs - _usl_rows(ns, params)) / xs) ** 2, axis=1)
    for _ in range(REFIT_ITERATIONS):
        lam, sigma, kappa = params[:, 0:1], params[:, 1:2], params[:, 2:3]
        d = 1 + sigma * (ns - 1) + kappa * ns * (ns - 1)
        f = lam * ns / d
        jacobian = np.stack([ns / d, -lam * ns * (ns - 1) / d**2, -lam * ns**2 * (ns - 1) / d**2], axis=2)
        jacobian = jacobian[:, :, :free] / xs[:, :, None]
        residual = (xs - f) / xs
        transposed = jacobian.transpose(0, 2, 1)
        normal = transposed @ jacobian
        gradient = (transposed @ residual[:, :, None])[:, :, 0]
        diagonal = np.diagonal(normal, axis1=1, axis2=2)
        system = normal + (damping[:, None] * np.maximum(diagonal, 1e-12))[:, :, None] * np.eye(free)
        step = np.linalg.solve(system, gradient[:, :, None])[:, :, 0]
        trial = params.copy()
        trial[:, :free] += step
        trial = np.clip(trial, [1e-12, 0.0, 0.0], upper)
        trial_cost = np.sum(((xs - _usl_rows(ns, trial)) / xs) ** 2, axis=1)
        better = trial_cost < cost
        params[better], cost[better] = trial[better], trial_cost[better]
        damping = np.where(better, damping / 3, damping * 4)
    return params


def _usl_rows(ns: Floats, params: Floats) -> Floats:
    lam, sigma, kappa = params[:, 0:1], params[:, 1:2], params[:, 2:3]
    return lam * ns / (1 + sigma * (ns - 1) + kappa * ns * (ns - 1))


def _percentiles(values: Floats) -> tuple[float, float]:
    """The central CONFIDENCE interval without interpolation (an infinite N* stays infinite)."""
    if values.size == 0:
        return math.nan, math.nan
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(values, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)
