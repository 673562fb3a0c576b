"""`make bench-report`: render the report of a synthetic run with 10 million requests; time and memory.

The run directory is generated first in a child process (not timed); the report is then
rendered in another child (`python -m reports.render_cli DIR`, what `testbed report` does), whose
wall time, CPU time and peak resident memory (`wait4`'s `ru_maxrss` of that child alone) are the
figures. Targets: under 60 s and under 4 GiB.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

TARGET_S = 60.0
TARGET_BYTES = 4 * 2**30


def print_machine() -> None:
    """Print the machine (with its load: a shared machine's wall times include waiting) and versions."""
    load = os.getloadavg()[0]
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f}")
    print(
        f"versions: Python {platform.python_version()}, pandas {version('pandas')}, "
        f"numpy {version('numpy')}, pyarrow {version('pyarrow')}"
    )


def main(argv: list[str] | None = None) -> int:
    """Generate, render, print the figures; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(prog="python -m testbed.bench.report", description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000_000)
    parser.add_argument("--duration-s", type=int, default=600)
    parser.add_argument("--keep", type=Path, help="generate into this directory and keep it")
    options = parser.parse_args(argv)
    directory = options.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        run_dir = directory / "synthetic"
        # Generated in a child too: a child's peak RSS starts from its parent's at fork, so this
        # process must stay small for the rendering child's figure to be its own.
        started = time.perf_counter()
        generate = [sys.executable, "-m", "reports.synthetic", str(run_dir), "--parts", "4"]
        generate += ["--requests", str(options.requests), "--duration-s", str(options.duration_s)]
        subprocess.run(generate, check=True)
        generated_s = time.perf_counter() - started
        size = sum(path.stat().st_size for path in run_dir.rglob("*") if path.is_file())
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "reports.render_cli", str(run_dir)])
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall_s = time.perf_counter() - started
        if child.returncode not in (0, 1):  # 1: an SLO failed, which is a result, not an error
            raise SystemExit(f"rendering failed with exit status {child.returncode}")
        peak_bytes = usage.ru_maxrss * 1024
        cpu_s = usage.ru_utime + usage.ru_stime
        html_bytes = (run_dir / "report.html").stat().st_size
    finally:
        if options.keep is None:
            shutil.rmtree(directory, ignore_errors=True)
    print_machine()
    print(
        f"run: {options.requests:,} requests over {options.duration_s} s, 10 routes, 2 nodes; "
        f"{size / 2**20:.0f} MiB on disk, generated in {generated_s:.1f} s"
    )
    # On a shared machine the wall time includes waiting for a core; the CPU time does not.
    print(f"render (child process): wall {wall_s:.1f} s, CPU {cpu_s:.1f} s (target < {TARGET_S:g} s)")
    target_gib = TARGET_BYTES / 2**30
    print(f"render (child process): peak RSS {peak_bytes / 2**30:.2f} GiB (target < {target_gib:g} GiB)")
    print(f"report.html: {html_bytes / 1024:.0f} KiB")
    return 0 if wall_s < TARGET_S and peak_bytes < TARGET_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
