"""The onboarding module in the backbone: the pages for apps, from the apps file."""

from __future__ import annotations

from backbone.modules.onboarding.consumer_api import add_onboarding_routes
from backbone.platform.modules import ModuleConfig


def include_onboarding(config: ModuleConfig) -> None:
    apps = config.settings.apps
    config.add_consumer_routes(lambda app: add_onboarding_routes(app, apps.onboarding, apps.well_known))
