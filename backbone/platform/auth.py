"""Secrets and bearer tokens: password hashes in ASP.NET Identity's format, signed JWTs."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
import struct
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt

from backbone.platform.clock import Clock
from backbone.platform.crypto import is_valid_address
from backbone.platform.ids import is_valid_id

# ASP.NET Identity v3 hash layout: marker 0x01, PRF id, iteration count, salt length (all
# big-endian uint32), salt, subkey. Keeping it means every hash carries its own parameters, so
# the cost can change without invalidating stored hashes.
_FORMAT_MARKER = 0x01
_PRF_BY_ID = {0: "sha1", 1: "sha256", 2: "sha512"}
_ID_BY_PRF = {name: prf_id for prf_id, name in _PRF_BY_ID.items()}
_SALT_BYTES = 16
_SUBKEY_BYTES = 32


class PasswordHasher:
    """Hash and check secrets with PBKDF2-HMAC (SHA-512 by default)."""

    def __init__(self, iterations: int, prf: str = "sha512") -> None:
        self.iterations = iterations
        self.prf = prf

    def hash(self, password: str) -> str:
        salt = secrets.token_bytes(_SALT_BYTES)
        subkey = hashlib.pbkdf2_hmac(self.prf, password.encode("utf-8"), salt, self.iterations, _SUBKEY_BYTES)
        header = struct.pack(">BIII", _FORMAT_MARKER, _ID_BY_PRF[self.prf], self.iterations, len(salt))
        return base64.b64encode(header + salt + subkey).decode("ascii")

    def unmatchable_hash(self) -> str:
        """A stored hash of this cost that no password matches (checked for unknown usernames).

        Random bytes in place of the subkey: making it costs nothing, checking it the full cost.
        """
        header = struct.pack(">BIII", _FORMAT_MARKER, _ID_BY_PRF[self.prf], self.iterations, _SALT_BYTES)
        return base64.b64encode(header + secrets.token_bytes(_SALT_BYTES + _SUBKEY_BYTES)).decode("ascii")

    def verify(self, password: str, stored: str) -> bool:
        try:
            raw = base64.b64decode(stored, validate=True)
            marker, prf_id, iterations, salt_length = struct.unpack(">BIII", raw[:13])
        except (ValueError, struct.error):
            return False
        if marker != _FORMAT_MARKER or prf_id not in _PRF_BY_ID or salt_length < 8:
            return False
        salt, expected = raw[13 : 13 + salt_length], raw[13 + salt_length :]
        actual = hashlib.pbkdf2_hmac(
            _PRF_BY_ID[prf_id], password.encode("utf-8"), salt, iterations, len(expected)
        )
        return hmac.compare_digest(actual, expected)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls: the identity, its device and the OAuth client the token was issued to."""

    address: str
    device_id: str
    username: str
    client_id: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in_s: int


class TokenIssuer:
    """Issue and verify HS256 bearer tokens; nothing is stored server side."""

    _ALGORITHM = "HS256"

    def __init__(self, signing_key: bytes, lifetime_s: int, clock: Clock, issuer: str = "backbone") -> None:
        self._key = signing_key
        self._lifetime_s = lifetime_s
        self._clock = clock
        self._issuer = issuer
        # Clients reuse a token for minutes; decoding it once per process saves ~0.1 ms a request.
        self._decode = functools.lru_cache(maxsize=4096)(self._decode_uncached)

    def issue(self, principal: Principal) -> IssuedToken:
        now = self._clock.now()
        claims = {
            "iss": self._issuer,
            "sub": principal.device_id,
            "name": principal.username,
            "nmshd_address": principal.address,
            "device_id": principal.device_id,
            "client_id": principal.client_id,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self._lifetime_s)).timestamp()),
            "jti": secrets.token_urlsafe(12),
        }
        return IssuedToken(jwt.encode(claims, self._key, algorithm=self._ALGORITHM), self._lifetime_s)

    def verify(self, token: str) -> Principal | None:
        """Return the principal of a valid, unexpired token, or None."""
        decoded = self._decode(token)
        if decoded is None or decoded[1] <= self._clock.now().timestamp():
            return None
        return decoded[0]

    def _decode_uncached(self, token: str) -> tuple[Principal, int] | None:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._ALGORITHM],
                issuer=self._issuer,
                # Expiry is checked against our clock, so jobs and tests can move through time.
                options={
                    "require": ["exp", "nmshd_address", "device_id", "client_id"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidTokenError:
            return None
        return _principal_of(claims)


def _principal_of(claims: dict[str, Any]) -> tuple[Principal, int] | None:
    """The principal and expiry of verified claims, or None when a claim has the wrong type or shape.

    The signature proves who made the token, not that it is well-formed: a claim that is not what
    the backbone issues must not reach a query.
    """
    expires_at = claims["exp"]
    address, device_id, client_id = claims["nmshd_address"], claims["device_id"], claims["client_id"]
    username = claims.get("name", "")
    if type(expires_at) is not int or not all(
        isinstance(value, str) for value in (address, device_id, client_id, username)
    ):
        return None
    if not is_valid_address(address) or not is_valid_id(device_id, "DVC") or not client_id:
        return None
    return Principal(address=address, device_id=device_id, username=username, client_id=client_id), expires_at


def load_or_create_signing_key(path: Path) -> bytes:
    """Read the development signing key, creating it once; every worker and node shares it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        candidate.write_bytes(secrets.token_bytes(32))
        candidate.chmod(0o600)
        try:
            # link() refuses to overwrite, so concurrent starters agree on the first key written.
            os.link(candidate, path)
        except FileExistsError:
            pass
        finally:
            candidate.unlink()
    return path.read_bytes()
