"""The composition root: build_services(settings) assembles the whole object graph."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from prometheus_client import CollectorRegistry

from backbone.modules.announcements.repository import AnnouncementRepository
from backbone.modules.announcements.service import AnnouncementService
from backbone.modules.challenges.repository import ChallengeRepository
from backbone.modules.challenges.service import ChallengeService
from backbone.modules.devices.events import IdentityCreated
from backbone.modules.devices.model import BASIC_TIER_NAME, IdentityStatus
from backbone.modules.devices.repository import (
    ClientRepository,
    IdentityRepository,
    TierRepository,
)
from backbone.modules.devices.service import (
    ClientService,
    DeviceService,
    IdentityService,
    LoginService,
    TierService,
)
from backbone.modules.files.events import FileUploaded
from backbone.modules.files.repository import FileRepository
from backbone.modules.files.service import FileService
from backbone.modules.identity_deletion.repository import DeletionProcessRepository
from backbone.modules.identity_deletion.service import DeletionProcessService, IdentityDeletionJobService
from backbone.modules.messages.events import MessageCreated
from backbone.modules.messages.handlers import subscribe_message_handlers
from backbone.modules.messages.repository import MessageRepository
from backbone.modules.messages.service import MessageService
from backbone.modules.push_notifications.handlers import subscribe_push_handlers
from backbone.modules.push_notifications.repository import PnsRegistrationRepository
from backbone.modules.push_notifications.service import NotificationService, PushService
from backbone.modules.quotas.handlers import subscribe_quota_handlers
from backbone.modules.quotas.model import MetricKey
from backbone.modules.quotas.repository import QuotaRepository
from backbone.modules.quotas.service import QuotaCheck, QuotaService
from backbone.modules.relationships.handlers import subscribe_relationship_handlers
from backbone.modules.relationships.repository import RelationshipRepository
from backbone.modules.relationships.service import RelationshipService, RelationshipTemplateService
from backbone.modules.synchronization.handlers import subscribe_synchronization_handlers
from backbone.modules.synchronization.repository import SynchronizationRepository
from backbone.modules.synchronization.service import SynchronizationService
from backbone.modules.tags.service import TagCollection, load_tags
from backbone.modules.tokens.repository import TokenRepository
from backbone.modules.tokens.service import TokenService
from backbone.platform.admin_auth import xsrf_key
from backbone.platform.auth import PasswordHasher, TokenIssuer, load_or_create_signing_key
from backbone.platform.blobs import BlobStore, LocalDirectoryBlobStore, S3BlobStore
from backbone.platform.bus_metrics import BusMetrics
from backbone.platform.clock import Clock, SystemClock
from backbone.platform.crypto import derive_address
from backbone.platform.db import Database
from backbone.platform.errors import NotFound
from backbone.platform.events import EventBus, Inbox, InProcessEventBus, Outbox, PublishedEvent
from backbone.platform.health import HealthChecks
from backbone.platform.ids import Ids
from backbone.platform.metrics import Metrics
from backbone.platform.push import LogPushNotifier, PushNotifier
from backbone.platform.rabbitmq import RabbitMqEventBus, RabbitMqOptions
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
    tokens: TokenIssuer
    health: HealthChecks
    # None when BACKBONE_METRICS=false: nothing is measured and no /metrics route exists.
    metrics: Metrics | None
    tracing: Tracing
    challenges: ChallengeService
    tiers: TierService
    clients: ClientService
    identities: IdentityService
    devices: DeviceService
    logins: LoginService
    synchronization: SynchronizationService
    tags: TagCollection
    relationship_templates: RelationshipTemplateService
    relationships: RelationshipService
    tokens_service: TokenService
    messages: MessageService
    quotas: QuotaService
    announcements: AnnouncementService
    # Signs the Admin API's anti-forgery tokens; derived from secrets every node shares.
    xsrf_key: bytes
    blobs: BlobStore
    files: FileService
    metrics_registry: CollectorRegistry
    deletion_processes: DeletionProcessService
    push: PushService
    notifications: NotificationService
    identity_deletion: IdentityDeletionJobService
    # Messages and relationships of deleted identities keep this address instead.
    anonymous_address: str

    def close(self) -> None:
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
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout_s=settings.db_pool_timeout_s,
        sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    )
    tracing.observe_engine(db.engine)
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
    hasher = PasswordHasher(settings.password_hash_iterations)
    signing_key = settings.jwt_signing_key or load_or_create_signing_key(settings.var_dir / "jwt-signing.key")
    tokens = TokenIssuer(signing_key, settings.jwt_lifetime_s, clock)

    blobs = blobs or build_blob_store(settings)

    health = HealthChecks(timeout_s=settings.health_timeout_s)
    health.add("database", db.ping)
    health.add("bus", bus.ping)
    health.add("blobs", blobs.ping)
    if isinstance(bus, RabbitMqEventBus):
        # Not critical in the APIs: events wait in the outbox while the broker is away.
        health.add("bus", bus.ping, critical=False)

    challenges = ChallengeService(db, ChallengeRepository(), clock, ids)
    quota_repository = QuotaRepository()
    # Requests limited by quotas check the precomputed metric statuses; the handlers below keep them.
    check_quota = QuotaCheck(db, quota_repository, clock)

    identity_repository = IdentityRepository()
    tiers = TierService(db, TierRepository(), ids, outbox)
    clients = ClientService(db, ClientRepository(), tiers, hasher, clock, ids)
    identities = IdentityService(
        db,
        identity_repository,
        clients,
        challenges,
        hasher,
        outbox,
        clock,
        ids,
        did_domain=settings.did_domain,
        development=settings.development,
    )
    push = PushService(db, PnsRegistrationRepository(db), push_notifier or LogPushNotifier(), clock, ids)
    devices = DeviceService(
        db,
        identity_repository,
        challenges,
        hasher,
        clock,
        ids,
        development=settings.development,
    )
    deletion_process_repository = DeletionProcessRepository()
    deletion_processes = DeletionProcessService(
        db, deletion_process_repository, identities, outbox, clock, ids
    )
    identity_deletion = IdentityDeletionJobService(
        db, deletion_process_repository, identities, push, outbox, clock, ids
    )
    logins = LoginService(
        db,
        identity_repository,
        clients,
        hasher,
        tokens,
        outbox,
        clock,
        max_failed_logins=settings.max_failed_logins,
        lockout=timedelta(seconds=settings.login_lockout_s),
    )

    synchronization = SynchronizationService(
        db,
        SynchronizationRepository(db),
        outbox,
        clock,
        ids,
        identity_is_active=lambda address: identities.get(address).status is IdentityStatus.Active,
    )

    # Messages of a relationship both sides decomposed keep this address instead of the recipient's.
    anonymous_address = derive_address("deleted identity".encode("utf-16-le"), settings.did_domain)

    def identity_is_active(address: str) -> bool | None:
        try:
            return identities.get(address).status is IdentityStatus.Active
        except NotFound:
            return None

    relationship_repository = RelationshipRepository(db)
    relationship_templates = RelationshipTemplateService(
        db, relationship_repository, outbox, clock, ids, check_quota=check_quota
    )
    relationships = RelationshipService(
        db,
        relationship_repository,
        relationship_templates,
        outbox,
        clock,
        ids,
        identity_is_active=identity_is_active,
        check_quota=check_quota,
    )
    tokens_service = TokenService(db, TokenRepository(db), outbox, clock, ids, check_quota=check_quota)
    messages = MessageService(
        db,
        MessageRepository(),
        outbox,
        clock,
        ids,
        relationship_between=relationships.youngest_between,
        max_recipients=settings.max_message_recipients,
        max_unreceived_from_one_sender=settings.max_unreceived_messages_from_one_sender,
        anonymous_address=anonymous_address,
        check_quota=check_quota,
    )
    files = FileService(db, FileRepository(db), blobs, outbox, clock, ids, check_quota=check_quota)

    quotas = QuotaService(
        db,
        quota_repository,
        outbox,
        ids,
        clock,
        tier_exists=tiers.exists,
        tier_of_identity=identities.tier_of,
        identities_in_tier=identities.addresses_in_tier,
        usage={
            MetricKey.NumberOfSentMessages: messages.count_sent,
            MetricKey.NumberOfFiles: files.count_created,
            MetricKey.UsedFileStorageSpace: files.stored_mib,
            MetricKey.NumberOfRelationshipTemplates: relationship_templates.count_created,
            MetricKey.NumberOfTokens: tokens_service.count_created,
            MetricKey.NumberOfRelationships: relationships.count_for_quota,
        },
    )
    announcements = AnnouncementService(db, AnnouncementRepository(), outbox, clock, ids)

    # Every reaction to another module's events is subscribed here, and only here.
    subscribe_synchronization_handlers(bus, synchronization, relationships.status_of)
    subscribe_message_handlers(bus, messages)
    subscribe_quota_handlers(bus, quotas)
    subscribe_relationship_handlers(bus, relationships, anonymous_address)
    subscribe_push_handlers(bus, push, lambda address: identity_is_active(address) is True)

    return Services(
        settings=settings,
        db=db,
        clock=clock,
        ids=ids,
        bus=bus,
        outbox=outbox,
        tokens=tokens,
        health=health,
        metrics=metrics,
        tracing=tracing,
        challenges=challenges,
        tiers=tiers,
        clients=clients,
        identities=identities,
        devices=devices,
        logins=logins,
        synchronization=synchronization,
        tags=load_tags(settings.tags_file),
        relationship_templates=relationship_templates,
        relationships=relationships,
        tokens_service=tokens_service,
        messages=messages,
        quotas=quotas,
        announcements=announcements,
        xsrf_key=xsrf_key(signing_key, settings.admin_api_key.encode("utf-8")),
        blobs=blobs,
        files=files,
        metrics_registry=metrics_registry,
        deletion_processes=deletion_processes,
        push=push,
        notifications=NotificationService(
            push, codes=settings.notification_codes, relationship_between=relationships.youngest_between
        ),
        identity_deletion=identity_deletion,
        anonymous_address=anonymous_address,
    )


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
    """The bus the settings choose: in-process (default) or RabbitMQ (its metrics in `registry`)."""
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
    return InProcessEventBus(inbox)


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
