"""The operators' database export on both databases: counts and metadata as CSV, no contents or
secrets, ids and addresses only when asked for."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import timedelta
from pathlib import Path

from falcon import testing

from backbone.database_export import (
    DEVICE_COLUMNS,
    IDENTITY_COLUMNS,
    MESSAGE_COLUMNS,
    RELATIONSHIP_COLUMNS,
    export_database,
)
from backbone.platform.clock import ManualClock
from backbone.platform.encoding import format_datetime
from backbone.wiring import Services
from tests.helpers.api import PASSWORD, onboard
from tests.helpers.peers import BODY, act, relate, send_message


def read_export(path: Path) -> dict[str, list[dict[str, str]]]:
    with zipfile.ZipFile(path) as archive:
        return {
            name: list(csv.DictReader(io.TextIOWrapper(archive.open(name), encoding="utf-8")))
            for name in archive.namelist()
        }


def test_the_export_lists_metadata_and_counts(
    api: testing.TestClient, services: Services, clock: ManualClock, tmp_path: Path
) -> None:
    def later() -> None:
        clock.advance(timedelta(seconds=1))  # the export lists oldest first

    accounts = []
    for _ in range(3):
        accounts.append(onboard(api))
        later()
    alice, bob, carol = accounts
    registered = alice.put(
        "/api/v2/Devices/Self/PushNotifications",
        json={"platform": "fcm", "handle": "a-handle-of-fcm", "appId": "eu.enmeshed.app"},
    )
    assert registered.status_code == 200, registered.text
    active = relate(alice, bob)
    later()
    ended = relate(alice, carol, accept=False)
    act(alice, ended, "Reject")
    message = send_message(alice, bob).json["result"]
    bob.get(f"/api/v2/Messages/{message['id']}")  # received

    counts = export_database(services, tmp_path / "export.zip")
    assert counts == {"Identities": 3, "Devices": 3, "Relationships": 2, "Messages": 1}
    tables = read_export(tmp_path / "export.zip")
    assert sorted(tables) == [
        "counts.csv",
        "devices.csv",
        "identities.csv",
        "messages.csv",
        "relationships.csv",
    ]
    assert tables["counts.csv"] == [
        {"Table": "Identities", "Count": "3"},
        {"Table": "Devices", "Count": "3"},
        {"Table": "Relationships", "Count": "2"},
        {"Table": "Messages", "Count": "1"},
    ]
    for name, columns in (
        ("identities.csv", IDENTITY_COLUMNS),
        ("devices.csv", DEVICE_COLUMNS),
        ("relationships.csv", RELATIONSHIP_COLUMNS),
        ("messages.csv", MESSAGE_COLUMNS),
    ):
        assert tables[name], name
        assert tuple(tables[name][0]) == columns, name

    devices = tables["devices.csv"]
    assert [d["Platform"] for d in devices] == ["fcm", "", ""]
    assert {(d["Tier"], d["IdentityStatus"], d["ClientId"], d["ClientName"]) for d in devices} == {
        ("Basic", "Active", "test", "test")
    }
    assert all(d["DeviceId"] == "" and d["IdentityAddress"] == "" for d in devices), "not sensitive"
    assert all(d["LastLoginAt"] for d in devices)
    assert [i["NumberOfDevices"] for i in tables["identities.csv"]] == ["1", "1", "1"]
    relationships = tables["relationships.csv"]
    assert [(r["Status"], r["FromHasDecomposed"]) for r in relationships] == [
        ("Active", "False"),
        ("Rejected", "False"),
    ]
    assert all(r["TemplateCreatedAt"] and r["FromClientId"] == "test" for r in relationships)
    (exported,) = tables["messages.csv"]
    assert exported["CreatedAt"] == message["createdAt"]
    assert exported["ReceivedAt"] != ""
    assert int(exported["CipherSize"]) == len(b'{"cph":"message body","alg":3}')

    # No contents, no secrets, no usernames, and no ids or addresses unless asked for.
    text = "\n".join(str(rows) for rows in tables.values())
    for secret in (BODY, PASSWORD, alice.username, alice.address, active, message["id"]):
        assert secret not in text

    export_database(services, tmp_path / "sensitive.zip", include_sensitive=True)
    sensitive = read_export(tmp_path / "sensitive.zip")
    assert [d["IdentityAddress"] for d in sensitive["devices.csv"]] == [
        alice.address,
        bob.address,
        carol.address,
    ]
    assert sensitive["relationships.csv"][0]["RelationshipId"] == active
    first = sensitive["messages.csv"][0]
    assert (first["MessageId"], first["Recipient"], first["RelationshipId"]) == (
        message["id"],
        bob.address,
        active,
    )
    assert sensitive["identities.csv"][0]["CreatedAt"] == format_datetime(
        services.identities.get(alice.address).created_at
    )
    text = "\n".join(str(rows) for rows in sensitive.values())
    for secret in (BODY, PASSWORD, alice.username):
        assert secret not in text
