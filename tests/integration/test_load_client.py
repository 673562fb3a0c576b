"""The load client against `backbone serve` over a real socket: every flow the scenarios use."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.client import NO_NEW_EVENTS, ApiError, ConsumerApiClient, IdentitySession, modification
from tests.helpers.server import running_backbone

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsumerApiClient]:
    directory: Path = tmp_path_factory.mktemp("client")
    environment = {
        "BACKBONE_VAR_DIR": str(directory / "var"),
        "BACKBONE_PASSWORD_HASH_ITERATIONS": "1000",
        "BACKBONE_DID_DOMAIN": "loadtest.example.org",
    }
    with running_backbone(environment, log_path=directory / "server.log") as url:
        yield ConsumerApiClient(url, did_domain="loadtest.example.org")


@pytest.fixture
def pair(api: ConsumerApiClient) -> tuple[IdentitySession, IdentitySession]:
    """An app identity and a connector identity with an active relationship."""
    app = api.onboard("app-password!")
    connector = api.onboard("connector-password!")
    template = connector.create_template(b"t" * 8000)
    relationship = app.create_relationship(template["id"])
    connector.accept_relationship(relationship["id"])
    app.relationship_id = relationship["id"]  # type: ignore[attr-defined]
    return app, connector


def test_onboarding_uses_the_landscape_domain_and_creates_the_datawallet(api: ConsumerApiClient) -> None:
    device = api.onboard("a-password!")
    assert device.address.startswith("did:e:loadtest.example.org:dids:")
    assert device.key is not None
    assert device.address == device.key.address("loadtest.example.org")
    assert device.datawallet() == {"version": 1}
    second = device.add_device("another-password!")
    assert second.identity()["address"] == device.address
    second.change_password("a-third-password!")
    assert api.token(second.username, "a-third-password!")


def test_relationship_life_cycle_walks_every_step(pair: tuple[IdentitySession, IdentitySession]) -> None:
    app, connector = pair
    relationship_id = app.relationship_id  # type: ignore[attr-defined]
    assert connector.terminate_relationship(relationship_id)["status"] == "Terminated"
    app.request_reactivation(relationship_id)
    connector.reject_reactivation(relationship_id)
    app.request_reactivation(relationship_id)
    app.revoke_reactivation(relationship_id)
    connector.request_reactivation(relationship_id)
    assert app.accept_reactivation(relationship_id)["status"] == "Active"
    app.terminate_relationship(relationship_id)
    assert app.decompose_relationship(relationship_id)["status"] == "DeletionProposed"
    assert connector.decompose_relationship(relationship_id)["status"] == "ReadyForDeletion"

    template = connector.create_template()
    rejected = app.create_relationship(template["id"])
    assert connector.reject_relationship(rejected["id"])["status"] == "Rejected"
    revoked = app.create_relationship(template["id"])
    assert app.revoke_relationship(revoked["id"])["status"] == "Revoked"
    assert app.can_create_relationship(connector.address)["canCreate"] is True


def test_an_expected_business_error_is_still_raised(pair: tuple[IdentitySession, IdentitySession]) -> None:
    app, _ = pair
    code = "error.platform.validation.relationship.relationshipIsNotInCorrectStatus"
    with pytest.raises(ApiError) as raised:
        app.accept_relationship(app.relationship_id, expected_errors=(code,))  # type: ignore[attr-defined]
    assert raised.value.status == 400


def test_messages_templates_tokens_and_files(pair: tuple[IdentitySession, IdentitySession]) -> None:
    app, connector = pair
    file = app.upload_file(b"\x00\x01 encrypted bytes")
    sent = [connector.send_message([app.address], b"m%d" % i)["id"] for i in range(3)]
    sent.append(app.send_message([connector.address], b"reply", attachments=[file["id"]])["id"])
    assert sorted(message["id"] for message in app.list_messages()) == sorted(sent)
    assert app.get_message(sent[-1])["attachments"] == [{"id": file["id"]}]
    assert app.download_file(file["id"]) == b"\x00\x01 encrypted bytes"
    assert connector.file_metadata(file["id"])["id"] == file["id"]

    templates = [connector.create_template(b"x")["id"] for _ in range(3)]
    assert {template["id"] for template in connector.list_templates(templates)} == set(templates)
    assert app.get_template(templates[0])["id"] == templates[0]

    token = app.create_token(b"token content", password=b"secret")
    assert connector.get_token(token["id"], password=b"secret")["id"] == token["id"]
    assert [item["id"] for item in app.list_tokens([token["id"]])] == [token["id"]]


def test_datawallet_paging_and_sync_runs(pair: tuple[IdentitySession, IdentitySession]) -> None:
    app, connector = pair
    pushed = app.push_modifications(None, [modification(f"object-{i}") for i in range(250)])
    assert pushed["newIndex"] == 249
    app.push_modifications(249, [modification("object-250", payload=b"300 bytes" * 30)])
    everything = app.datawallet_modifications()
    assert [item["index"] for item in everything] == list(range(251))
    assert len(app.datawallet_modifications(local_index=200)) == 50

    connector.send_message([app.address], b"an event for the app")
    first = app.sync_external_events(error_code_for=lambda event: "error.loadtest.simulated")
    assert first.status == "Created"
    assert first.failed_event_ids
    synced = app.sync_until_no_new_events()
    assert synced >= len(first.failed_event_ids)  # reported errors come back
    assert app.start_sync_run()["status"] == NO_NEW_EVENTS
    connector.sync_until_no_new_events()
    challenge = connector.new_challenge()
    assert connector.get_challenge(challenge["id"])["createdBy"] == connector.address
    assert connector.register_push().startswith("DPI")
    connector.unregister_push()


def test_inside_locust_requests_are_reported_under_route_templates(api: ConsumerApiClient) -> None:
    # Locust patches the standard library with gevent on import, so it runs in its own process.
    probe = subprocess.run(
        [sys.executable, "-m", "tests.helpers.locust_client_probe", api.base_url, api.did_domain],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    reported = [tuple(item) for item in json.loads(probe.stdout)]
    names = {name for name, _ in reported}
    assert {
        "/connect/token",
        "/api/v2/Identities",
        "/api/v2/RelationshipTemplates",
        "/api/v2/Relationships/{id}/Accept",
        "/api/v2/Messages/{id}",
    } <= names
    assert not any("MSG" in name or "REL" in name for name in names)
    accepts = [failure for name, failure in reported if name == "/api/v2/Relationships/{id}/Accept"]
    assert accepts == [None, None]  # the second answer was an expected business error
    messages = [failure for name, failure in reported if name == "/api/v2/Messages/{id}"]
    assert messages[0] is None
    assert "HTTP 404 error.platform.recordNotFound" in messages[1]
