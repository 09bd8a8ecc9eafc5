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


def _full_imports(path: Path) -> set[str]:
    """Every module a file imports, by its full dotted name (``controller.engine``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


@pytest.mark.parametrize("path", _modules("controller/planner"), ids=lambda p: p.name)
def test_planner_is_pure(path: Path) -> None:
    imports = _imports(path) | _full_imports(path)
    assert not (imports & {"time", "docker", "sqlalchemy", "loguru", "controller.engine", "controller.executor"})


def test_the_planner_purity_check_sees_the_package() -> None:
    assert len(_modules("controller/planner")) > 1


@pytest.mark.parametrize("source, bad", [
    ("import controller.engine\n", "controller.engine"),
    ("from controller import engine\n", "controller.engine"),
    ("from controller.engine import Engine\n", "controller.engine"),
])
def test_the_planner_check_sees_submodule_imports(tmp_path: Path, source: str, bad: str) -> None:
    f = tmp_path / "planner.py"
    f.write_text(source)
    assert bad in _full_imports(f)
