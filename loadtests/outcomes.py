"""How a scenario iteration ended: an expected business outcome, or a failure with its error code.

An iteration that ends the way the backbone may rightly answer a real identity counts as a
success under a label: `ok` for the normal path, `no-new-events` when a sync run had nothing to
do, `rejected:<code>` for a business rejection the scenario expects. Anything else is a failure
labelled `failed:<code>` (the backbone's error code, or `HTTP <status>` without one, or the
exception's name for a transport problem) and the iteration raises, so the arrival engine counts
it as failed. Counts are kept per flow and label and merge across load processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OK = "ok"
NO_NEW_EVENTS = "no-new-events"
FAILED_PREFIX = "failed:"
REJECTED_PREFIX = "rejected:"


class UnexpectedOutcome(Exception):
    """An iteration ended in a way its scenario does not expect; `label` says how."""

    def __init__(self, label: str, detail: str = "") -> None:
        super().__init__(f"{label}: {detail}" if detail else label)
        self.label = label


def rejected(code: str) -> str:
    return REJECTED_PREFIX + code


def failure_label(error: BaseException) -> str:
    """The failure label of an exception: the backbone's error code where there is one."""
    from loadtests.client import ApiError

    if isinstance(error, UnexpectedOutcome):
        return error.label
    if isinstance(error, ApiError):
        return FAILED_PREFIX + (error.code or f"HTTP {error.status}")
    return FAILED_PREFIX + type(error).__name__


class OutcomeCounts:
    """Iteration outcomes per flow and label, mergeable across processes."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}

    def record(self, flow: str, label: str) -> None:
        labels = self.counts.setdefault(flow, {})
        labels[label] = labels.get(label, 0) + 1

    def to_data(self) -> dict[str, dict[str, int]]:
        return {flow: dict(labels) for flow, labels in self.counts.items()}

    def take(self) -> dict[str, dict[str, int]]:
        """Everything recorded since the last call, forgotten here (for a worker's report)."""
        data, self.counts = self.to_data(), {}
        return data

    def merge_data(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        for flow, labels in data.items():
            for label, count in labels.items():
                mine = self.counts.setdefault(flow, {})
                mine[label] = mine.get(label, 0) + int(count)

    def failures(self, flow: str | None = None) -> dict[str, int]:
        """The failure labels and their counts (of one flow, or of all flows summed)."""
        found: dict[str, int] = {}
        for name, labels in self.counts.items():
            if flow is not None and name != flow:
                continue
            for label, count in labels.items():
                if label.startswith(FAILED_PREFIX):
                    found[label] = found.get(label, 0) + count
        return found

    def format(self) -> str:
        """Fixed-width text: one line per flow and label."""
        lines = [f"{'flow':<28} {'outcome':<72} {'count':>8}"]
        for flow in sorted(self.counts):
            for label, count in sorted(self.counts[flow].items(), key=lambda item: (-item[1], item[0])):
                lines.append(f"{flow:<28} {label:<72} {count:>8}")
        return "\n".join(lines)
