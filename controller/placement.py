"""Placement: which node runs each replica of each service. A pure function.

``place(requests, nodes, current) -> PlacementResult``: the services' needs (``Request``),
the nodes as they are now (``NodeView``) and the assignments in force (``Assignment``) give
an assignment per replica, or an ``Unplaced`` with a sentence the user can act on.
No I/O, no clock, no logging, no randomness; it imports nothing from the project.

The algorithm, in two phases:

1. **Keep.** Every current assignment (one per (service, replica); replicas above the
   service's count are dropped, so scaling down removes the highest replicas) is kept when
   its node is still registered, still satisfies the request (``node``, ``nodeSelector``)
   and has room for its reservation (checked in the order (service, replica)); by node state:
   - ``ready``: kept, reason unchanged;
   - ``cordoned``: kept (a cordoned node keeps what it has, gets nothing new);
   - ``draining``: set aside to move (phase 2); when no other node can take it, it *stays* on
     the draining node and the reason says why (``stays on draining node ...``) — a drain never
     takes a replica down that cannot run elsewhere; a replica pinned by ``node:`` to a draining
     node therefore stays. The caller sees an unfinished drain as assignments left on it;
   - ``lost``: a ``reschedule: true`` replica is set aside to move (if nothing can take it, it
     stays assigned to the lost node, reason ``waiting for lost node ...``); any other replica
     stays assigned to the lost node (``waiting for lost node X (reschedule: false)``).
   A current assignment on a node that is not in ``nodes`` at all (deregistered), or that no
   longer satisfies the request, is placed afresh. Valid assignments are never moved to
   improve balance: adding a node moves nothing.
2. **Place.** Replicas still without a node are placed, services in the order (largest
   memory reservation, largest CPU reservation, name), each service's replicas in ascending
   order. A candidate node is ``ready``, satisfies ``node`` and every ``nodeSelector`` label,
   and has room (capacity minus the reservations of the replicas assigned to it; a capacity of
   0 is unknown = no limit, per resource). Among candidates the smallest key wins:
   - with ``spread: KEY``: (replicas of the service in the node's KEY group, replicas of the
     service on the node, reserved load, replicas on the node, name). Nodes without the label
     KEY form one group together (as swarm does); ``spread: node`` makes each node its own group;
   - without spread: (replicas of the service on the node, reserved load, replicas on the node,
     name) — replicas of one service prefer different nodes (swarm's default), ties go to the
     least reserved node, then the name.
   "Reserved load" is the larger of the node's reserved CPU and memory fractions, in integer
   parts per million (a resource of unknown capacity counts 0). CPUs are counted in integer
   millicpus and memory in bytes, so capacity checks are exact.
   Once one replica of a service finds no node, the rest cannot either (room only shrinks
   during a pass): they are all ``Unplaced`` with the same reason. Reasons for what could not
   be placed are written at the end, from the final free capacity (what the user sees now).

Guarantees: the result depends only on the *contents* of the inputs (their order does not
matter); no node gets more reservations than its capacity from new placements; a replica is
assigned at most once; ``node``/``nodeSelector`` always hold for a new assignment; with room
everywhere, a fresh spread differs by at most 1 between the groups that have candidate nodes;
``place(r, n, place(r, n, c).assignments)`` equals ``place(r, n, c)`` (a fixed point: running
again changes nothing). Not guaranteed: optimal packing (it is a greedy first-fit-decreasing),
rebalancing after nodes are added.

Cost: eligible node lists are computed once per distinct (node, nodeSelector); placing a
replica looks at its eligible nodes only, so a pass is O(replicas x eligible nodes).
Duplicate service names or node names are a programming error (``ValueError``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Literal

NodeState = Literal["ready", "cordoned", "draining", "lost"]

_PPM = 1_000_000
_COUNT_BOUND = 1 << 40  # above any replica count on one node
_LIST_AT_MOST = 8  # nodes named in one reason before "and N more"


@dataclass(frozen=True)
class NodeView:
    """A node as placement sees it. ``cpus``/``memory`` (bytes) are its capacity; 0 = unknown = no limit."""

    name: str
    labels: Mapping[str, str]
    cpus: float
    memory: int
    state: NodeState


@dataclass(frozen=True)
class Request:
    """One service's placement needs. ``cpus``/``memory`` are the reservation per replica (0 = none)."""

    service: str
    replicas: int
    node: str | None
    node_selector: Mapping[str, str]
    spread: str | None
    cpus: float
    memory: int
    reschedule: bool


@dataclass(frozen=True)
class Assignment:
    service: str
    replica: int  # 1-based
    node: str
    reason: str


@dataclass(frozen=True)
class Unplaced:
    service: str
    replica: int  # 1-based
    reason: str


@dataclass(frozen=True)
class PlacementResult:
    assignments: tuple[Assignment, ...]
    unplaced: tuple[Unplaced, ...]


def milli(cpus: float) -> int:
    """CPUs as integer millicpus (the unit capacity is counted in)."""
    return max(0, round(cpus * 1000))


def format_cpus(m: int) -> str:
    return f"{m / 1000:g} CPU" + ("" if m == 1000 else "s")


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} B"


def _labels_text(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"


def _names_text(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_LIST_AT_MOST])
    return shown + (f" and {len(names) - _LIST_AT_MOST} more" if len(names) > _LIST_AT_MOST else "")


class _Cluster:
    """The nodes, indexed by position in name order, with what is reserved on each."""

    def __init__(self, nodes: Sequence[NodeView]) -> None:
        ordered = sorted(nodes, key=lambda n: n.name)
        self.names = [n.name for n in ordered]
        self.index = {name: i for i, name in enumerate(self.names)}
        if len(self.index) != len(self.names):
            raise ValueError("duplicate node names in placement input")
        self.labels = [n.labels for n in ordered]
        self.state = [n.state for n in ordered]
        self.ready = [n.state == "ready" for n in ordered]
        self.cpu_cap = [milli(n.cpus) for n in ordered]
        self.mem_cap = [max(0, n.memory) for n in ordered]
        self.cpu_used = [0] * len(ordered)
        self.mem_used = [0] * len(ordered)
        self.count = [0] * len(ordered)  # replicas assigned, every service
        # the tie-break after the per-service counts, as one integer per node kept current by
        # ``take``: (reserved load, replicas on the node, name order), most significant first
        self._n = len(ordered) + 1
        self.rank = list(range(len(ordered)))
        self._eligible: dict[tuple[str | None, tuple[tuple[str, str], ...]], list[int]] = {}
        self._groups: dict[str, list[int]] = {}
        self._ready: dict[int, list[int]] = {}  # id(an _eligible list, kept alive there) -> its ready nodes

    def eligible(self, req: Request) -> list[int]:
        """Nodes (any state) that satisfy ``node`` and ``nodeSelector``, in name order; cached."""
        sel = tuple(sorted(req.node_selector.items()))
        key = (req.node, sel)
        found = self._eligible.get(key)
        if found is None:
            if req.node is not None:
                pinned = self.index.get(req.node)
                candidates = [] if pinned is None else [pinned]
            else:
                candidates = list(range(len(self.names)))
            found = [i for i in candidates if all(self.labels[i].get(k) == v for k, v in sel)]
            self._eligible[key] = found
        return found

    def ready_among(self, nodes: list[int]) -> list[int]:
        """The ready ones of ``nodes`` (an ``eligible`` list), cached by its identity."""
        found = self._ready.get(id(nodes))
        if found is None:
            found = self._ready[id(nodes)] = [i for i in nodes if self.ready[i]]
        return found

    def groups(self, key: str) -> list[int]:
        """Node index -> group index for ``spread: key``: the nodes with one value of label
        ``key`` form a group, those without it one more; ``node``: every node its own."""
        found = self._groups.get(key)
        if found is None:
            if key == "node":
                found = list(range(len(self.names)))
            else:
                ids: dict[str | None, int] = {}
                found = [ids.setdefault(lab.get(key), len(ids)) for lab in self.labels]
            self._groups[key] = found
        return found

    def fits(self, i: int, cpu: int, mem: int) -> bool:
        cap_c, cap_m = self.cpu_cap[i], self.mem_cap[i]
        return (not cap_c or self.cpu_used[i] + cpu <= cap_c) and (not cap_m or self.mem_used[i] + mem <= cap_m)

    def take(self, i: int, cpu: int, mem: int) -> None:
        self.cpu_used[i] += cpu
        self.mem_used[i] += mem
        self.count[i] += 1
        self.rerank(i)

    def rerank(self, i: int) -> None:
        self.rank[i] = (self.load(i) * _COUNT_BOUND + self.count[i]) * self._n + i

    def load(self, i: int) -> int:
        cap_c, cap_m = self.cpu_cap[i], self.mem_cap[i]
        lc = self.cpu_used[i] * _PPM // cap_c if cap_c else 0
        lm = self.mem_used[i] * _PPM // cap_m if cap_m else 0
        return lc if lc > lm else lm


@dataclass
class _Service:
    """One request during a pass: its replicas' nodes and the counts spreading needs."""

    req: Request
    cpu: int
    mem: int
    on_node: list[int]  # node index -> replicas of this service there
    in_group: list[int]  # group index -> replicas of this service in it (when spreading)
    group: list[int] | None  # node index -> group index, when spreading
    done: dict[int, Assignment]
    moving: dict[int, tuple[int, str]]  # replica -> (node it leaves, why)
    eligible: list[int]  # nodes (any state) satisfying node and nodeSelector, name order
    eligible_set: frozenset[int]


def place(requests: Sequence[Request], nodes: Sequence[NodeView], current: Sequence[Assignment]) -> PlacementResult:
    cl = _Cluster(nodes)
    services: dict[str, _Service] = {}
    for req in sorted(requests, key=lambda r: r.service):
        if req.service in services:
            raise ValueError(f"duplicate service {req.service!r} in placement input")
        group = cl.groups(req.spread) if req.spread is not None else None
        elig = cl.eligible(req)
        services[req.service] = _Service(req, milli(req.cpus), max(0, req.memory), [0] * len(cl.names),
                                         [0] * (max(group) + 1 if group else 0), group, {}, {}, elig,
                                         frozenset(elig))
    _keep(services, cl, current)
    failed = [(svc, _place_service(svc, cl)) for svc in sorted(services.values(), key=lambda s: (-s.mem, -s.cpu,
                                                                                                   s.req.service))]
    # Reasons are written once everything is placed, from the final free capacity: the same
    # on every pass over the same result (a fixed point), and what the user sees now.
    unplaced: list[Unplaced] = []
    for svc, replicas in failed:
        if not replicas:
            continue
        why = _why_not(svc.req, cl, svc.cpu, svc.mem)
        for replica, stays in replicas:
            if stays is None:
                unplaced.append(Unplaced(svc.req.service, replica, why))
                continue
            what = "stays on draining node" if cl.state[stays] == "draining" else "waiting for lost node"
            svc.done[replica] = Assignment(svc.req.service, replica, cl.names[stays],
                                           f"{what} {cl.names[stays]}: no other node can take it: {why}")
    assignments = [a for s in services.values() for _, a in sorted(s.done.items())]
    unplaced.sort(key=lambda u: (u.service, u.replica))
    return PlacementResult(tuple(assignments), tuple(unplaced))


def _record(svc: _Service, cl: _Cluster, replica: int, i: int, reason: str) -> None:
    cl.take(i, svc.cpu, svc.mem)
    svc.on_node[i] += 1
    if svc.group is not None:
        svc.in_group[svc.group[i]] += 1
    svc.done[replica] = Assignment(svc.req.service, replica, cl.names[i], reason)


def _keep(services: dict[str, _Service], cl: _Cluster, current: Sequence[Assignment]) -> None:
    """Phase 1 (see the module docstring): the hot path of a steady pass."""
    names = cl.names
    for a in sorted(current, key=attrgetter("service", "replica", "node")):
        svc = services.get(a.service)
        replica = a.replica
        if svc is None or not 1 <= replica <= svc.req.replicas or replica in svc.done or replica in svc.moving:
            continue  # a removed service, scaled down, or a duplicate (the first by node name counts)
        i = cl.index.get(a.node)
        if i is None:
            continue  # a node no longer registered: placed afresh
        kept = _kept(svc, cl, i, a)
        if kept is None:
            continue
        cl.cpu_used[i] += svc.cpu
        cl.mem_used[i] += svc.mem
        cl.count[i] += 1
        svc.on_node[i] += 1
        if svc.group is not None:
            svc.in_group[svc.group[i]] += 1
        svc.done[replica] = kept if isinstance(kept, Assignment) else Assignment(a.service, replica, names[i], kept)
    for i in range(len(names)):
        cl.rerank(i)


def _kept(svc: _Service, cl: _Cluster, i: int, a: Assignment) -> str | Assignment | None:
    """Whether current assignment ``a`` (on node ``i``) stays: the assignment itself, a new reason
    for it, or None when it is set aside to move (``svc.moving``)."""
    if i not in svc.eligible_set:
        svc.moving[a.replica] = (i, "no longer matches its placement")
        return None
    state = cl.state[i]
    if state == "lost":
        if svc.req.reschedule:
            svc.moving[a.replica] = (i, "lost")
            return None
        return f"waiting for lost node {a.node} (reschedule: false)"
    if state == "draining":
        svc.moving[a.replica] = (i, "draining")
        return None
    if not cl.fits(i, svc.cpu, svc.mem):
        svc.moving[a.replica] = (i, "over capacity")
        return None
    return f"kept on cordoned node {a.node} (gets no new replicas)" if state == "cordoned" else a


def _place_service(svc: _Service, cl: _Cluster) -> list[tuple[int, int | None]]:
    """Place the service's replicas that have no node yet. Returns those no node can take,
    each with the draining/lost node it stays on (its room taken there; None = unplaced)."""
    req = svc.req
    todo = [k for k in range(1, req.replicas + 1) if k not in svc.done]
    if not todo:
        return []
    elig = cl.ready_among(svc.eligible)
    failed: list[tuple[int, int | None]] = []
    # one service's reasons differ only by the spread label's value (the node's group)
    said: dict[int, str] = {}
    by_label = svc.group is not None and req.spread != "node"
    for replica in todo:
        best = -1 if failed else _best(svc, cl, elig)  # room only shrinks: after one failure, all fail
        moving = svc.moving.get(replica)
        if best >= 0:
            key = svc.group[best] if by_label and svc.group is not None else -1
            reason = said.get(key) or said.setdefault(key, _placed_reason(svc, cl, best, len(elig)))
            if moving is not None:
                reason = f"moved from {cl.names[moving[0]]} ({moving[1]}): {reason}"
            _record(svc, cl, replica, best, reason)
        elif moving is not None and moving[1] in ("draining", "lost"):
            _record(svc, cl, replica, moving[0], "")  # the reason follows once the pass is done
            failed.append((replica, moving[0]))
        else:
            failed.append((replica, None))
    return failed


def _best(svc: _Service, cl: _Cluster, elig: list[int]) -> int:
    """The candidate with the smallest key (group count, count on the node, rank); the hot loop
    of a fresh pass, so compared field by field without building tuples."""
    cpu, mem = svc.cpu, svc.mem
    on_node, group, in_group, rank = svc.on_node, svc.group, svc.in_group, cl.rank
    cap_c, cap_m, used_c, used_m = cl.cpu_cap, cl.mem_cap, cl.cpu_used, cl.mem_used
    check = bool(cpu or mem)
    best, bg, bo, br = -1, 0, 0, 0
    for i in elig:
        if check and ((cap_c[i] and used_c[i] + cpu > cap_c[i]) or (cap_m[i] and used_m[i] + mem > cap_m[i])):
            continue
        g = in_group[group[i]] if group is not None else 0
        o = on_node[i]
        if best < 0 or g < bg or (g == bg and (o < bo or (o == bo and rank[i] < br))):
            best, bg, bo, br = i, g, o, rank[i]
    return best


def _placed_reason(svc: _Service, cl: _Cluster, i: int, candidates: int) -> str:
    req = svc.req
    if req.node is not None:
        return f"placement.node is {req.node}"
    where = f"of {candidates} ready node{'s' if candidates != 1 else ''}"
    if req.node_selector:
        where += f" with {_labels_text(req.node_selector)}"
    if req.spread == "node":
        return f"spread over nodes: fewest replicas of the service {where}"
    if req.spread is not None:
        value = cl.labels[i].get(req.spread)
        shown = f"{req.spread}={value}" if value is not None else f"no {req.spread} label"
        return f"spread over {req.spread}: {shown} had the fewest replicas {where}"
    return f"least loaded {where}"


def _why_not(req: Request, cl: _Cluster, cpu: int, mem: int) -> str:
    """The sentence for a replica no node can take: which constraint, which nodes, how much is free."""
    if not cl.names:
        return "no node is registered: start an agent with `reconcile run --node NAME`"
    if req.node is not None and req.node not in cl.index:
        return f"placement.node {req.node!r} is not a registered node (nodes: {_names_text(cl.names)})"
    matching = cl.eligible(req)
    if not matching:
        return _no_match(req, cl)
    ready = [i for i in matching if cl.ready[i]]
    sel = req.node_selector
    if not ready:
        what = f"placement.node {req.node}" if req.node is not None else (
            f"the nodes with {_labels_text(sel)}" if sel else "every node")
        states = [f"{cl.names[i]} is {cl.state[i]}" for i in matching]
        return f"no ready node to place on: {what}: {_names_text(states)}; uncordon a node or add one"
    return _no_room(ready, cl, cpu, mem, bool(req.node or sel))


def _no_room(ready: list[int], cl: _Cluster, cpu: int, mem: int, constrained: bool) -> str:
    need, free = [], []
    if cpu:
        need.append(format_cpus(cpu))
        free.append(_most_free(ready, cl.names, cl.cpu_cap, cl.cpu_used, format_cpus, "CPU"))
    if mem:
        need.append(format_bytes(mem) + " memory")
        free.append(_most_free(ready, cl.names, cl.mem_cap, cl.mem_used, format_bytes, "memory"))
    scope = f"{len(ready)} ready node{'s' if len(ready) != 1 else ''}" + (" matching" if constrained else "")
    return (f"not enough free capacity: a replica reserves {' and '.join(need)} (resources.reservations); "
            f"the most free on the {scope}: {', '.join(free)}")


def _no_match(req: Request, cl: _Cluster) -> str:
    sel = req.node_selector
    if req.node is not None:
        labels = cl.labels[cl.index[req.node]]
        return (f"node {req.node} does not have the labels {_labels_text(sel)} that placement.nodeSelector "
                f"asks for (its labels: {_labels_text(labels)})")
    shown = [f"{n}: {_labels_text(cl.labels[i])}" for i, n in enumerate(cl.names)]
    more = f"; and {len(shown) - _LIST_AT_MOST} more" if len(shown) > _LIST_AT_MOST else ""
    return (f"no node has the labels {_labels_text(sel)} (placement.nodeSelector); the nodes' labels: "
            + "; ".join(shown[:_LIST_AT_MOST]) + more)


def _most_free(ready: list[int], names: list[str], cap: list[int], used: list[int],
               fmt: Callable[[int], str], what: str) -> str:
    unlimited = [names[i] for i in ready if not cap[i]]
    if unlimited:
        return f"no {what} limit (on {_names_text(unlimited)})"
    i = max(ready, key=lambda j: (cap[j] - used[j], -j))
    return f"{fmt(max(0, cap[i] - used[i]))}{' memory' if what == 'memory' else ''} (on {names[i]})"
