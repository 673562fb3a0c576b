"""The challenges module in the backbone: its service and its routes."""

from __future__ import annotations

from backbone.modules.challenges.admin_api import add_challenge_admin_routes
from backbone.modules.challenges.consumer_api import add_challenge_routes
from backbone.modules.challenges.repository import ChallengeRepository
from backbone.modules.challenges.service import ChallengeService
from backbone.platform.modules import ModuleConfig


def include_challenges(config: ModuleConfig) -> ChallengeService:
    challenges = ChallengeService(config.db, ChallengeRepository(), config.clock, config.ids)
    config.add_consumer_routes(lambda app: add_challenge_routes(app, challenges))
    config.add_admin_routes(lambda app: add_challenge_admin_routes(app, challenges))
    return challenges
