"""The feature modules keep to their rooms: read from the source, so a new import that breaks a
rule fails here."""

from __future__ import annotations

import ast
import tomllib
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


def test_every_repository_has_its_import_contract() -> None:
    """`lint-imports` (in `make check`) keeps other modules out of a module's repository; a new
    module's repository must not slip past it for want of a contract."""
    document = tomllib.loads((MODULES.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = {
        (tuple(contract["protected_modules"]), tuple(contract["allowed_importers"]))
        for contract in document["tool"]["importlinter"]["contracts"]
        if contract["type"] == "protected"
    }
    for repository in sorted(MODULES.glob("*/repository.py")):
        module = f"backbone.modules.{repository.parent.name}"
        assert ((f"{module}.repository",), (module, "backbone.wiring")) in contracts, module


@pytest.mark.parametrize("path", sorted(MODULES.glob("*/service.py")), ids=name)
def test_no_service_imports_sqlalchemy(path: Path) -> None:
    """Services own the transaction; statements and database errors stay in the repositories."""
    assert [imported for imported in imported_modules(path) if imported.split(".")[0] == "sqlalchemy"] == []


@pytest.mark.parametrize("path", sorted(MODULES.glob("*/model.py")), ids=name)
def test_no_model_imports_falcon_or_sqlalchemy(path: Path) -> None:
    assert [
        imported for imported in imported_modules(path) if imported.split(".")[0] in ("falcon", "sqlalchemy")
    ] == []
