"""The wait between attempts to reach a broker, shared by the bus adapters."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Backoff:
    """Doubling wait between connection attempts, reset by a success."""

    def __init__(self, min_s: float, max_s: float, now: Callable[[], float] = time.monotonic) -> None:
        self._min_s = min_s
        self._max_s = max_s
        self._now = now
        self._delay_s = 0.0
        self._next_attempt = 0.0
        self._lock = threading.Lock()

    def ready(self) -> bool:
        return self._now() >= self._next_attempt

    def remaining_s(self) -> float:
        return max(0.0, self._next_attempt - self._now())

    def failed(self) -> None:
        with self._lock:
            self._delay_s = min(max(self._delay_s * 2, self._min_s), self._max_s)
            self._next_attempt = self._now() + self._delay_s

    def succeeded(self) -> None:
        with self._lock:
            self._delay_s = 0.0
            self._next_attempt = 0.0
