"""A landscape on Kubernetes: the kustomize base, one overlay per profile, Locust.

The base holds no number a profile decides; an overlay patches them in (its HPAs' minimum, the
gunicorn arguments, requests and limits, the settings ConfigMap, the gateway's configuration).
Secrets are named, never held.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scenarios.landscape import LandscapeProfile
from testbed.deploy.landscape import (
    ADMIN_API_PORT,
    AUTOSCALING_FACTOR,
    COMPOSE_DIR,
    CONSUMER_API_PORT,
    GATEWAY_PORTS,
    GENERATED_BY,
    HAPROXY_IMAGE,
    HAPROXY_USER_ID,
    HPA_CPU_UTILIZATION_PERCENT,
    IMAGE,
    LOCUST_WORKERS,
    WORKER_METRICS_PORT,
    Rendered,
    backbone_settings,
    header,
    locust_master_arguments,
    locust_worker_arguments,
    serve_arguments,
    to_yaml,
)
from testbed.landscape.gateway import haproxy_config

# Where a role runs without a CPU budget in its profile: the original's Helm requests and limits.
_DEFAULT_RESOURCES = {
    "consumer-api": ("200m", "400m", "128Mi", "1Gi"),
    "other": ("50m", "200m", "64Mi", "512Mi"),
}
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
            to_yaml({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec})
        )

    def hpa_patch(name: str, minimum: int) -> None:
        patches.append(
            to_yaml(
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
            to_yaml({"$patch": "delete", "apiVersion": api_version, "kind": kind, "metadata": {"name": name}})
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


def overlay_files(profile: LandscapeProfile) -> list[Rendered]:
    directory = COMPOSE_DIR / "kubernetes" / "overlays" / profile.name
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"backbone-{profile.name}"}}
    files = [
        Rendered(directory / "kustomization.yaml", header(profile) + to_yaml(overlay(profile))),
        Rendered(directory / "namespace.yaml", header(profile) + to_yaml(namespace)),
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
