"""Render a run directory's report: `python -m reports.render_cli RUN_DIR` (what `testbed report` calls).

Exit status: 0 every SLO met, 1 an SLO failed, 2 not a run directory or a broken table.
"""

from __future__ import annotations

import sys
from pathlib import Path

from reports.render import render_run
from reports.rundir import REPORT_HTML, SUMMARY_MD, RunDirectoryError


def report_command(run_dir: str | Path) -> int:
    """Re-render a run's report, print its three verdict lines and where the files are."""
    try:
        report = render_run(run_dir)
    except (RunDirectoryError, OSError, ValueError) as error:
        print(f"testbed report: {error}", file=sys.stderr)
        return 2
    for line in report.headline():
        print(line)
    print(f"report: {Path(run_dir) / REPORT_HTML}")
    print(f"summary: {Path(run_dir) / SUMMARY_MD}")
    return 0 if report.slo_passed else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m reports.render_cli`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m reports.render_cli RUN_DIR", file=sys.stderr)
        return 2
    return report_command(args[0])


if __name__ == "__main__":
    sys.exit(main())
