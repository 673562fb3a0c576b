"""The acknowledged-writes verifier: read back every id the backbone acknowledged during the run.

The load processes recorded each acknowledged write (`loadtests/arrival/acknowledged.py`); once
the load has ended and before the landscape goes down, every id is looked up in the landscape's
database, its system of record, table by table in chunks. What is missing is lost: a fault run
passes only with none lost (`reports/verdicts.py`, `judge_acknowledged`). The result goes to
`acknowledged.json`; the ids themselves are no secret (random identifiers of test data).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import sqlalchemy as sa

from loadtests.arrival.acknowledged import WRITES
from reports.rundir import ACKNOWLEDGED, ACKNOWLEDGED_CHECK

CHUNK = 1000
# The lost ids the result lists (the count is always exact).
LOST_SHOWN = 20
TABLES = frozenset(table for table, _ in WRITES.values())


def recorded_writes(run_dir: Path) -> dict[str, set[str]]:
    """Every recorded id by table, from all load processes' files."""
    recorded: dict[str, set[str]] = defaultdict(set)
    for path in sorted((run_dir / ACKNOWLEDGED).glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut short by a killed load process was never complete
            if isinstance(entry, dict) and entry.get("table") in TABLES and isinstance(entry.get("id"), str):
                recorded[entry["table"]].add(entry["id"])
    return dict(recorded)


def verify_acknowledged(run_dir: Path, database_url: str) -> dict[str, object]:
    """Look every recorded id up; write and return {recorded, found, lost, by_table, lost_ids, error}."""
    recorded = recorded_writes(run_dir)
    by_table: dict[str, dict[str, int]] = {}
    lost_ids: list[str] = []
    error = ""
    try:
        engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
        with engine.connect() as connection:
            for table, ids in sorted(recorded.items()):
                found = _found(connection, table, sorted(ids))
                missing = sorted(ids - found)
                by_table[table] = {"recorded": len(ids), "found": len(found), "lost": len(missing)}
                lost_ids += [f"{table}/{identifier}" for identifier in missing[:LOST_SHOWN]]
        engine.dispose()
    except sa.exc.SQLAlchemyError as failure:
        error = f"the landscape's database could not be read: {str(failure).splitlines()[0]}"
    result: dict[str, object] = {
        "recorded": sum(len(ids) for ids in recorded.values()),
        "found": sum(counts["found"] for counts in by_table.values()),
        "lost": sum(counts["lost"] for counts in by_table.values()),
        "by_table": by_table,
        "lost_ids": lost_ids[:LOST_SHOWN],
        "error": error,
    }
    (run_dir / ACKNOWLEDGED_CHECK).write_text(json.dumps(result, indent=2))
    verdict = f"not verified: {error}" if error else f"{result['lost']} lost of {result['recorded']}"
    print(f"testbed run: acknowledged writes read back: {verdict}", file=sys.stderr)
    return result


def _found(connection: sa.Connection, table: str, ids: list[str]) -> set[str]:
    if table not in TABLES:
        raise ValueError(f"not a table of acknowledged writes: {table}")
    # The table name comes from WRITES, never from input; the ids are bound parameters.
    query = sa.text(f"SELECT id FROM {table} WHERE id IN :ids").bindparams(
        sa.bindparam("ids", expanding=True)
    )
    found: set[str] = set()
    for start in range(0, len(ids), CHUNK):
        rows = connection.execute(query, {"ids": ids[start : start + CHUNK]})
        found.update(str(row[0]) for row in rows)
    return found
