"""Wire encodings shared by every route: base64 flavours and the backbone's datetime format."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime

_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")
_ISO_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?"
    r"(Z|z|[+-]\d{2}:?\d{2})?$"
)


def b64url(data: bytes) -> str:
    """Encode bytes the way the backbone writes them: URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode_lenient(text: str) -> bytes:
    """Decode base64 in either alphabet, with or without padding; raise ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError("not a string")
    stripped = text.strip().rstrip("=").translate(_URLSAFE_TO_STANDARD)
    if len(stripped) % 4 == 1:
        raise ValueError("invalid base64 length")
    try:
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except binascii.Error as error:
        raise ValueError(f"invalid base64: {error}") from None


def format_datetime(value: datetime) -> str:
    """Render a datetime as the backbone does: UTC, `YYYY-MM-DDTHH:MM:SS.fffZ`."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    if value.year >= 1000:
        # Every response carries two of these (timing headers): isoformat is ~3x strftime's speed,
        # and renders the same text from year 1000 on (strftime does not pad smaller years).
        return value.isoformat(timespec="milliseconds")[:23] + "Z"
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_datetime(text: str) -> datetime:
    """Parse an ISO-8601 date or datetime into an aware UTC datetime; naive input counts as UTC."""
    match = _ISO_DATETIME.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"'{text}' is not an ISO-8601 datetime")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    value = datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro
    )
    if zone in (None, "Z", "z"):
        return value.replace(tzinfo=UTC)
    try:
        return datetime.fromisoformat(value.isoformat() + _normalise_offset(zone)).astimezone(UTC)
    except OverflowError:
        # An offset can push the first or last representable day past year 1 or 9999.
        raise ValueError(f"'{text}' is out of the representable range in UTC") from None


def _normalise_offset(zone: str) -> str:
    return zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"


def camel_case_key(key: str) -> str:
    """Write a dictionary key as the original does (System.Text.Json's camel-case policy for keys):
    a leading run of capitals is lowered, except the last one when a lower-case letter follows it
    (`FeatureA` -> `featureA`, `ABCdef` -> `abCdef`, `URL` -> `url`)."""
    if not key or not key[0].isupper():
        return key
    characters = list(key)
    for position, character in enumerate(characters):
        if position == 1 and not character.isupper():
            break
        following = characters[position + 1] if position + 1 < len(characters) else None
        if position > 0 and following is not None and not following.isupper():
            if following == " ":
                characters[position] = character.lower()
            break
        characters[position] = character.lower()
    return "".join(characters)
