"""The one-shot jobs (run by cron): housekeeping and the identity-deletion steps.

They use the same services as the APIs; time comes from the services' clock, so tests drive
them through time with a ManualClock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from backbone.wiring import Services

log = logging.getLogger(__name__)

# The original's retention: what expired (or ended) more than this long ago is removed.
RETENTION = timedelta(days=30)
DEFAULT_AUDIT_LOG_RETENTION = timedelta(days=731)
# How long orphan detection waits between listing contents and reading file ids (see FileService).
DEFAULT_ORPHAN_SETTLE_S = 10.0


@dataclass(frozen=True)
class HousekeepingReport:
    """How many records of each kind one housekeeping run removed."""

    challenges: int
    files: int
    orphaned_contents: int
    tokens: int
    relationship_templates: int
    relationships: int
    sync_runs: int
    announcements: int
    cancelled_deletion_processes: int
    deletion_audit_entries: int
    published_events: int


def housekeeping(
    services: Services,
    *,
    audit_log_retention: timedelta = DEFAULT_AUDIT_LOG_RETENTION,
    orphan_settle_s: float = DEFAULT_ORPHAN_SETTLE_S,
) -> HousekeepingReport:
    """Remove what the retention rules let go."""
    now = services.clock.now()
    before = now - RETENTION
    report = HousekeepingReport(
        challenges=services.challenges.delete_expired(before),
        files=services.files.delete_expired(before),
        orphaned_contents=services.files.delete_orphaned_contents(orphan_settle_s),
        tokens=services.tokens.delete_expired(before),
        relationship_templates=services.relationships.delete_expired_unused_templates(before),
        relationships=services.relationships.delete_ready_for_deletion(before),
        sync_runs=services.synchronization.delete_finalized_runs(before),
        announcements=services.announcements.delete_expired(before),
        cancelled_deletion_processes=services.deletion_jobs.delete_cancelled_processes(before),
        deletion_audit_entries=services.deletion_jobs.delete_audit_entries(now - audit_log_retention),
        published_events=services.outbox.delete_published(before),
    )
    log.info("housekeeping removed %s", report)
    return report


def send_grace_period_reminders(services: Services) -> int:
    """Remind identities whose deletion grace period ends soon."""
    sent = services.deletion_jobs.send_reminders()
    log.info("sent %d grace-period reminder(s)", sent)
    return sent


def delete_identities(services: Services) -> int:
    """Delete the identities whose grace period is over; a failure is recorded and retried next run."""
    deleted = 0
    for process in services.deletion_jobs.start_due_deletions():
        address = process.identity_address
        try:
            # IdentityDeleted is out: peers get PeerDeleted, relationships and messages are
            # decomposed and anonymised by their modules' handlers. Each module's data goes here.
            services.challenges.delete_of_identity(address)
            services.files.delete_of_identity(address)
            services.tokens.delete_of_identity(address)
            services.synchronization.delete_of_identity(address)
            services.announcements.forget_recipient(address)
            services.feature_flags.delete_of_identity(address)
            services.deletion_jobs.finish(process)
            services.quotas.forget_identity(address)
        except Exception as error:
            log.exception("deleting identity of deletion process %s failed; retried next run", process.id)
            services.deletion_jobs.record_error(process, error)
            continue
        deleted += 1
    log.info("deleted %d identit(y/ies)", deleted)
    return deleted
