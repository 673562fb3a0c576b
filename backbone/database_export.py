"""`backbone database export`: the operators' view of the database as CSV files in one zip.

Metadata and counts only, read through the modules' services: identities, devices,
relationships and messages (sizes, times, statuses, clients), never contents, keys, usernames or
password hashes. Without `--sensitive` the ids and addresses are left empty, as in the original's
export, whose file and column names `devices.csv`, `relationships.csv` and `messages.csv` keep.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import Enum
from pathlib import Path

from backbone.platform.encoding import format_datetime
from backbone.wiring import Services

Cell = str | int | bool | datetime | Enum | None

IDENTITY_COLUMNS = (
    "IdentityAddress",
    "CreatedAt",
    "IdentityVersion",
    "Tier",
    "IdentityStatus",
    "DeletionGracePeriodEndsAt",
    "NumberOfDevices",
    "ClientName",
    "ClientId",
)
DEVICE_COLUMNS = (
    "DeviceId",
    "LastLoginAt",
    "IdentityAddress",
    "CreatedAt",
    "Tier",
    "IdentityStatus",
    "IdentityDeletionGracePeriodEndsAt",
    "Platform",
    "ClientName",
    "ClientId",
)
RELATIONSHIP_COLUMNS = (
    "RelationshipId",
    "TemplateId",
    "From",
    "To",
    "CreatedAt",
    "Status",
    "FromHasDecomposed",
    "ToHasDecomposed",
    "TemplateCreatedAt",
    "FromClientName",
    "FromClientId",
    "ToClientName",
    "ToClientId",
)
MESSAGE_COLUMNS = (
    "MessageId",
    "CreatedBy",
    "RelationshipId",
    "Recipient",
    "CreatedAt",
    "ReceivedAt",
    "CipherSize",
    "CreatedByClientName",
    "CreatedByClientId",
    "RecipientClientName",
    "RecipientClientId",
)


def default_export_path(var_dir: Path, now: datetime) -> Path:
    return var_dir / "export" / f"export-{now:%Y%m%d_%H%M%S}.zip"


def export_database(services: Services, path: Path, *, include_sensitive: bool = False) -> dict[str, int]:
    """Write the zip (to a temporary name first, so no half-written export is ever left under
    `path`); return how many rows each table had."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            counts = _write_tables(archive, services, include_sensitive)
            _write(archive, "counts.csv", ("Table", "Count"), counts.items())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return counts


def _write_tables(archive: zipfile.ZipFile, services: Services, sensitive: bool) -> dict[str, int]:
    def hide(value: str | None) -> str | None:
        return value if sensitive else ""

    client_names = {
        overview.client.client_id: overview.client.display_name for overview in services.clients.overviews()
    }
    identities = list(services.identities.export_identities())
    client_of = {identity.address: identity.client_id for identity in identities}

    def client(address: str | None) -> tuple[str | None, str | None]:
        client_id = client_of.get(address or "")
        return client_names.get(client_id or ""), client_id

    counts = {"Identities": 0, "Devices": 0, "Relationships": 0, "Messages": 0}
    counts["Identities"] = _write(
        archive,
        "identities.csv",
        IDENTITY_COLUMNS,
        (
            (
                hide(i.address),
                i.created_at,
                i.identity_version,
                i.tier_name,
                i.status,
                i.deletion_grace_period_ends_at,
                i.number_of_devices,
                *client(i.address),
            )
            for i in identities
        ),
    )
    platforms = services.push.platforms_by_device()
    counts["Devices"] = _write(
        archive,
        "devices.csv",
        DEVICE_COLUMNS,
        (
            (
                hide(d.id),
                d.last_login_at,
                hide(d.identity_address),
                d.created_at,
                d.tier_name,
                d.identity_status,
                d.identity_deletion_grace_period_ends_at,
                platforms.get(d.id),
                client_names.get(d.client_id or ""),
                d.client_id,
            )
            for d in services.identities.export_devices()
        ),
    )
    counts["Relationships"] = _write(
        archive,
        "relationships.csv",
        RELATIONSHIP_COLUMNS,
        (
            (
                hide(r.id),
                hide(r.relationship_template_id),
                hide(r.from_address),
                hide(r.to_address),
                r.created_at,
                r.status,
                r.from_has_decomposed,
                r.to_has_decomposed,
                r.template_created_at,
                *client(r.from_address),
                *client(r.to_address),
            )
            for r in services.relationships.export_relationships()
        ),
    )
    counts["Messages"] = _write(
        archive,
        "messages.csv",
        MESSAGE_COLUMNS,
        (
            (
                hide(m.id),
                hide(m.created_by),
                hide(m.relationship_id),
                hide(m.recipient),
                m.created_at,
                m.received_at,
                m.cipher_size,
                *client(m.created_by),
                *client(m.recipient),
            )
            for m in services.messages.export_messages()
        ),
    )
    return counts


def _write(archive: zipfile.ZipFile, name: str, header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> int:
    """Stream the rows into one CSV member of the archive; return how many there were."""
    written = 0
    with archive.open(name, "w") as member, io.TextIOWrapper(member, encoding="utf-8", newline="") as text:
        writer = csv.writer(text)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(value) for value in row])
            written += 1
    return written


def _cell(value: Cell) -> str | int:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, bool):
        # The original writes .NET's booleans.
        return "True" if value else "False"
    return value
