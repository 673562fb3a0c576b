"""A sweep's results directory and its report: the operator's recommendation first.

    results/<sweep-id>/
      sweep.json        the sweep: its file, dimensions, target, headroom, plan (`SweepRecord`)
      sweep.toml        a copy of the sweep file (`testbed sweep --resume` reads it)
      sweep.parquet     one row per finished cell (`CELL_COLUMNS`, docs/reports.md)
      cell-NN/          each cell's capacity search directory, with its own capacity report
      sweep.html        the sweep report (self-contained)
      sweep.md          its Markdown summary

The report opens with the recommendation (`reports.recommend`), then the capacity against each
dimension with the scaling model's curve and 95 % band (`reports.scaling_model`) or the reason
there is none, the table of cells, a heat map of every tier's CPU budget use per cell, and links
to each cell's capacity report. `testbed sweep` writes it; `testbed report DIR` writes it again.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports import charts, page
from reports.capacity import BRACKETED, CAPACITY_HTML, LOWER_BOUND, CapacityReport
from reports.charts import Line
from reports.manifest import ManifestError
from reports.page import Charts, Headline, Page, Paragraph, Section, Table, number
from reports.recommend import MULTIPLIER, REQUESTS_PER_S, Cell, Recommendation, Target, recommend
from reports.rundir import BUDGETS, read_table, write_table
from reports.scaling_model import ScalingFit, fit_dimension

SWEEP_JSON = "sweep.json"
SWEEP_FILE = "sweep.toml"
SWEEP_TABLE = "sweep.parquet"
SWEEP_HTML = "sweep.html"
SWEEP_MD = "sweep.md"
SWEEP_FORMAT_VERSION = 1

CELL_COLUMNS: dict[str, str] = {
    "cell": "object",  # cell-01, ... in the sweep's order
    "capacity_dir": "object",  # the cell's capacity search directory, relative to the sweep's
    "options": "object",  # JSON: every dimension's value in this cell
    "cores": "object",  # JSON: CPU budget (cores) by tier
    "cost": "float64",  # sum of cores x the tier's cost per core
    "capacity_requests_per_s": "float64",  # the good step's answered requests/s (NaN: none)
    "capacity_multiplier": "float64",  # the good step's scenario multiplier (NaN: none)
    "status": "object",  # the search's conclusion: bracketed, lower bound, none
    "limiting_tier": "object",  # the first saturated tier of the bad step ("" when none)
    "limiting_evidence": "object",  # that tier's metric and figure
    "valid": "bool",  # the good step was a valid run
    "reason": "object",  # the search's conclusion in one sentence
    "saturation": "object",  # JSON: per tier, the bad (else last) step's highest share of a budget used
}


@dataclass(frozen=True)
class SweepRecord:
    """sweep.json: what the sweep measures, for whom, and how far it got."""

    sweep_id: str
    name: str = ""
    source: str = ""
    mode: str = "grid"
    profile: str = ""
    scenario: str = ""
    pool: str = ""
    dimensions: dict[str, list[Any]] = field(default_factory=dict)
    cells_planned: int = 0
    target_unit: str = MULTIPLIER
    target: float = 1.0
    headroom: float = 0.3
    step_s: float = 0.0
    warm_up_s: float = 0.0
    keep_requests: str = "all"
    started_at_s: float = 0.0
    ended_at_s: float = 0.0
    interrupted: bool = False
    format_version: int = SWEEP_FORMAT_VERSION


def write_sweep(directory: Path, record: SweepRecord) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dataclasses.asdict(record), indent=2, sort_keys=True)
    (directory / SWEEP_JSON).write_text(text + "\n", encoding="utf-8")


def read_sweep(directory: Path) -> SweepRecord:
    """Read sweep.json of this format version, or raise ManifestError in one line."""
    path = directory / SWEEP_JSON
    if not path.is_file():
        raise ManifestError(f"{directory}: not a sweep's directory (no {SWEEP_JSON})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ManifestError(f"{path}: not JSON: {error}") from None
    if not isinstance(data, dict) or data.get("format_version") != SWEEP_FORMAT_VERSION:
        raise ManifestError(f"{path}: this testbed reads sweeps of format_version {SWEEP_FORMAT_VERSION}")
    known = {item.name for item in dataclasses.fields(SweepRecord)}
    return SweepRecord(**{key: value for key, value in data.items() if key in known})


def is_sweep(path: Path) -> bool:
    return (path / SWEEP_JSON).is_file()


def budget_saturation(run_dir: Path) -> dict[str, float]:
    """Per tier, the highest share of its CPU budget one of its processes used over the step
    (budgets.parquet: CPU time used between the first and the last sample / budget x time)."""
    path = run_dir / BUDGETS
    if not path.is_file():
        return {}
    frame = pd.read_parquet(path)
    shares: dict[str, float] = {}
    for (_process, tier), rows in frame.groupby(["process", "tier"], observed=True):
        rows = rows.sort_values("t_s")
        span = float(rows["t_s"].iloc[-1] - rows["t_s"].iloc[0])
        budget = float(rows["budget_cores"].iloc[-1])
        if span <= 0 or not budget > 0:
            continue
        share = float(rows["used_s"].iloc[-1] - rows["used_s"].iloc[0]) / span / budget
        shares[str(tier)] = max(shares.get(str(tier), 0.0), share)
    return shares


def cell_row(
    cell: str,
    options: Mapping[str, Any],
    cores: Mapping[str, float],
    cost: float,
    capacity_dir: Path,
    report: CapacityReport,
) -> dict[str, Any]:
    """The row of one finished cell, from its capacity search's report."""
    conclusion = report.conclusion
    good, bad = report.good, report.bad
    judged = bad if bad is not None else (None if report.steps.empty else report.steps.iloc[-1].to_dict())
    saturation = budget_saturation(capacity_dir / str(judged["run_dir"])) if judged is not None else {}
    return {
        "cell": cell,
        "capacity_dir": capacity_dir.name,
        "options": json.dumps(dict(options), sort_keys=True),
        "cores": json.dumps(dict(cores), sort_keys=True),
        "cost": cost,
        "capacity_requests_per_s": report.capacity_requests_per_s,
        "capacity_multiplier": conclusion.capacity_multiplier
        if conclusion.capacity_multiplier is not None
        else math.nan,
        "status": conclusion.status,
        "limiting_tier": str(bad["first_saturated_tier"]) if bad is not None else "",
        "limiting_evidence": str(bad["saturation_evidence"]) if bad is not None else "",
        "valid": bool(good["valid"]) if good is not None else False,
        "reason": conclusion.reason,
        "saturation": json.dumps(saturation, sort_keys=True),
    }


def write_cells(directory: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    frame = pd.DataFrame(list(rows), columns=list(CELL_COLUMNS)).astype(CELL_COLUMNS)
    write_table(frame, directory / SWEEP_TABLE, CELL_COLUMNS, SWEEP_TABLE)


def read_cells(directory: Path) -> pd.DataFrame:
    path = directory / SWEEP_TABLE
    if not path.is_file():
        return pd.DataFrame(columns=list(CELL_COLUMNS)).astype(CELL_COLUMNS)
    return read_table(path, CELL_COLUMNS, SWEEP_TABLE)


def cells_of(frame: pd.DataFrame) -> list[Cell]:
    """The recommender's cells from sweep.parquet's rows (numeric options only)."""
    cells = []
    for row in frame.to_dict("records"):
        options = {key: float(value) for key, value in json.loads(row["options"]).items() if _numeric(value)}
        cells.append(
            Cell(
                name=str(row["cell"]),
                options=options,
                cores=json.loads(row["cores"]),
                cost=float(row["cost"]),
                capacity_requests_per_s=float(row["capacity_requests_per_s"]),
                capacity_multiplier=float(row["capacity_multiplier"]),
                status=str(row["status"]),
                limiting_tier=str(row["limiting_tier"]),
                valid=bool(row["valid"]),
                evidence=str(row["limiting_evidence"]),
            )
        )
    return cells


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def fit_dimensions(record: SweepRecord, cells: Sequence[Cell]) -> list[ScalingFit]:
    """One fit per numeric dimension, on the cells where every other dimension has its most common
    value (one at a time: the base; a grid: the largest slice). A cell without a valid capacity is
    no point; a lower bound is no point either (the capacity is higher, by how much is unknown)."""
    fits = []
    unit = _unit(record)
    for dimension in record.dimensions:
        along = [cell for cell in cells if dimension in cell.options]
        if not along:
            continue
        others = [name for name in record.dimensions if name != dimension]
        slices: dict[str, list[Cell]] = {}
        for cell in along:
            key = json.dumps([cell.options.get(name) for name in others])
            slices.setdefault(key, []).append(cell)
        chosen = max(slices.values(), key=len)
        points = [cell for cell in chosen if cell.valid and cell.status == BRACKETED]
        fits.append(
            fit_dimension(
                dimension,
                [cell.options[dimension] for cell in points],
                [cell.capacity(unit) for cell in points],
            )
        )
    return fits


def _unit(record: SweepRecord) -> str:
    return REQUESTS_PER_S if record.target_unit == REQUESTS_PER_S else MULTIPLIER


@dataclass(frozen=True)
class SweepReport:
    record: SweepRecord
    cells: pd.DataFrame
    fits: tuple[ScalingFit, ...]
    recommendation: Recommendation

    def headline(self) -> list[str]:
        """The recommendation, then one line per dimension's model."""
        return [*self.recommendation.lines(), *(fit.summary() for fit in self.fits)]


def build_sweep_report(directory: Path) -> SweepReport:
    record = read_sweep(directory)
    frame = read_cells(directory)
    cells = cells_of(frame)
    fits = tuple(fit_dimensions(record, cells))
    target = Target(_unit(record), record.target, record.headroom)
    return SweepReport(record, frame, fits, recommend(cells, target, fits))


CELL_HEADER = (
    "cell",
    "options",
    "cores by tier",
    "cost",
    "capacity (requests/s)",
    "capacity (multiplier)",
    "conclusion",
    "limiting tier",
    "scale next",
    "valid",
)


def _cell_rows(report: SweepReport) -> list[list[str]]:
    cells = {cell.name: cell for cell in cells_of(report.cells)}
    rows = []
    for row in report.cells.to_dict("records"):
        cell = cells[str(row["cell"])]
        rows.append(
            [
                cell.name,
                _mapping_text(json.loads(row["options"])),
                _mapping_text(cell.cores),
                f"{cell.cost:.3g}",
                number(cell.capacity_requests_per_s),
                number(cell.capacity_multiplier, 2),
                cell.status,
                cell.limiting_tier or "-",
                cell.scale_next() or "-",
                number(cell.valid),
            ]
        )
    for predicted in report.recommendation.predicted:
        assert predicted.interval is not None
        rows.append(
            [
                predicted.name,
                _mapping_text(predicted.options),
                _mapping_text(predicted.cores),
                f"{predicted.cost:.3g}",
                number(predicted.capacity_requests_per_s),
                number(predicted.capacity_multiplier, 2),
                f"predicted, 95 % {predicted.interval.text(4)}",
                "-",
                "-",
                "model",
            ]
        )
    return rows


def _mapping_text(values: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{key} {value:.3g}" if _numeric(value) else f"{key} {value}" for key, value in values.items()
    )


def _dimension_charts(report: SweepReport) -> list[str]:
    figures = []
    unit = _unit(report.record)
    cells = cells_of(report.cells)
    need = report.recommendation.target.needed
    for index, fit in enumerate(report.fits):
        measured = sorted(
            (
                cell
                for cell in cells
                if fit.dimension in cell.options and cell.status in (BRACKETED, LOWER_BOUND)
            ),
            key=lambda cell: cell.options[fit.dimension],
        )
        x = np.array([cell.options[fit.dimension] for cell in measured], dtype=np.float64)
        y = np.array([cell.capacity(unit) for cell in measured], dtype=np.float64)
        lines = []
        if fit.fitted and len(x):
            grid = np.linspace(float(x.min()), float(x.max()), 40)
            bands = [fit.band(value) for value in grid]
            lines += [
                Line(f"{fit.model} fit", grid, np.array([fit.predict(value) for value in grid])),
                Line("95 % band, low", grid, np.array([band.low for band in bands])),
                Line("95 % band, high", grid, np.array([band.high for band in bands])),
            ]
        lines.append(Line("measured", x, y))  # last: drawn over the curve
        figures.append(
            charts.line_chart(
                f"sweep-dimension-{index}",
                f"Capacity against {fit.dimension}" + ("" if fit.fitted else " (no model: see below)"),
                lines,
                x_label=fit.dimension,
                y_label="requests/s" if unit == REQUESTS_PER_S else "scenario multiplier",
                limits={"target x (1 + headroom)": need},
                markers={"measured"},
            )
        )
    return figures


def _heat_map(report: SweepReport) -> str:
    """Per cell (rows) and tier (columns) the share of its CPU budget used, coloured from white to red."""
    rows = report.cells.to_dict("records")
    shares = [json.loads(row["saturation"]) for row in rows]
    tiers = sorted({tier for share in shares for tier in share})
    if not tiers:
        return '<p id="sweep-heat-map" class="no-data">No budget counters in the cells\' steps.</p>'
    head = "<tr><th>cell</th>" + "".join(f"<th>{escape(tier)}</th>" for tier in tiers) + "</tr>"
    body = []
    for row, share in zip(rows, shares, strict=True):
        cells = []
        for tier in tiers:
            value = share.get(tier)
            if value is None:
                cells.append("<td>-</td>")
                continue
            level = max(0.0, min(1.0, value))
            colour = f"rgb(255,{int(255 - 180 * level)},{int(255 - 200 * level)})"
            cells.append(
                f'<td class="heat" data-tier="{escape(tier)}" style="background:{colour}">{value:.0%}</td>'
            )
        body.append(f"<tr><td>{escape(str(row['cell']))}</td>{''.join(cells)}</tr>")
    return f'<table id="sweep-heat-map"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


def _links(report: SweepReport) -> str:
    items = [
        f'<li><a href="{escape(str(row["capacity_dir"]))}/{CAPACITY_HTML}">{escape(str(row["cell"]))}</a>: '
        f"{escape(_mapping_text(json.loads(row['options'])))}</li>"
        for row in report.cells.to_dict("records")
    ]
    return f'<ul id="sweep-cell-links">{"".join(items)}</ul>'


def _model_paragraphs(report: SweepReport) -> list[Paragraph]:
    paragraphs = [Paragraph(fit.summary()) for fit in report.fits]
    paragraphs.append(
        Paragraph(
            "The model: X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)), N the dimension's "
            "value over the smallest measured; 95 % intervals from a bootstrap of the cells. A cell whose "
            "capacity is only a lower bound, or invalid, is no point of the fit. docs/scaling-guide.md "
            "says what the model does and does not predict for real hardware."
        )
    )
    return paragraphs


def sweep_page(report: SweepReport) -> Page:
    record, answer = report.record, report.recommendation
    lines = answer.lines()
    done = len(report.cells)
    wall_s = record.ended_at_s - record.started_at_s
    intro = (
        f"Sweep {record.sweep_id} ({record.source}): {record.mode}, {done} of {record.cells_planned} cell(s) "
        f"of profile {record.profile} measured with scenario {record.scenario} in {wall_s:.0f} s"
        + (" (interrupted)" if record.interrupted else "")
        + "."
    )
    return Page(
        title=f"Sweep {record.sweep_id}",
        headlines=(
            Headline(lines[0], page.INFO, "target"),
            Headline(
                " ".join(lines[1:]), page.PASS if answer.chosen is not None else page.FAIL, "recommendation"
            ),
        ),
        intro=intro,
        sections=(
            Section("Capacity against each dimension", (Charts(_dimension_charts(report)),), "sweep-curves"),
            Section("The scaling model", tuple(_model_paragraphs(report)), "sweep-model"),
            Section(
                "Cells",
                (Table(CELL_HEADER, _cell_rows(report), empty="No cell finished."),),
                "sweep-cells",
            ),
            Section(
                "Saturation: the share of each tier's CPU budget used, per cell",
                (
                    Paragraph("The bad step's (else the last step's) figure: 100 % is the whole budget."),
                    Charts([_heat_map(report)]),
                ),
                "sweep-saturation",
            ),
            Section("Each cell's capacity report", (Charts([_links(report)]),), "sweep-links"),
        ),
    )


def render_sweep(directory: str | Path) -> SweepReport:
    """Read a sweep's directory and write sweep.html and sweep.md into it."""
    path = Path(directory)
    report = build_sweep_report(path)
    page.write_page(sweep_page(report), path / SWEEP_HTML, path / SWEEP_MD)
    return report
