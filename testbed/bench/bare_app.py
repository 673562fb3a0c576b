"""The baseline of every throughput figure: a Falcon app that does nothing but answer.

Served by gunicorn with exactly the settings of the backbone (see `backbone.platform.serving`),
so a ratio backbone/bare isolates what the backbone itself costs.

For the load generator's own tests it has one more route, `/stallable`, that answers like
`/constant` unless a stall was requested with `POST /control/stall?duration_s=2`: then every
request to it is held until the stall ends (a stop-the-world pause). The stall's end time lives
in a file, so that all gunicorn workers see it.

Run it with `python -m testbed.bench.bare_app --port 8090 --workers 2 --threads 4`, or from
Python with `running_bare_app()` (a child process on a free loopback port, stopped afterwards).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import falcon

from backbone.platform.serving import GunicornServer, gunicorn_options
from testbed.processes import answers_200, free_port, start_python, stop, wait_until_answers

CONSTANT_BODY = b'{"result":{"status":"ok"}}'
_CHUNK = b"\0" * 65536
MAX_STALL_S = 30.0


class ConstantResource:
    """Answer a constant JSON body to any method."""

    def _answer(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.bounded_stream.read()
        resp.content_type = falcon.MEDIA_JSON
        resp.data = CONSTANT_BODY

    on_get = on_post = on_put = _answer


class SinkResource:
    """Read and discard the request body (the baseline of uploads)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        received = 0
        while chunk := req.bounded_stream.read(65536):
            received += len(chunk)
        resp.content_type = falcon.MEDIA_JSON
        resp.data = b'{"result":{"received":%d}}' % received


class BytesResource:
    """Return `size` bytes (the baseline of downloads)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, size: int) -> None:
        resp.content_type = "application/octet-stream"
        resp.data = (_CHUNK * (size // len(_CHUNK) + 1))[:size]


class Stall:
    """A stall shared by all worker processes through a file holding its end (epoch seconds)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def start(self, duration_s: float) -> float:
        """Stall from now for `duration_s`; return the end as epoch seconds."""
        until_s = time.time() + duration_s
        # Write then rename, so a reader never sees half a number.
        scratch = self.path.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(repr(until_s), encoding="ascii")
        scratch.replace(self.path)
        return until_s

    def remaining_s(self) -> float:
        """Return how long the current stall still lasts (0 when there is none)."""
        try:
            until_s = float(self.path.read_text(encoding="ascii"))
        except (OSError, ValueError):
            return 0.0
        return max(0.0, until_s - time.time())


class StallableResource:
    """Answer like `/constant`, but hold the request while a stall lasts."""

    def __init__(self, stall: Stall) -> None:
        self._stall = stall

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if (remaining_s := self._stall.remaining_s()) > 0:
            time.sleep(remaining_s)
        resp.content_type = falcon.MEDIA_JSON
        resp.data = CONSTANT_BODY


class StallControlResource:
    """Start a stall of `/stallable`: `POST /control/stall?duration_s=2`."""

    def __init__(self, stall: Stall) -> None:
        self._stall = stall

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        duration_s = req.get_param_as_float("duration_s", required=True, min_value=0, max_value=MAX_STALL_S)
        until_s = self._stall.start(duration_s)
        resp.media = {"result": {"stalledUntil": until_s}}


def create_bare_app(stall_file: Path | None = None) -> falcon.App[falcon.Request, falcon.Response]:
    """Build the bare app; without `stall_file`, `/stallable` and the stall control are absent."""
    app = falcon.App()
    app.add_route("/constant", ConstantResource())
    app.add_route("/sink", SinkResource())
    app.add_route("/bytes/{size:int(min=0, max=104857600)}", BytesResource())
    if stall_file is not None:
        stall = Stall(stall_file)
        app.add_route("/stallable", StallableResource(stall))
        app.add_route("/control/stall", StallControlResource(stall))
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the bare app under gunicorn with the backbone's settings."""
    parser = argparse.ArgumentParser(
        prog="python -m testbed.bench.bare_app", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8090, help="port to bind (default 8090)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="bare-app-"))
    stall_file = directory / "stall-until"
    options = gunicorn_options(
        host=args.host,
        port=args.port,
        workers=args.workers,
        threads=args.threads,
        extra={"proc_name": "bare-app"},
    )
    arbiter_pid = os.getpid()
    try:
        GunicornServer(lambda: create_bare_app(stall_file), options).run()
    finally:
        # Forked workers unwind through here too when they exit; only the arbiter may clean up.
        if os.getpid() == arbiter_pid:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


@contextmanager
def running_bare_app(
    *, workers: int = 2, threads: int = 4, startup_timeout_s: float = 20.0, log_path: Path | None = None
) -> Iterator[str]:
    """Run `python -m testbed.bench.bare_app` and yield its base URL; stop it (and its workers) after."""
    port = free_port()
    args = ["-m", "testbed.bench.bare_app", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--workers", str(workers), "--threads", str(threads)]
    url = f"http://127.0.0.1:{port}"
    with ExitStack() as stack:
        log = stack.enter_context(open(log_path, "wb")) if log_path else subprocess.DEVNULL
        process = start_python(args, {}, log)
        try:
            wait_until_answers(
                answers_200(f"{url}/constant", timeout_s=1.0),
                process,
                what="the bare app",
                timeout_s=startup_timeout_s,
            )
            yield url
        finally:
            # SIGTERM is gunicorn's graceful stop; its workers exit with the arbiter.
            stop(process)


def post(base_url: str, path: str, timeout_s: float = 5.0) -> int:
    """Send an empty POST to a loopback URL (the bare app's controls) and return the status."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    try:
        connection.request("POST", path)
        return connection.getresponse().status
    finally:
        connection.close()


if __name__ == "__main__":
    raise SystemExit(main())
