"""App onboarding: which app a shared link opens, and in which stores a visitor finds it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from backbone.apps_file import AppOnboarding, AppStore, OnboardingApp


class StorePlatform(Enum):
    """The store a visitor's device installs from, judged by its user agent as the original does."""

    GooglePlay = "Google Play Store"
    Apple = "Apple App Store"
    Unknown = ""


# Android first: its agents say "Linux"; iOS agents say "like Mac OS X".
_ANDROID = re.compile(r"\bAndroid\b", re.IGNORECASE)
_APPLE = re.compile(r"\b(iPhone|iPad|iPod|Macintosh|Mac OS X)\b", re.IGNORECASE)


def store_platform(user_agent: str) -> StorePlatform:
    if _ANDROID.search(user_agent):
        return StorePlatform.GooglePlay
    if _APPLE.search(user_agent):
        return StorePlatform.Apple
    return StorePlatform.Unknown


@dataclass(frozen=True)
class StoreLink:
    store_name: str
    link: str | None
    no_link_text: str


@dataclass(frozen=True)
class OnboardingPage:
    """The page of one app, with the stores to offer; or, for no known app, the choice of apps."""

    app: OnboardingApp | None
    stores: tuple[StoreLink, ...]
    apps: tuple[OnboardingApp, ...]


def _link(platform: StorePlatform, store: AppStore) -> StoreLink:
    return StoreLink(platform.value, store.app_link, store.no_link_text)


def onboarding_page(onboarding: AppOnboarding, app_id: str | None, user_agent: str) -> OnboardingPage:
    """The app asked for (`?app=`, else the default app); Android and Apple devices see their own
    store, anything else both; an unknown app gets the choice of all apps."""
    app = onboarding.app(app_id)
    if app is None:
        return OnboardingPage(None, (), onboarding.apps)
    apple = _link(StorePlatform.Apple, app.apple_app_store)
    google = _link(StorePlatform.GooglePlay, app.google_play_store)
    platform = store_platform(user_agent)
    stores = {StorePlatform.Apple: (apple,), StorePlatform.GooglePlay: (google,)}.get(
        platform, (apple, google)
    )
    return OnboardingPage(app, stores, onboarding.apps)
