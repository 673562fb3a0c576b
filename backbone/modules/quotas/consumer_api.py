"""Consumer API route of quotas: the caller's limits with live usage."""

from __future__ import annotations

from typing import Any

import falcon

from backbone.modules.quotas.model import MetricKey, QuotaPeriod, QuotaUsage
from backbone.modules.quotas.service import QuotaService
from backbone.platform.http import App, principal_of, send
from backbone.platform.openapi import array, describe, enum, envelope, integer, obj

METRIC_KEY = enum(*(metric.name for metric in MetricKey))
QUOTA_WITH_USAGE = obj(
    {
        "source": enum("Tier", "Individual"),
        "metricKey": METRIC_KEY,
        "max": integer(minimum=0),
        "usage": integer(minimum=0),
        "period": enum(*(period.name for period in QuotaPeriod)),
    }
)
METRIC_QUOTAS = obj({"metricKey": METRIC_KEY, "quotas": array(QUOTA_WITH_USAGE)})


def render_by_metric(usages: list[QuotaUsage]) -> list[dict[str, Any]]:
    grouped: dict[MetricKey, list[dict[str, Any]]] = {}
    for item in usages:
        limit = item.limit
        grouped.setdefault(limit.metric, []).append(
            {
                "source": limit.source.value,
                "metricKey": limit.metric.name,
                "max": limit.max,
                "usage": item.usage,
                "period": limit.period.name,
            }
        )
    return [
        {"metricKey": metric.name, "quotas": grouped[metric]} for metric in MetricKey if metric in grouped
    ]


class QuotasResource:
    def __init__(self, quotas: QuotaService) -> None:
        self._quotas = quotas

    @describe(
        "The caller's quotas per metric with the usage of each in its current period",
        {200: envelope(array(METRIC_QUOTAS))},
        tags=("Quotas",),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, render_by_metric(self._quotas.usage_of(principal_of(req).address)))


def add_quota_routes(app: App, quotas: QuotaService) -> None:
    app.add_route("/api/v2/Quotas", QuotasResource(quotas))
