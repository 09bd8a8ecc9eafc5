"""Rolling updates, automatic and manual rollback, and scaling against the real engine
(issue 4).

The rollout tests run ``reconcile run`` (the rollback is the controller's own decision)
and poll the store through the harness's in-process readers; the CLI is used where its
output is the thing under test (``history --revisions --json``, ``rollback``).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from controller.engine import _short_ref
from tests.e2e.conftest import engine_is_podman, ordered, WEB_IMAGE, WEB_IMAGE_2, WORKER_IMAGE, Harness, store_digest, wait_for

pytestmark = pytest.mark.e2e

FAST = ("--resync-interval", "1s")
HEALTH = {"test": ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/health"], "interval": "1s", "timeout": "2s",
          "retries": 2}
UPDATE = {"parallelism": 1, "monitor": "5s", "failureAction": "rollback"}


def _web(rc: Harness, image: str = WEB_IMAGE, **spec: Any) -> dict[str, Any]:
    return rc.service("web", image, replicas=2, healthcheck=HEALTH, update=UPDATE, **spec)


def _replicas(rc: Harness, name: str) -> dict[int, Any]:
    return {int(c.labels["io.reconcile.replica"]): c for c in rc.containers(name)}


def _healthy(rc: Harness, name: str, state: dict[str, Any]) -> bool:
    if engine_is_podman():  # the controller runs the checks: its status has the worst of the replicas
        return bool(rc.rows()[name]["health"] == "healthy")
    return (state.get("Health") or {}).get("Status") == "healthy"


def _serving(rc: Harness, name: str, version: str) -> bool:
    """Every replica runs, is healthy, and answers /health and /version from inside."""
    cs = _replicas(rc, name)
    if set(cs) != {1, 2}:
        return False
    for c in cs.values():
        st = c.attrs["State"]
        if not st["Running"] or not _healthy(rc, name, st):
            return False
        code, out = c.exec_run(["wget", "-q", "-O-", "http://127.0.0.1/health"])
        if code != 0 or out.strip() != b"ok":
            return False
        code, out = c.exec_run(["wget", "-q", "-O-", "http://127.0.0.1/version"])
        if code != 0 or out.strip().decode() != version:
            return False
    return True


def _converged(rc: Harness, name: str, generation: int) -> bool:
    row = rc.rows().get(name) or {}
    return (row.get("generation") == generation and row.get("observedGeneration") == generation
            and row.get("state") == "Running" and row.get("health") == "healthy")


# 5 ---------------------------------------------------------------------------------------
def test_failed_rollout_rolls_back_by_itself_and_by_hand(rc: Harness) -> None:
    name = rc.name("web")
    f = rc.write([_web(rc)])
    rc.start_daemon(*FAST)
    rc.run("apply", "-f", f, "--wait", "--timeout", "60s")
    assert _serving(rc, name, "1")
    gen1 = {r: c.id for r, c in _replicas(rc, name).items()}

    # generation 2: its command exits at once
    rc.write([_web(rc, command=["sh", "-c", "echo broken build; exit 3"])])
    rc.run("apply", "-f", f)

    rolled = wait_for(lambda: rc.events(name, "RolledBack"), timeout=45, what="the controller to roll back")
    assert not [r for r in rc.events(name, "Restarted") if r["generation"] == 2], "rolled back, not restarted"
    assert len(rolled) == 1 and rolled[0]["actor"] == "controller"
    reason = rolled[0]["reason"]
    assert reason.startswith("rollout of generation 2 failed: new container "), reason
    assert "exited with code 3" in reason, reason
    assert rolled[0]["message"] == "generation 3 = revision 1"

    wait_for(lambda: _converged(rc, name, 3), timeout=45, what="generation 3 to converge")
    wait_for(lambda: _serving(rc, name, "1"), timeout=30, what="both replicas to serve generation 1's spec")
    reps = _replicas(rc, name)
    assert reps[2].id == gen1[2], "parallelism 1: the second replica was never touched"
    assert reps[1].id != gen1[1]
    assert reps[1].labels["io.reconcile.generation"] == "3"
    assert reps[1].attrs["Config"]["Cmd"] == ["httpd", "-f", "-p", "80", "-h", "/www"]
    assert len(rc.containers(name)) == 2, "the broken container is gone"

    # the audit tells the story: rollout -> failure (in the RolledBack reason) -> recreate to the old spec
    rows = rc.events(name)
    story = ordered(
        rows,
        lambda r: r["type"] == "Applied" and r["generation"] == 2,
        lambda r: r["type"] == "Recreated" and r["generation"] == 2 and "command" in r["reason"],
        lambda r: r["type"] == "RolledBack" and r["generation"] == 3,
        lambda r: r["type"] == "Recreated" and r["generation"] == 3 and "command" in r["reason"],
    )
    assert story, [(r["type"], r["generation"], r["reason"]) for r in rows]
    assert len([r for r in rows if r["type"] == "Recreated" and r["generation"] == 2]) == 1, \
        "only one replica was exposed to the broken generation"

    # every revision is listed; the current one (3) is revision 1 again
    revs = json.loads(rc.run("history", name, "--revisions", "--json").stdout)
    assert [(r["generation"], r["current"]) for r in revs] == [(1, False), (2, False), (3, True)]
    assert revs[2]["spec"] == revs[0]["spec"] and revs[2]["specHash"] == revs[0]["specHash"]
    assert revs[1]["spec"]["command"] != revs[0]["spec"].get("command")

    # a good rollout (generation 4) is not rolled back; `rollback --to-revision 1` by hand returns to v1
    rc.write([_web(rc, WEB_IMAGE_2)])
    rc.run("apply", "-f", f, "--wait", "--timeout", "60s")
    wait_for(lambda: _serving(rc, name, "2"), timeout=30, what="generation 4 to serve v2")
    assert len(rc.events(name, "RolledBack")) == 1
    gen4 = {r: c.id for r, c in _replicas(rc, name).items()}
    out = rc.run("rollback", name, "--to-revision", "1", "--reason", "v2 misbehaves").stdout
    assert f"{name}: generation 5 restores revision 1" in out
    wait_for(lambda: _converged(rc, name, 5), timeout=45, what="generation 5 to converge")
    wait_for(lambda: _serving(rc, name, "1"), timeout=30, what="both replicas back on revision 1")
    reps = _replicas(rc, name)
    assert all(reps[r].id != gen4[r] for r in (1, 2))
    # (Podman shows the image qualified, docker.io/reconcile/demo-web:1: compared as Docker shows it)
    assert all(_short_ref(c.attrs["Config"]["Image"]) == WEB_IMAGE for c in reps.values())
    manual = rc.events(name, "RolledBack")[-1]
    assert manual["actor"] == "cli" and manual["reason"] == "v2 misbehaves"
    assert manual["message"] == "generation 5 = revision 1"
    assert len([r for r in rc.events(name, "Recreated") if r["generation"] == 5]) == 2
    revs = json.loads(rc.run("history", name, "--revisions", "--json").stdout)
    assert [r["generation"] for r in revs] == [1, 2, 3, 4, 5] and revs[-1]["current"]
    assert revs[-1]["specHash"] == revs[0]["specHash"]

    # a revision that does not exist is an input error and changes nothing
    # (the running daemon renews its lease, so the file's bytes may move: compare contents)
    revs_before = rc.run("history", name, "--revisions", "--json").stdout
    rolled_before = len(rc.events(name, "RolledBack"))
    proc = rc.run("rollback", name, "--to-revision", "9", expect=2)
    assert "no revision" in proc.stderr
    assert rc.run("history", name, "--revisions", "--json").stdout == revs_before
    assert len(rc.events(name, "RolledBack")) == rolled_before


def test_failed_rollout_of_a_single_replica_rolls_back(rc: Harness) -> None:
    name = rc.name("web")
    f = rc.write([rc.service("web", WEB_IMAGE, healthcheck=HEALTH, update=UPDATE)])
    rc.start_daemon(*FAST)
    rc.run("apply", "-f", f, "--wait", "--timeout", "60s")
    rc.write([rc.service("web", WEB_IMAGE, healthcheck=HEALTH, update=UPDATE,
                         command=["sh", "-c", "echo broken build; exit 3"])])
    rc.run("apply", "-f", f)
    wait_for(lambda: rc.events(name, "RolledBack"), timeout=15, what="the controller to roll back")
    wait_for(lambda: _converged(rc, name, 3), timeout=30, what="generation 3 to converge")


class _StallingStore:
    """The test's real store, with pauses at chosen points: fault injection on timing, so a
    race that the daemon hits now and then happens on every run. Nothing is faked."""

    def __init__(self, store: Any):
        self._store = store
        self.stall_statuses = 0.0  # after reading statuses (a pass's snapshot)
        self.stall_record_of = ""  # before recording events of this type (an action in flight)
        self.in_flight = threading.Event()

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._store, attr)

    def statuses(self) -> Any:
        out = self._store.statuses()
        time.sleep(self.stall_statuses)
        return out

    def record(self, events: Any = (), statuses: Any = (), drop_statuses: Any = ()) -> None:
        events = list(events)
        if self.stall_record_of and any(e.type == self.stall_record_of for e in events):
            self.in_flight.set()
            time.sleep(4.0)
        self._store.record(events, statuses, drop_statuses)


def test_rollout_survives_a_pass_planned_while_it_was_in_flight(rc: Harness) -> None:
    """A pass whose snapshot was taken while the rollout's Recreate was in flight must neither
    record that stale status (losing the rollout marker) nor act on its stale plan (restarting
    the broken container): the daemon hit this now and then; here it happens on every run."""
    from controller.engine import Engine
    from controller.reconciler import Reconciler, ReconcilerConfig
    from store import Store

    name = rc.name("web")
    f = rc.write([_web(rc)])
    rc.run("apply", "-f", f, "--wait", "--timeout", "60s")
    store = Store.open(rc.db)
    engine = Engine()
    stalling = _StallingStore(store)
    rec = Reconciler(stalling, engine, ReconcilerConfig(actor="controller"))  # type: ignore[arg-type]
    try:
        # this test is the controller: hold the lease so the CLI only stores generation 2
        assert store.acquire_lease("test-controller", ttl=120, now=time.time())
        rc.write([_web(rc, command=["sh", "-c", "echo broken build; exit 3"])])
        rc.run("apply", "-f", f)

        # pass A: the rollout's Recreate; its status is recorded 2 s after the engine work
        stalling.stall_record_of = "Recreated"
        rec.reconcile(wait=False)
        wait_for(stalling.in_flight.is_set, timeout=30, what="the rollout to be in flight")
        stalling.stall_record_of = ""
        wait_for(lambda: rc.inspect(rc.cname("web"))["State"]["Status"] == "exited", timeout=3, interval=0.05,
                 what="the broken container to exit")
        # pass B: its snapshot is taken while A is still in flight; A finishes before B goes on
        stalling.stall_statuses = 5.0
        rec.reconcile()
        stalling.stall_statuses = 0.0

        def rolled_back() -> bool:
            rec.reconcile()
            return bool(rc.events(name, "RolledBack"))

        wait_for(rolled_back, timeout=20, interval=0.5, what="the failed rollout to be rolled back")
        current = store.get(name)
        assert current is not None and current.generation == 3
        assert not rc.events(name, "Restarted"), "the broken container was rolled back, never restarted"
    finally:
        rec.close()
        store.release_lease("test-controller")
        store.close()


# 6 ---------------------------------------------------------------------------------------
def test_scaling_adds_and_removes_exactly_the_extra_replicas(rc: Harness) -> None:
    name = rc.name("worker")

    def apply(replicas: int) -> str:
        rc.write([rc.service("worker", WORKER_IMAGE, replicas=replicas)])
        return rc.run("apply", "-f", f).stdout

    f = rc.write([rc.service("worker", WORKER_IMAGE, replicas=1)])
    rc.run("apply", "-f", f)
    first = rc.client.containers.get(rc.cname("worker")).id

    out = apply(3)
    assert f"created {name}#2" in out and f"created {name}#3" in out and f"{name}#1" not in out, out
    cs = {c.name: c for c in rc.containers(name)}
    assert set(cs) == {rc.cname("worker", i) for i in (1, 2, 3)}
    assert cs[rc.cname("worker")].id == first
    assert all(c.status == "running" for c in cs.values())
    assert {c.labels["io.reconcile.replica"] for c in cs.values()} == {"1", "2", "3"}
    extra = {cs[rc.cname("worker", i)].id for i in (2, 3)}
    assert rc.rows()[name]["state"] == "Running"

    out = apply(1)
    assert f"{name}#1" not in out, out
    (only,) = rc.containers(name)
    assert only.id == first and only.name == rc.cname("worker")
    removed = rc.events(name, "Removed")
    assert {r["container_id"] for r in removed} == extra
    assert all(r["reason"] == "scaled down to 1 replicas" for r in removed)
    assert [r["generation"] for r in rc.events(name, "Applied")] == [1, 2, 3]

    # replicas > 1 cannot share one fixed host port: invalid input, nothing written
    digest = store_digest(rc)
    bad = rc.write([rc.service("worker", WORKER_IMAGE, replicas=2, ports=["127.0.0.1:18080:80"])], name="bad.yaml")
    proc = rc.run("apply", "-f", bad, expect=2)
    assert "replicas > 1 cannot publish a fixed host port" in proc.stderr, proc.stderr
    assert f"{bad}:" in proc.stderr
    assert store_digest(rc) == digest
    assert [c.id for c in rc.containers(name)] == [first]
