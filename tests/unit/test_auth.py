"""Password hashes in ASP.NET Identity's format, and bearer tokens checked against the clock."""

from __future__ import annotations

import base64
import struct
from datetime import timedelta

import jwt

from backbone.platform.auth import PasswordHasher, Principal, TokenIssuer
from backbone.platform.clock import ManualClock

PRINCIPAL = Principal(
    "did:e:localhost:dids:76a33ea3665eef489c70bb", "DVCaaaaaaaaaaaaaaaaa", "USRaaaaaaaaaaaaaaaaa", "test"
)


def test_a_hash_carries_its_parameters_and_verifies_after_the_cost_changed() -> None:
    stored = PasswordHasher(iterations=1_500).hash("pässword!")
    marker, prf, iterations, salt_length = struct.unpack(">BIII", base64.b64decode(stored)[:13])
    assert (marker, prf, iterations, salt_length) == (1, 2, 1_500, 16)
    assert PasswordHasher(iterations=9_999).verify("pässword!", stored)
    assert not PasswordHasher(iterations=1_500).verify("password!", stored)


def test_equal_passwords_get_different_salts() -> None:
    hasher = PasswordHasher(iterations=1_000)
    assert hasher.hash("same") != hasher.hash("same")


def test_garbage_hashes_never_verify() -> None:
    hasher = PasswordHasher(iterations=1_000)
    assert not hasher.verify("x", "not base64 at all")
    assert not hasher.verify("x", base64.b64encode(b"\x00" * 40).decode())


def test_tokens_map_back_to_the_principal_until_they_expire() -> None:
    clock = ManualClock()
    issuer = TokenIssuer(b"k" * 32, lifetime_s=300, clock=clock)
    token = issuer.issue(PRINCIPAL)
    assert token.expires_in_s == 300
    assert issuer.verify(token.access_token) == PRINCIPAL
    clock.advance(timedelta(seconds=299))
    assert issuer.verify(token.access_token) == PRINCIPAL
    clock.advance(timedelta(seconds=1))
    assert issuer.verify(token.access_token) is None


def test_tokens_signed_with_another_key_or_altered_are_refused() -> None:
    clock = ManualClock()
    token = TokenIssuer(b"k" * 32, 300, clock).issue(PRINCIPAL).access_token
    assert TokenIssuer(b"x" * 32, 300, clock).verify(token) is None
    header, payload, signature = token.split(".")
    assert TokenIssuer(b"k" * 32, 300, clock).verify(f"{header}.{payload}x.{signature}") is None
    assert TokenIssuer(b"k" * 32, 300, clock).verify("garbage") is None


def test_an_unmatchable_hash_has_the_configured_cost_and_matches_nothing() -> None:
    hasher = PasswordHasher(iterations=1_234)
    stored = hasher.unmatchable_hash()
    marker, prf, iterations, salt_length = struct.unpack(">BIII", base64.b64decode(stored)[:13])
    assert (marker, prf, iterations, salt_length) == (1, 2, 1_234, 16)
    assert len(base64.b64decode(stored)) == len(base64.b64decode(hasher.hash("x")))
    assert not hasher.verify("", stored)
    assert not hasher.verify("x", stored)
    assert hasher.unmatchable_hash() != stored


def test_a_signed_token_whose_claims_are_not_what_the_backbone_issues_is_refused() -> None:
    clock = ManualClock()
    issuer = TokenIssuer(b"k" * 32, 300, clock)
    good = jwt.decode(issuer.issue(PRINCIPAL).access_token, options={"verify_signature": False})
    for claims in ({"nmshd_address": [PRINCIPAL.address]}, {"device_id": None}, {"exp": True}, {"name": 5}):
        forged = jwt.encode({**good, **claims}, b"k" * 32, algorithm="HS256")
        assert issuer.verify(forged) is None, claims
