"""OAuth clients: list, create (the generated secret shown once), change, new secret, delete."""

from __future__ import annotations

from urllib.parse import quote

import falcon

from backbone.admin_ui.rendering import Form, Page, Renderer, as_json, see_other
from backbone.modules.devices.model import CreatedClient
from backbone.modules.devices.service import ClientService
from backbone.modules.tiers.model import Tier
from backbone.modules.tiers.service import TierService
from backbone.platform.errors import DomainError

CLIENTS = "/ui/clients"


class _ClientPages(Page):
    def __init__(self, renderer: Renderer, clients: ClientService, tiers: TierService) -> None:
        self._renderer = renderer
        self._clients = clients
        self._tiers = tiers

    def _default_tiers(self) -> list[Tier]:
        return [
            overview.tier
            for overview in self._tiers.overviews()
            if overview.tier.can_be_used_as_default_for_client
        ]

    def _show_client(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        client_id: str,
        *,
        created: CreatedClient | None = None,
        error: DomainError | None = None,
    ) -> None:
        """The client's page; `created` carries a secret that was just generated (shown this once)."""
        try:
            overview = self._clients.overview(client_id)
        except DomainError as missing:
            self._renderer.page(req, resp, "refused.html", error=missing)
            return
        self._renderer.page(
            req,
            resp,
            "client.html",
            error=error,
            overview=overview,
            secret=created.client_secret if created else None,
            tiers=self._default_tiers(),
        )


class ClientsPage(_ClientPages):
    """`/ui/clients`: every client, and the form that registers one."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._show(req, resp, Form({}))

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = Form.of(req)
        body = as_json(
            {
                "clientId": form.optional("clientId"),
                "displayName": form.optional("displayName"),
                "defaultTier": form.text("defaultTier"),
                "maxIdentities": form.number("maxIdentities"),
            }
        )
        try:
            created = self._clients.create(
                client_id=body.text("clientId", required=False),
                display_name=body.text("displayName", required=False),
                client_secret=None,
                default_tier=body.required_text("defaultTier"),
                max_identities=body.integer("maxIdentities", required=False),
            )
        except DomainError as error:
            self._show(req, resp, form, error)
            return
        self._show_client(req, resp, created.client.client_id, created=created)

    def _show(
        self, req: falcon.Request, resp: falcon.Response, form: Form, error: DomainError | None = None
    ) -> None:
        self._renderer.page(
            req,
            resp,
            "clients.html",
            error=error,
            form=form,
            clients=self._clients.overviews(),
            tiers=self._default_tiers(),
        )


class ClientPage(_ClientPages):
    """`/ui/clients/{clientId}`: a client, and the form that changes its default tier and limit."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, clientId: str) -> None:
        self._show_client(req, resp, clientId)

    def on_post(self, req: falcon.Request, resp: falcon.Response, clientId: str) -> None:
        form = Form.of(req)
        body = as_json(
            {"defaultTier": form.text("defaultTier"), "maxIdentities": form.number("maxIdentities")}
        )
        try:
            self._clients.update(
                clientId, body.required_text("defaultTier"), body.integer("maxIdentities", required=False)
            )
        except DomainError as error:
            self._show_client(req, resp, clientId, error=error)
            return
        see_other(resp, f"{CLIENTS}/{quote(clientId, safe='')}?notice=client-saved")


class ClientSecretPage(_ClientPages):
    """`POST /ui/clients/{clientId}/secret`: a new generated secret, shown once."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, clientId: str) -> None:
        try:
            changed = self._clients.change_secret(clientId, None)
        except DomainError as error:
            self._show_client(req, resp, clientId, error=error)
            return
        self._show_client(req, resp, clientId, created=changed)


class ClientDeletionPage(_ClientPages):
    """`POST /ui/clients/{clientId}/delete`."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, clientId: str) -> None:
        try:
            self._clients.delete(clientId)
        except DomainError as error:
            self._show_client(req, resp, clientId, error=error)
            return
        see_other(resp, f"{CLIENTS}?notice=client-deleted")
