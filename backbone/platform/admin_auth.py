"""Admin API protection: the `X-API-KEY` header and the anti-forgery cookie/header pair.

The anti-forgery tokens are stateless: the cookie carries a random nonce with its HMAC, and the
request token is a second HMAC of that nonce. Any worker or node that knows the key can check a
pair, so nothing is stored and several processes agree without talking to each other.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import falcon

from backbone.platform.encoding import b64decode_lenient, b64url
from backbone.platform.errors import DomainError

API_KEY_HEADER = "X-API-KEY"
XSRF_COOKIE = "X-XSRF-COOKIE"
XSRF_HEADER = "X-XSRF-TOKEN"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_NONCE_BYTES = 16


class InvalidApiKey(Exception):
    """The request lacks the configured API key (HTTP 401)."""


def invalid_antiforgery_token() -> DomainError:
    return DomainError(
        "error.platform.validation.invalidAntiforgeryToken",
        f"The anti-forgery token is missing or invalid: get one from GET /api/v1/xsrf and send the "
        f"{XSRF_COOKIE} cookie with the {XSRF_HEADER} header.",
    )


class ApiKeys:
    """Compare API keys in constant time; an empty key (development mode only) accepts any."""

    def __init__(self, key: str) -> None:
        self._key = key.encode("utf-8")

    def accepts(self, candidate: str | None) -> bool:
        if not self._key:
            return True
        return hmac.compare_digest(self._key, (candidate or "").encode("utf-8"))


class XsrfTokens:
    """Issue and check anti-forgery pairs: a cookie token and the request token bound to it."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self) -> tuple[str, str]:
        """Return a fresh (cookie token, request token)."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return b64url(nonce + self._mac(b"cookie", nonce)), self._request_token(nonce)

    def matches(self, cookie: str | None, request_token: str | None) -> bool:
        if not cookie or not request_token:
            return False
        try:
            raw = b64decode_lenient(cookie)
        except ValueError:
            return False
        nonce, mac = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        if len(nonce) != _NONCE_BYTES or not hmac.compare_digest(mac, self._mac(b"cookie", nonce)):
            return False
        return hmac.compare_digest(request_token.encode("utf-8"), self._request_token(nonce).encode("utf-8"))

    def _request_token(self, nonce: bytes) -> str:
        return b64url(self._mac(b"request", nonce))

    def _mac(self, purpose: bytes, nonce: bytes) -> bytes:
        return hmac.new(self._key, purpose + b"|" + nonce, hashlib.sha256).digest()


def xsrf_key(*secrets_: bytes) -> bytes:
    """Derive the anti-forgery key from secrets every process of the landscape shares."""
    return hmac.new(b"backbone admin anti-forgery", b"|".join(secrets_), hashlib.sha256).digest()


class AdminProtection:
    """Refuse requests without the API key (401) and unsafe ones without a matching pair (400).

    Resources name the methods that need no API key in `anonymous_methods` (those also need no
    anti-forgery pair); unknown routes and methods fall through to the 404/405 answers.
    """

    def __init__(self, keys: ApiKeys, xsrf: XsrfTokens) -> None:
        self._keys = keys
        self._xsrf = xsrf

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        if resource is None or not hasattr(resource, f"on_{req.method.lower()}"):
            return
        anonymous: frozenset[str] = getattr(resource, "anonymous_methods", frozenset())
        if req.method in anonymous:
            return
        if not self._keys.accepts(req.get_header(API_KEY_HEADER)):
            raise InvalidApiKey()
        if req.method not in SAFE_METHODS:
            cookies = req.get_cookie_values(XSRF_COOKIE) or []
            token = req.get_header(XSRF_HEADER)
            if not any(self._xsrf.matches(cookie, token) for cookie in cookies):
                raise invalid_antiforgery_token()
