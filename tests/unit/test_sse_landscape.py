"""SSE replicas in landscape profiles (`sse.replicas`, `sse.cpu_limit`), and the gateway that
routes only the two stream paths to them, with long timeouts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from scenarios.landscape import ProfileError, load_profile, parse_profile
from testbed.landscape.gateway import GatewayPorts, haproxy_config
from tests.helpers.services import unavailable

SOURCE = Path("my-landscape.toml")


def test_the_sse_profile_has_budgeted_replicas_that_count_as_database_clients() -> None:
    profile = load_profile("sse")
    assert (profile.sse.replicas, profile.sse.cpu_limit) == (2, 0.05)
    sse = [process for process in profile.processes() if process.tier == "sse"]
    assert [(p.role, p.option, p.cpu_limit) for p in sse] == [
        ("sse1", "sse.cpu_limit", 0.05),
        ("sse2", "sse.cpu_limit", 0.05),
    ]
    assert profile.database_clients == 2 * 2 + 1 + 1 + 2


def test_a_profile_without_sse_starts_none() -> None:
    profile = parse_profile('name = "x"\n', source=SOURCE)
    assert profile.sse.replicas == 0
    assert not [process for process in profile.processes() if process.tier == "sse"]


def test_bad_sse_options_are_refused_with_the_others() -> None:
    with pytest.raises(ProfileError) as raised:
        parse_profile('name = "x"\n[sse]\nreplicas = -1\ncpu_limit = 0.1\nport = 1\n', source=SOURCE)
    problems = "\n".join(raised.value.problems)
    assert "sse.replicas" in problems
    assert "sse.port" in problems or "port" in problems
    with pytest.raises(ProfileError) as raised:
        parse_profile('name = "x"\n[sse]\ncpu_limit = 0.1\n', source=SOURCE)
    assert any("sse.cpu_limit" in problem for problem in raised.value.problems)


def sse_gateway_config() -> str:
    profile = load_profile("sse")
    return haproxy_config(
        profile.gateway, GatewayPorts(20001, 20002), [20011, 20012], "gateway1", sse_ports=[20021, 20022]
    )


def test_the_gateway_routes_only_the_stream_paths_to_the_sse_replicas() -> None:
    config = sse_gateway_config()
    assert "acl sse_route path -i /api/v2/sse /api/v1/sse" in config
    assert "use_backend sse if sse_route METH_GET" in config
    backend = config.split("backend sse", 1)[1]
    assert "server sse1 127.0.0.1:20021 check" in backend
    assert "server sse2 127.0.0.1:20022 check" in backend
    assert "timeout server 120s" in backend
    assert "balance leastconn" in backend
    # The internal route (POST /{address}/events) is no public path: the public frontend answers 404.
    lines = [line.strip() for line in config.splitlines() if not line.strip().startswith("#")]
    assert not [line for line in lines if "/events" in line]
    without = haproxy_config(load_profile("sse").gateway, GatewayPorts(20001, 20002), [20011], "g")
    assert "backend sse" not in without
    assert "/api/v1/sse" not in without


def test_haproxy_accepts_the_gateway_with_sse_replicas(tmp_path: Path) -> None:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        unavailable("haproxy is not installed (apt-get install haproxy)")
    path = tmp_path / "gateway.cfg"
    path.write_text(sse_gateway_config())
    result = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in (result.stdout + result.stderr).lower()
