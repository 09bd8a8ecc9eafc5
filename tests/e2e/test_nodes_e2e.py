"""Agent mode on one real engine (many hosts are tests/e2e of the multi-host harness): one
agent `run --node n1` converges a service placed on its node, with `reconcile.node` on
its containers; a second agent for the same node refuses (exit 1, naming node and holder);
cordon/drain show in `nodes -o json`; a returning agent first removes the replica that
was moved to another node while it was away (RemovedMovedAway)."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.e2e.conftest import DAEMON_START_TIMEOUT, Harness, wait_for

NODE_LEASE_HELD = "holds the node lease as"


def start_agent(rc: Harness, node: str = "n1") -> int:
    rc.instance  # noqa: B018 - the store exists and is migrated before the agent opens it
    rc.daemon("--node", node, "--node-label", "zone=a", "--resync-interval", "1s")
    idx = len(rc.procs) - 1

    def held() -> bool:
        if rc.procs[idx].poll() is not None:
            pytest.fail(f"agent {idx} exited {rc.procs[idx].returncode}:\n{rc.daemon_log(idx)}")
        return NODE_LEASE_HELD in rc.daemon_log(idx)

    wait_for(held, DAEMON_START_TIMEOUT, what=f"agent {idx} to hold node {node}")
    return idx


def running(rc: Harness, service: str) -> dict[int, str]:
    """replica -> reconcile.node label of the running containers of ``service``."""
    return {int(c.labels["io.reconcile.replica"]): c.labels.get("reconcile.node", "")
            for c in rc.containers(service) if c.status == "running"}


def nodes(rc: Harness) -> dict[str, dict[str, object]]:
    return {r["name"]: r for r in json.loads(rc.run("nodes", "-o", "json").stdout)}


def test_one_agent_converges_its_node_and_a_second_one_for_it_refuses(rc: Harness,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_NODE_TTL", "4")
    start_agent(rc)
    web = rc.name("web")
    applied = rc.run("apply", "-f", rc.write([rc.service("web", replicas=2)]))
    assert "stored; the node agents converge it" in applied.stdout, applied.stdout
    wait_for(lambda: running(rc, web) == {1: "n1", 2: "n1"}, 90, what="both replicas running on n1")
    wait_for(lambda: rc.rows()[web]["state"] == "Running", 30, what="web's status row: Running (written by n1)")
    placed = rc.history(web, "Placed")
    assert sorted(e["reason"].split(":")[0] for e in placed) == ["replica 1 on node n1", "replica 2 on node n1"]
    second = rc.run("run", "--node", "n1", expect=1, timeout=120)
    assert "node n1 is held by agent:" in second.stderr
    n1 = nodes(rc)["n1"]
    assert (n1["state"], n1["ready"], n1["labels"]) == ("ready", True, {"zone": "a"})
    assert sorted((r["service"], r["replica"]) for r in n1["replicas"]) == [(web, 1), (web, 2)]  # type: ignore[union-attr]
    assert str(n1["holder"]).startswith("agent:") and float(n1["heartbeat"]) > time.time() - 30  # type: ignore[arg-type]
    rc.run("cordon", "n1")
    assert nodes(rc)["n1"]["state"] == "cordoned"
    rc.run("drain", "n1")
    assert nodes(rc)["n1"]["state"] == "draining"
    time.sleep(2)  # a few scheduler passes: nowhere else to go, so the replicas stay
    assert running(rc, web) == {1: "n1", 2: "n1"}
    rc.run("uncordon", "n1")
    assert nodes(rc)["n1"]["state"] == "ready"
    assert rc.run("cordon", "nope", expect=2).stderr.strip() == "error: no node named nope (see `reconcile nodes`)"
    assert len(rc.history(None, "NodeRegistered")) == 1


def test_a_returning_agent_removes_what_moved_away_before_anything_else(rc: Harness,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILE_NODE_TTL", "4")
    idx = start_agent(rc)
    web = rc.name("web")
    applied = rc.run("apply", "-f", rc.write([rc.service("web", replicas=2)]))
    assert "stored; the node agents converge it" in applied.stdout, applied.stdout
    wait_for(lambda: running(rc, web) == {1: "n1", 2: "n1"}, 90, what="both replicas running on n1")
    rc.procs[idx].send_signal(signal.SIGKILL)
    rc.procs[idx].wait(10)
    # meanwhile replica 2 moved to node n2 (live: its "agent" is this test, holding its lease)
    from store import Store
    from store.records import Node, Placed

    st = Store.open(rc.db)
    try:
        st.nodes.register(Node("n2", {}, "test", 0.0, 0))
        assert st.nodes.acquire("n2", "agent:elsewhere:1", ttl=600) is not None
        st.nodes.assign([Placed(web, 2, "n2", "moved by the test")])
    finally:
        st.close()
    start_agent(rc)
    wait_for(lambda: running(rc, web) == {1: "n1"}, 60, what="replica 2 removed from n1")
    moved = rc.history(web, "RemovedMovedAway")
    assert len(moved) == 1 and "replica 2" in moved[0]["reason"]
    log = rc.daemon_log()
    assert log.index("was moved to another node") < log.index(NODE_LEASE_HELD)  # removed first, then acting
    time.sleep(2)
    assert running(rc, web) == {1: "n1"}  # not created again here


def test_apply_to_another_node_then_that_node_is_lost_and_back(rc: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """n2's "agent" is this test (it holds n2's lease with a short TTL and no engine); the
    real agent n1 is the scheduler: a stack applied with --node n2 is placed there and not
    run on n1; n2's expiry is audited NodeLost once (by the database's clock), its return
    NodeReady; the service waits for n2 meanwhile (describe says so)."""
    monkeypatch.setenv("RECONCILE_NODE_TTL", "4")
    start_agent(rc)
    from store import Store
    from store.records import Node

    st = Store.open(rc.db)
    try:
        st.nodes.register(Node("n2", {"zone": "b"}, "test", 0.0, 0))
        fence = st.nodes.acquire("n2", "agent:elsewhere:7", ttl=3)
        assert fence is not None
        api = rc.name("api")
        rc.run("apply", "-f", rc.write([rc.service("api")]), "--node", "n2")
        wait_for(lambda: rc.events(api, "Placed"), 30, what="api placed")
        assert rc.events(api, "Placed")[0]["reason"].startswith("replica 1 on node n2")
        time.sleep(2)
        assert running(rc, api) == {}  # n1 runs nothing of it
        wait_for(lambda: rc.events(None, "NodeLost"), 3 + 5, what="NodeLost for n2 within its TTL + 5 s")
        [lost] = rc.events(None, "NodeLost")
        assert "node n2 lost" in lost["reason"] and "agent:elsewhere:7" in lost["reason"]
        assert nodes(rc)["n2"]["state"] == "notready" and nodes(rc)["n1"]["state"] == "ready"
        wait_for(lambda: "waiting for lost node n2" in json.dumps(json.loads(
            rc.run("describe", api, "-o", "json").stdout)["placement"]), 20, what="describe: waiting for n2")
        assert st.nodes.acquire("n2", "agent:elsewhere:8", ttl=60) is not None
        wait_for(lambda: rc.events(None, "NodeReady"), 20, what="NodeReady for n2")
        time.sleep(2)
        assert len(rc.events(None, "NodeLost")) == 1 and len(rc.events(None, "NodeReady")) == 1
    finally:
        st.close()
