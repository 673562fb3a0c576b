"""SLO: error-budget burn per route, multi-window (the SRE workbook's alerting on SLOs, ch. 5).

Two SLOs per route, from the recording rules in dashboards/prometheus/rules/recording.yml:
availability (99.9 % of requests not 5xx) and latency (98 % within 100 ms, the original's p98
edge). A burn rate of 1 spends the budget exactly over the SLO period; the fast pair (1 h and
5 min) pages at 14.4, the slow pair (6 h and 30 min) at 6.
"""

from __future__ import annotations

from dashboards.panels import LANDSCAPE, Board, Panel, Query, Section, Variable, landscape_variable

ROUTES = f'{{{LANDSCAPE}, http_route=~"$route"}}'
FAST_BURN = 14.4
SLOW_BURN = 6.0


def _burn(slo: str, windows: tuple[str, str], threshold: float, what: str) -> Panel:
    long, short = windows
    return Panel(
        f"{what} burn rate, {long} and {short} windows",
        f"How fast each route spends its {what.lower()} error budget over {long} and {short}; both above "
        f"{threshold:g} fires the alert.",
        "short",
        tuple(
            Query(
                f"max by (http_route) (http_route:backbone_slo_{slo}_burn:rate{window}{ROUTES})",
                f"{{{{http_route}}}} {window}",
            )
            for window in windows
        ),
        lines=(threshold,),
    )


BOARD = Board(
    uid="backbone-slo",
    title="SLO",
    description="Error-budget burn per route, multi-window: availability (99.9 % not 5xx) and latency "
    "(98 % within 100 ms).",
    variables=(
        landscape_variable(),
        Variable(
            "route",
            "Route",
            f"label_values(http_route:backbone_slo_errors_burn:rate5m{{{LANDSCAPE}}}, http_route)",
        ),
    ),
    sections=(
        Section(
            "Availability (99.9 % of requests not 5xx)",
            (
                _burn("errors", ("1h", "5m"), FAST_BURN, "Availability"),
                _burn("errors", ("6h", "30m"), SLOW_BURN, "Availability"),
                Panel(
                    "Availability budget left over the time range",
                    "Which share of each route's availability budget is left over the board's time range "
                    "(1: untouched, below 0: spent).",
                    "percentunit",
                    (
                        Query(
                            "1 - (1 - sum by (http_route) (increase(http_server_request_duration_seconds_count"
                            f'{{{LANDSCAPE}, http_route=~"$route", http_response_status_code!~"5.."}}[$__range])) / '
                            "sum by (http_route) (increase(http_server_request_duration_seconds_count"
                            f"{ROUTES}[$__range]))) / 0.001",
                            "{{http_route}}",
                        ),
                    ),
                    width=24,
                ),
            ),
        ),
        Section(
            "Latency (98 % of requests within 100 ms)",
            (
                _burn("slow", ("1h", "5m"), FAST_BURN, "Latency"),
                _burn("slow", ("6h", "30m"), SLOW_BURN, "Latency"),
            ),
        ),
    ),
)
