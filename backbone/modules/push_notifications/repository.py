"""Tables and queries of devices' push registrations.

The table was created by the devices branch of the migrations (`devices_0002`), before push
notifications became a module of their own; revisions are never rewritten, so it stays there.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backbone.modules.push_notifications.model import PnsRegistration, PushEnvironment, PushPlatform
from backbone.platform.db import Database, UtcDateTime, address_column, id_column, metadata

# The original's PnsRegistrations: one row per device, the handle stored as "<platform>|<handle>".
pns_registrations = sa.Table(
    "pns_registrations",
    metadata,
    id_column("device_id", primary_key=True),
    address_column("identity_address", nullable=False),
    id_column("device_push_identifier", nullable=False, unique=True),
    # The original's column holds 200 characters but its validator admits 500; keep what we accept.
    sa.Column("handle", sa.String(510), nullable=False),
    sa.Column("app_id", sa.Text, nullable=False),
    sa.Column("environment", sa.SmallInteger, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_pns_registrations_identity_address", "identity_address"),
)


def _registration(row: Any) -> PnsRegistration:
    platform, _, handle = row.handle.partition("|")
    return PnsRegistration(
        device_id=row.device_id,
        identity_address=row.identity_address,
        device_push_identifier=row.device_push_identifier,
        platform=PushPlatform(platform),
        handle=handle,
        app_id=row.app_id,
        environment=PushEnvironment(row.environment),
        updated_at=row.updated_at,
    )


# Who to push to: asked after every external event and datawallet change, so built once.
_REGISTRATIONS_OF_IDENTITY = (
    sa.select(pns_registrations)
    .where(pns_registrations.c.identity_address == sa.bindparam("address"))
    .order_by(pns_registrations.c.device_id)
)
_REGISTRATIONS_OF_IDENTITY_EXCEPT = (
    sa.select(pns_registrations)
    .where(
        pns_registrations.c.identity_address == sa.bindparam("address"),
        pns_registrations.c.device_id != sa.bindparam("except_device"),
    )
    .order_by(pns_registrations.c.device_id)
)


class PnsRegistrationRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert(self, connection: Connection, registration: PnsRegistration) -> PnsRegistration:
        """Insert or update the device's registration; an existing push identifier is kept."""
        values = {
            "device_id": registration.device_id,
            "identity_address": registration.identity_address,
            "device_push_identifier": registration.device_push_identifier,
            "handle": f"{registration.platform.value}|{registration.handle}",
            "app_id": registration.app_id,
            "environment": registration.environment.value,
            "updated_at": registration.updated_at,
        }
        statement = self._db.upsert(pns_registrations, ["device_id"], values, keep=["device_push_identifier"])
        row = connection.execute(statement.returning(*pns_registrations.c)).one()
        return _registration(row)

    def delete(self, connection: Connection, device_id: str) -> None:
        connection.execute(pns_registrations.delete().where(pns_registrations.c.device_id == device_id))

    def delete_with_handle(
        self, connection: Connection, device_ids: list[str], platform: PushPlatform, handle: str
    ) -> list[str]:
        """Delete these devices' registrations that still have this handle (a device that has
        registered anew meanwhile keeps its new one); return the devices whose were deleted."""
        statement = (
            pns_registrations.delete()
            .where(
                pns_registrations.c.device_id.in_(device_ids),
                pns_registrations.c.handle == f"{platform.value}|{handle}",
            )
            .returning(pns_registrations.c.device_id)
        )
        return list(connection.execute(statement).scalars())

    def delete_with_handle_only(self, connection: Connection, platform: PushPlatform, handle: str) -> int:
        """Delete every registration with this handle, whatever its device."""
        statement = pns_registrations.delete().where(
            pns_registrations.c.handle == f"{platform.value}|{handle}"
        )
        return int(connection.execute(statement).rowcount or 0)

    def delete_of_identity(self, connection: Connection, address: str) -> None:
        connection.execute(pns_registrations.delete().where(pns_registrations.c.identity_address == address))

    def of_identity(
        self, connection: Connection, address: str, except_device: str | None = None
    ) -> list[PnsRegistration]:
        if except_device is None:
            rows = connection.execute(_REGISTRATIONS_OF_IDENTITY, {"address": address})
        else:
            parameters = {"address": address, "except_device": except_device}
            rows = connection.execute(_REGISTRATIONS_OF_IDENTITY_EXCEPT, parameters)
        return [_registration(row) for row in rows]

    def every(self, connection: Connection) -> list[PnsRegistration]:
        statement = sa.select(pns_registrations).order_by(pns_registrations.c.device_id)
        return [_registration(row) for row in connection.execute(statement)]
