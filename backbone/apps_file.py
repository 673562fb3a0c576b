"""The apps file (`BACKBONE_APPS_FILE`): what the backbone tells about the apps that use it.

A JSON file with the original's configuration sections, so an operator can carry them over:
`AppOnboarding` (the apps the `/r/{referenceId}` page links to), `WellKnownEndpoints` (the app
associations of `/.well-known/apple-app-site-association` and `/.well-known/assetlinks.json`) and
`PublicRelationshipTemplateReferences` (per OAuth client id, what
`GET /api/poc/PublicRelationshipTemplateReferences` lists) and `Notifications` (the codes
`POST /api/v2/Notifications` accepts, with the texts the devices show, per language). Every
section is optional; property
names match case-insensitively, as the original's configuration binding does. The settings read
the file once and report every problem in it together with their own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backbone.config_document import DocumentReader, Section
from backbone.platform.languages import LANGUAGE_CODES

# An http(s) URL of an image or the image itself as a data URL (the original's rule).
_IMAGE_URL = re.compile(r"^(https?://\S+|data:image/[a-zA-Z+]+;base64,[A-Za-z0-9+/=]+)$")
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
# `notification_<code>` is the APNs collapse id of the push, which may have at most 64 bytes.
_NOTIFICATION_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,51}$")
# Devices whose language a notification has no text in get this one (the original's default).
FALLBACK_LANGUAGE = "en"
DEFAULT_NO_LINK_TEXT = "This app is not officially available in this store yet. Please check back later."


@dataclass(frozen=True)
class AppStore:
    """An app's entry in one store; without a link the page shows `no_link_text` instead."""

    app_link: str | None = None
    no_link_text: str = DEFAULT_NO_LINK_TEXT


@dataclass(frozen=True)
class ColorScheme:
    background: str = "#FFFFFF"
    primary: str = "#000000"
    secondary: str = "#000000"
    on_primary: str = "#000000"
    on_secondary: str = "#000000"


@dataclass(frozen=True)
class OnboardingApp:
    """An app the onboarding page offers; its id is also the scheme of its in-app links."""

    id: str
    display_name: str
    description: str
    apple_app_store: AppStore
    google_play_store: AppStore
    banner_url: str
    icon_url: str
    color_scheme: ColorScheme = ColorScheme()


@dataclass(frozen=True)
class AppOnboarding:
    apps: tuple[OnboardingApp, ...]
    default_app_id: str | None = None

    def app(self, app_id: str | None) -> OnboardingApp | None:
        wanted = app_id if app_id is not None else self.default_app_id
        return next((app for app in self.apps if app.id == wanted), None)


@dataclass(frozen=True)
class AndroidAssetLink:
    package_name: str
    sha256_cert_fingerprints: tuple[str, ...]


@dataclass(frozen=True)
class WellKnownEndpoints:
    apple_app_site_associations: tuple[str, ...]
    android_asset_links: tuple[AndroidAssetLink, ...]


@dataclass(frozen=True)
class PublicTemplateReference:
    title: str
    description: str
    truncated_reference: str


@dataclass(frozen=True)
class NotificationTranslation:
    language: str
    title: str
    body: str


@dataclass(frozen=True)
class ConfiguredNotification:
    """A notification identities may send to their peers' devices, with its texts per language."""

    code: str
    translations: tuple[NotificationTranslation, ...]


@dataclass(frozen=True)
class Apps:
    """The file's sections; None (or empty) where the file has none."""

    onboarding: AppOnboarding | None = None
    well_known: WellKnownEndpoints | None = None
    # (client id, its references), in the file's order.
    public_template_references: tuple[tuple[str, tuple[PublicTemplateReference, ...]], ...] = ()
    notifications: tuple[ConfiguredNotification, ...] = ()

    def public_template_references_of(self, client_id: str) -> tuple[PublicTemplateReference, ...]:
        """What the app of an OAuth client lists as public templates (nothing if not configured)."""
        return next((found for owner, found in self.public_template_references if owner == client_id), ())


def read_apps_file(path: Path) -> tuple[Apps, list[str]]:
    """Read and check the file; return what it says and every problem found (none: it is valid)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        return Apps(), [f"cannot read {path}: {error.strerror}"]
    except (UnicodeDecodeError, ValueError) as error:
        return Apps(), [f"{path} is not JSON: {error}"]
    return apps_from_document(document)


def apps_from_document(document: Any) -> tuple[Apps, list[str]]:
    """Check the file's parsed JSON; return what it says and every problem found."""
    reader = DocumentReader()
    root = reader.section(
        document,
        "$",
        ("AppOnboarding", "WellKnownEndpoints", "PublicRelationshipTemplateReferences", "Notifications"),
    )
    apps = Apps(
        onboarding=reader.optional(root, "AppOnboarding", _onboarding),
        well_known=reader.optional(root, "WellKnownEndpoints", _well_known),
        public_template_references=reader.optional(root, "PublicRelationshipTemplateReferences", _references)
        or (),
        notifications=reader.optional(root, "Notifications", _notifications) or (),
    )
    return apps, reader.problems


def _store(reader: DocumentReader, value: Any, path: str) -> AppStore:
    section = reader.section(value, path, ("AppLink", "NoLinkText"))
    link = section.values.get("AppLink")
    if link is not None and not (isinstance(link, str) and re.match(r"^https?://\S+$", link)):
        reader.problems.append(f"{path}.AppLink must be an http(s) URL")
        link = None
    return AppStore(
        app_link=link or None, no_link_text=reader.text(section, "NoLinkText", default=DEFAULT_NO_LINK_TEXT)
    )


def _colors(reader: DocumentReader, value: Any, path: str) -> ColorScheme:
    names = ("Background", "Primary", "Secondary", "OnPrimary", "OnSecondary")
    section = reader.section(value, path, names)
    defaults = ColorScheme()
    background, primary, secondary, on_primary, on_secondary = (
        reader.text(section, name, default=getattr(defaults, attribute), pattern=_COLOR)
        for name, attribute in zip(
            names, ("background", "primary", "secondary", "on_primary", "on_secondary"), strict=True
        )
    )
    return ColorScheme(background, primary, secondary, on_primary, on_secondary)


def _app(reader: DocumentReader, value: Any, path: str) -> OnboardingApp:
    section = reader.section(
        value,
        path,
        (
            "Id",
            "DisplayName",
            "Description",
            "AppleAppStore",
            "GooglePlayStore",
            "ColorScheme",
            "BannerUrl",
            "IconUrl",
        ),
    )
    stores = []
    for name in ("AppleAppStore", "GooglePlayStore"):
        store = reader.optional(section, name, _store)
        if store is None:
            reader.problems.append(f"{path}.{name} is required")
        stores.append(store or AppStore())
    return OnboardingApp(
        id=reader.text(section, "Id"),
        display_name=reader.text(section, "DisplayName"),
        description=reader.text(section, "Description"),
        apple_app_store=stores[0],
        google_play_store=stores[1],
        banner_url=reader.text(section, "BannerUrl", pattern=_IMAGE_URL),
        icon_url=reader.text(section, "IconUrl", pattern=_IMAGE_URL),
        color_scheme=reader.optional(section, "ColorScheme", _colors) or ColorScheme(),
    )


def _onboarding(reader: DocumentReader, value: Any, path: str) -> AppOnboarding:
    section = reader.section(value, path, ("Apps", "DefaultAppId"))
    apps = tuple(_app(reader, item, item_path) for item, item_path in reader.items(section, "Apps"))
    ids = [app.id for app in apps]
    for duplicate in sorted({app_id for app_id in ids if ids.count(app_id) > 1}):
        reader.problems.append(f"{path}.Apps: the id '{duplicate}' is used twice")
    default_app_id = reader.text(section, "DefaultAppId") if "DefaultAppId" in section.values else None
    if default_app_id is not None and default_app_id not in ids:
        reader.problems.append(f"{path}.DefaultAppId: '{default_app_id}' is not one of the apps")
    return AppOnboarding(apps=apps, default_app_id=default_app_id)


def _well_known(reader: DocumentReader, value: Any, path: str) -> WellKnownEndpoints:
    section = reader.section(value, path, ("AppleAppSiteAssociations", "AndroidAssetLinks"))
    links = []
    for item, item_path in reader.items(section, "AndroidAssetLinks"):
        link = reader.section(item, item_path, ("PackageName", "Sha256CertFingerprints"))
        links.append(
            AndroidAssetLink(reader.text(link, "PackageName"), reader.texts(link, "Sha256CertFingerprints"))
        )
    return WellKnownEndpoints(reader.texts(section, "AppleAppSiteAssociations"), tuple(links))


def _references(
    reader: DocumentReader, value: Any, path: str
) -> tuple[tuple[str, tuple[PublicTemplateReference, ...]], ...]:
    if not isinstance(value, dict):
        reader.problems.append(f"{path} must be an object of client ids")
        return ()
    result = []
    for client_id in value:
        read = []
        for item, item_path in reader.items(Section(value, path), client_id):
            reference = reader.section(item, item_path, ("Title", "Description", "TruncatedReference"))
            read.append(
                PublicTemplateReference(
                    reader.text(reference, "Title"),
                    reader.text(reference, "Description"),
                    reader.text(reference, "TruncatedReference"),
                )
            )
        result.append((client_id, tuple(read)))
    return tuple(result)


def _notifications(reader: DocumentReader, value: Any, path: str) -> tuple[ConfiguredNotification, ...]:
    section = reader.section(value, path, ("Texts",))
    found: list[ConfiguredNotification] = []
    for item, item_path in reader.items(section, "Texts"):
        text = reader.section(item, item_path, ("Code", "Translations"))
        code = reader.text(text, "Code", pattern=_NOTIFICATION_CODE)
        translations = []
        for language, translation, translation_path in reader.named(text, "Translations"):
            if language not in LANGUAGE_CODES:
                reader.problems.append(
                    f"{translation_path}: '{language[:10]}' is not a two-letter language code"
                )
            words = reader.section(translation, translation_path, ("Title", "Body"))
            translations.append(
                NotificationTranslation(language, reader.text(words, "Title"), reader.text(words, "Body"))
            )
        if "Translations" in text.values and FALLBACK_LANGUAGE not in {t.language for t in translations}:
            reader.problems.append(
                f"{text.at('Translations')} must have '{FALLBACK_LANGUAGE}' (other languages fall back to it)"
            )
        if code in {notification.code for notification in found}:
            reader.problems.append(f"{text.at('Code')}: '{code}' is used twice")
        found.append(ConfiguredNotification(code, tuple(translations)))
    return tuple(found)
