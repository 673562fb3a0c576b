"""Consumer API routes of challenges."""

from __future__ import annotations

from typing import Any

import falcon

from backbone.modules.challenges.model import Challenge
from backbone.modules.challenges.service import ChallengeService
from backbone.platform.http import App, checked_id, optional_principal, send
from backbone.platform.openapi import describe, envelope, identifier, nullable, obj, string, timestamp

TAGS = ("Challenges",)
CHALLENGE = obj(
    {
        "id": string(),
        "expiresAt": timestamp(),
        "createdBy": nullable(string()),
        "createdByDevice": nullable(string()),
    }
)


def render_challenge(challenge: Challenge) -> dict[str, Any]:
    return {
        "id": challenge.id,
        "expiresAt": challenge.expires_at,
        "createdBy": challenge.created_by,
        "createdByDevice": challenge.created_by_device,
    }


class ChallengesResource:
    anonymous_methods = frozenset({"POST"})

    def __init__(self, challenges: ChallengeService) -> None:
        self._challenges = challenges

    @describe(
        "Create a challenge (signed later to prove possession of a key)",
        {201: envelope(CHALLENGE)},
        body={"type": "object"},
        body_required=False,
        tags=TAGS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, render_challenge(self._challenges.create(optional_principal(req))), 201)


class ChallengeResource:
    def __init__(self, challenges: ChallengeService) -> None:
        self._challenges = challenges

    @describe("A challenge", {200: envelope(CHALLENGE)}, path={"id": identifier("CHL")}, tags=TAGS)
    def on_get(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        send(resp, render_challenge(self._challenges.get(checked_id(id, "CHL"))))


def add_challenge_routes(app: App, challenges: ChallengeService) -> None:
    app.add_route("/api/v2/Challenges", ChallengesResource(challenges))
    app.add_route("/api/v2/Challenges/{id}", ChallengeResource(challenges))
