"""The recommender on hand-built tables of cells: the cheapest holding cell, predicted cells marked
as such, what to scale next, and the case where no cell holds."""

from __future__ import annotations

import math

import numpy as np

from reports.recommend import MULTIPLIER, REQUESTS_PER_S, Cell, Target, recommend
from reports.scaling_model import ScalingFit, fit_dimension, usl


def cell(name: str, nodes: float, cost: float, capacity: float, *, tier: str = "node", **kw: object) -> Cell:
    fields: dict[str, object] = {
        "name": name,
        "options": {"nodes.count": nodes},
        "cores": {"node": 0.125 * nodes, "database": 0.3},
        "cost": cost,
        "capacity_requests_per_s": capacity,
        "capacity_multiplier": capacity / 10,
        "status": "bracketed" if not math.isnan(capacity) else "none",
        "limiting_tier": tier,
        "valid": True,
    }
    fields.update(kw)
    return Cell(**fields)  # type: ignore[arg-type]


TABLE = [
    cell("cell-01", 1, 0.625, 100),
    cell("cell-02", 2, 0.75, 180),
    cell("cell-03", 4, 1.0, 300, tier="database"),
    cell("cell-04", 3, 0.875, 260),
]


def test_the_cheapest_cell_holding_the_target_with_headroom_is_chosen() -> None:
    # 150 x 1.3 = 195: cell-02 (180) does not hold, cell-04 (260, cost 0.875) is cheaper than cell-03.
    answer = recommend(TABLE, Target(REQUESTS_PER_S, 150, 0.3))
    assert answer.chosen is not None
    assert answer.chosen.name == "cell-04"
    assert [c.name for c in answer.holding] == ["cell-04", "cell-03"]
    text = "\n".join(answer.lines())
    assert "at least 195 requests/s" in text
    assert "Recommended: cell-04 (nodes.count = 3), cost 0.875" in text
    assert "scale nodes.count next" in text


def test_the_target_as_a_multiplier_compares_multipliers_and_the_limiting_tier_names_the_next_dimension() -> (
    None
):
    answer = recommend(TABLE, Target(MULTIPLIER, 21, 0.3))  # needs 27.3 x: only cell-03 (30 x)
    assert answer.chosen is not None
    assert answer.chosen.name == "cell-03"
    assert answer.chosen.scale_next() == "database.cpu_limit"


def test_invalid_cells_and_cells_without_capacity_never_hold() -> None:
    table = [
        cell("cheap-but-invalid", 1, 0.1, 1000, valid=False),
        cell("no-capacity", 1, 0.2, math.nan),
        cell("holds", 2, 0.75, 500),
    ]
    answer = recommend(table, Target(REQUESTS_PER_S, 100, 0.3))
    assert answer.chosen is not None
    assert answer.chosen.name == "holds"


def test_a_lower_bound_holds_when_it_is_already_above_the_need_and_says_so() -> None:
    answer = recommend([cell("bound", 1, 0.5, 400, status="lower bound")], Target(REQUESTS_PER_S, 100, 0.3))
    assert answer.chosen is not None
    assert "(a lower bound)" in "\n".join(answer.lines())


def test_when_no_cell_holds_it_says_so_and_names_the_largest_and_what_to_scale() -> None:
    answer = recommend(TABLE, Target(REQUESTS_PER_S, 1000, 0.3))
    assert answer.chosen is None
    assert answer.holding == ()
    text = "\n".join(answer.lines())
    assert "No measured cell holds it, and no model says any value within the measured range would." in text
    assert "The largest measured: cell-03" in text
    assert "scale database.cpu_limit next" in text


def model_table(values: list[float], sigma: float, kappa: float) -> tuple[list[Cell], ScalingFit]:
    """Cells at `values` nodes on a known USL (lambda 100) and the model fitted to 3 noisy
    repetitions of each."""
    rng = np.random.default_rng(1)
    n = np.repeat(values, 3)
    fit = fit_dimension(
        "nodes.count", n, usl(n, 100, sigma, kappa) * (1 + 0.02 * rng.standard_normal(n.size))
    )
    assert fit.fitted, fit.refusal
    cells = [
        cell(f"cell-{i:02d}", v, 0.5 + 0.125 * v, float(usl(np.array([v]), 100, sigma, kappa)[0]))
        for i, v in enumerate(values, 1)
    ]
    return cells, fit


def test_predicted_cells_carry_an_interval_and_are_never_the_answer() -> None:
    # sigma 0.05, kappa 0.01: 4 nodes 315, 5 357, 6 387, 7 407, 8 419 requests/s.
    cells, fit = model_table([1.0, 2, 4, 8, 12, 16], 0.05, 0.01)
    answer = recommend(cells, Target(REQUESTS_PER_S, 280, 0.3), [fit])  # needs 364
    assert {c.options["nodes.count"] for c in answer.predicted} == {3, 5, 6, 7, 9, 10, 11, 13, 14, 15}
    assert all(c.predicted and c.interval is not None for c in answer.predicted)
    assert answer.chosen is not None
    assert not answer.chosen.predicted
    assert answer.chosen.name == "cell-04"  # 8 nodes
    assert answer.would_hold is not None
    assert answer.would_hold.options["nodes.count"] in (6, 7)
    assert answer.would_hold.cost < answer.chosen.cost
    text = "\n".join(answer.lines())
    assert "The model predicts a cheaper one" in text
    assert "(predicted, not measured)" in text


def test_when_no_measured_cell_holds_the_model_names_a_predicted_one_that_would() -> None:
    # sigma 0.02, kappa 0.02: the peak N* = 7 (357 requests/s) lies between the measured 4 (308) and 12 (311).
    cells, fit = model_table([1.0, 2, 4, 12, 16], 0.02, 0.02)
    answer = recommend(cells, Target(REQUESTS_PER_S, 255, 0.3), [fit])  # needs 331.5
    assert answer.chosen is None
    assert answer.would_hold is not None
    assert 5 <= answer.would_hold.options["nodes.count"] <= 9
    assert answer.would_hold.interval is not None
    assert answer.would_hold.interval.low >= 331.5
    assert "No measured cell holds it. The model says nodes.count = " in "\n".join(answer.lines())


def test_a_database_limited_by_pool_waits_scales_the_pool_next() -> None:
    waited = cell(
        "waited", 1, 0.5, 10, tier="database", evidence="db_client_connection_wait_time_seconds: p95 41 ms"
    )
    assert waited.scale_next() == "database.pool_size"
    assert (
        cell("busy", 1, 0.5, 10, tier="database", evidence="CPU budget: 97 %").scale_next()
        == "database.cpu_limit"
    )
