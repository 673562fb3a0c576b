"""The Consumer API's pages for apps: the landing page of shared links (`/r/{referenceId}`) and the
app associations under `/.well-known/`, all from the apps file; without it they are not found."""

from __future__ import annotations

import html
import urllib.parse
from typing import Any

import falcon

from backbone.apps_file import AppOnboarding, OnboardingApp, WellKnownEndpoints
from backbone.modules.onboarding.model import OnboardingPage, StoreLink, onboarding_page
from backbone.platform.http import App, Query, dumps
from backbone.platform.openapi import ERROR, array, describe, obj, string

TAGS = ("Onboarding",)
HTML = "text/html; charset=utf-8"
JSON = "application/json"
APPLE_APP_SITE_ASSOCIATION = obj(
    {
        "applinks": obj(
            {
                "details": array(
                    obj(
                        {
                            "appIDs": array(string()),
                            "components": array(obj({"/": string(), "comment": string()})),
                        }
                    )
                )
            }
        )
    }
)
ASSET_LINKS = array(
    obj(
        {
            "relation": array(string()),
            "target": obj(
                {"namespace": string(), "package_name": string(), "sha256_cert_fingerprints": array(string())}
            ),
        }
    )
)


def _not_configured(what: str) -> falcon.HTTPNotFound:
    return falcon.HTTPNotFound(description=f"This backbone has no {what} configured.")


class AppOnboardingResource:
    """`/r/{referenceId}`: where a link shared by an app leads a visitor without the app."""

    anonymous_methods = frozenset({"GET"})

    def __init__(self, onboarding: AppOnboarding | None) -> None:
        self._onboarding = onboarding

    @describe(
        "The landing page of a shared link: the app's stores and a link that opens it in the app "
        "(`?app=` picks the app, the default app otherwise; an unknown app gets the choice of apps)",
        {200: {"type": "string"}, 404: ERROR},
        query={"app": string()},
        response_type=HTML,
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, referenceId: str) -> None:
        if self._onboarding is None:
            raise _not_configured("app onboarding")
        page = onboarding_page(self._onboarding, Query(req).get("app"), req.user_agent or "")
        resp.content_type = HTML
        resp.text = render_page(page)


class AppleAppSiteAssociationResource:
    anonymous_methods = frozenset({"GET"})

    def __init__(self, well_known: WellKnownEndpoints | None) -> None:
        self._well_known = well_known

    @describe("The iOS apps that open `/r/` links", {200: APPLE_APP_SITE_ASSOCIATION, 404: ERROR}, tags=TAGS)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._well_known is None:
            raise _not_configured("well-known endpoints")
        component = {"/": "/r/*", "comment": "Matches any URL whose path starts with /r/"}
        details = [{"appIDs": list(self._well_known.apple_app_site_associations), "components": [component]}]
        _send_json(resp, {"applinks": {"details": details}})


class AssetLinksResource:
    anonymous_methods = frozenset({"GET"})

    def __init__(self, well_known: WellKnownEndpoints | None) -> None:
        self._well_known = well_known

    @describe("The Android apps that open the backbone's links", {200: ASSET_LINKS, 404: ERROR}, tags=TAGS)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._well_known is None:
            raise _not_configured("well-known endpoints")
        links = [
            {
                "relation": ["delegate_permission/common.handle_all_urls"],
                "target": {
                    "namespace": "android_app",
                    "package_name": link.package_name,
                    "sha256_cert_fingerprints": list(link.sha256_cert_fingerprints),
                },
            }
            for link in self._well_known.android_asset_links
        ]
        _send_json(resp, links)


def _send_json(resp: falcon.Response, body: Any) -> None:
    # Read by the operating systems, not by the client library: no envelope.
    resp.content_type = JSON
    resp.data = dumps(body)


# --- the pages ------------------------------------------------------------------------------------

_STYLE = """
body { margin: 0; font-family: sans-serif; background: var(--background); }
main { max-width: 32rem; margin: 0 auto; padding: 2rem 1rem; }
.banner { width: 100%; margin-bottom: 2rem; }
.step { display: flex; align-items: center; justify-content: space-between; gap: 1rem;
        padding: 1rem; margin: 1rem 0; border-radius: 0.5rem; text-decoration: none;
        background: var(--primary); color: var(--on-primary); }
.store { display: inline-block; padding: 0.5rem 1rem; border-radius: 0.5rem;
         background: var(--secondary); color: var(--on-secondary); text-decoration: none; }
.store.missing { opacity: 0.3; }
.icon { width: 60px; height: 60px; border-radius: 20%; }
"""


def _page(title: str, colors: dict[str, str], body: str, script: str = "") -> str:
    variables = "; ".join(f"--{name}: {value}" for name, value in colors.items())
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1.0">'
        f"<title>{html.escape(title)}</title><style>:root {{ {variables} }}{_STYLE}</style>{script}</head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def _store_button(store: StoreLink) -> str:
    name = html.escape(store.store_name)
    if store.link is None:
        return f'<span class="store missing" title="{html.escape(store.no_link_text)}">{name}</span>'
    return f'<a class="store" href="{html.escape(store.link)}" target="_blank">{name}</a>'


def _app_page(app: OnboardingApp, stores: tuple[StoreLink, ...]) -> str:
    colors = app.color_scheme
    store_name = stores[0].store_name if len(stores) == 1 else "App Store"
    # The in-app link is this page's own address under the app's scheme, as the browser sees it
    # (behind a gateway only the browser knows the public address).
    script = (
        "<script>document.addEventListener('DOMContentLoaded', function () {"
        " var link = document.getElementById('in-app-link');"
        " link.href = window.location.toString().replace(/^https?/, link.dataset.scheme); });</script>"
    )
    body = (
        f'<img class="banner" src="{html.escape(app.banner_url)}" alt="{html.escape(app.display_name)} Logo">'
        f"<p>{html.escape(app.description)}</p>"
        f'<div class="step"><p>1. Laden Sie die {html.escape(app.display_name)}-App aus dem '
        f"{html.escape(store_name)}.</p><div>{' '.join(_store_button(store) for store in stores)}</div></div>"
        f'<a class="step" id="in-app-link" data-scheme="{html.escape(app.id)}">'
        "<p>2. Klicken Sie anschließend hier, um die App mit Ihrem Code zu starten.</p>"
        f'<img class="icon" src="{html.escape(app.icon_url)}" alt="App starten"></a>'
    )
    return _page(
        app.display_name,
        {
            "background": colors.background,
            "primary": colors.primary,
            "secondary": colors.secondary,
            "on-primary": colors.on_primary,
            "on-secondary": colors.on_secondary,
        },
        body,
        script,
    )


def _selection_page(apps: tuple[OnboardingApp, ...]) -> str:
    choices = "".join(
        f'<a class="step" href="?app={html.escape(urllib.parse.quote(app.id, safe=""))}">'
        f'<img class="icon" src="{html.escape(app.icon_url)}" alt="">'
        f"<p>{html.escape(app.display_name)}</p></a>"
        for app in apps
    )
    colors = {"background": "#FFFFFF", "primary": "#EEEEEE", "on-primary": "#000000"}
    return _page("App", colors, f"<p>Mit welcher App möchten Sie fortfahren?</p>{choices}")


def render_page(page: OnboardingPage) -> str:
    if page.app is None:
        return _selection_page(page.apps)
    return _app_page(page.app, page.stores)


def add_onboarding_routes(
    app: App, onboarding: AppOnboarding | None, well_known: WellKnownEndpoints | None
) -> None:
    app.add_route("/r/{referenceId}", AppOnboardingResource(onboarding))
    app.add_route("/.well-known/apple-app-site-association", AppleAppSiteAssociationResource(well_known))
    app.add_route("/.well-known/assetlinks.json", AssetLinksResource(well_known))
