"""The tokens module in the backbone: its service and its routes."""

from __future__ import annotations

from backbone.modules.tokens.admin_api import add_token_admin_routes
from backbone.modules.tokens.consumer_api import add_token_routes
from backbone.modules.tokens.repository import TokenRepository
from backbone.modules.tokens.service import TokenService
from backbone.platform.errors import CheckQuota
from backbone.platform.modules import ModuleConfig


def include_tokens(config: ModuleConfig, *, check_quota: CheckQuota) -> TokenService:
    tokens = TokenService(
        config.db,
        TokenRepository(config.db),
        config.outbox,
        config.clock,
        config.ids,
        check_quota=check_quota,
    )
    config.add_consumer_routes(lambda app: add_token_routes(app, tokens))
    config.add_admin_routes(lambda app: add_token_admin_routes(app, tokens))
    return tokens
