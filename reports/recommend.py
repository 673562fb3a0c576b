"""The operator's answer: the cheapest landscape of a sweep that holds the target load with headroom.

A pure function of the sweep's cells (`Cell`: options, cores by tier, cost, capacity, limiting
tier, validity) and the dimensions' scaling models (`reports.scaling_model`):

* the needed capacity is the target times (1 + headroom), in the target's unit (requests/s or
  scenario multiplier);
* a measured cell holds it when it is valid, has a capacity (bracketed, or a lower bound: every
  step held) and that capacity is at least the need; the cheapest such cell is the answer (ties:
  the larger capacity);
* values of a fitted dimension that were not measured get the model's prediction with its 95 %
  interval, marked as predicted; a predicted cell "would hold" only when its interval's low end is
  at least the need, and it is never the answer (measure it first);
* every cell names its limiting tier and what to scale next (the dimension that gives that tier
  more: nodes -> nodes.count, database -> database.cpu_limit, or database.pool_size when the
  evidence is the nodes' pools waiting for a connection, ...);
* when no measured cell holds: the cheapest predicted cell that would, or that none does within
  the measured range.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reports.scaling_model import Interval, ScalingFit

REQUESTS_PER_S = "requests_per_s"
MULTIPLIER = "multiplier"
TARGET_UNITS = (REQUESTS_PER_S, MULTIPLIER)

# The dimension that gives a limiting tier more room; the tiers are reports.rundir.TIERS.
SCALE_NEXT = {
    "node": "nodes.count",
    "gateway": "gateway.instances",
    "database": "database.cpu_limit",
    "pooler": "database.pooler_cpu_limit",
    "replica": "database.replicas",
    "events": "worker.replicas",
}
# Dimensions that count processes: their predicted values are whole numbers.
WHOLE_DIMENSIONS = (
    "nodes.count",
    "nodes.workers",
    "nodes.threads",
    "gateway.instances",
    "worker.replicas",
    "database.replicas",
    "database.pool_size",
    "database.max_overflow",
)


@dataclass(frozen=True)
class Target:
    """The operator's target load: `value` in `unit` (REQUESTS_PER_S or MULTIPLIER), plus headroom."""

    unit: str
    value: float
    headroom: float = 0.3

    @property
    def needed(self) -> float:
        return self.value * (1 + self.headroom)

    def text(self) -> str:
        what = (
            f"{self.value:g} requests/s" if self.unit == REQUESTS_PER_S else f"{self.value:g} x the scenario"
        )
        return f"{what} with {self.headroom:.0%} headroom"


@dataclass(frozen=True)
class Cell:
    """One landscape of the sweep and its measured capacity (NaN: none)."""

    name: str
    options: Mapping[str, float]
    cores: Mapping[str, float]  # by tier
    cost: float
    capacity_requests_per_s: float
    capacity_multiplier: float
    status: str  # reports.capacity: bracketed, lower bound, none
    limiting_tier: str
    valid: bool
    predicted: bool = False
    interval: Interval | None = None  # predicted cells only, in the target's unit
    evidence: str = ""  # the limiting tier's metric and figure

    def capacity(self, unit: str) -> float:
        return self.capacity_requests_per_s if unit == REQUESTS_PER_S else self.capacity_multiplier

    @property
    def measured_capacity(self) -> bool:
        return self.valid and self.status in ("bracketed", "lower bound")

    def scale_next(self) -> str:
        # The nodes' pools waited for a connection: a larger pool first (the database sweep shows
        # whether the server's budget or the pool holds it back).
        if self.limiting_tier == "database" and "db_client_connection" in self.evidence:
            return "database.pool_size"
        return SCALE_NEXT.get(self.limiting_tier, "")


@dataclass(frozen=True)
class Recommendation:
    target: Target
    chosen: Cell | None
    holding: tuple[Cell, ...]  # measured cells that hold, cheapest first
    cells: tuple[Cell, ...]  # every measured cell
    predicted: tuple[Cell, ...] = ()  # the model's cells, not measured
    would_hold: Cell | None = None  # the cheapest predicted cell whose interval holds

    def lines(self) -> list[str]:
        """The recommendation in a few sentences, the first one the answer."""
        need = self.target.needed
        unit = "requests/s" if self.target.unit == REQUESTS_PER_S else "x"
        lines = [f"Target: {self.target.text()}: a capacity of at least {need:.4g} {unit}."]
        if self.chosen is not None:
            cell = self.chosen
            lines.append(
                f"Recommended: {cell.name} ({_options(cell)}), cost {cell.cost:.3g}: measured capacity "
                f"{cell.capacity(self.target.unit):.4g} {unit}"
                + (" (a lower bound)" if cell.status == "lower bound" else "")
                + "."
            )
            if cell.limiting_tier:
                lines.append(
                    f"It is limited by the {cell.limiting_tier} tier; to grow further, scale "
                    f"{cell.scale_next() or 'that tier'} next."
                )
            cheaper = self.would_hold
            if cheaper is not None and cheaper.cost < cell.cost:
                lines.append(
                    f"The model predicts a cheaper one: {_predicted(cheaper, unit)}; measure it first."
                )
            return lines
        if self.would_hold is not None:
            lines.append(
                f"No measured cell holds it. The model says {_predicted(self.would_hold, unit)} would."
            )
        else:
            lines.append(
                "No measured cell holds it, and no model says any value within the measured range would."
            )
        best = max(
            (cell for cell in self.cells if cell.measured_capacity),
            key=lambda cell: cell.capacity(self.target.unit),
            default=None,
        )
        if best is not None:
            capacity = best.capacity(self.target.unit)
            lines.append(
                f"The largest measured: {best.name} ({_options(best)}) at {capacity:.4g} "
                f"{unit}, limited by {best.limiting_tier or 'no named tier'}"
                + (f"; scale {best.scale_next()} next." if best.scale_next() else ".")
            )
        return lines


def _options(cell: Cell) -> str:
    return ", ".join(f"{name} = {value:g}" for name, value in cell.options.items())


def _predicted(cell: Cell, unit: str) -> str:
    assert cell.interval is not None
    capacity = cell.capacity_multiplier if unit == "x" else cell.capacity_requests_per_s
    return (
        f"{_options(cell)} (predicted, not measured) at {capacity:.4g} {unit}, 95 % interval "
        f"{cell.interval.text(4)}, cost {cell.cost:.3g}"
    )


def recommend(cells: Sequence[Cell], target: Target, fits: Sequence[ScalingFit] = ()) -> Recommendation:
    """The cheapest measured cell that holds the target with headroom, and the model's predictions."""
    need = target.needed
    holding = sorted(
        (cell for cell in cells if cell.measured_capacity and cell.capacity(target.unit) >= need),
        key=lambda cell: (cell.cost, -cell.capacity(target.unit)),
    )
    predicted = tuple(cell for fit in fits if fit.fitted for cell in predict_cells(cells, fit, target.unit))
    would = sorted(
        (cell for cell in predicted if cell.interval is not None and cell.interval.low >= need),
        key=lambda cell: cell.cost,
    )
    return Recommendation(
        target,
        holding[0] if holding else None,
        tuple(holding),
        tuple(cells),
        predicted,
        would[0] if would else None,
    )


def predict_cells(cells: Sequence[Cell], fit: ScalingFit, unit: str) -> list[Cell]:
    """The model's cells at the values of `fit.dimension` between the measured ones that no cell
    measured: whole numbers for a counting dimension, else midpoints. Their cores and cost are
    interpolated between the measured neighbours (a tier's cores grow with its option)."""
    along = sorted(
        (cell for cell in cells if fit.dimension in cell.options and not cell.predicted),
        key=lambda cell: cell.options[fit.dimension],
    )
    measured = sorted({cell.options[fit.dimension] for cell in along})
    if len(measured) < 2:
        return []
    if fit.dimension in WHOLE_DIMENSIONS:
        candidates = [float(v) for v in range(math.ceil(measured[0]), math.floor(measured[-1]) + 1)]
    else:
        candidates = [(low + high) / 2 for low, high in itertools.pairwise(measured)]
    result = []
    for value in candidates:
        if any(math.isclose(value, seen) for seen in measured):
            continue
        below = max(
            (c for c in along if c.options[fit.dimension] < value), key=lambda c: c.options[fit.dimension]
        )
        above = min(
            (c for c in along if c.options[fit.dimension] > value), key=lambda c: c.options[fit.dimension]
        )
        low, high = below.options[fit.dimension], above.options[fit.dimension]
        share = (value - low) / (high - low)
        cores = {
            tier: _between(below.cores.get(tier, 0.0), above.cores.get(tier, 0.0), share)
            for tier in below.cores
        }
        capacity = fit.predict(value)
        band = fit.band(value)
        # The model fits one unit; the other follows the measured cells' ratio of the two.
        ratio = _ratio(along)
        if unit == REQUESTS_PER_S:
            requests, multiplier = capacity, capacity / ratio
        else:
            requests, multiplier = capacity * ratio, capacity
        result.append(
            Cell(
                name=f"predicted {fit.dimension} = {value:g}",
                options={**below.options, fit.dimension: value},
                cores=cores,
                cost=_between(below.cost, above.cost, share),
                capacity_requests_per_s=requests,
                capacity_multiplier=multiplier,
                status="predicted",
                limiting_tier="",
                valid=True,
                predicted=True,
                interval=band,
            )
        )
    return result


def _between(low: float, high: float, share: float) -> float:
    return low + (high - low) * share


def _ratio(cells: Sequence[Cell]) -> float:
    """Requests/s per unit of scenario multiplier, the median over the measured cells (1 without any)."""
    ratios = sorted(
        cell.capacity_requests_per_s / cell.capacity_multiplier
        for cell in cells
        if cell.measured_capacity and cell.capacity_multiplier > 0
    )
    return ratios[len(ratios) // 2] if ratios else 1.0
