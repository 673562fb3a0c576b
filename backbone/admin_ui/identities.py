"""Identities: the OData list (filters, order, pages), an identity's devices, quotas and deletion
processes, and starting its deletion."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import falcon

from backbone.admin_ui.rendering import Form, Page, Renderer, as_json, see_other
from backbone.modules.devices.model import IDENTITY_LIST_FIELDS
from backbone.modules.identity_deletion.consumer_api import read_grace_period
from backbone.platform.errors import DomainError
from backbone.platform.http import Query
from backbone.platform.odata import parse_odata
from backbone.wiring import Services

IDENTITIES = "/ui/identities"
PAGE_SIZE = 20
# The list's filters: form field -> (OData field, operator); text values are quoted.
FILTERS = {
    "address": ("address", "eq"),
    "client": ("createdWithClient", "eq"),
    "tier": ("tier/id", "eq"),
    "created_after": ("createdAt", "gt"),
    "created_before": ("createdAt", "lt"),
}
SORTABLE = tuple(IDENTITY_LIST_FIELDS)


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def odata_options(params: dict[str, str], page: int) -> dict[str, str]:
    """The list's form as the OData query options of `GET /odata/Identities`."""
    comparisons = []
    for name, (field, operator) in FILTERS.items():
        value = params.get(name, "")
        if value:
            literal = value if field == "createdAt" else _quoted(value)
            comparisons.append(f"{field} {operator} {literal}")
    return {
        "$filter": " and ".join(comparisons),
        "$orderby": f"{params.get('sort') or 'createdAt'} {params.get('order') or 'desc'}",
        "$top": str(PAGE_SIZE),
        "$skip": str((page - 1) * PAGE_SIZE),
        "$count": "true",
    }


class IdentitiesPage(Page):
    """`/ui/identities`: identities filtered, ordered and paged as the Admin API's OData list is."""

    def __init__(self, renderer: Renderer, services: Services) -> None:
        self._renderer = renderer
        self._services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = Query(req)
        params = {name: (query.get(name) or "").strip() for name in (*FILTERS, "sort", "order")}
        context: dict[str, Any] = {"params": params, "rows": [], "total": 0, "pages": {}}
        error = None
        try:
            page = query.integer("page", 1, minimum=1, maximum=2**31 // PAGE_SIZE) or 1
            found, total = self._services.identities.overviews(
                parse_odata(odata_options(params, page), IDENTITY_LIST_FIELDS)
            )
        except DomainError as refused:
            error = refused
        else:
            versions = self._services.synchronization.datawallet_versions([row.address for row in found])
            context.update(
                rows=[(row, versions.get(row.address)) for row in found],
                total=total or 0,
                pages=self._pages(params, page, total or 0),
            )
        tiers = [overview.tier for overview in self._services.tiers.overviews()]
        self._renderer.page(
            req, resp, "identities.html", error=error, tiers=tiers, sortable=SORTABLE, **context
        )

    @staticmethod
    def _pages(params: dict[str, str], page: int, total: int) -> dict[str, Any]:
        last = max(1, -(-total // PAGE_SIZE))
        kept = {name: value for name, value in params.items() if value}

        def link(number: int) -> str:
            return f"{IDENTITIES}?{urlencode({**kept, 'page': number})}"

        return {
            "number": page,
            "last": last,
            "previous": link(page - 1) if page > 1 else None,
            "next": link(page + 1) if page < last else None,
        }


class _IdentityPages(Page):
    def __init__(self, renderer: Renderer, services: Services) -> None:
        self._renderer = renderer
        self._services = services

    def _show(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        address: str,
        *,
        form: Form | None = None,
        error: DomainError | None = None,
    ) -> None:
        services = self._services
        try:
            details = services.identities.details(address)
        except DomainError as missing:
            self._renderer.page(req, resp, "refused.html", error=missing)
            return
        tier_names = {overview.tier.id: overview.tier.name for overview in services.tiers.overviews()}
        self._renderer.page(
            req,
            resp,
            "identity.html",
            error=error,
            form=form or Form({}),
            identity=details.identity,
            tier_name=tier_names.get(details.identity.tier_id, details.identity.tier_id),
            devices=details.devices,
            quotas=services.quotas.quotas_of_identity(address),
            processes=services.deletion_processes.processes_of_identity(address),
        )


class IdentityPage(_IdentityPages):
    """`/ui/identities/{address}`: devices, quotas, deletion processes, and starting a deletion."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, address: str) -> None:
        self._show(req, resp, address)


class IdentityDeletionPage(_IdentityPages):
    """`POST /ui/identities/{address}/deletion-processes`: start deleting the identity."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, address: str) -> None:
        form = Form.of(req)
        try:
            grace_period = read_grace_period(as_json({"lengthOfGracePeriodInDays": form.number("days")}))
            self._services.deletion_processes.start_by_operator(address, grace_period)
        except DomainError as error:
            self._show(req, resp, address, form=form, error=error)
            return
        see_other(resp, f"{IDENTITIES}/{quote(address)}?notice=deletion-started")
