"""A run's landscape that runs elsewhere: a deployment the testbed only drives (`--target URL`).

Nothing is brought up or down and no process of it is sampled here. Load goes to the target only
when its host is in the profile's `allowed_target_hosts` (`check_target`, before anything is
sent). The pool is seeded through its Consumer API (`seed_pool`). Server figures come from the
deployment's own Prometheus when `--prometheus URL` names it: every scrape target Prometheus
knows becomes one process of the run, its job the tier, read through `/federate` once a second;
without one the run has only client-side figures and its report judges no server tier.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from reports.manifest import CpuRecord, LandscapeRecord
from scenarios.landscape import LandscapeProfile, target_allowed
from testbed.run.collect import Sample, SampledGroup, SampledProcess, ScrapeTarget
from testbed.run.experiment import LandscapeAccess, RunError, relative_to_repository
from testbed.run.load_generator import GeneratorMember

PROMETHEUS_TIMEOUT_S = 5.0
# Labels Prometheus adds to every federated sample; the process and tier carry them instead.
TARGET_LABELS = ("job", "instance")


class TargetError(ValueError):
    """The target (or its Prometheus) may not be driven; the message says why and what to change."""


def check_target(url: str, profile: LandscapeProfile, what: str = "--target") -> str:
    """Return the host of `url` when the profile allows load there; raise TargetError otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"{what} {url!r}: expected http(s)://HOST[:PORT][/PATH]")
    try:
        parts.port  # noqa: B018 - a port that is no number raises here
    except ValueError:
        raise TargetError(f"{what} {url!r}: the port is not a number in 0..65535") from None
    host = parts.hostname
    if not target_allowed(host, profile.allowed_target_hosts):
        raise TargetError(
            f"{what} {url!r}: refused: host {host!r} is not in allowed_target_hosts of profile "
            f"{profile.name} ({profile.source}: {', '.join(profile.allowed_target_hosts)}); add it "
            "there to send load to that deployment"
        )
    return host


@dataclass(frozen=True)
class TargetClient:
    """The deployment's OAuth client the seeded identities belong to, and its DID domain."""

    client_id: str
    client_secret: str = field(repr=False)
    did_domain: str


@dataclass
class TargetLandscape:
    """A deployment that runs elsewhere, driven through its URL (see the module docstring)."""

    profile: LandscapeProfile
    url: str
    client: TargetClient
    cpu: CpuRecord
    prometheus_url: str | None = None
    overrides: Mapping[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.url).hostname or ""

    def up(self) -> LandscapeAccess:
        return LandscapeAccess(
            base_url=self.url.rstrip("/"),
            database_url="",  # seeded through the Consumer API
            did_domain=self.client.did_domain,
            client_id=self.client.client_id,
            client_secret=self.client.client_secret,
            load_generator_cores=self.cpu.load_generator_cores,
        )

    def down(self) -> None:
        """The deployment stays as it was found."""

    def scrape_targets(self) -> list[ScrapeTarget]:
        if self.prometheus_url is None:
            return []
        try:
            known = prometheus_targets(self.prometheus_url)
        except (OSError, ValueError) as error:
            raise RunError(
                f"cannot read the targets of --prometheus {self.prometheus_url}: {error}"
            ) from None
        return [
            ScrapeTarget(
                process, job, self.prometheus_url, read=FederatedReader(self.prometheus_url, job, instance)
            )
            for process, job, instance in known
        ]

    def sampled_processes(self) -> list[SampledProcess]:
        return []  # the deployment's processes are not on this machine

    def budget_groups(self) -> list[SampledGroup]:
        return []

    @property
    def monitored(self) -> bool:
        return False  # the deployment's own Prometheus watches it (--prometheus)

    def watch_load_generator(self, members: Sequence[GeneratorMember]) -> None:
        return

    def manifest(self) -> LandscapeRecord:
        profile = self.profile
        return LandscapeRecord(
            name=profile.name,
            description=profile.description,
            source=relative_to_repository(profile.source),
            overrides=dict(self.overrides),
            environment=profile.environment,
            # The host, never the URL: the report holds no http(s) reference.
            load_target=f"target {self.host}",
            threads_per_worker=profile.nodes.threads,
            cpu=self.cpu,
            target_host=self.host,
            server_metrics="prometheus" if self.prometheus_url else "",
            unsampled=("the target's processes: they run elsewhere",),
        )


def prometheus_targets(prometheus_url: str) -> list[tuple[str, str, str]]:
    """(process, job, instance) of every active scrape target: the job is the tier, the process
    the job with its instance's rank (`node1`, `node2`) in the order of the instances."""
    address = f"{prometheus_url.rstrip('/')}/api/v1/targets?state=active"
    with urllib.request.urlopen(address, timeout=PROMETHEUS_TIMEOUT_S) as response:  # noqa: S310 - checked host
        answer: dict[str, Any] = json.loads(response.read())
    if answer.get("status") != "success":
        raise ValueError(f"Prometheus answered {answer.get('status')!r}")
    found = sorted(
        {
            (target["labels"]["job"], target["labels"]["instance"])
            for target in answer["data"]["activeTargets"]
        }
    )
    ranks: dict[str, int] = {}
    named = []
    for job, instance in found:
        ranks[job] = ranks.get(job, 0) + 1
        named.append((f"{job}{ranks[job]}", job, instance))
    return named


@dataclass(frozen=True)
class FederatedReader:
    """Read one scrape target's newest samples from Prometheus' `/federate` (raises OSError)."""

    prometheus_url: str
    job: str
    instance: str

    def __call__(self) -> list[Sample]:
        selector = f'{{job="{self.job}",instance="{self.instance}"}}'
        query = urllib.parse.urlencode({"match[]": selector})
        address = f"{self.prometheus_url.rstrip('/')}/federate?{query}"
        with urllib.request.urlopen(address, timeout=PROMETHEUS_TIMEOUT_S) as response:  # noqa: S310
            return federated_samples(response.read().decode("utf-8", "replace"))


def federated_samples(text: str) -> list[Sample]:
    """The samples of a `/federate` answer without the labels Prometheus added (job, instance)."""
    samples: list[Sample] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = {name: value for name, value in sample.labels.items() if name not in TARGET_LABELS}
            samples.append((sample.name, labels, float(sample.value)))
    return samples


def credentials_problem(path: Path) -> str | None:
    """Say why `--credentials FILE` cannot stand for the seeded pool (None: it can)."""
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        return f"--credentials {path}: cannot read it ({error.strerror})"
    except ValueError:
        return f"--credentials {path}: not a credentials file written by testbed seed (not JSON)"
    return None
