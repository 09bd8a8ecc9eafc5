"""controller.placement.place: table-driven cases, then seeded random invariants."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from controller.placement import Assignment, NodeState, NodeView, PlacementResult, Request, place

GiB = 1 << 30
MiB = 1 << 20


def N(name: str, state: NodeState = "ready", cpus: float = 0, memory: int = 0, **labels: str) -> NodeView:
    return NodeView(name, labels, cpus, memory, state)


def R(service: str = "web", replicas: int = 1, *, node: str | None = None, sel: Mapping[str, str] | None = None,
      spread: str | None = None, cpus: float = 0, memory: int = 0, reschedule: bool = False) -> Request:
    return Request(service, replicas, node, dict(sel or {}), spread, cpus, memory, reschedule)


def where(result: PlacementResult) -> dict[tuple[str, int], str]:
    return {(a.service, a.replica): a.node for a in result.assignments}


def reasons(result: PlacementResult) -> dict[tuple[str, int], str]:
    return {(u.service, u.replica): u.reason for u in result.unplaced}


def on(result: PlacementResult, service: str = "web") -> list[str]:
    return [a.node for a in result.assignments if a.service == service]


def A(node: str, replica: int = 1, service: str = "web", reason: str = "earlier") -> Assignment:
    return Assignment(service, replica, node, reason)


ABC = [N("a"), N("b"), N("c")]


# -- where new replicas go ---------------------------------------------------------------

@pytest.mark.parametrize(("requests", "nodes", "expected"), [
    pytest.param([R(replicas=2, node="b")], ABC, {("web", 1): "b", ("web", 2): "b"}, id="by-name"),
    pytest.param([R(replicas=2, sel={"disk": "ssd"})], [N("a", disk="ssd"), N("b", disk="hdd"), N("c", disk="ssd")],
                 {("web", 1): "a", ("web", 2): "c"}, id="by-labels"),
    pytest.param([R(replicas=2, sel={"disk": "ssd", "zone": "1"})],
                 [N("a", disk="ssd", zone="2"), N("b", disk="ssd", zone="1"), N("c", zone="1")],
                 {("web", 1): "b", ("web", 2): "b"}, id="every-selector-label-must-match"),
    pytest.param([R(replicas=3)], ABC, {("web", 1): "a", ("web", 2): "b", ("web", 3): "c"},
                 id="no-spread-still-prefers-other-nodes-then-name"),
    pytest.param([R(replicas=2, cpus=100, memory=1 << 50)], [N("a")], {("web", 1): "a", ("web", 2): "a"},
                 id="unknown-capacity-is-unlimited"),
    pytest.param([R("big", cpus=3), R("web", cpus=1)], [N("a", cpus=4), N("b", cpus=4)],
                 {("big", 1): "a", ("web", 1): "b"}, id="least-reserved-wins"),
    pytest.param([R("big", memory=3 * GiB), R("small", 3, memory=1 * GiB)], [N("a", memory=4 * GiB), N("b", memory=2 * GiB)],
                 {("big", 1): "a", ("small", 1): "b", ("small", 2): "a", ("small", 3): "b"},
                 id="largest-first-then-least-reserved-fraction"),
    pytest.param([R(replicas=2)], [N("a", "cordoned"), N("b", "draining"), N("c", "lost"), N("d")],
                 {("web", 1): "d", ("web", 2): "d"}, id="new-replicas-only-on-ready-nodes"),
    pytest.param([R(replicas=0)], ABC, {}, id="zero-replicas"),
])
def test_where_new_replicas_go(requests: list[Request], nodes: list[NodeView],
                               expected: dict[tuple[str, int], str]) -> None:
    result = place(requests, nodes, ())
    assert where(result) == expected
    assert result.unplaced == ()


@pytest.mark.parametrize(("requests", "nodes", "fragments"), [
    pytest.param([R(sel={"disk": "ssd"})], [N("a", disk="hdd"), N("b")],
                 ["no node has the labels {disk=ssd}", "placement.nodeSelector", "a: {disk=hdd}", "b: {}"],
                 id="selector-matches-nothing"),
    pytest.param([R(node="x")], ABC, ["placement.node 'x' is not a registered node", "a, b, c"], id="unknown-node"),
    pytest.param([R(node="a", sel={"disk": "ssd"})], [N("a", zone="1")],
                 ["node a does not have the labels {disk=ssd}", "its labels: {zone=1}"], id="node-and-selector-disagree"),
    pytest.param([R(node="a")], [N("a", "cordoned"), N("b")], ["no ready node", "a is cordoned", "uncordon"],
                 id="pinned-to-cordoned-node"),
    pytest.param([R(sel={"zone": "1"})], [N("a", "lost", zone="1"), N("b", "draining", zone="1"), N("c")],
                 ["the nodes with {zone=1}", "a is lost", "b is draining"], id="selector-matches-only-unready-nodes"),
    pytest.param([R(cpus=3)], [N("a", cpus=1), N("b", cpus=2)],
                 ["reserves 3 CPUs", "resources.reservations", "the most free on the 2 ready nodes", "2 CPUs (on b)"],
                 id="too-little-cpu"),
    pytest.param([R(memory=2 * GiB, sel={"zone": "1"})],
                 [N("a", memory=GiB, zone="1"), N("b", memory=512 * MiB, zone="1"), N("c", memory=8 * GiB)],
                 ["reserves 2 GiB memory", "2 ready nodes matching", "1 GiB memory (on a)"],
                 id="too-little-memory-among-the-matching"),
    pytest.param([R(cpus=1, memory=8 * GiB)], [N("a", cpus=4, memory=GiB), N("b", memory=2 * GiB)],
                 ["1 CPU and 8 GiB memory", "no CPU limit (on b)", "2 GiB memory (on b)"], id="both-resources"),
    pytest.param([R()], [], ["no node is registered", "reconcile run --node"], id="no-nodes"),
])
def test_unplaced_reasons_say_what_to_change(requests: list[Request], nodes: list[NodeView],
                                             fragments: list[str]) -> None:
    result = place(requests, nodes, ())
    assert result.assignments == ()
    [reason] = reasons(result).values()
    for fragment in fragments:
        assert fragment in reason, (fragment, reason)


def test_partial_capacity_places_what_fits_and_says_why_for_the_rest() -> None:
    result = place([R(replicas=3, cpus=1)], [N("a", cpus=1), N("b", cpus=1.5)], ())
    assert where(result) == {("web", 1): "a", ("web", 2): "b"}
    assert list(reasons(result)) == [("web", 3)]
    assert "0.5 CPUs (on b)" in reasons(result)[("web", 3)]


# -- spreading ---------------------------------------------------------------------------

def test_spread_over_a_label_counts_nodes_without_it_as_one_group() -> None:
    nodes = [N("a1", zone="a"), N("a2", zone="a"), N("a3", zone="a"), N("b1", zone="b"), N("x"), N("y")]
    result = place([R(replicas=6, spread="zone")], nodes, ())
    zone = {n.name: n.labels.get("zone") for n in nodes}
    assert Counter(zone[n] for n in on(result)) == {"a": 2, "b": 2, None: 2}
    # within a group, replicas of the service still prefer different nodes
    assert len(set(on(result))) == 5  # b1 takes both of zone b; the others one each
    assert any("zone=b had the fewest replicas" in a.reason for a in result.assignments)


def test_spread_counts_replicas_kept_on_a_cordoned_node() -> None:
    nodes = [N("a1", "cordoned", zone="a"), N("a2", zone="a"), N("b1", zone="b")]
    current = [A("a1", 1), A("a1", 2)]
    result = place([R(replicas=4, spread="zone")], nodes, current)
    assert where(result) == {("web", 1): "a1", ("web", 2): "a1", ("web", 3): "b1", ("web", 4): "b1"}


def test_spread_node_is_even_over_nodes() -> None:
    result = place([R(replicas=7, spread="node")], ABC, ())
    assert sorted(Counter(on(result)).values()) == [2, 2, 3]


def test_spread_gives_way_to_capacity() -> None:
    nodes = [N("a", cpus=1, zone="a"), N("b", cpus=8, zone="b")]
    result = place([R(replicas=4, spread="zone", cpus=1)], nodes, ())
    assert Counter(on(result)) == {"a": 1, "b": 3}
    assert result.unplaced == ()


# -- stability ---------------------------------------------------------------------------

MIX = [R("web", 3, spread="zone", cpus=0.5), R("db", 1, sel={"disk": "ssd"}, memory=GiB), R("cache", 2, node="b"),
       R("worker", 4)]
ZONES = [N("a", cpus=4, memory=8 * GiB, zone="1", disk="ssd"), N("b", cpus=4, memory=8 * GiB, zone="2"),
         N("c", cpus=2, memory=4 * GiB, zone="1")]


def test_rerunning_with_the_result_as_current_changes_nothing() -> None:
    first = place(MIX, ZONES, ())
    assert first.unplaced == ()
    assert place(MIX, ZONES, first.assignments) == first


def test_adding_a_node_moves_nothing() -> None:
    first = place(MIX, ZONES, ())
    again = place(MIX, [*ZONES, N("d", cpus=64, memory=64 * GiB, zone="3", disk="ssd")], first.assignments)
    assert where(again) == where(first)


def test_scale_up_keeps_the_existing_replicas_and_scale_down_removes_the_highest() -> None:
    first = place([R(replicas=2)], ABC, ())
    up = place([R(replicas=4)], ABC, first.assignments)
    assert {k: v for k, v in where(up).items() if k[1] <= 2} == where(first)
    assert len(up.assignments) == 4
    down = place([R(replicas=1)], ABC, up.assignments)
    assert where(down) == {("web", 1): where(first)[("web", 1)]}


def test_a_removed_service_and_a_removed_node_drop_out() -> None:
    current = [A("a", 1, "gone"), A("zz", 1, "web")]
    result = place([R()], ABC, current)
    assert where(result) == {("web", 1): "a"}


def test_changed_placement_moves_the_replica_and_says_so() -> None:
    result = place([R(node="b")], ABC, [A("a")])
    [a] = result.assignments
    assert a.node == "b" and a.reason.startswith("moved from a (no longer matches its placement)")


def test_a_current_assignment_beyond_the_capacity_now_known_moves() -> None:
    current = [A("a", 1, "x"), A("a", 1, "y")]
    result = place([R("x", cpus=2), R("y", cpus=2)], [N("a", cpus=3), N("b", cpus=3)], current)
    assert where(result) == {("x", 1): "a", ("y", 1): "b"}


def test_a_replica_assigned_twice_keeps_the_first_by_node_name() -> None:
    result = place([R()], ABC, [A("c"), A("b")])
    assert where(result) == {("web", 1): "b"}


# -- node states -------------------------------------------------------------------------

def test_cordoned_node_keeps_its_replicas_and_gets_no_new_ones() -> None:
    nodes = [N("a", "cordoned"), N("b")]
    result = place([R(replicas=3)], nodes, [A("a", 1)])
    assert where(result) == {("web", 1): "a", ("web", 2): "b", ("web", 3): "b"}
    assert "cordoned" in result.assignments[0].reason


def test_draining_moves_what_can_move_and_what_cannot_stays_and_says_why() -> None:
    nodes = [N("a", "draining", disk="ssd"), N("b")]
    requests = [R("web", 2), R("pinned", node="a"), R("ssd", sel={"disk": "ssd"})]
    current = [A("a", 1, "web"), A("a", 2, "web"), A("a", 1, "pinned"), A("a", 1, "ssd")]
    result = place(requests, nodes, current)
    assert where(result) == {("web", 1): "b", ("web", 2): "b", ("pinned", 1): "a", ("ssd", 1): "a"}
    by_key = {(a.service, a.replica): a.reason for a in result.assignments}
    assert by_key[("web", 1)].startswith("moved from a (draining)")
    assert by_key[("pinned", 1)].startswith("stays on draining node a: no other node can take it")
    assert "a is draining" in by_key[("pinned", 1)]
    assert result.unplaced == ()
    # and a drain is a fixed point too: nothing flips back and forth
    assert place(requests, nodes, result.assignments) == result


@pytest.mark.parametrize(("reschedule", "node", "fragment"), [
    pytest.param(True, "b", "moved from a (lost)", id="reschedule-moves"),
    pytest.param(False, "a", "waiting for lost node a (reschedule: false)", id="no-reschedule-waits"),
])
def test_lost_node(reschedule: bool, node: str, fragment: str) -> None:
    result = place([R(reschedule=reschedule)], [N("a", "lost"), N("b")], [A("a")])
    [a] = result.assignments
    assert a.node == node and fragment in a.reason


def test_lost_node_reschedulable_with_nowhere_to_go_waits_for_it() -> None:
    result = place([R(reschedule=True, sel={"gpu": "1"})], [N("a", "lost", gpu="1"), N("b")], [A("a")])
    [a] = result.assignments
    assert a.node == "a" and a.reason.startswith("waiting for lost node a: no other node can take it")


def test_a_lost_replica_without_a_current_assignment_is_unplaced() -> None:
    result = place([R(node="a")], [N("a", "lost")], ())
    assert "a is lost" in reasons(result)[("web", 1)]


# -- determinism and input errors ----------------------------------------------------------

def test_input_order_does_not_matter() -> None:
    first = place(MIX, ZONES, ())
    rng = random.Random(3)
    current = list(first.assignments)
    for _ in range(10):
        reqs, nodes, cur = list(MIX), list(ZONES), list(current)
        rng.shuffle(reqs)
        rng.shuffle(nodes)
        rng.shuffle(cur)
        assert place(reqs, nodes, ()) == first
        assert place(reqs, nodes, cur) == first


@pytest.mark.parametrize(("requests", "nodes"), [
    pytest.param([R("web"), R("web")], ABC, id="duplicate-service"),
    pytest.param([R()], [N("a"), N("a")], id="duplicate-node"),
])
def test_duplicates_are_a_programming_error(requests: list[Request], nodes: list[NodeView]) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        place(requests, nodes, ())


# -- invariants over random inputs (seeded, bounded) -----------------------------------------

def _random_case(rng: random.Random) -> tuple[list[Request], list[NodeView]]:
    nodes = []
    for i in range(rng.randint(1, 7)):
        labels = {k: rng.choice(["1", "2"]) for k in ("zone", "disk") if rng.random() < 0.7}
        states: list[NodeState] = ["ready", "ready", "ready", "ready", "cordoned"]
        nodes.append(NodeView(f"n{i}", labels, rng.choice([0, 1, 2, 4]), rng.choice([0, GiB, 4 * GiB]),
                              rng.choice(states)))
    reqs = []
    for s in range(rng.randint(1, 12)):
        sel = {"zone": rng.choice(["1", "2"])} if rng.random() < 0.3 else {}
        node = rng.choice(nodes).name if rng.random() < 0.1 else None
        spread = rng.choice([None, None, "zone", "node"])
        reqs.append(Request(f"s{s}", rng.randint(0, 5), node, sel, spread, rng.choice([0.0, 0.0, 0.25, 1.0]),
                            rng.choice([0, 0, 256 * MiB, GiB]), rng.random() < 0.5))
    return reqs, nodes


def _check_invariants(reqs: Sequence[Request], nodes: Sequence[NodeView], result: PlacementResult,
                      fresh: bool) -> None:
    by_name = {n.name: n for n in nodes}
    by_service = {r.service: r for r in reqs}
    keys = [(a.service, a.replica) for a in result.assignments] + [(u.service, u.replica) for u in result.unplaced]
    assert len(keys) == len(set(keys)), "a replica is assigned (or reported) twice"
    assert set(keys) == {(r.service, k) for r in reqs for k in range(1, r.replicas + 1)}, "every replica is accounted for"
    for a in result.assignments:
        r, n = by_service[a.service], by_name[a.node]
        assert r.node in (None, n.name) and all(n.labels.get(k) == v for k, v in r.node_selector.items())
        if fresh:
            assert n.state == "ready"
    for n in nodes:
        mine = [by_service[a.service] for a in result.assignments if a.node == n.name]
        if n.cpus:
            assert sum(round(r.cpus * 1000) for r in mine) <= round(n.cpus * 1000), f"{n.name} over its CPUs"
        if n.memory:
            assert sum(r.memory for r in mine) <= n.memory, f"{n.name} over its memory"
    for u in result.unplaced:
        assert u.reason and u.reason[0].islower() and len(u.reason) > 20


def _check_spread(reqs: Sequence[Request], nodes: Sequence[NodeView], result: PlacementResult) -> None:
    """With unlimited capacity, a fresh spread differs by at most 1 between the groups of candidate nodes."""
    for r in reqs:
        if r.spread is None or r.cpus or r.memory:
            continue
        cands = [n for n in nodes if n.state == "ready" and r.node in (None, n.name)
                 and all(n.labels.get(k) == v for k, v in r.node_selector.items())]
        group: dict[str, Any] = {n.name: (n.name if r.spread == "node" else n.labels.get(r.spread)) for n in cands}
        counts = Counter(group[a.node] for a in result.assignments if a.service == r.service)
        if cands and r.replicas:
            values = [counts.get(g, 0) for g in set(group.values())]
            assert max(values) - min(values) <= 1, (r, counts)


@pytest.mark.parametrize("seed", range(150))
def test_random_inputs_keep_the_invariants(seed: int) -> None:
    rng = random.Random(seed)
    reqs, nodes = _random_case(rng)
    fresh = place(reqs, nodes, ())
    _check_invariants(reqs, nodes, fresh, fresh=True)
    unlimited = [NodeView(n.name, n.labels, 0, 0, n.state) for n in nodes]
    _check_spread(reqs, unlimited, place(reqs, unlimited, ()))
    assert place(reqs, nodes, fresh.assignments) == fresh, "not a fixed point"
    # the world changes: a node cordons, another drains or is lost, a service scales
    states: list[NodeState] = ["ready", "cordoned", "draining", "lost"]
    changed = [NodeView(n.name, n.labels, n.cpus, n.memory, rng.choice(states)) for n in nodes]
    rescaled = [Request(r.service, rng.randint(0, 5), r.node, r.node_selector, r.spread, r.cpus, r.memory,
                        r.reschedule) for r in reqs]
    after = place(rescaled, changed, fresh.assignments)
    _check_invariants(rescaled, changed, after, fresh=False)
    for a in after.assignments:
        state = {n.name: n.state for n in changed}[a.node]
        before = where(fresh).get((a.service, a.replica))
        if state in ("cordoned", "draining", "lost"):
            assert before == a.node, f"new replica on a {state} node"
    assert place(rescaled, changed, after.assignments) == after, "not a fixed point after a change"

