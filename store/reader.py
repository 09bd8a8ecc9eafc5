"""The store's read path for the CLI's read verbs: the same answers as ``Store``'s read
methods, from a SQLite file through the standard library's ``sqlite3``.

Why: SQLAlchemy's import alone (about 0.25 s quiet, more under load) is more than a
``status``, ``get``, ``describe`` or ``history`` may take in all (docs/PERFORMANCE.md,
section 7), and those verbs read a few rows. ``open_reader`` hands out this reader only
for a plain SQLite file that exists and is at the schema head; any other store (another
database such as PostgreSQL, a URL with options, a store to create or to migrate) gets the
full ``Store``, which has the same read methods. Writes always go through ``Store``.

The SQL here is the same portable SQL ``store.repository`` issues (the same statements,
orderings and the same correlated newest-event lookup), written out by hand;
tests/store/test_reader.py runs every method on both paths over the same store and
requires equal results. Does not import SQLAlchemy, ``controller`` or ``docker``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from store.location import HEAD, default_url, plain_sqlite_file, to_url
from store.records import Desired, Event, Revision, Status

if TYPE_CHECKING:
    from store.repository import Store

BUSY_TIMEOUT_S = 30.0
_CHUNK = 500  # names per statement, as store.repository
_EVENT_COLS = "id, ts, service, container_id, type, reason, message, generation, actor"


class Reader(Protocol):
    """The read methods the read verbs use; ``Store`` and ``SqliteReader`` both have them."""

    url: str

    def desired(self) -> dict[str, Desired]: ...
    def get(self, name: str) -> Desired | None: ...
    def statuses(self) -> dict[str, Status]: ...
    def status(self, name: str) -> Status | None: ...
    def revisions(self, name: str) -> list[Revision]: ...
    def history(self, service: str | None = None, *, since: float | None = None,
                types: list[str] | None = None, limit: int | None = None) -> list[Event]: ...
    def last_events(self, names: Iterable[str]) -> dict[str, Event]: ...
    def placements(self) -> list[tuple[str, int, str, str]]: ...
    def close(self) -> None: ...


class _Row:
    """A result row with attribute access, as ``Status.from_row`` reads an ORM row."""

    def __init__(self, data: dict[str, Any]):
        self.__dict__.update(data)


def _desired(r: sqlite3.Row) -> Desired:
    return Desired(name=r["name"], kind=r["kind"], api_version=r["api_version"], spec=json.loads(r["spec"]),
                   metadata=json.loads(r["metadata_json"]), spec_hash=r["spec_hash"], generation=r["generation"],
                   source=r["source"], suspended=bool(r["suspended"]), updated_at=r["updated_at"])


def _event(r: sqlite3.Row) -> Event:
    return Event(id=r["id"], ts=r["ts"], service=r["service"], container_id=r["container_id"], type=r["type"],
                 reason=r["reason"], message=r["message"], generation=r["generation"], actor=r["actor"])


def _status(r: sqlite3.Row) -> Status:
    return Status.from_row(_Row(dict(zip(r.keys(), r, strict=True))))


class SqliteReader:
    """Read-only access to a SQLite store file that is at the schema head."""

    def __init__(self, url: str, path: str):
        self.url = url
        self._con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        self._con.row_factory = sqlite3.Row

    def close(self) -> None:
        self._con.close()

    def _all(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return self._con.execute(sql, tuple(params)).fetchall()

    def revision_num(self) -> str | None:
        try:
            row = self._con.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:  # no table: not a store (yet)
            return None
        return None if row is None else str(row[0])

    # -- desired state -----------------------------------------------------
    def desired(self) -> dict[str, Desired]:
        return {r["name"]: _desired(r) for r in self._all("SELECT * FROM resources")}

    def get(self, name: str) -> Desired | None:
        rows = self._all("SELECT * FROM resources WHERE name = ?", (name,))
        return _desired(rows[0]) if rows else None

    def revisions(self, name: str) -> list[Revision]:
        rows = self._all("SELECT name, generation, kind, spec, spec_hash, applied_at FROM revisions "
                         "WHERE name = ? ORDER BY generation", (name,))
        return [Revision(r["name"], r["generation"], r["kind"], json.loads(r["spec"]), r["spec_hash"],
                         r["applied_at"]) for r in rows]

    # -- status and audit --------------------------------------------------
    def statuses(self) -> dict[str, Status]:
        return {r["name"]: _status(r) for r in self._all("SELECT * FROM statuses")}

    def status(self, name: str) -> Status | None:
        rows = self._all("SELECT * FROM statuses WHERE name = ?", (name,))
        return _status(rows[0]) if rows else None

    def history(self, service: str | None = None, *, since: float | None = None,
                types: list[str] | None = None, limit: int | None = None) -> list[Event]:
        """Events oldest first; with ``limit`` the newest ``limit`` of them (as ``Store.history``)."""
        where: list[str] = []
        params: list[Any] = []
        if service:
            where.append("service = ?")
            params.append(service)
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if types:
            where.append(f"type IN ({','.join('?' * len(types))})")
            params.extend(types)
        sql = f"SELECT {_EVENT_COLS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts DESC, id DESC"
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        rows = [_event(r) for r in self._all(sql, params)]
        rows.reverse()
        return rows

    def last_events(self, names: Iterable[str]) -> dict[str, Event]:
        """The newest event (by ts, then id) of each named stored resource: the statement
        ``Store.last_events`` issues (a correlated ``ORDER BY ts DESC, id DESC LIMIT 1``)."""
        wanted = sorted(set(names))
        out: dict[str, Event] = {}
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i : i + _CHUNK]
            sql = (f"SELECT {_EVENT_COLS} FROM events WHERE id IN (SELECT (SELECT newest.id FROM events AS newest "
                   "WHERE newest.service = resources.name ORDER BY newest.ts DESC, newest.id DESC LIMIT 1) "
                   f"FROM resources WHERE resources.name IN ({','.join('?' * len(chunk))}))")
            for r in self._all(sql, chunk):
                out[r["service"]] = _event(r)
        return out


    def placements(self) -> list[tuple[str, int, str, str]]:
        """(service, replica, node, reason) of every assignment (node '' = cannot be placed)."""
        return [(str(r["service"]), int(r["replica"]), str(r["node"]), str(r["reason"])) for r in self._all(
            "SELECT service, replica, node, reason FROM assignments ORDER BY service, replica")]

    # -- what a no-op apply reads (controller.unchanged) ----------------------
    def instance_id(self) -> str | None:
        """The store's instance id (``Store.instance_id``), or None before it is fixed."""
        rows = self._all("SELECT value FROM meta WHERE key = ?", ("instance_id",))
        return str(rows[0]["value"]) if rows else None

    def lease(self, *, now: float) -> tuple[str, float] | None:
        """(holder, expires_at) of a live lease, or None (as ``Store.lease``)."""
        rows = self._all("SELECT holder, expires_at FROM leases WHERE name = ?", ("controller",))
        if not rows or rows[0]["expires_at"] < now:
            return None
        return str(rows[0]["holder"]), float(rows[0]["expires_at"])

    def containers_with_events(self, container_ids: list[str], types: tuple[str, ...]) -> set[str]:
        """Which of these containers have at least one event of these types (as the store)."""
        out: set[str] = set()
        for i in range(0, len(container_ids), _CHUNK):
            chunk = container_ids[i : i + _CHUNK]
            sql = (f"SELECT container_id FROM events WHERE container_id IN ({','.join('?' * len(chunk))}) "
                   f"AND type IN ({','.join('?' * len(types))})")
            out.update(str(r[0]) for r in self._all(sql, [*chunk, *types]))
        return out


def open_reader(location: str | None) -> SqliteReader | Store:
    """A ``SqliteReader`` when ``location`` (``--db``; None: the default) is a plain SQLite
    file that exists and is at the schema head; else ``Store.open(location)`` (which creates
    or migrates the store as every verb does)."""
    url = to_url(location) if location else default_url()
    path = plain_sqlite_file(url)
    if path is not None and os.path.isfile(path):
        reader = None
        try:
            reader = SqliteReader(url, path)
            if reader.revision_num() == HEAD:
                return reader
        except sqlite3.Error:
            pass  # the full store says what is wrong, in its own words
        if reader is not None:
            reader.close()
    from store.repository import Store

    return Store.open(location)
