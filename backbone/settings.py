"""Typed, frozen settings; the only module that reads the environment."""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from backbone.apps_file import Apps, read_apps_file
from backbone.platform.push import apns, fcm
from backbone.push_file import PushProviders, read_push_file

PREFIX = "BACKBONE_"
DEVELOPMENT = "development"
PRODUCTION = "production"
_T = TypeVar("_T")
_DOMAIN = re.compile(r"^(?:[a-z0-9-]+\.)*[a-z]{2,}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_AMQP_NAME = re.compile(r"^[A-Za-z0-9._-]{0,100}$")
_SERVICEBUS_NAME = re.compile(r"^[A-Za-z0-9._/-]{1,260}$")


class SettingsError(Exception):
    """One or more settings are missing or invalid; `problems` lists every one of them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings:\n" + "\n".join(f"  - {problem}" for problem in problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    """Everything the backbone processes can be told, with the defaults of development mode."""

    environment: str = DEVELOPMENT
    database_url: str = field(default="", repr=False)
    # Replicas that take the read-only units of work (`Database.read()`); empty: the primary takes all.
    database_read_urls: tuple[str, ...] = field(default=(), repr=False)
    var_dir: Path = Path("var")
    did_domain: str = "localhost"
    jwt_signing_key: bytes | None = field(default=None, repr=False)
    jwt_lifetime_s: int = 300
    password_hash_iterations: int = 100_000
    db_pool_size: int = 5
    db_max_overflow: int = 10
    db_pool_timeout_s: float = 30.0
    # False behind a pooler in transaction mode (PgBouncer before 1.21): a statement prepared on
    # one server connection is unknown on the next.
    db_prepared_statements: bool = True
    sqlite_busy_timeout_ms: int = 30_000
    max_request_body_bytes: int = 20 * 1024 * 1024
    max_failed_logins: int = 3
    login_lockout_s: int = 60
    log_level: str = "INFO"
    tags_file: str | None = None
    max_message_recipients: int = 20
    max_unreceived_messages_from_one_sender: int = 20
    # Empty: development only, where any key is accepted; `serve-admin` refuses it elsewhere.
    admin_api_key: str = field(default="", repr=False)
    # The Admin UI: how long a sign-in lasts; wrong keys per client address before it waits.
    admin_ui_session_lifetime_s: int = 1800
    admin_ui_max_failed_sign_ins: int = 3
    admin_ui_lockout_s: int = 60
    blob_store: str = "local"
    blob_dir: Path | None = None
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = field(default="", repr=False)
    s3_bucket: str = "backbone-files"
    s3_secure: bool = True
    metrics_enabled: bool = True
    # Empty: `serve` makes a fresh temporary directory for prometheus-client's multiprocess files.
    metrics_dir: Path | None = None
    health_timeout_s: float = 2.0
    # The standard OpenTelemetry variables (the SDK leaves choosing the exporter to its caller).
    traces_exporter: str = "none"
    traces_sampler: str = "parentbased_always_on"
    traces_sampler_arg: float = 1.0
    bus: str = "inprocess"
    rabbitmq_url: str = field(default="amqp://127.0.0.1:5672/%2F", repr=False)
    rabbitmq_exchange: str = "enmeshed"
    # Lets several backbones share one broker vhost (tests do); production uses its own vhost.
    rabbitmq_queue_prefix: str = ""
    rabbitmq_max_handler_attempts: int = 5
    rabbitmq_prefetch: int = 20
    rabbitmq_consumer_threads: int = 2
    rabbitmq_connect_timeout_s: float = 2.0
    rabbitmq_reconnect_max_s: float = 10.0
    # Azure Service Bus: the namespace's connection string holds its key (never logged).
    servicebus_connection_string: str = field(default="", repr=False)
    servicebus_topic: str = "default"
    # False where the topic and subscriptions are provisioned otherwise (the emulator's config,
    # infrastructure code) or the key lacks the Manage right.
    servicebus_manage_topology: bool = True
    servicebus_max_handler_attempts: int = 5
    servicebus_prefetch: int = 10
    servicebus_retry_total: int = 2
    servicebus_retry_backoff_max_s: float = 10.0
    # What `BACKBONE_APPS_FILE` says about the apps (onboarding page, .well-known, public
    # references, the notifications identities may send each other).
    apps: Apps = field(default_factory=Apps)
    # The push connectors' credentials (`BACKBONE_PUSH_FILE`); without, every platform only logs.
    push: PushProviders = field(default_factory=PushProviders)
    push_timeout_s: float = 5.0
    push_max_attempts: int = 3
    push_max_retry_wait_s: float = 10.0
    push_concurrency: int = 8
    push_fcm_url: str = fcm.DEFAULT_URL
    push_apns_production_url: str = apns.PRODUCTION_URL
    push_apns_development_url: str = apns.DEVELOPMENT_URL
    push_ca_file: Path | None = None
    # The SSE server (`serve-sse`, docs/sse.md): streams one process holds at most, seconds
    # between keep-alive comments, events waiting on one stream before it is dropped as too slow,
    # and how long SIGTERM waits for the streams to close.
    sse_max_connections: int = 10_000
    sse_keepalive_s: float = 15.0
    sse_queue_size: int = 32
    sse_shutdown_timeout_s: float = 10.0
    # Where the push connector reaches the replica that holds a device's stream (recorded in the
    # device's `sse` registration); empty: http://<bound host>:<port>.
    sse_advertised_url: str = ""

    @property
    def development(self) -> bool:
        return self.environment == DEVELOPMENT

    @property
    def sqlite_path(self) -> Path:
        return self.var_dir / "backbone.sqlite3"

    @property
    def blob_path(self) -> Path:
        """The directory of the local blob store."""
        return self.blob_dir or self.var_dir / "blobs"

    @property
    def database_kind(self) -> str:
        """sqlite, postgresql or sqlserver."""
        if self.database_url.startswith("postgresql"):
            return "postgresql"
        return "sqlserver" if self.database_url.startswith("mssql") else "sqlite"

    @classmethod
    def from_process_env(cls) -> Settings:
        """Build settings from this process's environment."""
        return cls.from_env(os.environ)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from `BACKBONE_*` variables, reporting every problem at once."""
        read = _Reader(environ)
        database_url = _read_database_url(read)
        environment = read.choice(
            "ENVIRONMENT", DEVELOPMENT if not database_url else PRODUCTION, (DEVELOPMENT, PRODUCTION)
        )
        database_read_urls = _read_urls(read, database_url)
        var_dir = Path(read.text("VAR_DIR", "var"))
        key_text = read.text("JWT_SIGNING_KEY", "")
        if key_text and len(key_text) < 32:
            read.problem("BACKBONE_JWT_SIGNING_KEY must be at least 32 characters long")
        if not key_text and environment == PRODUCTION:
            read.problem("BACKBONE_JWT_SIGNING_KEY is required outside development mode")
        did_domain = read.text("DID_DOMAIN", "localhost").lower()
        if not (3 <= len(did_domain) <= 45 and _DOMAIN.match(did_domain)):
            read.problem(f"BACKBONE_DID_DOMAIN: '{did_domain}' is not a domain of 3 to 45 characters")
        blob_store = read.choice("BLOB_STORE", "local", ("local", "s3"))
        blob_dir = read.text("BLOB_DIR", "")
        s3_endpoint = read.text("S3_ENDPOINT", "")
        s3_access_key = read.text("S3_ACCESS_KEY", "")
        s3_secret_key = read.text("S3_SECRET_KEY", "")
        s3_bucket = read.text("S3_BUCKET", "backbone-files")
        s3_secure = read.boolean("S3_SECURE", True)
        if blob_store == "s3":
            for name, value in (
                ("S3_ENDPOINT", s3_endpoint),
                ("S3_ACCESS_KEY", s3_access_key),
                ("S3_SECRET_KEY", s3_secret_key),
            ):
                if not value:
                    read.problem(f"{PREFIX}{name} is required with BACKBONE_BLOB_STORE=s3")
            if "://" in s3_endpoint or "/" in s3_endpoint:
                read.problem(
                    f"{PREFIX}S3_ENDPOINT: '{s3_endpoint}' must be host:port (BACKBONE_S3_SECURE picks https)"
                )
        if not _BUCKET.match(s3_bucket):
            read.problem(f"{PREFIX}S3_BUCKET: '{s3_bucket}' is not a valid bucket name (3-63 of a-z 0-9 . -)")
        metrics_dir = read.text("METRICS_DIR", "")
        traces_exporter = _otel_choice(environ, read, "OTEL_TRACES_EXPORTER", "none", TRACES_EXPORTERS)
        traces_sampler = _otel_choice(
            environ, read, "OTEL_TRACES_SAMPLER", "parentbased_always_on", TRACES_SAMPLERS
        )
        traces_sampler_arg = _otel_ratio(environ, read, "OTEL_TRACES_SAMPLER_ARG")
        bus = read.choice("BUS", "inprocess", ("inprocess", "rabbitmq", "azureservicebus"))
        rabbitmq_url = read.text("RABBITMQ_URL", "amqp://127.0.0.1:5672/%2F")
        if not rabbitmq_url.startswith(("amqp://", "amqps://")):
            read.problem(
                f"{PREFIX}RABBITMQ_URL: '{_redact_url(rabbitmq_url)}' must start with amqp:// or amqps://"
            )
        rabbitmq_exchange = read.text("RABBITMQ_EXCHANGE", "enmeshed")
        rabbitmq_queue_prefix = read.text("RABBITMQ_QUEUE_PREFIX", "")
        for name, value in (
            ("RABBITMQ_EXCHANGE", rabbitmq_exchange),
            ("RABBITMQ_QUEUE_PREFIX", rabbitmq_queue_prefix),
        ):
            if not _AMQP_NAME.match(value) or (name == "RABBITMQ_EXCHANGE" and not value):
                read.problem(f"{PREFIX}{name}: '{value}' must be up to 100 of a-z A-Z 0-9 . _ -")
        servicebus_connection_string, servicebus_topic = _read_servicebus(
            read, required=bus == "azureservicebus"
        )
        settings = cls(
            environment=environment,
            database_url=database_url or f"sqlite:///{var_dir / 'backbone.sqlite3'}",
            database_read_urls=database_read_urls,
            var_dir=var_dir,
            did_domain=did_domain,
            jwt_signing_key=key_text.encode("utf-8") if key_text else None,
            jwt_lifetime_s=read.integer("JWT_LIFETIME_S", 300, 60, 3600),
            password_hash_iterations=read.integer("PASSWORD_HASH_ITERATIONS", 100_000, 1, 10_000_000),
            db_pool_size=read.integer("DB_POOL_SIZE", 5, 1, 1000),
            db_max_overflow=read.integer("DB_MAX_OVERFLOW", 10, 0, 1000),
            db_pool_timeout_s=read.number("DB_POOL_TIMEOUT_S", 30.0, 0.1, 600.0),
            db_prepared_statements=read.boolean("DB_PREPARED_STATEMENTS", True),
            sqlite_busy_timeout_ms=read.integer("SQLITE_BUSY_TIMEOUT_MS", 30_000, 0, 600_000),
            max_request_body_bytes=read.integer("MAX_REQUEST_BODY_BYTES", 20 * 1024 * 1024, 1024, 2**31),
            max_failed_logins=read.integer("MAX_FAILED_LOGINS", 3, 1, 1000),
            login_lockout_s=read.integer(
                "LOGIN_LOCKOUT_S", 60 if environment == DEVELOPMENT else 600, 0, 86_400
            ),
            log_level=read.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            tags_file=read.text("TAGS_FILE", "") or None,
            max_message_recipients=read.integer("MAX_MESSAGE_RECIPIENTS", 20, 1, 1000),
            max_unreceived_messages_from_one_sender=read.integer(
                "MAX_UNRECEIVED_MESSAGES_FROM_ONE_SENDER", 20, 1, 100
            ),
            admin_api_key=read.text("ADMIN_API_KEY", ""),
            admin_ui_session_lifetime_s=read.integer("ADMIN_UI_SESSION_LIFETIME_S", 1800, 60, 86_400),
            admin_ui_max_failed_sign_ins=read.integer("ADMIN_UI_MAX_FAILED_SIGN_INS", 3, 1, 1000),
            admin_ui_lockout_s=read.integer(
                "ADMIN_UI_LOCKOUT_S", 60 if environment == DEVELOPMENT else 600, 0, 86_400
            ),
            blob_store=blob_store,
            blob_dir=Path(blob_dir) if blob_dir else None,
            s3_endpoint=s3_endpoint,
            s3_access_key=s3_access_key,
            s3_secret_key=s3_secret_key,
            s3_bucket=s3_bucket,
            s3_secure=s3_secure,
            metrics_enabled=read.boolean("METRICS", True),
            metrics_dir=Path(metrics_dir) if metrics_dir else None,
            health_timeout_s=read.number("HEALTH_TIMEOUT_S", 2.0, 0.1, 60.0),
            traces_exporter=traces_exporter,
            traces_sampler=traces_sampler,
            traces_sampler_arg=traces_sampler_arg,
            bus=bus,
            rabbitmq_url=rabbitmq_url,
            rabbitmq_exchange=rabbitmq_exchange,
            rabbitmq_queue_prefix=rabbitmq_queue_prefix,
            rabbitmq_max_handler_attempts=read.integer("RABBITMQ_MAX_HANDLER_ATTEMPTS", 5, 1, 100),
            rabbitmq_prefetch=read.integer("RABBITMQ_PREFETCH", 20, 1, 1000),
            rabbitmq_consumer_threads=read.integer("RABBITMQ_CONSUMER_THREADS", 2, 1, 64),
            rabbitmq_connect_timeout_s=read.number("RABBITMQ_CONNECT_TIMEOUT_S", 2.0, 0.1, 60.0),
            rabbitmq_reconnect_max_s=read.number("RABBITMQ_RECONNECT_MAX_S", 10.0, 0.1, 600.0),
            servicebus_connection_string=servicebus_connection_string,
            servicebus_topic=servicebus_topic,
            servicebus_manage_topology=read.boolean("SERVICEBUS_MANAGE_TOPOLOGY", True),
            servicebus_max_handler_attempts=read.integer("SERVICEBUS_MAX_HANDLER_ATTEMPTS", 5, 1, 2000),
            servicebus_prefetch=read.integer("SERVICEBUS_PREFETCH", 10, 1, 1000),
            servicebus_retry_total=read.integer("SERVICEBUS_RETRY_TOTAL", 2, 0, 20),
            servicebus_retry_backoff_max_s=read.number("SERVICEBUS_RETRY_BACKOFF_MAX_S", 10.0, 0.1, 600.0),
            apps=_apps(read),
            push=_push(read),
            push_timeout_s=read.number("PUSH_TIMEOUT_S", 5.0, 0.1, 60.0),
            push_max_attempts=read.integer("PUSH_MAX_ATTEMPTS", 3, 1, 10),
            push_max_retry_wait_s=read.number("PUSH_MAX_RETRY_WAIT_S", 10.0, 0.0, 600.0),
            push_concurrency=read.integer("PUSH_CONCURRENCY", 8, 1, 256),
            push_fcm_url=read.https_url("PUSH_FCM_URL", fcm.DEFAULT_URL),
            push_apns_production_url=read.https_url("PUSH_APNS_PRODUCTION_URL", apns.PRODUCTION_URL),
            push_apns_development_url=read.https_url("PUSH_APNS_DEVELOPMENT_URL", apns.DEVELOPMENT_URL),
            push_ca_file=_ca_file(read),
            sse_max_connections=read.integer("SSE_MAX_CONNECTIONS", 10_000, 1, 1_000_000),
            sse_keepalive_s=read.number("SSE_KEEPALIVE_S", 15.0, 0.1, 300.0),
            sse_queue_size=read.integer("SSE_QUEUE_SIZE", 32, 1, 10_000),
            sse_shutdown_timeout_s=read.number("SSE_SHUTDOWN_TIMEOUT_S", 10.0, 0.1, 600.0),
            sse_advertised_url=read.http_url("SSE_ADVERTISED_URL", ""),
        )
        read.finish()
        return settings

    def describe(self) -> dict[str, str]:
        """Return the settings for logs and manifests, with secrets left out."""
        return {
            "environment": self.environment,
            "database": _redact_url(self.database_url),
            "database_read": ", ".join(map(_redact_url, self.database_read_urls)) or "(the primary)",
            "var_dir": str(self.var_dir),
            "did_domain": self.did_domain,
            "jwt_lifetime_s": str(self.jwt_lifetime_s),
            "password_hash_iterations": str(self.password_hash_iterations),
            "db_pool_size": str(self.db_pool_size),
            "db_max_overflow": str(self.db_max_overflow),
            "db_prepared_statements": str(self.db_prepared_statements).lower(),
            "traces": f"{self.traces_exporter} ({self.traces_sampler}, {self.traces_sampler_arg})",
            "blob_store": self.blob_store
            + (f" {self.s3_endpoint}/{self.s3_bucket}" if self.blob_store == "s3" else f" {self.blob_path}"),
            "bus": self.bus + self._bus_description(),
            "push": ", ".join(
                f"{platform} {len(apps)} app(s)" if apps is not None else f"{platform} log only"
                for platform, apps in (("fcm", self.push.fcm), ("apns", self.push.apns))
            ),
        }

    def _bus_description(self) -> str:
        if self.bus == "rabbitmq":
            return f" {_redact_url(self.rabbitmq_url)} exchange {self.rabbitmq_exchange}"
        if self.bus == "azureservicebus":
            return f" {servicebus_endpoint(self.servicebus_connection_string)} topic {self.servicebus_topic}"
        return ""


class _Reader:
    """Read prefixed variables, collecting problems instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._seen: set[str] = set()
        self._problems: list[str] = []

    def problem(self, message: str) -> None:
        self._problems.append(message)

    def text(self, name: str, default: str) -> str:
        self._seen.add(PREFIX + name)
        return self._environ.get(PREFIX + name, default).strip()

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default)
        matches = [option for option in allowed if option.lower() == value.lower()]
        if not matches:
            self.problem(f"{PREFIX}{name}: '{value}' is not one of {', '.join(allowed)}")
            return default
        return matches[0]

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.text(name, "").lower()
        if not raw:
            return default
        if raw in ("true", "1", "yes"):
            return True
        if raw in ("false", "0", "no"):
            return False
        self.problem(f"{PREFIX}{name}: '{raw}' is not true or false")
        return default

    def https_url(self, name: str, default: str) -> str:
        value = self.text(name, default)
        if not re.match(r"^https://[^/\s]+(/\S*)?$", value):
            self.problem(f"{PREFIX}{name}: '{value}' is not an https URL")
            return default
        return value

    def http_url(self, name: str, default: str) -> str:
        value = self.text(name, default)
        if value and not re.match(r"^https?://[^/\s]+/?$", value):
            self.problem(f"{PREFIX}{name}: '{value}' is not an http(s) URL of a host and port")
            return default
        return value.rstrip("/")

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        return self._bounded(name, default, minimum, maximum, int, "an integer")

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        return self._bounded(name, default, minimum, maximum, float, "a number")

    def _bounded(
        self, name: str, default: _T, minimum: _T, maximum: _T, parse: Callable[[str], _T], kind: str
    ) -> _T:
        raw = self.text(name, "")
        if not raw:
            return default
        try:
            value = parse(raw)
        except ValueError:
            self.problem(f"{PREFIX}{name}: '{raw}' is not {kind}")
            return default
        if not minimum <= value <= maximum:  # type: ignore[operator]
            self.problem(f"{PREFIX}{name}: {value} is outside {minimum}..{maximum}")
            return default
        return value

    def finish(self) -> None:
        unknown = sorted(key for key in self._environ if key.startswith(PREFIX) and key not in self._seen)
        self._problems.extend(f"{key} is not a known setting" for key in unknown)
        if self._problems:
            raise SettingsError(self._problems)


# SQLite, PostgreSQL through psycopg 3, SQL Server through pyodbc (an ODBC driver such as FreeTDS
# or Microsoft's named by `?driver=`).
DATABASE_SCHEMES = ("sqlite:///", "postgresql+psycopg://", "mssql+pyodbc://")
TRACES_EXPORTERS = ("none", "console", "otlp")
TRACES_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)


def _apps(read: _Reader) -> Apps:
    """The apps file, when one is named; its problems join the others."""
    path = read.text("APPS_FILE", "")
    if not path:
        return Apps()
    apps, problems = read_apps_file(Path(path))
    for problem in problems:
        read.problem(f"{PREFIX}APPS_FILE: {problem}")
    return apps


def _push(read: _Reader) -> PushProviders:
    """The push file's credentials, when one is named; its problems join the others."""
    path = read.text("PUSH_FILE", "")
    if not path:
        return PushProviders()
    providers, problems = read_push_file(Path(path))
    for problem in problems:
        read.problem(f"{PREFIX}PUSH_FILE: {problem}")
    return providers


def _ca_file(read: _Reader) -> Path | None:
    path = read.text("PUSH_CA_FILE", "")
    if not path:
        return None
    try:
        ssl.create_default_context().load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError) as error:
        read.problem(f"{PREFIX}PUSH_CA_FILE: {path} holds no CA certificate in PEM ({error})")
        return None
    return Path(path)


def _otel_choice(
    environ: Mapping[str, str], read: _Reader, name: str, default: str, allowed: tuple[str, ...]
) -> str:
    value = environ.get(name, "").strip().lower() or default
    if value not in allowed:
        read.problem(f"{name}: '{value}' is not one of {', '.join(allowed)}")
        return default
    return value


def _otel_ratio(environ: Mapping[str, str], read: _Reader, name: str) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        read.problem(f"{name}: '{raw}' is not a number")
        return 1.0
    if not 0.0 <= value <= 1.0:
        read.problem(f"{name}: {value} is outside 0..1")
        return 1.0
    return value


def _read_urls(read: _Reader, database_url: str) -> tuple[str, ...]:
    """The replicas' URLs (comma-separated): PostgreSQL, and only beside a PostgreSQL primary."""
    urls = tuple(
        _normalise_database_url(url.strip()) for url in read.text("DATABASE_READ_URLS", "").split(",")
    )
    urls = tuple(url for url in urls if url)
    if urls and not database_url.startswith("postgresql"):
        read.problem(
            f"{PREFIX}DATABASE_READ_URLS needs a PostgreSQL primary in {PREFIX}DATABASE_URL "
            "(SQLite has no replicas)"
        )
    for url in urls:
        if not url.startswith("postgresql"):
            read.problem(
                f"{PREFIX}DATABASE_READ_URLS: '{_redact_url(url)}' is not a postgresql:// URL of a replica"
            )
    return urls


def _normalise_database_url(url: str) -> str:
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def _read_database_url(read: _Reader) -> str:
    database_url = _normalise_database_url(read.text("DATABASE_URL", ""))
    if database_url and not database_url.startswith(DATABASE_SCHEMES):
        read.problem(
            f"{PREFIX}DATABASE_URL: '{_redact_url(database_url)}' must start with "
            + ", ".join(DATABASE_SCHEMES)
        )
    return database_url


def _read_servicebus(read: _Reader, *, required: bool) -> tuple[str, str]:
    """The Service Bus connection string (checked when the bus is chosen) and topic."""
    connection_string = read.text("SERVICEBUS_CONNECTION_STRING", "")
    if required and (problem := _servicebus_connection_string_problem(connection_string)):
        read.problem(f"{PREFIX}SERVICEBUS_CONNECTION_STRING {problem}")
    topic = read.text("SERVICEBUS_TOPIC", "default")
    if not _SERVICEBUS_NAME.match(topic):
        read.problem(f"{PREFIX}SERVICEBUS_TOPIC: '{topic}' must be 1-260 of a-z A-Z 0-9 . _ - /")
    return connection_string, topic


def _servicebus_parts(connection_string: str) -> dict[str, str]:
    parts = {}
    for part in connection_string.split(";"):
        name, separator, value = part.partition("=")
        if separator:
            parts[name.strip().lower()] = value.strip()
    return parts


def servicebus_endpoint(connection_string: str) -> str:
    """The namespace a Service Bus connection string names, without its key (for logs)."""
    return _servicebus_parts(connection_string).get("endpoint", "(no endpoint)")


def _servicebus_connection_string_problem(connection_string: str) -> str | None:
    """What is wrong with a Service Bus connection string (never quoting it: it holds the key)."""
    if not connection_string:
        return "is required with BACKBONE_BUS=azureservicebus"
    parts = _servicebus_parts(connection_string)
    if not parts.get("endpoint", "").startswith("sb://"):
        return "must name the namespace as Endpoint=sb://..."
    if not (
        ("sharedaccesskeyname" in parts and "sharedaccesskey" in parts) or "sharedaccesssignature" in parts
    ):
        return "must carry SharedAccessKeyName and SharedAccessKey, or a SharedAccessSignature"
    return None


def _redact_url(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
