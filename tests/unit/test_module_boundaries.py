"""The feature modules keep to their rooms: read from the source, so a new import that breaks a
rule fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MODULES = Path(__file__).parents[2] / "backbone" / "modules"
SOURCES = sorted(MODULES.glob("*/*.py"))


def imported_modules(path: Path) -> list[str]:
    """Every module the file imports, at any depth (lazy imports in functions count too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def test_the_modules_are_read() -> None:
    assert {"devices/service.py", "identity_deletion/repository.py", "quotas/handlers.py"} <= {
        name(path) for path in SOURCES
    }


@pytest.mark.parametrize("path", SOURCES, ids=name)
def test_no_module_imports_another_modules_repository(path: Path) -> None:
    """A module reads another module's data through that module's service, never its tables."""
    own = f"backbone.modules.{path.parent.name}."
    foreign = [
        imported
        for imported in imported_modules(path)
        if imported.startswith("backbone.modules.")
        and not imported.startswith(own)
        and ".repository" in imported
    ]
    assert foreign == []


@pytest.mark.parametrize("path", sorted(MODULES.glob("*/service.py")), ids=name)
def test_no_service_imports_sqlalchemy(path: Path) -> None:
    """Services own the transaction; statements and database errors stay in the repositories."""
    assert [imported for imported in imported_modules(path) if imported.split(".")[0] == "sqlalchemy"] == []


@pytest.mark.parametrize("path", sorted(MODULES.glob("*/model.py")), ids=name)
def test_no_model_imports_falcon_or_sqlalchemy(path: Path) -> None:
    assert [
        imported for imported in imported_modules(path) if imported.split(".")[0] in ("falcon", "sqlalchemy")
    ] == []


def test_a_foreign_repository_import_is_found(tmp_path: Path) -> None:
    """The check itself: an import of another module's repository is seen, also inside a function."""
    source = tmp_path / "messages" / "service.py"
    source.parent.mkdir()
    source.write_text(
        "def f():\n    from backbone.modules.devices.repository import identities\n", encoding="utf-8"
    )
    assert "backbone.modules.devices.repository" in imported_modules(source)
