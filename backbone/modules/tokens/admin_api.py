"""Admin API routes of tokens: an identity's tokens, and unlocking a locked token."""

from __future__ import annotations

import falcon

from backbone.modules.tokens.consumer_api import TOKEN, render_token
from backbone.modules.tokens.service import TokenService
from backbone.platform.http import App, Query, checked_id, no_content, send_page
from backbone.platform.openapi import PAGE_QUERY, address, describe, identifier, paged

TAGS = ("Tokens",)


class TokensOverviewResource:
    def __init__(self, tokens: TokenService) -> None:
        self._tokens = tokens

    @describe(
        "The tokens an identity created",
        {200: paged(TOKEN)},
        query={"createdBy": address(), **PAGE_QUERY},
        required_query=("createdBy",),
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = Query(req)
        send_page(
            resp, self._tokens.created_by(query.required_address("createdBy"), query.page()), render_token
        )


class ResetAccessFailedCountResource:
    def __init__(self, tokens: TokenService) -> None:
        self._tokens = tokens

    @describe(
        "Unlock a token that too many wrong passwords locked",
        {204: None},
        path={"tokenId": identifier("TOK")},
        tags=TAGS,
    )
    def on_patch(self, req: falcon.Request, resp: falcon.Response, tokenId: str) -> None:
        self._tokens.reset_access_failed_count(checked_id(tokenId, "TOK", "tokenId"))
        no_content(resp)


def add_token_admin_routes(app: App, tokens: TokenService) -> None:
    app.add_route("/api/v1/Tokens", TokensOverviewResource(tokens))
    app.add_route("/api/v1/Tokens/{tokenId}/ResetAccessFailedCount", ResetAccessFailedCountResource(tokens))
