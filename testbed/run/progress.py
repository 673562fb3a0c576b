"""The live progress line of a run, read from Locust's stats history while the load runs."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
import time
from pathlib import Path

PROGRESS_EVERY_S = 2.0
# Without a terminal (a log, CI) a line every 10 s is enough.
PROGRESS_EVERY_S_LOGGED = 10.0


def watch(locust: subprocess.Popen[bytes], history: Path, started_at_s: float, budget_s: float) -> None:
    """Print the progress line until Locust ends or overruns `budget_s`, then the line of the whole run."""
    interactive = sys.stderr.isatty()
    every_s = PROGRESS_EVERY_S if interactive else PROGRESS_EVERY_S_LOGGED
    last_print = -math.inf
    while locust.poll() is None:
        elapsed_s = time.time() - started_at_s
        if elapsed_s > budget_s:
            print("\ntestbed run: the load generator overran its time budget; stopping it", file=sys.stderr)
            return
        if time.monotonic() - last_print >= every_s:
            last_print = time.monotonic()
            _show(progress_line(elapsed_s, history), interactive, end="" if interactive else "\n")
        time.sleep(0.25)
    # The last line sums the whole run, however short it was next to the printing interval.
    _show(progress_line(time.time() - started_at_s, history), interactive, end="\n")


def _show(line: str, interactive: bool, end: str) -> None:
    print(("\r" + line) if interactive else line, end=end, file=sys.stderr)


def progress_line(elapsed_s: float, history: Path) -> str:
    """Return `elapsed, rate, p95, errors` from the last aggregated row of Locust's stats history."""
    row = _last_aggregated(history)
    if row is None:
        return f"{elapsed_s:6.0f} s  starting"
    rate = _float(row.get("Requests/s"))
    p95 = _float(row.get("95%"))
    errors = _count(row.get("Total Failure Count"))
    total = _count(row.get("Total Request Count"))
    return f"{elapsed_s:6.0f} s  {rate:8.1f} req/s  p95 {p95:6.0f} ms  errors {errors}/{total}"


def _last_aggregated(history: Path) -> dict[str, str] | None:
    try:
        with history.open(encoding="utf-8", newline="") as file:
            rows = [row for row in csv.DictReader(file) if row.get("Name") == "Aggregated"]
    except OSError:
        return None
    return rows[-1] if rows else None


def _float(text: str | None) -> float:
    try:
        return float(text or "nan")
    except ValueError:
        return math.nan


def _count(text: str | None) -> int:
    value = _float(text)
    return 0 if math.isnan(value) else int(value)
