"""The node side of ``reconcile run --node NAME``: one agent per node (docs/MULTI-HOST.md).

- ``register``: the node's labels, engine version and capacity go into the store.
- ``tick``: acquires or renews the node lease (``controller.nodelease``); the store's
  ``fence`` is set to the token, so every status/audit write of this process is checked
  against it in its own transaction (``store.nodes.check_fence``).
- ``hooks``: what the reconciler changes on a node (``reconciler.NodeHooks``): each desired
  service narrowed to the replicas assigned here; status rows written only for services
  whose lowest assigned replica runs here (the others' status stays in memory); every
  engine action gated by the local deadline.
- ``remove_moved_away``: on (re)acquiring the lease, before anything else, the containers
  this node's agent made (label ``reconcile.node``) of replicas no longer assigned here are
  removed (audited ``RemovedMovedAway``): a rescheduled replica never runs twice.
- ``schedule``: while this agent holds the scheduler lease, one placement pass
  (``controller.scheduler.decide``) and its fenced write.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from loguru import logger

from controller import labels as L
from controller.engine import Engine
from controller.errors import NotOwner, ReconcileError
from controller.lease import holder_id
from controller.nodelease import NodeOwnership, Tick, renew_every
from controller.reconciler import NodeHooks
from controller.render import DesiredService
from controller.scheduler import decide, default_node, request
from store import Event, Store
from store.records import Fence, Node

DEFAULT_TTL = 15.0


def node_ttl(environ: dict[str, str] | None = None) -> float:
    """RECONCILE_NODE_TTL (seconds), default 15."""
    raw = (environ if environ is not None else dict(os.environ)).get("RECONCILE_NODE_TTL", "")
    try:
        ttl = float(raw) if raw else DEFAULT_TTL
    except ValueError:
        return DEFAULT_TTL
    return ttl if ttl > 0 else DEFAULT_TTL


@dataclass(frozen=True)
class AgentOptions:
    node: str
    labels: dict[str, str] = field(default_factory=dict)
    ttl: float = DEFAULT_TTL
    default_node: str | None = None  # RECONCILE_DEFAULT_NODE: where stacks without placement go

    @property
    def renew_every(self) -> float:
        return renew_every(self.ttl)


class Agent:
    def __init__(self, store: Store, engine: Engine, opts: AgentOptions, clock: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic):
        self.store = store
        self.engine = engine
        self.opts = opts
        self.clock = clock
        self.node = opts.node
        self.holder = holder_id("agent")
        self.ownership = NodeOwnership(store.nodes, opts.node, self.holder, opts.ttl, mono)
        # every status/audit write of this process is fenced, from the start: before the
        # first acquisition (token -1 never matches) and after a loss (the old token) too
        store.fence = Fence(opts.node, self.holder, -1)
        self._primary: set[str] = set()
        self._desired: set[str] = set()
        self.scheduling = False

    # -- registration and the lease ---------------------------------------------
    def register(self) -> bool:
        version, cpus, memory = "", 0.0, 0
        try:
            version = self.engine.info().version
            cpus, memory = self.engine.capacity()
        except ReconcileError as exc:
            logger.warning(f"node {self.node}: engine capacity unknown ({exc}); registered without it")
        return self.store.nodes.register(Node(self.node, dict(self.opts.labels), version, cpus, memory),
                                         actor=f"agent:{self.node}")

    def tick(self) -> Tick:
        t = self.ownership.tick()
        if self.ownership.fence is not None:  # a loss keeps the old token: refused from now on
            self.store.fence = self.ownership.fence
        return t

    def may_act(self) -> bool:
        return self.ownership.may_act()

    def release(self) -> None:
        if self.scheduling:
            self.store.nodes.release_scheduler(self.holder)
        self.ownership.release()  # the fence stays: nothing more is written under it

    # -- the reconciler's hooks --------------------------------------------------
    def hooks(self) -> NodeHooks:
        return NodeHooks(narrow=self.narrow, writes_status=self.writes_status, gate=self.gate)

    def writes_status(self, name: str) -> bool:
        """This node writes the status row of the services whose lowest assigned replica
        runs here, and drops that of a deleted service (whichever node removes it)."""
        return name in self._primary or name not in self._desired

    def gate(self) -> None:
        if not self.ownership.may_act():
            raise NotOwner(f"node {self.node}: its lease was not renewed before the local deadline; not acting",
                           retry_after=1.0)

    def narrow(self, desired: dict[str, DesiredService]) -> dict[str, DesiredService]:
        """Each service with the replicas assigned to this node (none: its containers here go)."""
        mine: dict[str, set[int]] = {}
        lowest: dict[str, tuple[int, str]] = {}
        for p in self.store.nodes.assignments():
            if not p.node:
                continue
            if p.node == self.node:
                mine.setdefault(p.service, set()).add(p.replica)
            if p.service not in lowest or p.replica < lowest[p.service][0]:
                lowest[p.service] = (p.replica, p.node)
        self._primary = {s for s, (_r, n) in lowest.items() if n == self.node}
        self._desired = set(desired)
        return {name: replace(svc, node=self.node, replica_set=frozenset(mine.get(name, ())))
                for name, svc in desired.items()}

    # -- a returning node ---------------------------------------------------------
    def remove_moved_away(self, instance: str) -> list[str]:
        """Remove this node's containers of replicas not assigned here any more (first
        thing after (re)acquiring the lease). Returns the removed container names."""
        assigned = {(p.service, p.replica) for p in self.store.nodes.assignments(node=self.node)}
        desired = set(self.store.desired())
        removed: list[str] = []
        events: list[Event] = []
        for c in self.engine.list_owned(instance):
            if c.labels.get(L.NODE) != self.node or (c.service, c.replica) in assigned:
                continue
            if c.service not in desired:
                continue  # deleted: the planner removes it as an orphan (with its preStop hooks)
            self.gate()
            self.engine.remove(c.id, force=True)
            removed.append(c.name)
            logger.warning(f"node {self.node}: removed {c.name}: replica {c.replica} of {c.service} "
                           "was moved to another node while this one was away")
            events.append(Event(ts=self.clock(), service=c.service, container_id=c.id, type="RemovedMovedAway",
                                reason=f"replica {c.replica} is assigned to another node; node {self.node} "
                                       "removed its copy on return", message=f"container {c.short_id} ({c.name})",
                                generation=c.generation, actor=f"agent:{self.node}"))
        if events:
            self.store.record(events)
        return removed

    # -- the scheduler -------------------------------------------------------------
    def schedule(self) -> int:
        """One placement pass if this agent holds (or takes) the scheduler lease; the
        number of audit rows written."""
        if not self.ownership.may_act():
            return 0
        self.scheduling = self.store.nodes.acquire_scheduler(self.holder, ttl=self.opts.ttl)
        if not self.scheduling:
            return 0
        snap = self.store.nodes.snapshot()
        fallback = default_node(snap.nodes, self.opts.default_node)
        requests = [request(name, d.spec, d.metadata, fallback) for name, d in sorted(self.store.desired().items())]
        change = decide(requests, snap).write
        if change:
            self.store.nodes.write_placement(change, scheduler=self.holder)
            for e in change.events:
                logger.info(f"scheduler: {e.type} {e.service} {e.reason}".replace("  ", " "))
        return len(change.events)
