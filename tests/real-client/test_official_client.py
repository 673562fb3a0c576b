"""The official client library (`@nmshd/transport`, npm) against a freshly started backbone.

Each check runs with the datawallet enabled and disabled, on SQLite with a local blob directory,
on PostgreSQL with an S3 bucket (SeaweedFS), on PostgreSQL with the RabbitMQ bus, where
`backbone worker` runs the handlers in a process of its own, and on landscapes (`testbed up`'s
launcher) whose private PostgreSQL server is behind PgBouncer (transaction pooling), or has a
streaming replica that serves every read-only unit of work.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from backbone.platform.blobs import S3BlobStore
from scenarios.landscape import parse_profile
from testbed.landscape.cpu import plan_cpus
from testbed.landscape.launcher import Launcher
from testbed.landscape.pgbouncer import admin_connection, pgbouncer_executable
from testbed.landscape.postgres import postgres_bin_dir
from testbed.landscape.seaweedfs import SeaweedFs
from testbed.landscape.state import LandscapeState
from testbed.landscape.teardown import tear_down
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
# A landscape of one node and the Admin API on a private server, for the variants that scale the
# database out: `database.pooler` or `database.replicas` is added.
LANDSCAPE = """
name = "real-client-{variant}"
environment = "production"
[gateway]
instances = 0
[nodes]
count = 1
workers = 2
threads = 4
[database]
kind = "postgresql"
server = "private"
fsync = false
{database}
[backbone]
PASSWORD_HASH_ITERATIONS = 1000
"""
# The twelve checks make thousands of transactions; far fewer means they went elsewhere.
MIN_SERVED_TRANSACTIONS = 200
DATABASE_OPTIONS = {
    "postgresql+pgbouncer": 'pooler = "pgbouncer"\npooler_pool_size = 4',
    "postgresql+replica": "replicas = 1",
}


@dataclass(frozen=True)
class Backbone:
    """What the checks talk to: the Consumer API, the Admin API, with a broker the drain URL ("" without),
    the endpoint that runs the jobs, and an OAuth client."""

    url: str
    admin_url: str
    drain_url: str
    jobs_url: str
    client_id: str = "test"
    client_secret: str = "test"  # the development mode's client
    admin_api_key: str = ADMIN_API_KEY


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
        pytest.param("postgresql+pgbouncer", marks=[pytest.mark.postgres]),
        pytest.param("postgresql+replica", marks=[pytest.mark.postgres]),
    ],
)
def backbone(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backbone]:
    """The Consumer API and the Admin API on one database and blob store, and with a broker the
    worker, and an endpoint that runs the jobs; or a landscape that scales the database out."""
    var_dir = tmp_path_factory.mktemp(f"backbone-{request.param}")
    if request.param in DATABASE_OPTIONS:
        yield from scaled_out_landscape(request.param, var_dir)
        return
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
        yield Backbone(url, admin_url, drain_url, jobs_url)
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


def scaled_out_landscape(variant: str, run_dir: Path) -> Iterator[Backbone]:
    """A landscape whose database is behind PgBouncer or has a replica, brought up as `testbed up` does."""
    if postgres_bin_dir() is None:
        unavailable("initdb/postgres are not installed (Debian package postgresql)")
    if variant == "postgresql+pgbouncer" and pgbouncer_executable() is None:
        unavailable("pgbouncer is not installed (apt-get install pgbouncer)")
    text = LANDSCAPE.format(variant=variant.partition("+")[2], database=DATABASE_OPTIONS[variant])
    profile = parse_profile(text, source=run_dir / "landscape.toml")
    launcher = Launcher(
        profile, plan_cpus(profile), state_path=run_dir / "state.json", runs_dir=run_dir, say=lambda _: None
    )
    state = launcher.up()
    # The jobs run as cron would beside the landscape: on the primary, with the nodes' blob directory.
    job_environment = {
        "BACKBONE_ENVIRONMENT": "production",
        "BACKBONE_DATABASE_URL": state.database_url,
        "BACKBONE_VAR_DIR": str(Path(state.run_dir) / "var"),
        "BACKBONE_JWT_SIGNING_KEY": secrets.token_urlsafe(48),
    }
    try:
        with job_endpoint(job_environment, run_dir / "jobs.log") as jobs_url:
            yield Backbone(
                state.node_urls[0],
                state.admin_url,
                "",
                jobs_url,
                client_id=state.client_id,
                client_secret=state.client_secret,
                admin_api_key=state.admin_api_key,
            )
        # The checks' work went where the variant says: through PgBouncer, or to the replica.
        if state.pooler_url:
            served, where = transactions_through_pgbouncer(state), "through PgBouncer"
        else:
            served, where = transactions_on_replica(state), "on the replica"
        print(f"\n{variant}: {served} transactions {where}")
        assert served >= MIN_SERVED_TRANSACTIONS, served
    finally:
        assert tear_down(state, say=lambda _: None) == []


def transactions_through_pgbouncer(state: LandscapeState) -> int:
    with admin_connection(state.pooler_url.rsplit("/", 1)[0] + "/pgbouncer") as console:
        cursor = console.execute("SHOW STATS")
        names = [column.name for column in cursor.description or ()]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return sum(int(row["total_xact_count"]) for row in rows if row["database"] == "backbone")


def transactions_on_replica(state: LandscapeState) -> int:
    # A backend reports its counts at least once a second while busy, so some may still be pending.
    with psycopg.connect(state.replica_urls[0]) as replica:
        row = replica.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = 'backbone'"
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("datawallet", ["false", "true"])
@pytest.mark.parametrize("check", CHECKS)
def test_the_official_client_passes(node: str, backbone: Backbone, check: str, datawallet: str) -> None:
    environment = {
        "NMSHD_TEST_BASEURL": backbone.url,
        "NMSHD_TEST_BASEURL_ADMIN_API": backbone.admin_url,
        "NMSHD_TEST_ADMIN_API_KEY": backbone.admin_api_key,
        "NMSHD_TEST_CLIENTID": backbone.client_id,
        "NMSHD_TEST_CLIENTSECRET": backbone.client_secret,
        "NMSHD_TEST_JOBS_URL": backbone.jobs_url,
        "DATAWALLET": datawallet,
        "PATH": _path(),
    }
    if backbone.drain_url:
        environment["NMSHD_TEST_DRAIN_URL"] = backbone.drain_url
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
