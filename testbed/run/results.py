"""`testbed compare`, `testbed history` and `testbed site`: what lies under `results/`.

Exit status of `compare`: 0 no regression, 1 a regression, 2 not comparable (different
scenarios, an invalid run, a run against a capacity search) or bad input, in one line.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

from reports.compare import (
    DEFAULT_THRESHOLD,
    NotComparable,
    compare,
    load_result,
    percent_text,
    render_markdown,
    write_comparison,
)
from reports.history import (
    COMPARISON_HTML,
    COMPARISON_MD,
    HISTORY_HEADER,
    HistoryError,
    entry_rows,
    human_size,
    older_than,
    parse_age_s,
    prune,
    scan,
)
from reports.manifest import ManifestError
from reports.rundir import RunDirectoryError
from reports.site import write_site
from testbed.run.commands import RESULTS_DIR

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%?\s*$")


def add_results_commands(commands: Any) -> None:
    """Add `compare`, `history` and `site` to the `testbed` parser; each sets `run`."""
    results_help = f"the results directory (default {RESULTS_DIR})"
    compare_parser = commands.add_parser(
        "compare",
        help="compare two runs (or repeats, or capacity searches): better, worse or noise",
        description="Compare a candidate with a baseline: what differs, and per route whether "
        "throughput, error ratio and each latency percentile changed beyond their noise. "
        "Exit 0 no regression, 1 a regression, 2 not comparable.",
    )
    compare_parser.add_argument(
        "baseline", metavar="BASELINE", help="a result directory or its id under --results"
    )
    compare_parser.add_argument(
        "candidate", metavar="CANDIDATE", help="a result directory or its id under --results"
    )
    compare_parser.add_argument(
        "--threshold",
        default=percent_text(DEFAULT_THRESHOLD),
        help="the change that counts, e.g. 5%% (the default) or 25%%",
    )
    compare_parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the Markdown here")
    compare_parser.add_argument("--results", type=Path, default=RESULTS_DIR, help=results_help)
    compare_parser.set_defaults(run=compare_command)
    history = commands.add_parser(
        "history",
        help="list the runs, repeats, capacity searches and comparisons under results/",
        description="List what lies under the results directory; --prune-older-than removes the "
        "entries older than an age and nothing else.",
    )
    history.add_argument(
        "--prune-older-than", metavar="AGE", help="remove entries older than AGE (30d, 12h, 2w)"
    )
    history.add_argument(
        "--dry-run", action="store_true", help="with --prune-older-than: only say what would go"
    )
    history.add_argument("--results", type=Path, default=RESULTS_DIR, help=results_help)
    history.set_defaults(run=history_command)
    site = commands.add_parser(
        "site", help="write results/index.html: history, trends, capacities and comparisons in one page"
    )
    site.add_argument("--results", type=Path, default=RESULTS_DIR, help=results_help)
    site.set_defaults(run=site_command)


def parse_threshold(text: str) -> float:
    """Parse 5% or 5 (percent) into 0.05; raise ValueError naming the form."""
    match = _PERCENT.match(text)
    if match is None:
        raise ValueError(f"--threshold {text!r}: expected a percentage such as 5% or 25%")
    return float(match[1]) / 100


def _resolve(results: Path, name: str) -> Path:
    path = Path(name)
    if path.is_dir():
        return path
    if (results / name).is_dir():
        return results / name
    raise FileNotFoundError(f"{name}: no such result (a directory, or an id under {results})")


def compare_command(args: argparse.Namespace) -> int:
    """`testbed compare`."""
    try:
        threshold = parse_threshold(args.threshold)
        baseline = load_result(_resolve(args.results, args.baseline))
        candidate = load_result(_resolve(args.results, args.candidate))
        comparison = compare(baseline, candidate, threshold)
    except NotComparable as error:
        print(f"testbed compare: not comparable: {error}", file=sys.stderr)
        return 2
    except (HistoryError, ManifestError, RunDirectoryError, OSError, ValueError) as error:
        print(f"testbed compare: {error}", file=sys.stderr)
        return 2
    path = write_comparison(comparison, args.results)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(render_markdown(comparison), encoding="utf-8")
    print(comparison.headline())
    print(f"report: {path / COMPARISON_HTML}\nsummary: {path / COMPARISON_MD}")
    return comparison.exit_status


def history_command(args: argparse.Namespace) -> int:
    """`testbed history`."""
    history = scan(args.results)
    if args.prune_older_than is not None:
        try:
            age_s = parse_age_s(args.prune_older_than)
        except ValueError as error:
            print(f"testbed history: --prune-older-than {error}", file=sys.stderr)
            return 2
        chosen = older_than(history.entries, age_s, time.time())
        verb = "would remove" if args.dry_run else "removed"
        if not args.dry_run:
            prune(history, chosen)
        for entry in chosen:
            print(f"{verb} {entry.kind} {entry.path} ({entry.date}, {human_size(entry.size_bytes)})")
        print(f"{verb} {len(chosen)} entries, {human_size(sum(entry.size_bytes for entry in chosen))}")
        if not args.dry_run:
            history = scan(args.results)
    for problem in history.unreadable:
        print(f"testbed history: not readable: {problem}", file=sys.stderr)
    if not history.entries:
        print(f"no results under {args.results}")
        return 0
    print(_text_table(HISTORY_HEADER, entry_rows(history.entries)))
    return 0


def _text_table(header: tuple[str, ...], rows: list[list[str]]) -> str:
    widths = [max(len(row[index]) for row in [list(header), *rows]) for index in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [list(header), *rows]
    ]
    return "\n".join(lines)


def site_command(args: argparse.Namespace) -> int:
    """`testbed site`."""
    path = write_site(args.results)
    print(f"site: {path}")
    return 0
