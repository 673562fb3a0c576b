"""Every upstream scenario for 5 s on the arrival engine against a development-mode server.

The test pool is seeded in bulk into the server's SQLite file, then each scenario file (and the
production mix) runs headless in its own Locust process with the personas of the exported
credentials. A scenario passes when every scheduled start ran to an expected outcome: the
engine counted no failed, dropped or unfinished iteration, and no outcome is a failure; and when
every device its flows act as logged in during the setup phase, before the schedule's clock, so
the measured window holds no log-in.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reports.rundir import REQUEST_COLUMNS, REQUESTS, SETUP_REQUESTS, read_table
from scenarios.schema import load_scenario
from testbed import cli
from testbed.bench.scenario_runs import (
    CONNECTOR_SYNC_FLOW,
    PRODUCTION_MIX,
    SCENARIO_FILES,
    connector_count,
    run_scenario,
)
from tests.helpers.server import running_backbone
from tests.helpers.services import FAST_HASH_ITERATIONS

RUN_S = 5.0
LOG_IN = "/connect/token"
# At the original rates most scenarios would schedule no start at all within 5 s; 1/s keeps
# scenario 06's 30-step walks few enough for a slow machine.
SMOKE_RATE_PER_S = 1.0

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Landscape:
    url: str
    credentials: Path
    connectors: int


@pytest.fixture(scope="module")
def landscape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Landscape]:
    directory = tmp_path_factory.mktemp("upstream")
    var = directory / "var"
    var.mkdir()
    credentials = directory / "test-pool.json"
    status = cli.main(
        [
            "seed",
            "--pool",
            "test",
            "--mode",
            "bulk",
            "--database-url",
            f"sqlite:///{var / 'backbone.sqlite3'}",
            "--export",
            str(credentials),
            "--password-hash-iterations",
            str(FAST_HASH_ITERATIONS),
        ]
    )
    assert status == 0
    environment = {"BACKBONE_VAR_DIR": str(var), "BACKBONE_LOG_LEVEL": "WARNING"}
    with running_backbone(environment, log_path=directory / "server.log") as url:
        yield Landscape(url, credentials, connector_count(credentials))


# Locust kept to one core, as `make bench-scenarios --locust-cores` keeps it.
LOCUST_CORES = (max(os.sched_getaffinity(0)),)


@pytest.mark.parametrize("path", [*SCENARIO_FILES, PRODUCTION_MIX], ids=lambda path: path.stem)
def test_scenario_runs_without_unexpected_failure(landscape: Landscape, path: Path, tmp_path: Path) -> None:
    scenario = load_scenario(path)
    rates = {
        flow.name: float(landscape.connectors)
        if flow.flow == CONNECTOR_SYNC_FLOW
        else max(flow.rate_per_s, SMOKE_RATE_PER_S)
        for flow in scenario.flows
    }
    run = run_scenario(
        path,
        host=landscape.url,
        credentials=landscape.credentials,
        directory=tmp_path,
        name=path.stem,
        rates_per_s=rates,
        duration_s=RUN_S,
        requests_dir=tmp_path,
        cores=LOCUST_CORES,
    )
    log = run.log_path.read_text(encoding="utf-8")
    assert run.arrivals, log
    # Its CPU is counted, and kept to the one core it was given over the time it ran.
    assert 0 < run.generator_cpu_s <= run.wall_s * len(LOCUST_CORES) * 1.05, (run.generator_cpu_s, run.wall_s)
    for name in rates:
        flow = run.flow(name)
        assert flow["started"] >= 4, (name, flow, log)
        assert flow["started"] == flow["scheduled"] == flow["completed"], (name, flow, log)
        assert (flow["failed"], flow["dropped"], flow["unfinished"]) == (0, 0, 0), (name, flow, log)
        assert sum(run.outcomes[name].values()) == flow["completed"], (name, run.outcomes, flow)
    assert run.unexpected_failures() == {}, log
    setup = read_table(tmp_path / SETUP_REQUESTS, REQUEST_COLUMNS, "setup")
    measured = read_table(tmp_path / REQUESTS, REQUEST_COLUMNS, "requests")
    assert set(setup["route"].astype(str)) <= {LOG_IN}
    assert setup["ok"].all(), setup
    assert LOG_IN not in set(measured["route"].astype(str)), "a log-in landed in the measured window"
    logins_reported = sum(route["service"]["count"] for route in run.arrivals["setup_routes"])
    assert logins_reported == len(setup)
    if path.stem == "02-create-identity":
        assert setup.empty  # new identities log in nowhere
    else:
        assert len(setup) > 0
        last_setup_s = float((setup["start_s"] + setup["latency_s"]).max())
        assert last_setup_s <= float(measured["intended_start_s"].min())
