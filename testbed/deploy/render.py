"""Render every landscape profile as a docker compose file and a Kubernetes overlay.

`testbed deploy render` writes what `render_files()` returns under `compose/`; `--check` compares
instead. The profile is the one source of every scaling option: node, worker and gateway counts,
gunicorn workers and threads, pool sizes and CPU budgets appear in the compose file
(`testbed/deploy/compose.py`) and in the overlay (`testbed/deploy/kubernetes.py`) exactly as
`scenarios/landscapes/<name>.toml` states them, and a test reads them back.
"""

from __future__ import annotations

from scenarios.landscape import load_profile
from testbed.deploy.compose import compose_files, servicebus_emulator_config
from testbed.deploy.kubernetes import (
    base_kustomization,
    kubernetes_base,
    load_kustomization,
    locust_objects,
    overlay_files,
)
from testbed.deploy.landscape import COMPOSE_DIR, LANDSCAPES, Rendered, to_yaml, yaml_documents


def render_files() -> list[Rendered]:
    """Every generated file of every shipped landscape."""
    files: list[Rendered] = []
    for name in LANDSCAPES:
        profile = load_profile(name)
        files += compose_files(profile)
        files += overlay_files(profile)
    files.append(Rendered(COMPOSE_DIR / "servicebus" / "Config.json", servicebus_emulator_config()))
    files += [
        Rendered(COMPOSE_DIR / "kubernetes" / "base" / f"{name}.yaml", yaml_documents(objects))
        for name, objects in kubernetes_base().items()
    ]
    files.append(
        Rendered(COMPOSE_DIR / "kubernetes" / "base" / "kustomization.yaml", to_yaml(base_kustomization()))
    )
    files.append(
        Rendered(COMPOSE_DIR / "kubernetes" / "load" / "kustomization.yaml", to_yaml(load_kustomization()))
    )
    files.append(
        Rendered(COMPOSE_DIR / "kubernetes" / "load" / "locust.yaml", yaml_documents(locust_objects()))
    )
    return files
