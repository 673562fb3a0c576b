"""The composition root: build_services(settings) assembles the whole object graph.

The platform's parts first, then the feature modules, each through its `include_<module>`
(`modules/<module>/module.py`), which builds its services, subscribes its handlers and
registers its routes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from backbone.modules.announcements.module import include_announcements
from backbone.modules.announcements.service import AnnouncementService
from backbone.modules.challenges.module import include_challenges
from backbone.modules.challenges.service import ChallengeService
from backbone.modules.devices.events import IdentityCreated
from backbone.modules.devices.model import IdentityStatus
from backbone.modules.devices.module import DevicesModule, include_devices
from backbone.modules.devices.service import (
    ClientService,
    DeviceService,
    IdentityService,
    LoginService,
)
from backbone.modules.feature_flags.module import include_feature_flags
from backbone.modules.feature_flags.service import FeatureFlagService
from backbone.modules.files.events import FileUploaded
from backbone.modules.files.module import include_files
from backbone.modules.files.service import FileService
from backbone.modules.identity_deletion.module import include_identity_deletion
from backbone.modules.identity_deletion.service import DeletionProcessService, IdentityDeletionJobService
from backbone.modules.messages.events import MessageCreated
from backbone.modules.messages.module import include_messages
from backbone.modules.messages.service import MessageService
from backbone.modules.onboarding.module import include_onboarding
from backbone.modules.push_notifications.module import include_push_notifications
from backbone.modules.push_notifications.service import NotificationService, PushService
from backbone.modules.quotas.admin_api import render_limit, render_quota
from backbone.modules.quotas.model import MetricKey
from backbone.modules.quotas.module import include_quotas
from backbone.modules.quotas.service import QuotaCheck, QuotaService
from backbone.modules.relationships.module import RelationshipsModule, include_relationships
from backbone.modules.relationships.service import RelationshipService, RelationshipTemplateService
from backbone.modules.synchronization.module import include_synchronization
from backbone.modules.synchronization.service import SynchronizationService
from backbone.modules.tags.module import include_tags
from backbone.modules.tags.service import TagCollection
from backbone.modules.tiers.model import BASIC_TIER_NAME
from backbone.modules.tiers.module import include_tiers
from backbone.modules.tiers.service import TierService
from backbone.modules.tokens.module import include_tokens
from backbone.modules.tokens.service import TokenService
from backbone.platform.admin_auth import xsrf_key
from backbone.platform.auth import PasswordHasher, TokenIssuer, load_or_create_signing_key
from backbone.platform.blobs import BlobStore, LocalDirectoryBlobStore, S3BlobStore
from backbone.platform.bus_metrics import BusMetrics
from backbone.platform.clock import Clock, SystemClock
from backbone.platform.crypto import derive_address
from backbone.platform.db import Database
from backbone.platform.events import (
    EventBus,
    Handler,
    Inbox,
    InProcessEventBus,
    Outbox,
    PublishedEvent,
)
from backbone.platform.health import HealthChecks
from backbone.platform.ids import Ids
from backbone.platform.metrics import Metrics
from backbone.platform.modules import AddRoutes, ModuleConfig
from backbone.platform.push import LogConnector, PushConnector, PushConnectors, PushNotifier
from backbone.platform.push.apns import ApnsConnector
from backbone.platform.push.delivery import DeliveryOptions
from backbone.platform.push.fcm import FcmConnector
from backbone.platform.push.metrics import PushMetrics
from backbone.platform.push.sse import SseConnector
from backbone.platform.rabbitmq import RabbitMqEventBus, RabbitMqOptions
from backbone.platform.servicebus import AzureServiceBusEventBus, ServiceBusOptions
from backbone.platform.tracing import Tracing
from backbone.settings import Settings

DEVELOPMENT_CLIENT_ID = "test"
DEVELOPMENT_CLIENT_SECRET = "test"  # noqa: S105 - the well-known client of development mode


@dataclass
class Services:
    """Everything the API processes, the worker and the jobs use, built once per process."""

    settings: Settings
    db: Database
    clock: Clock
    ids: Ids
    bus: EventBus
    outbox: Outbox
    # Issues and checks the bearer tokens (JWTs) of device logins; not the Tokens feature.
    access_tokens: TokenIssuer
    health: HealthChecks
    # None when BACKBONE_METRICS=false: nothing is measured and no /metrics route exists.
    metrics: Metrics | None
    tracing: Tracing
    metrics_registry: CollectorRegistry
    blobs: BlobStore
    # Signs the Admin API's anti-forgery tokens; derived from secrets every node shares.
    xsrf_key: bytes
    # Messages and relationships of deleted identities keep this address instead.
    anonymous_address: str
    challenges: ChallengeService
    tiers: TierService
    clients: ClientService
    identities: IdentityService
    devices: DeviceService
    logins: LoginService
    tokens: TokenService
    files: FileService
    announcements: AnnouncementService
    tags: TagCollection
    synchronization: SynchronizationService
    messages: MessageService
    quotas: QuotaService
    relationship_templates: RelationshipTemplateService
    relationships: RelationshipService
    push: PushService
    notifications: NotificationService
    deletion_processes: DeletionProcessService
    deletion_jobs: IdentityDeletionJobService
    feature_flags: FeatureFlagService
    # What the modules registered: every subscribed handler, and the routes of each API.
    handlers: list[Handler]
    consumer_routes: list[AddRoutes]
    admin_routes: list[AddRoutes]

    def close(self) -> None:
        self.push.close()
        self.bus.close()
        self.db.dispose()


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    ids: Ids | None = None,
    db: Database | None = None,
    bus: EventBus | None = None,
    blobs: BlobStore | None = None,
    metrics: Metrics | None = None,
    tracing: Tracing | None = None,
    push_notifier: PushNotifier | None = None,
) -> Services:
    """Build the services; tests pass fakes in the keyword slots."""
    clock = clock or SystemClock()
    ids = ids or Ids()
    if settings.metrics_enabled:
        metrics = metrics or Metrics()
    tracing = tracing or Tracing.from_settings(settings)
    db = db or Database(
        settings.database_url,
        read_urls=settings.database_read_urls,
        prepared_statements=settings.db_prepared_statements,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout_s=settings.db_pool_timeout_s,
        sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    )
    for engine in db.engines:
        tracing.observe_engine(engine)
    # What this process's /metrics serves besides the multiprocess collector (the bus's metrics).
    metrics_registry = CollectorRegistry()
    bus = bus or build_event_bus(
        settings, Inbox(db, clock, metrics=metrics, tracing=tracing), metrics_registry
    )
    outbox = Outbox(db, bus, ids, clock, metrics=metrics, tracing=tracing)
    if metrics is not None:
        metrics.observe_pool(
            db.engine, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
        )
        db.connection_wait_observer = metrics.db_wait.observe
        outbox.on_committed(count_business_events(metrics))
        metrics.watch_outbox(outbox.pending_count)
    signing_key = settings.jwt_signing_key or load_or_create_signing_key(settings.var_dir / "jwt-signing.key")
    access_tokens = TokenIssuer(signing_key, settings.jwt_lifetime_s, clock)

    blobs = blobs or build_blob_store(settings)

    health = HealthChecks(timeout_s=settings.health_timeout_s)
    health.add("database", db.ping)
    health.add("bus", bus.ping)
    health.add("blobs", blobs.ping)
    if isinstance(bus, (RabbitMqEventBus, AzureServiceBusEventBus)):
        # Not critical in the APIs: events wait in the outbox while the broker is away.
        health.add("bus", bus.ping, critical=False)

    # Messages and relationships of deleted identities keep this address instead.
    anonymous_address = derive_address("deleted identity".encode("utf-16-le"), settings.did_domain)
    # Requests limited by quotas check the precomputed metric statuses; the quotas' handlers keep them.
    check_quota = QuotaCheck(db, clock)
    config = ModuleConfig(settings, db, outbox, clock, ids, bus)

    # The modules, in the order in which the in-process bus runs the handlers of one event
    # (decisions.md, "Modules"). The four declared here are included after modules that use
    # them, so those uses look them up when called.
    devices: DevicesModule
    synchronization: SynchronizationService
    quotas: QuotaService
    relationships: RelationshipsModule
    challenges = include_challenges(config)
    tiers = include_tiers(
        config,
        identities_per_tier=lambda: devices.identities.count_per_tier(),
        tier_usage=lambda tier_id: devices.identities.what_uses_tier(tier_id),
        tier_quotas=lambda tier_id: [render_quota(quota) for quota in quotas.tier_quotas(tier_id)],
    )
    devices = include_devices(
        config,
        challenges=challenges,
        tiers=tiers,
        hasher=PasswordHasher(settings.password_hash_iterations),
        access_tokens=access_tokens,
        identity_quotas=lambda address: [render_limit(limit) for limit in quotas.quotas_of_identity(address)],
        datawallet_versions=lambda addresses: synchronization.datawallet_versions(addresses),
    )
    identities = devices.identities
    tokens = include_tokens(config, check_quota=check_quota)
    files = include_files(config, blobs=blobs, check_quota=check_quota)
    announcements = include_announcements(config)
    tags = include_tags(config)
    include_onboarding(config)
    synchronization = include_synchronization(
        config,
        # Raises NotFound for an identity that is gone: its sync runs answer 404.
        identity_is_active=lambda address: identities.get(address).status is IdentityStatus.Active,
        relationship_status=lambda relationship_id: relationships.relationships.status_of(relationship_id),
        relationship_participants=lambda relationship_id: relationships.relationships.participants_of(
            relationship_id
        ),
    )
    messages = include_messages(
        config,
        relationship_between=lambda one, other: relationships.relationships.youngest_between(one, other),
        anonymous_address=anonymous_address,
        check_quota=check_quota,
    )
    quotas = include_quotas(
        config,
        tier_exists=tiers.exists,
        tier_of_identity=identities.tier_of,
        identities_in_tier=identities.addresses_in_tier,
        usage={
            MetricKey.NumberOfSentMessages: messages.count_sent,
            MetricKey.NumberOfFiles: files.count_created,
            MetricKey.UsedFileStorageSpace: files.stored_mib,
            MetricKey.NumberOfTokens: tokens.count_created,
            MetricKey.NumberOfRelationshipTemplates: (
                lambda address, since, until: relationships.templates.count_created(address, since, until)
            ),
            MetricKey.NumberOfRelationships: (
                lambda address, since, until: relationships.relationships.count_for_quota(
                    address, since, until
                )
            ),
        },
    )
    relationships = include_relationships(
        config,
        identity_is_active=identities.is_active,
        anonymous_address=anonymous_address,
        check_quota=check_quota,
    )
    feature_flags = include_feature_flags(
        config, lock_identity=identities.get_for_update, knows=relationships.relationships.knows
    )
    push_notifications = include_push_notifications(
        config,
        notifier=push_notifier or build_push_connectors(settings, PushMetrics(metrics_registry)),
        identity_is_active=lambda address: identities.is_active(address) is True,
        relationship_between=relationships.relationships.youngest_between,
        communication_languages=devices.devices.communication_languages,
    )
    identity_deletion = include_identity_deletion(config, identities=identities, push=push_notifications.push)

    return Services(
        settings=settings,
        db=db,
        clock=clock,
        ids=ids,
        bus=bus,
        outbox=outbox,
        access_tokens=access_tokens,
        health=health,
        metrics=metrics,
        tracing=tracing,
        metrics_registry=metrics_registry,
        blobs=blobs,
        xsrf_key=xsrf_key(signing_key, settings.admin_api_key.encode("utf-8")),
        anonymous_address=anonymous_address,
        challenges=challenges,
        tiers=tiers,
        clients=devices.clients,
        identities=identities,
        devices=devices.devices,
        logins=devices.logins,
        tokens=tokens,
        files=files,
        announcements=announcements,
        tags=tags,
        synchronization=synchronization,
        messages=messages,
        quotas=quotas,
        relationship_templates=relationships.templates,
        relationships=relationships.relationships,
        push=push_notifications.push,
        notifications=push_notifications.notifications,
        deletion_processes=identity_deletion.processes,
        deletion_jobs=identity_deletion.jobs,
        feature_flags=feature_flags,
        handlers=config.handlers,
        consumer_routes=config.consumer_routes,
        admin_routes=config.admin_routes,
    )


def handler_queues() -> list[str]:
    """The queue of every handler the modules subscribe (`<Module>.<EventName>`), in order: what
    a broker holds for this backbone (the testbed removes a landscape's queues by these names)."""
    return [handler.queue for handler in subscribed_handlers()]


def subscribed_handlers() -> list[Handler]:
    """Every handler the modules subscribe, in order, from a throwaway development backbone."""
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(var_dir=Path(directory), database_url=f"sqlite:///{directory}/unused.sqlite3")
        services = build_services(settings)
        services.close()
    return services.handlers


def count_business_events(metrics: Metrics) -> Callable[[PublishedEvent], None]:
    """Feed the business counters from committed events; the one place that maps events to them."""
    identity_created, message_created, file_uploaded = (
        IdentityCreated.name(),
        MessageCreated.name(),
        FileUploaded.name(),
    )

    def count(event: PublishedEvent) -> None:
        if event.name == message_created:
            metrics.messages_sent.inc()
        elif event.name == identity_created:
            metrics.identities_created.inc()
        elif event.name == file_uploaded:
            metrics.uploaded_bytes.inc(FileUploaded.from_payload(event.payload).cipher_size)

    return count


def build_event_bus(settings: Settings, inbox: Inbox, registry: CollectorRegistry) -> EventBus:
    """The bus the settings choose: in-process (default), RabbitMQ or Azure Service Bus (a broker's
    metrics in `registry`)."""
    if settings.bus == "rabbitmq":
        return RabbitMqEventBus(
            RabbitMqOptions(
                url=settings.rabbitmq_url,
                exchange=settings.rabbitmq_exchange,
                queue_prefix=settings.rabbitmq_queue_prefix,
                max_handler_attempts=settings.rabbitmq_max_handler_attempts,
                prefetch=settings.rabbitmq_prefetch,
                consumer_threads=settings.rabbitmq_consumer_threads,
                connect_timeout_s=settings.rabbitmq_connect_timeout_s,
                reconnect_max_s=settings.rabbitmq_reconnect_max_s,
            ),
            inbox,
            BusMetrics(registry),
        )
    if settings.bus == "azureservicebus":
        return AzureServiceBusEventBus(
            ServiceBusOptions(
                connection_string=settings.servicebus_connection_string,
                topic=settings.servicebus_topic,
                manage_topology=settings.servicebus_manage_topology,
                max_handler_attempts=settings.servicebus_max_handler_attempts,
                prefetch=settings.servicebus_prefetch,
                retry_total=settings.servicebus_retry_total,
                retry_backoff_max_s=settings.servicebus_retry_backoff_max_s,
            ),
            inbox,
            BusMetrics(registry),
        )
    return InProcessEventBus(inbox)


def build_push_connectors(settings: Settings, metrics: PushMetrics) -> PushConnectors:
    """The connector of each push platform: FCM and APNs where the push file has their
    credentials, SSE always; `dummy` and every platform without credentials only log."""
    options = DeliveryOptions(
        timeout_s=settings.push_timeout_s,
        max_attempts=settings.push_max_attempts,
        max_retry_wait_s=settings.push_max_retry_wait_s,
        ca_file=settings.push_ca_file,
    )
    connectors: dict[str, PushConnector] = {
        "dummy": LogConnector(metrics),
        # Always on: a `sse` registration names the replica that holds the device's stream.
        "sse": SseConnector(options, metrics),
    }
    if settings.push.fcm is not None:
        connectors["fcm"] = FcmConnector(settings.push.fcm, options, metrics, base_url=settings.push_fcm_url)
    if settings.push.apns is not None:
        connectors["apns"] = ApnsConnector(
            settings.push.apns,
            options,
            metrics,
            production_url=settings.push_apns_production_url,
            development_url=settings.push_apns_development_url,
        )
    return PushConnectors(connectors, fallback=LogConnector(), concurrency=settings.push_concurrency)


def build_blob_store(settings: Settings) -> BlobStore:
    """The blob store the settings choose: a local directory (default) or an S3 bucket."""
    if settings.blob_store == "s3":
        return S3BlobStore(
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key,
            settings.s3_bucket,
            secure=settings.s3_secure,
        )
    return LocalDirectoryBlobStore(settings.blob_path)


def seed(services: Services) -> None:
    """Create the default tiers, and in development mode the well-known OAuth client."""
    services.tiers.ensure_defaults()
    services.quotas.ensure_defaults()
    if services.settings.development:
        services.clients.ensure(DEVELOPMENT_CLIENT_ID, DEVELOPMENT_CLIENT_SECRET, BASIC_TIER_NAME)
