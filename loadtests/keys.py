"""Identity keys as the official client makes them: Ed25519, serialised as base64url JSON objects."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from backbone.platform.crypto import derive_address
from backbone.platform.encoding import b64url

# @nmshd/crypto's enum values: CryptoSignatureAlgorithm.ECDSA_ED25519 and CryptoHashAlgorithm.SHA512.
_ALG_ED25519 = 3
_ALG_SHA512 = 2


def _compact_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class IdentityKey:
    """An identity's signing key and the encodings the backbone expects of it."""

    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> IdentityKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> IdentityKey:
        """Derive the key from a 32-byte seed (deterministic data sets, test vectors)."""
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def public_raw(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def identity_public_key(self) -> str:
        """The `identityPublicKey` field: base64url of `{"pub","alg","@type"}`."""
        document = {"pub": b64url(self.public_raw), "alg": _ALG_ED25519, "@type": "CryptoSignaturePublicKey"}
        return b64url(_compact_json(document))

    def address(self, did_domain: str) -> str:
        return derive_address(self.public_raw, did_domain)

    def sign(self, text: str) -> str:
        """A `signature` field: base64url of `{"sig","alg","@type"}` over the UTF-8 bytes of `text`."""
        signature = self.private_key.sign(text.encode("utf-8"))
        return b64url(
            _compact_json({"sig": b64url(signature), "alg": _ALG_SHA512, "@type": "CryptoSignature"})
        )


def challenge_text(challenge: dict[str, Any], challenge_type: str = "Identity") -> str:
    """Serialise a challenge the way the client signs it: sorted keys, compact JSON."""
    document = {"expiresAt": challenge["expiresAt"], "id": challenge["id"], "type": challenge_type}
    if challenge.get("createdBy"):
        document["createdBy"] = challenge["createdBy"]
        document["createdByDevice"] = challenge["createdByDevice"]
    return json.dumps(document, separators=(",", ":"), sort_keys=True)
