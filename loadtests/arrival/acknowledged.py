"""Every write the backbone acknowledged, recorded by the load process that sent it.

A fault run must show that nothing the backbone answered with a 2xx is gone afterwards. Each load
process appends the id of every acknowledged write to `<run>/acknowledged/<host>-<pid>.jsonl`
(one `{"table": ..., "id": ...}` per line, flushed per write so a stopped process loses none),
and the run reads them all back from the landscape's database once the load has ended
(`testbed/run/acknowledged.py`).

The writes: messages, tokens, relationship templates, files and datawallet modifications (pushed,
or created when a sync run is finalised). Each is named by the route template Locust reports.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from reports.rundir import ACKNOWLEDGED


def _result(document: Any) -> Any:
    return document.get("result") if isinstance(document, dict) else None


def _single(document: Any) -> Iterator[str]:
    result = _result(document)
    if isinstance(result, dict) and isinstance(result.get("id"), str):
        yield result["id"]


def _listed(key: str) -> Callable[[Any], Iterator[str]]:
    def ids(document: Any) -> Iterator[str]:
        result = _result(document)
        items = result.get(key) if isinstance(result, dict) else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                yield item["id"]

    return ids


# (method, route template) -> (table, how the response names the ids)
WRITES: dict[tuple[str, str], tuple[str, Callable[[Any], Iterator[str]]]] = {
    ("POST", "/api/v2/Messages"): ("messages", _single),
    ("POST", "/api/v2/Tokens"): ("tokens", _single),
    ("POST", "/api/v2/RelationshipTemplates"): ("relationship_templates", _single),
    ("POST", "/api/v2/Files"): ("file_metadata", _single),
    ("POST", "/api/v2/Datawallet/Modifications"): ("datawallet_modifications", _listed("modifications")),
    ("PUT", "/api/v2/SyncRuns/{id}/FinalizeExternalEventSync"): (
        "datawallet_modifications",
        _listed("datawalletModifications"),
    ),
    ("PUT", "/api/v2/SyncRuns/{id}/FinalizeDatawalletVersionUpgrade"): (
        "datawallet_modifications",
        _listed("datawalletModifications"),
    ),
}


def acknowledged_ids(method: str, route: str, status: int, body: bytes) -> tuple[str, list[str]] | None:
    """The table and ids a response acknowledged, or None (not a recorded write, or not a 2xx)."""
    write = WRITES.get((method.upper(), route))
    if write is None or not 200 <= status < 300 or not body:
        return None
    table, ids = write
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return table, list(ids(document))


class AcknowledgedWrites:
    """Append each acknowledged write's ids to this process's file under `<run>/acknowledged/`."""

    def __init__(self, run_dir: Path) -> None:
        directory = run_dir / ACKNOWLEDGED
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{socket.gethostname()}-{os.getpid()}.jsonl"
        self._file: IO[str] = self.path.open("a", encoding="utf-8")
        self.count = 0

    def record(self, method: str, route: str, status: int, body: bytes) -> None:
        found = acknowledged_ids(method, route, status, body)
        if found is None:
            return
        table, ids = found
        for identifier in ids:
            self._file.write(json.dumps({"table": table, "id": identifier}) + "\n")
            self.count += 1
        self._file.flush()

    def close(self) -> None:
        self._file.close()
