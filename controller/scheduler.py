"""The scheduler's decision: from the desired services, the nodes with their leases and the
stored assignments, at the database's ``now``, to the assignment changes and their audit
rows. Pure (time is a parameter); ``controller.agent`` reads the snapshot and writes the
answer (``store.nodes.Nodes.write_placement``) while it holds the scheduler lease.

- A node is ``lost`` when its lease is free or expired by the database's clock; then
  ``draining``, ``cordoned`` (the operator's flags), else ``ready``. ``NodeLost`` is
  audited once when a node becomes lost (the node row's ``lost`` flag remembers it) and
  ``NodeReady`` when it is back.
- ``controller.placement.place`` decides; here only the differences with the stored
  assignments are turned into writes: ``Placed`` (a replica gets a node), ``Rescheduled``
  (it moves), ``Unplaceable`` (it has none: stored as an assignment to node ``""`` with the
  reason, so ``status``/``describe`` show it and it is audited only when the reason changes).
  Level-triggered: a pass that finds everything as stored writes nothing.
- A stack applied without placement runs on one node: its resources carry
  ``metadata.node`` (``apply --node``), else the default node (the only node, or
  ``RECONCILE_DEFAULT_NODE``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.placement import Assignment, NodeState, NodeView, PlacementResult, Request, place
from store.records import Event, Node, NodeLease, Placed, PlacementWrite, Snapshot

PlaceFn = Callable[[Sequence[Request], Sequence[NodeView], Sequence[Assignment]], PlacementResult]
ACTOR = "scheduler"


def node_state(node: Node, lease: NodeLease | None, now: float) -> NodeState:
    if lease is None or not lease.holder or lease.expires_at < now:
        return "lost"
    if node.draining:
        return "draining"
    if node.cordoned:
        return "cordoned"
    return "ready"


def request(name: str, spec: Mapping[str, Any], metadata: Mapping[str, Any], default_node: str | None) -> Request:
    """One desired resource's placement request (from its stored spec and metadata)."""
    placement = spec.get("placement") or {}
    reserve = (spec.get("resources") or {}).get("reservations") or {}
    node = placement.get("node")
    if not placement:  # a stack without placement runs on one node
        node = metadata.get("node") or default_node
    return Request(service=name, replicas=int(spec.get("replicas", 1)), node=node,
                   node_selector=dict(placement.get("nodeSelector") or {}), spread=placement.get("spread"),
                   cpus=float(reserve.get("cpus") or 0.0), memory=int(reserve.get("memory") or 0),
                   reschedule=bool(placement.get("reschedule", False)))


def default_node(nodes: Sequence[Node], configured: str | None) -> str | None:
    """Where a stack without placement goes when its apply named no node."""
    if configured:
        return configured
    return nodes[0].name if len(nodes) == 1 else None


@dataclass(frozen=True)
class Decision:
    write: PlacementWrite
    states: dict[str, NodeState]


def decide(requests: Sequence[Request], snap: Snapshot, place_fn: PlaceFn = place) -> Decision:
    """The changes one scheduler pass makes (empty when everything is as stored)."""
    now = snap.now
    states = {n.name: node_state(n, snap.leases.get(n.name), now) for n in snap.nodes}
    events: list[Event] = []
    lost = _losses(snap, states, events)
    views = [NodeView(n.name, n.labels, n.cpus, n.memory, states[n.name]) for n in snap.nodes]
    stored = {(p.service, p.replica): p for p in snap.assignments}
    current = [Assignment(p.service, p.replica, p.node, p.reason) for p in snap.assignments if p.node]
    result = place_fn(requests, views, current)
    upsert, seen = _changes(result, stored, now, events)
    wanted = {(r.service, i) for r in requests for i in range(1, r.replicas + 1)}
    drop = tuple(sorted(k for k in stored if k not in seen or k not in wanted))
    return Decision(PlacementWrite(tuple(upsert), drop, tuple(lost), tuple(events)), states)


def _losses(snap: Snapshot, states: Mapping[str, NodeState], events: list[Event]) -> list[tuple[str, bool]]:
    """The nodes whose ``lost`` flag changes (NodeLost once per loss, NodeReady on return)."""
    now = snap.now
    lost: list[tuple[str, bool]] = []
    for n in snap.nodes:
        if states[n.name] == "lost" and not n.lost:
            lease = snap.leases.get(n.name)
            holder = lease.holder if lease and lease.holder else "nobody"
            lost.append((n.name, True))
            events.append(Event(ts=now, service="", type="NodeLost", actor=ACTOR,
                                reason=f"node {n.name} lost: its lease expired (last holder {holder})",
                                message=f"last heartbeat at {n.heartbeat_at:.3f}"))
        elif states[n.name] != "lost" and n.lost:
            lost.append((n.name, False))
            events.append(Event(ts=now, service="", type="NodeReady", actor=ACTOR,
                                reason=f"node {n.name} is back: its agent holds the lease again"))
    return lost


def _changes(result: PlacementResult, stored: Mapping[tuple[str, int], Placed], now: float,
             events: list[Event]) -> tuple[list[Placed], set[tuple[str, int]]]:
    upsert: list[Placed] = []
    seen: set[tuple[str, int]] = set()
    for a in result.assignments:
        key = (a.service, a.replica)
        seen.add(key)
        old = stored.get(key)
        if old is not None and old.node == a.node:
            if old.reason != a.reason:  # e.g. now "waiting for lost node n1": shown by describe, not audited
                upsert.append(Placed(a.service, a.replica, a.node, a.reason, old.since))
            continue
        upsert.append(Placed(a.service, a.replica, a.node, a.reason, now))
        if old is None or not old.node:
            events.append(Event(ts=now, service=a.service, type="Placed", actor=ACTOR,
                                reason=f"replica {a.replica} on node {a.node}: {a.reason}"))
        else:
            events.append(Event(ts=now, service=a.service, type="Rescheduled", actor=ACTOR,
                                reason=f"replica {a.replica} moved from node {old.node} to {a.node}: {a.reason}"))
    for u in result.unplaced:
        key = (u.service, u.replica)
        seen.add(key)
        old = stored.get(key)
        if old is not None and not old.node and old.reason == u.reason:
            continue
        upsert.append(Placed(u.service, u.replica, "", u.reason, now))
        events.append(Event(ts=now, service=u.service, type="Unplaceable", actor=ACTOR,
                            reason=f"replica {u.replica} cannot be placed: {u.reason}"))
    return upsert, seen
