"""Use cases of identities, devices and OAuth clients."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from backbone.modules.challenges.service import ChallengeService
from backbone.modules.devices import model
from backbone.modules.devices.events import (
    BackupDeviceUsed,
    IdentityCreated,
    TierOfIdentityChanged,
)
from backbone.modules.devices.model import (
    ClientOverview,
    CreatedClient,
    CreatedIdentity,
    Device,
    DeviceExport,
    Identity,
    IdentityDetails,
    IdentityExport,
    IdentityOverview,
    IdentityStatus,
    LoginFailed,
    NewDevice,
    NewIdentity,
    OAuthClient,
)
from backbone.modules.devices.repository import ClientRepository, IdentityRepository
from backbone.modules.tiers.model import QUEUED_FOR_DELETION_TIER_ID
from backbone.modules.tiers.service import TierService
from backbone.platform.auth import IssuedToken, PasswordHasher, Principal, TokenIssuer
from backbone.platform.clock import Clock
from backbone.platform.crypto import MalformedKeyMaterial, derive_address, raw_public_key
from backbone.platform.db import Database, Page, Paged
from backbone.platform.errors import InvalidPropertyValue, NotFound
from backbone.platform.events import Outbox
from backbone.platform.ids import Ids
from backbone.platform.odata import ODataQuery


class ClientService:
    """OAuth clients; secret checks remember recent successes so logins pay one hash, not two."""

    _CACHE_SIZE = 1024

    def __init__(
        self,
        db: Database,
        clients: ClientRepository,
        tiers: TierService,
        hasher: PasswordHasher,
        clock: Clock,
        ids: Ids,
    ) -> None:
        self._db = db
        self._clients = clients
        self._tiers = tiers
        self._hasher = hasher
        self._clock = clock
        self._ids = ids
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def ensure(
        self, client_id: str, client_secret: str, default_tier: str, display_name: str | None = None
    ) -> None:
        """Create the client unless one with this id exists (development seeding)."""
        tier = self._tiers.find_by_name_or_id(default_tier)
        if tier is None:
            raise NotFound("Tier")
        with self._db.transaction() as connection:
            if self._clients.find(connection, client_id) is not None:
                return
            self._clients.add(
                connection,
                OAuthClient(
                    client_id=client_id,
                    display_name=display_name or client_id,
                    client_secret_hash=self._hasher.hash(client_secret),
                    default_tier_id=tier.id,
                    max_identities=None,
                    created_at=self._clock.now(),
                ),
            )

    def authenticate(self, client_id: str, client_secret: str) -> OAuthClient | None:
        """Return the client if the secret matches, else None."""
        with self._db.read() as connection:
            client = self._clients.find(connection, client_id)
        if client is None:
            return None
        # Keyed by the stored hash too, so a changed secret can never hit an old entry.
        key = hmac.new(client.client_secret_hash.encode(), client_secret.encode(), hashlib.sha256).digest()
        with self._lock:
            if key in self._verified:
                self._verified.move_to_end(key)
                return client
        if not self._hasher.verify(client_secret, client.client_secret_hash):
            return None
        with self._lock:
            self._verified[key] = None
            if len(self._verified) > self._CACHE_SIZE:
                self._verified.popitem(last=False)
        return client

    def count_identities(self, client_id: str) -> int:
        with self._db.read() as connection:
            return self._clients.count_identities(connection, client_id)

    def find(self, client_id: str) -> OAuthClient | None:
        with self._db.read() as connection:
            return self._clients.find(connection, client_id)

    def overviews(self) -> list[ClientOverview]:
        """Every client with its default tier and number of identities."""
        with self._db.read() as connection:
            return self._clients.overviews(connection, self._tiers.lookup())

    def overview(self, client_id: str) -> ClientOverview:
        with self._db.read() as connection:
            found = self._clients.overviews(connection, self._tiers.lookup(), client_id)
        if not found:
            raise NotFound("Client")
        return found[0]

    def create(
        self,
        *,
        default_tier: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        display_name: str | None = None,
        max_identities: int | None = None,
    ) -> CreatedClient:
        """Register an OAuth client; id and secret are generated when not given."""
        if client_id is not None and not 1 <= len(client_id) <= model.MAX_CLIENT_ID_LENGTH:
            raise InvalidPropertyValue(
                f"'clientId' must be between 1 and {model.MAX_CLIENT_ID_LENGTH} characters long."
            )
        if max_identities is not None and max_identities < 0:
            raise InvalidPropertyValue("'maxIdentities' must not be negative.")
        tier = self._tiers.default_tier_for_clients(default_tier)
        client_id = client_id or self._ids.new("CLT")
        secret = client_secret or self._ids.secret(model.GENERATED_CLIENT_SECRET_LENGTH)
        client = OAuthClient(
            client_id=client_id,
            display_name=display_name or client_id,
            client_secret_hash=self._hasher.hash(secret),
            default_tier_id=tier.id,
            max_identities=max_identities,
            created_at=self._clock.now(),
        )
        with self._db.transaction() as connection:
            if self._clients.find(connection, client_id) is not None:
                raise model.client_id_already_exists()
            self._clients.add(connection, client)
        return CreatedClient(client, secret)

    def change_secret(self, client_id: str, new_secret: str | None) -> CreatedClient:
        """Replace a client's secret (generated when none is given); old logins stop working."""
        secret = new_secret or self._ids.secret(model.GENERATED_CLIENT_SECRET_LENGTH)
        secret_hash = self._hasher.hash(secret)
        with self._db.transaction() as connection:
            client = self._clients.find(connection, client_id)
            if client is None:
                raise NotFound("Client")
            self._clients.set_secret_hash(connection, client_id, secret_hash)
        return CreatedClient(dataclasses.replace(client, client_secret_hash=secret_hash), secret)

    def update(self, client_id: str, default_tier: str, max_identities: int | None) -> OAuthClient:
        """Change a client's default tier and identity limit."""
        if max_identities is not None and max_identities < 0:
            raise InvalidPropertyValue("'maxIdentities' must not be negative.")
        tier = self._tiers.default_tier_for_clients(default_tier)
        with self._db.transaction() as connection:
            client = self._clients.find(connection, client_id)
            if client is None:
                raise NotFound("Client")
            current = self._clients.count_identities(connection, client_id)
            if max_identities is not None and max_identities < current:
                raise model.max_identities_less_than_current_identities(current)
            self._clients.update(connection, client_id, tier.id, max_identities)
        return dataclasses.replace(client, default_tier_id=tier.id, max_identities=max_identities)

    def delete(self, client_id: str) -> None:
        """Remove a client; its identities stay and keep their devices and logins' other clients."""
        with self._db.transaction() as connection:
            if not self._clients.delete(connection, client_id):
                raise NotFound("Client")


class IdentityService:
    def __init__(
        self,
        db: Database,
        identities: IdentityRepository,
        clients: ClientService,
        tiers: TierService,
        challenges: ChallengeService,
        hasher: PasswordHasher,
        outbox: Outbox,
        clock: Clock,
        ids: Ids,
        *,
        did_domain: str,
        development: bool,
    ) -> None:
        self._db = db
        self._identities = identities
        self._clients = clients
        self._challenges = challenges
        self._hasher = hasher
        self._outbox = outbox
        self._clock = clock
        self._ids = ids
        self._did_domain = did_domain
        self._development = development
        self._tiers = tiers

    def create(self, request: NewIdentity) -> CreatedIdentity:
        """Onboard an identity with its first device, proving possession of the identity key."""
        client = self._clients.authenticate(request.client_id, request.client_secret)
        if client is None:
            raise model.invalid_client()
        return self._create(client, request)

    def create_by_operator(self, request: NewIdentity) -> CreatedIdentity:
        """Onboard an identity for a client without its secret (operators are trusted)."""
        client = self._clients.find(request.client_id)
        if client is None:
            raise model.invalid_client()
        return self._create(client, request)

    def _create(self, client: OAuthClient, request: NewIdentity) -> CreatedIdentity:
        model.check_password_policy(request.device_password, development=self._development)
        model.check_communication_language(request.communication_language)
        try:
            public_key = raw_public_key(request.identity_public_key)
        except MalformedKeyMaterial:
            raise model.invalid_public_key() from None
        self._challenges.verify_signed(public_key, request.signed_challenge)

        now = self._clock.now()
        address = derive_address(public_key, self._did_domain)
        identity = Identity(
            address=address,
            client_id=client.client_id,
            public_key=request.identity_public_key,
            created_at=now,
            identity_version=request.identity_version,
            tier_id=client.default_tier_id,
            status=IdentityStatus.Active,
            deletion_grace_period_ends_at=None,
        )
        device_id = self._ids.new("DVC")
        device = Device(
            id=device_id,
            identity_address=address,
            username=self._ids.new("USR"),
            created_at=now,
            created_by_device=device_id,
            communication_language=request.communication_language,
            is_backup_device=False,
            last_login_at=None,
        )
        password_hash = self._hasher.hash(request.device_password)
        with self._db.transaction() as connection:
            if self._identities.exists(connection, address):
                raise model.address_already_exists()
            if client.max_identities is not None and (
                self._clients.count_identities(client.client_id) >= client.max_identities
            ):
                raise model.client_reached_identities_limit()
            self._identities.add(connection, identity, device, password_hash)
            self._outbox.add(IdentityCreated(address=address, tier=identity.tier_id))
        return CreatedIdentity(identity, device)

    def get(self, address: str) -> Identity:
        with self._db.read() as connection:
            identity = self._identities.find(connection, address)
        if identity is None:
            raise NotFound("Identity")
        return identity

    def is_active(self, address: str) -> bool | None:
        """Whether the identity is Active (not queued for deletion); None when there is no such identity."""
        with self._db.read() as connection:
            identity = self._identities.find(connection, address)
        return None if identity is None else identity.status is IdentityStatus.Active

    def tier_of(self, address: str) -> str | None:
        """The identity's tier id, or None when there is no such identity."""
        with self._db.read() as connection:
            identity = self._identities.find(connection, address)
        return None if identity is None else identity.tier_id

    def count_per_tier(self) -> dict[str, int]:
        """The number of identities per tier id (tiers without identities are missing)."""
        with self._db.read() as connection:
            return self._identities.count_per_tier(connection)

    def what_uses_tier(self, tier_id: str) -> str | None:
        """Say what still uses the tier (a client's default, an identity), or None."""
        with self._db.read() as connection:
            return self._identities.what_uses_tier(connection, tier_id)

    def addresses_in_tier(self, tier_id: str) -> list[str]:
        """Addresses of the identities in a tier (to recalculate their quotas)."""
        with self._db.read() as connection:
            return self._identities.addresses_in_tier(connection, tier_id)

    def details(self, address: str) -> IdentityDetails:
        """An identity with its devices, for operators."""
        with self._db.read() as connection:
            identity = self._identities.find(connection, address)
            if identity is None:
                raise NotFound("Identity")
            return IdentityDetails(identity, tuple(self._identities.all_devices_of(connection, address)))

    def overviews(self, query: ODataQuery) -> tuple[list[IdentityOverview], int | None]:
        """Identities filtered, ordered and cut as the operator asked; the total when asked for."""
        with self._db.read() as connection:
            return self._identities.overviews(connection, query, self._tiers.lookup())

    def change_tier(self, address: str, tier_id: str) -> None:
        """Move an identity to another tier; "Queued for Deletion" is left to deletion processes."""
        with self._db.transaction() as connection:
            identity = self._identities.find(connection, address)
            if identity is None:
                raise NotFound("Identity")
            if QUEUED_FOR_DELETION_TIER_ID in (identity.tier_id, tier_id):
                raise model.queued_for_deletion_tier_cannot_be_manually_assigned_or_unassigned()
            tier = self._tiers.find(tier_id)  # joins this transaction
            if tier is None:
                raise NotFound("Tier")
            if not tier.can_be_manually_assigned:
                raise model.queued_for_deletion_tier_cannot_be_manually_assigned_or_unassigned()
            if tier.id == identity.tier_id:
                return
            self._identities.set_tier(connection, address, tier.id)
            self._outbox.add(
                TierOfIdentityChanged(
                    old_tier_id=identity.tier_id, new_tier_id=tier.id, identity_address=address
                )
            )

    # --- what identity deletion changes, inside its own transaction ------------------------

    def get_for_update(self, address: str) -> Identity:
        """Read the identity and lock its row until the caller's transaction ends."""
        with self._db.transaction() as connection:
            identity = self._identities.find_for_update(connection, address)
        if identity is None:
            raise NotFound("Identity")
        return identity

    def queue_for_deletion(self, address: str, grace_period_ends_at: datetime) -> None:
        """Mark the identity ToBeDeleted in "Queued for Deletion", remembering the tier it leaves."""
        with self._db.transaction() as connection:
            identity = self._identities.find_for_update(connection, address)
            if identity is None:
                raise NotFound("Identity")
            self._identities.queue_for_deletion(
                connection, address, grace_period_ends_at, QUEUED_FOR_DELETION_TIER_ID
            )
            self._outbox.add(
                TierOfIdentityChanged(
                    old_tier_id=identity.tier_id,
                    new_tier_id=QUEUED_FOR_DELETION_TIER_ID,
                    identity_address=address,
                )
            )

    def restore_after_cancelled_deletion(self, address: str) -> None:
        """Make the identity Active again in the tier it had before its deletion was queued."""
        with self._db.transaction() as connection:
            tier_id = self._identities.tier_before_deletion(connection, address)
            if tier_id is None:
                raise RuntimeError(f"identity {address} has no tier to return to")
            self._identities.restore_after_cancelled_deletion(connection, address, tier_id)
            self._outbox.add(
                TierOfIdentityChanged(
                    old_tier_id=QUEUED_FOR_DELETION_TIER_ID, new_tier_id=tier_id, identity_address=address
                )
            )

    def mark_deleting(self, address: str) -> None:
        with self._db.transaction() as connection:
            self._identities.mark_deleting(connection, address)

    def of_user(self, username: str) -> Identity | None:
        """The identity of the device user (deleted devices included), if there is one."""
        with self._db.read() as connection:
            return self._identities.find_by_username(connection, username)

    def usernames_of(self, address: str) -> list[str]:
        """The usernames of all the identity's devices, deleted ones included."""
        with self._db.read() as connection:
            return self._identities.usernames_of(connection, address)

    def remove(self, address: str) -> None:
        """Delete the identity with its devices."""
        with self._db.transaction() as connection:
            self._identities.remove(connection, address)

    def export_identities(self) -> Iterator[IdentityExport]:
        """Every identity, oldest first, for the operators' database export."""
        tier_of = self._tiers.lookup()
        with self._db.read(streaming=True) as connection:
            yield from self._identities.export_identities(connection, tier_of)

    def export_devices(self) -> Iterator[DeviceExport]:
        """Every device that is not deleted, oldest first, for the operators' database export."""
        tier_of = self._tiers.lookup()
        with self._db.read(streaming=True) as connection:
            yield from self._identities.export_devices(connection, tier_of)


class DeviceService:
    """The devices of an identity: adding, listing, updating, deleting."""

    def __init__(
        self,
        db: Database,
        identities: IdentityRepository,
        challenges: ChallengeService,
        hasher: PasswordHasher,
        clock: Clock,
        ids: Ids,
        *,
        development: bool,
    ) -> None:
        self._db = db
        self._identities = identities
        self._challenges = challenges
        self._hasher = hasher
        self._clock = clock
        self._ids = ids
        self._development = development

    def get(self, caller: Principal) -> Device:
        with self._db.read() as connection:
            device = self._identities.find_device(connection, caller.device_id)
        if device is None or device.identity_address != caller.address:
            raise NotFound("Device")
        return device

    def list_devices(self, caller: Principal, device_ids: Sequence[str], page: Page) -> Paged:
        """The caller's identity's devices (deleted ones left out)."""
        with self._db.read() as connection:
            return self._identities.devices_of(connection, caller.address, device_ids, page)

    def register(self, caller: Principal, request: NewDevice) -> Device:
        """Add a device to the caller's identity, proving possession of the identity key again."""
        model.check_password_policy(request.device_password, development=self._development)
        model.check_communication_language(request.communication_language)
        with self._db.read() as connection:
            identity = self._identities.find(connection, caller.address)
            if identity is None:
                raise NotFound("Identity")
            if request.is_backup_device and self._identities.has_backup_device(connection, caller.address):
                raise model.only_one_backup_device_can_exist()
        try:
            public_key = raw_public_key(identity.public_key)
        except MalformedKeyMaterial:
            raise model.invalid_public_key() from None
        self._challenges.verify_signed(public_key, request.signed_challenge)

        device = Device(
            id=self._ids.new("DVC"),
            identity_address=identity.address,
            username=self._ids.new("USR"),
            created_at=self._clock.now(),
            created_by_device=caller.device_id,
            communication_language=request.communication_language,
            is_backup_device=request.is_backup_device,
            last_login_at=None,
        )
        password_hash = self._hasher.hash(request.device_password)
        with self._db.transaction() as connection:
            self._identities.add_device(connection, device, password_hash)
        return device

    def communication_languages(self, device_ids: Sequence[str]) -> dict[str, str]:
        """The communication language of each of these devices (push notifications' texts)."""
        with self._db.read() as connection:
            return self._identities.communication_languages(connection, device_ids)

    def update_communication_language(self, caller: Principal, language: str) -> None:
        model.check_communication_language(language)
        with self._db.transaction() as connection:
            self._identities.set_communication_language(connection, caller.device_id, language)

    def change_password(self, caller: Principal, old_password: str, new_password: str) -> None:
        """Replace the calling device's password after checking the old one."""
        with self._db.read() as connection:
            stored = self._identities.password_hash(connection, caller.device_id)
        if stored is None:
            raise NotFound("Device")
        if not self._hasher.verify(old_password, stored):
            raise model.change_password_failed("Incorrect password.")
        if not model.meets_password_policy(new_password, development=self._development):
            raise model.change_password_failed(
                "Passwords must have at least 10 characters with an upper-case letter, a lower-case "
                "letter, a digit and a non-alphanumeric character."
            )
        new_hash = self._hasher.hash(new_password)
        with self._db.transaction() as connection:
            self._identities.set_password_hash(connection, caller.device_id, new_hash)

    def delete(self, caller: Principal, device_id: str) -> None:
        """Delete a device of the caller's identity that has never logged in."""
        with self._db.transaction() as connection:
            device = self._identities.find_device(connection, device_id)
            if device is None:
                raise NotFound("Device")
            if device.is_onboarded:
                raise model.device_cannot_be_deleted(
                    "The device cannot be deleted because it is already onboarded."
                )
            if device.identity_address != caller.address:
                raise model.device_cannot_be_deleted(
                    "You are not allowed to delete this device as it belongs to another identity."
                )
            if not self._identities.mark_deleted(connection, device_id, caller.device_id, self._clock.now()):
                # It logged in between our read and the update.
                raise model.device_cannot_be_deleted(
                    "The device cannot be deleted because it is already onboarded."
                )


class LoginService:
    """The password grant of `/connect/token`, with the original's lockout rules.

    Attempts are counted before their password is checked, so however many arrive at once, at
    most `max_failed_logins` passwords are checked before the device is locked out.
    """

    def __init__(
        self,
        db: Database,
        identities: IdentityRepository,
        clients: ClientService,
        hasher: PasswordHasher,
        issuer: TokenIssuer,
        outbox: Outbox,
        clock: Clock,
        *,
        max_failed_logins: int,
        lockout: timedelta,
    ) -> None:
        self._db = db
        self._identities = identities
        self._clients = clients
        self._hasher = hasher
        self._issuer = issuer
        self._outbox = outbox
        self._clock = clock
        self._max_failed_logins = max_failed_logins
        self._lockout = lockout
        self._unknown_user_hash = hasher.unmatchable_hash()

    def issue_token(self, client_id: str, client_secret: str, username: str, password: str) -> IssuedToken:
        client = self._clients.authenticate(client_id, client_secret)
        if client is None:
            raise LoginFailed("invalid_client", "The specified client credentials are invalid.")
        invalid_grant = LoginFailed("invalid_grant", "The username/password couple is invalid.")
        with self._db.read() as connection:
            credentials = self._identities.credentials(connection, username) if username.strip() else None
        now = self._clock.now()
        ends_at = credentials.deletion_grace_period_ends_at if credentials else None
        if credentials is None or (ends_at is not None and ends_at <= now):
            # As long as a real check, so the answer's timing does not tell which usernames exist.
            self._hasher.verify(password, self._unknown_user_hash)
            raise invalid_grant
        device, max_attempts = credentials.device, self._max_failed_logins
        with self._db.transaction() as connection:
            may_try = self._identities.start_login_attempt(connection, device.id, now, max_attempts)
        if not may_try:
            raise LoginFailed(
                "access_denied", "The user is temporarily locked out, please try again in a few minutes."
            )
        if not self._hasher.verify(password, credentials.password_hash):
            with self._db.transaction() as connection:
                self._identities.lock_out(connection, device.id, now + self._lockout, max_attempts)
            raise invalid_grant
        with self._db.transaction() as connection:
            self._identities.record_login(connection, device.id, now)
            if device.is_backup_device and self._identities.use_backup_device(connection, device.id):
                self._outbox.add(BackupDeviceUsed(identity_address=device.identity_address))
        principal = Principal(device.identity_address, device.id, device.username, client.client_id)
        return self._issuer.issue(principal)
