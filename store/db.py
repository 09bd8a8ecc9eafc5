"""Opening a store: URL resolution, SQLite tuning, Alembic migration to head.

A new, empty database gets the head schema straight from the models (``create_fresh``:
``create_all`` plus Alembic's version table stamped at ``HEAD``), without importing
Alembic or replaying every migration; tests/store checks that this schema equals the
migrated one. A store that has tables is always upgraded by Alembic.

The store location is ``--db`` / ``RECONCILE_DB`` (a file path or an SQLAlchemy URL),
default ``/var/lib/reconcile/reconcile.db`` for root and
``~/.local/state/reconcile/reconcile.db`` otherwise. SQLite runs in WAL mode with a
busy timeout; write transactions start with ``BEGIN IMMEDIATE`` so concurrent writers
queue on the lock instead of failing with "database is locked" on upgrade.

PostgreSQL (``postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB``, the ``postgres`` extra)
runs the same models and migrations; one engine serves reads and writes, at READ
COMMITTED, so writes that must not race (the lease, the desired-state counter) are
single conditional UPDATEs or take row locks (``SELECT ... FOR UPDATE``). A URL is shown
only through ``redact`` (the password as ``***``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (Column, Connection, Engine, MetaData, PrimaryKeyConstraint, String, Table, create_engine, event,
                        inspect, text)
from sqlalchemy.engine import make_url

from store.location import HEAD, default_url, redact, to_url

__all__ = ["HEAD", "default_url", "redact", "to_url", "sqlite_path", "make_engines", "upgrade", "head_revision",
           "current_revision", "create_fresh", "lock_desired"]

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.orm import Session

BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10  # PostgreSQL: how long a connection attempt may take before it is an error
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def sqlite_path(url: str) -> str | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return parsed.database


def _prepare_sqlite_file(path: str) -> None:
    """Create the store owner-only (it may hold secret references) before SQLite does."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if not os.path.exists(path):
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def make_engines(url: str) -> tuple[Engine, Engine]:
    """(read engine, write engine). On SQLite the write engine begins IMMEDIATE."""
    path = sqlite_path(url)
    if path is None:
        kwargs_pg: dict[str, Any] = {}
        if make_url(url).get_backend_name() == "postgresql" and make_url(url).get_driver_name() == "psycopg":
            kwargs_pg["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        try:
            engine = create_engine(url, pool_pre_ping=True, **kwargs_pg)
        except ImportError as exc:  # the URL's driver is not installed: say which extra brings it
            from store.errors import StoreError

            hint = " (pip install 'reconcile[postgres]')" if "psycopg" in str(exc) else ""
            raise StoreError(f"cannot open store {redact(url)}: its database driver is missing: {exc}{hint}") from exc
        return engine, engine
    _prepare_sqlite_file(path)
    kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}}

    def build(begin: str) -> Engine:
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

        return engine

    return build("BEGIN"), build("BEGIN IMMEDIATE")


# The key of the transaction-scoped advisory lock that writers of the desired state take
# on PostgreSQL (any 64-bit number no other user of the database picks: "reconcile").
DESIRED_LOCK_KEY = 0x7265636F6E63696C


SCHEMA_LOCK_KEY = DESIRED_LOCK_KEY + 1


def _lock_schema(conn: Connection) -> None:
    """On PostgreSQL, schema changes (``create_fresh``, an Alembic upgrade) take turns: two
    processes opening a new or old store at once would otherwise both create or alter the
    tables (SQLite's write lock does this there). Held until the transaction ends."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})


def lock_desired(s: Session) -> None:
    """Serialize writers of the desired state (apply, delete, suspend, restart requests,
    rollback, notifiers), as SQLite's one write lock does: on PostgreSQL a
    transaction-scoped advisory lock, so two applies creating the same new name take turns
    instead of one failing on the primary key. Nothing to do on SQLite."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": DESIRED_LOCK_KEY})


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _quick_current(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # noqa: BLE001 - no table yet: a new store
        return None


# Alembic's own version table, as its MigrationContext defines it (name, column, the
# primary key's name): tests/store compares it with the one Alembic creates.
_VERSION_TABLE = Table("alembic_version", MetaData(),
                       Column("version_num", String(32), nullable=False),
                       PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))


def create_fresh(engine: Engine) -> bool:
    """Give an empty database the head schema from the models and stamp it at ``HEAD``, in
    one transaction; False (nothing done) when it has any table already."""
    from store.models import Base

    with engine.begin() as conn:
        _lock_schema(conn)
        if inspect(conn).get_table_names():
            return False
        Base.metadata.create_all(conn)
        _VERSION_TABLE.create(conn)
        conn.execute(_VERSION_TABLE.insert().values(version_num=HEAD))
    return True


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Upgrade to head if needed. Returns (before, after)."""
    before = _quick_current(engine)
    if before == HEAD:
        return before, HEAD
    if before is None and create_fresh(engine):
        return None, HEAD
    from alembic import command

    before = current_revision(engine)
    head = head_revision()
    if before != head:
        cfg = alembic_config()
        with engine.begin() as conn:
            _lock_schema(conn)  # a concurrent upgrader's work is then seen, not redone
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    return before, head
