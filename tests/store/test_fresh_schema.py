"""A new store's schema, built from the models (``store.db.create_fresh``), equals the one
Alembic's migrations give, table by table (columns with their order, types, nullability,
server defaults and primary keys; indexes; foreign keys) and with the same
``alembic_version`` stamp; stores that already have tables still upgrade through Alembic."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from store import Store, db
from store.location import HEAD

REPO = Path(__file__).resolve().parents[2]


def alembic_upgrade(path: str, revision: str = "head") -> None:
    """The migrations alone, as before the shortcut (never ``create_fresh``)."""
    from alembic import command

    _read, write = db.make_engines(db.to_url(path))
    cfg = db.alembic_config()
    with write.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    _read.dispose()
    write.dispose()


def schema(path: str) -> dict[str, Any]:
    """Everything SQLite knows of the schema, per table, plus the version rows."""
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        out: dict[str, Any] = {}
        for t in tables:
            indexes = {}
            for _seq, name, unique, origin, partial in con.execute(f"PRAGMA index_list('{t}')"):
                cols = [r[2] for r in con.execute(f"PRAGMA index_info('{name}')")]
                indexes[name] = (unique, origin, partial, cols)
            out[t] = {
                "columns": con.execute(f"PRAGMA table_info('{t}')").fetchall(),
                "indexes": indexes,
                "foreign_keys": con.execute(f"PRAGMA foreign_key_list('{t}')").fetchall(),
            }
        out["alembic_version rows"] = con.execute("SELECT version_num FROM alembic_version").fetchall()
        return out
    finally:
        con.close()


def test_a_fresh_store_has_exactly_the_migrated_schema_and_stamp(tmp_path: Path) -> None:
    migrated, fresh = str(tmp_path / "migrated.db"), str(tmp_path / "fresh.db")
    alembic_upgrade(migrated)
    st = Store.open(fresh)  # the shortcut: an empty file
    st.close()
    want, got = schema(migrated), schema(fresh)
    assert set(got) == set(want)
    for table in want:
        assert got[table] == want[table], table
    assert got["alembic_version rows"] == [(HEAD,)] == [(db.head_revision(),)]
    assert "alembic_version" in want and len(want) > 2  # the comparison saw the tables


def test_the_shortcut_reports_like_an_upgrade_from_nothing(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s.db"), migrate=False)
    try:
        assert store.schema_upgrade() == (None, HEAD)
        assert store.schema_revision() == HEAD  # Alembic's own reading of the stamp
        assert store.schema_upgrade() == (HEAD, HEAD)
        assert store.integrity_check() == []
    finally:
        store.close()


def test_opening_a_new_store_does_not_import_alembic(tmp_path: Path) -> None:
    code = ("import sys; from store import Store; s = Store.open(sys.argv[1]); s.close(); "
            "print(sorted(m for m in sys.modules if m == 'alembic' or m.startswith('alembic.')))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.db")], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("prepare", ["stamped at the base migration", "an unrelated table"])
def test_a_database_with_tables_is_left_to_alembic(tmp_path: Path, prepare: str) -> None:
    path = str(tmp_path / "s.db")
    if prepare == "stamped at the base migration":
        from alembic.script import ScriptDirectory

        base = [r.revision for r in ScriptDirectory.from_config(db.alembic_config()).walk_revisions()][-1]
        alembic_upgrade(path, base)
    else:
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE other (x INTEGER)")
        con.commit()
        con.close()
    before = schema(path)["alembic_version rows"] if prepare != "an unrelated table" else None
    _read, write = db.make_engines(db.to_url(path))
    try:
        assert db.create_fresh(write) is False
        assert db.upgrade(write) == ((before or [(None,)])[0][0], HEAD)
    finally:
        _read.dispose()
        write.dispose()
    migrated = str(tmp_path / "migrated.db")
    alembic_upgrade(migrated)
    got, want = schema(path), schema(migrated)
    for table in want:
        assert got[table] == want[table], table
