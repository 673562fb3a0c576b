"""Render a run directory's report: `python -m reports.render_cli RUN_DIR` (what `testbed report` calls).

A capacity search's directory (with `capacity.json`) gets its capacity report instead, a sweep's
(with `sweep.json`) its sweep report.

Exit status: 0 every SLO met (a search: a capacity bracketed; a sweep: a cell holds its target),
1 an SLO failed (a search: no bracketed capacity; a sweep: no cell holds), 2 not a run directory or a
broken table.
"""

from __future__ import annotations

import sys
from pathlib import Path

from reports.capacity import BRACKETED, CAPACITY_HTML, CAPACITY_MD, SEARCH_JSON, render_capacity
from reports.render import render_run
from reports.rundir import REPORT_HTML, SUMMARY_MD, RunDirectoryError
from reports.sweep import SWEEP_HTML, SWEEP_MD, is_sweep, render_sweep


def report_command(run_dir: str | Path) -> int:
    """Re-render a run's (or a search's) report, print its three opening lines and where the files are."""
    path = Path(run_dir)
    searched = (path / SEARCH_JSON).is_file()
    lines: tuple[str, ...]
    try:
        if is_sweep(path):
            sweep = render_sweep(path)
            lines, passed = tuple(sweep.headline()), sweep.recommendation.chosen is not None
            files = (SWEEP_HTML, SWEEP_MD)
        elif searched:
            search = render_capacity(path)
            lines, passed = search.headline(), search.conclusion.status == BRACKETED
            files = (CAPACITY_HTML, CAPACITY_MD)
        else:
            report = render_run(path)
            lines = (*report.headline(), *report.closing_lines())
            passed = report.slo_passed and report.resilience_passed
            files = (REPORT_HTML, SUMMARY_MD)
    except (RunDirectoryError, OSError, ValueError) as error:
        print(f"testbed report: {error}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    print(f"report: {path / files[0]}")
    print(f"summary: {path / files[1]}")
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m reports.render_cli`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m reports.render_cli RUN_DIR", file=sys.stderr)
        return 2
    return report_command(args[0])


if __name__ == "__main__":
    sys.exit(main())
