"""store.Store on a real SQLite file in tmp_path, and on PostgreSQL (tests/store/conftest.py:
every test that does not read the SQLite file itself runs on both)."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crd_like import API_VERSION, ServiceSpec, spec_hash
from store import Event, ResourceInput, Status, Store, db

TABLES = ("meta", "resources", "revisions", "statuses", "events", "leases", "alembic_version")


def res(name: str, **spec: Any) -> ResourceInput:
    model = ServiceSpec.model_validate({"image": "demo/web:1", **spec})
    return ResourceInput(name=name, kind="Service", api_version=API_VERSION,
                         spec=model.model_dump(mode="json", exclude_defaults=True), metadata={"name": name},
                         spec_hash=spec_hash(model))


def counts(path: str) -> dict[str, int]:
    con = sqlite3.connect(path)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        con.close()


def file_bytes(path: str) -> dict[str, bytes]:
    return {suffix: Path(path + suffix).read_bytes() for suffix in ("", "-wal") if os.path.exists(path + suffix)}


def mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "s.db")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    st = Store.open(store_url)
    yield st
    st.close()


# -- opening and migrating ------------------------------------------------------

def test_open_migrates_a_new_file_to_head(store: Store, path: str) -> None:
    read_engine, write_engine = db.make_engines(db.to_url(path))
    try:
        assert db.head_revision() is not None
        assert db.current_revision(read_engine) == db.head_revision()
    finally:
        read_engine.dispose()
        write_engine.dispose()
    assert counts(path)["alembic_version"] == 1
    assert store.integrity_check() == []


def test_an_older_store_is_upgraded_on_open_keeping_its_rows(path: str) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(db.alembic_config())
    first = [r.revision for r in script.walk_revisions()][-1]  # the base migration
    if first == db.head_revision():
        pytest.skip("only one migration so far")
    read_engine, write_engine = db.make_engines(db.to_url(path))
    cfg = db.alembic_config()
    with write_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, first)
    assert db.current_revision(read_engine) == first
    con = sqlite3.connect(path)
    con.execute("INSERT INTO events (ts, service, container_id, type, reason, message, generation, actor) "
                "VALUES (5.0, 'web', '', 'Died', 'old row', '', 1, 'controller')")
    con.commit()
    con.close()
    read_engine.dispose()
    write_engine.dispose()

    st = Store.open(path)
    try:
        read_engine, write_engine = db.make_engines(db.to_url(path))
        assert db.current_revision(read_engine) == db.head_revision()
        read_engine.dispose()
        write_engine.dispose()
        assert [(e.service, e.type, e.reason) for e in st.history()] == [("web", "Died", "old row")]
        st.record(statuses=[Status("web", state="Running")])
        assert st.status("web") == Status("web", state="Running")
    finally:
        st.close()


def test_reopening_keeps_data_and_instance_id(path: str) -> None:
    st = Store.open(path)
    st.apply([res("web")], source="f", actor="t", now=1.0)
    instance = st.instance_id
    st.close()
    again = Store.open(path)
    try:
        assert again.instance_id == instance
        assert set(again.desired()) == {"web"}
        assert len(again.history()) == 1
    finally:
        again.close()


def test_db_file_is_owner_only(store: Store, path: str, tmp_path: Path) -> None:
    store.apply([res("web")], source="f", actor="t", now=1.0)
    assert mode(path) == 0o600
    for extra in ("-wal", "-shm"):  # SQLite gives its side files the database's mode
        if os.path.exists(path + extra):
            assert mode(path + extra) == 0o600
    nested = tmp_path / "new" / "dir" / "s.db"
    other = Store.open(str(nested))
    try:
        assert mode(nested) == 0o600
        assert mode(nested.parent) == 0o700
    finally:
        other.close()


def test_wal_journal_mode_is_on(store: Store, path: str) -> None:
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        con.close()


# -- desired state ------------------------------------------------------------

def test_apply_creates_generation_1(store: Store) -> None:
    changes = store.apply([res("web", env={"A": "1"})], source="f", actor="alice", now=10.0)
    assert [(c.name, c.change, c.generation) for c in changes] == [("web", "created", 1)]
    rec = store.get("web")
    assert rec is not None
    assert (rec.generation, rec.kind, rec.source, rec.suspended) == (1, "Service", "f", False)
    assert rec.spec == {"image": "demo/web:1", "env": {"A": "1"}}
    assert rec.spec_hash == res("web", env={"A": "1"}).spec_hash
    assert [(e.type, e.service, e.generation, e.actor, e.ts) for e in store.history()] == [
        ("Applied", "web", 1, "alice", 10.0)]
    assert [r.generation for r in store.revisions("web")] == [1]


def test_unchanged_reapply_keeps_generation_and_writes_no_event(store: Store, path: str) -> None:
    store.apply([res("web")], source="f", actor="t", now=1.0)
    before = counts(path)
    changes = store.apply([res("web")], source="f", actor="t", now=2.0)
    assert [(c.change, c.generation) for c in changes] == [("unchanged", 1)]
    assert store.get("web").generation == 1  # type: ignore[union-attr]
    assert [e.type for e in store.history()] == ["Applied"]
    assert counts(path) == before


def test_changed_spec_bumps_generation_and_keeps_both_revisions(store: Store) -> None:
    store.apply([res("web")], source="f", actor="t", now=1.0)
    changes = store.apply([res("web", image="demo/web:2")], source="f", actor="t", now=2.0)
    (ch,) = changes
    assert (ch.change, ch.generation) == ("updated", 2)
    assert ch.old_spec == {"image": "demo/web:1"} and ch.new_spec == {"image": "demo/web:2"}
    assert store.get("web").generation == 2  # type: ignore[union-attr]
    revs = store.revisions("web")
    assert [(r.generation, r.spec["image"], r.applied_at) for r in revs] == [(1, "demo/web:1", 1.0),
                                                                             (2, "demo/web:2", 2.0)]
    assert store.revision("web", 1).spec == {"image": "demo/web:1"}  # type: ignore[union-attr]
    assert store.revision("web", 3) is None
    assert [(e.type, e.generation, e.reason) for e in store.history()] == [
        ("Applied", 1, "new resource"), ("Applied", 2, "spec changed")]
    assert store.integrity_check() == []


def test_prune_removes_only_same_source_records_not_named(store: Store) -> None:
    store.apply([res("a"), res("b"), res("c")], source="one.yaml", actor="t", now=1.0)
    store.apply([res("x")], source="two.yaml", actor="t", now=1.0)
    changes = store.apply([res("a"), res("c", image="demo/web:2")], source="one.yaml", actor="t", now=2.0,
                          prune=True)
    assert sorted((c.name, c.change) for c in changes) == [("a", "unchanged"), ("b", "pruned"), ("c", "updated")]
    assert set(store.desired()) == {"a", "c", "x"}
    deleted = store.history(types=["Deleted"])
    assert [(e.service, e.ts) for e in deleted] == [("b", 2.0)]
    assert deleted[0].reason.startswith("pruned")


def test_without_prune_nothing_is_removed(store: Store) -> None:
    store.apply([res("a"), res("b")], source="one.yaml", actor="t", now=1.0)
    store.apply([res("a")], source="one.yaml", actor="t", now=2.0)
    assert set(store.desired()) == {"a", "b"}


@pytest.mark.parametrize(
    ("batch", "prune"),
    [
        ([res("new")], False),  # create
        ([res("web", image="demo/web:9")], False),  # update
        ([], True),  # prune
        ([res("web", image="demo/web:9"), res("new")], True),
    ],
)
def test_dry_run_writes_nothing(store: Store, path: str, batch: list[ResourceInput], prune: bool) -> None:
    store.apply([res("web")], source="f", actor="t", now=1.0)
    rows, desired, history = counts(path), store.desired(), store.history()
    raw = file_bytes(path)
    changes = store.apply(batch, source="f", actor="t", now=2.0, prune=prune, dry_run=True)
    assert changes and all(c.change != "unchanged" for c in changes)  # it did report what it would do
    assert file_bytes(path) == raw
    assert counts(path) == rows
    assert store.desired() == desired
    assert store.history() == history


def test_dry_run_on_a_fresh_store_writes_nothing(store: Store, path: str) -> None:
    rows = counts(path)
    store.apply([res("web")], source="f", actor="t", now=1.0, dry_run=True)
    assert counts(path) == rows


def test_delete_records_a_deleted_event_and_generations_keep_increasing(store: Store) -> None:
    store.apply([res("web")], source="f", actor="t", now=1.0)
    store.apply([res("web", image="demo/web:2")], source="f", actor="t", now=2.0)
    gone = store.delete("web", actor="bob", now=3.0)
    assert gone is not None and gone.generation == 2
    assert store.get("web") is None
    assert store.delete("web", actor="bob", now=4.0) is None
    (ev,) = store.history(types=["Deleted"])
    assert (ev.service, ev.actor, ev.ts, ev.reason, ev.generation) == ("web", "bob", 3.0, "deleted by user", 2)
    (ch,) = store.apply([res("web")], source="f", actor="t", now=5.0)
    assert (ch.change, ch.generation) == ("created", 3)  # a recreated record never reuses a generation
    assert store.integrity_check() == []


def test_suspend_and_resume(store: Store) -> None:
    store.apply([res("web")], source="f", actor="t", now=1.0)
    assert store.set_suspended("web", True, actor="t", now=2.0, reason="maintenance")
    assert store.get("web").suspended is True  # type: ignore[union-attr]
    assert store.set_suspended("web", False, actor="t", now=3.0, reason="done")
    assert store.get("web").suspended is False  # type: ignore[union-attr]
    assert not store.set_suspended("nope", True, actor="t", now=4.0, reason="x")
    assert [e.type for e in store.history(types=["Suspended", "Resumed"])] == ["Suspended", "Resumed"]


# -- history -------------------------------------------------------------------

EVENTS = [
    Event(ts=1.0, service="a", type="Applied"),
    Event(ts=2.0, service="b", type="Applied"),
    Event(ts=3.0, service="a", type="Started"),
    Event(ts=4.0, service="a", type="Died", reason="exit 1"),
    Event(ts=5.0, service="b", type="Died"),
    Event(ts=6.0, service="a", type="Started"),
    Event(ts=6.0, service="a", type="HealthChanged"),  # same ts: insertion order breaks the tie
    Event(ts=7.0, service="c", type="Created"),
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, [0, 1, 2, 3, 4, 5, 6, 7]),
        ({"service": "a"}, [0, 2, 3, 5, 6]),
        ({"service": "zzz"}, []),
        ({"since": 4.0}, [3, 4, 5, 6, 7]),
        ({"since": 100.0}, []),
        ({"types": ["Died"]}, [3, 4]),
        ({"types": ["Died", "Created"]}, [3, 4, 7]),
        ({"limit": 3}, [5, 6, 7]),  # the newest three, oldest first
        ({"limit": 1}, [7]),
        ({"limit": 100}, [0, 1, 2, 3, 4, 5, 6, 7]),
        ({"service": "a", "limit": 2}, [5, 6]),
        ({"service": "a", "since": 3.0, "types": ["Started", "Died"]}, [2, 3, 5]),
        ({"service": "a", "since": 3.0, "types": ["Started", "Died"], "limit": 2}, [3, 5]),
    ],
)
def test_history_filters(store: Store, query: dict[str, Any], expected: list[int]) -> None:
    store.record(events=EVENTS)
    got = store.history(**query)
    assert [(e.ts, e.service, e.type) for e in got] == [(EVENTS[i].ts, EVENTS[i].service, EVENTS[i].type)
                                                         for i in expected]
    assert all(e.id is not None for e in got)
    assert [e.id for e in got] == sorted(e.id for e in got)  # type: ignore[type-var]


# -- status and record() ---------------------------------------------------------

def test_record_writes_events_and_statuses_together(store: Store) -> None:
    st = Status("web", observed_generation=2, state="Running", health="healthy", container_id="c" * 64,
                restart_count=3, message="ok", last_transition_at=5.0, failures=1, next_attempt_at=9.0,
                restart_times=[1.0, 2.5], last_started_at=4.0, updated_at=6.0)
    store.record(events=[Event(ts=6.0, service="web", type="Started", container_id="c" * 64, generation=2)],
                 statuses=[st, Status("api")])
    assert store.status("web") == st
    assert store.statuses() == {"web": st, "api": Status("api")}
    (ev,) = store.history()
    assert (ev.type, ev.container_id, ev.generation, ev.actor) == ("Started", "c" * 64, 2, "controller")

    newer = Status("web", state="CrashLoopBackOff", failures=2, restart_times=[1.0, 2.5, 7.0])
    store.record(statuses=[newer], drop_statuses=["api"])
    assert store.statuses() == {"web": newer}


def test_record_is_one_transaction(store: Store, path: str) -> None:
    rows = counts(path)
    bad = Event(ts=1.0, service="web", type=None)  # type: ignore[arg-type]  # NOT NULL violation
    with pytest.raises(Exception):
        store.record(events=[Event(ts=1.0, service="web", type="Started"), bad], statuses=[Status("web")])
    assert store.status("web") is None
    assert store.history() == []
    assert counts(path) == rows


def test_record_with_nothing_writes_nothing(store: Store, path: str) -> None:
    raw = file_bytes(path)
    store.record()
    assert file_bytes(path) == raw


# -- lease ---------------------------------------------------------------------

def test_lease_lifecycle(store: Store) -> None:
    assert store.lease(now=0.0) is None
    assert store.acquire_lease("ctl-1", ttl=10.0, now=100.0)
    assert store.lease(now=101.0) == ("ctl-1", 110.0)
    assert store.acquire_lease("ctl-1", ttl=10.0, now=105.0)  # renew
    assert store.lease(now=106.0) == ("ctl-1", 115.0)
    assert not store.acquire_lease("ctl-2", ttl=10.0, now=110.0)  # held by someone else
    assert not store.acquire_lease("ctl-2", ttl=10.0, now=115.0)  # not expired until after expires_at
    assert store.lease(now=115.0) == ("ctl-1", 115.0)
    assert store.lease(now=115.5) is None  # expired
    assert store.acquire_lease("ctl-2", ttl=10.0, now=115.5)  # taken over
    assert store.lease(now=116.0) == ("ctl-2", 125.5)
    assert not store.acquire_lease("ctl-1", ttl=10.0, now=116.0)  # the old holder lost it
    store.release_lease("ctl-1")  # not the holder: no effect
    assert store.lease(now=116.0) == ("ctl-2", 125.5)
    store.release_lease("ctl-2")
    assert store.lease(now=116.0) is None
    assert store.acquire_lease("ctl-1", ttl=5.0, now=117.0)  # free again right away
    assert store.lease(now=117.0) == ("ctl-1", 122.0)


def test_lease_is_shared_between_two_stores_on_one_file(path: str) -> None:
    one, two = Store.open(path), Store.open(path)
    try:
        assert one.acquire_lease("one", ttl=30.0, now=0.0)
        assert not two.acquire_lease("two", ttl=30.0, now=1.0)
        assert two.lease(now=1.0) == ("one", 30.0)
    finally:
        one.close()
        two.close()


# -- maintenance -----------------------------------------------------------------

def test_integrity_check_passes_and_catches_a_missing_revision(store: Store, path: str) -> None:
    store.apply([res("web"), res("api")], source="f", actor="t", now=1.0)
    assert store.integrity_check() == []
    con = sqlite3.connect(path)
    con.execute("DELETE FROM revisions WHERE name = 'web'")
    con.commit()
    con.close()
    assert store.integrity_check() == ["web: no revision for generation 1"]


def test_backup_is_a_copy_that_opens_with_the_same_rows(store: Store, path: str, tmp_path: Path) -> None:
    store.apply([res("web"), res("api", env={"A": "1"})], source="f", actor="t", now=1.0)
    store.apply([res("web", image="demo/web:2"), res("api", env={"A": "1"})], source="f", actor="t", now=2.0)
    store.record(events=EVENTS, statuses=[Status("web", state="Running", restart_times=[1.5])])
    store.acquire_lease("ctl", ttl=10.0, now=3.0)
    copy = str(tmp_path / "backup.db")
    store.backup(copy)
    assert mode(copy) == 0o600
    assert counts(copy) == counts(path)

    store.apply([res("late")], source="f", actor="t", now=9.0)  # later writes do not reach the copy
    restored = Store.open(copy)
    try:
        read_engine, write_engine = db.make_engines(db.to_url(copy))
        assert db.current_revision(read_engine) == db.head_revision()
        read_engine.dispose()
        write_engine.dispose()
        assert restored.integrity_check() == []
        assert restored.instance_id == store.instance_id
        assert set(restored.desired()) == {"web", "api"}
        assert restored.desired()["web"] == store.desired()["web"]
        assert restored.revisions("web") == store.revisions("web")
        assert restored.statuses() == store.statuses()
        assert restored.history() == store.history()[:-1]  # all but the later "late" Applied
        assert restored.lease(now=4.0) == ("ctl", 13.0)
    finally:
        restored.close()


def test_head_constant_matches_alembic_head() -> None:
    # store.db.HEAD lets the CLI skip importing Alembic; it must name the newest migration
    from store import db as store_db

    assert store_db.HEAD == store_db.head_revision()


@pytest.mark.parametrize("events, expected", [
    # (service, ts) in insertion order -> the index (in that order) of each service's newest
    ([("a", 1.0), ("a", 3.0), ("a", 2.0)], {"a": 1}),  # newest by ts, not by insertion
    ([("a", 5.0), ("a", 5.0)], {"a": 1}),  # a tie on ts: the later row
    ([("a", 1.0), ("b", 2.0), ("", 9.0)], {"a": 0, "b": 1}),  # controller-wide rows are nobody's
    ([("b", 1.0)], {"b": 0}),  # a resource without events has no entry
])
def test_last_events_is_the_newest_per_service(store: Store, events: list[tuple[str, float]],
                                                expected: dict[str, int]) -> None:
    store.apply([res("a"), res("b"), res("c")], source="f", actor="t", now=0.5)
    store.record([Event(ts=ts, service=svc, type="T", reason=f"row {i}") for i, (svc, ts) in enumerate(events)])
    got = store.last_events(["a", "b", "c", "not-stored"])
    want = {svc: f"row {i}" for svc, i in expected.items()}
    assert {svc: ev.reason for svc, ev in got.items() if ev.type == "T"} == want
    assert set(got) == {"a", "b", "c"}  # every stored resource has its Applied row at least


def test_last_events_matches_per_service_lookups_beyond_one_chunk(store: Store) -> None:
    names = [f"s{i:03d}" for i in range(620)]  # more than one statement's 500 names
    store.apply([res(n) for n in names], source="f", actor="t", now=1.0)
    store.record([Event(ts=2.0 + (i % 7), service=names[i % 620], type="T", reason=str(i)) for i in range(3000)])
    got = store.last_events(names)
    for n in names[::37]:
        newest = store.history(n, limit=1)
        assert got[n] == newest[0]


def test_status_reasons_round_trip_and_events_follow(store: Store) -> None:
    """Migration 0005: the reason code, the unmet dependencies and the generation they were
    derived for come back as written; events_after() returns only newer rows, in order."""
    from store import Event, Status

    st = Status(name="b", state="Waiting", reason="WaitingForDependency", waiting_for={"j": "completed"},
                derived_generation=3)
    store.record([Event(ts=1.0, service="b", type="Applied")], [st])
    got = store.status("b")
    assert got is not None
    assert (got.reason, got.waiting_for, got.derived_generation) == ("WaitingForDependency", {"j": "completed"}, 3)
    first = store.last_event_id()
    store.record([Event(ts=2.0, service="b", type="Started"), Event(ts=3.0, service="c", type="Died")])
    assert [e.type for e in store.events_after(first)] == ["Started", "Died"]
    assert [e.type for e in store.events_after(first, service="c")] == ["Died"]
    assert [e.type for e in store.events_after(first, types=["Started"])] == ["Started"]
    assert store.events_after(store.last_event_id()) == []
