"""Health of a process: named, bounded checks of the components it depends on."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from threading import Lock

import falcon

log = logging.getLogger(__name__)


class HealthChecks:
    """Run each check with a time bound; the process is healthy when all pass.

    A check that hangs keeps its thread, so it is not started again while it still runs: it
    counts as failing instead, and repeated probes cannot pile up threads or connections.
    A failing check that is not critical makes the process "Degraded" (still 200), as ASP.NET's
    health checks do: the process works on without that component (the outbox keeps events).
    """

    def __init__(self, timeout_s: float = 2.0) -> None:
        self._checks: dict[str, Callable[[], None]] = {}
        self._noncritical: set[str] = set()
        self._timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")
        self._running: dict[str, Future[None]] = {}
        self._lock = Lock()

    def add(self, name: str, check: Callable[[], None], *, critical: bool = True) -> None:
        """Add a check, or replace the one of that name."""
        self._checks[name] = check
        if critical:
            self._noncritical.discard(name)
        else:
            self._noncritical.add(name)

    def status(self) -> str:
        """Return "Healthy", "Degraded" (only non-critical checks failed) or "Unhealthy"."""
        failed = self.failing()
        if not failed:
            return "Healthy"
        return "Degraded" if set(failed) <= self._noncritical else "Unhealthy"

    @property
    def names(self) -> list[str]:
        return sorted(self._checks)

    def failing(self) -> list[str]:
        """Return the names of the checks that failed or did not answer in time."""
        failed = []
        futures: dict[str, Future[None]] = {}
        with self._lock:
            for name, check in self._checks.items():
                previous = self._running.get(name)
                if previous is not None and not previous.done():
                    log.warning("health check %s is still running since an earlier probe", name)
                    failed.append(name)
                    continue
                futures[name] = self._running[name] = self._pool.submit(check)
        for name, future in futures.items():
            try:
                future.result(timeout=self._timeout_s)
            except FutureTimeout:
                log.warning("health check %s did not answer within %.1f s", name, self._timeout_s)
                failed.append(name)
            except Exception as error:
                log.warning("health check %s failed: %s", name, error)
                failed.append(name)
        return failed


class HealthResource:
    """`GET /health`: 200 "Healthy" or 503 "Unhealthy", plain text as the original."""

    anonymous_methods = frozenset({"GET"})

    def __init__(self, checks: HealthChecks) -> None:
        self._checks = checks

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        status = self._checks.status()
        resp.content_type = falcon.MEDIA_TEXT
        resp.set_header("Cache-Control", "no-store")
        resp.status = 503 if status == "Unhealthy" else 200
        resp.text = status
