"""Announcements: created by operators, read by identities in their language."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from falcon import testing

from backbone.platform.encoding import format_datetime
from backbone.wiring import Services
from tests.helpers.admin import AdminClient
from tests.helpers.api import assert_error, onboard
from tests.integration.test_admin_api import events_named

TEXTS = [
    {"language": "en", "title": "Maintenance", "body": "Tonight"},
    {"language": "de", "title": "Wartung", "body": "Heute Nacht"},
]


def announce(admin: AdminClient, **fields: Any) -> dict[str, Any]:
    result = admin.post("/api/v1/Announcements", json={"severity": "High", "texts": TEXTS, **fields})
    assert result.status_code == 201, result.text
    announcement: dict[str, Any] = result.json["result"]
    return announcement


def test_an_announcement_reaches_every_identity_in_its_language(
    admin: AdminClient, api: testing.TestClient, services: Services
) -> None:
    expires_at = format_datetime(services.clock.now() + timedelta(days=2))
    actions = [{"displayName": {"en": "Read more", "de": "Mehr"}, "link": "https://example.org"}]
    created = announce(admin, expiresAt=expires_at, actions=actions)
    assert created["id"].startswith("ANC")
    assert created["severity"] == "High"
    assert created["isSilent"] is False
    assert created["recipients"] == []
    assert created["actions"] == actions
    account = onboard(api)
    german = account.get("/api/v2/Announcements", query_string="language=de")
    assert german.status_code == 200, german.text
    assert german.json["result"] == [
        {
            "id": created["id"],
            "createdAt": created["createdAt"],
            "expiresAt": expires_at,
            "severity": "High",
            "title": "Wartung",
            "body": "Heute Nacht",
            "actions": [{"displayName": "Mehr", "link": "https://example.org"}],
            "iqlQuery": None,
        }
    ]
    french = account.get("/api/v2/Announcements", query_string="language=fr").json["result"][0]
    assert (french["title"], french["actions"][0]["displayName"]) == ("Maintenance", "Read more")
    assert account.get("/api/v2/Announcements").json["result"][0]["title"] == "Maintenance"
    payload = events_named(services, "AnnouncementCreated")[0]
    assert payload["Id"] == created["id"]
    assert payload["Severity"] == "High"
    assert {"Language": "en", "Title": "Maintenance", "Body": "Tonight"} in payload["Texts"]


def test_an_announcement_to_recipients_is_seen_only_by_them(
    admin: AdminClient, api: testing.TestClient
) -> None:
    alice, bob = onboard(api), onboard(api)
    announce(admin, recipients=[alice.address])
    assert len(alice.get("/api/v2/Announcements", query_string="language=en").json["result"]) == 1
    assert bob.get("/api/v2/Announcements", query_string="language=en").json["result"] == []


def test_expired_announcements_are_still_shown(
    admin: AdminClient, api: testing.TestClient, services: Services
) -> None:
    announce(admin, expiresAt=format_datetime(services.clock.now() + timedelta(minutes=1)))
    services.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    account = onboard(api)
    assert len(account.get("/api/v2/Announcements", query_string="language=en").json["result"]) == 1


def test_operators_list_get_and_delete_announcements(admin: AdminClient, api: testing.TestClient) -> None:
    created = announce(admin, isSilent=True, iqlQuery="StreetAddress.city=Berlin")
    assert [item["id"] for item in admin.get("/api/v1/Announcements").json["result"]] == [created["id"]]
    assert admin.get(f"/api/v1/Announcements/{created['id']}").json["result"] == created
    assert admin.delete(f"/api/v1/Announcements/{created['id']}").status_code == 204
    assert_error(admin.get(f"/api/v1/Announcements/{created['id']}"), 404, "error.platform.recordNotFound")
    assert_error(admin.delete(f"/api/v1/Announcements/{created['id']}"), 404, "error.platform.recordNotFound")
    assert onboard(api).get("/api/v2/Announcements", query_string="language=en").json["result"] == []


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        (
            {"texts": [{"language": "de", "title": "t", "body": "b"}]},
            "error.platform.validation.invalidPropertyValue",
        ),
        (
            {"texts": [*TEXTS, {"language": "xx", "title": "t", "body": "b"}]},
            "error.platform.validation.invalidAnnouncementLanguage",
        ),
        ({"iqlQuery": "a=b"}, "error.platform.validation.nonSilentAnnouncementCannotHaveIqlQuery"),
        (
            {"isSilent": True, "iqlQuery": "x" * 1001},
            "error.platform.validation.invalidIqlQueryLengthForAnnouncement",
        ),
        ({"expiresAt": "2000-01-01T00:00:00Z"}, "error.platform.validation.invalidPropertyValue"),
        ({"recipients": ["nobody"]}, "error.platform.validation.invalidPropertyValue"),
        ({"severity": "Apocalyptic"}, "error.platform.inputCannotBeParsed"),
        (
            {"actions": [{"displayName": {"de": "Nur Deutsch"}, "link": "x"}]},
            "error.platform.validation.invalidPropertyValue",
        ),
        ({"actions": [{"displayName": "plain", "link": "x"}]}, "error.platform.inputCannotBeParsed"),
    ],
)
def test_announcement_validation(admin: AdminClient, fields: dict[str, Any], code: str) -> None:
    body = {"severity": "High", "texts": TEXTS, **fields}
    assert_error(admin.post("/api/v1/Announcements", json=body), 400, code)
    assert admin.get("/api/v1/Announcements").json["result"] == []


def test_an_unknown_language_is_refused_on_read(api: testing.TestClient) -> None:
    account = onboard(api)
    assert_error(
        account.get("/api/v2/Announcements", query_string="language=xyz"),
        400,
        "error.platform.validation.invalidAnnouncementLanguage",
    )
