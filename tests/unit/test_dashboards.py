"""The generated Grafana boards: committed as generated, laid out without overlap, one datasource."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dashboards.boards import BOARDS
from dashboards.generate import GRAFANA_DIR, board_json
from dashboards.panels import DATASOURCE_UID

PROVISIONING = GRAFANA_DIR / "provisioning"


def _board(name: str) -> dict[str, Any]:
    board: dict[str, Any] = json.loads((GRAFANA_DIR / name).read_text())
    return board


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_the_committed_json_is_what_the_generator_writes(name: str) -> None:
    assert (GRAFANA_DIR / name).read_text() == board_json(name), f"run `make dashboards` ({name})"


def test_no_other_board_is_committed() -> None:
    assert sorted(path.name for path in GRAFANA_DIR.glob("*.json")) == sorted(BOARDS)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_panel_ids_are_unique_and_grid_positions_do_not_overlap(name: str) -> None:
    panels = _board(name)["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    taken: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_target_has_a_ref_id_and_the_provisioned_datasource(name: str) -> None:
    board = _board(name)
    targets = [(panel["title"], target) for panel in board["panels"] for target in panel.get("targets", [])]
    assert targets
    for title, target in targets:
        assert target.get("refId"), title
        assert target["datasource"]["uid"] == DATASOURCE_UID, title
        assert target["expr"].strip(), title
        assert "or vector(0)" not in target["expr"].replace("  ", " "), title
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
            refs = [target["refId"] for target in panel["targets"]]
            assert len(refs) == len(set(refs)), panel["title"]
    for variable in board["templating"]["list"]:
        assert variable["datasource"]["uid"] == DATASOURCE_UID, variable["name"]


def test_the_provisioned_datasource_has_the_boards_uid() -> None:
    text = (PROVISIONING / "datasources" / "prometheus.yaml").read_text()
    assert f"uid: {DATASOURCE_UID}" in text
    assert "url: http://prometheus:9090" in text
    assert "path: /var/lib/grafana/dashboards" in (PROVISIONING / "dashboards" / "testbed.yaml").read_text()


def test_every_board_has_a_landscape_variable_and_a_unique_uid() -> None:
    uids = [_board(name)["uid"] for name in BOARDS]
    assert len(uids) == len(set(uids))
    for name in BOARDS:
        assert "landscape" in [variable["name"] for variable in _board(name)["templating"]["list"]], name


def test_the_generated_files_live_where_the_compose_files_mount_them() -> None:
    assert Path(__file__).resolve().parents[2] / "dashboards" / "grafana" == GRAFANA_DIR
