"""What lies under `results/`: runs, repeats of one experiment, capacity searches and comparisons.

Each entry is one directory directly under `results/`, recognised by what it holds:

    run          manifest.json (reports/manifest.py), the tables and the report of one experiment
    repeats      repeats.json and one run directory per repeat (`testbed run --repeat N`)
    capacity     capacity.parquet and capacity.json (`testbed capacity`; read by `read_capacity`)
    comparison   comparison.json, comparison.html and comparison.md (`testbed compare`)

Anything else is not the testbed's and is neither listed nor ever removed. Sweeps join as a
fifth kind when they exist: a reader in `_KINDS` and a section of the site.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reports import capacity
from reports.manifest import MANIFEST, ManifestError, RunManifest, read_manifest
from reports.rundir import REPORT_HTML, SUMMARY_MD, RunDirectoryError

REPEATS = "repeats.json"
REPEATS_FORMAT_VERSION = 1
COMPARISON_JSON = "comparison.json"
COMPARISON_HTML = "comparison.html"
COMPARISON_MD = "comparison.md"
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_AGE_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class HistoryError(ValueError):
    """A result directory cannot be read; the message is one line naming it."""


@dataclass(frozen=True)
class Entry:
    """One result under `results/`, as the history lists it."""

    kind: str
    entry_id: str
    path: Path
    started_at_s: float | None
    profile: str = ""
    scenario: str = ""
    multiplier: float | None = None
    verdicts: str = ""
    capacity: str = ""
    size_bytes: int = 0
    # The page to open, relative to the entry's directory ("" when there is none).
    report: str = ""
    # Member runs (repeats), or baseline and candidate (comparison), as paths under results/.
    members: tuple[str, ...] = ()

    @property
    def date(self) -> str:
        if self.started_at_s is None:
            return "unknown"
        return datetime.fromtimestamp(self.started_at_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# Repeats of one experiment


@dataclass(frozen=True)
class RepeatGroup:
    """`repeats.json`: the runs of one experiment repeated N times, each a run directory inside."""

    group_id: str
    created_at_s: float
    requested: int
    runs: tuple[str, ...] = ()
    exit_statuses: tuple[int, ...] = ()
    format_version: int = REPEATS_FORMAT_VERSION


def write_repeats(group_dir: Path, group: RepeatGroup) -> None:
    """Write repeats.json of a group directory."""
    group_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "format_version": group.format_version,
        "group_id": group.group_id,
        "created_at_s": group.created_at_s,
        "requested": group.requested,
        "runs": list(group.runs),
        "exit_statuses": list(group.exit_statuses),
    }
    (group_dir / REPEATS).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read_repeats(group_dir: Path) -> RepeatGroup:
    """Read repeats.json, or raise HistoryError in one line."""
    data = _json_object(group_dir / REPEATS)
    if data.get("format_version") != REPEATS_FORMAT_VERSION:
        raise HistoryError(
            f"{group_dir / REPEATS}: format_version {data.get('format_version')!r}, but this testbed reads "
            f"{REPEATS_FORMAT_VERSION}"
        )
    try:
        return RepeatGroup(
            group_id=str(data["group_id"]),
            created_at_s=float(data["created_at_s"]),
            requested=int(data["requested"]),
            runs=tuple(str(run) for run in data["runs"]),
            exit_statuses=tuple(int(code) for code in data.get("exit_statuses", ())),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise HistoryError(f"{group_dir / REPEATS}: malformed: {error}") from None


def is_repeat_group(path: Path) -> bool:
    return (path / REPEATS).is_file()


def is_run(path: Path) -> bool:
    return (path / MANIFEST).is_file()


# Capacity searches


@dataclass(frozen=True)
class CapacityResult:
    """What a comparison and the history need of a capacity search.

    `capacity_rps` is the achieved rate of the highest step that held the SLO on a valid run
    (None: no step held it); `next_failed_rps` the rate of the first step above it that failed
    (None: none failed, the capacity is a lower bound). The true capacity lies between the two:
    that is the search's resolution, and a comparison's interval.
    """

    path: Path
    search_id: str
    scenario: str
    profile: str
    started_at_s: float | None
    capacity_rps: float | None
    next_failed_rps: float | None
    multiplier: float | None
    limiting_tier: str
    problems: tuple[str, ...] = ()
    manifest: RunManifest | None = None


def is_capacity(path: Path) -> bool:
    return (path / capacity.STEPS_TABLE).is_file() and (path / capacity.SEARCH_JSON).is_file()


def read_capacity(path: Path) -> CapacityResult:
    """Read a capacity search's directory (`testbed capacity`: reports/capacity.py) as the history
    and the comparison see it: the capacity of its good step, the next rate that failed, the tier
    that limited the bad step, and the first step's run manifest."""
    try:
        report = capacity.build_capacity_report(path)
    except (ManifestError, RunDirectoryError, OSError) as error:
        raise HistoryError(f"{path}: not a capacity search this testbed reads: {error}") from None
    search, conclusion, bad = report.search, report.conclusion, report.bad
    manifest = None
    if len(report.steps):
        step_dir = path / str(report.steps["run_dir"].iloc[0])
        manifest = read_manifest(step_dir) if is_run(step_dir) else None
    found = conclusion.status != capacity.NONE
    return CapacityResult(
        path=path,
        search_id=search.search_id,
        scenario=search.scenario.name,
        profile=search.profile.name,
        started_at_s=search.started_at_s or None,
        capacity_rps=report.capacity_requests_per_s if found else None,
        next_failed_rps=float(bad["achieved_requests_per_s"]) if bad is not None else None,
        multiplier=conclusion.capacity_multiplier,
        limiting_tier=str(bad["first_saturated_tier"]) if bad is not None else "",
        problems=() if found else (conclusion.reason,),
        manifest=manifest,
    )


# Scanning and pruning


def _json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise HistoryError(f"{path}: cannot read: {error}") from None
    if not isinstance(data, dict):
        raise HistoryError(f"{path}: a JSON object is expected")
    return data


def _optional_float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def size_bytes(path: Path) -> int:
    """Bytes of every file under `path` (links not followed)."""
    return sum(item.lstat().st_size for item in path.rglob("*") if item.is_file() and not item.is_symlink())


def headline(run_dir: Path) -> tuple[str, str]:
    """Return the SLO and validity verdicts as the rendered summary states them ("" when not rendered)."""
    try:
        lines = (run_dir / SUMMARY_MD).read_text(encoding="utf-8").splitlines()[:2]
    except OSError:
        return "", ""
    slo = next((line for line in lines if line.startswith("SLO: ")), "")
    validity = next((line for line in lines if line.startswith("Validity: ")), "")
    return slo.split(":", 2)[1].strip() if slo else "", validity.split(":", 2)[1].strip() if validity else ""


def run_entry(path: Path) -> Entry:
    """The history's entry of one run directory (ManifestError when its manifest cannot be read)."""
    manifest = read_manifest(path)
    slo, validity = headline(path)
    return Entry(
        kind="run",
        entry_id=manifest.run_id,
        path=path,
        started_at_s=manifest.started_at_s,
        profile=manifest.profile.name,
        scenario=manifest.scenario.name,
        multiplier=manifest.scenario.multiplier,
        verdicts=f"SLO {slo}, {validity}" if slo else "not rendered",
        size_bytes=size_bytes(path),
        report=REPORT_HTML if (path / REPORT_HTML).is_file() else "",
    )


def _repeats_entry(path: Path) -> Entry:
    group = read_repeats(path)
    members = [run_entry(path / run) for run in group.runs if is_run(path / run)]
    first = members[0] if members else None
    return Entry(
        kind="repeats",
        entry_id=group.group_id,
        path=path,
        started_at_s=first.started_at_s if first else group.created_at_s,
        profile=first.profile if first else "",
        scenario=first.scenario if first else "",
        multiplier=first.multiplier if first else None,
        verdicts="; ".join(member.verdicts for member in members) or "no run completed",
        size_bytes=size_bytes(path),
        members=tuple(f"{path.name}/{member.path.name}" for member in members),
    )


def _capacity_entry(path: Path) -> Entry:
    result = read_capacity(path)
    found = (
        f"{result.capacity_rps:,.1f} requests/s"
        + (f" at x{result.multiplier:g}" if result.multiplier else "")
        if result.capacity_rps is not None
        else "none found"
    )
    pages = sorted(page.name for page in path.glob("*.html"))
    return Entry(
        kind="capacity",
        entry_id=result.search_id,
        path=path,
        started_at_s=result.started_at_s,
        profile=result.profile,
        scenario=result.scenario,
        multiplier=result.multiplier,
        verdicts="INVALID: " + "; ".join(result.problems) if result.problems else "valid",
        capacity=found + (f", limited by {result.limiting_tier}" if result.limiting_tier else ""),
        size_bytes=size_bytes(path),
        report=pages[0] if pages else "",
    )


def _comparison_entry(path: Path) -> Entry:
    data = _json_object(path / COMPARISON_JSON)
    return Entry(
        kind="comparison",
        entry_id=str(data.get("comparison_id", path.name)),
        path=path,
        started_at_s=_optional_float(data.get("created_at_s")),
        profile=str(data.get("profile", "")),
        scenario=str(data.get("scenario", "")),
        verdicts=str(data.get("verdict", "")),
        size_bytes=size_bytes(path),
        report=COMPARISON_HTML if (path / COMPARISON_HTML).is_file() else "",
        members=(str(data.get("baseline", "")), str(data.get("candidate", ""))),
    )


def _sweep_entry(path: Path) -> Entry:
    from reports.rundir import RunDirectoryError
    from reports.sweep import SWEEP_HTML, build_sweep_report

    try:
        report = build_sweep_report(path)
    except RunDirectoryError as error:
        raise HistoryError(str(error)) from None
    record = report.recommendation
    lines = record.lines()
    return Entry(
        kind="sweep",
        entry_id=report.record.sweep_id,
        path=path,
        started_at_s=report.record.started_at_s or None,
        profile=report.record.profile,
        scenario=report.record.scenario,
        verdicts=f"{len(report.cells)} of {report.record.cells_planned} cell(s)"
        + (" (interrupted)" if report.record.interrupted else ""),
        capacity=lines[1] if len(lines) > 1 else "",
        size_bytes=size_bytes(path),
        report=SWEEP_HTML if (path / SWEEP_HTML).is_file() else "",
    )


# Recognisers in order: the first whose test holds reads the directory.
_KINDS: tuple[tuple[Callable[[Path], bool], Callable[[Path], Entry]], ...] = (
    (lambda path: (path / "sweep.json").is_file(), _sweep_entry),
    (is_repeat_group, _repeats_entry),
    (is_capacity, _capacity_entry),
    (lambda path: (path / COMPARISON_JSON).is_file(), _comparison_entry),
    (is_run, run_entry),
)


@dataclass(frozen=True)
class History:
    """The entries under a results directory, oldest first, and what could not be read."""

    results_dir: Path
    entries: tuple[Entry, ...]
    unreadable: tuple[str, ...] = field(default_factory=tuple)

    def of_kind(self, kind: str) -> list[Entry]:
        return [entry for entry in self.entries if entry.kind == kind]


def scan(results_dir: Path) -> History:
    """List every result directly under `results_dir` (not a results directory: an empty history)."""
    entries, unreadable = [], []
    children = sorted(results_dir.iterdir()) if results_dir.is_dir() else []
    for path in children:
        if not path.is_dir() or path.is_symlink():
            continue
        reader = next((read for test, read in _KINDS if test(path)), None)
        if reader is None:
            continue
        try:
            entries.append(reader(path))
        except (HistoryError, ManifestError, OSError, ValueError) as error:
            unreadable.append(str(error))
    entries.sort(key=lambda entry: (entry.started_at_s is None, entry.started_at_s or 0.0, entry.entry_id))
    return History(results_dir, tuple(entries), tuple(unreadable))


def parse_age_s(text: str) -> float:
    """Parse an age such as 30d, 12h, 90m, 2w or 45s into seconds; raise ValueError naming the forms."""
    match = _AGE.match(text)
    if match is None or float(match[1]) <= 0:
        raise ValueError(f"{text!r} is not an age: a positive number and a unit, e.g. 30d, 12h, 90m, 2w, 45s")
    return float(match[1]) * _AGE_UNITS_S[match[2]]


def older_than(entries: Iterable[Entry], age_s: float, now_s: float) -> list[Entry]:
    """Return the entries that started more than `age_s` before `now_s` (an unknown date never is)."""
    return [
        entry for entry in entries if entry.started_at_s is not None and entry.started_at_s < now_s - age_s
    ]


def prune(history: History, entries: Sequence[Entry]) -> list[Entry]:
    """Remove exactly these entries' directories (each must be directly under the results directory)."""
    root = history.results_dir.resolve()
    removed = []
    for entry in entries:
        path = entry.path.resolve()
        if path.parent != root or entry not in history.entries:
            raise HistoryError(f"{entry.path}: not an entry of {history.results_dir}; nothing removed")
    for entry in entries:
        shutil.rmtree(entry.path)
        removed.append(entry)
    return removed


def entry_rows(entries: Iterable[Entry]) -> list[list[str]]:
    """Rows of the history table: id, kind, date, profile, scenario, multiplier, verdicts, capacity, size."""
    return [
        [
            entry.entry_id,
            entry.kind,
            entry.date,
            entry.profile or "-",
            entry.scenario or "-",
            f"{entry.multiplier:g}" if entry.multiplier is not None else "-",
            entry.verdicts or "-",
            entry.capacity or "-",
            human_size(entry.size_bytes),
        ]
        for entry in entries
    ]


HISTORY_HEADER = ("id", "kind", "date", "profile", "scenario", "multiplier", "verdicts", "capacity", "size")


def human_size(size: int) -> str:
    """Return a byte count as B, KiB, MiB or GiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
