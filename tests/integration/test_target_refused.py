"""`testbed run|capacity --target URL` refuses a host the profile does not allow before it sends
anything: a live server on that host counts every request it gets, and gets none."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from testbed.cli import main


class CountingHandler(BaseHTTPRequestHandler):
    """Answer 200 to anything and count it."""

    requests: list[str] = []

    def _answer(self) -> None:
        CountingHandler.requests.append(f"{self.command} {self.path}")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test's output quiet."""


@pytest.fixture
def counting_server() -> Iterator[str]:
    CountingHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), CountingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("command", ["run", "capacity"])
def test_a_target_whose_host_the_profile_does_not_allow_gets_no_request(
    command: str, counting_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = tmp_path / "elsewhere.toml"
    profile.write_text('name = "elsewhere"\nallowed_target_hosts = ["backbone.example.org"]\n')
    status = main(
        [
            command,
            "--profile",
            str(profile),
            "--target",
            counting_server,
            "--prometheus",
            counting_server,
            "--expect-load-workers",
            "1",
            "--results",
            str(tmp_path / "results"),
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert err.splitlines()[0] == (
        f"testbed {command}: --target {counting_server!r}: refused: host '127.0.0.1' is not in "
        f"allowed_target_hosts of profile elsewhere ({profile}: backbone.example.org); add it there "
        "to send load to that deployment"
    )
    assert "Traceback" not in err
    assert CountingHandler.requests == []
    assert not (tmp_path / "results").exists()


def test_the_same_target_on_an_allowed_host_passes_the_check(
    counting_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusal above is the host's: allowed, the run gets past it to the next problem."""
    profile = tmp_path / "loopback.toml"
    profile.write_text('name = "loopback"\nallowed_target_hosts = ["127.0.0.1"]\n')
    status = main(["run", "--profile", str(profile), "--target", counting_server, "--duration", "-1"])
    assert status == 2
    assert "--duration must be between" in capsys.readouterr().err
    assert CountingHandler.requests == []


def test_every_problem_of_the_target_and_load_worker_options_is_listed_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "run",
            "--prometheus",
            "http://prometheus.example.org:9090",
            "--credentials",
            str(tmp_path / "missing.json"),
            "--expect-load-workers",
            "-1",
            "--load-workers-timeout",
            "0",
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    for message in (
        "--expect-load-workers must be an integer in 0..64, got -1",
        "--load-workers-timeout must be between 0 and 3600 seconds, got 0",
    ):
        assert message in err
    # The target's own options are checked once the load generator's are right.
    status = main(["run", "--prometheus", "http://p.example.org", "--credentials", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert status == 2
    assert "--prometheus reads a target's server figures: give --target too" in err
    assert "--credentials names a pool seeded before" in err
    assert "Traceback" not in err
