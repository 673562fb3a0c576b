"""What keeps the Admin UI as safe as the Admin API: sessions, anti-forgery, sign-in throttling.

- A **session** is a signed cookie (a JWT, HS256, under a key derived from the Admin API key and
  the JWT signing key, so changing either ends every session), `HttpOnly`, `SameSite=Strict`,
  with an expiry checked against the injected clock. Nothing is stored on the server: every
  worker and node with the same settings accepts it.
- Every **form** carries the request token of an anti-forgery pair (`platform.admin_auth`'s
  stateless scheme, under a key of the UI's own); the cookie half travels inside the session, and
  before sign-in in a cookie of its own.
- **Wrong keys** are counted per client address; after too many in a row the address waits.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from backbone.platform.admin_auth import XsrfTokens
from backbone.platform.clock import Clock

SESSION_COOKIE = "backbone-admin-session"
SIGN_IN_COOKIE = "backbone-admin-sign-in"
XSRF_FIELD = "xsrf_token"
COOKIE_PATH = "/ui"
_AUDIENCE = "backbone-admin-ui"
_ALGORITHM = "HS256"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
# On every answer under /ui/ (pages, redirects, static files, refusals).
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def derive_key(key: bytes, purpose: bytes) -> bytes:
    """A key for one purpose of the UI from the Admin API's anti-forgery key."""
    return hmac.new(key, b"backbone admin ui|" + purpose, hashlib.sha256).digest()


@dataclass(frozen=True)
class Session:
    """A signed-in operator: until when, and the anti-forgery pair of its forms."""

    expires_at: datetime
    xsrf_cookie: str
    xsrf_token: str

    def expired(self, now: datetime) -> bool:
        return self.expires_at <= now


class Sessions:
    """Issue and read the session cookie's value."""

    def __init__(self, key: bytes, lifetime: timedelta, clock: Clock, xsrf: XsrfTokens) -> None:
        self._key = key
        self._lifetime = lifetime
        self._clock = clock
        self._xsrf = xsrf

    def issue(self) -> tuple[str, Session]:
        cookie, token = self._xsrf.issue()
        now = self._clock.now()
        session = Session(expires_at=now + self._lifetime, xsrf_cookie=cookie, xsrf_token=token)
        claims: dict[str, Any] = {
            "aud": _AUDIENCE,
            "exp": int(session.expires_at.timestamp()),
            "xsrf": [cookie, token],
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM), session

    def read(self, value: str | None) -> Session | None:
        """The session of a cookie value whose signature holds, expired or not (the caller judges)."""
        if not value:
            return None
        try:
            # Expiry is judged against the injected clock by the caller, as bearer tokens' is.
            claims = jwt.decode(
                value,
                self._key,
                algorithms=[_ALGORITHM],
                audience=_AUDIENCE,
                options={"verify_exp": False, "require": ["exp", "aud", "xsrf"]},
            )
        except jwt.PyJWTError:
            return None
        expires, pair = claims["exp"], claims["xsrf"]
        if not isinstance(expires, int) or not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)
        ):
            return None
        return Session(datetime.fromtimestamp(expires, UTC), pair[0], pair[1])

    def form_token_matches(self, session: Session, token: str) -> bool:
        return self._xsrf.matches(session.xsrf_cookie, token)

    @property
    def lifetime(self) -> timedelta:
        return self._lifetime


def ui_sessions(admin_xsrf_key: bytes, lifetime: timedelta, clock: Clock) -> Sessions:
    """The sessions of every worker and node that shares the Admin API's anti-forgery key."""
    return Sessions(
        derive_key(admin_xsrf_key, b"session"),
        lifetime,
        clock,
        XsrfTokens(derive_key(admin_xsrf_key, b"forms")),
    )


@dataclass
class _Failures:
    count: int = 0
    locked_until: datetime | None = None


class SignInThrottle:
    """Wrong keys per client address, as device log-ins count wrong passwords per device.

    After `max_failures` wrong keys in a row the address waits `lockout` (no key is checked
    meanwhile); a right key starts the count again. Counted per process, in memory: with N
    gunicorn workers an address gets at most N times the attempts. At most `capacity` addresses
    are remembered (the oldest go first).
    """

    def __init__(self, max_failures: int, lockout: timedelta, clock: Clock, capacity: int = 10_000) -> None:
        self._max_failures = max_failures
        self._lockout = lockout
        self._clock = clock
        self._capacity = capacity
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    def locked_until(self, address: str) -> datetime | None:
        with self._lock:
            failures = self._failures.get(address)
            until = failures.locked_until if failures else None
            return until if until is not None and until > self._clock.now() else None

    def failed(self, address: str) -> None:
        with self._lock:
            failures = self._failures.pop(address, None) or _Failures()
            failures.count += 1
            if failures.count >= self._max_failures:
                failures.count = 0
                failures.locked_until = self._clock.now() + self._lockout
            self._failures[address] = failures
            while len(self._failures) > self._capacity:
                self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)
