"""Tiers with their quotas: create and delete tiers, add and remove quota definitions."""

from __future__ import annotations

import falcon

from backbone.admin_ui.rendering import Form, Page, Renderer, as_json, see_other
from backbone.modules.quotas.admin_api import read_new_quota
from backbone.modules.quotas.model import QuotaPeriod
from backbone.modules.quotas.service import QuotaService
from backbone.modules.tiers.service import TierService
from backbone.platform.errors import DomainError
from backbone.platform.http import checked_id

TIERS = "/ui/tiers"


class _TierPages(Page):
    def __init__(self, renderer: Renderer, tiers: TierService, quotas: QuotaService) -> None:
        self._renderer = renderer
        self._tiers = tiers
        self._quotas = quotas

    def _show_tier(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        tier_id: str,
        *,
        form: Form | None = None,
        error: DomainError | None = None,
    ) -> None:
        try:
            tier = self._tiers.get(checked_id(tier_id, "TIR", "tierId"))
        except DomainError as missing:
            self._renderer.page(req, resp, "refused.html", error=missing)
            return
        self._renderer.page(
            req,
            resp,
            "tier.html",
            error=error,
            form=form or Form({}),
            tier=tier,
            quotas=self._quotas.tier_quotas(tier.id),
            metrics=self._quotas.metrics(),
            periods=list(QuotaPeriod),
        )


class TiersPage(_TierPages):
    """`/ui/tiers`: every tier with its number of identities, and the form that adds one."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._show(req, resp, Form({}))

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = Form.of(req)
        try:
            tier = self._tiers.create(as_json({"name": form.text("name")}).required_text("name"))
        except DomainError as error:
            self._show(req, resp, form, error)
            return
        see_other(resp, f"{TIERS}/{tier.id}?notice=tier-created")

    def _show(
        self, req: falcon.Request, resp: falcon.Response, form: Form, error: DomainError | None = None
    ) -> None:
        self._renderer.page(req, resp, "tiers.html", error=error, form=form, tiers=self._tiers.overviews())


class TierPage(_TierPages):
    """`/ui/tiers/{tierId}`: a tier's quotas, and the form that adds one."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, tierId: str) -> None:
        self._show_tier(req, resp, tierId)


class TierQuotasPage(_TierPages):
    """`POST /ui/tiers/{tierId}/quotas`: limit a metric for every identity of the tier."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, tierId: str) -> None:
        form = Form.of(req)
        body = as_json(
            {"metricKey": form.text("metricKey"), "max": form.number("max"), "period": form.text("period")}
        )
        try:
            metric_key, max_, period = read_new_quota(body)
            self._quotas.define_tier_quota(checked_id(tierId, "TIR", "tierId"), metric_key, max_, period)
        except DomainError as error:
            self._show_tier(req, resp, tierId, form=form, error=error)
            return
        see_other(resp, f"{TIERS}/{tierId}?notice=quota-added")


class TierQuotaDeletionPage(_TierPages):
    """`POST /ui/tiers/{tierId}/quotas/{quotaId}/delete`."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, tierId: str, quotaId: str) -> None:
        try:
            self._quotas.remove_tier_quota(
                checked_id(tierId, "TIR", "tierId"), checked_id(quotaId, "TQD", "quotaId")
            )
        except DomainError as error:
            self._show_tier(req, resp, tierId, error=error)
            return
        see_other(resp, f"{TIERS}/{tierId}?notice=quota-removed")


class TierDeletionPage(_TierPages):
    """`POST /ui/tiers/{tierId}/delete`."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, tierId: str) -> None:
        try:
            self._tiers.delete(checked_id(tierId, "TIR", "tierId"))
        except DomainError as error:
            self._show_tier(req, resp, tierId, error=error)
            return
        see_other(resp, f"{TIERS}?notice=tier-deleted")
