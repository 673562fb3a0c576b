"""compose/: the committed files are the generator's output, mount what exists, and hold no secret."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.cli import main
from testbed.deploy import commands as deploy_commands
from testbed.deploy.landscape import COMPOSE_DIR, LANDSCAPES, REPOSITORY, Rendered
from testbed.deploy.render import render_files

SECRET_WORDS = re.compile(r"PASSWORD|SECRET|API_KEY|SIGNING_KEY|TOKEN|PASS\b", re.IGNORECASE)


def compose(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / f"{name}.yml").read_text())
    return document


def test_the_committed_files_are_the_generators_output() -> None:
    stale = [
        str(item.path.relative_to(REPOSITORY))
        for item in render_files()
        if not item.path.exists() or item.path.read_text() != item.text
    ]
    assert stale == [], "run `make deploy-files` and commit the result"


def test_render_check_names_a_file_that_drifted_and_render_rewrites_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "stage.yml"
    target.write_text("edited by hand\n")
    monkeypatch.setattr(deploy_commands, "REPOSITORY", tmp_path)
    monkeypatch.setattr(deploy_commands, "render_files", lambda: [Rendered(target, "rendered\n")])
    assert main(["deploy", "render", "--check"]) == 1
    assert "stage.yml differs from its profile" in capsys.readouterr().err
    assert target.read_text() == "edited by hand\n"
    assert main(["deploy", "render"]) == 0
    assert target.read_text() == "rendered\n"
    assert main(["deploy", "render", "--check"]) == 0


def test_every_mounted_path_exists_in_the_repository() -> None:
    """Every host path a compose file mounts; the boards and rules come from dashboards/."""
    missing = []
    for name in LANDSCAPES:
        document = compose(name)
        sources = [
            volume.split(":")[0]
            for service in document["services"].values()
            for volume in service.get("volumes", [])
            if volume.startswith(".")
        ]
        sources += [
            secret["file"]
            for secret in document.get("secrets", {}).values()
            if "/secrets/" not in secret["file"]
        ]
        missing += [f"{name}.yml: {source}" for source in sources if not (COMPOSE_DIR / source).exists()]
    grafana_files = [
        "../dashboards/grafana/provisioning/datasources/prometheus.yaml",
        "../dashboards/grafana/provisioning/dashboards/testbed.yaml",
    ]
    missing += [path for path in grafana_files if not (COMPOSE_DIR / path).exists()]
    if not list((REPOSITORY / "dashboards" / "grafana").glob("*.json")):
        missing.append("dashboards/grafana/*.json (the boards)")
    if not list((REPOSITORY / "dashboards" / "prometheus" / "rules").glob("*.yml")):
        missing.append("dashboards/prometheus/rules/*.yml (the rules)")
    assert missing == []


def test_compose_files_take_every_secret_from_the_uncommitted_env_file() -> None:
    """A secret's value is `${VARIABLE:?...}`, set in compose/.env, which git ignores."""
    literal = []
    for name in LANDSCAPES:
        for service_name, service in compose(name)["services"].items():
            for key, value in service.get("environment", {}).items():
                if SECRET_WORDS.search(key) and not str(value).startswith("${"):
                    literal.append(f"{name}.yml: {service_name}: {key}")
                if "://" in str(value) and "@" in str(value) and ":${" not in str(value):
                    literal.append(f"{name}.yml: {service_name}: {key} (a URL with a password)")
    assert literal == []
    ignored = (COMPOSE_DIR / ".gitignore").read_text().split()
    assert ".env" in ignored
    assert "secrets/" in ignored


def test_the_dockerfile_names_no_secret() -> None:
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text()
    instructions = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    assert [line for line in instructions if SECRET_WORDS.search(line)] == []
    assert re.search(r"^USER 10001", dockerfile, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*\n.*/health", dockerfile, re.MULTILINE)


def test_the_image_pins_every_dependency_of_the_project() -> None:
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["load"]
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (COMPOSE_DIR / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    }
    lines = [
        line for line in (COMPOSE_DIR / "requirements.lock").read_text().splitlines() if line[:1].isalnum()
    ]
    assert all("==" in line for line in lines)
    names = [re.split(r"[<>=\[ ;]", requirement)[0].lower().replace("_", "-") for requirement in wanted]
    assert [name for name in names if name not in pinned] == []


def test_no_committed_kubernetes_file_holds_a_secret_object() -> None:
    kinds = [
        document.get("kind")
        for path in (COMPOSE_DIR / "kubernetes").rglob("*.yaml")
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]
    assert "Secret" not in kinds
