"""A landscape as a docker compose file, with its gateway's and Prometheus's configurations.

The compose files stay within Debian's docker-compose 1.29 (no `include`, no `develop`, one
service per node instead of `deploy.replicas`, which 1.29 ignores outside `--compatibility`).
Every secret comes from compose/.env, which is never committed.
"""

from __future__ import annotations

import json
from typing import Any

from backbone.platform.servicebus import subscriptions_of
from backbone.wiring import subscribed_handlers
from scenarios.landscape import LandscapeProfile
from testbed.deploy.landscape import (
    ADMIN_API_PORT,
    COMPOSE_DIR,
    CONSUMER_API_PORT,
    GATEWAY_PORTS,
    GENERATED_BY,
    GRAFANA_IMAGE,
    HAPROXY_IMAGE,
    IMAGE,
    LOCUST_WORKERS,
    MINIO_IMAGE,
    POSTGRES_EXPORTER_IMAGE,
    POSTGRES_EXPORTER_PORT,
    POSTGRES_IMAGE,
    PROMETHEUS_IMAGE,
    RABBITMQ_IMAGE,
    RABBITMQ_METRICS_PORT,
    SERVICEBUS_EMULATOR_IMAGE,
    SQLSERVER_IMAGE,
    WORKER_METRICS_PORT,
    Rendered,
    backbone_settings,
    gateway_names,
    header,
    locust_master_arguments,
    locust_worker_arguments,
    node_names,
    serve_arguments,
    to_yaml,
    worker_names,
)
from testbed.landscape.gateway import haproxy_config

# Which compose variable holds each secret; compose/.env (never committed) sets them.
_SECRET_VARIABLES = (
    "POSTGRES_PASSWORD",
    "RABBITMQ_PASSWORD",
    "MINIO_PASSWORD",
    "ADMIN_API_KEY",
    "JWT_SIGNING_KEY",
    "GRAFANA_PASSWORD",
    "MSSQL_SA_PASSWORD",
)
GATEWAY_CERTIFICATE_SECRET = "gateway-certificate"  # noqa: S105 - a name, not a value


def secret(variable: str) -> str:
    """A compose reference to a secret of compose/.env; compose refuses to start without it."""
    assert variable in _SECRET_VARIABLES
    return f"${{{variable}:?set {variable} in compose/.env (docs/deploy.md)}}"


def _compose_backbone_environment(profile: LandscapeProfile, *, admin: bool = False) -> dict[str, str]:
    environment = backbone_settings(profile)
    if profile.database.kind == "postgresql":
        environment["BACKBONE_DATABASE_URL"] = (
            f"postgresql://backbone:{secret('POSTGRES_PASSWORD')}@postgres:5432/backbone"
        )
    else:
        environment["BACKBONE_VAR_DIR"] = "/var/lib/backbone"
    if profile.environment == "production":
        environment["BACKBONE_JWT_SIGNING_KEY"] = secret("JWT_SIGNING_KEY")
    if profile.bus.kind == "rabbitmq":
        environment["BACKBONE_RABBITMQ_URL"] = f"amqp://backbone:{secret('RABBITMQ_PASSWORD')}@rabbitmq:5672/"
    if profile.blob_store.kind == "s3":
        environment |= {
            "BACKBONE_S3_ENDPOINT": "minio:9000",
            "BACKBONE_S3_SECURE": "false",
            "BACKBONE_S3_ACCESS_KEY": "backbone",
            "BACKBONE_S3_SECRET_KEY": secret("MINIO_PASSWORD"),
        }
    if admin:
        environment["BACKBONE_ADMIN_API_KEY"] = secret("ADMIN_API_KEY")
    return environment


def compose_file(profile: LandscapeProfile) -> dict[str, Any]:
    """The compose file of a landscape: what `up` would start, as containers on one host."""
    services: dict[str, Any] = {}
    volumes: dict[str, Any] = {}
    database_dependency: dict[str, Any] = {}
    if profile.database.kind == "postgresql":
        services["postgres"] = _limited(
            {
                "image": POSTGRES_IMAGE,
                "command": [
                    "postgres",
                    "-c",
                    f"max_connections={profile.database.max_connections}",
                    "-c",
                    f"shared_buffers={profile.database.shared_buffers}",
                    "-c",
                    f"work_mem={profile.database.work_mem}",
                ],
                "environment": {
                    "POSTGRES_USER": "backbone",
                    "POSTGRES_DB": "backbone",
                    "POSTGRES_PASSWORD": secret("POSTGRES_PASSWORD"),
                },
                "volumes": ["postgres-data:/var/lib/postgresql/data"],
                "healthcheck": {
                    "test": ["CMD", "pg_isready", "--username", "backbone", "--dbname", "backbone"],
                    "interval": "5s",
                    "timeout": "5s",
                    "retries": 12,
                },
                "restart": "unless-stopped",
            },
            profile.database.cpu_limit,
        )
        services["postgres-exporter"] = {
            "image": POSTGRES_EXPORTER_IMAGE,
            "environment": {
                "DATA_SOURCE_URI": "postgres:5432/backbone?sslmode=disable",
                "DATA_SOURCE_USER": "backbone",
                "DATA_SOURCE_PASS": secret("POSTGRES_PASSWORD"),
            },
            "depends_on": {"postgres": {"condition": "service_healthy"}},
            "restart": "unless-stopped",
        }
        volumes["postgres-data"] = {}
        database_dependency = {"postgres": {"condition": "service_healthy"}}
    else:
        volumes["backbone-var"] = {}
    if profile.bus.kind == "rabbitmq":
        services["rabbitmq"] = {
            "image": RABBITMQ_IMAGE,
            "environment": {
                "RABBITMQ_DEFAULT_USER": "backbone",
                "RABBITMQ_DEFAULT_PASS": secret("RABBITMQ_PASSWORD"),
            },
            "volumes": ["rabbitmq-data:/var/lib/rabbitmq"],
            "healthcheck": {
                "test": ["CMD", "rabbitmq-diagnostics", "-q", "ping"],
                "interval": "10s",
                "timeout": "10s",
                "retries": 12,
            },
            "restart": "unless-stopped",
        }
        volumes["rabbitmq-data"] = {}
    if profile.blob_store.kind == "s3":
        services["minio"] = _limited(
            {
                "image": MINIO_IMAGE,
                "command": ["server", "/data"],
                "environment": {
                    "MINIO_ROOT_USER": "backbone",
                    "MINIO_ROOT_PASSWORD": secret("MINIO_PASSWORD"),
                },
                "volumes": ["minio-data:/data"],
                "restart": "unless-stopped",
            },
            profile.blob_store.cpu_limit,
        )
        volumes["minio-data"] = {}

    def backbone(command: list[str], *, admin: bool = False, health_port: int) -> dict[str, Any]:
        service: dict[str, Any] = {
            "build": {"context": "..", "dockerfile": "compose/Dockerfile"},
            "image": IMAGE,
            "command": command,
            "environment": _compose_backbone_environment(profile, admin=admin)
            | {"HEALTH_PORT": str(health_port)},
            "restart": "unless-stopped",
        }
        if profile.database.kind != "postgresql":
            service["volumes"] = ["backbone-var:/var/lib/backbone"]
        return service

    migrate = backbone(["migrate"], health_port=CONSUMER_API_PORT)
    migrate["restart"] = "no"
    if database_dependency:
        migrate["depends_on"] = database_dependency
    services["migrate"] = migrate
    after_migrate = {"migrate": {"condition": "service_completed_successfully"}} | {
        name: {"condition": "service_healthy"} for name in ("rabbitmq",) if name in services
    }
    nodes = profile.nodes
    for name in node_names(profile):
        node = backbone(
            serve_arguments("serve", CONSUMER_API_PORT, nodes.workers, nodes.threads),
            health_port=CONSUMER_API_PORT,
        )
        node["depends_on"] = after_migrate
        if profile.gateway.instances == 0:
            node["ports"] = [f"{CONSUMER_API_PORT}:{CONSUMER_API_PORT}"]
        services[name] = _limited(node, nodes.cpu_limit)
    admin = backbone(
        serve_arguments("serve-admin", ADMIN_API_PORT, profile.admin_api.workers),
        admin=True,
        health_port=ADMIN_API_PORT,
    )
    admin["depends_on"] = after_migrate
    # The Admin API is the operator's: reachable from the host only.
    admin["ports"] = [f"127.0.0.1:{ADMIN_API_PORT}:{ADMIN_API_PORT}"]
    services["admin-api"] = _limited(admin, profile.admin_api.cpu_limit)
    for name in worker_names(profile):
        worker = backbone(
            ["worker", "--host", "0.0.0.0", "--metrics-port", str(WORKER_METRICS_PORT)],  # noqa: S104
            health_port=WORKER_METRICS_PORT,
        )
        worker["depends_on"] = after_migrate
        services[name] = _limited(worker, profile.worker.cpu_limit)
    for index, name in enumerate(gateway_names(profile)):
        services[name] = _limited(
            {
                "image": HAPROXY_IMAGE,
                "volumes": [f"./haproxy/{profile.name}.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"],
                "secrets": [GATEWAY_CERTIFICATE_SECRET],
                "ports": [f"{GATEWAY_PORTS.public + index}:{GATEWAY_PORTS.public}"],
                "depends_on": node_names(profile),
                "restart": "unless-stopped",
            },
            profile.gateway.cpu_limit,
        )
    services["prometheus"] = {
        "image": PROMETHEUS_IMAGE,
        "volumes": [
            f"./prometheus/{profile.name}.yml:/etc/prometheus/prometheus.yml:ro",
            "../dashboards/prometheus/rules:/etc/prometheus/rules:ro",
            "prometheus-data:/prometheus",
        ],
        "ports": ["127.0.0.1:9090:9090"],
        "restart": "unless-stopped",
    }
    services["grafana"] = {
        "image": GRAFANA_IMAGE,
        "environment": {
            "GF_SECURITY_ADMIN_PASSWORD": secret("GRAFANA_PASSWORD"),
            "GF_USERS_ALLOW_SIGN_UP": "false",
        },
        "volumes": [
            "../dashboards/grafana/provisioning:/etc/grafana/provisioning:ro",
            "../dashboards/grafana:/var/lib/grafana/dashboards:ro",
            "grafana-data:/var/lib/grafana",
        ],
        "ports": ["127.0.0.1:3000:3000"],
        "depends_on": ["prometheus"],
        "restart": "unless-stopped",
    }
    volumes |= {"prometheus-data": {}, "grafana-data": {}}
    services |= _opt_in_services(profile)
    volumes["sqlserver-data"] = {}
    document: dict[str, Any] = {"services": services, "volumes": volumes}
    if profile.gateway.instances:
        document["secrets"] = {GATEWAY_CERTIFICATE_SECRET: {"file": "./secrets/gateway.pem"}}
    return document


def _opt_in_services(profile: LandscapeProfile) -> dict[str, Any]:
    """The `load`, `sqlserver` and `servicebus` profiles: started only when named."""
    target = (
        f"https://{gateway_names(profile)[0]}:{GATEWAY_PORTS.public}"
        if profile.gateway.instances
        else f"http://{node_names(profile)[0]}:{CONSUMER_API_PORT}"
    )
    # The image's health check asks a backbone port; Locust serves none of them.
    locust = {
        "image": IMAGE,
        "entrypoint": ["python", "-m", "locust"],
        "healthcheck": {"disable": True},
        "profiles": ["load"],
    }
    services: dict[str, Any] = {
        "locust-master": locust
        | {
            "command": [*locust_master_arguments(target), "--expect-workers", str(LOCUST_WORKERS)],
            "ports": ["127.0.0.1:8089:8089"],
        }
    }
    for index in range(1, LOCUST_WORKERS + 1):
        services[f"locust-worker-{index}"] = locust | {
            "command": locust_worker_arguments("locust-master"),
            "depends_on": ["locust-master"],
        }
    sqlserver = {
        "image": SQLSERVER_IMAGE,
        "environment": {"ACCEPT_EULA": "Y", "MSSQL_SA_PASSWORD": secret("MSSQL_SA_PASSWORD")},
        "volumes": ["sqlserver-data:/var/opt/mssql"],
        "profiles": ["sqlserver"],
    }
    services["sqlserver"] = sqlserver | {"ports": ["127.0.0.1:1433:1433"]}
    # The emulator keeps its state in a SQL Server of its own, apart from the backbone's.
    services["servicebus-sqlserver"] = sqlserver | {"profiles": ["servicebus"], "volumes": []}
    services["servicebus-emulator"] = {
        "image": SERVICEBUS_EMULATOR_IMAGE,
        "environment": {
            "ACCEPT_EULA": "Y",
            "SQL_SERVER": "servicebus-sqlserver",
            "MSSQL_SA_PASSWORD": secret("MSSQL_SA_PASSWORD"),
        },
        "volumes": ["./servicebus/Config.json:/ServiceBus_Emulator/ConfigFiles/Config.json:ro"],
        "ports": ["127.0.0.1:5672:5672"],
        "depends_on": ["servicebus-sqlserver"],
        "profiles": ["servicebus"],
    }
    return services


def _limited(service: dict[str, Any], cpu_limit: float | None) -> dict[str, Any]:
    """A service with the profile's CPU budget (`cpus`, which 1.29 enforces), when it has one."""
    return service | {"cpus": cpu_limit} if cpu_limit is not None else service


def prometheus_config(profile: LandscapeProfile) -> dict[str, Any]:
    """What Prometheus scrapes in a compose landscape, and the rules of dashboards/."""
    targets = {
        "consumer-api": [f"{name}:{CONSUMER_API_PORT}" for name in node_names(profile)],
        "admin-api": [f"admin-api:{ADMIN_API_PORT}"],
        "worker": [f"{name}:{WORKER_METRICS_PORT}" for name in worker_names(profile)],
        "gateway": [f"{name}:{GATEWAY_PORTS.operator}" for name in gateway_names(profile)],
        "postgres": [f"postgres-exporter:{POSTGRES_EXPORTER_PORT}"]
        if profile.database.kind == "postgresql"
        else [],
        "rabbitmq": [f"rabbitmq:{RABBITMQ_METRICS_PORT}"] if profile.bus.kind == "rabbitmq" else [],
    }
    return {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": ["/etc/prometheus/rules/*.yml"],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": hosts}]}
            for job, hosts in targets.items()
            if hosts
        ],
    }


def compose_files(profile: LandscapeProfile) -> list[Rendered]:
    files = [
        Rendered(COMPOSE_DIR / f"{profile.name}.yml", header(profile) + to_yaml(compose_file(profile))),
        Rendered(
            COMPOSE_DIR / "prometheus" / f"{profile.name}.yml",
            header(profile) + to_yaml(prometheus_config(profile)),
        ),
    ]
    if profile.gateway.instances:
        config = haproxy_config(
            profile.gateway,
            GATEWAY_PORTS,
            [],
            f"of the {profile.name} compose landscape",
            listen_host="*",
            node_addresses=[f"{name}:{CONSUMER_API_PORT}" for name in node_names(profile)],
            tls_certificate=f"/run/secrets/{GATEWAY_CERTIFICATE_SECRET}",
            generated_by=GENERATED_BY,
        )
        files.append(Rendered(COMPOSE_DIR / "haproxy" / f"{profile.name}.cfg", config))
    return files


def servicebus_emulator_config() -> str:
    """The emulator's entities: the backbone's topic and one subscription per handler.

    The emulator has no management API, so the worker cannot create its subscriptions there
    (`BACKBONE_SERVICEBUS_MANAGE_TOPOLOGY=false`); they are declared here, from the handlers.
    """
    subscriptions = [
        {
            "Name": subscription.name,
            "Properties": {"MaxDeliveryCount": 10, "LockDuration": "PT1M", "RequiresSession": False},
            "Rules": [
                {
                    "Name": subscription.rule_name,
                    "Properties": {
                        "FilterType": "Correlation",
                        "CorrelationFilter": {"Label": subscription.event_name},
                    },
                }
            ],
        }
        for subscription in subscriptions_of(subscribed_handlers())
    ]
    config = {
        "UserConfig": {
            "Namespaces": [
                {
                    "Name": "sbemulatorns",
                    "Queues": [],
                    "Topics": [{"Name": "default", "Properties": {}, "Subscriptions": subscriptions}],
                }
            ],
            "Logging": {"Type": "Console"},
        }
    }
    return json.dumps(config, indent=2) + "\n"
