"""Admin API route of challenges: operators onboard identities from challenges too."""

from __future__ import annotations

import falcon

from backbone.modules.challenges.consumer_api import CHALLENGE, render_challenge
from backbone.modules.challenges.service import ChallengeService
from backbone.platform.http import App, send
from backbone.platform.openapi import describe, envelope


class ChallengesResource:
    def __init__(self, challenges: ChallengeService) -> None:
        self._challenges = challenges

    @describe(
        "Create a challenge (for onboarding an identity through the Admin API)",
        {201: envelope(CHALLENGE)},
        body={"type": "object"},
        body_required=False,
        tags=("Challenges",),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(resp, render_challenge(self._challenges.create(None)), 201)


def add_challenge_admin_routes(app: App, challenges: ChallengeService) -> None:
    app.add_route("/api/v1/Challenges", ChallengesResource(challenges))
