"""`testbed load-worker --master HOST[:PORT]`: join a run's load generator from this host.

The process becomes a Locust worker (Locust's own distributed mode) of the master that
`testbed run --expect-load-workers N` (or `testbed capacity ...`) started: the master sends it
its share of the arrival schedule and the scenario's text, it sends the master its records, its
request parts and its CPU samples (`loadtests/arrival/locust_plugin.py`). It exits when the
master ends the run; with `--keep-joining` it joins the next master instead (each step of a
capacity search has its own), until Locust gives up waiting for one (five minutes) or it is
interrupted. The target it loads is the master's, checked there against the profile's
`allowed_target_hosts`.

Exit status: Locust's (0 when the run ended normally), 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

from scenarios.landscape import is_host
from testbed.processes import LOCUSTFILE, REPOSITORY, STOP_SIGNALS
from testbed.run.load_generator import DEFAULT_MASTER_PORT

# How long a worker may take to stop once interrupted (it sends its last records first).
WORKER_STOP_TIMEOUT_S = 10.0


def add_load_worker_command(commands: Any) -> None:
    """Add `load-worker` to the `testbed` parser."""
    worker = commands.add_parser(
        "load-worker",
        help="join a run's load generator from this host as a Locust worker",
        description="Connect to the master of `testbed run|capacity --expect-load-workers N`, take a share "
        "of its arrival schedule and return the records to it; exit when the run ends (docs/load-model.md).",
    )
    worker.add_argument(
        "--master",
        required=True,
        metavar="HOST[:PORT]",
        help=f"the host running `testbed run` and its --master-port (default {DEFAULT_MASTER_PORT})",
    )
    worker.add_argument(
        "--credentials",
        type=Path,
        metavar="FILE",
        help="the pool's credentials file (a copy of the run's), for scenarios whose personas log in",
    )
    worker.add_argument(
        "--keep-joining",
        action="store_true",
        help="after a run ends, join the next one (every step of testbed capacity); stop with Ctrl-C",
    )
    worker.set_defaults(run=load_worker_command)


def parse_master(text: str) -> tuple[str, int]:
    """HOST[:PORT] (an IPv6 address in brackets) -> (host, port); raises ValueError saying why."""
    host, port = text, DEFAULT_MASTER_PORT
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = _port(rest.removeprefix(":"), text)
    elif text.count(":") == 1:
        host, _, number = text.partition(":")
        port = _port(number, text)
    if not is_host(host):
        raise ValueError(f"--master {text!r}: expected HOST[:PORT], e.g. loadmaster.example.org:5557")
    return host, port


def _port(number: str, text: str) -> int:
    if not number.isdigit() or not 1 <= int(number) <= 65535:
        raise ValueError(f"--master {text!r}: the port must be an integer in 1..65535")
    return int(number)


def load_worker_command(args: argparse.Namespace) -> int:
    """`testbed load-worker`: become the Locust worker (this process is replaced)."""
    problems = []
    try:
        host, port = parse_master(args.master)
    except ValueError as error:
        problems.append(str(error))
    if args.credentials is not None and not args.credentials.is_file():
        problems.append(f"--credentials {args.credentials}: no such file")
    if problems:
        print("testbed load-worker: " + "\n  ".join(problems), file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker"]
    command += ["--master-host", host, "--master-port", str(port), "--loglevel", "WARNING"]
    if args.credentials is not None:
        command += ["--credentials", str(args.credentials.resolve())]
    print(f"testbed load-worker: joining the master at {host}:{port}", file=sys.stderr, flush=True)
    if args.keep_joining:
        return _keep_joining(command)
    # Locust finds the project's modules from the repository's root, as the run's own workers do.
    os.chdir(REPOSITORY)
    return _become(command)


def _interrupt(number: int, frame: object) -> None:
    raise KeyboardInterrupt


def _keep_joining(command: list[str]) -> int:
    """Run one Locust worker after another, each joining the next master, until one fails to join
    (Locust's own retries end it) or the command is interrupted."""
    runs = 0
    for number in STOP_SIGNALS:
        signal.signal(number, _interrupt)
    while True:
        worker = subprocess.Popen(command, cwd=REPOSITORY)
        try:
            status = worker.wait()
        except KeyboardInterrupt:
            # A Ctrl-C reached the worker too; a signal sent to this process alone did not.
            worker.send_signal(signal.SIGINT)
            try:
                worker.wait(timeout=WORKER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            return 130
        if status != 0:
            print(
                f"testbed load-worker: {runs} run(s) joined; the last worker ended with status {status}",
                file=sys.stderr,
            )
            return 0 if runs else status
        runs += 1
        print(f"testbed load-worker: run {runs} ended; joining the next master", file=sys.stderr, flush=True)


def _become(command: list[str]) -> NoReturn:
    os.execv(sys.executable, command)  # noqa: S606 - our own interpreter with our own arguments
