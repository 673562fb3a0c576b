"""Housekeeping keeps data bounded: what expired or ended more than 30 days ago goes (with file
contents and contents that lost their metadata); what is younger stays."""

from __future__ import annotations

from datetime import timedelta
from io import BytesIO

import sqlalchemy as sa
from falcon import testing

from backbone import jobs
from backbone.platform.clock import ManualClock
from backbone.platform.encoding import format_datetime
from backbone.wiring import Services
from tests.helpers.api import onboard
from tests.helpers.files import upload_file
from tests.helpers.peers import act, create_template, relate


def count(services: Services, table: str) -> int:
    with services.db.read() as connection:
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_housekeeping_removes_what_ended_more_than_30_days_ago_and_keeps_the_rest(
    stored_api: testing.TestClient, stored_services: Services, clock: ManualClock
) -> None:
    services = stored_services
    owner, peer = onboard(stored_api), onboard(stored_api)
    in_a_day = format_datetime(clock.now() + timedelta(days=1))
    in_a_year = format_datetime(clock.now() + timedelta(days=365))
    short_file = upload_file(owner, b"expires tomorrow", clock.now())["id"]
    long_file = upload_file(owner, b"expires next year", clock.now(), expiresAt=in_a_year)["id"]
    services.blobs.put("FILorphanedcontent01", BytesIO(b"a content whose metadata is gone"))
    for expires_at in (in_a_day, in_a_year):
        assert (
            owner.post("/api/v2/Tokens", json={"content": "AAAA", "expiresAt": expires_at}).status_code == 201
        )
    create_template(owner, expiresAt=in_a_day)  # unused: goes
    relationship_id = relate(owner, peer)  # its template is used: stays
    for side in (owner, peer):
        assert act(side, relationship_id, "Terminate" if side is owner else "Decompose").status_code == 200
    assert act(owner, relationship_id, "Decompose").status_code == 200  # ReadyForDeletion
    started = owner.post("/api/v2/Identities/Self/DeletionProcesses", json={}).json["result"]
    assert owner.put(f"/api/v2/Identities/Self/DeletionProcesses/{started['id']}/Cancel").status_code == 200
    challenges_before = count(services, "challenges")
    assert challenges_before > 0

    clock.advance(timedelta(days=30))  # nothing is older than 30 days yet
    report = jobs.housekeeping(services, orphan_settle_s=0)
    assert report.files == report.tokens == report.relationships == report.cancelled_deletion_processes == 0
    assert report.orphaned_contents == 1
    assert not services.blobs.exists("FILorphanedcontent01")

    clock.advance(timedelta(days=2))
    report = jobs.housekeeping(services, orphan_settle_s=0)
    assert (report.files, report.tokens, report.relationship_templates) == (1, 1, 1)
    assert (report.relationships, report.cancelled_deletion_processes) == (1, 1)
    assert report.challenges == challenges_before
    assert not services.blobs.exists(short_file)
    assert services.blobs.exists(long_file)
    assert services.files.stored_ids() == [long_file]
    assert count(services, "tokens") == 1
    assert count(services, "relationships") == count(services, "relationship_audit_log") == 0
    assert count(services, "identity_deletion_processes") == 0
    assert count(services, "identity_deletion_process_audit_log") == 2  # kept 731 days
    assert count(services, "outbox_events") == 0
