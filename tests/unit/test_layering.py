"""The house layering, as a test so it cannot rot:
YAML -> crd_like -> store -> controller; only controller/engine.py imports docker;
only store/ and migrations/ import sqlalchemy; crd_like does no I/O imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("crd_like"), ids=lambda p: p.name)
def test_crd_like_is_pure(path: Path) -> None:
    forbidden = {"store", "controller", "docker", "sqlalchemy", "alembic", "requests", "subprocess", "socket"}
    assert not (_imports(path) & forbidden), f"{path.name} imports {_imports(path) & forbidden}"


@pytest.mark.parametrize("path", _modules("store"), ids=lambda p: p.name)
def test_store_does_not_import_controller_or_docker(path: Path) -> None:
    assert not (_imports(path) & {"controller", "docker"})


@pytest.mark.parametrize("path", _modules("controller"), ids=lambda p: p.name)
def test_only_the_engine_adapter_imports_docker_and_only_store_imports_sqlalchemy(path: Path) -> None:
    imports = _imports(path)
    if path.name != "engine.py":
        assert "docker" not in imports, f"{path.name} imports docker; only controller/engine.py may"
    assert "sqlalchemy" not in imports, f"{path.name} imports sqlalchemy"


def test_planner_is_pure() -> None:
    imports = _imports(ROOT / "controller" / "planner.py")
    assert not (imports & {"time", "docker", "sqlalchemy", "loguru", "controller.engine"})
