"""Base64 in both alphabets and the backbone's datetime format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from backbone.platform.encoding import (
    b64decode_lenient,
    b64url,
    camel_case_key,
    format_datetime,
    parse_datetime,
)


@pytest.mark.parametrize("text", ["-_-_", "+/+/", "-_8", "-_8=", "+/8="])
def test_base64_decodes_both_alphabets_with_or_without_padding(text: str) -> None:
    assert b64decode_lenient(text)[:2] == b"\xfb\xff"


@pytest.mark.parametrize("text", ["a", "a==b", "abc$", "ab cd!"])
def test_malformed_base64_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="base64"):
        b64decode_lenient(text)


def test_bytes_are_written_url_safe_without_padding() -> None:
    assert b64url(b"\xfb\xff") == "-_8"
    assert b64url(b"") == ""


def test_datetimes_are_written_in_utc_with_milliseconds() -> None:
    value = datetime(2026, 3, 1, 11, 15, 30, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert format_datetime(value) == "2026-03-01T10:15:30.123Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T10:15:30.123Z", datetime(2026, 3, 1, 10, 15, 30, 123000, tzinfo=UTC)),
        ("2026-03-01T11:15:30+01:00", datetime(2026, 3, 1, 10, 15, 30, tzinfo=UTC)),
        ("2026-03-01T10:15:30.1234567Z", datetime(2026, 3, 1, 10, 15, 30, 123456, tzinfo=UTC)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T10:15:30", datetime(2026, 3, 1, 10, 15, 30, tzinfo=UTC)),
    ],
)
def test_datetimes_are_read_in_iso_forms(text: str, expected: datetime) -> None:
    assert parse_datetime(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-03-01T25:00:00Z",
        "",
        "9999-12-31T23:00:00-05:00",
        "0001-01-01T00:00:00+05:00",
    ],
)
def test_malformed_datetimes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message names the value, checked elsewhere
        parse_datetime(text)


@pytest.mark.parametrize(
    ("key", "written"),
    [
        ("feature", "feature"),
        ("Feature", "feature"),
        ("FeatureFlag", "featureFlag"),
        ("URL", "url"),
        ("URLValue", "urlValue"),
        ("ABCdef", "abCdef"),
        ("A", "a"),
        ("AB CD", "ab CD"),
        ("1Feature", "1Feature"),
        ("", ""),
        ("Ärger", "ärger"),
    ],
)
def test_dictionary_keys_are_written_in_the_originals_camel_case(key: str, written: str) -> None:
    assert camel_case_key(key) == written
