"""Upload files the way the official client does: multipart/form-data with the content first."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Any

from falcon import testing

from backbone.platform.encoding import b64url, format_datetime
from tests.helpers.api import Account

OWNER_SIGNATURE = b64url(b'{"sig":"c2lnbmF0dXJl","alg":2,"@type":"CryptoSignature"}')
ENCRYPTED_PROPERTIES = b64url(b'{"cph":"properties","alg":3,"@type":"CryptoCipher"}')


def multipart(parts: list[tuple[str, bytes | str, str | None]]) -> tuple[bytes, str]:
    """Encode (name, value, filename) parts; return the body and its content type."""
    boundary = "----backbone-test-" + uuid.uuid4().hex
    body = b""
    for name, value, filename in parts:
        data = value.encode("utf-8") if isinstance(value, str) else value
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename:
            body += b"Content-Type: application/octet-stream\r\n"
        body += b"\r\n" + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def file_parts(
    content: bytes, expires_at: datetime, **overrides: Any
) -> list[tuple[str, bytes | str, str | None]]:
    """The client's parts, in its order; an override of None leaves that part out."""
    fields: dict[str, Any] = {
        "cipherHash": b64url(hashlib.sha512(content).digest()),
        "owner": "did:e:localhost:dids:ignored",
        "ownerSignature": OWNER_SIGNATURE,
        "expiresAt": format_datetime(expires_at),
        "encryptedProperties": ENCRYPTED_PROPERTIES,
    }
    fields.update(overrides)
    parts: list[tuple[str, bytes | str, str | None]] = [("content", content, "cipher.bin")]
    parts += [(name, value, None) for name, value in fields.items() if value is not None]
    return parts


def upload(account: Account, content: bytes, now: datetime, **overrides: Any) -> testing.Result:
    body, content_type = multipart(file_parts(content, now + timedelta(days=1), **overrides))
    return account.post("/api/v2/Files", body=body, headers={"Content-Type": content_type})


def upload_file(account: Account, content: bytes, now: datetime, **overrides: Any) -> dict[str, Any]:
    result = upload(account, content, now, **overrides)
    assert result.status_code == 201, result.text
    created: dict[str, Any] = result.json["result"]
    return created
