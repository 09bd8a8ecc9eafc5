"""The store tests run on SQLite and on PostgreSQL: a test that takes ``store_url`` (or a
``store`` fixture built on it) runs once per backend, ``[sqlite]`` and ``[postgres]``,
unless it also takes ``path`` (a test that reads the SQLite file itself: SQLite only).
The PostgreSQL variant gets a fresh schema on the test server (tests/pg.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pg

BACKENDS = ("sqlite", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        sqlite_only = "path" in metafunc.fixturenames
        metafunc.parametrize("backend", ["sqlite"] if sqlite_only else list(BACKENDS), scope="function")


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield str(tmp_path / "s.db")
        return
    with pg.fresh_schema() as url:
        yield url
