"""PostgreSQL as the store: the migrations from empty and ``create_fresh`` give the same
schema, an old store upgrades keeping its rows, the lease and the desired-state counter
are right under concurrent writers, backup/restore with pg_dump/pg_restore, and an
unreachable server is one clear line with the password redacted (tests/pg.py gives each
test its own schema or database on the test server)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text

from crd_like import API_VERSION, ServiceSpec, spec_hash
from store import Event, ResourceInput, Status, Store, StoreError, db
from store.location import HEAD
from tests import pg

REPO = Path(__file__).resolve().parents[2]
DOWN = "postgresql+psycopg://reconcile:s3cr3t-pw@127.0.0.1:1/reconcile"  # nothing listens on port 1


def res(name: str, **spec: Any) -> ResourceInput:
    model = ServiceSpec.model_validate({"image": "demo/web:1", **spec})
    return ResourceInput(name=name, kind="Service", api_version=API_VERSION,
                         spec=model.model_dump(mode="json", exclude_defaults=True), metadata={"name": name},
                         spec_hash=spec_hash(model))


@pytest.fixture
def url() -> Iterator[str]:
    with pg.fresh_schema() as u:
        yield u


def alembic_upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    _read, write = db.make_engines(url)
    cfg = db.alembic_config()
    with write.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    write.dispose()


def schema(url: str) -> dict[str, Any]:
    """Everything PostgreSQL's catalog (through SQLAlchemy's inspector) says of the tables
    of the URL's schema: columns in order with type, nullability and server default,
    primary keys, indexes, foreign keys; and the version rows."""
    engine: Engine = db.make_engines(url)[0]
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            out: dict[str, Any] = {}
            for t in sorted(insp.get_table_names()):
                out[t] = {
                    "columns": [(c["name"], str(c["type"]), c["nullable"], c["default"]) for c in insp.get_columns(t)],
                    "pk": insp.get_pk_constraint(t),
                    "indexes": sorted((i["name"], tuple(i["column_names"]), i["unique"]) for i in insp.get_indexes(t)),
                    "foreign_keys": insp.get_foreign_keys(t),
                }
            out["alembic_version rows"] = conn.execute(text("SELECT version_num FROM alembic_version")).fetchall()
            return out
    finally:
        engine.dispose()


def test_migrations_from_empty_and_create_fresh_give_the_same_schema() -> None:
    with pg.fresh_schema() as migrated, pg.fresh_schema() as fresh:
        alembic_upgrade(migrated)
        Store.open(fresh).close()  # the shortcut: an empty schema
        want, got = schema(migrated), schema(fresh)
    assert set(got) == set(want)
    for table in want:
        assert got[table] == want[table], table
    assert got["alembic_version rows"] == [(HEAD,)]
    assert {"events", "statuses", "leases", "notify_outbox", "notifiers"} <= set(want)
    # the ids the outbox cursors point at come from a sequence (never reused)
    assert "nextval" in str({c[0]: c[3] for c in want["notify_outbox"]["columns"]}["id"])


def test_an_old_store_upgrades_through_every_migration_keeping_its_rows(url: str) -> None:
    alembic_upgrade(url, "0001")
    engine = db.make_engines(url)[0]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO events (ts, service, container_id, type, reason, message, generation, actor) "
                          "VALUES (5.0, 'web', '', 'Died', 'old row', '', 1, 'controller')"))
        conn.execute(text("INSERT INTO statuses (name, observed_generation, state, health, container_id, "
                          "restart_count, message, last_transition_at, failures, next_attempt_at, restart_times, "
                          "last_started_at, updated_at) VALUES ('web', 1, 'Running', '', 'c1', 0, '', 1.0, 0, "
                          "0.0, '[]', 1.0, 1.0)"))
    engine.dispose()
    st = Store.open(url)
    try:
        assert st.schema_revision() == HEAD
        assert [(e.service, e.type, e.reason) for e in st.history()] == [("web", "Died", "old row")]
        old = st.status("web")
        assert old is not None and old.state == "Running" and old.reason == "" and old.waiting_for == {}
        st.record(statuses=[Status("web", state="Running")])
        assert st.status("web") == Status("web", state="Running")
        assert st.integrity_check() == []
    finally:
        st.close()


def _race(n: int, fn: Callable[[int], bool]) -> list[bool]:
    """``fn(i)`` in n threads released together; their answers."""
    barrier = threading.Barrier(n)
    out: list[bool] = [False] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            out[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return out


def test_the_lease_has_one_holder_when_contenders_race(url: str) -> None:
    """Separate stores (separate connections) race for a free lease, then for an expired
    one, then to take over a dead holder's: each time exactly one wins, and the row names it."""
    contenders = [Store.open(url) for _ in range(4)]
    try:
        for rnd, now in enumerate((100.0, 200.0, 300.0)):  # 100: no row; 200, 300: expired rows
            won = _race(4, lambda i, now=now, rnd=rnd: contenders[i].acquire_lease(f"c{i}-{rnd}", ttl=10.0, now=now))
            assert won.count(True) == 1, (rnd, won)
            winner = won.index(True)
            assert contenders[0].lease(now=now) == (f"c{winner}-{rnd}", now + 10.0)
            # the holder renews; nobody else gets it while it is live
            assert _race(4, lambda i, now=now, rnd=rnd: contenders[i].acquire_lease(
                f"c{i}-{rnd}", ttl=10.0, now=now + 5)) == [i == winner for i in range(4)]
        dead = contenders[0].lease(now=305.0)
        assert dead is not None
        won = _race(4, lambda i: contenders[i].take_over_lease(f"t{i}", dead_holder=dead[0], ttl=10.0, now=306.0))
        assert won.count(True) == 1
        assert contenders[1].lease(now=306.0) == (f"t{won.index(True)}", 316.0)
    finally:
        for s in contenders:
            s.close()


def test_concurrent_applies_each_bump_the_desired_counter(url: str) -> None:
    """Each apply adds one to the counter the loop polls; two writers that read the same
    value would lose a bump (and the loop an apply), so the counter row is read FOR UPDATE.
    Concurrent applies of one resource each make their own generation."""
    writers = [Store.open(url) for _ in range(4)]
    try:
        writers[0].apply([res("seed")], source="s", actor="t", now=1.0)
        before = writers[0].desired_revision()
        _race(4, lambda i: bool(writers[i].apply([res(f"svc{i}"), res("shared", env={"W": str(i)})],
                                                 source=f"f{i}", actor="t", now=2.0)))
        assert writers[0].desired_revision() == before + 4
        assert sorted(r.generation for r in writers[0].revisions("shared")) == [1, 2, 3, 4]
        assert writers[0].integrity_check() == []
    finally:
        for s in writers:
            s.close()


@pytest.mark.parametrize("start", ["empty", "at 0001"])
def test_many_processes_opening_one_store_at_once_create_or_upgrade_it_once(url: str, start: str) -> None:
    if start == "at 0001":
        alembic_upgrade(url, "0001")
    opened: list[Store] = []
    lock = threading.Lock()

    def open_it(_i: int) -> bool:
        st = Store.open(url)
        with lock:
            opened.append(st)
        return True

    try:
        assert _race(4, open_it) == [True] * 4
        assert all(st.schema_revision() == HEAD for st in opened)
    finally:
        for st in opened:
            st.close()


def test_instance_id_is_one_when_many_open_a_new_store_at_once(url: str) -> None:
    stores = [Store.open(url) for _ in range(4)]
    try:
        ids: list[str] = [""] * 4

        def first_use(i: int) -> bool:
            ids[i] = stores[i].instance_id
            return True

        _race(4, first_use)
        assert len(set(ids)) == 1 and ids[0]
    finally:
        for s in stores:
            s.close()


def test_backup_and_restore_with_pg_dump_and_pg_restore(tmp_path: Path) -> None:
    with pg.fresh_database() as url:
        st = Store.open(url)
        try:
            st.apply([res("web"), res("api")], source="f", actor="t", now=1.0)
            st.record(events=[Event(ts=2.0, service="web", type="Died", reason="exit 1")],
                      statuses=[Status("web", state="Running", restart_times=[1.5])])
            instance = st.instance_id
            copy = str(tmp_path / "store.pgdump")
            st.backup(copy)
            assert os.stat(copy).st_mode & 0o077 == 0 and os.path.getsize(copy) > 0
            want = (st.desired(), st.statuses(), st.history(), st.revisions("web"))
            st.apply([res("late")], source="f", actor="t", now=9.0)
            st.delete("api", actor="t", now=9.5)
            st.restore_from(copy)
            assert (st.desired(), st.statuses(), st.history(), st.revisions("web")) == want
            assert st.instance_id == instance and st.integrity_check() == []
            st.apply([res("after")], source="f", actor="t", now=10.0)  # the sequences came back too
            assert st.history()[-1].id > want[2][-1].id
        finally:
            st.close()


def test_a_failed_pg_tool_says_why_without_the_password(tmp_path: Path) -> None:
    with pg.fresh_database() as url:
        st = Store.open(url)
        try:
            st.apply([res("web")], source="f", actor="t", now=1.0)
            bad = tmp_path / "not-a-dump"
            bad.write_text("garbage")
            with pytest.raises(StoreError) as err:
                st.restore_from(str(bad))
            assert "pg_restore" in str(err.value) and "reconcile:***@" in str(err.value)
            assert "reconcile:reconcile@" not in str(err.value)
            assert set(st.desired()) == {"web"}, "a failed restore changes nothing; the store still answers"
        finally:
            st.close()


def test_an_unreachable_server_is_one_line_with_the_password_redacted() -> None:
    with pytest.raises(StoreError) as err:
        Store.open(DOWN)
    msg = str(err.value)
    assert "\n" not in msg
    assert "postgresql+psycopg://reconcile:***@127.0.0.1:1/reconcile" in msg
    assert "s3cr3t-pw" not in msg
    assert "Connection refused" in msg


@pytest.mark.parametrize("verb", [["apply", "-f", "{file}"], ["status"], ["get", "web"]])
def test_the_cli_on_an_unreachable_server_exits_1_with_one_clear_line(tmp_path: Path, verb: list[str]) -> None:
    f = tmp_path / "web.yaml"
    f.write_text("apiVersion: reconcile/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec: {image: demo/web:1}\n")
    args = [a.replace("{file}", str(f)) for a in verb]
    env = {**os.environ, "PYTHONPATH": str(REPO), "RECONCILE_DB": DOWN}
    done = subprocess.run([sys.executable, "-m", "controller.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, done.stderr
    assert "postgresql+psycopg://reconcile:***@127.0.0.1:1/reconcile" in lines[0]
    assert "Connection refused" in lines[0]
    assert "s3cr3t-pw" not in done.stderr + done.stdout and "Traceback" not in done.stderr


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ImportError
    with pytest.raises(StoreError) as err:
        Store.open(DOWN)
    msg = str(err.value)
    assert "reconcile[postgres]" in msg and "reconcile:***@127.0.0.1:1" in msg and "s3cr3t-pw" not in msg
