"""Consumer API routes of feature flags: the caller sets its own, reads those of identities it knows."""

from __future__ import annotations

from typing import Any

import falcon

from backbone.modules.feature_flags.model import MAX_FEATURE_FLAGS_PER_IDENTITY, MAX_NAME_LENGTH
from backbone.modules.feature_flags.service import FeatureFlagService
from backbone.platform.crypto import is_valid_address
from backbone.platform.encoding import camel_case_key
from backbone.platform.errors import InvalidInput, InvalidPropertyValue
from backbone.platform.http import App, no_content, principal_of, read_json_members, send
from backbone.platform.openapi import ERROR, address, boolean, describe, envelope

TAGS = ("Identities and devices",)
FLAGS = {"type": "object", "additionalProperties": boolean()}


def read_flags(req: falcon.Request) -> dict[str, bool]:
    """The body `{"<name>": true|false, ...}`, names as sent."""
    flags = read_json_members(req)
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise InvalidInput(f"'{name}': The JSON value must be a boolean.")
    return flags


class OwnFeatureFlagsResource:
    """`/Identities/Self/FeatureFlags`: the caller's identity sets its flags."""

    def __init__(self, flags: FeatureFlagService) -> None:
        self._flags = flags

    @describe(
        "Create or switch feature flags of the caller's identity; its peers hear of it",
        {204: None, 400: ERROR},
        body={
            **FLAGS,
            "maxProperties": MAX_FEATURE_FLAGS_PER_IDENTITY,
            "propertyNames": {"maxLength": MAX_NAME_LENGTH},
        },
        tags=TAGS,
    )
    def on_patch(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._flags.change(principal_of(req), read_flags(req))
        no_content(resp)


class FeatureFlagsResource:
    """`/Identities/{identityAddress}/FeatureFlags`: the flags of an identity the caller knows."""

    def __init__(self, flags: FeatureFlagService) -> None:
        self._flags = flags

    @describe(
        "The feature flags of the caller's identity, a relationship peer's or a template creator's "
        "whose template the caller allocated",
        {200: envelope(FLAGS)},
        path={"identityAddress": address()},
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, identityAddress: str) -> None:
        if not is_valid_address(identityAddress):
            raise InvalidPropertyValue(
                "'identityAddress': The ID or Address is not valid. Check length, prefix and the used "
                "characters."
            )
        flags = self._flags.of_identity(principal_of(req), identityAddress)
        send(resp, render_flags(flags))


def render_flags(flags: dict[str, bool]) -> dict[str, Any]:
    # The original writes dictionary keys in camel case: a flag set as `Feature1` reads `feature1`.
    return {camel_case_key(name): enabled for name, enabled in flags.items()}


def add_feature_flag_routes(app: App, flags: FeatureFlagService) -> None:
    app.add_route("/api/v2/Identities/Self/FeatureFlags", OwnFeatureFlagsResource(flags))
    app.add_route("/api/v2/Identities/{identityAddress}/FeatureFlags", FeatureFlagsResource(flags))
