"""controller.scheduler.decide: snapshot (nodes, leases, assignments, the database's now) +
requests -> the assignment writes and audit rows, with the real placement function.
Level-triggered: a second pass over its own result writes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from controller import placement_input
from crd_like import ServiceSpec

from controller.scheduler import decide, default_node, node_state, request
from store.records import Node, NodeLease, Placed, PlacementWrite, Snapshot

NOW = 5000.0


def live(name: str, holder: str = "") -> NodeLease:
    return NodeLease(name, holder or f"agent:{name}:1", 1, 0.0, NOW + 10)


def expired(name: str) -> NodeLease:
    return NodeLease(name, f"agent:{name}:1", 1, 0.0, NOW - 0.1)


def snap(nodes: list[Node], leases: list[NodeLease], placed: Sequence[Placed] = (), now: float = NOW) -> Snapshot:
    return Snapshot(now, tuple(nodes), {lease.node: lease for lease in leases}, tuple(placed))


def apply(s: Snapshot, w: PlacementWrite) -> Snapshot:
    """The snapshot after the write (what the store would hold)."""
    rows = {(p.service, p.replica): p for p in s.assignments}
    for k in w.drop:
        rows.pop(k, None)
    rows.update({(p.service, p.replica): p for p in w.upsert})
    flags = dict(w.lost)
    nodes = tuple(replace(n, lost=flags.get(n.name, n.lost)) for n in s.nodes)
    return Snapshot(s.now, nodes, s.leases, tuple(sorted(rows.values(), key=lambda p: (p.service, p.replica))))


def types(w: PlacementWrite) -> list[str]:
    return [e.type for e in w.events]


N1, N2 = Node("n1", {"zone": "a"}), Node("n2", {"zone": "b"})


def test_new_replicas_are_placed_once_and_a_second_pass_writes_nothing() -> None:
    s = snap([N1, N2], [live("n1"), live("n2")])
    reqs = [request("web", {"replicas": 2, "placement": {"spread": "node"}}, {}, None)]
    d = decide(reqs, s)
    assert types(d.write) == ["Placed", "Placed"]
    assert sorted(p.node for p in d.write.upsert) == ["n1", "n2"]
    again = decide(reqs, apply(s, d.write))
    assert not again.write  # level-triggered: nothing changed, nothing written


def test_a_lost_node_is_audited_once_and_only_reschedulable_replicas_move() -> None:
    placed = [Placed("web", 1, "n1"), Placed("db", 1, "n1")]
    s = snap([N1, N2], [expired("n1"), live("n2")], placed)
    reqs = [request("web", {"placement": {"reschedule": True}}, {}, None), request("db", {"placement": {}}, {}, None)]
    d = decide(reqs, s)
    assert d.states == {"n1": "lost", "n2": "ready"}
    assert types(d.write) == ["NodeLost", "Rescheduled"]
    assert d.write.lost == (("n1", True),)
    assert [(p.service, p.node, p.since) for p in d.write.upsert] == [("db", "n1", 0.0), ("web", "n2", NOW)]
    assert "waiting for lost node n1" in d.write.upsert[0].reason  # db waits (no audit row: it did not move)
    after = apply(s, d.write)
    assert not decide(reqs, after).write  # NodeLost is not repeated
    back = Snapshot(NOW, after.nodes, {"n1": live("n1"), "n2": live("n2")}, after.assignments)
    d2 = decide(reqs, back)
    assert types(d2.write) == ["NodeReady"] and d2.write.lost == (("n1", False),)
    assert not d2.write.upsert  # web stays on n2: no churn when n1 returns


def test_a_node_is_lost_only_once_its_lease_expired_by_the_database_clock() -> None:
    lease = NodeLease("n1", "agent:n1:1", 1, 0.0, NOW)
    assert node_state(N1, lease, NOW) == "ready"  # expires_at == now: not yet expired
    assert node_state(N1, lease, NOW + 0.001) == "lost"
    assert node_state(N1, replace(lease, holder=""), NOW - 100) == "lost"  # released
    assert node_state(replace(N1, cordoned=True), lease, NOW) == "cordoned"
    assert node_state(replace(N1, cordoned=True, draining=True), lease, NOW) == "draining"


def test_unplaceable_is_stored_with_its_reason_and_audited_only_when_it_changes() -> None:
    s = snap([N1, N2], [live("n1"), live("n2")])
    reqs = [request("web", {"placement": {"nodeSelector": {"zone": "c"}}}, {}, None)]
    d = decide(reqs, s)
    assert types(d.write) == ["Unplaceable"]
    [row] = d.write.upsert
    assert row.node == "" and "zone" in row.reason
    assert not decide(reqs, apply(s, d.write)).write


def test_a_deleted_service_and_a_scale_down_drop_their_assignments_quietly() -> None:
    placed = [Placed("web", 1, "n1"), Placed("web", 2, "n2"), Placed("gone", 1, "n1")]
    s = snap([N1, N2], [live("n1"), live("n2")], placed)
    d = decide([request("web", {"replicas": 1}, {}, "n1")], s)
    assert sorted(d.write.drop) == [("gone", 1), ("web", 2)] and not d.write.events


def test_drain_moves_replicas_that_can_go_elsewhere() -> None:
    s = snap([replace(N1, draining=True), N2], [live("n1"), live("n2")], [Placed("web", 1, "n1")])
    d = decide([request("web", {"placement": {}}, {}, None)], s)
    assert types(d.write) == ["Rescheduled"] and d.write.upsert[0].node == "n2"


def test_a_stack_without_placement_goes_to_its_node_or_the_default() -> None:
    assert request("web", {}, {"node": "n2"}, "n1").node == "n2"  # apply --node
    assert request("web", {}, {}, "n1").node == "n1"  # the default node
    assert request("web", {"placement": {"node": "n3"}}, {"node": "n2"}, "n1").node == "n3"
    assert request("web", {"placement": {"spread": "zone"}}, {"node": "n2"}, "n1").node is None
    assert default_node([N1], None) == "n1" and default_node([N1, N2], None) is None
    assert default_node([N1, N2], "n2") == "n2"
    r = request("web", {"replicas": 3, "resources": {"reservations": {"cpus": 0.5, "memory": 1024}}}, {}, None)
    assert (r.replicas, r.cpus, r.memory, r.reschedule) == (3, 0.5, 1024, False)


@pytest.mark.parametrize("spec", [
    {},
    {"replicas": 3, "placement": {"nodeSelector": {"zone": "a"}, "spread": "zone", "reschedule": True}},
    {"placement": {"node": "n2"}, "resources": {"reservations": {"cpus": 1.5, "memory": "512m"}}},
])
def test_the_stored_spec_gives_the_request_the_validated_spec_gives(spec: dict[str, Any]) -> None:
    """The scheduler reads stored (canonical JSON) specs; controller.placement_input reads
    validated ones: the same request, so both agree on what placement was asked for."""
    model = ServiceSpec.model_validate({"image": "demo/web:1", **spec})
    stored = model.model_dump(mode="json", exclude_defaults=True)
    assert request("web", stored, {}, None) == placement_input.request("web", model)
