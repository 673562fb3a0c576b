"""The push file (`BACKBONE_PUSH_FILE`): the credentials of the push connectors, in the layout of
the original's `Modules:Devices:Infrastructure:PushNotifications:Providers` section, so an
operator can carry it over:

    {"Fcm": {"ServiceAccounts": {"main": {"ServiceAccountFile": "fcm-main.json"}},
             "Apps": {"eu.example.app": {"ServiceAccountName": "main"}}},
     "Apns": {"Keys": {"main": {"TeamId": "...", "KeyId": "...", "PrivateKeyFile": "AuthKey.p8"}},
              "Bundles": {"eu.example.app": {"KeyName": "main"}}}}

A credential is a file (`ServiceAccountFile`, `PrivateKeyFile`; relative paths are read from the
push file's folder, so secrets can be mounted beside it) or inline, as the original's
configuration holds it (`ServiceAccountJson`, the file's text; `PrivateKey`, the `.p8` file's
PEM text or the base64 of its key). A provider that is missing or `"Enabled": false` only logs.
The settings read the file and the credentials once and report every problem together with
their own; no problem quotes a credential.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_der_private_key, load_pem_private_key

from backbone.config_document import DocumentReader, Section
from backbone.platform.push.apns import ApnsKey
from backbone.platform.push.fcm import ServiceAccount


@dataclass(frozen=True)
class PushProviders:
    """The credentials of each app (its app id or bundle id); None: the platform only logs."""

    fcm: Mapping[str, ServiceAccount] | None = field(default=None, repr=False)
    apns: Mapping[str, ApnsKey] | None = field(default=None, repr=False)


def read_push_file(path: Path) -> tuple[PushProviders, list[str]]:
    """Read and check the file and the credentials it names; return them and every problem."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        return PushProviders(), [f"cannot read {path}: {error.strerror}"]
    except (UnicodeDecodeError, ValueError) as error:
        return PushProviders(), [f"{path} is not JSON: {error}"]
    return push_providers_from_document(document, path.parent)


def push_providers_from_document(document: Any, folder: Path) -> tuple[PushProviders, list[str]]:
    reader = _CredentialReader(folder)
    root = reader.section(document, "$", ("Fcm", "Apns"))
    fcm, apns = root.values.get("Fcm"), root.values.get("Apns")
    providers = PushProviders(
        fcm=None if fcm is None else _fcm(reader, fcm, root.at("Fcm")),
        apns=None if apns is None else _apns(reader, apns, root.at("Apns")),
    )
    return providers, reader.problems


class _CredentialReader(DocumentReader):
    """A document reader that also reads credentials, inline or from files beside the document."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def secret(self, section: Section, inline: str, file: str) -> tuple[str, str] | None:
        """The credential's text and where it came from; exactly one of the two must be given."""
        given = [name for name in (inline, file) if name in section.values]
        if len(given) != 1:
            self.problems.append(f"{section.path} needs exactly one of {inline}, {file}")
            return None
        value = section.values[given[0]]
        if not isinstance(value, str) or not value.strip():
            self.problems.append(f"{section.at(given[0])} must be a non-empty string")
            return None
        if given[0] == inline:
            return value, section.at(inline)
        path = self.folder / value
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not text"
            self.problems.append(f"{section.at(file)}: cannot read {path}: {reason}")
            return None


def _enabled(reader: DocumentReader, section: Section) -> bool:
    return reader.boolean(section, "Enabled", default=True)


def _fcm(reader: _CredentialReader, value: Any, path: str) -> Mapping[str, ServiceAccount] | None:
    section = reader.section(value, path, ("Enabled", "ServiceAccounts", "Apps"))
    if not _enabled(reader, section):
        return None
    accounts = {}
    for name, item, item_path in reader.named(section, "ServiceAccounts"):
        account = reader.section(item, item_path, ("ServiceAccountJson", "ServiceAccountFile"))
        found = reader.secret(account, "ServiceAccountJson", "ServiceAccountFile")
        if found is not None:
            accounts[name] = _service_account(reader, *found)
    apps = _apps(reader, section, "Apps", "ServiceAccountName", accounts)
    return {app: chosen for app, name in apps.items() if (chosen := accounts.get(name)) is not None}


def _service_account(reader: DocumentReader, text: str, where: str) -> ServiceAccount | None:
    try:
        document = json.loads(text)
    except ValueError:
        reader.problems.append(f"{where}: the service account is not JSON")
        return None
    if not isinstance(document, dict):
        reader.problems.append(f"{where}: the service account must be a JSON object")
        return None
    missing = [
        name
        for name in ("project_id", "client_email", "private_key", "token_uri")
        if not isinstance(document.get(name), str) or not document[name]
    ]
    if missing:
        reader.problems.append(f"{where}: the service account lacks {', '.join(missing)}")
        return None
    if not document["token_uri"].startswith("https://"):
        reader.problems.append(f"{where}: the service account's token_uri must be an https URL")
    try:
        key = load_pem_private_key(document["private_key"].encode(), password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, RSAPrivateKey):
        reader.problems.append(f"{where}: the service account's private_key is not an RSA key in PEM")
        return None
    return ServiceAccount(
        project_id=document["project_id"],
        client_email=document["client_email"],
        private_key_id=str(document.get("private_key_id") or ""),
        private_key=key,
        token_uri=document["token_uri"],
    )


def _apns(reader: _CredentialReader, value: Any, path: str) -> Mapping[str, ApnsKey] | None:
    section = reader.section(value, path, ("Enabled", "Keys", "Bundles"))
    if not _enabled(reader, section):
        return None
    keys = {}
    for name, item, item_path in reader.named(section, "Keys"):
        entry = reader.section(item, item_path, ("TeamId", "KeyId", "PrivateKey", "PrivateKeyFile"))
        team_id, key_id = reader.text(entry, "TeamId"), reader.text(entry, "KeyId")
        found = reader.secret(entry, "PrivateKey", "PrivateKeyFile")
        private_key = _signing_key(reader, *found) if found is not None else None
        keys[name] = ApnsKey(team_id, key_id, private_key) if private_key is not None else None
    bundles = _apps(reader, section, "Bundles", "KeyName", keys)
    return {bundle: key for bundle, name in bundles.items() if (key := keys.get(name)) is not None}


def _signing_key(reader: DocumentReader, text: str, where: str) -> EllipticCurvePrivateKey | None:
    try:
        if "-----BEGIN" in text:
            key = load_pem_private_key(text.encode(), password=None)
        else:
            key = load_der_private_key(base64.b64decode("".join(text.split()), validate=True), password=None)
    except (ValueError, TypeError, binascii.Error):
        key = None
    if not isinstance(key, EllipticCurvePrivateKey) or not isinstance(key.curve, SECP256R1):
        reader.problems.append(f"{where}: not a P-256 private key (a .p8 file's PEM text or its base64)")
        return None
    return key


def _apps(
    reader: DocumentReader, section: Section, name: str, reference: str, known: Mapping[str, object]
) -> dict[str, str]:
    """App id -> the name of its credential, each name checked against the configured ones."""
    apps = {}
    for app_id, item, item_path in reader.named(section, name):
        entry = reader.section(item, item_path, (reference,))
        credential = reader.text(entry, reference)
        if credential and credential not in known:
            reader.problems.append(f"{entry.at(reference)}: '{credential}' is not configured")
        apps[app_id] = credential
    return apps
