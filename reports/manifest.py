"""`manifest.json` of a run directory: what ran, where and when; written and read only here.

A `RunManifest` is typed all the way down and carries its `format_version`. It is written
redacted (secret-looking keys and URL passwords become `***`) and read back into the same
dataclasses; a manifest of another format version, or one written before run directories had
versions, is refused in one line naming the version, never with a traceback.

Format versions:

1. the first versioned format: `scenario.overrides` (the command line's `--multiplier`,
   `--duration`, `--seed`) and `scenario.text` (the scenario file as it was, not a rewritten
   copy); everything else as the unversioned manifests had it.
2. CPU budgets for every tier: `profile.cpu` holds `period_ms`, `mechanism` and `budgets` (one
   `BudgetRecord` per budgeted process: tier, option, cores, the mechanism that held it, period,
   pinned cores) instead of `node_cores` and `node_quota_cores`; `profile.worker` and
   `profile.admin_api` are tables (replicas or workers, `cpu_limit`) instead of `worker_replicas`
   and `admin_api_workers`; `profile.unsampled` names processes the run could not sample. The run
   directory gained `budgets.parquet` (reports/rundir.py).
3. `load_generator`: the load generator's processes (Locust's master and its workers), each with
   its role and CPU limit, and the cores they share; `scenario.warm_up_s`: how long the load ran
   before the measured window (a capacity search's step warms up; `testbed run` does not).
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

MANIFEST = "manifest.json"
FORMAT_VERSION = 3
REDACTED = "***"
_SECRET_KEY = re.compile(r"(secret|password|passwd|api_key|apikey|token|signing_key|credential)", re.I)
_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]*)@", re.I
)
Record = TypeVar("Record")


class ManifestError(ValueError):
    """manifest.json is missing, of another format version or malformed; the message is one line."""


@dataclass(frozen=True)
class SloSpec:
    """Thresholds for one route (method None: every method), judged on one latency view."""

    route: str
    method: str | None
    percentiles_ms: tuple[tuple[float, float], ...]
    view: str = "corrected"
    max_failure_ratio: float | None = None
    source: str = "scenario"

    @property
    def key(self) -> str:
        return f"{self.method} {self.route}" if self.method else self.route


@dataclass(frozen=True)
class FlowRate:
    """One flow of the scenario and its rate with the multiplier applied."""

    name: str
    flow: str
    rate_per_s: float


@dataclass(frozen=True)
class ScenarioRecord:
    """The scenario as it ran: the file's values with the command line's overrides applied."""

    name: str = "?"
    source: str = ""
    model: str = "open"
    multiplier: float = 1.0
    duration_s: float = 0.0
    arrivals: str = "uniform"
    flows: tuple[FlowRate, ...] = ()
    slos: tuple[SloSpec, ...] = ()
    # --multiplier, --duration (as duration_s) and --seed, as given on the command line.
    overrides: Mapping[str, float] = field(default_factory=dict)
    text: str = ""
    # The load ran this long before `started_at_s`; its requests are not judged.
    warm_up_s: float = 0.0


@dataclass(frozen=True)
class BudgetRecord:
    """One process's CPU budget and what held it: a cgroup (v2 or v1) or, last, CPU affinity."""

    process: str
    tier: str
    option: str
    cores: float
    mechanism: str
    period_ms: float
    # The cores it kept to (under affinity: the whole cores that held its budget).
    pinned_cores: tuple[int, ...] = ()


@dataclass(frozen=True)
class CpuRecord:
    """The CPU plan: the cores of the landscape and of the load generator, and every budget."""

    landscape_cores: tuple[int, ...] = ()
    load_generator_cores: tuple[int, ...] = ()
    period_ms: float = 100.0
    # cgroup v2, cgroup v1 or affinity; "" when no process has a budget.
    mechanism: str = ""
    budgets: tuple[BudgetRecord, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class LandscapeRecord:
    """The landscape profile as launched (its tables' fields are those of scenarios/landscape.py)."""

    name: str = "?"
    description: str = ""
    source: str = ""
    overrides: Mapping[str, str] = field(default_factory=dict)
    environment: str = ""
    landscape_id: str = ""
    up_seconds: float | None = None
    # A role (`gateway1`, `node1`), never a URL: the report holds no http(s) reference.
    load_target: str = ""
    threads_per_worker: int = 1
    gateway: Mapping[str, Any] = field(default_factory=dict)
    nodes: Mapping[str, Any] = field(default_factory=dict)
    database: Mapping[str, Any] = field(default_factory=dict)
    bus: Mapping[str, Any] = field(default_factory=dict)
    blob_store: Mapping[str, Any] = field(default_factory=dict)
    worker: Mapping[str, Any] = field(default_factory=dict)
    admin_api: Mapping[str, Any] = field(default_factory=dict)
    cpu: CpuRecord = field(default_factory=CpuRecord)
    backbone: Mapping[str, str] = field(default_factory=dict)
    # Processes of the run's path that were not sampled, each with the reason (e.g. the shared
    # broker when its process is not visible to this user).
    unsampled: tuple[str, ...] = ()
    # A deployment that runs elsewhere (`testbed run --target`): its host, never its URL.
    target_host: str = ""
    # Where the server figures come from: "scraped" (each process's /metrics), "prometheus" (the
    # target's Prometheus), "" (none: only client-side figures, no server tier is judged).
    server_metrics: str = "scraped"


@dataclass(frozen=True)
class GeneratorProcess:
    """One process of the load generator: `role` "master" (generates no load) or "worker"; a
    worker's `share` of the schedule (index from 0 of count); its `host` and whether it joined from
    there (`testbed load-worker`) rather than being started by the run."""

    name: str
    role: str
    cpu_limit_cores: float
    host: str = ""
    share: str = ""
    joined: bool = False


@dataclass(frozen=True)
class LoadGeneratorRecord:
    """Locust's master and its workers, on the cores the CPU plan gave the load generator."""

    cores: tuple[int, ...] = ()
    processes: tuple[GeneratorProcess, ...] = ()

    @property
    def workers(self) -> int:
        return sum(1 for process in self.processes if process.role == "worker")


@dataclass(frozen=True)
class GitRevision:
    revision: str = ""
    dirty: bool = False


@dataclass(frozen=True)
class Machine:
    hostname: str = ""
    platform: str = ""
    cpus: int = 1
    memory_bytes: int = 0
    load_average_1m: float = 0.0


@dataclass(frozen=True)
class RunManifest:
    """What ran, where and when; the load's window is `started_at_s` to `ended_at_s` (epoch s)."""

    run_id: str
    started_at_s: float | None = None
    ended_at_s: float | None = None
    seed: int | None = None
    pool: str = "none"
    # PBKDF2 cost of the seeded pool's passwords (None: no pool was seeded).
    pool_pbkdf2_iterations: int | None = None
    git: GitRevision = field(default_factory=GitRevision)
    profile: LandscapeRecord = field(default_factory=LandscapeRecord)
    scenario: ScenarioRecord = field(default_factory=ScenarioRecord)
    load_generator: LoadGeneratorRecord = field(default_factory=LoadGeneratorRecord)
    versions: Mapping[str, str] = field(default_factory=dict)
    machine: Machine = field(default_factory=Machine)
    # Failed scrapes per process.
    scrape_failures: Mapping[str, int] = field(default_factory=dict)
    synthetic: bool = False
    format_version: int = FORMAT_VERSION

    @property
    def started_at(self) -> str:
        return _iso(self.started_at_s)

    @property
    def ended_at(self) -> str:
        return _iso(self.ended_at_s)


def write_manifest(run_dir: Path, manifest: RunManifest) -> None:
    """Write manifest.json (secrets redacted)."""
    write_record(run_dir / MANIFEST, manifest)


def read_manifest(run_dir: Path) -> RunManifest:
    """Read manifest.json of this format version, or raise ManifestError in one line."""
    missing = f"{run_dir}: not a run directory (no {MANIFEST})"
    return read_versioned(run_dir / MANIFEST, RunManifest, FORMAT_VERSION, missing, "run directories")


def write_record(path: Path, record: Any) -> None:
    """Write a record (a dataclass) as JSON, secrets redacted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(redact(dataclasses.asdict(record)), indent=2, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")


def read_versioned(path: Path, cls: type[Record], version: int, missing: str, what: str) -> Record:
    """Read a record of `format_version` `version` from JSON, or raise ManifestError in one line.

    `missing`: the line when there is no file; `what`: whose files may predate versions.
    """
    if not path.is_file():
        raise ManifestError(missing)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ManifestError(f"{path}: not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: not a manifest (a JSON object is expected)")
    found = data.get("format_version")
    if found is None:
        raise ManifestError(
            f"{path}: no format_version: written before {what} had one; this testbed reads "
            f"format_version {version} (run the experiment again)"
        )
    if found != version:
        raise ManifestError(
            f"{path}: format_version {found!r}, but this testbed reads format_version {version}"
        )
    return read_record(cls, data, str(path))


def redact(value: Any) -> Any:
    """Return a copy of nested data with secret-looking keys and URL passwords replaced by ***."""
    if isinstance(value, Mapping):
        return {
            key: (REDACTED if _SECRET_KEY.search(str(key)) and item not in (None, "") else redact(item))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", value)
    return value


def _iso(epoch_s: float | None) -> str:
    return "?" if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC).isoformat()


def read_record(cls: type[Record], data: Any, where: str) -> Record:
    """Build a manifest dataclass from its JSON form, checking every field's type."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected an object, got {data!r:.60}")
    fields = {item.name: item for item in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if unknown := sorted(set(data) - set(fields)):
        raise ManifestError(f"{where}: unknown key(s) {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    try:
        return cls(**{name: _value(hints[name], value, f"{where}.{name}") for name, value in data.items()})
    except TypeError as error:  # a field without default is missing
        raise ManifestError(f"{where}: {error}") from None


def _value(kind: Any, value: Any, where: str) -> Any:
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if dataclasses.is_dataclass(kind):
        return read_record(kind, value, where)  # type: ignore[arg-type]
    if origin is types.UnionType:  # X | None
        if value is None and type(None) in arguments:
            return None
        (present,) = (argument for argument in arguments if argument is not type(None))
        return _value(present, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise ManifestError(f"{where}: expected a list, got {value!r:.60}")
        items = arguments[:1] * len(value) if arguments[-1:] == (Ellipsis,) else arguments
        if len(items) != len(value):
            raise ManifestError(f"{where}: expected {len(items)} items, got {len(value)}")
        return tuple(
            _value(item, element, f"{where}[{index}]")
            for index, (item, element) in enumerate(zip(items, value, strict=True))
        )
    if origin is Mapping:
        if not isinstance(value, dict):
            raise ManifestError(f"{where}: expected an object, got {value!r:.60}")
        return value
    expected = (int, float) if kind is float else kind
    if not isinstance(value, expected) or (isinstance(value, bool) and kind is not bool):
        raise ManifestError(f"{where}: expected {kind.__name__}, got {value!r:.60}")
    return float(value) if kind is float else value
