"""Tiers USE: utilisation, saturation and errors of every tier, CPU against its budget first."""

from __future__ import annotations

from dashboards.panels import LANDSCAPE, Board, Panel, Query, Section, Variable, landscape_variable

RATE = "[$__rate_interval]"
ANY = f"{{{LANDSCAPE}}}"
NODES = f'{{{LANDSCAPE}, process=~"$node"}}'


def _p99(metric: str, by: str, selector: str = ANY) -> Query:
    return Query(
        f"histogram_quantile(0.99, sum by (le, {by}) (rate({metric}_bucket{selector}{RATE})))",
        f"p99 {{{{{by}}}}}",
    )


BOARD = Board(
    uid="tiers-use",
    title="Tiers USE",
    description="Per tier (nodes, gateway, worker, database): CPU against its budget, saturation and errors.",
    variables=(
        landscape_variable(),
        Variable("node", "Node", f"label_values(backbone_gunicorn_workers{ANY}, process)"),
    ),
    sections=(
        Section(
            "CPU against budgets",
            (
                Panel(
                    "CPU used and budget per process",
                    "How many cores each process of the landscape uses, against its budget (the cgroup's "
                    "quota; a process without a budget has no budget line).",
                    "short",
                    (
                        Query(
                            f"sum by (tier, process) (rate(testbed_tier_cpu_seconds_total{ANY}{RATE}))",
                            "{{process}} used",
                        ),
                        Query(
                            f"sum by (tier, process) (testbed_tier_cpu_budget_cores{ANY})",
                            "{{process}} budget",
                        ),
                    ),
                ),
                Panel(
                    "Throttled share of CPU periods",
                    "Which processes the kernel holds back: the share of scheduling periods in which the "
                    "cgroup ran out of its quota (near 1: the budget is the bottleneck).",
                    "percentunit",
                    (
                        Query(
                            f"sum by (process) (rate(testbed_tier_cpu_throttled_periods_total{ANY}{RATE})) / "
                            f"sum by (process) (rate(testbed_tier_cpu_periods_total{ANY}{RATE}))",
                            "{{process}}",
                        ),
                        Query(
                            f"sum by (process) (rate(testbed_tier_cpu_throttled_seconds_total{ANY}{RATE}))",
                            "{{process}} throttled s/s",
                        ),
                    ),
                ),
            ),
        ),
        Section(
            "Nodes",
            (
                Panel(
                    "Busy workers and requests in flight",
                    "Whether a node is saturated: busy gunicorn workers against live ones, and requests in "
                    "flight (busy threads).",
                    "short",
                    (
                        Query(
                            f"sum by (process) (backbone_gunicorn_workers_busy{NODES})", "{{process}} busy"
                        ),
                        Query(f"sum by (process) (backbone_gunicorn_workers{NODES})", "{{process}} workers"),
                        Query(
                            f"sum by (process) (http_server_active_requests{NODES})", "{{process}} in flight"
                        ),
                    ),
                ),
                Panel(
                    "Pool connections used and maximum",
                    "Whether the nodes' database pools run out: connections checked out against pool size "
                    "plus overflow.",
                    "short",
                    (
                        Query(
                            "sum by (process) (db_client_connection_count"
                            f'{{{LANDSCAPE}, process=~"$node", db_client_connection_state="used"}})',
                            "{{process}} used",
                        ),
                        Query(f"sum by (process) (db_client_connection_max{NODES})", "{{process}} max"),
                    ),
                ),
                Panel(
                    "Pool checkout wait p99",
                    "How long a unit of work waits for its pooled connection (long waits: the pool is too small).",
                    "s",
                    (_p99("db_client_connection_wait_time_seconds", "process", NODES),),
                ),
                Panel(
                    "Outbox backlog",
                    "How many committed events wait to be published (a growing backlog: the bus falls behind).",
                    "short",
                    (Query(f"max by (process) (backbone_outbox_pending_events{ANY})", "{{process}}"),),
                ),
            ),
        ),
        Section(
            "Worker and broker",
            (
                Panel(
                    "Events handled per queue",
                    "How many events each handler queue (<Module>.<EventName>) of the broker processes per second.",
                    "ops",
                    (
                        Query(
                            "sum by (messaging_destination_name) (rate(messaging_client_consumed_messages_total"
                            f'{{{LANDSCAPE}, outcome="handled"}}{RATE}))',
                            "{{messaging_destination_name}}",
                        ),
                    ),
                ),
                Panel(
                    "Event handling failures",
                    "Which deliveries the worker retries, dead-letters or requeues because a handler raised.",
                    "ops",
                    (
                        Query(
                            "sum by (messaging_destination_name, outcome) (rate(messaging_client_consumed_messages_total"
                            f'{{{LANDSCAPE}, outcome!~"handled|duplicate"}}{RATE}))',
                            "{{outcome}} {{messaging_destination_name}}",
                        ),
                    ),
                ),
                Panel(
                    "Event lag p99",
                    "How long after its commit an event starts being handled.",
                    "s",
                    (_p99("messaging_consumer_lag_seconds", "messaging_destination_name"),),
                ),
                Panel(
                    "Broker queue depth",
                    "How many messages wait in each handler queue (the worker's passive queue_declare).",
                    "short",
                    (
                        Query(
                            f"sum by (messaging_destination_name) (messaging_queue_depth_messages{ANY})",
                            "{{messaging_destination_name}}",
                        ),
                    ),
                ),
            ),
        ),
        Section(
            "Gateway",
            (
                Panel(
                    "Gateway responses by code class",
                    "What the gateway answered (its own 404, 413 and 503 included), per second.",
                    "reqps",
                    (
                        Query(
                            "sum by (code) (rate(haproxy_frontend_http_responses_total"
                            f'{{{LANDSCAPE}, proxy="public"}}{RATE}))',
                            "{{code}}",
                        ),
                    ),
                ),
                Panel(
                    "Gateway sessions, queue and nodes up",
                    "Whether the gateway queues requests for the nodes, and how many nodes pass its health check.",
                    "short",
                    (
                        Query(
                            f'sum by (process) (haproxy_frontend_current_sessions{{{LANDSCAPE}, proxy="public"}})',
                            "{{process}} sessions",
                        ),
                        Query(
                            f'sum by (process) (haproxy_backend_current_queue{{{LANDSCAPE}, proxy="nodes"}})',
                            "{{process}} queued",
                        ),
                        Query(
                            f'sum by (process) (haproxy_backend_active_servers{{{LANDSCAPE}, proxy="nodes"}})',
                            "{{process}} nodes up",
                        ),
                    ),
                ),
            ),
        ),
        Section(
            "Database server",
            (
                Panel(
                    "Connections by state and the server's maximum",
                    "How many connections the landscape's PostgreSQL server holds, by state, against max_connections.",
                    "short",
                    (
                        Query(f"sum by (state) (pg_stat_activity_count{ANY})", "{{state}}"),
                        Query(f"max(pg_settings_max_connections{ANY})", "max_connections"),
                    ),
                ),
                Panel(
                    "Transactions",
                    "How many transactions the backbone's database commits and rolls back per second.",
                    "ops",
                    (
                        Query(
                            f'sum(rate(pg_stat_database_xact_commit{{{LANDSCAPE}, datname="backbone"}}{RATE}))',
                            "commits",
                        ),
                        Query(
                            f'sum(rate(pg_stat_database_xact_rollback{{{LANDSCAPE}, datname="backbone"}}{RATE}))',
                            "rollbacks",
                        ),
                    ),
                ),
                Panel(
                    "Locks by mode",
                    "Which locks the backbone's database holds (a pile of exclusive locks: writers queue).",
                    "short",
                    (
                        Query(
                            f'sum by (mode) (pg_locks_count{{{LANDSCAPE}, datname="backbone"}})', "{{mode}}"
                        ),
                    ),
                ),
                Panel(
                    "Deadlocks and conflicts",
                    "Whether transactions deadlock or a replica cancels queries.",
                    "ops",
                    (
                        Query(
                            f'sum(rate(pg_stat_database_deadlocks{{{LANDSCAPE}, datname="backbone"}}{RATE}))',
                            "deadlocks",
                        ),
                        Query(
                            f'sum(rate(pg_stat_database_conflicts{{{LANDSCAPE}, datname="backbone"}}{RATE}))',
                            "conflicts",
                        ),
                    ),
                ),
            ),
        ),
    ),
)
