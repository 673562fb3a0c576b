"""The upstream scenarios inside Locust: the credentials option, the runtime, the outcome report.

Importing this module imports Locust (and with it gevent's monkey-patching): only the
locustfile imports it. Each load process (the local runner or a worker) builds its
`ScenarioRuntime` just before its arrival engine's clock starts, from the file `--credentials`
names, taking the share of identities the engine runs (disjoint across workers). Outcome counts travel
to the master with the workers' stats reports; the master (or the local runner) prints them when
the test stops and writes them with `--outcomes-json`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from gevent.pool import Pool
from locust import events
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests.arrival.locust_plugin import engine_starting, listener
from loadtests.arrival.shapes import Share
from loadtests.client import IdentitySession
from loadtests.flows import upstream
from loadtests.outcomes import OutcomeCounts
from loadtests.personas import Cast, CastError, load_cast
from scenarios.backbone_limits import backbone_limits
from scenarios.schema import Scenario

REPORT_KEY = "scenario_outcomes"
UPSTREAM_FLOWS = "upstream."  # the prefix of the ten scenarios' flow names
# Log-ins in flight during the setup phase: enough to hide the round trips, few enough that the
# landscape's request slots are not the setup's bottleneck.
SETUP_LOGINS_IN_PARALLEL = 8
log = logging.getLogger("loadtests.scenarios")
# The cast survives test restarts in one process (web UI), so datawallet indexes stay exact.
_casts: dict[tuple[str, int, int], Cast] = {}
_outcomes = OutcomeCounts()


@listener(events.init_command_line_parser)
def add_arguments(parser: LocustArgumentParser) -> None:
    parser.add_argument(
        "--credentials",
        default="",
        env_var="LOCUST_CREDENTIALS",
        help="credentials file written by `testbed seed` (the personas of the upstream scenarios)",
    )
    parser.add_argument(
        "--outcomes-json",
        default="",
        env_var="LOCUST_OUTCOMES_JSON",
        include_in_web_ui=False,
        help="write the upstream scenarios' iteration outcomes (per flow and label) to this JSON file",
    )


@listener(events.init)
def _on_init(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    environment.events.test_start.add_listener(_on_test_start)
    environment.events.test_stop.add_listener(_on_test_stop)
    if isinstance(runner, WorkerRunner):
        environment.events.report_to_master.add_listener(_on_report_to_master)
    if isinstance(runner, MasterRunner):
        environment.events.worker_report.add_listener(_on_worker_report)


def _on_test_start(environment: Environment, **_: Any) -> None:
    global _outcomes
    if isinstance(environment.runner, MasterRunner):
        _outcomes = OutcomeCounts()  # the workers' counts of this run merge into it


def _on_engine_starting(
    environment: Environment, scenario: Scenario, share: Share, client: Any, **_: Any
) -> None:
    """Build this process's runtime and log its personas in before the engine's clock starts
    (loading them inside the first iterations would make every flow's first starts late, and
    put every log-in into the measured window)."""
    global _outcomes
    _outcomes = OutcomeCounts()
    upstream.configure(factory=lambda: _runtime(environment, scenario, share))
    if any(flow.flow.startswith(UPSTREAM_FLOWS) for flow in scenario.flows):
        try:
            runtime = upstream.current_runtime()
        except CastError as error:
            # The iterations fail with the same message, counted per flow.
            log.error("personas: %s", error)
            return
        sessions = upstream.sessions_to_log_in(runtime, client, [flow.flow for flow in scenario.flows])
        log_in(sessions)


def log_in(sessions: list[IdentitySession], parallel: int = SETUP_LOGINS_IN_PARALLEL) -> int:
    """Log every session in, `parallel` at a time; return how many failed (their flows retry)."""

    def attempt(session: IdentitySession) -> bool:
        try:
            return bool(session.access_token)
        except Exception as error:
            log.warning("personas: the setup log-in of %r failed: %s", session, error)
            return False

    failed = sum(1 for ok in Pool(parallel).imap_unordered(attempt, sessions) if not ok)
    log.info(
        "personas: %d of %d devices logged in before the schedule", len(sessions) - failed, len(sessions)
    )
    return failed


engine_starting.add_listener(_on_engine_starting)


def _runtime(environment: Environment, scenario: Scenario, share: Share) -> upstream.ScenarioRuntime:
    path = str(getattr(environment.parsed_options, "credentials", "") or "")
    if not path:
        raise CastError("no personas: run with --credentials PATH (a file written by testbed seed)")
    index, count = share.index, share.count
    key = (str(Path(path).resolve()), index, count)
    if key not in _casts:
        _casts[key] = load_cast(path, share=(index, count))
        log.info(
            "personas: %d identities (share %d of %d) from %s",
            len(_casts[key].personas),
            index + 1,
            count,
            path,
        )
    return upstream.ScenarioRuntime(
        _casts[key],
        limits=backbone_limits(scenario.backbone),
        outcomes=_outcomes,
        base_url=environment.host or "http://localhost:8080",
    )


def _on_report_to_master(client_id: str, data: dict[str, Any]) -> None:
    data[REPORT_KEY] = _outcomes.take()


def _on_worker_report(client_id: str, data: dict[str, Any]) -> None:
    if REPORT_KEY in data:
        _outcomes.merge_data(data[REPORT_KEY])


def _on_test_stop(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner) or not _outcomes.counts:
        return
    print("Outcomes of the upstream scenarios' iterations:\n" + _outcomes.format(), flush=True)
    if path := getattr(environment.parsed_options, "outcomes_json", ""):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(_outcomes.to_data(), indent=2), encoding="utf-8")
