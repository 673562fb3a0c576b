"""The API's gunicorn worker accepts a connection only while one of its threads is free."""

from __future__ import annotations

import os
import selectors
import socket
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any
from unittest import mock

import pytest
from gunicorn.config import Config
from gunicorn.workers.gthread import TConn

from backbone.platform.serving import EnvelopeThreadWorker

THREADS = 2


class PendingPool:
    """A thread pool whose requests finish only when the test says so."""

    def __init__(self) -> None:
        self.futures: list[Future[Any]] = []

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.futures.append(future)
        return future


@pytest.fixture
def worker() -> Iterator[EnvelopeThreadWorker]:
    config = Config()
    config.set("threads", THREADS)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        worker = EnvelopeThreadWorker(0, os.getppid(), [listener], None, 30, config, mock.Mock())
        worker.poller = selectors.DefaultSelector()
        worker.tpool = PendingPool()
        worker.method_queue.init()
        try:
            yield worker
        finally:
            worker.poller.close()
            worker.method_queue.close()
            worker.tmp.close()


def accepting(worker: EnvelopeThreadWorker) -> bool:
    return worker.sockets[0] in {key.fileobj for key in worker.poller.get_map().values()}


def connection(worker: EnvelopeThreadWorker) -> TConn:
    ours, _theirs = socket.socketpair()
    worker.nr_conns += 1
    return TConn(worker.cfg, ours, ("127.0.0.1", 0), ("127.0.0.1", 0))


def test_a_worker_whose_threads_are_all_busy_leaves_a_new_connection_to_the_others(
    worker: EnvelopeThreadWorker,
) -> None:
    worker.set_accept_enabled(True)
    worker.enqueue_req(connection(worker))
    worker.enqueue_req(connection(worker))
    listener = worker.sockets[0]
    with socket.create_connection(listener.getsockname()):
        worker.accept(listener)
        assert not accepting(worker)
        assert worker.in_pool == THREADS
        # gunicorn's loop asks again on every turn while it holds fewer connections than it may.
        worker.set_accept_enabled(True)
        assert not accepting(worker)
        # The connection still waits in the backlog for whichever worker has a free thread.
        waiting, _ = listener.accept()
        waiting.close()


def test_a_worker_accepts_again_once_a_thread_is_free(worker: EnvelopeThreadWorker) -> None:
    worker.set_accept_enabled(True)
    first, second = connection(worker), connection(worker)
    worker.enqueue_req(first)
    worker.enqueue_req(second)
    finished = worker.tpool.futures[0]
    finished.set_result(False)  # the connection closes after its answer
    worker.finish_request(first, finished)
    worker.set_accept_enabled(True)
    assert accepting(worker)
    assert worker.in_pool == 1
    listener = worker.sockets[0]
    with socket.create_connection(listener.getsockname()):
        worker.accept(listener)
        assert worker.in_pool == THREADS


def test_a_stopping_worker_stops_accepting_whatever_its_threads_do(worker: EnvelopeThreadWorker) -> None:
    worker.set_accept_enabled(True)
    worker.set_accept_enabled(False)
    assert not accepting(worker)
