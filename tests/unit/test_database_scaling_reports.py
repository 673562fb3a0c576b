"""PgBouncer's waiting clients and the replicas' lag in a report: each is a tier of its own, judged
only when the run has its samples; the replica is the furthest downstream, then the database, then
the pooler; and the run's scraper turns a server's statistics into series rows like a `/metrics`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from reports import saturation
from reports.rundir import PROCESS_COLUMNS, SERIES, SERIES_COLUMNS, empty_frame, format_labels, read_table
from testbed.run.collect import MetricsScraper, Sample, ScrapeTarget
from tests.unit.test_budget_reports import T0, budgets_frame

SECONDS = 20
NO_PROCESSES = empty_frame(PROCESS_COLUMNS)


def series(rows: list[tuple[float, str, str, str, dict[str, str], float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            (t, process, tier, name, format_labels(labels), value)
            for t, process, tier, name, labels, value in rows
        ],
        columns=list(SERIES_COLUMNS),
    )


def pooler_series(waiting_from: int | None) -> pd.DataFrame:
    rows = []
    for second in range(SECONDS):
        waiting = 3.0 if waiting_from is not None and second >= waiting_from else 0.0
        for database in ("backbone", "backbone_replica1"):
            labels = {"database": database}
            t = T0 + second + 0.2
            rows.append(
                (t, "pgbouncer", "pooler", "pgbouncer_pools_client_waiting_connections", labels, waiting)
            )
            rows.append(
                (t, "pgbouncer", "pooler", "pgbouncer_pools_client_maxwait_seconds", labels, waiting / 20)
            )
    return series(rows)


def lag_series(lag_s: float, from_second: int = 0) -> pd.DataFrame:
    return series(
        [
            (
                T0 + second + 0.3,
                "replication",
                "replica",
                "pg_stat_replication_replay_lag_seconds",
                {"application_name": "replica1"},
                lag_s if second >= from_second else 0.0004,
            )
            for second in range(SECONDS)
        ]
    )


def verdicts(frame: pd.DataFrame, **options: Any) -> list[saturation.TierVerdict]:
    return saturation.tier_verdicts(saturation.evaluate(frame, NO_PROCESSES, T0, **options))


def test_waiting_clients_name_the_pooler_with_how_many_and_how_long() -> None:
    first = saturation.first_saturated(verdicts(pooler_series(waiting_from=4)))
    assert first is not None
    assert (first.tier, first.onset_s) == ("pooler", 4)
    assert first.metric == "pgbouncer_pools_client_waiting_connections > 0 (SHOW POOLS cl_waiting)"
    assert first.figure == (
        "clients waiting for a server connection: up to 6 at once, the longest 150 ms; "
        "waiting in 80% of seconds"
    )


def test_a_pool_that_never_makes_a_client_wait_is_not_saturated() -> None:
    by_tier = {verdict.tier: verdict for verdict in verdicts(pooler_series(waiting_from=None))}
    assert not by_tier["pooler"].saturated
    assert saturation.first_saturated(list(by_tier.values())) is None


def test_a_replica_that_replays_late_is_the_saturated_tier() -> None:
    first = saturation.first_saturated(verdicts(lag_series(0.045, from_second=2)))
    assert first is not None
    assert (first.tier, first.onset_s) == ("replica", 2)
    assert first.figure == (
        "replica1 replayed p95 45.0 ms behind the primary (max 45.0 ms); >= 20 ms in 90% of seconds"
    )
    by_tier = {verdict.tier: verdict for verdict in verdicts(lag_series(0.002))}
    assert not by_tier["replica"].saturated


def test_without_a_pooler_or_replicas_their_tiers_are_left_out() -> None:
    tiers = [verdict.tier for verdict in verdicts(series([]))]
    assert tiers == ["gateway", "node", "database", "events"]


def test_the_replica_is_downstream_of_the_database_which_is_downstream_of_the_pooler() -> None:
    # The same onset: a replica that holds up every commit keeps the primary's connections (and so
    # PgBouncer's) busy; a database at its budget makes PgBouncer's clients wait.
    budgets = budgets_frame("postgresql", "database", 0.2, 0.199)
    both = pd.concat([pooler_series(waiting_from=0), lag_series(0.05)], ignore_index=True)
    rules = saturation.evaluate(both, NO_PROCESSES, T0, budgets=budgets)
    first = saturation.first_saturated(saturation.tier_verdicts(rules))
    assert first is not None
    assert first.tier == "replica"
    rules = saturation.evaluate(pooler_series(waiting_from=0), NO_PROCESSES, T0, budgets=budgets)
    first = saturation.first_saturated(saturation.tier_verdicts(rules))
    assert first is not None
    assert first.tier == "database"


def test_the_budgets_of_the_pooler_and_a_replica_are_judged_in_their_tiers() -> None:
    budgets = pd.concat(
        [budgets_frame("pgbouncer", "pooler", 0.05, 0.049), budgets_frame("replica1", "replica", 0.2, 0.05)],
        ignore_index=True,
    )
    by_tier = {
        v.tier: v
        for v in saturation.tier_verdicts(saturation.evaluate(series([]), NO_PROCESSES, T0, budgets=budgets))
    }
    assert by_tier["pooler"].saturated
    budget = "pgbouncer (0.05-core budget, cgroup v1, period 100 ms)"
    assert f"{budget} used p95 0.05 cores" in by_tier["pooler"].figure
    assert not by_tier["replica"].saturated


def test_a_statistics_target_becomes_series_rows_and_a_failed_read_is_a_failed_scrape(tmp_path: Path) -> None:
    answers: list[list[Sample] | None] = [
        [("pgbouncer_pools_client_waiting_connections", {"database": "backbone"}, 2.0)],
        None,
    ]

    def read() -> list[Sample]:
        answer = answers.pop(0)
        if answer is None:
            raise ConnectionError("the admin console is away")
        return answer

    scraper = MetricsScraper(
        [ScrapeTarget("pgbouncer", "pooler", "postgresql://x/pgbouncer", read=read)], tmp_path
    )
    scraper.tick()
    scraper.tick()
    scraper.finish()
    assert scraper.failures == {"pgbouncer": 1}
    frame = read_table(tmp_path / SERIES, SERIES_COLUMNS, "series")
    rows = frame[["name", "labels", "value"]].astype({"name": str, "labels": str}).values.tolist()
    assert ["pgbouncer_pools_client_waiting_connections", 'database="backbone"', 2.0] in rows
    assert [row[2] for row in rows if row[0] == "up"] == [1.0, 0.0]
