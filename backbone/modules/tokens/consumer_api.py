"""Consumer API routes of tokens."""

from __future__ import annotations

from typing import Any

import falcon

from backbone.modules.tokens.model import MAX_CONTENT_BYTES, MAX_PASSWORD_BYTES, NewToken, Token
from backbone.modules.tokens.service import TokenService
from backbone.platform.errors import InvalidPropertyValue
from backbone.platform.http import (
    App,
    Query,
    checked_id,
    no_content,
    optional_address,
    optional_principal,
    principal_of,
    query_password,
    read_json,
    send,
    send_page,
)
from backbone.platform.openapi import (
    ERROR,
    PAGE_QUERY,
    address,
    array,
    binary,
    boolean,
    describe,
    envelope,
    identifier,
    nullable,
    obj,
    paged,
    string,
    timestamp,
)

TAGS = ("Tokens",)
TOKEN_WITHOUT_CONTENT = obj(
    {
        "id": string(),
        "createdBy": nullable(string()),
        "createdByDevice": nullable(string()),
        "forIdentity": nullable(string()),
        "createdAt": timestamp(),
        "expiresAt": timestamp(),
        "isPasswordProtected": boolean(),
    }
)
TOKEN = obj({**TOKEN_WITHOUT_CONTENT["properties"], "content": nullable(string())})


def render_token(token: Token) -> dict[str, Any]:
    return {
        "id": token.id,
        "createdBy": token.created_by,
        "createdByDevice": token.created_by_device,
        "forIdentity": token.for_identity,
        "createdAt": token.created_at,
        "expiresAt": token.expires_at,
        "content": token.content,
        "isPasswordProtected": token.is_password_protected,
    }


def render_token_without_content(token: Token) -> dict[str, Any]:
    rendered = render_token(token)
    del rendered["content"]
    return rendered


class TokensResource:
    anonymous_methods = frozenset({"POST"})

    def __init__(self, tokens: TokenService) -> None:
        self._tokens = tokens

    @describe(
        "Create a token (anonymously only an empty one that expires within 5 minutes)",
        {201: envelope(obj({"id": string(), "createdAt": timestamp()}))},
        body=obj(
            {
                "content": nullable(binary()),
                "expiresAt": timestamp(),
                "forIdentity": nullable(address()),
                "password": nullable(binary(min_length=1)),
            },
            optional=["content", "forIdentity", "password"],
        ),
        tags=TAGS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, required=True)
        expires_at = body.timestamp("expiresAt")
        assert expires_at is not None
        new = NewToken(
            content=body.binary("content", required=False, max_bytes=MAX_CONTENT_BYTES),
            expires_at=expires_at,
            for_identity=optional_address(body, "forIdentity"),
            password=body.binary("password", required=False, min_bytes=1, max_bytes=MAX_PASSWORD_BYTES),
        )
        token = self._tokens.create(optional_principal(req), new)
        send(resp, {"id": token.id, "createdAt": token.created_at}, 201)

    @describe(
        "Tokens by id (`ids` or `tokens.N.id`) that the caller created or allocated",
        {200: paged(TOKEN)},
        query={"ids": array(identifier("TOK"), min_items=1), **PAGE_QUERY},
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = Query(req)
        ids = query.texts("ids") or [item["id"] or "" for item in query.objects("tokens", ("id",))]
        if not ids:
            raise InvalidPropertyValue("'ids' must not be empty.")
        checked = [checked_id(value, "TOK", "ids") for value in ids]
        send_page(resp, self._tokens.find_many(principal_of(req), checked, query.page()), render_token)


class TokenResource:
    anonymous_methods = frozenset({"GET"})

    def __init__(self, tokens: TokenService) -> None:
        self._tokens = tokens

    @describe(
        "A token (an authenticated first read allocates it)",
        {200: envelope(TOKEN)},
        path={"id": identifier("TOK")},
        query={"password": string()},
        tags=TAGS,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        password = query_password(Query(req).get("password"))
        token = self._tokens.get(optional_principal(req), checked_id(id, "TOK"), password)
        send(resp, render_token(token))

    @describe(
        "Delete a token of the caller", {204: None, 403: ERROR}, path={"id": identifier("TOK")}, tags=TAGS
    )
    def on_delete(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        self._tokens.delete(principal_of(req), checked_id(id, "TOK"))
        no_content(resp)


class TokenContentResource:
    def __init__(self, tokens: TokenService) -> None:
        self._tokens = tokens

    @describe(
        "Fill an empty token; the caller becomes its creator",
        {200: envelope(TOKEN_WITHOUT_CONTENT)},
        body=obj({"newContent": binary(min_length=1), "password": nullable(binary())}, optional=["password"]),
        path={"id": identifier("TOK")},
        tags=TAGS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, id: str) -> None:
        body = read_json(req, required=True)
        content = body.required_binary("newContent", min_bytes=1, max_bytes=MAX_CONTENT_BYTES)
        password = body.binary("password", required=False)
        token = self._tokens.update_content(principal_of(req), checked_id(id, "TOK"), content, password)
        send(resp, render_token_without_content(token))


def add_token_routes(app: App, tokens: TokenService) -> None:
    app.add_route("/api/v2/Tokens", TokensResource(tokens))
    app.add_route("/api/v2/Tokens/{id}", TokenResource(tokens))
    app.add_route("/api/v2/Tokens/{id}/UpdateContent", TokenContentResource(tokens))
