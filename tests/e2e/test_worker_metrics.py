"""Under gunicorn, /metrics merges the workers, and a worker that dies leaves no live gauges behind."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.server import running_backbone
from tests.helpers.services import FAST_HASH_ITERATIONS


def scrape(url: str) -> dict[str, float]:
    """The unlabelled samples of `/metrics`, by name."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def workers_of(port: int) -> list[int]:
    """The gunicorn workers serving `port`: children of the `backbone serve` process started with it."""
    commands = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if b"serve" in command and str(port).encode() in command:
                commands[int(entry.name)] = parent
    return sorted(pid for pid, parent in commands.items() if parent in commands)


def test_a_killed_worker_is_replaced_and_counted_once(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_99999999.db").write_bytes(b"left over from an earlier run")
    environment = {
        "BACKBONE_VAR_DIR": str(tmp_path / "var"),
        "BACKBONE_PASSWORD_HASH_ITERATIONS": str(FAST_HASH_ITERATIONS),
        "BACKBONE_METRICS_DIR": str(metrics_dir),
    }
    with running_backbone(environment, args=("serve", "--workers", "2"), log_path=tmp_path / "log") as url:
        port = int(url.rsplit(":", 1)[1])
        assert not (metrics_dir / "counter_99999999.db").exists()
        before = wait_for(lambda: workers_of(port) if len(workers_of(port)) == 2 else None)
        assert wait_for(lambda: scrape(url)["backbone_gunicorn_workers"] == 2)
        dead = before[0]
        os.kill(dead, signal.SIGKILL)
        (replacement,) = wait_for(lambda: set(workers_of(port)) - set(before) or None)
        # The replacement has created its metrics, and the master has dropped the dead worker's live gauges.
        wait_for(lambda: (metrics_dir / f"gauge_livesum_{replacement}.db").exists())
        wait_for(lambda: not (metrics_dir / f"gauge_livesum_{dead}.db").exists())
        values = scrape(url)
        assert values["backbone_gunicorn_workers"] == 2
        assert values["http_server_active_requests"] == 1


def wait_for(condition, timeout_s: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise TimeoutError("condition not met in time")
