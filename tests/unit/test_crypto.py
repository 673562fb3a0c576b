"""Identity keys, signed challenges and addresses against the official client's test vector."""

from __future__ import annotations

import pytest

from backbone.platform.crypto import (
    MalformedKeyMaterial,
    derive_address,
    is_valid_address,
    raw_public_key,
    raw_signature,
    signature_is_valid,
)
from backbone.platform.encoding import b64decode_lenient
from loadtests.keys import IdentityKey

# Made with @nmshd/transport 7.0.0 from the Ed25519 seed 00 01 02 ... 1f.
SEED = bytes(range(32))
RAW_PUBLIC_KEY = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
IDENTITY_PUBLIC_KEY = (
    "eyJwdWIiOiJBNkVIdl9QT0VMNGRjTjBZNTB2QW1XZmsxakNicFExZkhkeUdaQkpWTWJnIiwiYWxnIjozLCJAdHlwZSI6"
    "IkNyeXB0b1NpZ25hdHVyZVB1YmxpY0tleSJ9"
)
CHALLENGE = '{"expiresAt":"2030-01-01T00:00:00.000Z","id":"CHLAAAAAAAAAAAAAAAAA","type":"Identity"}'
SIGNATURE = (
    "eyJzaWciOiJFOGs0VWtJODdvWVVQM0dHYjVJZUt1VnptMzQ1LUJ6cUxuR0tCczdlRWpwOHZEcmdlZmdwUU50dy14aWU2Vm5q"
    "a1ZXZEhCSjQ2YjZ1R3F1NDRVU3FEdyIsImFsZyI6MiwiQHR5cGUiOiJDcnlwdG9TaWduYXR1cmUifQ"
)


def test_key_from_the_test_vector_seed_matches_the_official_client() -> None:
    key = IdentityKey.from_seed(SEED)
    assert key.public_raw.hex() == RAW_PUBLIC_KEY
    assert key.identity_public_key() == IDENTITY_PUBLIC_KEY
    assert key.sign(CHALLENGE) == SIGNATURE


@pytest.mark.parametrize(
    ("domain", "address"),
    [
        ("localhost", "did:e:localhost:dids:76a33ea3665eef489c70bb"),
        ("enmeshed.example.org", "did:e:enmeshed.example.org:dids:76a33ea3665eef489c7035"),
    ],
)
def test_address_derivation_matches_the_official_client(domain: str, address: str) -> None:
    public_key = raw_public_key(b64decode_lenient(IDENTITY_PUBLIC_KEY))
    assert derive_address(public_key, domain) == address
    assert is_valid_address(address)


def test_the_signature_of_the_test_vector_verifies_and_a_changed_challenge_does_not() -> None:
    public_key = raw_public_key(b64decode_lenient(IDENTITY_PUBLIC_KEY))
    signature = raw_signature(b64decode_lenient(SIGNATURE))
    assert signature_is_valid(public_key, signature, CHALLENGE.encode())
    assert not signature_is_valid(public_key, signature, CHALLENGE.replace("2030", "2031").encode())


@pytest.mark.parametrize(
    "address",
    [
        "did:e:localhost:dids:76a33ea3665eef489c70bc",  # wrong checksum
        "did:e:127.0.0.1:dids:76a33ea3665eef489c70bb",  # an IP address is not a domain
        "did:e:localhost:dids:76A33EA3665EEF489C70BB",  # upper case
        "id1abc",
        "",
    ],
)
def test_invalid_addresses_are_recognised(address: str) -> None:
    assert not is_valid_address(address)


@pytest.mark.parametrize(
    "document",
    [b"not json", b"[1,2]", b'{"alg":3}', b'{"pub":"AAAA","alg":3}', b'{"pub":"!!!","alg":3}'],
)
def test_malformed_public_keys_are_refused(document: bytes) -> None:
    with pytest.raises(MalformedKeyMaterial):
        raw_public_key(document)
