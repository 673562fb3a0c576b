"""What `testbed up` made, in a state file that `down` (or a later `up`) reads back."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from testbed.landscape.budgets import CpuGroup
from testbed.landscape.process_groups import group_alive
from testbed.processes import REPOSITORY

DEFAULT_STATE = REPOSITORY / "var" / "landscape" / "state.json"
RUNS_DIR = REPOSITORY / "var" / "landscapes"


class LandscapeError(Exception):
    """The landscape cannot come up (or go down) for a reason the operator can fix."""


@dataclass
class RecordedProcess:
    """One process group `up` started: its leader's PID and start time tell it from a reused PID."""

    role: str
    pid: int
    # psutil's create_time of the leader (seconds since the epoch).
    started_at_s: float
    port: int | None
    log: str


@dataclass
class LandscapeState:
    """What `up` made; written to the state file (mode 0600: it holds the landscape's secrets)."""

    id: str
    profile: str
    profile_source: str
    state_path: str
    run_dir: str
    ready: bool = False
    up_seconds: float | None = None
    processes: list[RecordedProcess] = field(default_factory=list)
    # Recorded before each is made: `down` removes them even after a killed `up`.
    cpu_groups: list[CpuGroup] = field(default_factory=list)
    # The private PostgreSQL server's directory (data, socket), recorded before initdb.
    postgres_directory: str = ""
    database_server_url: str = ""
    database_name: str = ""
    database_url: str = ""
    # The private server's streaming replicas (their directories lie inside postgres_directory).
    replica_urls: list[str] = field(default_factory=list)
    # PgBouncer's directory (configuration and auth file), recorded before it is made, and the
    # URL the backbone reaches the primary by through it.
    pooler_directory: str = ""
    pooler_url: str = ""
    rabbitmq_url: str = ""
    rabbitmq_vhost: str = ""
    # Without rabbitmqctl: names of this landscape's own on the profile's vhost.
    rabbitmq_exchange: str = ""
    rabbitmq_queues: list[str] = field(default_factory=list)
    seaweedfs_ports: list[int] = field(default_factory=list)
    # The control port of every proxy in front of a server (role: port), for the faults.
    proxy_control_ports: dict[str, int] = field(default_factory=dict)
    gateway_urls: list[str] = field(default_factory=list)
    gateway_operator_urls: list[str] = field(default_factory=list)
    node_urls: list[str] = field(default_factory=list)
    worker_urls: list[str] = field(default_factory=list)
    # The SSE replicas' own URLs (their /metrics and /health; the gateway routes only the streams).
    sse_urls: list[str] = field(default_factory=list)
    admin_url: str = ""
    admin_api_key: str = ""
    client_id: str = ""
    client_secret: str = ""
    tier_id: str = ""
    load_generator_cores: list[int] = field(default_factory=list)
    allowed_target_hosts: list[str] = field(default_factory=list)
    # `--monitor`: where Prometheus keeps config and time series, and its URL while it runs.
    monitor_dir: str = ""
    prometheus_url: str = ""

    @property
    def consumer_urls(self) -> list[str]:
        """Where clients send requests: the gateways, or the node when there is no gateway."""
        return self.gateway_urls or self.node_urls

    def save(self) -> None:
        path = Path(self.state_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(asdict(self), file, indent=2)
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> LandscapeState:
        try:
            data = json.loads(path.read_text())
            data["processes"] = [RecordedProcess(**process) for process in data.get("processes", [])]
            data["cpu_groups"] = [
                CpuGroup(**{**group, "directories": tuple(group["directories"])})
                for group in data.get("cpu_groups", [])
            ]
            return cls(**data)
        except FileNotFoundError:
            raise LandscapeError(f"no landscape state at {path} (nothing is up, or give --state)") from None
        except (ValueError, TypeError, KeyError) as error:
            raise LandscapeError(f"{path} is not a landscape state file: {error}") from None


def refuse_when_running(state_path: Path) -> None:
    """Refuse a second landscape on the same state file while the first one's processes live."""
    if not state_path.exists():
        return
    try:
        previous = LandscapeState.load(state_path)
    except LandscapeError:
        return
    if any(group_alive(process.pid) for process in previous.processes):
        raise LandscapeError(
            f"the landscape {previous.id} ({previous.profile}) of {state_path} is still up; "
            "`testbed down` first, or give another --state"
        )
