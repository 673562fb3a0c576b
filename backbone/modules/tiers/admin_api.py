"""Admin API routes of tiers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from backbone.modules.tiers.model import MAX_TIER_NAME_LENGTH, MIN_TIER_NAME_LENGTH
from backbone.modules.tiers.service import TierService
from backbone.platform.http import App, checked_id, no_content, read_json, send
from backbone.platform.openapi import array, boolean, describe, envelope, identifier, integer, obj, string

# Rendered quotas of a tier; they come from the quotas module.
TierQuotas = Callable[[str], list[dict[str, Any]]]

TIER_OVERVIEW = obj(
    {
        "id": string(),
        "name": string(),
        "canBeUsedAsDefaultForClient": boolean(),
        "canBeManuallyAssigned": boolean(),
        "numberOfIdentities": integer(minimum=0),
    }
)
TIER_QUOTA = obj(
    {
        "id": string(),
        "metric": obj({"key": string(), "displayName": string()}),
        "max": integer(),
        "period": string(),
    }
)
TIERS = ("Tiers",)


class TiersResource:
    def __init__(self, tiers: TierService) -> None:
        self._tiers = tiers

    @describe("Every tier with its number of identities", {200: envelope(array(TIER_OVERVIEW))}, tags=TIERS)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(
            resp,
            [
                {
                    "id": overview.tier.id,
                    "name": overview.tier.name,
                    "canBeUsedAsDefaultForClient": overview.tier.can_be_used_as_default_for_client,
                    "canBeManuallyAssigned": overview.tier.can_be_manually_assigned,
                    "numberOfIdentities": overview.number_of_identities,
                }
                for overview in self._tiers.overviews()
            ],
        )

    @describe(
        "Add a tier",
        {201: envelope(obj({"id": string(), "name": string()}))},
        body=obj({"name": string(min_length=MIN_TIER_NAME_LENGTH, max_length=MAX_TIER_NAME_LENGTH)}),
        tags=TIERS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        tier = self._tiers.create(read_json(req, required=True).required_text("name"))
        send(resp, {"id": tier.id, "name": tier.name}, 201)


class TierResource:
    def __init__(self, tiers: TierService, tier_quotas: TierQuotas) -> None:
        self._tiers = tiers
        self._tier_quotas = tier_quotas

    @describe(
        "A tier with its quotas",
        {200: envelope(obj({"id": string(), "name": string(), "quotas": array(TIER_QUOTA)}))},
        path={"tierId": identifier("TIR")},
        tags=TIERS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, tierId: str) -> None:
        tier = self._tiers.get(checked_id(tierId, "TIR", "tierId"))
        send(resp, {"id": tier.id, "name": tier.name, "quotas": self._tier_quotas(tier.id)})

    @describe("Delete a tier nothing uses", {204: None}, path={"tierId": identifier("TIR")}, tags=TIERS)
    def on_delete(self, req: falcon.Request, resp: falcon.Response, tierId: str) -> None:
        self._tiers.delete(checked_id(tierId, "TIR", "tierId"))
        no_content(resp)


def add_tier_admin_routes(app: App, tiers: TierService, *, tier_quotas: TierQuotas) -> None:
    app.add_route("/api/v1/Tiers", TiersResource(tiers))
    app.add_route("/api/v1/Tiers/{tierId}", TierResource(tiers, tier_quotas))
