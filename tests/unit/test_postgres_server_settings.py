"""A private server's settings reach its command line; libraries are preloaded only when asked for."""

from __future__ import annotations

from testbed.landscape.postgres import ServerSettings


def test_a_server_preloads_no_library_unless_asked() -> None:
    assert not any(option.startswith("shared_preload_libraries") for option in ServerSettings().options())


def test_preloaded_libraries_are_one_server_option() -> None:
    options = ServerSettings(preload_libraries=("pg_stat_statements", "auto_explain")).options()
    assert "shared_preload_libraries=pg_stat_statements,auto_explain" in options


def test_a_server_logs_every_autovacuum() -> None:
    assert "log_autovacuum_min_duration=0" in ServerSettings().options()
