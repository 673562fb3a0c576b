"""Local processes of a landscape or a benchmark: free loopback ports, readiness, clean stops."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import psutil

REPOSITORY = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPOSITORY / "loadtests" / "locustfile.py"


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class ProcessExited(RuntimeError):
    """The process being waited for ended before it answered."""


def free_port() -> int:
    """Ask the kernel for a free loopback port (never assume a default port is free)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_python(
    args: Sequence[str],
    environment: dict[str, str],
    log: IO[bytes] | int = subprocess.DEVNULL,
    cores: Sequence[int] = (),
    *,
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """Start `python <args>` in its own process group; BACKBONE_* variables come only from `environment`.

    `cores`: keep the process to these cores (the load generator's, apart from the landscape's).
    `die_with_parent`: the kernel sends it SIGTERM when the process that started it dies (even by
    SIGKILL), so a killed `testbed run` leaves no load generator behind.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("BACKBONE_")}
    env.update(environment)
    pinned = tuple(cores)

    def in_child() -> None:
        if pinned:
            os.sched_setaffinity(0, pinned)
        if die_with_parent:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPOSITORY,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=in_child if pinned or die_with_parent else None,
    )


def wait_until_answers(
    probe: Callable[[], bool],
    process: subprocess.Popen[bytes] | None,
    *,
    what: str,
    timeout_s: float,
    interval_s: float = 0.1,
    checkpoint: Callable[[], None] = lambda: None,
) -> None:
    """Call `probe` until it returns True; raise ProcessExited or TimeoutError naming `what`.

    `checkpoint` runs between attempts (the launcher stops there when it was interrupted).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            raise ProcessExited(f"{what} exited with {process.returncode}")
        if probe():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} did not answer within {timeout_s:g} s")
        checkpoint()
        time.sleep(interval_s)


def answers_200(url: str, timeout_s: float = 2.0) -> Callable[[], bool]:
    """A probe for `wait_until_answers`: does a GET of `url` (loopback) answer 200 right now?"""

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - loopback
                return bool(response.status == 200)
        except OSError:
            return False

    return probe


def listens(port: int) -> Callable[[], bool]:
    """A probe for `wait_until_answers`: does something accept TCP connections on the loopback port?"""

    def probe() -> bool:
        with socket.socket() as connection:
            return connection.connect_ex(("127.0.0.1", port)) == 0

    return probe


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Wait until `url` answers 200, failing early if the process dies."""
    wait_until_answers(answers_200(url, timeout_s=1.0), process, what=url, timeout_s=timeout_s)


def stop(process: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """Stop a process group gracefully (SIGTERM), then forcefully."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()


def run_to_its_end(command: Sequence[str], *, cwd: Path, env: dict[str, str], output: IO[bytes]) -> int:
    """Run a command that stops gracefully on SIGINT, and wait for it even when this process is
    interrupted: the command gets SIGINT and all the time it needs to take down what it started, then
    the interrupt goes on. (`subprocess.run` kills it a quarter of a second after a Ctrl-C, which
    leaves a landscape it was bringing down half up.)"""
    with subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT) as child:
        try:
            return child.wait()
        except KeyboardInterrupt:
            with interrupts_deferred():
                child.send_signal(signal.SIGINT)
                child.wait()
            raise


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP during a block that must finish (stopping what a run started);
    a signal that came meanwhile is delivered again, to the previous handler, once the block is done."""
    received: list[int] = []
    previous = {
        number: signal.signal(number, lambda number, _: received.append(number)) for number in STOP_SIGNALS
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if received:
            signal.raise_signal(received[0])


def tree_cpu_s(process: psutil.Process) -> float:
    """User+system CPU seconds of a process and its children now (those that exited are not counted)."""
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total
