"""`/ui/`: how much there is of everything an operator manages."""

from __future__ import annotations

import falcon

from backbone.admin_ui.rendering import Page, Renderer
from backbone.platform.odata import ODataQuery
from backbone.wiring import Services


class OverviewPage(Page):
    def __init__(self, renderer: Renderer, services: Services) -> None:
        self._renderer = renderer
        self._services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        services = self._services
        _, identities = services.identities.overviews(ODataQuery(top=0, count=True))
        self._renderer.page(
            req,
            resp,
            "overview.html",
            identities=identities or 0,
            clients=len(services.clients.overviews()),
            tiers=len(services.tiers.overviews()),
            announcements=len(services.announcements.all()),
            deletion_processes=services.deletion_processes.count_by_status(),
        )
