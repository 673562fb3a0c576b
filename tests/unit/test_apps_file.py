"""The apps file: the original's sections read case-insensitively, every problem reported at once;
and which app and stores the onboarding page offers."""

from __future__ import annotations

from typing import Any

import pytest

from backbone.apps_file import DEFAULT_NO_LINK_TEXT, AppOnboarding, ColorScheme, apps_from_document
from backbone.modules.onboarding.model import StorePlatform, onboarding_page, store_platform

ICON = "https://apps.example.org/icon.png"


def app(app_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "Id": app_id,
        "DisplayName": f"The {app_id} app",
        "Description": "Keeps your data with you.",
        "AppleAppStore": {"AppLink": f"https://apps.apple.example/{app_id}"},
        "GooglePlayStore": {"AppLink": f"https://play.google.example/{app_id}", "NoLinkText": "Soon."},
        "BannerUrl": "data:image/png;base64,iVBORw0KGgo=",
        "IconUrl": ICON,
        **overrides,
    }


DOCUMENT = {
    "AppOnboarding": {
        "Apps": [app("eu.example.one"), app("eu.example.two")],
        "DefaultAppId": "eu.example.one",
    },
    "WellKnownEndpoints": {
        "AppleAppSiteAssociations": ["TEAM123.eu.example.one"],
        "AndroidAssetLinks": [{"PackageName": "eu.example.one", "Sha256CertFingerprints": ["AB:CD"]}],
    },
    "PublicRelationshipTemplateReferences": {
        "test": [{"Title": "City hall", "Description": "Appointments", "TruncatedReference": "QGRp"}]
    },
}


def test_a_complete_file_is_read() -> None:
    apps, problems = apps_from_document(DOCUMENT)
    assert problems == []
    assert apps.onboarding is not None
    first = apps.onboarding.apps[0]
    assert (first.id, first.display_name) == ("eu.example.one", "The eu.example.one app")
    assert first.icon_url == ICON
    assert first.apple_app_store.no_link_text == DEFAULT_NO_LINK_TEXT
    assert first.google_play_store.no_link_text == "Soon."
    assert first.color_scheme == ColorScheme()
    assert apps.well_known is not None
    assert apps.well_known.apple_app_site_associations == ("TEAM123.eu.example.one",)
    assert apps.well_known.android_asset_links[0].sha256_cert_fingerprints == ("AB:CD",)
    assert [r.title for r in apps.public_template_references_of("test")] == ["City hall"]
    assert apps.public_template_references_of("another-client") == ()


def test_property_names_match_case_insensitively_as_the_originals_configuration_does() -> None:
    apps, problems = apps_from_document(
        {"wellKnownEndpoints": {"appleAppSiteAssociations": [], "androidassetlinks": []}}
    )
    assert problems == []
    assert apps.well_known is not None
    assert apps.onboarding is None


def test_every_problem_is_reported_at_once() -> None:
    broken = app("eu.example.one", IconUrl="ftp://icon", ColorScheme={"Primary": "red"})
    del broken["GooglePlayStore"]
    _, problems = apps_from_document(
        {
            "AppOnboarding": {"Apps": [broken, app("eu.example.one")], "DefaultAppId": "eu.example.nine"},
            "WellKnownEndpoints": {"AppleAppSiteAssociations": "TEAM.app", "AndroidAssetLinks": [{}]},
            "PublicRelationshipTemplateReferences": {"test": [{"Title": "no description"}]},
            "AppOnbaording": {},
        }
    )
    assert problems == [
        "$.AppOnbaording is not known (known: AppOnboarding, WellKnownEndpoints, "
        "PublicRelationshipTemplateReferences, Notifications)",
        "$.AppOnboarding.Apps[0].GooglePlayStore is required",
        "$.AppOnboarding.Apps[0].IconUrl: 'ftp://icon' does not match "
        r"^(https?://\S+|data:image/[a-zA-Z+]+;base64,[A-Za-z0-9+/=]+)$",
        "$.AppOnboarding.Apps[0].ColorScheme.Primary: 'red' does not match ^#[0-9A-Fa-f]{6}$",
        "$.AppOnboarding.Apps: the id 'eu.example.one' is used twice",
        "$.AppOnboarding.DefaultAppId: 'eu.example.nine' is not one of the apps",
        "$.WellKnownEndpoints.AndroidAssetLinks[0].PackageName must be a non-empty string",
        "$.WellKnownEndpoints.AndroidAssetLinks[0].Sha256CertFingerprints "
        "must be a list of non-empty strings",
        "$.WellKnownEndpoints.AppleAppSiteAssociations must be a list of non-empty strings",
        "$.PublicRelationshipTemplateReferences.test[0].Description must be a non-empty string",
        "$.PublicRelationshipTemplateReferences.test[0].TruncatedReference must be a non-empty string",
    ]


@pytest.mark.parametrize("document", [[], "apps", {"AppOnboarding": []}])
def test_a_document_of_the_wrong_shape_is_refused(document: Any) -> None:
    _, problems = apps_from_document(document)
    assert problems
    assert problems[0].endswith("must be an object")


@pytest.mark.parametrize(
    ("user_agent", "platform"),
    [
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36",
            StorePlatform.GooglePlay,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
            StorePlatform.Apple,
        ),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15", StorePlatform.Apple),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36", StorePlatform.Unknown),
        ("", StorePlatform.Unknown),
    ],
)
def test_the_store_follows_the_visitors_platform(user_agent: str, platform: StorePlatform) -> None:
    assert store_platform(user_agent) is platform


def onboarding() -> AppOnboarding:
    apps, _ = apps_from_document(DOCUMENT)
    assert apps.onboarding is not None
    return apps.onboarding


def test_the_page_offers_the_asked_app_or_the_default_and_the_visitors_stores() -> None:
    android = "Mozilla/5.0 (Linux; Android 14)"
    page = onboarding_page(onboarding(), "eu.example.two", android)
    assert page.app is not None
    assert page.app.id == "eu.example.two"
    assert [(s.store_name, s.link) for s in page.stores] == [
        ("Google Play Store", "https://play.google.example/eu.example.two")
    ]
    default = onboarding_page(onboarding(), None, "curl/8.5")
    assert default.app is not None
    assert default.app.id == "eu.example.one"
    assert [s.store_name for s in default.stores] == ["Apple App Store", "Google Play Store"]
    unknown = onboarding_page(onboarding(), "eu.example.nine", android)
    assert unknown.app is None
    assert [a.id for a in unknown.apps] == ["eu.example.one", "eu.example.two"]


def test_notification_texts_have_codes_and_languages_and_an_english_text() -> None:
    translations = {"en": {"Title": "Offer", "Body": "Look."}, "de": {"title": "Angebot", "body": "Schauen."}}
    apps, problems = apps_from_document(
        {"Notifications": {"Texts": [{"Code": "Offer", "Translations": translations}]}}
    )
    assert problems == []
    [offer] = apps.notifications
    assert offer.code == "Offer"
    assert [(t.language, t.title) for t in offer.translations] == [
        ("en", "Offer"),
        ("de", "Angebot"),
    ]

    texts = [
        {"Code": "Offer", "Translations": {"de": {"Title": "Angebot", "Body": "Schauen."}}},
        {"Code": "Offer", "Translations": {"en": {"Title": "Offer"}, "xx": {"Title": "?", "Body": "?"}}},
        {"Code": "x" * 52, "Translations": {"en": {"Title": "Long", "Body": "Too long."}}},
    ]
    _, problems = apps_from_document({"Notifications": {"Texts": texts}})
    assert problems == [
        "$.Notifications.Texts[0].Translations must have 'en' (other languages fall back to it)",
        "$.Notifications.Texts[1].Translations.en.Body must be a non-empty string",
        "$.Notifications.Texts[1].Translations.xx: 'xx' is not a two-letter language code",
        "$.Notifications.Texts[1].Code: 'Offer' is used twice",
        f"$.Notifications.Texts[2].Code: '{'x' * 52}' does not match ^[A-Za-z0-9_.-]{{1,51}}$",
    ]
