"""`make bench-compare`: compare two synthetic runs of 10 million requests each; time and memory.

Both run directories are generated first in child processes (not timed): the baseline as
`make bench-report` generates its run, the candidate with the database saturated. The comparison
then runs in another child (`python -m testbed.cli compare BASELINE CANDIDATE`, what an operator
types), whose wall time, CPU time and peak resident memory (`wait4`'s `ru_maxrss` of that child
alone) are the figures. Target: well under a minute (60 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reports import bootstrap
from testbed.bench.report import print_machine

TARGET_S = 60.0


def main(argv: list[str] | None = None) -> int:
    """Generate, compare, print the figures; exit 1 when the target is missed."""
    parser = argparse.ArgumentParser(prog="python -m testbed.bench.compare", description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000_000)
    parser.add_argument("--duration-s", type=int, default=600)
    parser.add_argument("--keep", type=Path, help="generate into this directory and keep it")
    options = parser.parse_args(argv)
    directory = options.keep or Path(tempfile.mkdtemp(prefix="bench-compare-"))
    try:
        started = time.perf_counter()
        for name, extra in (("baseline", []), ("candidate", ["--stress", "database"])):
            generate = [sys.executable, "-m", "reports.synthetic", str(directory / name), "--parts", "4"]
            generate += ["--requests", str(options.requests), "--duration-s", str(options.duration_s), *extra]
            subprocess.run(generate, check=True)
        generated_s = time.perf_counter() - started
        started = time.perf_counter()
        command = [sys.executable, "-m", "testbed.cli", "compare", str(directory / "baseline")]
        command += [str(directory / "candidate"), "--results", str(directory / "results")]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        headline = child.stdout.readline().strip()
        child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall_s = time.perf_counter() - started
        if child.returncode not in (0, 1):  # 1: a regression, which is a result, not an error
            raise SystemExit(f"the comparison failed with exit status {child.returncode}")
        peak_bytes = usage.ru_maxrss * 1024
        cpu_s = usage.ru_utime + usage.ru_stime
    finally:
        if options.keep is None:
            shutil.rmtree(directory, ignore_errors=True)
    print_machine()
    print(
        f"runs: 2 x {options.requests:,} requests over {options.duration_s} s, 10 routes; generated in "
        f"{generated_s:.1f} s; {bootstrap.REPLICATES} bootstrap replicates per route and side"
    )
    print(f"verdict: {headline}")
    # On a shared machine the wall time includes waiting for a core; the CPU time does not.
    print(f"compare (child process): wall {wall_s:.1f} s, CPU {cpu_s:.1f} s (target < {TARGET_S:g} s)")
    print(f"compare (child process): peak RSS {peak_bytes / 2**30:.2f} GiB")
    return 0 if wall_s < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
