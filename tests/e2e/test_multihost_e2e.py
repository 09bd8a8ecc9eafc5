"""Issue 15 end to end: several hosts on one machine (scripts/multihost.sh).

Three nodes, each a dockerd in its own network namespace with a veth to a bridge in the
test's own namespace, one PostgreSQL on that bridge, an agent (``reconcile run --node``)
per node. Placement by name, by labels and spread; a node lost (agent SIGKILLed, dockerd
stopped) and back, with a sampler proving no replica ever runs twice; a partitioned agent
(its veth down, its engine alive) that stops its copy of a reschedulable service before its
lease expires (the fence), does nothing else, and audits the stop on return (sampled: never
two copies); a duplicate node name refused.

``test_harness_smoke`` checks the test bed alone (engines, namespaces, PostgreSQL from every
node, images, partition and engine stop/start), so it passes without the agents.

Marked ``multihost``: .ci/run runs the module once, in the docker20 full-suite stage (the
engines here are the harness's own; the engine under test elsewhere does not matter).
The module brings the harness up once and takes it down at the end; it skips only where it
cannot exist (not root, no ``ip``/``nsenter``) and fails otherwise.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RUN_ID, parse_docker_time
from tests.e2e.multihost_util import (
    IMAGES,
    NET_NS,
    NODE_LABEL,
    NODES,
    REPLICA,
    TTL,
    Cluster,
    Sampler,
    mentions,
    unavailable,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.multihost]

PG_BIN = "/usr/lib/postgresql/15/bin"


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    cluster = Cluster(tmp_path_factory.mktemp("multihost"), RUN_ID)
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


@pytest.fixture(scope="module")
def cluster(harness: Cluster) -> Iterator[Cluster]:
    """The harness with a fresh database and an agent on every node."""
    harness.create_database()
    try:
        harness.cli("db", "upgrade")  # once, before three agents open it at the same moment
        for name in NODES:
            harness.start_agent(name)
        harness.wait_ready(NODES)
        yield harness
    finally:
        for name in NODES:
            harness.stop_agent(name)
        harness.drop_database()


def _pid_netns(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def _netns_id(name: str) -> str:
    return f"net:[{os.stat(f'/run/netns/{name}').st_ino}]"


def _pg_ready_from(netns: str) -> bool:
    return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", f"{PG_BIN}/pg_isready", "-q", "-h", "10.231.0.1",
                           "-p", "55433", "-t", "2"], capture_output=True, timeout=30).returncode == 0


def test_harness_smoke(harness: Cluster) -> None:
    """The test bed alone: three engines in three namespaces, apart; PostgreSQL answers SQL
    from each; the images are there; a partition cuts one node off PostgreSQL only; an
    engine stops and starts."""
    from docker import from_env

    shared = from_env(timeout=30)
    try:
        shared_ids = {img: shared.images.get(img).id for img in IMAGES}
    finally:
        shared.close()
    engine_ids, own_netns = set(), _pid_netns(os.getpid())
    for name, node in harness.nodes.items():
        info = node.client.info()
        engine_ids.add(info["ID"])
        assert f"reconcile.multihost.node={name}" in info.get("Labels", []), info.get("Labels")
        pid = int(Path(f"/run/reconcile-mh/{name}/docker.pid").read_text())
        assert _pid_netns(pid) == _netns_id(node.netns) != own_netns, f"{name}'s dockerd is not in {node.netns}"
        for img, image_id in shared_ids.items():
            assert node.client.images.get(img).id == image_id, f"{img} on {name} differs from the shared engine's"
        # a container runs there, on that node's own default bridge (172.31.1K.0/24)
        out = node.client.containers.run("reconcile/busybox:latest", ["sh", "-c", "ip -4 -o addr show eth0"],
                                         remove=True, labels={"reconcile.test-run": harness.label})
        assert f"172.31.1{node.index}." in out.decode(), out
        # the node reaches the bridge (PostgreSQL) and nothing else: no default route
        routes = subprocess.run(["ip", "-n", node.netns, "route"], capture_output=True, text=True, check=True).stdout
        assert "default" not in routes, routes
        assert _pg_ready_from(node.netns), f"PostgreSQL does not answer from {node.netns}"
        proc = subprocess.run(["nsenter", f"--net=/run/netns/{node.netns}", "psql", "-X", "-tA", "-d",
                               harness.libpq(harness.base_url), "-c", "SELECT 40 + 2"],
                              capture_output=True, text=True, timeout=30)
        assert proc.stdout.strip() == "42", proc.stderr
    assert len(engine_ids) == len(NODES), f"the node engines share an identity: {engine_ids}"

    # a partition cuts n2 off PostgreSQL, and only n2; its engine keeps answering
    harness.script("link-down", "n2")
    try:
        assert not _pg_ready_from("reconcile-mh-n2")
        assert _pg_ready_from("reconcile-mh-n1") and _pg_ready_from(NET_NS)
        assert harness.nodes["n2"].client.ping()
    finally:
        harness.script("link-up", "n2")
    wait_for(lambda: _pg_ready_from("reconcile-mh-n2"), 20, "n2 to reach PostgreSQL again")

    # an engine stops (the others go on) and comes back with its images
    harness.script("engine-stop", "n3")
    try:
        assert not Path("/run/reconcile-mh/n3/docker.sock").exists()
        assert harness.nodes["n1"].client.ping() and harness.nodes["n2"].client.ping()
    finally:
        harness.script("engine-start", "n3")
    assert harness.nodes["n3"].client.images.get("reconcile/busybox:latest").id == shared_ids["reconcile/busybox:latest"]
    status = harness.script("status", check=False)
    assert status.returncode == 0, status.stdout + status.stderr


# -- placement ---------------------------------------------------------------------------
def _assignments(c: Cluster, name: str) -> list[dict[str, Any]]:
    return sorted((c.describe(name).get("placement") or {}).get("assignments") or [], key=lambda a: a["replica"])


def test_placement_by_node_name_and_by_labels(cluster: Cluster) -> None:
    by_name, by_label, nowhere = (f"mh{RUN_ID}-{s}" for s in ("byname", "bylabel", "nowhere"))
    cluster.apply(cluster.service(by_name, placement={"node": "n3"}),
                  cluster.service(by_label, placement={"nodeSelector": {"zone": "b"}}),
                  cluster.service(nowhere, placement={"nodeSelector": {"zone": "nowhere"}}))
    try:
        on_n3 = cluster.wait_running(by_name, ["n3"])
        on_n2 = cluster.wait_running(by_label, ["n2"])
        assert on_n3["n3"][0]["Labels"].get(NODE_LABEL) == "n3"
        assert on_n2["n2"][0]["Labels"].get(NODE_LABEL) == "n2"
        for service, node in ((by_name, "n3"), (by_label, "n2")):
            others = [n for n in NODES if n != node and cluster.containers(n, service)]
            assert not others, f"{service} has containers on {others} as well"
            assert [(a["replica"], a["node"]) for a in _assignments(cluster, service)] == [(1, node)]
            assert cluster.describe(service)["placement"].get("pending") is None
        # no node has zone=nowhere: Pending, with a reason naming the selector, and nothing runs
        pending = wait_for(lambda: cluster.describe(nowhere).get("placement", {}).get("pending"), 30,
                           f"{nowhere} to be reported pending")
        assert "zone" in pending, pending
        row = cluster.status()[nowhere]
        assert row["state"] == "Pending", row
        assert not any(cluster.containers(n, nowhere) for n in NODES)
    finally:
        cluster.delete(by_name, by_label, nowhere)
    cluster.wait_gone(by_name, by_label)


def test_spread_over_nodes(cluster: Cluster) -> None:
    name = f"mh{RUN_ID}-spread"
    cluster.apply(cluster.service(name, replicas=3, placement={"spread": "node"}))
    try:
        running = cluster.wait_running(name, list(NODES))
        replicas = sorted(rows[0]["Labels"][REPLICA] for rows in running.values())
        assert replicas == ["1", "2", "3"], replicas
        assert sorted(a["node"] for a in _assignments(cluster, name)) == list(NODES)
        for node, rows in running.items():
            assert rows[0]["Labels"].get(NODE_LABEL) == node
    finally:
        cluster.delete(name)
    cluster.wait_gone(name)


def test_a_second_agent_with_the_same_node_name_refuses(cluster: Cluster) -> None:
    holder = cluster.nodes_json()["n3"]["holder"]
    assert holder, "reconcile nodes shows no lease holder for n3"
    proc, log = cluster.spawn_agent("n3", tag="second")
    try:
        rc = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        pytest.fail(f"a second agent for n3 still runs after 60s:\n{log.read_text()}")
    out = log.read_text()
    assert rc == 1, f"exit {rc}:\n{out}"
    assert "n3" in out and str(holder) in out, f"the refusal names neither the node nor the holder {holder}:\n{out}"
    after = cluster.nodes_json()["n3"]
    assert after["ready"] is True and after["holder"] == holder, after


# -- node loss and return ----------------------------------------------------------------
def _pin_to(c: Cluster, node: str) -> list[str]:
    """Cordon every other node (new work lands on ``node`` only); returns them."""
    others = [n for n in NODES if n != node]
    for n in others:
        c.cli("cordon", n)
    return others


def _event_for(c: Cluster, kind: str, word: str, since: float) -> dict[str, Any] | None:
    return next((e for e in c.events(kind) if e["ts"] >= since and mentions(e, word)), None)


def _restore(c: Cluster, node: str) -> None:
    """Leave ``node`` as the next test expects it: link up, engine answering, agent running.
    Best effort in a ``finally``: a failure here is reported, not raised over the test's own."""
    try:
        _restore_node(c, node)
    except (Exception, pytest.fail.Exception) as exc:  # noqa: BLE001
        print(f"could not restore {node}: {exc}")


def _restore_node(c: Cluster, node: str) -> None:
    c.script("link-up", node, check=False)
    try:
        c.nodes[node].client.ping()
    except Exception:  # noqa: BLE001 - not answering: start it
        c.script("engine-start", node)
    agent = c.nodes[node].agent
    if agent is None or agent.poll() is not None:
        c.start_agent(node)
    for n in NODES:
        c.cli("uncordon", n, expect=None)
    c.wait_ready(NODES)


def test_node_lost_and_back_never_runs_a_replica_twice(cluster: Cluster) -> None:
    mover, pinned = f"mh{RUN_ID}-mover", f"mh{RUN_ID}-pinned"
    others = _pin_to(cluster, "n1")
    try:
        cluster.apply(cluster.service(mover, placement={"reschedule": True}),
                      cluster.service(pinned, placement={"node": "n1"}))
        cluster.wait_running(mover, ["n1"])
        cluster.wait_running(pinned, ["n1"])
        for n in others:
            cluster.cli("uncordon", n)
        with Sampler(cluster) as sampler:
            heartbeat = float(cluster.nodes_json()["n1"]["heartbeat"])
            t_kill = time.time()
            cluster.kill_agent("n1")
            cluster.script("engine-stop", "n1")

            lost = wait_for(lambda: _event_for(cluster, "NodeLost", "n1", t_kill - 1), TTL + 5 + 30,
                            "NodeLost for n1")
            assert lost["ts"] - t_kill <= TTL + 5, f"NodeLost {lost['ts'] - t_kill:.1f}s after the kill (TTL {TTL})"
            assert lost["ts"] >= heartbeat + TTL - 1, f"NodeLost before n1's lease ran out: {lost}, heartbeat {heartbeat}"
            assert cluster.nodes_json()["n1"]["ready"] is False

            # the reschedulable service runs on another node, started only after the lease ran out
            moved = wait_for(lambda: cluster.running(mover), 60, f"{mover} running on n2 or n3")
            assert len(moved) == 1 and sum(len(r) for r in moved.values()) == 1, moved
            where, rows = next(iter(moved.items()))
            assert where in ("n2", "n3"), moved
            started = parse_docker_time(cluster.nodes[where].client.api.inspect_container(rows[0]["Id"])["Created"])
            assert started >= heartbeat + TTL - 1, f"{mover} recreated on {where} before n1's lease expired"
            # the pinned one stays assigned to n1 and is reported as waiting for it
            assert not cluster.running(pinned), f"{pinned} runs elsewhere: {cluster.running(pinned)}"
            placement = cluster.describe(pinned).get("placement") or {}
            assert [(a["replica"], a["node"]) for a in placement.get("assignments") or []] == [(1, "n1")], placement
            row = cluster.status()[pinned]
            said = " ".join([str(placement.get("pending") or ""), *(str(a.get("reason")) for a in placement["assignments"]),
                             str(row.get("reason")), str(row.get("message"))])
            assert "n1" in said and "wait" in said.lower(), f"{pinned} is not reported as waiting for n1: {said!r}"

            t_back = time.time()
            cluster.script("engine-start", "n1")
            cluster.start_agent("n1")
            wait_for(lambda: _event_for(cluster, "RemovedMovedAway", mover, t_back), 90,
                     f"RemovedMovedAway for {mover} on n1")
            wait_for(lambda: not cluster.containers("n1", mover), 30, f"{mover}'s old container gone from n1")
            cluster.wait_running(pinned, ["n1"], timeout=60)
            time.sleep(1)  # a few more samples with everything back
        assert not sampler.errors, sampler.errors
        sampler.assert_dense()
        doubles = sampler.double_runs([mover, pinned])
        assert not doubles, "a replica ran twice:\n" + "\n".join(doubles[:20])
        # n1 removed what was moved away before it started anything again
        for sample in sampler.between(t_back):
            rows = sample.seen.get("n1") or []
            if any(s == pinned and state == "running" for s, _, state, _ in rows):
                assert not any(s == mover for s, *_ in rows), f"t={sample.t:.2f}: n1 ran {pinned} before removing {mover}"
        assert cluster.running_nodes(mover) == [where]
    finally:
        _restore(cluster, "n1")
        cluster.delete(mover, pinned)
    cluster.wait_gone(mover, pinned)


# -- partition ---------------------------------------------------------------------------
def _state(c: Cluster, node: str, service: str) -> list[tuple[str, str]]:
    return [(str(x["Id"]), str(x["State"])) for x in c.containers(node, service)]


def test_a_partitioned_agent_fences_its_movable_copy_before_its_lease_expires(cluster: Cluster) -> None:
    """n2 cut off from PostgreSQL while its engine lives on: its agent stops its copy of the
    reschedulable service before the lease can expire (the fence; kept, not removed), does
    nothing else (a killed pinned container stays down), and on return removes the copy that
    was moved and audits the stop (FencedStop). A sampler over every engine, from before
    the cut to after the heal: never two running copies."""
    movable, stays = f"mh{RUN_ID}-pz", f"mh{RUN_ID}-pp"
    n2 = cluster.nodes["n2"].client
    others = _pin_to(cluster, "n2")
    try:
        # a 1 s grace: what the fence of a 6 s TTL fits (controller.fence.max_grace)
        cluster.apply(cluster.service(movable, placement={"reschedule": True}, stopGracePeriod="1s"),
                      cluster.service(stays, placement={"node": "n2"}))
        cluster.wait_running(movable, ["n2"])
        first = cluster.wait_running(stays, ["n2"])["n2"][0]["Id"]
        for n in others:
            cluster.cli("uncordon", n)
        # control: connected, n2's agent heals a killed container
        n2.api.kill(first)
        wait_for(lambda: any(s == "running" for _, s in _state(cluster, "n2", stays)), 30,
                 f"n2's agent to restart {stays} (connected)")
        movable_id = cluster.running(movable)["n2"][0]["Id"]

        with Sampler(cluster) as sampler:
            t_down = time.time()
            cluster.script("link-down", "n2")
            heartbeat = float(cluster.nodes_json()["n2"]["heartbeat"])
            expiry = heartbeat + TTL  # n2's lease row runs out here; its agent stops before
            assert heartbeat <= t_down + 1, (heartbeat, t_down)
            time.sleep(max(0.0, expiry + 0.3 - time.time()))
            # the fence: n2's copy was stopped (kept) before the lease could expire
            state = n2.api.inspect_container(movable_id)["State"]
            assert state["Status"] == "exited", f"n2's {movable} still {state['Status']} at the lease's expiry"
            stopped = parse_docker_time(state["FinishedAt"])
            assert heartbeat < stopped < expiry, \
                f"n2's {movable} stopped {stopped - expiry:+.2f}s from the lease's expiry (renewed {heartbeat:.2f})"
            print(f"fence: n2's {movable} stopped {stopped - heartbeat:.2f}s after its last renewal, "
                  f"{expiry - stopped:.2f}s before the lease's expiry (TTL {TTL}s)")
            for cid, st in _state(cluster, "n2", stays):
                if st == "running":
                    n2.api.kill(cid)
            t_killed = time.time()

            lost = wait_for(lambda: _event_for(cluster, "NodeLost", "n2", t_down), TTL + 5 + 30, "NodeLost for n2")
            assert lost["ts"] >= expiry - 1, f"NodeLost before n2's lease expired: {lost}"
            moved = wait_for(lambda: {n: r for n, r in cluster.running(movable).items() if n != "n2"}, 60,
                             f"{movable} rescheduled to n1 or n3")
            # n2 is cut off: its agent must not act (no restart, no start of its stopped copy)
            end = max(t_killed + 8, time.time() + 1)
            for _ in range(200):
                states = _state(cluster, "n2", stays)
                assert states and not any(s == "running" for _, s in states), \
                    f"{stays} restarted on n2 after the lease's expiry ({time.time() - expiry:.1f}s after)"
                assert _state(cluster, "n2", movable) == [(movable_id, "exited")], f"n2's {movable} was touched"
                if time.time() >= end:
                    break
                time.sleep(0.2)
            assert cluster.nodes[next(iter(moved))].client.ping()

            t_up = time.time()
            cluster.script("link-up", "n2")
            wait_for(lambda: _event_for(cluster, "RemovedMovedAway", movable, t_up), 90,
                     f"RemovedMovedAway for {movable} on n2")
            wait_for(lambda: not cluster.containers("n2", movable), 30, f"{movable} gone from n2")
            cluster.wait_running(stays, ["n2"], timeout=60)
            time.sleep(1)  # a few more samples with everything back
        assert not sampler.errors, sampler.errors
        sampler.assert_dense()
        doubles = sampler.double_runs([movable, stays])
        assert not doubles, "a replica ran twice:\n" + "\n".join(doubles[:20])
        assert any(s.t <= stopped for s in sampler.samples), "no sample before the fence"
        # the stop is audited once the store answers again, as what it was
        [fenced] = [e for e in cluster.events("FencedStop") if e["ts"] >= t_down and mentions(e, movable)]
        assert mentions(fenced, "n2") and "may be rescheduled" in fenced["reason"], fenced
        assert fenced["ts"] < expiry and fenced["container_id"] == movable_id, fenced
        assert not [e for e in cluster.events("FencedStop") if e["ts"] >= t_down and mentions(e, stays)]
        assert len(cluster.running_nodes(movable)) == 1 and "n2" not in cluster.running(movable)
    finally:
        _restore(cluster, "n2")
        cluster.delete(movable, stays)
    cluster.wait_gone(movable, stays)
