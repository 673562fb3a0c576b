"""Admin API routes of quota definitions: the metric list, tier quotas and individual quotas."""

from __future__ import annotations

from typing import Any

import falcon

from backbone.modules.quotas.model import (
    IndividualQuota,
    MetricKey,
    QuotaLimit,
    QuotaPeriod,
    TierQuotaDefinition,
)
from backbone.modules.quotas.service import QuotaService
from backbone.platform.http import App, JsonObject, checked_id, no_content, read_json, send
from backbone.platform.openapi import (
    address,
    array,
    describe,
    enum,
    envelope,
    identifier,
    integer,
    obj,
    string,
)

METRIC = obj({"key": enum(*(metric.name for metric in MetricKey)), "displayName": string()})
PERIOD = enum(*(period.name for period in QuotaPeriod))
QUOTA = obj({"id": string(), "metric": METRIC, "max": integer(minimum=0), "period": PERIOD})
LIMIT = obj({**QUOTA["properties"], "source": enum("Tier", "Individual")})
NEW_QUOTA = obj({"metricKey": string(), "max": integer(), "period": PERIOD})
TAGS = ("Quotas",)


def render_metric(metric: MetricKey) -> dict[str, Any]:
    return {"key": metric.name, "displayName": metric.display_name}


def render_quota(quota: TierQuotaDefinition | IndividualQuota) -> dict[str, Any]:
    return {
        "id": quota.id,
        "metric": render_metric(quota.metric),
        "max": quota.max,
        "period": quota.period.name,
    }


def render_limit(limit: QuotaLimit) -> dict[str, Any]:
    return {
        "id": limit.id,
        "source": limit.source.value,
        "metric": render_metric(limit.metric),
        "max": limit.max,
        "period": limit.period.name,
    }


def read_new_quota(body: JsonObject) -> tuple[str, int, QuotaPeriod]:
    max_ = body.integer("max")
    assert max_ is not None
    return body.required_text("metricKey"), max_, body.choice("period", QuotaPeriod)


class MetricsResource:
    def __init__(self, quotas: QuotaService) -> None:
        self._quotas = quotas

    @describe("The metrics a quota can limit", {200: envelope(array(METRIC))}, tags=TAGS)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, [render_metric(metric) for metric in self._quotas.metrics()])


class TierQuotasResource:
    def __init__(self, quotas: QuotaService) -> None:
        self._quotas = quotas

    @describe(
        "Limit a metric for every identity of a tier",
        {201: envelope(QUOTA)},
        body=NEW_QUOTA,
        path={"tierId": identifier("TIR")},
        tags=TAGS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, tierId: str) -> None:
        metric_key, max_, period = read_new_quota(read_json(req, required=True))
        definition = self._quotas.define_tier_quota(
            checked_id(tierId, "TIR", "tierId"), metric_key, max_, period
        )
        send(resp, render_quota(definition), 201)


class TierQuotaResource:
    def __init__(self, quotas: QuotaService) -> None:
        self._quotas = quotas

    @describe(
        "Remove a quota of a tier",
        {204: None},
        path={"tierId": identifier("TIR"), "quotaId": identifier("TQD")},
        tags=TAGS,
    )
    def on_delete(self, req: falcon.Request, resp: falcon.Response, tierId: str, quotaId: str) -> None:
        self._quotas.remove_tier_quota(
            checked_id(tierId, "TIR", "tierId"), checked_id(quotaId, "TQD", "quotaId")
        )
        no_content(resp)


class IdentityQuotasResource:
    def __init__(self, quotas: QuotaService) -> None:
        self._quotas = quotas

    @describe(
        "Limit a metric for one identity (overrides its tier's quotas of that metric)",
        {201: envelope(QUOTA)},
        body=NEW_QUOTA,
        path={"address": address()},
        tags=TAGS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, address: str) -> None:
        metric_key, max_, period = read_new_quota(read_json(req, required=True))
        send(resp, render_quota(self._quotas.add_individual_quota(address, metric_key, max_, period)), 201)


class IdentityQuotaResource:
    def __init__(self, quotas: QuotaService) -> None:
        self._quotas = quotas

    @describe(
        "Remove an individual quota of an identity",
        {204: None},
        path={"address": address(), "quotaId": identifier("QUO")},
        tags=TAGS,
    )
    def on_delete(self, req: falcon.Request, resp: falcon.Response, address: str, quotaId: str) -> None:
        self._quotas.remove_individual_quota(address, checked_id(quotaId, "QUO", "quotaId"))
        no_content(resp)


def add_quota_admin_routes(app: App, quotas: QuotaService) -> None:
    app.add_route("/api/v1/Metrics", MetricsResource(quotas))
    app.add_route("/api/v1/Tiers/{tierId}/Quotas", TierQuotasResource(quotas))
    app.add_route("/api/v1/Tiers/{tierId}/Quotas/{quotaId}", TierQuotaResource(quotas))
    app.add_route("/api/v1/Identities/{address}/Quotas", IdentityQuotasResource(quotas))
    app.add_route("/api/v1/Identities/{address}/Quotas/{quotaId}", IdentityQuotaResource(quotas))
