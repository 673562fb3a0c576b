"""The requests table of a run directory, written by the load generator as it runs.

The arrival engine's Locust plugin feeds a `RequestSink` one row per request (`--requests-dir`);
it writes parquet parts as it goes, so a long run's memory stays flat. The columns are the run
directory's (`reports/rundir.py`).
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

import pandas as pd

from reports.rundir import REQUEST_COLUMNS, REQUESTS, write_table

REQUEST_PART_ROWS = 250_000
_FAILURE = re.compile(r"^HTTP (\d{3})\s*(\S*)")


class RequestSink:
    """Collect one row per request and write them as parquet parts under `<run>/<table>/`.

    `table`: `requests` (the measured window) or `setup` (what the load generator requested
    before the schedule's clock started).
    """

    def __init__(self, run_dir: Path, part_rows: int = REQUEST_PART_ROWS, table: str = REQUESTS) -> None:
        self.directory = run_dir / table
        self.part_rows = part_rows
        self.prefix = f"{socket.gethostname()}-{os.getpid()}"
        self._columns: dict[str, list[Any]] = {name: [] for name in REQUEST_COLUMNS}
        self._parts = 0
        self.count = 0

    def add(
        self,
        *,
        start_s: float,
        service_s: float,
        corrected_s: float | None,
        flow: str,
        method: str,
        route: str,
        status: int,
        exception: BaseException | None,
    ) -> None:
        """Record one request (corrected None: closed model, where the corrected view is the service one)."""
        corrected = service_s if corrected_s is None else corrected_s
        error_code = ""
        if exception is not None:
            match = _FAILURE.match(str(exception))
            error_code = (match.group(2) or f"HTTP {match.group(1)}") if match else type(exception).__name__
        columns = self._columns
        columns["intended_start_s"].append(start_s - (corrected - service_s))
        columns["start_s"].append(start_s)
        columns["flow"].append(flow)
        columns["method"].append(method)
        columns["route"].append(route)
        columns["status"].append(status)
        columns["error_code"].append(error_code)
        columns["ok"].append(exception is None)
        columns["latency_s"].append(service_s)
        columns["corrected_latency_s"].append(corrected)
        self.count += 1
        if len(columns["start_s"]) >= self.part_rows:
            self.flush()

    def flush(self) -> None:
        """Write the rows collected so far as one part."""
        if not self._columns["start_s"]:
            return
        frame = pd.DataFrame(self._columns)
        self._columns = {name: [] for name in REQUEST_COLUMNS}
        path = self.directory / f"{self.prefix}-{self._parts:04d}.parquet"
        write_table(frame, path, REQUEST_COLUMNS, "requests")
        self._parts += 1
