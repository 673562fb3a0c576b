"""Run the arrival engine inside Locust: options, shape, closed-model user, stats, workers, web UI.

Importing this module imports Locust, which monkey-patches the process for gevent: only a
locustfile (or a process started for Locust) may import it.

How a run goes:

* `ScenarioShape` (a Locust load shape) runs the scenario's time line. In the open model it asks
  Locust for 0 users and the engine starts iterations itself; in the closed model it asks for
  `closed.users` scaled by the shape's factor. It ends the run after the scenario's duration,
  once the iterations in flight have ended (at most `drain_timeout_s` later).
* Each load-generating process (the local runner, or each worker) runs one `ArrivalEngine`. In
  distributed mode the master gives every worker a share (index, count) when the test starts:
  worker i takes global starts i+1, i+1+count, ... so the workers together keep the global rate.
* Requests are recorded twice by a request listener: the service view (as Locust's own stats
  do) and the corrected view. Workers send their records to the master with their stats
  reports, and once more when they stop.
* Every worker says which host and process it is and samples its own CPU once a second, sent
  with its stats reports; the master writes each worker's host, share and samples to
  `--load-workers-json`. A worker without `--requests-dir` (one that joined from another host,
  `testbed load-worker`) writes its request parts to a directory of its own and sends them to
  the master before its final records; the master writes them under its `--requests-dir`.
* The setup phase: just before its engine's clock starts, each load-generating process fires
  `engine_starting`, whose listeners prepare what the flows need (the personas log in there).
  Requests made meanwhile are recorded apart (the setup recorder, the `setup/` request table)
  and never judged; the schedule's t = 0 comes after them.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import random
import shutil
import socket
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import gevent
import psutil
from locust import FastHttpUser, LoadTestShape, events, task
from locust.argument_parser import LocustArgumentParser
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from locust.event import EventHook
from locust.exception import StopUser
from locust.rpc import Message
from locust.runners import STATE_MISSING, MasterRunner, Runner, WorkerRunner

from loadtests.arrival.dispatcher import ArrivalEngine, current_iteration, set_current_iteration
from loadtests.arrival.latency import ArrivalRecorder, IterationLatency
from loadtests.arrival.metrics import ArrivalMetrics
from loadtests.arrival.report import ArrivalReport, build_report, format_report, write_csv, write_json
from loadtests.arrival.shapes import WHOLE, Share, profile_for
from loadtests.flows import FlowContext, get_flow, registered_flows
from scenarios.schema import Scenario, ScenarioError, ScenarioOverrides, load_scenario, parse_scenario

if TYPE_CHECKING:
    from loadtests.arrival.acknowledged import AcknowledgedWrites
    from loadtests.arrival.request_sink import RequestSink

DEFAULT_SCENARIO = "scenarios/bare-constant.toml"
# Relative scenario paths are looked up here too, so locust can run from any directory.
REPOSITORY = Path(__file__).resolve().parents[2]
START_MESSAGE = "arrival_start"
STOP_MESSAGE = "arrival_stop"
FINAL_MESSAGE = "arrival_final"
PART_MESSAGE = "arrival_part"
PROCESS_KEY = "arrival_process"
REPORT_KEY = "arrival"
SETUP_REPORT_KEY = "arrival_setup"
FINAL_WAIT_S = 5.0
# Measured on two cores: Locust's spawn message, handled right after the arrival start message,
# held a worker's loop for ~35 ms, so the first starts of every run were late without a delay.
WORKER_CLOCK_DELAY_S = 0.25
log = logging.getLogger("loadtests.arrival")
# Fired in each load-generating process just before its engine's clock starts, with
# `environment`, `scenario`, `share` and `client` (the engine's HTTP session): flows load what
# they need (personas, their log-ins) here, not inside their first iteration, where the work
# would stall every flow's dispatcher. What they request meanwhile is the setup phase.
engine_starting = EventHook()
Listener = TypeVar("Listener", bound=Callable[..., Any])


def listener(hook: EventHook) -> Callable[[Listener], Listener]:
    """Add the decorated function to a Locust event hook: `@hook.add_listener`, typed."""

    def add(function: Listener) -> Listener:
        hook.add_listener(function)
        return function

    return add


@listener(events.init_command_line_parser)
def add_arguments(parser: LocustArgumentParser) -> None:
    """Add the arrival engine's options to Locust's command line (and web UI form)."""
    parser.add_argument(
        "--scenario",
        default=DEFAULT_SCENARIO,
        env_var="LOCUST_SCENARIO",
        help=f"scenario file (TOML) to run (default {DEFAULT_SCENARIO})",
    )
    parser.add_argument(
        "--multiplier",
        type=float,
        default=None,
        include_in_web_ui=False,
        help="multiply every flow's rate (default the scenario's multiplier)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        include_in_web_ui=False,
        help="the scenario's duration_s (a spike or ramp past the end moves to the middle)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        include_in_web_ui=False,
        help="the arrivals' seed (default the scenario's)",
    )
    parser.add_argument(
        "--warm-up",
        type=float,
        default=0.0,
        metavar="SECONDS",
        include_in_web_ui=False,
        help="the schedule's first seconds run but count in no figure (a capacity search's warm-up)",
    )
    parser.add_argument(
        "--load-model",
        choices=["open", "closed"],
        default="open",
        env_var="LOCUST_LOAD_MODEL",
        help="open: iterations start on schedule (default); closed: users with think time",
    )
    parser.add_argument(
        "--requests-dir",
        default="",
        env_var="LOCUST_REQUESTS_DIR",
        include_in_web_ui=False,
        help="write one row per request (parquet parts under DIR/requests/, see docs/reports.md)",
    )
    parser.add_argument(
        "--load-workers-json",
        default="",
        include_in_web_ui=False,
        help="master: write every worker's host, process, share and CPU samples to this JSON file",
    )
    parser.add_argument(
        "--arrival-metrics-port",
        type=int,
        default=0,
        include_in_web_ui=False,
        help="serve the engine's counters and latency histograms in Prometheus format on this loopback "
        "port (a load worker, or Locust alone; 0: not)",
    )
    parser.add_argument(
        "--arrival-json",
        default="",
        env_var="LOCUST_ARRIVAL_JSON",
        include_in_web_ui=False,
        help="write the arrival report (rates, late/dropped starts, both latency views) to this JSON file",
    )


_plugins: weakref.WeakKeyDictionary[Environment, ArrivalPlugin] = weakref.WeakKeyDictionary()


def plugin_of(environment: Environment) -> ArrivalPlugin:
    """Return the arrival plugin of an environment."""
    return _plugins[environment]


@listener(events.init)
def _on_init(environment: Environment, **_: Any) -> None:
    _plugins[environment] = ArrivalPlugin(environment)


class ArrivalPlugin:
    """The arrival engine's state in one Locust process, and its event and message handlers."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.recorder = ArrivalRecorder()
        self.setup_recorder = ArrivalRecorder()
        # The warm-up's starts and requests: kept in this process, never reported.
        self.warm_up_recorder = ArrivalRecorder()
        # `--arrival-metrics-port`: banks what is taken for the master (with the recorders above,
        # what the worker's metrics count).
        self.metrics: ArrivalMetrics | None = None
        self.in_setup = False
        self.engine: ArrivalEngine | None = None
        self.scenario: Scenario | None = None
        self.report: ArrivalReport | None = None
        self.sink: RequestSink | None = None
        self.setup_sink: RequestSink | None = None
        self.acknowledged: AcknowledgedWrites | None = None
        self.workers_expected: set[str] = set()
        self.workers_final: set[str] = set()
        self._final_sent = False
        self._stop_sent_at_s: float | None = None
        self._watcher: gevent.Greenlet | None = None
        # A worker's parts when it returns them to the master (no --requests-dir of its own).
        self._returned_dir: Path | None = None
        # The master's view of its workers: client id -> host, pid, share, CPU samples.
        self.workers: dict[str, dict[str, Any]] = {}
        self._cpu_samples: list[tuple[float, float, int]] = []
        runner = self.runner
        if not isinstance(runner, WorkerRunner):
            # Fail at start-up, not at the first test, when the scenario file is broken. (A worker
            # gets the master's scenario with its share.)
            self.scenario = self._load_scenario()
        environment.events.test_start.add_listener(self._on_test_start)
        environment.events.test_stopping.add_listener(self._on_test_stopping)
        environment.events.test_stop.add_listener(self._on_test_stop)
        if isinstance(runner, MasterRunner):
            environment.events.worker_report.add_listener(self._on_worker_report)
            runner.register_message(FINAL_MESSAGE, self._on_final_message)
            runner.register_message(PART_MESSAGE, self._on_part_message)
        else:
            environment.events.request.add_listener(self._on_request)
            self._open_sink()
        if isinstance(runner, WorkerRunner):
            environment.events.report_to_master.add_listener(self._on_report_to_master)
            runner.register_message(START_MESSAGE, self._on_start_message)
            runner.register_message(STOP_MESSAGE, self._on_stop_message)
            gevent.spawn(self._sample_cpu)
        port = int(getattr(environment.parsed_options, "arrival_metrics_port", 0) or 0)
        if port and not isinstance(runner, MasterRunner):
            self._serve_metrics(port)
        if environment.web_ui is not None:
            _extend_web_ui(environment, self)

    @property
    def runner(self) -> Runner:
        runner = self.environment.runner
        assert runner is not None, "the arrival plugin needs a runner"
        return runner

    @property
    def model(self) -> str:
        options = self.environment.parsed_options
        return str(getattr(options, "load_model", "open") or "open")

    @property
    def warm_up_s(self) -> float:
        return max(0.0, float(getattr(self.environment.parsed_options, "warm_up", 0.0) or 0.0))

    @property
    def overrides(self) -> ScenarioOverrides:
        """What --multiplier, --duration and --seed change in the scenario file."""
        options = self.environment.parsed_options
        return ScenarioOverrides(
            multiplier=getattr(options, "multiplier", None),
            duration_s=getattr(options, "duration", None),
            seed=getattr(options, "seed", None),
        )

    def _load_scenario(self) -> Scenario:
        """Read the scenario named by --scenario; at start-up a broken file ends the process."""
        options = self.environment.parsed_options
        path = Path(getattr(options, "scenario", None) or DEFAULT_SCENARIO)
        if not path.is_absolute() and not path.exists() and (REPOSITORY / path).exists():
            path = REPOSITORY / path
        try:
            return load_scenario(path, known_flows=registered_flows(), overrides=self.overrides)
        except ScenarioError as error:
            for problem in error.problems:
                log.error("%s", problem)
            if self.scenario is None:
                raise SystemExit(2) from None
            # A file edited into a broken state between runs (web UI): stop this run, keep the process.
            log.error("arrival: the scenario is invalid; stopping the test")
            gevent.spawn(self.runner.stop)
            return self.scenario

    # The run's time line, asked by ScenarioShape once a second.

    def tick(self, run_time_s: float) -> tuple[int, float] | None:
        """Return the user count and spawn rate Locust should have now, or None to end the run."""
        scenario = self.scenario
        assert scenario is not None
        if self.model == "closed":
            if run_time_s >= scenario.duration_s:
                return self._end_of_run(run_time_s, drained=False)
            factor = profile_for(scenario.shape).factor(run_time_s)
            users = math.ceil(scenario.closed.users * factor)
            return users, float(max(1, scenario.closed.users))
        if isinstance(self.runner, MasterRunner):
            drained = bool(self.workers_expected) and self.workers_final >= self.workers_expected
        else:
            drained = self.engine is not None and self.engine.finished
        if drained or run_time_s >= scenario.duration_s + scenario.drain_timeout_s:
            return self._end_of_run(run_time_s, drained=drained)
        return 0, 1.0

    def _end_of_run(self, run_time_s: float, *, drained: bool) -> tuple[int, float] | None:
        if not isinstance(self.runner, MasterRunner):
            self._stop_engine()
            return None
        # Collect the workers' last records before Locust stops them, at most FINAL_WAIT_S.
        if self._stop_sent_at_s is None and not drained:
            self.runner.send_message(STOP_MESSAGE, {})
            self._stop_sent_at_s = run_time_s
        waited_long_enough = (
            self._stop_sent_at_s is not None and run_time_s - self._stop_sent_at_s >= FINAL_WAIT_S
        )
        if drained or self.workers_final >= self.workers_expected or waited_long_enough:
            if self.workers_final < self.workers_expected:
                log.warning(
                    "arrival: no final report from %d worker(s)",
                    len(self.workers_expected - self.workers_final),
                )
            return None
        return 0, 1.0

    # Locust events

    def _on_test_start(self, environment: Environment, **_: Any) -> None:
        if isinstance(self.runner, WorkerRunner):
            return  # a worker starts on the master's START_MESSAGE, which comes before test_start
        scenario = self.scenario = self._load_scenario()
        self.recorder = ArrivalRecorder()
        self.setup_recorder = ArrivalRecorder()
        self.warm_up_recorder = ArrivalRecorder()
        self.report = None
        self._final_sent = False
        self._stop_sent_at_s = None
        runner = self.runner
        if isinstance(runner, MasterRunner):
            workers = sorted(client.id for client in runner.clients.all if client.state != STATE_MISSING)
            self.workers_expected, self.workers_final = set(workers), set()
            self.workers = {}
            for index, worker in enumerate(workers):
                self.workers[worker] = {
                    "client_id": worker,
                    "index": index,
                    "count": len(workers),
                    "samples": [],
                }
                data = {
                    "index": index,
                    "count": len(workers),
                    "model": self.model,
                    "host": environment.host,
                    # The text travels, so a worker on another host needs no copy of the file.
                    "scenario_source": str(scenario.source),
                    "scenario_text": scenario.source.read_text(encoding="utf-8"),
                    "overrides": self.overrides.given(),
                    "warm_up_s": self.warm_up_s,
                    "return_requests": bool(getattr(environment.parsed_options, "requests_dir", "")),
                }
                runner.send_message(START_MESSAGE, data, client_id=worker)
            log.info("arrival: %s model, shares sent to %d worker(s)", self.model, len(workers))
        elif not isinstance(runner, WorkerRunner) and self.model == "open":
            self._start_engine(WHOLE, self.warm_up_s)

    def _on_test_stopping(self, environment: Environment, **_: Any) -> None:
        if isinstance(self.runner, MasterRunner):
            if self._stop_sent_at_s is None:
                self.runner.send_message(STOP_MESSAGE, {})
                self._stop_sent_at_s = -1.0
        else:
            self._stop_engine()

    def _on_test_stop(self, environment: Environment, **_: Any) -> None:
        self._close_sink()
        if isinstance(self.runner, WorkerRunner):
            self._send_final()
            return
        self.report = self.build_report()
        print(format_report(self.report), flush=True)
        options = environment.parsed_options
        if csv_prefix := getattr(options, "csv_prefix", None):
            write_csv(self.report, csv_prefix)
        if json_path := getattr(options, "arrival_json", None):
            write_json(self.report, json_path)
        if workers_path := getattr(options, "load_workers_json", None):
            Path(workers_path).write_text(json.dumps(list(self.workers.values())), encoding="utf-8")

    def build_report(self) -> ArrivalReport:
        """Summarise what this process knows (on the master: every worker's records)."""
        assert self.scenario is not None
        runner = self.runner
        overloaded = runner.cpu_warning_emitted or getattr(runner, "worker_cpu_warning_emitted", False)
        processes = len(self.workers_expected) if isinstance(runner, MasterRunner) else 1
        return build_report(
            self.recorder,
            self.scenario,
            model=self.model,
            processes=processes,
            generator_overloaded=overloaded,
            setup=self.setup_recorder,
            warm_up_s=self.warm_up_s if self.model == "open" else 0.0,
        )

    def _on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        exception: BaseException | None,
        response: Any = None,
        start_time: float | None = None,
        **_: Any,
    ) -> None:
        iteration = current_iteration()
        service_s = response_time / 1000
        corrected_s = iteration.corrected_s(service_s) if iteration is not None else None
        recorder, sink = (
            (self.setup_recorder, self.setup_sink) if self.in_setup else (self.recorder, self.sink)
        )
        if iteration is not None and iteration.warm_up:
            # Its row still goes to the requests table: the report leaves it out by its intended start.
            recorder = self.warm_up_recorder
        recorder.request(request_type, name, service_s, corrected_s, failed=exception is not None)
        if sink is not None:
            sink.add(
                start_s=start_time if start_time is not None else time.time() - service_s,
                service_s=service_s,
                corrected_s=corrected_s,
                flow=iteration.flow if iteration is not None else "",
                method=request_type,
                route=name,
                status=int(getattr(response, "status_code", 0) or 0),
                exception=exception,
            )
        if self.acknowledged is not None and response is not None:
            status = int(getattr(response, "status_code", 0) or 0)
            self.acknowledged.record(request_type, name, status, getattr(response, "content", b"") or b"")

    def _open_sink(self, returned: Path | None = None) -> None:
        configured: str = getattr(self.environment.parsed_options, "requests_dir", "") or ""
        directory = str(returned) if returned is not None else configured
        if not directory:
            self.sink = self.setup_sink = None
            self.acknowledged = None
            return
        # Imported only when asked for: pandas and pyarrow cost every load process start-up time.
        from loadtests.arrival.acknowledged import AcknowledgedWrites
        from loadtests.arrival.request_sink import RequestSink
        from reports.rundir import SETUP_REQUESTS

        self.sink = RequestSink(Path(directory))
        self.setup_sink = RequestSink(Path(directory), table=SETUP_REQUESTS)
        self.acknowledged = AcknowledgedWrites(Path(directory))

    def _close_sink(self) -> None:
        for sink in (self.sink, self.setup_sink):
            if sink is not None:
                sink.flush()

    def _on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        samples, self._cpu_samples = self._cpu_samples, []
        data[PROCESS_KEY] = {"host": socket.gethostname(), "pid": os.getpid(), "samples": samples}
        if not self._final_sent:
            data[REPORT_KEY] = self._take()
            data[SETUP_REPORT_KEY] = self.setup_recorder.take()

    def _take(self) -> dict[str, Any]:
        """Take the recorder's data for the master, keeping it for this worker's metrics."""
        taken = self.recorder.take()
        if self.metrics is not None:
            self.metrics.bank(taken)
        return taken

    def _serve_metrics(self, port: int) -> None:
        # Imported only when asked for, like the request sink.
        from prometheus_client import CollectorRegistry, start_http_server

        def in_flight() -> dict[str, int]:
            engine = self.engine
            dispatchers = engine.dispatchers if engine is not None else []
            return {dispatcher.name: dispatcher.in_flight for dispatcher in dispatchers}

        self.metrics = ArrivalMetrics(lambda: (self.recorder, self.warm_up_recorder), in_flight)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.metrics)
        start_http_server(port, addr="127.0.0.1", registry=registry)

    def _on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        if PROCESS_KEY in data and client_id in self.workers:
            process = data[PROCESS_KEY]
            worker = self.workers[client_id]
            worker.update(host=process["host"], pid=process["pid"])
            worker["samples"].extend(process["samples"])
        if REPORT_KEY in data:
            self.recorder.merge_data(data[REPORT_KEY])
        if SETUP_REPORT_KEY in data:
            self.setup_recorder.merge_data(data[SETUP_REPORT_KEY])

    # Messages between master and workers

    def _on_start_message(self, environment: Environment, msg: Message, **_: Any) -> None:
        source = Path(msg.data["scenario_source"])
        try:
            self.scenario = parse_scenario(
                msg.data["scenario_text"],
                source=source,
                known_flows=registered_flows(),
                overrides=ScenarioOverrides(**msg.data.get("overrides", {})),
            )
        except ScenarioError as error:
            log.error("arrival: the master's scenario is invalid here:\n%s", error)
            return
        self.recorder = ArrivalRecorder()
        self.setup_recorder = ArrivalRecorder()
        self.warm_up_recorder = ArrivalRecorder()
        self._final_sent = False
        # The host also comes with Locust's spawn message, but only after this one.
        self.environment.host = msg.data.get("host") or self.environment.host
        if msg.data.get("return_requests") and self.sink is None:
            self._returned_dir = Path(tempfile.mkdtemp(prefix="load-worker-"))
            self._open_sink(self._returned_dir)
        if msg.data.get("model", "open") == "open":
            share = Share(index=int(msg.data["index"]), count=int(msg.data["count"]))
            self._start_engine(share, float(msg.data.get("warm_up_s", 0.0)))

    def _on_stop_message(self, environment: Environment, msg: Message, **_: Any) -> None:
        self._stop_engine()
        self._send_final()

    def _on_final_message(self, environment: Environment, msg: Message, **_: Any) -> None:
        self._on_worker_report(msg.node_id, msg.data)  # the last records and CPU samples
        self.workers_final.add(msg.node_id)

    def _send_final(self) -> None:
        if self._final_sent:
            return
        self._close_sink()
        self._final_sent = True
        self._return_parts()
        final = {REPORT_KEY: self._take(), SETUP_REPORT_KEY: self.setup_recorder.take()}
        self._on_report_to_master("", final)  # the CPU samples since the last stats report
        self.runner.send_message(FINAL_MESSAGE, final)

    def _return_parts(self) -> None:
        """Send the request parts written here to the master (the same socket keeps their order
        before the final records), then remove them."""
        if self._returned_dir is None:
            return
        for part in sorted(self._returned_dir.glob("*/*.parquet")):
            data = {"table": part.parent.name, "name": part.name, "data": part.read_bytes()}
            self.runner.send_message(PART_MESSAGE, data)
        shutil.rmtree(self._returned_dir, ignore_errors=True)
        self._returned_dir = None
        self.sink = self.setup_sink = None

    def _on_part_message(self, environment: Environment, msg: Message, **_: Any) -> None:
        directory = getattr(environment.parsed_options, "requests_dir", "")
        # Names as the worker's sink made them: a table (requests, setup) and a part file.
        table, name = Path(msg.data["table"]).name, Path(msg.data["name"]).name
        if not directory or not name.endswith(".parquet"):
            return
        target = Path(directory) / table / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(msg.data["data"])

    def _sample_cpu(self) -> None:
        """Sample this worker's CPU (percent of one core) and memory once a second; the samples go
        to the master with the next stats report."""
        process = psutil.Process()
        process.cpu_percent()
        while True:
            gevent.sleep(1.0)
            self._cpu_samples.append((time.time(), process.cpu_percent(), process.memory_info().rss))

    # The engine in a load-generating process

    def _start_engine(self, share: Share, warm_up_s: float = 0.0) -> None:
        assert self.scenario is not None
        self._stop_engine()
        concurrency = sum(flow.max_in_flight for flow in self.scenario.flows)
        client = FastHttpSession(
            self.environment.host,
            request_event=self.environment.events.request,
            user=None,
            concurrency=concurrency,
            # FastHttpUser's timeouts; the client library's own default (5 s) would turn a slow
            # server into connection failures instead of latency.
            network_timeout=60.0,
            connection_timeout=60.0,
        )
        self.engine = ArrivalEngine(
            self.scenario,
            client=client,
            recorder=self.recorder,
            share=share,
            on_error=self._on_flow_error,
            warm_up_s=warm_up_s,
            warm_up_recorder=self.warm_up_recorder,
        )
        self.in_setup = True
        try:
            engine_starting.fire(
                environment=self.environment, scenario=self.scenario, share=share, client=client
            )
        finally:
            self.in_setup = False
        # What is loaded by now lives for the whole run: keep it out of the collector's passes, so
        # a full collection during the run does not stall the dispatchers for tens of ms.
        gc.collect()
        gc.freeze()
        worker = isinstance(self.runner, WorkerRunner)
        # A worker's start message comes just before Locust's own (which fires test_start and spawns
        # its users): the clock starts once that is handled, not in the middle of it.
        delay_s = WORKER_CLOCK_DELAY_S if worker else 0.0
        self.engine.start(delay_s=delay_s)
        self._mark_schedule_started(time.time() + delay_s)
        if worker:
            self._watcher = gevent.spawn(self._watch_engine, self.engine)

    def _mark_schedule_started(self, epoch_s: float) -> None:
        """Write when the schedule's clock started, once per run directory (the first process wins):
        the run's faults count their time offsets from it."""
        directory = getattr(self.environment.parsed_options, "requests_dir", "")
        if not directory:
            return
        from reports.rundir import SCHEDULE_STARTED

        try:
            with open(Path(directory) / SCHEDULE_STARTED, "x", encoding="utf-8") as marker:
                marker.write(f"{epoch_s:.3f}\n")
        except FileExistsError:
            pass

    def _watch_engine(self, engine: ArrivalEngine) -> None:
        # A worker whose schedule is done reports at once, so the master need not wait for a timeout.
        while not engine.finished:
            gevent.sleep(0.2)
        self._send_final()

    def _stop_engine(self) -> None:
        if self._watcher is not None and self._watcher is not gevent.getcurrent():
            self._watcher.kill(block=False)
        if self.engine is not None:
            self.engine.stop()

    def _on_flow_error(self, flow: str, error: Exception) -> None:
        log.debug("flow %s failed: %r", flow, error)
        self.environment.events.user_error.fire(user_instance=None, exception=error, tb=error.__traceback__)


class ScenarioShape(LoadTestShape):
    """Follow the scenario's time line (see the module docstring); Locust calls `tick` every second."""

    abstract = True

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        # Locust's shapes carry no annotations (untyped_calls_exclude covers only calls into locust).
        run_time_s = self.get_run_time()  # type: ignore[no-untyped-call]
        return plugin_of(self.runner.environment).tick(run_time_s)


class ClosedModelUser(FastHttpUser):
    """A closed-model user: runs the scenario's flows one after another, with think time between."""

    abstract = True

    def wait_time(self) -> float:
        scenario = plugin_of(self.environment).scenario
        return scenario.closed.think_time_s if scenario is not None else 1.0

    @task
    def iterate(self) -> None:
        """Run one iteration of a flow picked in proportion to the flows' rates."""
        plugin = plugin_of(self.environment)
        scenario = plugin.scenario
        if scenario is None or plugin.model != "closed":
            return
        spec = random.choices(scenario.flows, weights=[flow.rate_per_s for flow in scenario.flows])[0]
        record = plugin.recorder.flow(spec.name)
        started_s = time.monotonic()
        record.counters.started += 1
        set_current_iteration(IterationLatency(0.0, open_model=False, flow=spec.name))
        try:
            get_flow(spec.flow)(
                FlowContext(
                    client=self.client, intended_start_s=time.time(), flow=spec.name, params=spec.params
                )
            )
        except (gevent.GreenletExit, StopUser):
            record.counters.unfinished += 1
            raise
        except Exception:
            record.counters.failed += 1
            record.iteration.record_s(time.monotonic() - started_s)
            raise
        else:
            record.counters.completed += 1
            record.iteration.record_s(time.monotonic() - started_s)
        finally:
            set_current_iteration(None)


def _extend_web_ui(environment: Environment, plugin: ArrivalPlugin) -> None:
    """Add an "Arrivals" tab with both latency views and the start accounting to the web UI."""
    from flask import Response, request

    assert environment.web_ui is not None
    columns = ["count", "fails", "p50", "p90", "p95", "p99", "p99.9", "max"]
    environment.web_ui.template_args["extendedTabs"] = [{"title": "Arrivals", "key": "arrivals"}]
    environment.web_ui.template_args["extendedTables"] = [
        {
            "key": "arrivals",
            "structure": [
                {"key": "what", "title": "What"},
                {"key": "view", "title": "View"},
                *({"key": column.replace(".", ""), "title": column} for column in columns),
                {"key": "starts", "title": "Starts (scheduled / started / late / queued / dropped)"},
            ],
        }
    ]

    app = environment.web_ui.app
    assert app is not None

    @app.after_request
    def add_arrival_stats(response: Response) -> Response:
        if not request.path.endswith("/stats/requests") or not response.is_json:
            return response
        payload = response.get_json()
        payload["extended_stats"] = [{"key": "arrivals", "data": _web_rows(plugin.build_report())}]
        response.set_data(app.json.dumps(payload))
        return response


def _web_rows(report: ArrivalReport) -> list[dict[str, Any]]:
    def row(what: str, view: str, summary: Any, fails: int = 0, starts: str = "") -> dict[str, Any]:
        values = [
            summary.p50_ms,
            summary.p90_ms,
            summary.p95_ms,
            summary.p99_ms,
            summary.p999_ms,
            summary.max_ms,
        ]
        keys = ["p50", "p90", "p95", "p99", "p999", "max"]
        shown = {
            key: "" if math.isnan(value) else round(value, 2) for key, value in zip(keys, values, strict=True)
        }
        return {"what": what, "view": view, "count": summary.count, "fails": fails, **shown, "starts": starts}

    rows = []
    for flow in report.flows:
        starts = f"{flow.scheduled} / {flow.started} / {flow.late} / {flow.queued} / {flow.dropped}"
        rows.append(row(flow.name, "start delay (ms)", flow.start_delay, starts=starts))
        rows.append(row(flow.name, "iteration from intended start (ms)", flow.iteration, flow.failed))
    for route in report.routes:
        rows.append(row(f"{route.method} {route.name}", "service (ms)", route.service, route.failures))
        if route.corrected is not None:
            rows.append(
                row(f"{route.method} {route.name}", "corrected (ms)", route.corrected, route.failures)
            )
    return rows
