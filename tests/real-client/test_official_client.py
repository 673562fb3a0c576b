"""The official client library (`@nmshd/transport`, npm) against a freshly started backbone.

Each check runs with the datawallet enabled and disabled, on SQLite with a local blob directory,
on PostgreSQL with an S3 bucket (SeaweedFS), and on PostgreSQL with the RabbitMQ bus, where
`backbone worker` runs the handlers in a process of its own.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from backbone.platform.blobs import S3BlobStore
from testbed.landscape.seaweedfs import SeaweedFs
from tests.helpers.drain import drain_endpoint, subscribed_handlers
from tests.helpers.jobs import job_endpoint
from tests.helpers.rabbitmq import RABBITMQ_URL, BrokerNames, delete_topology, rabbitmq_reachable
from tests.helpers.server import running_backbone, running_worker
from tests.helpers.services import (
    POSTGRES_ADMIN_URL,
    postgres_reachable,
    throwaway_postgres_database,
    unavailable,
)

HERE = Path(__file__).parent
CHECKS = [
    "onboarding.js",
    "second-device.js",
    "relationship-and-message.js",
    "relationship-lifecycle.js",
    "deletion-and-ownership.js",
    "announcements.js",
]
ADMIN_API_KEY = "test"


@pytest.fixture(scope="module")
def node() -> str:
    executable = shutil.which("node")
    if executable is None:
        unavailable("Node.js is not installed")
    if not (HERE / "node_modules" / "@nmshd" / "transport").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True)
    return executable  # type: ignore[return-value]


@pytest.fixture(
    scope="module",
    params=[
        "sqlite+local",
        pytest.param("postgresql+s3", marks=[pytest.mark.postgres, pytest.mark.s3]),
        pytest.param("postgresql+rabbitmq", marks=[pytest.mark.postgres, pytest.mark.rabbitmq]),
    ],
)
def backbone_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, str, str]]:
    """The Consumer API and the Admin API on one database and blob store, with a broker the
    worker, and an endpoint that runs the jobs: (consumer URL, admin URL, drain URL or "", jobs URL)."""
    var_dir = tmp_path_factory.mktemp(f"backbone-{request.param}")
    environment = {
        "BACKBONE_VAR_DIR": str(var_dir),
        "BACKBONE_ENVIRONMENT": "development",
        "BACKBONE_ADMIN_API_KEY": ADMIN_API_KEY,
    }
    seaweedfs: SeaweedFs | None = None
    drain_url = ""
    with contextlib.ExitStack() as stack:
        if request.param.startswith("postgresql"):
            if not postgres_reachable():
                unavailable(f"no PostgreSQL server answers on {POSTGRES_ADMIN_URL}")
            environment["BACKBONE_DATABASE_URL"] = stack.enter_context(throwaway_postgres_database())
        if request.param == "postgresql+s3":
            seaweedfs = request.getfixturevalue("seaweedfs")
            environment.update(seaweedfs.backbone_environment("backbone-real-client"))
        if request.param == "postgresql+rabbitmq":
            if not rabbitmq_reachable():
                unavailable(f"no RabbitMQ broker answers on {RABBITMQ_URL}")
            names = BrokerNames.unique()
            environment.update(names.environment())
            handlers = subscribed_handlers(var_dir)
            stack.callback(
                delete_topology, names, [names.queue_prefix + queue for queue, _ in handlers], RABBITMQ_URL
            )
            drain_url = stack.enter_context(drain_endpoint(environment["BACKBONE_DATABASE_URL"], handlers))
        # The Consumer API migrates first; the Admin API starts on the migrated database.
        url = stack.enter_context(running_backbone(environment, log_path=var_dir / "server.log"))
        admin_url = stack.enter_context(
            running_backbone(
                environment, args=("serve-admin", "--workers", "1"), log_path=var_dir / "admin.log"
            )
        )
        if drain_url:
            stack.enter_context(running_worker(environment, log_path=var_dir / "worker.log"))
        jobs_url = stack.enter_context(job_endpoint(environment, var_dir / "jobs.log"))
        yield url, admin_url, drain_url, jobs_url
    if seaweedfs is not None:
        # The attachments of the checks went to the bucket, not to a local directory.
        bucket = S3BlobStore(
            seaweedfs.endpoint,
            seaweedfs.access_key,
            seaweedfs.secret_key,
            "backbone-real-client",
            secure=False,
        )
        assert bucket.list_names("FIL"), "no file reached the S3 bucket"
        assert not (var_dir / "blobs").exists()


@pytest.mark.parametrize("datawallet", ["false", "true"])
@pytest.mark.parametrize("check", CHECKS)
def test_the_official_client_passes(
    node: str, backbone_url: tuple[str, str, str, str], check: str, datawallet: str
) -> None:
    url, admin_url, drain_url, jobs_url = backbone_url
    environment = {
        "NMSHD_TEST_BASEURL": url,
        "NMSHD_TEST_BASEURL_ADMIN_API": admin_url,
        "NMSHD_TEST_ADMIN_API_KEY": ADMIN_API_KEY,
        "NMSHD_TEST_JOBS_URL": jobs_url,
        "DATAWALLET": datawallet,
        "PATH": _path(),
    }
    if drain_url:
        environment["NMSHD_TEST_DRAIN_URL"] = drain_url
    result = subprocess.run(
        [node, check], cwd=HERE, env=environment, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, f"{check} (datawallet {datawallet}) failed:\n{result.stderr[-4000:]}"
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True
    assert summary["datawallet"] is (datawallet == "true")


def _path() -> str:
    import os

    return os.environ.get("PATH", "")
