"""PostgreSQL for the tests: the server (RECONCILE_TEST_PG_URL, or one that
scripts/ensure-postgres.sh starts on RECONCILE_TEST_PG_PORT, default 55432) and a fresh
schema per test (its URL carries ``options=-csearch_path=SCHEMA``), dropped after.

A PostgreSQL variant never skips because the server cannot start: it fails, saying why
(CI must run it). A developer without PostgreSQL may set RECONCILE_TEST_PG=0 to skip the
variants deliberately (never set in CI: .ci/run exports RECONCILE_TEST_PG_URL)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parents[1]
_server: dict[str, str] = {}


def server_url() -> str:
    """The SQLAlchemy URL of the test server (started once per session if need be)."""
    if os.environ.get("RECONCILE_TEST_PG") == "0":
        pytest.skip("PostgreSQL variants switched off by RECONCILE_TEST_PG=0 (a local opt-out; CI runs them)")
    if "url" in _server:
        return _server["url"]
    url = os.environ.get("RECONCILE_TEST_PG_URL")
    if not url:
        port = os.environ.get("RECONCILE_TEST_PG_PORT", "55432")
        done = subprocess.run(["bash", str(REPO / "scripts" / "ensure-postgres.sh"), "--port", port],
                              capture_output=True, text=True, timeout=300, check=False)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            pytest.fail(f"PostgreSQL for the store tests did not start (scripts/ensure-postgres.sh --port {port}, "
                        f"exit {done.returncode}): {done.stderr.strip()[-800:]}\n"
                        "Set RECONCILE_TEST_PG_URL to a server, or RECONCILE_TEST_PG=0 to skip these locally.")
        url = lines[-1]
    _server["url"] = url
    return url


def _libpq(url: str) -> str:
    """psycopg's own connection string for an SQLAlchemy URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def fresh_schema(prefix: str = "t") -> Iterator[str]:
    """A new, empty schema on the test server; yields a store URL whose search_path is it."""
    with fresh_schema_on(server_url(), prefix) as url:
        yield url


@contextmanager
def fresh_schema_on(base: str, prefix: str = "t") -> Iterator[str]:
    """A new, empty schema on the server at ``base`` (dropped after, if it still answers)."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_libpq(base), autocommit=True) as con:
        con.execute(f'CREATE SCHEMA "{name}"')
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={name}')}"
    finally:
        with psycopg.connect(_libpq(base), autocommit=True) as con:
            con.execute("SET lock_timeout = '10s'")
            con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@contextmanager
def fresh_database(prefix: str = "t") -> Iterator[str]:
    """A new, empty database (for what works per database: pg_dump, pg_restore)."""
    import psycopg

    base = server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_libpq(base), autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    head, _, _db = base.partition("?")[0].rpartition("/")
    try:
        yield f"{head}/{name}"
    finally:
        with psycopg.connect(_libpq(base), autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
