"""Identity cryptography of the enmeshed protocol: Ed25519 signed challenges and DID addresses."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from backbone.platform.encoding import b64decode_lenient

MAX_ADDRESS_LENGTH = 80
_ADDRESS_PATTERN = re.compile(r"^(did:e:((?:[a-z0-9-]+\.)*[a-z]{2,}):dids:[0-9a-f]{20})([0-9a-f]{2})$")


class MalformedKeyMaterial(ValueError):
    """A public key or signature is not the JSON object the client library produces."""


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise MalformedKeyMaterial(f"{what} is not UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise MalformedKeyMaterial(f"{what} is not a JSON object")
    return {key.lower(): item for key, item in value.items()}


def raw_public_key(identity_public_key: bytes) -> bytes:
    """Extract the raw 32-byte key from `{"pub": "<b64url>", "alg": n}` (the client's serialisation)."""
    fields = _json_object(identity_public_key, "identityPublicKey")
    try:
        raw = b64decode_lenient(fields["pub"])
    except (KeyError, ValueError):
        raise MalformedKeyMaterial("identityPublicKey has no base64 'pub'") from None
    if len(raw) != 32:
        raise MalformedKeyMaterial("identityPublicKey is not a 32-byte Ed25519 key")
    return raw


def raw_signature(signature: bytes) -> bytes:
    """Extract the raw signature from `{"sig": "<b64url>", "alg": n}`."""
    fields = _json_object(signature, "signature")
    try:
        return b64decode_lenient(fields["sig"])
    except (KeyError, ValueError):
        raise MalformedKeyMaterial("signature has no base64 'sig'") from None


def signature_is_valid(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Verify an Ed25519 signature; the original verifies Ed25519 whatever `alg` says."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def derive_address(public_key: bytes, did_domain: str) -> str:
    """Compute `did:e:<domain>:dids:<20 hex><2 hex checksum>` from a raw public key."""
    key_hash = hashlib.sha256(hashlib.sha512(public_key).digest()).digest()[:10].hex()
    main = f"did:e:{did_domain}:dids:{key_hash}"
    checksum = hashlib.sha256(main.encode("ascii")).digest()[:1].hex()
    return (main + checksum).lower()


def is_valid_address(value: object) -> bool:
    """Check the shape and the checksum of an identity address."""
    if not isinstance(value, str) or len(value) > MAX_ADDRESS_LENGTH:
        return False
    match = _ADDRESS_PATTERN.match(value)
    if match is None:
        return False
    return hashlib.sha256(match.group(1).encode("ascii")).digest()[:1].hex() == match.group(3)
