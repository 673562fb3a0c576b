"""`add_admin_ui`: the Admin UI's pages on the Admin API's app (docs/admin-ui.md)."""

from __future__ import annotations

import re
from datetime import timedelta

import falcon

from backbone.admin_ui.access import HOME, SignInPage, SignOutPage
from backbone.admin_ui.announcements import AnnouncementDeletionPage, AnnouncementsPage
from backbone.admin_ui.clients import ClientDeletionPage, ClientPage, ClientSecretPage, ClientsPage
from backbone.admin_ui.identities import IdentitiesPage, IdentityDeletionPage, IdentityPage
from backbone.admin_ui.overview import OverviewPage
from backbone.admin_ui.protection import UI_PREFIX, UiProtection
from backbone.admin_ui.rendering import Renderer, see_other
from backbone.admin_ui.security import SignInThrottle, derive_key, ui_sessions
from backbone.admin_ui.static_files import NotFoundSink, StaticFile
from backbone.admin_ui.tiers import (
    TierDeletionPage,
    TierPage,
    TierQuotaDeletionPage,
    TierQuotasPage,
    TiersPage,
)
from backbone.platform.admin_auth import ApiKeys, XsrfTokens
from backbone.platform.http import App
from backbone.wiring import Services

# Every route the UI adds; the Admin API's OpenAPI document leaves them out (they are pages).
UI_ROUTES = (
    "/",
    "/ui",
    "/ui/sign-in",
    "/ui/sign-out",
    "/ui/static/{name}",
    "/ui/clients",
    "/ui/clients/{clientId}",
    "/ui/clients/{clientId}/secret",
    "/ui/clients/{clientId}/delete",
    "/ui/tiers",
    "/ui/tiers/{tierId}",
    "/ui/tiers/{tierId}/delete",
    "/ui/tiers/{tierId}/quotas",
    "/ui/tiers/{tierId}/quotas/{quotaId}/delete",
    "/ui/identities",
    "/ui/identities/{address}",
    "/ui/identities/{address}/deletion-processes",
    "/ui/announcements",
    "/ui/announcements/{id}/delete",
)


class RootRedirect:
    """`GET /`: the Admin API's root leads to the UI."""

    anonymous_methods = frozenset({"GET"})

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        see_other(resp, HOME)


def add_admin_ui(app: App, services: Services, keys: ApiKeys) -> None:
    """Add the pages, their protection and the `/ui/` sink to the Admin API's app."""
    settings, clock = services.settings, services.clock
    # Only in development mode can the key be empty; every page then says that any key signs in.
    renderer = Renderer(any_key_signs_in=not settings.admin_api_key)
    sessions = ui_sessions(services.xsrf_key, timedelta(seconds=settings.admin_ui_session_lifetime_s), clock)
    sign_in_xsrf = XsrfTokens(derive_key(services.xsrf_key, b"sign-in"))
    throttle = SignInThrottle(
        settings.admin_ui_max_failed_sign_ins, timedelta(seconds=settings.admin_ui_lockout_s), clock
    )
    app.add_middleware(UiProtection(sessions, sign_in_xsrf, renderer, clock))
    clients = (renderer, services.clients, services.tiers)
    tiers = (renderer, services.tiers, services.quotas)
    pages: dict[str, object] = {
        "/": RootRedirect(),
        "/ui": OverviewPage(renderer, services),
        "/ui/sign-in": SignInPage(renderer, keys, sessions, sign_in_xsrf, throttle, clock),
        "/ui/sign-out": SignOutPage(),
        "/ui/static/{name}": StaticFile(renderer),
        "/ui/clients": ClientsPage(*clients),
        "/ui/clients/{clientId}": ClientPage(*clients),
        "/ui/clients/{clientId}/secret": ClientSecretPage(*clients),
        "/ui/clients/{clientId}/delete": ClientDeletionPage(*clients),
        "/ui/tiers": TiersPage(*tiers),
        "/ui/tiers/{tierId}": TierPage(*tiers),
        "/ui/tiers/{tierId}/delete": TierDeletionPage(*tiers),
        "/ui/tiers/{tierId}/quotas": TierQuotasPage(*tiers),
        "/ui/tiers/{tierId}/quotas/{quotaId}/delete": TierQuotaDeletionPage(*tiers),
        "/ui/identities": IdentitiesPage(renderer, services),
        "/ui/identities/{address}": IdentityPage(renderer, services),
        "/ui/identities/{address}/deletion-processes": IdentityDeletionPage(renderer, services),
        "/ui/announcements": AnnouncementsPage(renderer, services.announcements),
        "/ui/announcements/{id}/delete": AnnouncementDeletionPage(renderer, services.announcements),
    }
    for template in UI_ROUTES:
        app.add_route(template, pages[template])
    app.add_sink(NotFoundSink(renderer), prefix=re.compile(f"^{UI_PREFIX}(/|$)"))
