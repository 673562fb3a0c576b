"""The push file: the original's provider sections, credentials inline or from files beside it,
every problem at once and none quoting a credential; the push settings around it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from backbone.push_file import push_providers_from_document, read_push_file
from backbone.settings import Settings, SettingsError

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


def service_account(**overrides: Any) -> str:
    account = {
        "type": "service_account",
        "project_id": "wallet",
        "private_key_id": "kid",
        "private_key": pem(RSA_KEY),
        "client_email": "backbone@wallet.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
        **overrides,
    }
    return json.dumps(account)


def test_inline_credentials_as_the_original_holds_them_are_read() -> None:
    der = EC_KEY.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    document = {
        "fcm": {
            "serviceAccounts": {"main": {"serviceAccountJson": service_account()}},
            "apps": {"eu.example.app": {"serviceAccountName": "main"}},
        },
        "apns": {
            "keys": {"k": {"teamId": "T", "keyId": "K", "privateKey": base64.b64encode(der).decode()}},
            "bundles": {"eu.example.app": {"keyName": "k"}},
        },
    }
    providers, problems = push_providers_from_document(document, Path("."))
    assert problems == []
    assert providers.fcm is not None
    assert providers.apns is not None
    assert providers.fcm["eu.example.app"].project_id == "wallet"
    assert providers.apns["eu.example.app"].team_id == "T"
    assert providers.apns["eu.example.app"].private_key.private_numbers() == EC_KEY.private_numbers()


def test_credential_files_are_read_beside_the_push_file(tmp_path: Path) -> None:
    (tmp_path / "fcm.json").write_text(service_account())
    (tmp_path / "AuthKey.p8").write_text(pem(EC_KEY))
    document = {
        "Fcm": {
            "ServiceAccounts": {"main": {"ServiceAccountFile": "fcm.json"}},
            "Apps": {"a": {"ServiceAccountName": "main"}},
        },
        "Apns": {
            "Keys": {"main": {"TeamId": "T", "KeyId": "K", "PrivateKeyFile": "AuthKey.p8"}},
            "Bundles": {"a": {"KeyName": "main"}},
        },
    }
    (tmp_path / "push.json").write_text(json.dumps(document))
    providers, problems = read_push_file(tmp_path / "push.json")
    assert problems == []
    assert providers.fcm is not None
    assert set(providers.fcm) == {"a"}
    settings = Settings.from_env({"BACKBONE_PUSH_FILE": str(tmp_path / "push.json")})
    assert settings.describe()["push"] == "fcm 1 app(s), apns 1 app(s)"
    # Neither the settings nor what they tell of themselves show a key.
    shown = repr(settings) + str(settings.describe())
    assert pem(EC_KEY).splitlines()[1] not in shown
    assert pem(RSA_KEY).splitlines()[1] not in shown


def test_a_disabled_provider_only_logs_and_its_credentials_are_not_read() -> None:
    providers, problems = push_providers_from_document(
        {"Fcm": {"Enabled": False}, "Apns": {"Enabled": False}}, Path(".")
    )
    assert problems == []
    assert (providers.fcm, providers.apns) == (None, None)


def test_every_problem_is_reported_at_once_and_none_quotes_a_credential(tmp_path: Path) -> None:
    document = {
        "Fcm": {
            "ServiceAccounts": {
                "broken": {
                    "ServiceAccountJson": service_account(private_key="not a key", token_uri="http://x")
                },
                "both": {"ServiceAccountJson": "{}", "ServiceAccountFile": "x.json"},
                "missing": {"ServiceAccountFile": "absent.json"},
                "partial": {"ServiceAccountJson": json.dumps({"project_id": "p"})},
            },
            "Apps": {"a": {"ServiceAccountName": "unknown"}},
        },
        "Apns": {
            "Keys": {
                "rsa": {"TeamId": "T", "KeyId": "K", "PrivateKey": pem(RSA_KEY)},
                "garbage": {"TeamId": "", "KeyId": "K", "PrivateKey": "secret-not-base64!"},
            },
            "Bundles": {"b": {"KeyName": "rsa"}, "c": {"Key": "garbage"}},
            "Typo": True,
        },
        "Sse": {},
    }
    _, problems = push_providers_from_document(document, tmp_path)
    broken, partial = "$.Fcm.ServiceAccounts.broken.ServiceAccountJson", "$.Fcm.ServiceAccounts.partial"
    assert problems == [
        "$.Sse is not known (known: Fcm, Apns)",
        f"{broken}: the service account's token_uri must be an https URL",
        f"{broken}: the service account's private_key is not an RSA key in PEM",
        "$.Fcm.ServiceAccounts.both needs exactly one of ServiceAccountJson, ServiceAccountFile",
        f"$.Fcm.ServiceAccounts.missing.ServiceAccountFile: cannot read {tmp_path / 'absent.json'}: "
        "No such file or directory",
        f"{partial}.ServiceAccountJson: the service account lacks client_email, private_key, token_uri",
        "$.Fcm.Apps.a.ServiceAccountName: 'unknown' is not configured",
        "$.Apns.Typo is not known (known: Enabled, Keys, Bundles)",
        "$.Apns.Keys.rsa.PrivateKey: not a P-256 private key (a .p8 file's PEM text or its base64)",
        "$.Apns.Keys.garbage.TeamId must be a non-empty string",
        "$.Apns.Keys.garbage.PrivateKey: not a P-256 private key (a .p8 file's PEM text or its base64)",
        "$.Apns.Bundles.c.Key is not known (known: KeyName)",
        "$.Apns.Bundles.c.KeyName must be a non-empty string",
    ]
    text = "\n".join(problems)
    assert "secret-not-base64" not in text
    assert pem(RSA_KEY).splitlines()[1] not in text


def test_push_settings_report_their_problems_with_the_others(tmp_path: Path) -> None:
    (tmp_path / "push.json").write_text("{not json")
    (tmp_path / "ca.pem").write_text("no certificate")
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {
                "BACKBONE_PUSH_FILE": str(tmp_path / "push.json"),
                "BACKBONE_PUSH_CA_FILE": str(tmp_path / "ca.pem"),
                "BACKBONE_PUSH_FCM_URL": "http://fcm.example",
                "BACKBONE_PUSH_MAX_ATTEMPTS": "0",
                "BACKBONE_PUSH_TIMEOUT_S": "fast",
            }
        )
    problems = "\n".join(raised.value.problems)
    assert "BACKBONE_PUSH_FILE: " + str(tmp_path / "push.json") + " is not JSON" in problems
    assert "BACKBONE_PUSH_CA_FILE: " in problems
    assert "BACKBONE_PUSH_FCM_URL: 'http://fcm.example' is not an https URL" in problems
    assert "BACKBONE_PUSH_MAX_ATTEMPTS: 0 is outside 1..10" in problems
    assert "BACKBONE_PUSH_TIMEOUT_S: 'fast' is not a number" in problems
    assert len(raised.value.problems) == 5


def test_without_a_push_file_every_platform_only_logs() -> None:
    settings = Settings.from_env({})
    assert (settings.push.fcm, settings.push.apns) == (None, None)
    assert settings.push_fcm_url == "https://fcm.googleapis.com"
    assert settings.push_apns_development_url == "https://api.sandbox.push.apple.com"
