"""The devices module in the backbone: its services and its routes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from backbone.modules.challenges.service import ChallengeService
from backbone.modules.devices.admin_api import (
    DatawalletVersions,
    IdentityQuotas,
    add_device_admin_routes,
)
from backbone.modules.devices.consumer_api import add_device_routes
from backbone.modules.devices.repository import ClientRepository, IdentityRepository
from backbone.modules.devices.service import (
    ClientService,
    DeviceService,
    IdentityService,
    LoginService,
)
from backbone.modules.tiers.service import TierService
from backbone.platform.auth import PasswordHasher, TokenIssuer
from backbone.platform.modules import ModuleConfig


@dataclass(frozen=True)
class DevicesModule:
    clients: ClientService
    identities: IdentityService
    devices: DeviceService
    logins: LoginService


def include_devices(
    config: ModuleConfig,
    *,
    challenges: ChallengeService,
    tiers: TierService,
    hasher: PasswordHasher,
    access_tokens: TokenIssuer,
    identity_quotas: IdentityQuotas,
    datawallet_versions: DatawalletVersions,
) -> DevicesModule:
    """The Admin API shows an identity's quotas and the datawallet versions with devices' data;
    those come from the quotas and synchronization modules."""
    db, settings, clock, ids = config.db, config.settings, config.clock, config.ids
    identity_repository = IdentityRepository()
    clients = ClientService(db, ClientRepository(), tiers, hasher, clock, ids)
    identities = IdentityService(
        db,
        identity_repository,
        clients,
        tiers,
        challenges,
        hasher,
        config.outbox,
        clock,
        ids,
        did_domain=settings.did_domain,
        development=settings.development,
    )
    devices = DeviceService(
        db, identity_repository, challenges, hasher, clock, ids, development=settings.development
    )
    logins = LoginService(
        db,
        identity_repository,
        clients,
        hasher,
        access_tokens,
        config.outbox,
        clock,
        max_failed_logins=settings.max_failed_logins,
        lockout=timedelta(seconds=settings.login_lockout_s),
    )
    config.add_consumer_routes(lambda app: add_device_routes(app, identities, devices, logins))
    config.add_admin_routes(
        lambda app: add_device_admin_routes(
            app,
            clients,
            identities,
            identity_quotas=identity_quotas,
            datawallet_versions=datawallet_versions,
        )
    )
    return DevicesModule(clients, identities, devices, logins)
