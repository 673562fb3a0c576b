"""The pages for apps through HTTP: `/r/{referenceId}`, the `.well-known` associations and the public
template references, from the apps file the settings name (and refuse when it is wrong)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from falcon import testing

from backbone.consumer_api import create_consumer_app
from backbone.settings import Settings, SettingsError
from backbone.wiring import build_services, seed
from tests.helpers.api import assert_error, onboard
from tests.helpers.services import fresh_sqlite, settings_for_tests

ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
REFERENCE = "/r/VE9LRU4gcmVmZXJlbmNl"
ROUTE_NOT_FOUND = "error.platform.routeNotFound"


def app(app_id: str, display_name: str) -> dict[str, object]:
    return {
        "Id": app_id,
        "DisplayName": display_name,
        "Description": "Ihre Daten bei Ihnen.",
        "AppleAppStore": {"AppLink": f"https://apps.apple.example/{app_id}"},
        "GooglePlayStore": {"NoLinkText": "Noch nicht im Play Store."},
        "BannerUrl": "https://apps.example.org/banner.png",
        "IconUrl": "https://apps.example.org/icon.png",
        "ColorScheme": {"Primary": "#17428D"},
    }


APPS = {
    "AppOnboarding": {
        "Apps": [app("eu.example.wallet", "Wallet"), app("eu.example.other", "<b>Other</b> & Co")],
        "DefaultAppId": "eu.example.wallet",
    },
    "WellKnownEndpoints": {
        "AppleAppSiteAssociations": ["TEAM123.eu.example.wallet"],
        "AndroidAssetLinks": [{"PackageName": "eu.example.wallet", "Sha256CertFingerprints": ["AB:CD:EF"]}],
    },
    "PublicRelationshipTemplateReferences": {
        "test": [{"Title": "City hall", "Description": "Appointments", "TruncatedReference": "QGRpZDp0ZXN0"}]
    },
}


def apps_settings(tmp_path: Path, document: object) -> Settings:
    path = tmp_path / "apps.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return Settings.from_env({"BACKBONE_APPS_FILE": str(path), "BACKBONE_VAR_DIR": str(tmp_path)})


@pytest.fixture
def apps_api(tmp_path: Path, sqlite_template: Path) -> Iterator[testing.TestClient]:
    """The Consumer API with the apps file above (SQLite: these routes read no table)."""
    apps = apps_settings(tmp_path, APPS).apps
    services = build_services(
        settings_for_tests(fresh_sqlite(sqlite_template, tmp_path), tmp_path, apps=apps)
    )
    seed(services)
    yield testing.TestClient(create_consumer_app(services))
    services.close()


def test_a_link_leads_to_the_default_app_and_the_visitors_store(apps_api: testing.TestClient) -> None:
    page = apps_api.simulate_get(REFERENCE, headers={"User-Agent": IPHONE})
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<title>Wallet</title>" in page.text
    assert 'href="https://apps.apple.example/eu.example.wallet"' in page.text
    assert "Google Play Store" not in page.text
    assert 'data-scheme="eu.example.wallet"' in page.text, "the in-app link opens the app"
    assert "--primary: #17428D" in page.text

    android = apps_api.simulate_get(REFERENCE, headers={"User-Agent": ANDROID})
    assert "Apple App Store" not in android.text
    assert 'title="Noch nicht im Play Store."' in android.text, "no link: the store's text instead"


def test_the_app_is_chosen_by_query_and_its_texts_are_escaped(apps_api: testing.TestClient) -> None:
    page = apps_api.simulate_get(REFERENCE, query_string="app=eu.example.other")
    assert page.status_code == 200
    assert "&lt;b&gt;Other&lt;/b&gt; &amp; Co" in page.text
    assert "<b>Other</b>" not in page.text
    # An unknown platform gets both stores.
    assert "Apple App Store" in page.text
    assert "Google Play Store" in page.text

    choice = apps_api.simulate_get(REFERENCE, query_string="app=eu.example.unknown")
    assert choice.status_code == 200
    assert 'href="?app=eu.example.wallet"' in choice.text
    assert 'href="?app=eu.example.other"' in choice.text


def test_the_well_known_associations(apps_api: testing.TestClient) -> None:
    apple = apps_api.simulate_get("/.well-known/apple-app-site-association")
    assert apple.status_code == 200
    assert apple.headers["Content-Type"] == "application/json"
    assert apple.json == {
        "applinks": {
            "details": [
                {
                    "appIDs": ["TEAM123.eu.example.wallet"],
                    "components": [{"/": "/r/*", "comment": "Matches any URL whose path starts with /r/"}],
                }
            ]
        }
    }
    android = apps_api.simulate_get("/.well-known/assetlinks.json")
    assert android.status_code == 200
    assert android.json == [
        {
            "relation": ["delegate_permission/common.handle_all_urls"],
            "target": {
                "namespace": "android_app",
                "package_name": "eu.example.wallet",
                "sha256_cert_fingerprints": ["AB:CD:EF"],
            },
        }
    ]


def test_the_public_template_references_of_the_callers_client(apps_api: testing.TestClient) -> None:
    caller = onboard(apps_api)
    listed = caller.get("/api/poc/PublicRelationshipTemplateReferences")
    assert listed.status_code == 200, listed.text
    reference = {"title": "City hall", "description": "Appointments", "truncatedReference": "QGRpZDp0ZXN0"}
    assert listed.json == {"result": [reference]}
    assert apps_api.simulate_get("/api/poc/PublicRelationshipTemplateReferences").status_code == 401


def test_without_an_apps_file_the_pages_are_not_found(api: testing.TestClient) -> None:
    for path in (REFERENCE, "/.well-known/apple-app-site-association", "/.well-known/assetlinks.json"):
        assert_error(api.simulate_get(path), 404, ROUTE_NOT_FOUND)
    assert onboard(api).get("/api/poc/PublicRelationshipTemplateReferences").json == {"result": []}


def test_a_wrong_apps_file_is_reported_with_the_other_settings(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {"BACKBONE_APPS_FILE": str(tmp_path / "missing.json"), "BACKBONE_DID_DOMAIN": "not a domain"}
        )
    assert raised.value.problems[0].startswith("BACKBONE_DID_DOMAIN")
    assert raised.value.problems[1].startswith("BACKBONE_APPS_FILE: cannot read")
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"BACKBONE_APPS_FILE: .* is not JSON"):
        Settings.from_env({"BACKBONE_APPS_FILE": str(tmp_path / "broken.json")})
    with pytest.raises(SettingsError, match="DefaultAppId: 'nope' is not one of the apps"):
        apps_settings(tmp_path, {"AppOnboarding": {"Apps": [], "DefaultAppId": "nope"}})
