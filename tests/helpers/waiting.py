"""Wait for a condition instead of sleeping a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], bool], what: str, timeout_s: float = 30.0, every_s: float = 0.05
) -> None:
    """Poll `condition` until it holds; fail naming `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)
