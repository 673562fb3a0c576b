"""`testbed run --repeat N`: the same experiment N times, its runs grouped under one id.

A loop around the run command, nothing inside it: each repeat is an ordinary `testbed run` (same
profile, scenario, seed and options) whose run directory goes into `results/<group-id>/`, and
`repeats.json` (reports/history.py) lists them. A comparison (`testbed compare`) of a group takes
its spread from run to run as part of its noise. Repeats stop at the first that fails to run (exit
2, 3 or 130); a completed run with a failed SLO or an invalid verdict (exit 1) does not stop them.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from reports.history import RepeatGroup, write_repeats

# Worst first: how a group's exit status is chosen from its repeats'.
_WORST_FIRST = (130, 3, 2, 1)


def group_id(args: argparse.Namespace, now: datetime) -> str:
    """`<UTC time>-<scenario>-<profile>-x<N>-<4 hex>`, in the style of a run id."""
    scenario = Path(args.scenario).stem if args.scenario else "default"
    return f"{now:%Y%m%dT%H%M%SZ}-{scenario}-{Path(args.profile).stem}-x{args.repeat}-{secrets.token_hex(2)}"


def run_repeated(args: argparse.Namespace, run_once: Callable[[argparse.Namespace], int]) -> int:
    """Run `run_once` args.repeat times into one group directory; return the worst exit status."""
    if args.repeat < 1:
        print("testbed run: --repeat must be >= 1", file=sys.stderr)
        return 2
    if args.repeat == 1:
        return run_once(args)
    now = datetime.now(UTC)
    group = args.results / group_id(args, now)
    runs: list[str] = []
    statuses: list[int] = []
    for number in range(1, args.repeat + 1):
        print(f"testbed run: repeat {number} of {args.repeat} into {group}", file=sys.stderr)
        before = _run_dirs(group)
        try:
            status = run_once(argparse.Namespace(**{**vars(args), "results": group}))
        except KeyboardInterrupt:  # outside the experiment (its report rendering): the run lets it through
            status = 130
        statuses.append(status)
        runs += sorted(_run_dirs(group) - before)
        if group.is_dir():
            # Written after every repeat: an interrupted group still lists what it ran.
            write_repeats(
                group, RepeatGroup(group.name, now.timestamp(), args.repeat, tuple(runs), tuple(statuses))
            )
        if status not in (0, 1):
            break
    if group.is_dir():
        print(f"repeats: {group} ({len(runs)} of {args.repeat} runs)")
    return next((code for code in _WORST_FIRST if code in statuses), 0)


def _run_dirs(group: Path) -> set[str]:
    return {path.name for path in group.iterdir() if path.is_dir()} if group.is_dir() else set()
