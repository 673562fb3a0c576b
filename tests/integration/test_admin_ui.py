"""The Admin UI through HTTP (Falcon's test client): its protection, and each page's work.

The protection tests read the UI's routes from the app, as `test_admin_protection.py` does for
the API, so a page added later is held to the same refusals.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from falcon import testing

from backbone.admin_api import create_admin_app
from backbone.admin_ui.routes import UI_ROUTES
from backbone.admin_ui.security import SESSION_COOKIE, SIGN_IN_COOKIE
from backbone.modules.tiers.model import QUEUED_FOR_DELETION_TIER_ID
from backbone.platform.openapi import responders
from backbone.wiring import Services, build_services
from tests.helpers.admin import AdminClient
from tests.helpers.admin_ui import Browser, alert, notice
from tests.helpers.api import onboard
from tests.helpers.services import ADMIN_API_KEY, settings_for_tests
from tests.integration.test_admin_protection import fingerprint

QFD = QUEUED_FOR_DELETION_TIER_ID
SAMPLE_VALUES = {
    "name": "ui.css",
    "clientId": "test",
    "tierId": "TIR00000000000000001",
    "quotaId": "TQDaaaaaaaaaaaaaaaaa",
    "address": "did:e:localhost:dids:0000000000000000000000",
    "id": "ANCaaaaaaaaaaaaaaaaa",
}
# Pages that need no session, and why.
WITHOUT_SESSION = {
    ("GET", "/"): "leads to the UI",
    ("GET", "/ui/sign-in"): "the sign-in form",
    ("POST", "/ui/sign-in"): "takes the key (its own anti-forgery cookie guards it)",
    ("GET", "/ui/static/{name}"): "style sheet, script and icon: nothing of the backbone's data",
}
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def concrete(template: str) -> str:
    path = template
    for name, value in SAMPLE_VALUES.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"add a sample value for {template}"
    return path


def ui_routes(app: object) -> list[tuple[str, str]]:
    found = sorted(
        (method.upper(), template)
        for template, method, _ in responders(app._router)  # type: ignore[attr-defined]
        if template in UI_ROUTES
    )
    assert {template for _, template in found} == set(UI_ROUTES)
    return found


@pytest.fixture
def ui(services: Services) -> testing.TestClient:
    return testing.TestClient(create_admin_app(services))


@pytest.fixture
def browser(ui: testing.TestClient) -> Browser:
    signed_in = Browser(ui)
    assert signed_in.sign_in().status_code == 303
    return signed_in


def assert_security_headers(result: testing.Result) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert (result.headers.get(name) or "").lower() == value.lower(), (name, result.headers.get(name))


# --- protection ------------------------------------------------------------------------------


def test_without_a_session_every_page_leads_to_the_sign_in_and_changes_nothing(
    services: Services, ui: testing.TestClient, browser: Browser
) -> None:
    before = fingerprint(services)
    anonymous = Browser(ui)
    anonymous.get("/ui/sign-in")
    checked = 0
    for method, template in ui_routes(ui.app):
        if (method, template) in WITHOUT_SESSION:
            continue
        # Even with a valid form token of someone else's session.
        fields = [("xsrf_token", browser.token), ("name", "A new tier"), ("defaultTier", "Basic")]
        result = ui.simulate_request(
            method,
            concrete(template),
            body="&".join(f"{key}={value}" for key, value in fields),
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-API-KEY": ADMIN_API_KEY},
        )
        assert result.status_code == 303, f"{method} {template}: {result.status}"
        assert result.headers["location"] == "/ui/sign-in"
        assert_security_headers(result)
        checked += 1
    assert checked >= 18
    assert fingerprint(services) == before


def test_forms_without_their_anti_forgery_token_are_refused_and_change_nothing(
    services: Services, ui: testing.TestClient, browser: Browser
) -> None:
    other = Browser(ui)
    other.sign_in()
    before = fingerprint(services)
    unsafe = [(m, t) for m, t in ui_routes(ui.app) if m == "POST" and t != "/ui/sign-in"]
    assert len(unsafe) >= 12
    for _, template in unsafe:
        for name, token in (
            ("none", None),
            ("empty", ""),
            ("another session's", other.token),
            ("forged", "A" * 43),
        ):
            fields = [("name", "A new tier"), ("defaultTier", "Basic"), ("days", "1")]
            if token is not None:
                fields.insert(0, ("xsrf_token", token))
            result = browser.post(concrete(template), fields, token=False)
            assert result.status_code == 400, f"{template} ({name}): {result.status}"
            assert alert(result) == (
                "The form's anti-forgery token is missing or invalid, so nothing was changed. Open the "
                "page again and send the form from there.",
                "error.platform.validation.invalidAntiforgeryToken",
            )
            assert_security_headers(result)
    assert fingerprint(services) == before


def test_the_sign_in_form_needs_its_own_cookie_and_token(ui: testing.TestClient) -> None:
    browser = Browser(ui)
    browser.get("/ui/sign-in")
    without_cookie = Browser(ui)
    without_cookie.token = browser.token
    assert without_cookie.post("/ui/sign-in", {"api_key": ADMIN_API_KEY}).status_code == 400
    assert browser.post("/ui/sign-in", {"api_key": ADMIN_API_KEY}, token=False).status_code == 400
    assert SESSION_COOKIE not in browser.cookies
    assert browser.post("/ui/sign-in", {"api_key": ADMIN_API_KEY}).status_code == 303
    assert SESSION_COOKIE in browser.cookies
    assert SIGN_IN_COOKIE not in browser.cookies


def test_every_ui_answer_carries_the_security_headers(ui: testing.TestClient, browser: Browser) -> None:
    for path in ("/", "/ui/", "/ui/clients", "/ui/static/ui.css", "/ui/no-such-page", "/ui/clients/nobody"):
        assert_security_headers(browser.get(path))
    assert_security_headers(Browser(ui).get("/ui/sign-in"))
    assert browser.get("/ui/no-such-page").status_code == 404
    assert browser.get("/ui/static/other.js").status_code == 404
    # The API's answers keep their own caching rules.
    assert "content-security-policy" not in ui.simulate_get("/health").headers


def test_the_session_cookie_is_http_only_strict_and_expires(
    services: Services, ui: testing.TestClient
) -> None:
    browser = Browser(ui)
    browser.get("/ui/sign-in")
    result = browser.post("/ui/sign-in", {"api_key": ADMIN_API_KEY})
    cookie = result.cookies[SESSION_COOKIE]
    assert cookie.http_only
    assert cookie.same_site == "Strict"
    assert cookie.path == "/ui"
    assert cookie.max_age == services.settings.admin_ui_session_lifetime_s
    assert not cookie.secure  # plain http here; https requests get Secure
    assert ADMIN_API_KEY not in cookie.value


def test_an_expired_session_leads_to_the_sign_in_and_its_forms_change_nothing(
    services: Services, browser: Browser
) -> None:
    assert browser.get("/ui/tiers").status_code == 200
    services.clock.advance(timedelta(seconds=services.settings.admin_ui_session_lifetime_s - 1))
    assert browser.get("/ui/tiers").status_code == 200
    services.clock.advance(timedelta(seconds=1))
    before = fingerprint(services)
    refused = browser.post("/ui/tiers", {"name": "Too late"})
    assert refused.status_code == 303
    assert refused.headers["location"] == "/ui/sign-in?notice=expired"
    assert fingerprint(services) == before
    assert SESSION_COOKIE not in browser.cookies
    assert notice(browser.get("/ui/sign-in?notice=expired")) == "Your session has expired; sign in again."


@pytest.mark.parametrize(
    "value",
    [
        "not-a-token",
        # A bearer token of the Consumer API is signed with another key.
        "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJiYWNrYm9uZS1hZG1pbi11aSIsImV4cCI6OTk5OTk5OTk5OX0.c2lnbmF0dXJl",
    ],
)
def test_a_forged_session_cookie_is_no_session(ui: testing.TestClient, value: str) -> None:
    result = ui.simulate_get("/ui/clients", headers={"Cookie": f"{SESSION_COOKIE}={value}"})
    assert result.status_code == 303
    assert result.headers["location"] == "/ui/sign-in"


def test_a_session_ends_when_the_api_key_changes(services: Services, browser: Browser) -> None:
    rotated = build_services(
        settings_for_tests(
            services.settings.database_url, services.settings.var_dir, admin_api_key="new-key"
        ),
        db=services.db,
        clock=services.clock,
    )
    other = Browser(testing.TestClient(create_admin_app(rotated)))
    other.cookies = dict(browser.cookies)
    assert other.get("/ui/clients").status_code == 303
    # Another worker with the same settings accepts it.
    same = build_services(services.settings, db=services.db, clock=services.clock)
    twin = Browser(testing.TestClient(create_admin_app(same)))
    twin.cookies = dict(browser.cookies)
    assert twin.get("/ui/clients").status_code == 200


def test_wrong_keys_are_refused_and_an_address_that_keeps_trying_waits(
    services: Services, ui: testing.TestClient
) -> None:
    browser = Browser(ui)
    browser.get("/ui/sign-in")
    limit = services.settings.admin_ui_max_failed_sign_ins
    for _ in range(limit):
        wrong = browser.post("/ui/sign-in", {"api_key": "a-wrong-key"})
        assert wrong.status_code == 401
        assert alert(wrong) == ("The API key is not valid.", "error.platform.unauthorized")
        assert SESSION_COOKIE not in browser.cookies
    locked = browser.post("/ui/sign-in", {"api_key": ADMIN_API_KEY})
    assert locked.status_code == 429
    lockout = services.settings.admin_ui_lockout_s
    assert alert(locked) == (
        f"Too many wrong keys came from your address; try again in {lockout} s.",
        "error.platform.adminUi.tooManyFailedSignIns",
    )
    assert SESSION_COOKIE not in browser.cookies
    services.clock.advance(timedelta(seconds=lockout))
    assert browser.post("/ui/sign-in", {"api_key": ADMIN_API_KEY}).status_code == 303
    # A right key starts the count again.
    browser = Browser(ui)
    browser.get("/ui/sign-in")
    for _ in range(limit - 1):
        assert browser.post("/ui/sign-in", {"api_key": "wrong"}).status_code == 401
    assert browser.post("/ui/sign-in", {"api_key": ADMIN_API_KEY}).status_code == 303
    browser = Browser(ui)
    browser.get("/ui/sign-in")
    assert browser.post("/ui/sign-in", {"api_key": "wrong"}).status_code == 401


def test_signing_out_forgets_the_session(browser: Browser) -> None:
    result = browser.post("/ui/sign-out")
    assert result.status_code == 303
    assert result.headers["location"] == "/ui/sign-in?notice=signed-out"
    assert SESSION_COOKIE not in browser.cookies
    assert browser.get("/ui/clients").status_code == 303
    assert notice(browser.get("/ui/sign-in?notice=signed-out")) == "You are signed out."


def test_in_development_mode_without_a_key_any_key_signs_in_and_every_page_says_so(
    services: Services,
) -> None:
    open_services = build_services(
        settings_for_tests(services.settings.database_url, services.settings.var_dir, admin_api_key=""),
        db=services.db,
    )
    browser = Browser(testing.TestClient(create_admin_app(open_services)))
    assert "any key signs" in browser.get("/ui/sign-in").text
    assert browser.post("/ui/sign-in", {"api_key": "whatever"}).status_code == 303
    page = browser.get("/ui/")
    assert page.status_code == 200
    assert "BACKBONE_ADMIN_API_KEY</code> is empty" in page.text
    assert (
        "any key signs" not in Browser(testing.TestClient(create_admin_app(services))).get("/ui/sign-in").text
    )


def test_the_root_leads_to_the_ui_and_the_openapi_document_lists_no_page(admin: AdminClient) -> None:
    root = admin.api.simulate_get("/")
    assert root.status_code == 303
    assert root.headers["location"] == "/ui/"
    document = admin.api.simulate_get("/docs/v1/openapi.json").json
    assert not [path for path in document["paths"] if path == "/" or path.startswith("/ui")]


# --- the pages' work -------------------------------------------------------------------------


def test_the_overview_counts_what_there_is(api: testing.TestClient, browser: Browser) -> None:
    onboard(api)
    onboard(api)
    page = browser.get("/ui/").text
    counts = dict(re.findall(r'id="count-(\w+)">(\d+)<', page))
    assert counts == {"identities": "2", "clients": "1", "tiers": "2", "announcements": "0"}
    assert 'id="deletion-Active">0<' in page


def test_a_client_is_created_with_its_secret_shown_once_changed_and_deleted(
    services: Services, browser: Browser
) -> None:
    basic = next(o.tier.id for o in services.tiers.overviews() if o.tier.name == "Basic")
    created = browser.post(
        "/ui/clients", {"clientId": "ui-client", "displayName": "From the UI", "defaultTier": basic}
    )
    assert created.status_code == 200, alert(created)
    secret = re.search(r'id="client-secret">([^<]+)<', created.text).group(1)  # type: ignore[union-attr]
    assert services.clients.authenticate("ui-client", secret) is not None
    # Shown once: the client's page and the list never show it again.
    assert secret not in browser.get("/ui/clients/ui-client").text
    assert secret not in browser.get("/ui/clients").text

    saved = browser.post("/ui/clients/ui-client", {"defaultTier": basic, "maxIdentities": "7"})
    assert saved.status_code == 303
    assert notice(browser.get(saved.headers["location"])) == "The client was saved."
    assert services.clients.overview("ui-client").client.max_identities == 7

    renewed = browser.post("/ui/clients/ui-client/secret")
    new_secret = re.search(r'id="client-secret">([^<]+)<', renewed.text).group(1)  # type: ignore[union-attr]
    assert new_secret != secret
    assert services.clients.authenticate("ui-client", secret) is None
    assert services.clients.authenticate("ui-client", new_secret) is not None

    deleted = browser.post("/ui/clients/ui-client/delete")
    assert deleted.headers["location"] == "/ui/clients?notice=client-deleted"
    assert services.clients.find("ui-client") is None
    assert browser.get("/ui/clients/ui-client").status_code == 404


@pytest.mark.parametrize(
    ("ui_path", "ui_fields", "api_path", "api_body"),
    [
        ("/ui/clients", {"defaultTier": "Basic", "maxIdentities": "many"}, "/api/v1/Clients",
         {"defaultTier": "Basic", "maxIdentities": "many"}),
        ("/ui/clients", {"clientId": "test", "defaultTier": "Basic"}, "/api/v1/Clients",
         {"clientId": "test", "defaultTier": "Basic"}),
        ("/ui/clients", {"defaultTier": "No such tier"}, "/api/v1/Clients", {"defaultTier": "No such tier"}),
        ("/ui/tiers", {"name": "ab"}, "/api/v1/Tiers", {"name": "ab"}),
        ("/ui/tiers", {"name": "Basic"}, "/api/v1/Tiers", {"name": "Basic"}),
        (f"/ui/tiers/{QFD}/quotas", {"metricKey": "NumberOfFiles", "max": "1", "period": "Day"},
         f"/api/v1/Tiers/{QFD}/Quotas", {"metricKey": "NumberOfFiles", "max": 1, "period": "Day"}),
        ("/ui/announcements", {"severity": "High", "language": "de", "title": "Nur", "body": "Deutsch"},
         "/api/v1/Announcements",
         {"severity": "High", "texts": [{"language": "de", "title": "Nur", "body": "Deutsch"}]}),
        ("/ui/announcements", {"severity": "Loud", "language": "en", "title": "t", "body": "b"},
         "/api/v1/Announcements",
         {"severity": "Loud", "texts": [{"language": "en", "title": "t", "body": "b"}]}),
    ],
)  # fmt: skip
def test_the_ui_refuses_what_the_api_refuses_with_the_same_words(
    services: Services,
    admin: AdminClient,
    browser: Browser,
    ui_path: str,
    ui_fields: dict[str, str],
    api_path: str,
    api_body: dict[str, object],
) -> None:
    before = fingerprint(services)
    from_ui = browser.post(ui_path, ui_fields)
    from_api = admin.post(api_path, json=api_body)
    assert from_api.status_code >= 400
    assert from_ui.status_code == from_api.status_code
    assert alert(from_ui) == (from_api.json["error"]["message"], from_api.json["error"]["code"])
    assert fingerprint(services) == before


def test_a_tier_is_created_with_a_quota_that_is_removed_and_the_tier_deleted(
    services: Services, browser: Browser
) -> None:
    created = browser.post("/ui/tiers", {"name": "Silver"})
    assert created.status_code == 303
    tier_id = re.fullmatch(r"/ui/tiers/(TIR\w+)\?notice=tier-created", created.headers["location"]).group(1)  # type: ignore[union-attr]
    added = browser.post(
        f"/ui/tiers/{tier_id}/quotas", {"metricKey": "NumberOfSentMessages", "max": "5", "period": "Day"}
    )
    assert added.status_code == 303
    page = browser.get(added.headers["location"])
    assert notice(page) == "The quota was added."
    [quota] = services.quotas.tier_quotas(tier_id)
    assert (quota.metric.name, quota.max, quota.period.name) == ("NumberOfSentMessages", 5, "Day")
    assert "Number of Sent Messages" in page.text

    duplicate = browser.post(
        f"/ui/tiers/{tier_id}/quotas", {"metricKey": "NumberOfSentMessages", "max": "9", "period": "Day"}
    )
    assert alert(duplicate) is not None
    assert alert(duplicate)[1] == "error.platform.quotas.duplicateQuota"  # type: ignore[index]

    removed = browser.post(f"/ui/tiers/{tier_id}/quotas/{quota.id}/delete")
    assert removed.status_code == 303
    assert services.quotas.tier_quotas(tier_id) == []
    deleted = browser.post(f"/ui/tiers/{tier_id}/delete")
    assert deleted.headers["location"] == "/ui/tiers?notice=tier-deleted"
    assert not services.tiers.exists(tier_id)
    assert browser.get(f"/ui/tiers/{tier_id}").status_code == 404
    assert browser.get("/ui/tiers/not-a-tier").status_code == 400


def test_identities_are_filtered_ordered_and_paged(
    services: Services, api: testing.TestClient, browser: Browser
) -> None:
    accounts = []
    for _ in range(22):
        accounts.append(onboard(api, with_datawallet=False))
        services.clock.advance(timedelta(seconds=1))
    first = browser.get("/ui/identities")
    assert 'id="identity-count">22 identities<' in first.text
    shown = re.findall(r'<td class="address"><a href="[^"]+">([^<]+)</a>', first.text)
    assert shown == [account.address for account in reversed(accounts)][:20]
    assert "Page 1 of 2" in first.text
    second = browser.get("/ui/identities?sort=createdAt&order=asc&page=2")
    assert re.findall(r'<td class="address"><a href="[^"]+">([^<]+)</a>', second.text) == [
        accounts[20].address,
        accounts[21].address,
    ]
    one = browser.get(f"/ui/identities?address={accounts[3].address}")
    assert 'id="identity-count">1 identity<' in one.text
    assert browser.get("/ui/identities?client=nobody").text.count('class="address"') == 0
    bad = browser.get("/ui/identities?created_after=yesterday")
    assert bad.status_code == 400
    assert alert(bad) == (
        "$filter: 'yesterday' is not a date and time (like 2025-01-31T12:00:00Z).",
        "error.platform.validation.invalidODataQuery",
    )


def test_an_identity_shows_its_devices_quotas_and_processes_and_its_deletion_starts(
    services: Services, api: testing.TestClient, browser: Browser
) -> None:
    alice = onboard(api)
    page = browser.get(f"/ui/identities/{alice.address}")
    assert page.status_code == 200
    assert alice.device_id in page.text
    assert "No deletion process." in page.text
    started = browser.post(f"/ui/identities/{alice.address}/deletion-processes", {"days": "3"})
    assert started.status_code == 303
    page = browser.get(started.headers["location"])
    assert notice(page) == "The identity's deletion process was started."
    assert 'id="identity-status">ToBeDeleted<' in page.text
    assert "StartedBySupport" in page.text
    assert "by an operator" in page.text
    [(process, _)] = services.deletion_processes.processes_of_identity(alice.address)
    assert process.grace_period_ends_at == process.created_at + timedelta(days=3)
    again = browser.post(f"/ui/identities/{alice.address}/deletion-processes", {"days": "3"})
    assert again.status_code == 400
    assert alert(again) == (
        "Only one active deletion process is allowed per identity.",
        "error.platform.validation.device.onlyOneActiveDeletionProcessAllowed",
    )
    unknown = "did:e:localhost:dids:0000000000000000000000"
    assert browser.get(f"/ui/identities/{unknown}").status_code == 404


def test_an_announcement_is_published_in_two_languages_and_deleted(
    services: Services, api: testing.TestClient, browser: Browser
) -> None:
    reader = onboard(api)
    published = browser.post(
        "/ui/announcements",
        [
            ("severity", "High"),
            ("silent", "on"),
            ("expiresAt", "2099-01-31T12:00"),
            ("language", "en"), ("title", "Maintenance"), ("body", "Tonight"),
            ("language", "de"), ("title", "Wartung"), ("body", "Heute Nacht"),
            ("language", ""), ("title", ""), ("body", ""),
            ("recipients", f"{reader.address}\n"),
        ],
    )  # fmt: skip
    assert published.status_code == 303, alert(published)
    [announcement] = services.announcements.all()
    assert announcement.severity.name == "High"
    assert announcement.is_silent
    assert announcement.recipients == (reader.address,)
    assert {text.language: text.title for text in announcement.texts} == {
        "en": "Maintenance",
        "de": "Wartung",
    }
    assert announcement.expires_at is not None
    assert announcement.expires_at.year == 2099
    seen = reader.get("/api/v2/Announcements", query_string="language=de").json["result"]
    assert [(item["id"], item["title"]) for item in seen] == [(announcement.id, "Wartung")]

    page = browser.get("/ui/announcements")
    assert "Maintenance" in page.text
    assert "Heute Nacht" in page.text
    deleted = browser.post(f"/ui/announcements/{announcement.id}/delete")
    assert deleted.headers["location"] == "/ui/announcements?notice=announcement-deleted"
    assert services.announcements.all() == []
