"""`testbed seed --verify`: compare the database with the plan of a pool config and a seed.

Checks every planned identity is there with its devices, templates, active relationships,
messages (sent plus received), challenges and datawallet modifications; totals per table; that
datawallet indexes are 0-based and contiguous with the sync counter after them; and that no
external event waits unsynced. Each difference is one line; none means the data set is whole.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from loadtests.seeding.planner import Plan

_ACTIVE = 20
_SHOWN = 10

_PER_IDENTITY: dict[str, str] = {
    "devices": "SELECT identity_address, count(*) FROM devices WHERE deleted_at IS NULL GROUP BY 1",
    "templates": "SELECT created_by, count(*) FROM relationship_templates GROUP BY 1",
    "relationships": (
        "SELECT address, count(*) FROM (SELECT from_address AS address FROM relationships"
        f" WHERE status = {_ACTIVE} UNION ALL SELECT to_address FROM relationships"
        f" WHERE status = {_ACTIVE}) AS ends GROUP BY 1"
    ),
    "messages": (
        "SELECT address, count(*) FROM (SELECT created_by AS address FROM messages"
        " UNION ALL SELECT address FROM message_recipients) AS ends GROUP BY 1"
    ),
    "challenges": "SELECT created_by, count(*) FROM challenges WHERE created_by IS NOT NULL GROUP BY 1",
    "datawallet_modifications": "SELECT owner, count(*) FROM datawallet_modifications GROUP BY 1",
}

_TOTALS = {
    "identities": "SELECT count(*) FROM identities",
    "devices": "SELECT count(*) FROM devices WHERE deleted_at IS NULL",
    "relationship_templates": "SELECT count(*) FROM relationship_templates",
    "relationships": f"SELECT count(*) FROM relationships WHERE status = {_ACTIVE}",
    "messages": "SELECT count(*) FROM messages",
    "challenges": "SELECT count(*) FROM challenges WHERE created_by IS NOT NULL",
    "datawallet_modifications": "SELECT count(*) FROM datawallet_modifications",
}


def verify(engine: Engine, plan: Plan, progress: Callable[[str], None] = lambda line: None) -> list[str]:
    """Every difference between the database and the plan, one line each."""
    differences: list[str] = []
    with engine.connect() as connection:

        def rows(sql: str) -> list[tuple[str, int]]:
            return [(str(row[0]), int(row[1])) for row in connection.exec_driver_sql(sql)]

        for kind, sql in _TOTALS.items():
            found = int(connection.exec_driver_sql(sql).scalar_one())
            wanted = plan.totals[kind]
            if kind == "challenges":
                wanted += plan.totals["devices"] - plan.totals["identities"]
            if found != wanted:
                differences.append(f"{kind}: {found:,} in the database, the plan has {wanted:,}")
        progress("verify: totals compared")

        planned = {identity.address: identity for identity in plan.identities}
        present = {row[0] for row in connection.exec_driver_sql("SELECT address FROM identities")}
        missing = sorted(set(planned) - present)
        extra = sorted(present - set(planned))
        if missing:
            differences.append(
                f"identities: {len(missing)} planned ones missing, e.g. {', '.join(missing[:3])}"
            )
        if extra:
            differences.append(f"identities: {len(extra)} not in the plan, e.g. {', '.join(extra[:3])}")

        for kind, sql in _PER_IDENTITY.items():
            counted = Counter(dict(rows(sql)))
            wrong = []
            for address, identity in planned.items():
                expected = plan.expected(identity.number)
                wanted = getattr(expected, kind)
                if kind == "challenges":
                    # Registering a further device signs an authenticated challenge too.
                    wanted += expected.devices - 1
                if counted.get(address, 0) != wanted:
                    wrong.append(f"{address} ({identity.pool}) has {counted.get(address, 0)}, wants {wanted}")
            if wrong:
                differences.append(
                    f"{kind}: {len(wrong)} identities differ: " + "; ".join(wrong[:_SHOWN])
                    + (" ..." if len(wrong) > _SHOWN else "")
                )  # fmt: skip
        progress("verify: per-identity counts compared")

        gaps = connection.exec_driver_sql(
            "SELECT m.owner, count(*), min(m.\"index\"), max(m.\"index\"), max(c.next_modification_index)"
            " FROM datawallet_modifications m LEFT JOIN sync_counters c ON c.owner = m.owner"
            " GROUP BY m.owner"
            " HAVING min(m.\"index\") <> 0 OR max(m.\"index\") <> count(*) - 1"
            " OR coalesce(max(c.next_modification_index), -1) <> count(*)"
        ).fetchall()  # fmt: skip
        if gaps:
            shown = "; ".join(
                f"{row[0]}: {row[1]} rows, indexes {row[2]}..{row[3]}, counter {row[4]}" for row in gaps[:3]
            )
            differences.append(
                f"datawallet: {len(gaps)} identities without contiguous indexes from 0: {shown}"
            )
        without_wallet = connection.execute(
            sa.text(
                "SELECT count(*) FROM identities i LEFT JOIN datawallets d ON d.owner = i.address"
                " WHERE d.owner IS NULL"
            )
        ).scalar_one()
        if without_wallet:
            differences.append(f"datawallet: {without_wallet} identities have no datawallet")
        unsynced = connection.execute(
            sa.text(
                "SELECT count(*) FROM external_events WHERE sync_run_id IS NULL"
                " AND NOT is_delivery_blocked AND sync_error_count < 3"
            )
        ).scalar_one()
        if unsynced:
            differences.append(
                f"external events: {unsynced} wait unsynced (a sync run would not be NoNewEvents)"
            )
    return differences
