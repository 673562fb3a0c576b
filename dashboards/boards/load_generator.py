"""Load generator: what the arrival engine offered and achieved, and both latency views."""

from __future__ import annotations

from dashboards.panels import LANDSCAPE, Board, Panel, Query, Section, Variable, landscape_variable

RATE = "[$__rate_interval]"
FLOWS = f'{{{LANDSCAPE}, flow=~"$flow"}}'

BOARD = Board(
    uid="load-generator",
    title="Load generator",
    description="The arrival engine of each Locust worker: offered and achieved start rates, late and dropped "
    "starts, iterations in flight, the generator's CPU, corrected and uncorrected latency.",
    variables=(
        landscape_variable(),
        Variable(
            "flow", "Flow", f"label_values(testbed_arrival_starts_scheduled_total{{{LANDSCAPE}}}, flow)"
        ),
    ),
    sections=(
        Section(
            "Starts",
            (
                Panel(
                    "Offered and achieved start rate per flow",
                    "Whether the generator keeps the schedule: starts due per second (offered) against starts "
                    "made (achieved); a gap means late or dropped starts.",
                    "ops",
                    (
                        Query(
                            f"sum by (flow) (rate(testbed_arrival_starts_scheduled_total{FLOWS}{RATE}))",
                            "{{flow}} offered",
                        ),
                        Query(
                            f"sum by (flow) (rate(testbed_arrival_starts_total{FLOWS}{RATE}))",
                            "{{flow}} achieved",
                        ),
                    ),
                ),
                Panel(
                    "Late and dropped starts",
                    "How many starts began late (beyond the engine's tolerance) or were dropped (the flow's "
                    "queue was full); either makes a run invalid past 1 %.",
                    "ops",
                    (
                        Query(
                            f"sum by (flow) (rate(testbed_arrival_starts_late_total{FLOWS}{RATE}))",
                            "{{flow}} late",
                        ),
                        Query(
                            f"sum by (flow) (rate(testbed_arrival_starts_dropped_total{FLOWS}{RATE}))",
                            "{{flow}} dropped",
                        ),
                    ),
                ),
                Panel(
                    "Iterations in flight",
                    "How many iterations of each flow run at once (at its max_in_flight the flow queues).",
                    "short",
                    (Query(f"sum by (flow) (testbed_arrival_iterations_in_flight{FLOWS})", "{{flow}}"),),
                ),
                Panel(
                    "Start delay p99",
                    "How late the engine starts iterations against their intended time.",
                    "s",
                    (
                        Query(
                            "histogram_quantile(0.99, sum by (le, flow) "
                            f"(rate(testbed_arrival_start_delay_seconds_bucket{FLOWS}{RATE})))",
                            "{{flow}}",
                        ),
                    ),
                ),
            ),
        ),
        Section(
            "Generator",
            (
                Panel(
                    "Generator CPU per process",
                    "Whether a Locust process is CPU-bound (one gevent loop: one core at most); a bound "
                    "generator makes the run invalid.",
                    "short",
                    (
                        Query(
                            f'sum by (process) (rate(testbed_tier_cpu_seconds_total{{{LANDSCAPE}, tier="load-generator"}}{RATE}))',
                            "{{process}}",
                        ),
                    ),
                    lines=(0.9,),
                ),
                Panel(
                    "Iterations completed and failed",
                    "How many iterations end per second, and how many fail.",
                    "ops",
                    (
                        Query(
                            f"sum by (flow) (rate(testbed_arrival_iterations_completed_total{FLOWS}{RATE}))",
                            "{{flow}} completed",
                        ),
                        Query(
                            f"sum by (flow) (rate(testbed_arrival_iterations_failed_total{FLOWS}{RATE}))",
                            "{{flow}} failed",
                        ),
                    ),
                ),
            ),
        ),
        Section(
            "Latency as the client sees it",
            (
                Panel(
                    "Corrected and uncorrected p99",
                    "How much coordinated omission hides: the service time (uncorrected) against the time from "
                    "the intended start (corrected), over all requests of every flow.",
                    "s",
                    (
                        Query(
                            "histogram_quantile(0.99, sum by (le, view) "
                            f"(rate(testbed_arrival_request_duration_seconds_bucket{{{LANDSCAPE}}}{RATE})))",
                            "p99 {{view}}",
                        ),
                        Query(
                            "histogram_quantile(0.5, sum by (le, view) "
                            f"(rate(testbed_arrival_request_duration_seconds_bucket{{{LANDSCAPE}}}{RATE})))",
                            "p50 {{view}}",
                        ),
                    ),
                    lines=(0.05, 0.1),
                    width=24,
                ),
            ),
        ),
    ),
)
