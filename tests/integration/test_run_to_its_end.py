"""A command run with `testbed.processes.run_to_its_end` (the capacity bench's searches) gets the
time it needs to take down what it started when the bench is interrupted, and the bench stops
after it: a child killed mid-teardown would leave its landscape half up."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from testbed.processes import REPOSITORY

# A command that, like `testbed capacity`, stops on SIGINT after a teardown that takes a second.
CHILD = """
import pathlib, signal, sys, time
marker = pathlib.Path(sys.argv[1])
stopping = []
signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
marker.with_suffix(".ready").write_text("ready")
while not stopping:
    time.sleep(0.05)
time.sleep(1.0)
marker.write_text("torn down")
"""

# The bench's side: it stops on SIGTERM as on Ctrl-C, after the command has ended.
PARENT = """
import os, sys
from pathlib import Path
from testbed.processes import run_to_its_end
from testbed.run.commands import stop_on_signals
stop_on_signals()
marker = Path(sys.argv[1])
with open(marker.with_suffix(".log"), "wb") as output:
    try:
        command = [sys.executable, "-c", sys.argv[2], str(marker)]
        run_to_its_end(command, cwd=marker.parent, env=dict(os.environ), output=output)
    except KeyboardInterrupt:
        sys.exit(130)
"""


def test_an_interrupted_parent_waits_for_its_command_to_finish_its_teardown(tmp_path: Path) -> None:
    marker = tmp_path / "child"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(marker), CHILD], cwd=REPOSITORY)
    deadline = time.monotonic() + 30
    while not marker.with_suffix(".ready").exists():
        assert parent.poll() is None, "the parent ended before its command was ready"
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.05)
    # Only the parent is told to stop (as a SIGTERM to the bench would): it passes SIGINT on.
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=20) == 130
    assert marker.read_text() == "torn down"
