"""Every PromQL query of the generated boards, with Grafana's variables substituted, as a
Prometheus can run it: how the boards are checked without a Grafana (tests/e2e/test_dashboards_live.py).

Grafana's built-ins get fixed values (`$__rate_interval` one minute, as the issue of the boards
asks); a board variable gets the value given, else its "All" value (`.*`). A variable's own
`label_values(metric{...}, label)` query becomes `count by (label) (metric{...})`, which returns
one series per value Grafana would offer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

BUILT_INS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
    "__range_s": "300",
    "__interval_ms": "15000",
}
ALL = ".*"
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")
# A metric name in PromQL: an identifier right before a selector `{` or a range `[`, outside quotes.
_METRIC = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


@dataclass(frozen=True)
class BoardQuery:
    """One query of a board: where it is (board, panel, refId) and its PromQL, as Grafana has it."""

    board: str
    panel: str
    ref_id: str
    expr: str

    @property
    def key(self) -> str:
        return f"{self.board} / {self.panel} / {self.ref_id}"


def board_queries(directory: Path) -> Iterator[BoardQuery]:
    """Every target of every panel, and every variable's query, of the boards in `directory`."""
    for path in sorted(directory.glob("*.json")):
        board = json.loads(path.read_text())
        for variable in board.get("templating", {}).get("list", []):
            query = variable.get("query")
            if isinstance(query, dict):
                query = query.get("query", "")
            if query:
                yield BoardQuery(path.stem, f"variable {variable['name']}", "query", query)
        for panel in board.get("panels", []):
            for target in panel.get("targets", []):
                yield BoardQuery(path.stem, panel["title"], target["refId"], target["expr"])


def runnable(expr: str, variables: Mapping[str, str]) -> str:
    """The PromQL Prometheus runs for `expr`: variables and built-ins substituted."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name in BUILT_INS:
            return BUILT_INS[name]
        return variables.get(name, ALL)

    text = _VARIABLE.sub(value, expr.strip())
    if found := _LABEL_VALUES.match(text):
        return f"count by ({found['label']}) ({found['selector']})"
    return text


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (label values in quotes are not names)."""
    keywords = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
    return {name for name in _METRIC.findall(_QUOTED.sub('""', expr)) if name not in keywords}
