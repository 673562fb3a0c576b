"""Backbone RED: rate, errors and duration of every route, from the nodes' request histogram."""

from __future__ import annotations

from dashboards.panels import LANDSCAPE, Board, Panel, Query, Section, Variable, landscape_variable

# Route templates only (`/api/v2/Relationships/{id}`): the backbone labels requests so.
REQUESTS = f'{{{LANDSCAPE}, process=~"$node", http_route=~"$route"}}'
RATE = "[$__rate_interval]"
# The original's SLO edges (reports/verdicts.py): p90 < 50 ms and p98 < 100 ms, file transfer and
# token creation p90 < 160 ms and p98 < 190 ms.
SLO_EDGES_S = (0.05, 0.1, 0.16, 0.19)


def _quantile(q: float) -> Query:
    return Query(
        f"histogram_quantile({q}, sum by (le, http_route) "
        f"(rate(http_server_request_duration_seconds_bucket{REQUESTS}{RATE})))",
        f"p{round(q * 100)} {{{{http_route}}}}",
    )


def _code_class(selector: str, by: str) -> str:
    return (
        f"sum by ({by}) (label_replace(rate(http_server_request_duration_seconds_count{selector}{RATE}), "
        '"code_class", "${1}xx", "http_response_status_code", "(.).."))'
    )


BOARD = Board(
    uid="backbone-red",
    title="Backbone RED",
    description="Per route: request rate, errors by code class and latency percentiles, with the SLO edges.",
    variables=(
        landscape_variable(),
        Variable(
            "node",
            "Node",
            f"label_values(http_server_request_duration_seconds_count{{{LANDSCAPE}}}, process)",
        ),
        Variable(
            "route",
            "Route",
            f'label_values(http_server_request_duration_seconds_count{{{LANDSCAPE}, process=~"$node"}}, '
            "http_route)",
        ),
    ),
    sections=(
        Section(
            "Rate",
            (
                Panel(
                    "Requests per route",
                    "How many requests per second each route (template) serves, by method.",
                    "reqps",
                    (
                        Query(
                            "sum by (http_request_method, http_route) "
                            f"(rate(http_server_request_duration_seconds_count{REQUESTS}{RATE}))",
                            "{{http_request_method}} {{http_route}}",
                        ),
                    ),
                ),
                Panel(
                    "Requests in flight per node",
                    "How many requests each node holds right now (a queue builds when it nears workers x threads).",
                    "short",
                    (
                        Query(
                            f'sum by (process) (http_server_active_requests{{{LANDSCAPE}, process=~"$node"}})',
                            "{{process}}",
                        ),
                    ),
                ),
            ),
        ),
        Section(
            "Errors",
            (
                Panel(
                    "Responses by code class",
                    "Which share of the answers are 2xx, 3xx, 4xx and 5xx, over all selected routes.",
                    "reqps",
                    (Query(_code_class(REQUESTS, "code_class"), "{{code_class}}"),),
                ),
                Panel(
                    "Client and server errors per route",
                    "Which routes answer 4xx (the client's mistake or a refusal) and 5xx (the backbone's failure).",
                    "reqps",
                    (
                        Query(
                            _code_class(
                                f'{{{LANDSCAPE}, process=~"$node", http_route=~"$route", '
                                'http_response_status_code=~"4.."}',
                                "http_route, code_class",
                            ),
                            "{{code_class}} {{http_route}}",
                        ),
                        Query(
                            _code_class(
                                f'{{{LANDSCAPE}, process=~"$node", http_route=~"$route", '
                                'http_response_status_code=~"5.."}',
                                "http_route, code_class",
                            ),
                            "{{code_class}} {{http_route}}",
                        ),
                    ),
                ),
            ),
        ),
        Section(
            "Duration",
            (
                Panel(
                    "Latency p50, p90, p99 per route",
                    "How long each route takes (server side, from the histogram); dashed lines are the SLO "
                    "edges: 50 and 100 ms, 160 and 190 ms for file transfer and token creation.",
                    "s",
                    (_quantile(0.5), _quantile(0.9), _quantile(0.99)),
                    lines=SLO_EDGES_S,
                    width=24,
                ),
                Panel(
                    "Share of requests within 100 ms",
                    "Which share of each route's requests ends under the 100 ms edge (the p98 SLO asks 98 %).",
                    "percentunit",
                    (
                        Query(
                            "sum by (http_route) (rate(http_server_request_duration_seconds_bucket"
                            f'{{{LANDSCAPE}, process=~"$node", http_route=~"$route", le="0.1"}}{RATE})) / '
                            "sum by (http_route) (rate(http_server_request_duration_seconds_count"
                            f"{REQUESTS}{RATE}))",
                            "{{http_route}}",
                        ),
                    ),
                    lines=(0.98,),
                ),
                Panel(
                    "Mean latency per node",
                    "Whether one node is slower than the others (the balancing or its CPU budget).",
                    "s",
                    (
                        Query(
                            "sum by (process) (rate(http_server_request_duration_seconds_sum"
                            f"{REQUESTS}{RATE})) / sum by (process) "
                            f"(rate(http_server_request_duration_seconds_count{REQUESTS}{RATE}))",
                            "{{process}}",
                        ),
                    ),
                ),
            ),
        ),
    ),
)
