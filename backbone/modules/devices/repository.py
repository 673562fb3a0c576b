"""Tables and queries of identities, devices and OAuth clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backbone.modules.devices import model
from backbone.modules.devices.model import (
    ClientOverview,
    Credentials,
    Device,
    DeviceExport,
    Identity,
    IdentityExport,
    IdentityOverview,
    IdentityStatus,
    OAuthClient,
)
from backbone.modules.tiers.model import Tier
from backbone.platform.db import (
    Page,
    Paged,
    UtcDateTime,
    address_column,
    fetch_page,
    id_column,
    locked,
    metadata,
    violation_raises,
)
from backbone.platform.odata import ODataQuery

oauth_clients = sa.Table(
    "oauth_clients",
    metadata,
    sa.Column("client_id", sa.String(200), primary_key=True),
    sa.Column("display_name", sa.Unicode(200), nullable=False),
    sa.Column("client_secret_hash", sa.String(200), nullable=False),
    id_column("default_tier_id", nullable=False),
    sa.Column("max_identities", sa.Integer),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

identities = sa.Table(
    "identities",
    metadata,
    address_column("address", primary_key=True),
    sa.Column("client_id", sa.String(200)),
    sa.Column("public_key", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("identity_version", sa.SmallInteger, nullable=False),
    id_column("tier_id", nullable=False),
    id_column("tier_id_before_deletion"),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("deletion_grace_period_ends_at", UtcDateTime),
    sa.Index("ix_identities_client_id", "client_id"),
    sa.Index("ix_identities_tier_id", "tier_id"),
)

devices = sa.Table(
    "devices",
    metadata,
    id_column(primary_key=True),
    address_column("identity_address", nullable=False),
    sa.Column("username", sa.String(20), nullable=False),
    # Logins match usernames case-insensitively (ASP.NET Identity's NormalizedUserName).
    sa.Column("normalized_username", sa.String(20), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    id_column("created_by_device", nullable=False),
    sa.Column("communication_language", sa.String(2), nullable=False),
    sa.Column("is_backup_device", sa.Boolean, nullable=False),
    sa.Column("last_login_at", UtcDateTime),
    sa.Column("access_failed_count", sa.Integer, nullable=False),
    sa.Column("lockout_end", UtcDateTime),
    # Deleted devices stay as rows (the original marks them), hidden from every query.
    sa.Column("deleted_at", UtcDateTime),
    id_column("deleted_by_device"),
    sa.Index("ix_devices_identity_address", "identity_address"),
    # At most one backup device per identity, even when two registrations race.
    sa.Index(
        "ix_devices_one_backup_device_per_identity",
        "identity_address",
        unique=True,
        sqlite_where=sa.text("is_backup_device AND deleted_at IS NULL"),
        postgresql_where=sa.text("is_backup_device AND deleted_at IS NULL"),
        mssql_where=sa.text("is_backup_device = 1 AND deleted_at IS NULL"),
    ),
)

_NOT_DELETED = devices.c.deleted_at.is_(None)


def _client(row: Any) -> OAuthClient:
    return OAuthClient(
        row.client_id,
        row.display_name,
        row.client_secret_hash,
        row.default_tier_id,
        row.max_identities,
        row.created_at,
    )


def _identity(row: Any) -> Identity:
    return Identity(
        address=row.address,
        client_id=row.client_id,
        public_key=row.public_key,
        created_at=row.created_at,
        identity_version=row.identity_version,
        tier_id=row.tier_id,
        status=IdentityStatus(row.status),
        deletion_grace_period_ends_at=row.deletion_grace_period_ends_at,
    )


def _device(row: Any) -> Device:
    return Device(
        id=row.id,
        identity_address=row.identity_address,
        username=row.username,
        created_at=row.created_at,
        created_by_device=row.created_by_device,
        communication_language=row.communication_language,
        is_backup_device=row.is_backup_device,
        last_login_at=row.last_login_at,
    )


# Asked before every push (the texts' language): built once.
_LANGUAGES_OF_DEVICES = sa.select(devices.c.id, devices.c.communication_language).where(
    devices.c.id.in_(sa.bindparam("ids", expanding=True))
)
# Ids per statement: well below SQLite's and PostgreSQL's limits on bound parameters.
_IDS_PER_STATEMENT = 500
_IDENTITY_BY_ADDRESS = sa.select(identities).where(identities.c.address == sa.bindparam("address"))
# The columns of the fields operators filter and order the identity list by (`IDENTITY_LIST_FIELDS`).
_IDENTITY_FIELDS: dict[str, Any] = {
    "address": identities.c.address,
    "createdWithClient": identities.c.client_id,
    "tier/id": identities.c.tier_id,
    "createdAt": identities.c.created_at,
}
_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": lambda column, value: column == value,
    "gt": lambda column, value: column > value,
    "lt": lambda column, value: column < value,
}


class ClientRepository:
    def add(self, connection: Connection, client: OAuthClient) -> None:
        with violation_raises(model.client_id_already_exists):
            connection.execute(
                oauth_clients.insert().values(
                    client_id=client.client_id,
                    display_name=client.display_name,
                    client_secret_hash=client.client_secret_hash,
                    default_tier_id=client.default_tier_id,
                    max_identities=client.max_identities,
                    created_at=client.created_at,
                )
            )

    def find(self, connection: Connection, client_id: str) -> OAuthClient | None:
        row = connection.execute(
            sa.select(oauth_clients).where(oauth_clients.c.client_id == client_id)
        ).first()
        return None if row is None else _client(row)

    def count_identities(self, connection: Connection, client_id: str) -> int:
        statement = (
            sa.select(sa.func.count()).select_from(identities).where(identities.c.client_id == client_id)
        )
        return int(connection.execute(statement).scalar_one())

    def overviews(
        self, connection: Connection, tier_of: Callable[[str], Tier], client_id: str | None = None
    ) -> list[ClientOverview]:
        """Clients (or the one client) with their default tier (`tier_of` its id) and number of
        identities."""
        counted = (
            sa.select(identities.c.client_id, sa.func.count().label("number"))
            .where(identities.c.client_id.is_not(None))
            .group_by(identities.c.client_id)
            .subquery()
        )
        statement = (
            sa.select(oauth_clients, sa.func.coalesce(counted.c.number, 0).label("number_of_identities"))
            .outerjoin(counted, counted.c.client_id == oauth_clients.c.client_id)
            .order_by(oauth_clients.c.created_at, oauth_clients.c.client_id)
        )
        if client_id is not None:
            statement = statement.where(oauth_clients.c.client_id == client_id)
        return [
            ClientOverview(_client(row), tier_of(row.default_tier_id), int(row.number_of_identities))
            for row in connection.execute(statement)
        ]

    def update(
        self, connection: Connection, client_id: str, default_tier_id: str, max_identities: int | None
    ) -> None:
        connection.execute(
            oauth_clients.update()
            .where(oauth_clients.c.client_id == client_id)
            .values(default_tier_id=default_tier_id, max_identities=max_identities)
        )

    def set_secret_hash(self, connection: Connection, client_id: str, secret_hash: str) -> None:
        connection.execute(
            oauth_clients.update()
            .where(oauth_clients.c.client_id == client_id)
            .values(client_secret_hash=secret_hash)
        )

    def delete(self, connection: Connection, client_id: str) -> bool:
        return (
            connection.execute(oauth_clients.delete().where(oauth_clients.c.client_id == client_id)).rowcount
            == 1
        )


# The database export reads whole tables; rows come in batches, never all at once.
_EXPORT_BATCH = 1000
_DEVICES_PER_IDENTITY = (
    sa.select(devices.c.identity_address, sa.func.count().label("number_of_devices"))
    .where(_NOT_DELETED)
    .group_by(devices.c.identity_address)
    .subquery()
)
_EXPORT_IDENTITIES = (
    sa.select(
        identities,
        sa.func.coalesce(_DEVICES_PER_IDENTITY.c.number_of_devices, 0).label("number_of_devices"),
    )
    .outerjoin(_DEVICES_PER_IDENTITY, _DEVICES_PER_IDENTITY.c.identity_address == identities.c.address)
    .order_by(identities.c.created_at, identities.c.address)
    .execution_options(yield_per=_EXPORT_BATCH)
)
_EXPORT_DEVICES = (
    sa.select(
        devices.c.id,
        devices.c.identity_address,
        devices.c.created_at,
        devices.c.last_login_at,
        identities.c.client_id,
        identities.c.status,
        identities.c.deletion_grace_period_ends_at,
        identities.c.tier_id,
    )
    .join(identities, identities.c.address == devices.c.identity_address)
    .where(_NOT_DELETED)
    .order_by(devices.c.created_at, devices.c.id)
    .execution_options(yield_per=_EXPORT_BATCH)
)


class IdentityRepository:
    # The exports name tiers: `tier_of` gives the tier of an id (the tiers module's data).
    def export_identities(
        self, connection: Connection, tier_of: Callable[[str], Tier]
    ) -> Iterator[IdentityExport]:
        for row in connection.execute(_EXPORT_IDENTITIES):
            yield IdentityExport(
                address=row.address,
                client_id=row.client_id,
                created_at=row.created_at,
                identity_version=row.identity_version,
                tier_name=tier_of(row.tier_id).name,
                status=IdentityStatus(row.status),
                deletion_grace_period_ends_at=row.deletion_grace_period_ends_at,
                number_of_devices=int(row.number_of_devices),
            )

    def export_devices(
        self, connection: Connection, tier_of: Callable[[str], Tier]
    ) -> Iterator[DeviceExport]:
        for row in connection.execute(_EXPORT_DEVICES):
            yield DeviceExport(
                id=row.id,
                identity_address=row.identity_address,
                created_at=row.created_at,
                last_login_at=row.last_login_at,
                client_id=row.client_id,
                tier_name=tier_of(row.tier_id).name,
                identity_status=IdentityStatus(row.status),
                identity_deletion_grace_period_ends_at=row.deletion_grace_period_ends_at,
            )

    def count_per_tier(self, connection: Connection) -> dict[str, int]:
        statement = sa.select(identities.c.tier_id, sa.func.count()).group_by(identities.c.tier_id)
        return {tier_id: int(number) for tier_id, number in connection.execute(statement)}

    def what_uses_tier(self, connection: Connection, tier_id: str) -> str | None:
        """Say what still uses the tier (a client's default, an identity), or None."""
        as_default = sa.select(oauth_clients.c.client_id).where(oauth_clients.c.default_tier_id == tier_id)
        if connection.execute(as_default.limit(1)).first() is not None:
            return "it is the default tier of a client."
        assigned = sa.select(identities.c.address).where(identities.c.tier_id == tier_id)
        if connection.execute(assigned.limit(1)).first() is not None:
            return "identities are assigned to it."
        return None

    def addresses_in_tier(self, connection: Connection, tier_id: str) -> list[str]:
        statement = sa.select(identities.c.address).where(identities.c.tier_id == tier_id)
        return list(connection.execute(statement.order_by(identities.c.address)).scalars())

    def add(self, connection: Connection, identity: Identity, device: Device, password_hash: str) -> None:
        # Two onboardings with the same key raced; the loser sees what a later call would.
        with violation_raises(model.address_already_exists):
            connection.execute(
                identities.insert().values(
                    address=identity.address,
                    client_id=identity.client_id,
                    public_key=identity.public_key,
                    created_at=identity.created_at,
                    identity_version=identity.identity_version,
                    tier_id=identity.tier_id,
                    status=identity.status.value,
                    deletion_grace_period_ends_at=identity.deletion_grace_period_ends_at,
                )
            )
            self._insert_device(connection, device, password_hash)

    def add_device(self, connection: Connection, device: Device, password_hash: str) -> None:
        # Only the one-backup-device index can refuse a fresh device: two backup devices raced.
        with violation_raises(model.only_one_backup_device_can_exist):
            self._insert_device(connection, device, password_hash)

    def _insert_device(self, connection: Connection, device: Device, password_hash: str) -> None:
        connection.execute(
            devices.insert().values(
                id=device.id,
                identity_address=device.identity_address,
                username=device.username,
                normalized_username=device.username.upper(),
                password_hash=password_hash,
                created_at=device.created_at,
                created_by_device=device.created_by_device,
                communication_language=device.communication_language,
                is_backup_device=device.is_backup_device,
                last_login_at=device.last_login_at,
                access_failed_count=0,
                lockout_end=None,
            )
        )

    def exists(self, connection: Connection, address: str) -> bool:
        statement = sa.select(identities.c.address).where(identities.c.address == address)
        return connection.execute(statement).first() is not None

    def find(self, connection: Connection, address: str) -> Identity | None:
        row = connection.execute(_IDENTITY_BY_ADDRESS, {"address": address}).first()
        return None if row is None else _identity(row)

    def set_tier(self, connection: Connection, address: str, tier_id: str) -> None:
        connection.execute(identities.update().where(identities.c.address == address).values(tier_id=tier_id))

    def all_devices_of(self, connection: Connection, address: str) -> list[Device]:
        statement = (
            sa.select(devices)
            .where(devices.c.identity_address == address, _NOT_DELETED)
            .order_by(devices.c.created_at, devices.c.id)
        )
        return [_device(row) for row in connection.execute(statement)]

    def overviews(
        self, connection: Connection, query: ODataQuery, tier_of: Callable[[str], Tier]
    ) -> tuple[list[IdentityOverview], int | None]:
        """Identities as the operators' list shows them, filtered, ordered and cut as asked; their
        tiers come from `tier_of`."""
        device_stats = (
            sa.select(
                devices.c.identity_address,
                sa.func.count().label("number_of_devices"),
                sa.func.max(devices.c.last_login_at).label("last_login_at"),
            )
            .where(_NOT_DELETED)
            .group_by(devices.c.identity_address)
            .subquery()
        )
        conditions = [_COMPARISONS[c.operator](_IDENTITY_FIELDS[c.field], c.value) for c in query.filters]
        statement = (
            sa.select(
                identities,
                sa.func.coalesce(device_stats.c.number_of_devices, 0).label("number_of_devices"),
                device_stats.c.last_login_at,
            )
            .outerjoin(device_stats, device_stats.c.identity_address == identities.c.address)
            .where(*conditions)
        )
        order = []
        if query.order_by is not None:
            column = _IDENTITY_FIELDS[query.order_by]
            order.append(column.desc() if query.descending else column.asc())
        # The address is unique: a stable order, so $skip pages never repeat or miss a row.
        order.append(identities.c.address)
        rows = connection.execute(statement.order_by(*order).limit(query.top).offset(query.skip))
        found = [
            IdentityOverview(
                address=row.address,
                created_at=row.created_at,
                last_login_at=row.last_login_at,
                created_with_client=row.client_id,
                identity_version=row.identity_version,
                tier=tier_of(row.tier_id),
                number_of_devices=int(row.number_of_devices),
            )
            for row in rows
        ]
        total = None
        if query.count:
            counted = sa.select(sa.func.count()).select_from(identities).where(*conditions)
            total = int(connection.execute(counted).scalar_one())
        return found, total

    def find_for_update(self, connection: Connection, address: str) -> Identity | None:
        """Read an identity and lock its row until commit (SQLite holds the write lock anyway)."""
        statement = locked(sa.select(identities).where(identities.c.address == address), identities)
        row = connection.execute(statement).first()
        return None if row is None else _identity(row)

    def queue_for_deletion(
        self, connection: Connection, address: str, grace_period_ends_at: datetime, queued_tier_id: str
    ) -> None:
        """Mark the identity ToBeDeleted in the given tier, remembering the tier it leaves."""
        connection.execute(
            identities.update()
            .where(identities.c.address == address)
            .values(
                status=IdentityStatus.ToBeDeleted.value,
                deletion_grace_period_ends_at=grace_period_ends_at,
                tier_id_before_deletion=identities.c.tier_id,
                tier_id=queued_tier_id,
            )
        )

    def restore_after_cancelled_deletion(self, connection: Connection, address: str, tier_id: str) -> None:
        connection.execute(
            identities.update()
            .where(identities.c.address == address)
            .values(
                status=IdentityStatus.Active.value,
                deletion_grace_period_ends_at=None,
                tier_id_before_deletion=None,
                tier_id=tier_id,
            )
        )

    def mark_deleting(self, connection: Connection, address: str) -> None:
        connection.execute(
            identities.update()
            .where(identities.c.address == address)
            .values(status=IdentityStatus.Deleting.value)
        )

    def usernames_of(self, connection: Connection, address: str) -> list[str]:
        """The usernames of all the identity's devices, deleted ones included."""
        statement = sa.select(devices.c.username).where(devices.c.identity_address == address)
        return list(connection.execute(statement).scalars())

    def remove(self, connection: Connection, address: str) -> None:
        connection.execute(devices.delete().where(devices.c.identity_address == address))
        connection.execute(identities.delete().where(identities.c.address == address))

    def tier_before_deletion(self, connection: Connection, address: str) -> str | None:
        statement = sa.select(identities.c.tier_id_before_deletion).where(identities.c.address == address)
        value: str | None = connection.execute(statement).scalar_one_or_none()
        return value

    def find_device(self, connection: Connection, device_id: str) -> Device | None:
        statement = sa.select(devices).where(devices.c.id == device_id, _NOT_DELETED)
        row = connection.execute(statement).first()
        return None if row is None else _device(row)

    def devices_of(
        self, connection: Connection, address: str, device_ids: Sequence[str], page: Page
    ) -> Paged:
        """The identity's devices, oldest first, optionally only the given ids."""
        statement = sa.select(devices).where(devices.c.identity_address == address, _NOT_DELETED)
        if device_ids:
            statement = statement.where(devices.c.id.in_(device_ids))
        paged = fetch_page(connection, statement.order_by(devices.c.created_at, devices.c.id), page)
        return Paged([_device(row) for row in paged.items], paged.page, paged.total_records)

    def has_backup_device(self, connection: Connection, address: str) -> bool:
        statement = sa.select(devices.c.id).where(
            devices.c.identity_address == address, devices.c.is_backup_device, _NOT_DELETED
        )
        return connection.execute(statement.limit(1)).first() is not None

    def password_hash(self, connection: Connection, device_id: str) -> str | None:
        statement = sa.select(devices.c.password_hash).where(devices.c.id == device_id, _NOT_DELETED)
        value: str | None = connection.execute(statement).scalar_one_or_none()
        return value

    def set_password_hash(self, connection: Connection, device_id: str, password_hash: str) -> None:
        connection.execute(
            devices.update().where(devices.c.id == device_id).values(password_hash=password_hash)
        )

    def communication_languages(self, connection: Connection, device_ids: Sequence[str]) -> dict[str, str]:
        languages: dict[str, str] = {}
        for start in range(0, len(device_ids), _IDS_PER_STATEMENT):
            chunk = list(device_ids[start : start + _IDS_PER_STATEMENT])
            for device_id, language in connection.execute(_LANGUAGES_OF_DEVICES, {"ids": chunk}):
                languages[device_id] = language
        return languages

    def set_communication_language(self, connection: Connection, device_id: str, language: str) -> None:
        connection.execute(
            devices.update().where(devices.c.id == device_id).values(communication_language=language)
        )

    def mark_deleted(self, connection: Connection, device_id: str, by_device: str, at: datetime) -> bool:
        """Mark a device deleted unless it has logged in meanwhile; return whether it was marked."""
        statement = (
            devices.update()
            .where(devices.c.id == device_id, _NOT_DELETED, devices.c.last_login_at.is_(None))
            .values(deleted_at=at, deleted_by_device=by_device)
        )
        return connection.execute(statement).rowcount == 1

    def find_by_username(self, connection: Connection, username: str) -> Identity | None:
        """The identity of the device (deleted ones included) with this username."""
        statement = (
            sa.select(identities)
            .join(devices, devices.c.identity_address == identities.c.address)
            .where(devices.c.normalized_username == username.strip().upper())
        )
        row = connection.execute(statement).first()
        return None if row is None else _identity(row)

    def credentials(self, connection: Connection, username: str) -> Credentials | None:
        statement = (
            sa.select(
                devices,
                identities.c.status.label("identity_status"),
                identities.c.deletion_grace_period_ends_at,
            )
            .join(identities, identities.c.address == devices.c.identity_address)
            .where(devices.c.normalized_username == username.strip().upper(), _NOT_DELETED)
        )
        row = connection.execute(statement).first()
        if row is None:
            return None
        return Credentials(
            device=_device(row),
            password_hash=row.password_hash,
            access_failed_count=row.access_failed_count,
            lockout_end=row.lockout_end,
            identity_status=IdentityStatus(row.identity_status),
            deletion_grace_period_ends_at=row.deletion_grace_period_ends_at,
        )

    def start_login_attempt(
        self, connection: Connection, device_id: str, now: datetime, max_attempts: int
    ) -> bool:
        """Count a login attempt before its password is checked; False if it may not be made.

        One statement, so concurrent attempts are counted one by one: once `max_attempts` since
        the last success are counted (checked or in flight), further ones are refused unchecked.
        The first attempt after a lockout ended starts the count afresh.
        """
        lockout_over = devices.c.lockout_end.is_not(None)
        statement = (
            devices.update()
            .where(
                devices.c.id == device_id,
                sa.or_(devices.c.lockout_end.is_(None), devices.c.lockout_end <= now),
                sa.or_(devices.c.access_failed_count < max_attempts, lockout_over),
            )
            .values(
                access_failed_count=sa.case((lockout_over, 1), else_=devices.c.access_failed_count + 1),
                lockout_end=None,
            )
        )
        return bool(connection.execute(statement).rowcount == 1)

    def lock_out(self, connection: Connection, device_id: str, until: datetime, max_attempts: int) -> None:
        """Lock the device unless a successful login reset its count meanwhile."""
        connection.execute(
            devices.update()
            .where(devices.c.id == device_id, devices.c.access_failed_count >= max_attempts)
            .values(access_failed_count=0, lockout_end=until)
        )

    def record_login(self, connection: Connection, device_id: str, at: datetime) -> None:
        connection.execute(
            devices.update()
            .where(devices.c.id == device_id)
            .values(last_login_at=at, access_failed_count=0, lockout_end=None)
        )

    def use_backup_device(self, connection: Connection, device_id: str) -> bool:
        """Turn a backup device into a normal one; return whether this call did it (first login)."""
        statement = (
            devices.update()
            .where(devices.c.id == device_id, devices.c.is_backup_device)
            .values(is_backup_device=False)
        )
        return connection.execute(statement).rowcount == 1
