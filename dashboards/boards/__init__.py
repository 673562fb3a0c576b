"""One module per board; `BOARDS` maps each board's file name to its definition."""

from __future__ import annotations

from dashboards.boards import backbone_red, load_generator, slo, tiers_use
from dashboards.panels import Board

BOARDS: dict[str, Board] = {
    "backbone-red.json": backbone_red.BOARD,
    "tiers-use.json": tiers_use.BOARD,
    "load-generator.json": load_generator.BOARD,
    "slo.json": slo.BOARD,
}
