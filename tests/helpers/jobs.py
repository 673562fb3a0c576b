"""Run the backbone's jobs on request: for checks written in JavaScript that need one mid-flow."""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from testbed.processes import start_python, stop

JOB_TIMEOUT_S = 60
JOBS = {"/identity-deletion": ("job", "identity-deletion", "--step", "actual")}


@contextmanager
def job_endpoint(environment: dict[str, str], log_path: Path) -> Iterator[str]:
    """An HTTP endpoint: `POST <url>/identity-deletion` runs `backbone job identity-deletion --step
    actual` with the backbone's environment, as cron would, and answers 200 once it succeeded."""

    class RunJob(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            job = JOBS.get(self.path)
            if job is None:
                self._answer(404, f"no job {self.path}")
                return
            with open(log_path, "ab") as log:
                process = start_python(["-m", "backbone", *job], environment, log)
                try:
                    code = process.wait(timeout=JOB_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    stop(process)
                    code = -1
            self._answer(200 if code == 0 else 500, f"{' '.join(job)} exited with {code} (log: {log_path})")

        def _answer(self, status: int, text: str) -> None:
            body = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RunJob)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
