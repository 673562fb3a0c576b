"""Serve a WSGI app factory under gunicorn with settings from the command line."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.http import errors
from gunicorn.workers.gthread import ThreadWorker
from opentelemetry.sdk.trace import TracerProvider

from backbone.platform.http import JSON, error_body
from backbone.platform.metrics import enable_multiprocess, mark_worker_dead
from backbone.platform.tracing import install_tracer_provider
from backbone.settings import Settings


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """Run gunicorn in-process; the app is built by `factory` in each worker, after fork."""

    def __init__(self, factory: Callable[[], Any], options: dict[str, Any]) -> None:
        self._factory = factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        return self._factory()


# The longest request line gunicorn accepts short of "unlimited": the original's Kestrel allows
# 8,192 bytes (MaxRequestLineSize), gunicorn's default of 4,094 capped `?ids=` lists at ~160 ids.
MAX_REQUEST_LINE_BYTES = 8190

# Requests gunicorn refuses while parsing, before any app sees them: (kinds, status, reason, code,
# message). They get the error envelope as well; anything else keeps gunicorn's own answer.
_PARSE_REFUSALS: tuple[tuple[tuple[type[Exception], ...], int, str, str, str], ...] = (
    (
        (errors.LimitRequestLine,),
        414,
        "URI Too Long",
        "error.platform.requestLineTooLong",
        f"The request line is longer than {MAX_REQUEST_LINE_BYTES} bytes.",
    ),
    (
        (errors.LimitRequestHeaders,),
        431,
        "Request Header Fields Too Large",
        "error.platform.requestHeadersTooLarge",
        "A request header field or the request headers are too large.",
    ),
    (
        (
            errors.InvalidRequestLine,
            errors.InvalidRequestMethod,
            errors.InvalidHTTPVersion,
            errors.InvalidHeader,
            errors.InvalidHeaderName,
            errors.ObsoleteFolding,
        ),
        400,
        "Bad Request",
        "error.platform.invalidRequest",
        "The request is not valid HTTP.",
    ),
)


class EnvelopeThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's threaded worker, answering the requests it cannot parse in the error envelope."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: Exception) -> None:
        for kinds, status, reason, code, message in _PARSE_REFUSALS:
            if isinstance(exc, kinds):
                self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
                body = error_body(code, message)
                head = (
                    f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: {JSON}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                )
                try:
                    util.write_nonblock(client, head.encode("latin-1") + body)
                except OSError:
                    self.log.debug("Failed to send error message.")
                return
        super().handle_error(req, client, addr, exc)


def gunicorn_options(
    *, host: str, port: int, workers: int, threads: int, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Options shared by every API process, so benchmarks can give a bare app exactly the same."""
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": f"{EnvelopeThreadWorker.__module__}.{EnvelopeThreadWorker.__name__}",
        "keepalive": 5,
        "timeout": 60,
        "graceful_timeout": 10,
        "backlog": 2048,
        "limit_request_line": MAX_REQUEST_LINE_BYTES,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "backbone",
        **(extra or {}),
    }


def telemetry_hooks(settings: Settings, service_name: str) -> dict[str, Any]:
    """Prepare this node's metrics directory and return the gunicorn hooks telemetry needs.

    Call in the master before it forks: the workers inherit the multiprocess directory, create
    their tracer provider after fork (its export thread must not cross a fork) and flush it on
    exit; the master drops the live gauges of workers that died.
    """
    temporary: Path | None = None
    if settings.metrics_enabled:
        directory = settings.metrics_dir
        if directory is None:
            directory = temporary = Path(tempfile.mkdtemp(prefix="backbone-metrics-"))
        enable_multiprocess(directory)
    providers: list[TracerProvider] = []

    def post_fork(server: Any, worker: Any) -> None:
        provider = install_tracer_provider(settings, service_name)
        if provider is not None:
            providers.append(provider)

    def worker_exit(server: Any, worker: Any) -> None:
        for provider in providers:
            provider.shutdown()

    def child_exit(server: Any, worker: Any) -> None:
        mark_worker_dead(worker.pid)

    def on_exit(server: Any) -> None:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)

    return {"post_fork": post_fork, "worker_exit": worker_exit, "child_exit": child_exit, "on_exit": on_exit}
