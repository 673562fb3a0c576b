"""Take a landscape down by its state file: stop exactly its process groups, remove what `up` made.

What `up` made, besides processes: the CPU groups (cgroups), the private PostgreSQL server's
directory (with its replicas'), PgBouncer's directory, the database on an external server, the
RabbitMQ vhost or exchange. Each is removed
once the processes are gone (the kernel keeps a cgroup while a process is in it).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from testbed.landscape import budgets
from testbed.landscape.process_groups import (
    group_alive,
    group_members,
    is_same_process,
    marked_processes,
    signal_group,
    signal_process,
)
from testbed.landscape.seaweedfs import remove_sockets
from testbed.landscape.state import LandscapeState, RecordedProcess

STOP_TIMEOUT_S = 15.0
# SeaweedFS takes long to stop gracefully, and its data directory is thrown away anyway.
STOP_TIMEOUT_S_BY_ROLE = {"seaweedfs": 2.0}
# PostgreSQL's fast shutdown (SIGINT) ends its sessions at once; SIGTERM would wait for them.
# Roles numbered per instance (replica1, replica2) go by their stem.
STOP_SIGNAL_BY_ROLE = {"postgresql": signal.SIGINT, "replica": signal.SIGINT}
Children = dict[int, subprocess.Popen[bytes]]


def tear_down(
    state: LandscapeState, children: Children | None = None, say: Callable[[str], None] = print
) -> list[str]:
    """Stop every recorded process group, remove what `up` created; return what could not be undone."""
    # Stopping is not part of any measurement: lifted budgets let every process stop at full speed.
    for group in state.cpu_groups:
        with contextlib.suppress(budgets.BudgetError):
            budgets.lift(group)
    problems = _stop_processes(state, children or {}, say)
    for group in state.cpu_groups:
        if problem := budgets.remove(group):
            problems.append(problem)
    for directory in (state.postgres_directory, state.pooler_directory):
        if directory:
            problems.extend(_remove_directory(Path(directory)))
    remove_sockets(state.seaweedfs_ports)
    if state.database_name:
        problems.extend(_drop_database(state))
    if state.rabbitmq_vhost:
        problems.extend(_delete_vhost(state.rabbitmq_vhost))
    if state.rabbitmq_exchange:
        problems.extend(_delete_exchange(state))
    for problem in problems:
        say(f"testbed: {problem}")
    if not problems:
        Path(state.state_path).unlink(missing_ok=True)
    return problems


def _stop_processes(state: LandscapeState, children: Children, say: Callable[[str], None]) -> list[str]:
    """SIGTERM every group (gateways first), SIGKILL what outlives its time, then any marked straggler."""
    ours = [process for process in state.processes if _is_ours(process)]
    # Gateways first (they were started last), so no request reaches a node that is stopping.
    for process in reversed(ours):
        signal_group(process.pid, STOP_SIGNAL_BY_ROLE.get(process.role.rstrip("0123456789"), signal.SIGTERM))
    started = time.monotonic()
    waiting = list(ours)
    while waiting and time.monotonic() < started + STOP_TIMEOUT_S:
        _reap(children)
        for process in list(waiting):
            if not group_alive(process.pid):
                waiting.remove(process)
            elif time.monotonic() > started + STOP_TIMEOUT_S_BY_ROLE.get(process.role, STOP_TIMEOUT_S):
                signal_group(process.pid, signal.SIGKILL)
        time.sleep(0.1)
    for process in waiting:
        if group_alive(process.pid):
            say(f"testbed: {process.role} (process group {process.pid}) did not stop in time; killing it")
            signal_group(process.pid, signal.SIGKILL)
    for pid in marked_processes(state.id):
        signal_process(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (
        any(group_alive(process.pid) for process in ours) or marked_processes(state.id)
    ):
        _reap(children)
        time.sleep(0.1)
    _reap(children)
    if leftover := marked_processes(state.id):
        return [f"processes {leftover} of the landscape did not stop"]
    return []


def _is_ours(process: RecordedProcess) -> bool:
    """The recorded leader still runs with the same start time, or its group still has members.

    A process group id is not handed out again while any member lives, so living members of the
    recorded group are ours even when the leader is gone.
    """
    same = is_same_process(process.pid, process.started_at_s)
    if same is not None:
        return same
    return bool(group_members(process.pid))


def _reap(children: Children) -> None:
    for child in children.values():
        child.poll()


def _remove_directory(directory: Path) -> list[str]:
    try:
        shutil.rmtree(directory)
    except FileNotFoundError:
        pass
    except OSError as error:
        return [f"{directory} not removed: {error.strerror}"]
    return []


def _drop_database(state: LandscapeState) -> list[str]:
    import psycopg

    try:
        with psycopg.connect(state.database_server_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{state.database_name}" WITH (FORCE)')
    except psycopg.Error as error:
        return [f"database {state.database_name} not dropped: {str(error).splitlines()[0]}"]
    return []


def _delete_vhost(vhost: str) -> list[str]:
    try:
        result = subprocess.run(
            ["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return [f"RabbitMQ vhost {vhost} not deleted: rabbitmqctl is not installed"]
    output = result.stderr + result.stdout
    if result.returncode != 0 and "not exist" not in output and "not found" not in output:
        return [f"RabbitMQ vhost {vhost} not deleted: {output.strip()}"]
    return []


def _delete_exchange(state: LandscapeState) -> list[str]:
    """Delete the queues and exchanges (with their dead-letter pair) of a landscape without a vhost."""
    import pika
    from pika.exceptions import AMQPError

    exchange = state.rabbitmq_exchange
    try:
        connection = pika.BlockingConnection(pika.URLParameters(state.rabbitmq_url))
        try:
            channel = connection.channel()
            for queue in [*state.rabbitmq_queues, f"deadletterqueue.{exchange}"]:
                channel.queue_delete(queue)
            channel.exchange_delete(exchange)
            channel.exchange_delete(f"deadletterexchange.{exchange}")
        finally:
            connection.close()
    except (AMQPError, OSError) as error:
        return [f"RabbitMQ exchange {exchange} and its queues not deleted: {error!r}"]
    return []
