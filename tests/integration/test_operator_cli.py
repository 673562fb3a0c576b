"""The operator commands call the services in-process on the configured database."""

from __future__ import annotations

import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from falcon import testing

from backbone import cli
from backbone.consumer_api import create_consumer_app
from backbone.modules.tokens.model import MAX_FAILED_PASSWORD_ATTEMPTS, NewToken
from backbone.platform.errors import DomainError
from backbone.settings import Settings
from backbone.wiring import build_services
from tests.helpers.api import onboard
from tests.helpers.peers import relate


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Development mode on a fresh SQLite file under a temporary directory."""
    for name in [key for key in __import__("os").environ if key.startswith("BACKBONE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BACKBONE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("BACKBONE_PASSWORD_HASH_ITERATIONS", "1000")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fields(output: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)


def test_client_create_list_and_delete(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "client", "create", "--client-id", "app", "--display-name", "The App", "--max-identities", "7"
    )
    assert code == 0, err
    created = fields(out)
    assert created["clientId"] == "app"
    assert len(created["clientSecret"]) == 30
    assert "shown only now" in err
    code, out, _ = run(
        capsys,
        "client",
        "create",
        "--clientId",
        "legacy",
        "--clientSecret",
        "s3cret",
        "--defaultTier",
        "Basic",
    )
    assert code == 0
    code, out, _ = run(capsys, "client", "list")
    assert code == 0
    assert "The App" in out
    assert "legacy" in out
    assert "test" in out
    assert "s3cret" not in out
    assert created["clientSecret"] not in out
    services = build_services(Settings.from_process_env())
    try:
        assert services.clients.authenticate("legacy", "s3cret") is not None
        assert services.clients.authenticate("app", created["clientSecret"]) is not None
    finally:
        services.close()
    code, out, _ = run(capsys, "client", "delete", "app", "legacy")
    assert code == 0
    code, out, _ = run(capsys, "client", "list")
    assert "The App" not in out


def test_client_errors_are_reported_with_their_code(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "client", "create", "--client-id", "test")
    assert code == 1
    assert "error.platform.validation.device.clientIdAlreadyExists" in err
    code, _, err = run(capsys, "client", "create", "--default-tier", "Gold")
    assert code == 1
    assert "tierIdInvalidOrDoesNotExist" in err
    code, _, err = run(capsys, "client", "delete", "nobody")
    assert code == 1
    assert "error.platform.recordNotFound" in err


def test_tier_create_and_list(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tier", "create", "--name", "Premium")
    assert code == 0, err
    assert fields(out)["id"].startswith("TIR")
    code, out, _ = run(capsys, "tier", "list")
    assert code == 0
    assert {"Basic", "Premium", "Queued for Deletion"} <= {
        line.split("  ")[1].strip() for line in out.splitlines()[1:]
    }
    code, _, err = run(capsys, "tier", "create", "--name", "Premium")
    assert code == 1
    assert "tierNameAlreadyExists" in err


def test_announcement_send(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "announcement",
        "send",
        "--severity",
        "High",
        "--text",
        "en",
        "Maintenance",
        "Tonight",
        "--text",
        "de",
        "Wartung",
        "Heute Nacht",
        "--action",
        "https://example.org",
        "Read more",
        "--expires-at",
        "2999-01-01T00:00:00Z",
    )
    assert code == 0, err
    announcement_id = fields(out)["id"]
    services = build_services(Settings.from_process_env())
    try:
        announcement = services.announcements.get(announcement_id)
    finally:
        services.close()
    assert announcement.severity.name == "High"
    assert {text.language for text in announcement.texts} == {"en", "de"}
    assert announcement.actions[0].display_name == {"en": "Read more"}
    code, _, err = run(capsys, "announcement", "send", "--text", "de", "Nur", "Deutsch")
    assert code == 1
    assert "invalidPropertyValue" in err


def test_production_mode_refuses_an_unmigrated_database(
    environment: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKBONE_ENVIRONMENT", "production")
    monkeypatch.setenv("BACKBONE_JWT_SIGNING_KEY", "k" * 32)
    code, _, err = run(capsys, "tier", "list")
    assert code == 2
    assert "backbone migrate" in err


def test_serve_admin_refuses_an_empty_key_outside_development(
    environment: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKBONE_ENVIRONMENT", "production")
    monkeypatch.setenv("BACKBONE_JWT_SIGNING_KEY", "k" * 32)
    code, _, err = run(capsys, "serve-admin", "--port", "1")
    assert code == 2
    assert "BACKBONE_ADMIN_API_KEY" in err


def test_announcement_delete(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = []
    for _ in range(2):
        code, out, err = run(capsys, "announcement", "send", "--text", "en", "Maintenance", "Tonight")
        assert code == 0, err
        ids.append(fields(out)["id"])
    code, out, err = run(capsys, "announcement", "delete", ids[0])
    assert code == 0, err
    assert out.strip() == f"deleted announcement {ids[0]}"
    code, out, err = run(capsys, "announcement", "delete", "--id", ids[1])  # as the original's CLI
    assert code == 0, err
    services = build_services(Settings.from_process_env())
    try:
        assert services.announcements.all() == []
    finally:
        services.close()
    code, _, err = run(capsys, "announcement", "delete", ids[0])
    assert code == 1
    assert "error.platform.recordNotFound" in err
    code, _, err = run(capsys, "announcement", "delete", "TOK00000000000000000")
    assert code == 1
    assert "error.platform.validation.invalidId" in err
    code, _, err = run(capsys, "announcement", "delete", ids[0], "--id", ids[1])
    assert code == 1
    assert "give the id once" in err


def test_token_reset_access_failed_count(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "migrate")[0] == 0
    services = build_services(Settings.from_process_env())
    try:
        token = services.tokens.create(
            None,
            NewToken(
                content=None,
                expires_at=services.clock.now() + timedelta(minutes=4),
                for_identity=None,
                password=b"right",
            ),
        )
        for _ in range(MAX_FAILED_PASSWORD_ATTEMPTS):
            with pytest.raises(DomainError):
                services.tokens.get(None, token.id, b"wrong")
        with pytest.raises(DomainError, match="too many failed password attempts"):
            services.tokens.get(None, token.id, b"right")
        code, out, err = run(capsys, "token", "reset-access-failed-count", "--id", token.id)
        assert code == 0, err
        assert out.strip() == f"reset the failed access count of token {token.id}"
        assert services.tokens.get(None, token.id, b"right").id == token.id
    finally:
        services.close()
    code, _, err = run(capsys, "token", "reset-access-failed-count", "TOK" + "x" * 17)
    assert code == 1
    assert "error.platform.recordNotFound" in err
    code, _, err = run(capsys, "token", "reset-access-failed-count")
    assert code == 1
    assert "give the id once" in err


def test_database_export(environment: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(capsys, "migrate")[0] == 0
    services = build_services(Settings.from_process_env())
    try:
        api = testing.TestClient(create_consumer_app(services))
        relate(onboard(api), onboard(api))
    finally:
        services.close()
    code, out, err = run(capsys, "database", "export")
    assert code == 0, err
    printed = fields(out)
    assert (printed["Identities"], printed["Devices"], printed["Relationships"], printed["Messages"]) == (
        "2",
        "2",
        "1",
        "0",
    )
    exported = Path(printed["export"])
    assert exported.parent == environment / "export"
    assert exported.name.startswith("export-")
    with zipfile.ZipFile(exported) as archive:
        assert sorted(archive.namelist()) == [
            "counts.csv",
            "devices.csv",
            "identities.csv",
            "messages.csv",
            "relationships.csv",
        ]
    code, out, err = run(capsys, "database", "export", "--sensitive", "--output", str(tmp_path / "mine.zip"))
    assert code == 0, err
    assert zipfile.is_zipfile(tmp_path / "mine.zip")
    (tmp_path / "a-file").write_text("")
    code, _, err = run(capsys, "database", "export", "--output", str(tmp_path / "a-file" / "export.zip"))
    assert code == 1
    assert "cannot write the export" in err
    assert "Traceback" not in err
