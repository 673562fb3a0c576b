"""Render every landscape profile as a docker compose file and a Kubernetes overlay.

`testbed deploy render` writes what `render_files()` returns under `compose/`; `--check` compares
instead. The profile is the one source of every scaling option: node, worker and gateway counts,
gunicorn workers and threads, pool sizes and CPU budgets appear in the compose file and in the
overlay exactly as `scenarios/landscapes/<name>.toml` states them, and a test reads them back.

The compose files stay within Debian's docker-compose 1.29 (no `include`, no `develop`, one
service per node instead of `deploy.replicas`, which 1.29 ignores outside `--compatibility`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from backbone.platform.servicebus import subscriptions_of
from backbone.wiring import subscribed_handlers
from scenarios.landscape import LandscapeProfile, load_profile
from testbed.landscape.gateway import GatewayPorts, haproxy_config

REPOSITORY = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPOSITORY / "compose"
LANDSCAPES = ("dev", "stage", "prod")
GENERATED_BY = "`testbed deploy render`"

# Images of what the backbone uses, pinned so that every landscape runs what was written down.
IMAGE = f"backbone-testbed:{version('backbone-testbed')}"
POSTGRES_IMAGE = "postgres:15.10-bookworm"
RABBITMQ_IMAGE = "rabbitmq:4.0.5-management-alpine"
MINIO_IMAGE = "minio/minio:RELEASE.2025-04-22T22-12-26Z"
HAPROXY_IMAGE = "haproxy:3.0.7"
HAPROXY_USER_ID = 99
PROMETHEUS_IMAGE = "prom/prometheus:v3.1.0"
GRAFANA_IMAGE = "grafana/grafana:11.6.0"
POSTGRES_EXPORTER_IMAGE = "quay.io/prometheuscommunity/postgres-exporter:v0.16.0"
SQLSERVER_IMAGE = "mcr.microsoft.com/mssql/server:2022-CU16-ubuntu-22.04"
SERVICEBUS_EMULATOR_IMAGE = "mcr.microsoft.com/azure-messaging/servicebus-emulator:1.1.2"

CONSUMER_API_PORT = 8080
ADMIN_API_PORT = 8081
WORKER_METRICS_PORT = 9444
# Unprivileged ports: the HAProxy image runs as its own user, which cannot bind 443.
GATEWAY_PORTS = GatewayPorts(public=8443, operator=8404)
POSTGRES_EXPORTER_PORT = 9187
RABBITMQ_METRICS_PORT = 15692
LOCUST_WORKERS = 2
# An HPA may add up to this many times the profile's count; the profile's count is its minimum.
AUTOSCALING_FACTOR = 4
HPA_CPU_UTILIZATION_PERCENT = 80

# Where a role runs without a CPU budget in its profile: the original's Helm requests and limits.
_DEFAULT_RESOURCES = {
    "consumer-api": ("200m", "400m", "128Mi", "1Gi"),
    "other": ("50m", "200m", "64Mi", "512Mi"),
}
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


@dataclass(frozen=True)
class Rendered:
    """One generated file: its path under the repository and its text."""

    path: Path
    text: str


def render_files() -> list[Rendered]:
    """Every generated file of every shipped landscape."""
    files: list[Rendered] = []
    for name in LANDSCAPES:
        profile = load_profile(name)
        files += _compose_files(profile)
        files += _overlay_files(profile)
    files.append(Rendered(COMPOSE_DIR / "servicebus" / "Config.json", servicebus_emulator_config()))
    files += [
        Rendered(COMPOSE_DIR / "kubernetes" / "base" / f"{name}.yaml", _documents(objects))
        for name, objects in kubernetes_base().items()
    ]
    files.append(
        Rendered(COMPOSE_DIR / "kubernetes" / "base" / "kustomization.yaml", _yaml(base_kustomization()))
    )
    files.append(
        Rendered(COMPOSE_DIR / "kubernetes" / "load" / "kustomization.yaml", _yaml(load_kustomization()))
    )
    files.append(Rendered(COMPOSE_DIR / "kubernetes" / "load" / "locust.yaml", _documents(locust_objects())))
    return files


# ---------------------------------------------------------------------------------------------
# The backbone's settings of a landscape


def backbone_settings(profile: LandscapeProfile) -> dict[str, str]:
    """The `BACKBONE_*` settings the profile decides (no secrets, no host names of compose)."""
    settings = {
        "BACKBONE_ENVIRONMENT": profile.environment,
        "BACKBONE_DB_POOL_SIZE": str(profile.database.pool_size),
        "BACKBONE_DB_MAX_OVERFLOW": str(profile.database.max_overflow),
        "BACKBONE_BUS": profile.bus.kind,
        "BACKBONE_BLOB_STORE": profile.blob_store.kind,
    }
    if profile.blob_store.kind == "s3":
        settings["BACKBONE_S3_BUCKET"] = profile.blob_store.bucket
    settings.update({f"BACKBONE_{key}": value for key, value in sorted(profile.backbone.items())})
    return settings


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


# ---------------------------------------------------------------------------------------------
# docker compose


def node_names(profile: LandscapeProfile) -> list[str]:
    return [f"consumer-api-{index}" for index in range(1, profile.nodes.count + 1)]


def worker_names(profile: LandscapeProfile) -> list[str]:
    return [f"worker-{index}" for index in range(1, profile.worker.replicas + 1)]


def gateway_names(profile: LandscapeProfile) -> list[str]:
    return [f"gateway-{index}" for index in range(1, profile.gateway.instances + 1)]


def serve_arguments(command: str, port: int, workers: int, threads: int | None = None) -> list[str]:
    arguments = [command, "--host", "0.0.0.0", "--port", str(port), "--workers", str(workers)]  # noqa: S104
    return arguments + (["--threads", str(threads)] if threads is not None else [])


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


def locust_master_arguments(target: str) -> list[str]:
    return [
        "-f",
        "/app/loadtests/locustfile.py",
        "--master",
        "--headless",
        "--scenario",
        "/app/scenarios/smoke.toml",
        "--host",
        target,
    ]


def locust_worker_arguments(master: str) -> list[str]:
    return ["-f", "/app/loadtests/locustfile.py", "--worker", "--master-host", master]


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


def _compose_files(profile: LandscapeProfile) -> list[Rendered]:
    source = profile.source.relative_to(REPOSITORY)
    header = f"# Generated by {GENERATED_BY} from {source}; change the profile, not this file.\n"
    files = [
        Rendered(COMPOSE_DIR / f"{profile.name}.yml", header + _yaml(compose_file(profile))),
        Rendered(
            COMPOSE_DIR / "prometheus" / f"{profile.name}.yml", header + _yaml(prometheus_config(profile))
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


# ---------------------------------------------------------------------------------------------
# Kubernetes

_PART_OF = "backbone"
SETTINGS_CONFIG_MAP = "backbone-settings"
GATEWAY_CONFIG_MAP = "gateway-config"
# Created by the operator (docs/deploy.md); the manifests name them and hold no value.
BACKBONE_SECRET = "backbone-secrets"  # noqa: S105 - names, not values
ADMIN_API_SECRET = "admin-api-secrets"  # noqa: S105
GATEWAY_TLS_SECRET = "gateway-tls"  # noqa: S105
GATEWAY_CERTIFICATE_PATH = "/etc/haproxy/tls/gateway.pem"
PROMETHEUS_POD_LABELS = {"app.kubernetes.io/name": "prometheus"}
OPERATOR_POD_LABELS = {"backbone.testbed/operator": "true"}


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": _PART_OF}


def _resources(role: str, cpu_limit: float | None) -> dict[str, Any]:
    """Requests and limits: the profile's budget as both, or the original's defaults."""
    cpu_request, cpu_max, memory_request, memory_max = _DEFAULT_RESOURCES.get(
        role, _DEFAULT_RESOURCES["other"]
    )
    if cpu_limit is not None:
        cpu_request = cpu_max = millicores(cpu_limit)
    return {
        "requests": {"cpu": cpu_request, "memory": memory_request},
        "limits": {"cpu": cpu_max, "memory": memory_max},
    }


def millicores(cores: float) -> str:
    return f"{round(cores * 1000)}m"


def _probe(port: str) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/health", "port": port},
        "initialDelaySeconds": 10,
        "periodSeconds": 30,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }


_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def _backbone_container(
    name: str, arguments: list[str], *, port: tuple[str, int] | None, role: str, admin: bool = False
) -> dict[str, Any]:
    env_from: list[dict[str, Any]] = [
        {"configMapRef": {"name": SETTINGS_CONFIG_MAP}},
        {"secretRef": {"name": BACKBONE_SECRET}},
    ]
    if admin:
        env_from.append({"secretRef": {"name": ADMIN_API_SECRET}})
    container: dict[str, Any] = {
        "name": name,
        "image": IMAGE,
        "args": arguments,
        "envFrom": env_from,
        "resources": _resources(role, None),
        "securityContext": _SECURITY_CONTEXT,
    }
    if port is not None:
        port_name, number = port
        container["ports"] = [{"name": port_name, "containerPort": number}]
        container["readinessProbe"] = _probe(port_name)
        container["livenessProbe"] = _probe(port_name)
    return container


def _deployment(
    name: str, container: dict[str, Any], *, volumes: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A Deployment without `replicas`: its HPA or its overlay decides how many pods run."""
    pod_spec: dict[str, Any] = {"containers": [container]}
    if volumes:
        pod_spec["volumes"] = volumes
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {
            "selector": {"matchLabels": _labels(name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": _labels(name)}, "spec": pod_spec},
        },
    }


def _service(
    name: str, port: int, *, service_type: str = "ClusterIP", target: int | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {
            "type": service_type,
            "selector": _labels(name),
            "ports": [{"name": "http", "port": port, "targetPort": target or port}],
        },
    }


def _hpa(name: str) -> dict[str, Any]:
    """CPU-based autoscaling of a Deployment (autoscaling/v2; the original's v2beta1 is gone)."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1,
            "maxReplicas": AUTOSCALING_FACTOR,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": HPA_CPU_UTILIZATION_PERCENT},
                    },
                }
            ],
        },
    }


def _job_spec(name: str, arguments: list[str], backoff_limit: int) -> dict[str, Any]:
    container = _backbone_container(name, arguments, port=None, role="job")
    return {
        "backoffLimit": backoff_limit,
        "template": {
            "metadata": {"labels": _labels(name)},
            "spec": {"restartPolicy": "Never", "containers": [container]},
        },
    }


def _cron_job(name: str, schedule: str, arguments: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": _job_spec(name, arguments, backoff_limit=0)},
        },
    }


def _ingress_from(*selectors: Mapping[str, str], port: int, any_namespace: bool = False) -> dict[str, Any]:
    sources = []
    for labels in selectors:
        source: dict[str, Any] = {"podSelector": {"matchLabels": dict(labels)}}
        if any_namespace:
            source["namespaceSelector"] = {}
        sources.append(source)
    return {"from": sources, "ports": [{"protocol": "TCP", "port": port}]}


def _network_policy(name: str, pod: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": _labels(pod)},
        "spec": {"podSelector": {"matchLabels": _labels(pod)}, "policyTypes": ["Ingress"], "ingress": rules},
    }


def kubernetes_base() -> dict[str, list[dict[str, Any]]]:
    """The base's objects by file; the overlays set every number the profile decides."""
    consumer_api = _deployment(
        "consumer-api",
        _backbone_container(
            "consumer-api",
            serve_arguments("serve", CONSUMER_API_PORT, 2, 4),
            port=("http", CONSUMER_API_PORT),
            role="consumer-api",
        ),
    )
    admin_api = _deployment(
        "admin-api",
        _backbone_container(
            "admin-api",
            serve_arguments("serve-admin", ADMIN_API_PORT, 1),
            port=("http", ADMIN_API_PORT),
            role="admin-api",
            admin=True,
        ),
    )
    # One Admin API is enough (docs/architecture): it has no HPA, so its replicas are set here.
    admin_api["spec"]["replicas"] = 1
    worker = _deployment(
        "worker",
        _backbone_container(
            "worker",
            ["worker", "--host", "0.0.0.0", "--metrics-port", str(WORKER_METRICS_PORT)],  # noqa: S104
            port=("metrics", WORKER_METRICS_PORT),
            role="worker",
        ),
    )
    gateway_container = {
        "name": "gateway",
        "image": HAPROXY_IMAGE,
        "ports": [
            {"name": "https", "containerPort": GATEWAY_PORTS.public},
            {"name": "operator", "containerPort": GATEWAY_PORTS.operator},
        ],
        "volumeMounts": [
            {"name": "config", "mountPath": "/usr/local/etc/haproxy", "readOnly": True},
            {"name": "tls", "mountPath": str(Path(GATEWAY_CERTIFICATE_PATH).parent), "readOnly": True},
        ],
        "readinessProbe": _probe("operator"),
        "livenessProbe": _probe("operator"),
        "resources": _resources("gateway", None),
        # The image's user `haproxy` has a name, not a number, which runAsNonRoot cannot verify.
        "securityContext": _SECURITY_CONTEXT | {"runAsUser": HAPROXY_USER_ID},
    }
    certificate = Path(GATEWAY_CERTIFICATE_PATH).name
    gateway = _deployment(
        "gateway",
        gateway_container,
        volumes=[
            {"name": "config", "configMap": {"name": GATEWAY_CONFIG_MAP}},
            {
                "name": "tls",
                "secret": {
                    "secretName": GATEWAY_TLS_SECRET,
                    # HAProxy loads the key from `<certificate>.key` next to the certificate.
                    "items": [
                        {"key": "tls.crt", "path": certificate},
                        {"key": "tls.key", "path": f"{certificate}.key"},
                    ],
                },
            },
        ],
    )
    gateway["spec"]["replicas"] = 1
    prometheus_and_operator = (PROMETHEUS_POD_LABELS, OPERATOR_POD_LABELS)
    return {
        "consumer-api": [consumer_api, _service("consumer-api", CONSUMER_API_PORT), _hpa("consumer-api")],
        "worker": [worker, _hpa("worker")],
        "admin-api": [admin_api, _service("admin-api", ADMIN_API_PORT)],
        "gateway": [
            gateway,
            _service("gateway", 443, service_type="LoadBalancer", target=GATEWAY_PORTS.public),
        ],
        "jobs": [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "migrate", "labels": _labels("migrate")},
                "spec": _job_spec("migrate", ["migrate"], backoff_limit=3),
            },
            _cron_job("housekeeping", "0 1 * * *", ["job", "housekeeping"]),
            _cron_job(
                "identity-deletion-reminders",
                "0 0 * * *",
                ["job", "identity-deletion", "--step", "reminders"],
            ),
            _cron_job(
                "identity-deletion-actual", "0 0 * * *", ["job", "identity-deletion", "--step", "actual"]
            ),
        ],
        # The public path is the gateway's (it routes /api/v2/ and /connect/token only): the nodes
        # take traffic from the gateway and Prometheus; the Admin API and every /metrics only
        # from Prometheus and pods an operator labels as theirs.
        "network-policies": [
            _network_policy(
                "consumer-api",
                "consumer-api",
                [
                    _ingress_from(_labels("gateway"), port=CONSUMER_API_PORT),
                    _ingress_from(PROMETHEUS_POD_LABELS, port=CONSUMER_API_PORT, any_namespace=True),
                ],
            ),
            _network_policy(
                "admin-api",
                "admin-api",
                [
                    _ingress_from(OPERATOR_POD_LABELS, port=ADMIN_API_PORT),
                    _ingress_from(PROMETHEUS_POD_LABELS, port=ADMIN_API_PORT, any_namespace=True),
                ],
            ),
            _network_policy(
                "worker",
                "worker",
                [_ingress_from(*prometheus_and_operator, port=WORKER_METRICS_PORT, any_namespace=True)],
            ),
        ],
    }


def base_kustomization() -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"{name}.yaml" for name in kubernetes_base()],
    }


def overlay(profile: LandscapeProfile) -> dict[str, Any]:
    """The overlay's kustomization: the profile's numbers as patches of the base."""
    patches: list[str] = []

    def container_patch(kind: str, name: str, container: dict[str, Any], replicas: int | None = None) -> None:
        spec: dict[str, Any] = {"template": {"spec": {"containers": [{"name": name, **container}]}}}
        if replicas is not None:
            spec = {"replicas": replicas, **spec}
        patches.append(
            _yaml({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec})
        )

    def hpa_patch(name: str, minimum: int) -> None:
        patches.append(
            _yaml(
                {
                    "apiVersion": "autoscaling/v2",
                    "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": name},
                    "spec": {"minReplicas": minimum, "maxReplicas": minimum * AUTOSCALING_FACTOR},
                }
            )
        )

    def delete(api_version: str, kind: str, name: str) -> None:
        patches.append(
            _yaml({"$patch": "delete", "apiVersion": api_version, "kind": kind, "metadata": {"name": name}})
        )

    nodes = profile.nodes
    container_patch(
        "Deployment",
        "consumer-api",
        {
            "args": serve_arguments("serve", CONSUMER_API_PORT, nodes.workers, nodes.threads),
            "resources": _resources("consumer-api", nodes.cpu_limit),
        },
    )
    hpa_patch("consumer-api", nodes.count)
    container_patch(
        "Deployment",
        "admin-api",
        {
            "args": serve_arguments("serve-admin", ADMIN_API_PORT, profile.admin_api.workers),
            "resources": _resources("admin-api", profile.admin_api.cpu_limit),
        },
    )
    if profile.worker.replicas:
        container_patch("Deployment", "worker", {"resources": _resources("worker", profile.worker.cpu_limit)})
        hpa_patch("worker", profile.worker.replicas)
    else:
        delete("apps/v1", "Deployment", "worker")
        delete("autoscaling/v2", "HorizontalPodAutoscaler", "worker")
        delete("networking.k8s.io/v1", "NetworkPolicy", "worker")
    if profile.gateway.instances:
        container_patch(
            "Deployment",
            "gateway",
            {"resources": _resources("gateway", profile.gateway.cpu_limit)},
            replicas=profile.gateway.instances,
        )
    else:
        # No gateway (dev): clients talk to the one node directly, as on one machine.
        delete("apps/v1", "Deployment", "gateway")
        delete("v1", "Service", "gateway")
        delete("networking.k8s.io/v1", "NetworkPolicy", "consumer-api")
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": f"backbone-{profile.name}",
        "resources": ["../../base", "namespace.yaml"],
        "configMapGenerator": [
            {
                "name": SETTINGS_CONFIG_MAP,
                "literals": [f"{key}={value}" for key, value in kubernetes_settings(profile).items()],
            }
        ],
        "patches": [{"patch": patch} for patch in patches],
    }
    if profile.gateway.instances:
        kustomization["configMapGenerator"].append({"name": GATEWAY_CONFIG_MAP, "files": ["haproxy.cfg"]})
    return kustomization


def kubernetes_settings(profile: LandscapeProfile) -> dict[str, str]:
    """The settings ConfigMap: the profile's; a cluster's services come from the Secret.

    A cluster's pods share no disk, so every overlay takes its database from the Secret's
    BACKBONE_DATABASE_URL (PostgreSQL), dev's SQLite included.
    """
    settings = backbone_settings(profile)
    if profile.blob_store.kind != "s3":
        # Pods share no disk either: local blobs stay in each pod (dev only, docs/deploy.md).
        settings["BACKBONE_BLOB_DIR"] = "/tmp/backbone-blobs"  # noqa: S108
    return settings


def _overlay_files(profile: LandscapeProfile) -> list[Rendered]:
    directory = COMPOSE_DIR / "kubernetes" / "overlays" / profile.name
    source = profile.source.relative_to(REPOSITORY)
    header = f"# Generated by {GENERATED_BY} from {source}; change the profile, not this file.\n"
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"backbone-{profile.name}"}}
    files = [
        Rendered(directory / "kustomization.yaml", header + _yaml(overlay(profile))),
        Rendered(directory / "namespace.yaml", header + _yaml(namespace)),
    ]
    if profile.gateway.instances:
        config = haproxy_config(
            profile.gateway,
            GATEWAY_PORTS,
            [],
            f"of the {profile.name} Kubernetes landscape",
            listen_host="*",
            # The Service balances the pods the HPA runs; HAProxy checks and retries through it.
            node_addresses=[f"consumer-api:{CONSUMER_API_PORT}"],
            tls_certificate=GATEWAY_CERTIFICATE_PATH,
            generated_by=GENERATED_BY,
        )
        files.append(Rendered(directory / "haproxy.cfg", config))
    return files


def locust_objects() -> list[dict[str, Any]]:
    """Locust on a cluster: the master as a Job (a run ends), the workers as a Deployment."""
    target = f"https://gateway:{443}"
    master = _job_spec("locust-master", [], backoff_limit=0)
    container = master["template"]["spec"]["containers"][0]
    container.pop("envFrom")
    container |= {
        "command": ["python", "-m", "locust"],
        "args": [*locust_master_arguments(target), "--expect-workers", str(LOCUST_WORKERS)],
        "ports": [{"name": "master", "containerPort": 5557}],
    }
    worker_container = {
        "name": "locust-worker",
        "image": IMAGE,
        "command": ["python", "-m", "locust"],
        "args": locust_worker_arguments("locust-master"),
        "resources": _resources("locust", None),
        "securityContext": _SECURITY_CONTEXT,
    }
    workers = _deployment("locust-worker", worker_container)
    workers["spec"]["replicas"] = LOCUST_WORKERS
    master_service = _service("locust-master", 5557)
    master_service["spec"]["ports"][0]["name"] = "master"
    return [
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "locust-master"}, "spec": master},
        master_service,
        workers,
    ]


def load_kustomization() -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["locust.yaml"],
    }


# ---------------------------------------------------------------------------------------------
# YAML


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings as literal blocks, keys in the order written, no anchors
    (a reader sees each service whole)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_text)


def _yaml(document: Any) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=110)


def _documents(objects: list[dict[str, Any]]) -> str:
    header = f"# Generated by {GENERATED_BY}; change testbed/deploy/render.py, not this file.\n"
    return header + "---\n".join(_yaml(item) for item in objects)
