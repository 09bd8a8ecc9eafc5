"""store.reader (the read verbs' stdlib-sqlite3 path) against store.Store on the same file:
every read method must give the same answer; open_reader hands the reader out only for
a plain SQLite file at head and the full Store otherwise."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crd_like import API_VERSION, ServiceSpec, spec_hash
from store import Event, ResourceInput, Status, Store, StoreError
from store.location import HEAD, plain_sqlite_file
from store.reader import SqliteReader, open_reader


def res(name: str, **spec: Any) -> ResourceInput:
    model = ServiceSpec.model_validate({"image": "demo/web:1", **spec})
    return ResourceInput(name=name, kind="Service", api_version=API_VERSION,
                         spec=model.model_dump(mode="json", exclude_defaults=True),
                         metadata={"name": name, "labels": {"tier": name}}, spec_hash=spec_hash(model))


EVENTS = [
    Event(ts=1.0, service="a", type="Applied"),
    Event(ts=2.0, service="b", type="Applied", container_id="c" * 64, generation=2, actor="cli"),
    Event(ts=3.0, service="a", type="Started", reason="r", message="m\nsecond line"),
    Event(ts=4.0, service="a", type="Died", reason="exit 1"),
    Event(ts=6.0, service="a", type="Started"),
    Event(ts=6.0, service="a", type="HealthChanged"),  # same ts: the id breaks the tie
    Event(ts=7.0, service="", type="ControllerStarted"),
    Event(ts=8.0, service="gone", type="Deleted"),  # no stored resource
]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Store, SqliteReader]]:
    path = str(tmp_path / "s.db")
    store = Store.open(path)
    store.apply([res("a"), res("b", replicas=2), res("c", ports=["127.0.0.1:8080:80"])], source="f",
                actor="cli", now=100.0)
    store.apply([res("a", command=["sleep", "1"])], source="f", actor="cli", now=110.0)  # generation 2
    store.set_suspended("c", True, actor="cli", now=120.0, reason="maintenance")
    store.record(EVENTS, [Status(name="a", state="Running", health="healthy", container_id="f" * 64,
                                 restart_count=3, restart_times=[1.0, 2.5], waiting_for={"db": "healthy"},
                                 last_transition_at=5.0, next_attempt_at=9.5, reason="X"),
                          Status(name="b")])
    reader = SqliteReader(store.url, path)
    yield store, reader
    reader.close()
    store.close()


@pytest.mark.parametrize(
    ("method", "args", "kwargs"),
    [
        ("desired", (), {}),
        ("get", ("a",), {}),
        ("get", ("c",), {}),
        ("get", ("nope",), {}),
        ("statuses", (), {}),
        ("status", ("a",), {}),
        ("status", ("nope",), {}),
        ("revisions", ("a",), {}),
        ("revisions", ("nope",), {}),
        ("history", (), {}),
        ("history", ("a",), {}),
        ("history", ("a",), {"since": 3.0}),
        ("history", (None,), {"types": ["Died", "Applied"]}),
        ("history", ("a",), {"since": 3.0, "types": ["Started", "Died"], "limit": 2}),
        ("history", (), {"limit": 3}),
        ("history", ("a",), {"since": 100.0}),
        ("last_events", (["a", "b", "c", "gone", "nope"],), {}),
        ("last_events", ([],), {}),
        ("containers_with_events", (["c" * 64, "f" * 64, "x"], ("Applied", "Created")), {}),
        ("containers_with_events", ([], ("Created",)), {}),
        ("lease", (), {"now": 0.0}),
    ],
)
def test_the_reader_answers_as_the_store_does(pair: tuple[Store, SqliteReader], method: str,
                                              args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    store, reader = pair
    expected = getattr(store, method)(*args, **kwargs)
    got = getattr(reader, method)(*args, **kwargs)
    assert got == expected
    assert repr(got) == repr(expected)  # the same types too (bool, not 1; float, not int)


def test_last_events_in_more_than_one_chunk(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = Store.open(path)
    names = [f"s{i:04d}" for i in range(1203)]
    store.apply([res(n) for n in names], source="f", actor="cli", now=1.0)
    store.record([Event(ts=2.0 + i % 7, service=n, type="Started") for i, n in enumerate(names)])
    reader = SqliteReader(store.url, path)
    try:
        got = reader.last_events(names)
        assert len(got) == len(names)
        assert got == store.last_events(names)
    finally:
        reader.close()
        store.close()


def test_open_reader_gives_the_reader_for_a_file_at_head(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    Store.open(path).close()
    r = open_reader(path)
    try:
        assert isinstance(r, SqliteReader)
        assert r.revision_num() == HEAD
    finally:
        r.close()


def test_open_reader_creates_a_missing_store_as_store_open_does(tmp_path: Path) -> None:
    path = tmp_path / "new" / "s.db"
    r = open_reader(str(path))
    try:
        assert isinstance(r, Store)  # the full store: it creates and migrates
        assert path.exists()
        con = sqlite3.connect(path)
        assert con.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)
        con.close()
    finally:
        r.close()


def test_open_reader_leaves_an_old_store_to_the_migrating_store(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    Store.open(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE alembic_version SET version_num = '0001x'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="0001x"):  # Store.open tried to migrate it, in its own words
        open_reader(path)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:////var/lib/reconcile/reconcile.db", "/var/lib/reconcile/reconcile.db"),
        ("sqlite:///relative.db", None),
        ("sqlite:///:memory:", None),
        ("sqlite:////tmp/x.db?timeout=5", None),
        ("sqlite:////tmp/a%20b.db", None),
        ("sqlite+pysqlite:////tmp/x.db", None),
        ("postgresql://u@h/db", None),
    ],
)
def test_plain_sqlite_file(url: str, path: str | None) -> None:
    assert plain_sqlite_file(url) == path


def test_instance_id_and_lease_as_the_store_has_them(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = Store.open(path)
    reader = SqliteReader(store.url, path)
    try:
        assert reader.instance_id() is None  # not fixed before the first use
        assert reader.instance_id() is None
        fixed = store.instance_id
        assert reader.instance_id() == fixed
        assert store.acquire_lease("run:host:1", ttl=30.0, now=100.0)
        for now in (100.0, 129.9, 130.0, 130.1):
            assert reader.lease(now=now) == store.lease(now=now)
        assert reader.lease(now=100.0) == ("run:host:1", 130.0)
        assert reader.lease(now=131.0) is None
    finally:
        reader.close()
        store.close()


def test_containers_with_events_in_more_than_one_chunk(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = Store.open(path)
    ids = [f"{i:064x}" for i in range(1200)]
    store.record([Event(ts=float(i), service="a", type="Created" if i % 3 else "Died", container_id=cid)
                  for i, cid in enumerate(ids)])
    reader = SqliteReader(store.url, path)
    try:
        got = reader.containers_with_events(ids, ("Created", "Recreated"))
        assert got == store.containers_with_events(ids, ("Created", "Recreated"))
        assert len(got) == 800
    finally:
        reader.close()
        store.close()
