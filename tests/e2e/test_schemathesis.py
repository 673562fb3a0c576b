"""schemathesis over both OpenAPI documents against running servers: no 5xx, no undocumented shapes.

A bounded pass (examples per operation and a time budget per API, a fixed seed unless
`SCHEMATHESIS_SEED` says otherwise): the Consumer API with an onboarded identity's token, then
the Admin API with the key and an anti-forgery pair, on a fresh SQLite database and on a fresh
PostgreSQL database (27 s and 20 s on each: together about what one database had before). The hooks of
`tests/helpers/schemathesis_hooks.py` put hostile text (NUL, control characters, unpaired
surrogates) into half the generated bodies, queries and path fields.
"""

from __future__ import annotations

import http.cookies
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.client import ConsumerApiClient
from tests.helpers.server import running_backbone
from tests.helpers.services import (
    POSTGRES_ADMIN_URL,
    postgres_reachable,
    throwaway_postgres_database,
    unavailable,
)

ADMIN_KEY = "schemathesis-admin-key"
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "10")
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261128")
# Seconds per API and database: both databases together cost about what SQLite alone did (60 s, 45 s).
CONSUMER_BUDGET_S, ADMIN_BUDGET_S = 27, 20
REPOSITORY = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow
APPS = {
    "AppOnboarding": {
        "Apps": [
            {
                "Id": "eu.example.app",
                "DisplayName": "Example",
                "Description": "An app",
                "AppleAppStore": {"AppLink": "https://apps.apple.example/app"},
                "GooglePlayStore": {},
                "BannerUrl": "https://apps.example.org/banner.png",
                "IconUrl": "https://apps.example.org/icon.png",
            }
        ],
        "DefaultAppId": "eu.example.app",
    },
    "WellKnownEndpoints": {
        "AppleAppSiteAssociations": ["TEAM.eu.example.app"],
        "AndroidAssetLinks": [{"PackageName": "eu.example.app", "Sha256CertFingerprints": ["AB:CD"]}],
    },
    "PublicRelationshipTemplateReferences": {
        "test": [{"Title": "A", "Description": "B", "TruncatedReference": "C"}]
    },
}


@pytest.fixture(scope="module")
def schemathesis() -> str:
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which(
        "schemathesis"
    )
    if executable is None:
        unavailable("schemathesis is not installed (pip install -e '.[dev]')")
    return executable  # type: ignore[return-value]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, Path]]:
    var_dir = tmp_path_factory.mktemp(f"schemathesis-{request.param}")
    if request.param == "sqlite":
        yield from _running_servers(var_dir, {})
        return
    if not postgres_reachable():
        unavailable(f"no PostgreSQL server answers on {POSTGRES_ADMIN_URL}")
    with throwaway_postgres_database() as database_url:
        yield from _running_servers(var_dir, {"BACKBONE_DATABASE_URL": database_url})


def _running_servers(var_dir: Path, database: dict[str, str]) -> Iterator[tuple[str, str, Path]]:
    # The pages for apps answer 200 only with an apps file; give them one, so both answers are met.
    apps_file = var_dir / "apps.json"
    apps_file.write_text(json.dumps(APPS), encoding="utf-8")
    environment = {
        **database,
        "BACKBONE_APPS_FILE": str(apps_file),
        "BACKBONE_VAR_DIR": str(var_dir),
        "BACKBONE_ENVIRONMENT": "development",
        "BACKBONE_ADMIN_API_KEY": ADMIN_KEY,
        "BACKBONE_JWT_LIFETIME_S": "3600",
        "BACKBONE_PASSWORD_HASH_ITERATIONS": "1000",
    }
    with (
        running_backbone(
            environment, args=("serve", "--workers", "1"), log_path=var_dir / "consumer.log"
        ) as consumer,
        running_backbone(
            environment, args=("serve-admin", "--workers", "1"), log_path=var_dir / "admin.log"
        ) as admin,
    ):
        yield consumer, admin, var_dir


def run_schemathesis(
    executable: str, base_url: str, document: str, headers: dict[str, str], seconds: int, report: Path
) -> None:
    command = [
        executable,
        "run",
        f"{base_url}{document}",
        "--url",
        base_url,
        "--checks",
        CHECKS,
        "--max-examples",
        MAX_EXAMPLES,
        "--max-time",
        str(seconds),
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        SEED,
        "--no-shrink",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "10",
    ]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    hooks = {"SCHEMATHESIS_HOOKS": "tests.helpers.schemathesis_hooks", "PYTHONPATH": str(REPOSITORY)}
    # Run beside the report, so schemathesis keeps its caches out of the repository.
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
        cwd=report.parent,
        env={**os.environ, **hooks},
    )
    report.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, (
        f"schemathesis found problems in {document} (full report: {report}):\n" + (result.stdout[-6000:])
    )


def test_the_consumer_api_keeps_its_document(schemathesis: str, servers: tuple[str, str, Path]) -> None:
    consumer, _, var_dir = servers
    session = ConsumerApiClient(consumer).onboard("a-device-password")
    headers = {"Authorization": f"Bearer {session.access_token}", "X-Supported-Datawallet-Version": "1"}
    run_schemathesis(
        schemathesis,
        consumer,
        "/docs/v2/openapi.json",
        headers,
        CONSUMER_BUDGET_S,
        var_dir / "consumer-report.txt",
    )
    assert "unexpected error" not in (var_dir / "consumer.log").read_text()


def test_the_admin_api_keeps_its_document(schemathesis: str, servers: tuple[str, str, Path]) -> None:
    _, admin, var_dir = servers
    request = urllib.request.Request(f"{admin}/api/v1/xsrf", headers={"X-API-KEY": ADMIN_KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        token = json.loads(response.read())
        cookie = http.cookies.SimpleCookie(response.headers["Set-Cookie"])["X-XSRF-COOKIE"].value
    headers = {"X-API-KEY": ADMIN_KEY, "X-XSRF-TOKEN": token, "Cookie": f"X-XSRF-COOKIE={cookie}"}
    run_schemathesis(
        schemathesis, admin, "/docs/v1/openapi.json", headers, ADMIN_BUDGET_S, var_dir / "admin-report.txt"
    )
    assert "unexpected error" not in (var_dir / "admin.log").read_text()
