"""docs/metrics.md lists exactly the metrics the backbone defines, with their types and labels."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from backbone.platform.metrics import Metrics
from backbone.platform.push.metrics import PushMetrics
from backbone.platform.sse import SseMetrics

CATALOGUE = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(?P<name>[a-z_]+)` \| (?P<type>[a-z]+)(?: \(sum\))? \|(?P<labels>[^|]*)\|")


def documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    rows = {}
    for line in CATALOGUE.read_text().splitlines():
        match = ROW.match(line)
        if match:
            labels = tuple(sorted(re.findall(r"`([a-z_]+)`", match["labels"])))
            assert match["name"] not in rows, f"{match['name']} is listed twice"
            rows[match["name"]] = (match["type"], labels)
    return rows


def defined() -> dict[str, tuple[str, tuple[str, ...]]]:
    metrics = Metrics()
    metrics.watch_outbox(lambda limit: 0)
    found = {}
    # The push connectors' metrics live in the registry the worker serves too; the SSE server's in its own.
    others = [PushMetrics(CollectorRegistry()), SseMetrics(CollectorRegistry())]
    for value in [*vars(metrics).values(), *(value for other in others for value in vars(other).values())]:
        if isinstance(value, MetricWrapperBase):
            kind = value._type
            name = value._name + ("_total" if kind == "counter" else "")
            found[name] = (kind, tuple(sorted(value._labelnames)))
    # Metrics computed at scrape time are not wrapper objects; their families come from the registry.
    for family in metrics.registry.collect():
        if family.name not in {name.removesuffix("_total") for name in found}:
            found[family.name] = (family.type, ())
    return found


def test_the_catalogue_lists_every_metric_with_its_type_and_labels() -> None:
    assert documented() == defined()


def test_the_catalogue_is_not_empty() -> None:
    # Guards the parser: a format change that matched no rows would make the comparison vacuous.
    assert len(documented()) >= 20
