"""What every board is made of: panels described as data, laid out and built with the Grafana SDK.

A board module lists `Panel`s (title, what it answers, unit, queries); `board` lays them out on
Grafana's 24-column grid, two to a row under their section's row, and builds the dashboard with
the pinned `grafana-foundation-sdk` (the Grafana 11.6 build). Every query goes to the one
datasource the provisioning file names, so a board works in any Grafana that provisions it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import dashboard as grafana
from grafana_foundation_sdk.builders import prometheus, timeseries
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig, VizLegendOptions
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode, LegendDisplayMode, LegendPlacement

# The uid in grafana/provisioning/datasources/prometheus.yaml; tests check every target names it.
DATASOURCE_UID = "testbed-prometheus"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
# Every series carries the target labels landscape, tier and process (testbed/landscape/monitor.py).
LANDSCAPE = 'landscape=~"$landscape"'
GRID_COLUMNS = 24
PANEL_HEIGHT = 8
ROW_HEIGHT = 1


@dataclass(frozen=True)
class Query:
    """One PromQL expression and the legend of its series."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """A time series panel: `answers` is the question it answers (its description in Grafana)."""

    title: str
    answers: str
    unit: str
    queries: Sequence[Query]
    # Drawn as dashed lines (e.g. SLO edges), in the panel's unit.
    lines: Sequence[float] = ()
    width: int = 12


@dataclass(frozen=True)
class Section:
    """A row of the board and its panels."""

    title: str
    panels: Sequence[Panel]


@dataclass(frozen=True)
class Variable:
    """A board variable whose values come from a `label_values(...)` query."""

    name: str
    label: str
    query: str
    multi: bool = True


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    description: str
    variables: Sequence[Variable]
    sections: Sequence[Section]
    tags: Sequence[str] = field(default=("testbed",))


def landscape_variable() -> Variable:
    return Variable("landscape", "Landscape", "label_values(up, landscape)")


def build(board: Board) -> model.Dashboard:
    """The board as the SDK's dashboard model, panels laid out row by row with unique ids."""
    builder = (
        grafana.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(list(board.tags))
        .editable()
        .refresh("10s")
        .time("now-30m", "now")
        .timezone("browser")
    )
    for variable in board.variables:
        builder = builder.with_variable(
            grafana.QueryVariable(variable.name)
            .label(variable.label)
            .query(variable.query)
            .datasource(DATASOURCE)
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(variable.multi)
            .include_all(True)
            .all_value(".*")
            .sort(model.VariableSort.ALPHABETICAL_ASC)
        )
    panel_id = 0
    y = 0
    for section in board.sections:
        panel_id += 1
        builder = builder.with_row(
            grafana.Row(section.title)
            .id(panel_id)
            .grid_pos(model.GridPos(h=ROW_HEIGHT, w=GRID_COLUMNS, x=0, y=y))
        )
        y += ROW_HEIGHT
        x = 0
        for panel in section.panels:
            if x + panel.width > GRID_COLUMNS:
                x, y = 0, y + PANEL_HEIGHT
            panel_id += 1
            builder = builder.with_panel(
                _timeseries(panel, panel_id).grid_pos(model.GridPos(h=PANEL_HEIGHT, w=panel.width, x=x, y=y))
            )
            x += panel.width
        y += PANEL_HEIGHT
    return builder.build()


def _timeseries(panel: Panel, panel_id: int) -> timeseries.Panel:
    built = (
        timeseries.Panel()
        .id(panel_id)
        .title(panel.title)
        .description(panel.answers)
        .unit(panel.unit)
        .datasource(DATASOURCE)
        .legend(
            VizLegendOptions()
            .show_legend(True)
            .display_mode(LegendDisplayMode.TABLE)
            .placement(LegendPlacement.BOTTOM)
        )
        .fill_opacity(5)
    )
    for index, query in enumerate(panel.queries):
        built = built.with_target(
            prometheus.Dataquery()
            .ref_id(chr(ord("A") + index))
            .datasource(DATASOURCE)
            .expr(query.expr)
            .legend_format(query.legend or "__auto")
            .range()
        )
    if panel.lines:
        steps = [model.Threshold(value=None, color="transparent")]
        steps += [model.Threshold(value=value, color="red") for value in panel.lines]
        built = built.thresholds(
            grafana.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps)
        ).thresholds_style(GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED))
    return built
