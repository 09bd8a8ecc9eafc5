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
- ``fence_check``: while the lease is not renewed, the running containers of services with
  ``placement.reschedule: true`` are stopped before the lease can expire (``controller.fence``
  decides when and with which grace; the engine only, never the store). From the first
  stop on, the agent does not act until a renewal succeeds; ``settle_fenced`` then audits
  each stop (``FencedStop``) and starts again those still assigned here.
- ``schedule``: while this agent holds the scheduler lease, one placement pass
  (``controller.scheduler.decide``) and its fenced write.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field, replace

from loguru import logger

from controller import fence
from controller import labels as L
from controller.engine import Engine
from controller.errors import NotOwner, ReconcileError
from controller.lease import holder_id
from controller.nodelease import NodeOwnership, Tick, margin, renew_every
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
        # the fence (controller.fence): what it may stop, kept from the last pass (the store may
        # be out of reach when it is needed), what it stopped, and whether it is stopping
        self._movable: dict[str, float] = {}  # service -> stopGracePeriod (reschedule: true)
        self._generations: dict[str, int] = {}
        self._noted: set[tuple[str, float]] = set()
        self._fence_lock = threading.Lock()
        self._issued: dict[str, Future[None]] = {}
        self._fenced: dict[str, fence.Fenced] = {}
        self._renewed_wall = clock()
        self.fencing = False
        self._next_look = 0.0  # monotonic: a fence that stopped everything looks once a second
        self._stopper: ThreadPoolExecutor | None = None

    # -- registration and the lease ---------------------------------------------
    def register(self) -> bool:
        version, cpus, memory = "", 0.0, 0
        try:
            version = self.engine.info().version
            cpus, memory = self.engine.capacity()
        except ReconcileError as exc:
            logger.warning(f"node {self.node}: engine capacity unknown ({exc}); registered without it")
        ttl = self.opts.ttl
        if not fence.fits(ttl):
            logger.warning(f"node {self.node}: RECONCILE_NODE_TTL {ttl:g}s is too short for the fence (at least 2.5s): "
                           "if this node is cut off from the store, the containers of services with "
                           "placement.reschedule may be stopped only after the agent's deadline")
        logger.info(f"node {self.node}: fence: when the node lease is not renewed, the containers of services "
                    f"with placement.reschedule are stopped from {fence.earliest(ttl):g}s after the last renewal, "
                    f"with a grace of at most {fence.max_grace(ttl)}s, ending before the agent's deadline, "
                    f"{margin(ttl):g}s before the lease can expire (RECONCILE_NODE_TTL {ttl:g}s)")
        return self.store.nodes.register(Node(self.node, dict(self.opts.labels), version, cpus, memory),
                                         actor=f"agent:{self.node}")

    def tick(self) -> Tick:
        started = self.clock()
        t = self.ownership.tick()
        if self.ownership.fence is not None:  # a loss keeps the old token: refused from now on
            self.store.fence = self.ownership.fence
        if t.kind in ("acquired", "renewed", "regained"):
            self._renewed_wall = started
            if self.fencing:  # the fence stopped containers: they are settled first, as on a regain
                self.fencing = False
                if t.kind == "renewed":
                    t = Tick("regained", token=t.token)
        return t

    def may_act(self) -> bool:
        """Holds its lease, before its local deadline, and the fence has not begun."""
        return self.ownership.may_act() and not self.fencing

    def release(self) -> None:
        if self.scheduling:
            self.store.nodes.release_scheduler(self.holder)
        self.ownership.release()  # the fence stays: nothing more is written under it
        if self._stopper is not None:
            self._stopper.shutdown(wait=False)

    # -- the reconciler's hooks --------------------------------------------------
    def hooks(self) -> NodeHooks:
        return NodeHooks(narrow=self.narrow, writes_status=self.writes_status, gate=self.gate)

    def writes_status(self, name: str) -> bool:
        """This node writes the status row of the services whose lowest assigned replica
        runs here, and drops that of a deleted service (whichever node removes it)."""
        return name in self._primary or name not in self._desired

    def gate(self) -> None:
        if not self.may_act():
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
        self._remember_movable(desired)
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

    # -- the fence (controller.fence) ------------------------------------------------
    def _remember_movable(self, desired: dict[str, DesiredService]) -> None:
        movable: dict[str, float] = {}
        for name, svc in desired.items():
            placement = svc.spec.placement
            if placement is None or not placement.reschedule:
                continue
            grace = float(svc.spec.stopGracePeriod)
            movable[name] = grace
            note = fence.grace_note(name, grace, self.opts.ttl)
            if note and (name, grace) not in self._noted:
                self._noted.add((name, grace))
                logger.warning(f"node {self.node}: {note}")
        self._movable = movable
        self._generations = {name: svc.generation for name, svc in desired.items()}

    def fence_check(self, instance: str) -> list[fence.Stop]:
        """Stop what is due (the agent's fence job, a few times a second). Reads the engine
        only, and only once a renewal is overdue; returns the stops it issued."""
        own = self.ownership
        if own.fence is None or not self._movable:
            return []
        now = own.mono()
        if now < fence.first_due(own.deadline, self.opts.ttl) or (self.fencing and now < self._next_look):
            return []
        cands = fence.candidates(self.engine.list_owned(instance), self.node, self._movable)
        with self._fence_lock:
            issued = frozenset(self._issued)
        stops = fence.decide(cands, deadline=own.deadline, ttl=self.opts.ttl, now=own.mono(), issued=issued)
        if not stops:
            if self.fencing and all(c.container_id in issued for c in cands):
                self._next_look = now + 1.0  # all stopped or being stopped: nothing new can start
            return []
        if not self.fencing:
            self.fencing = True  # nothing acts from now on, until a renewal
            logger.warning(f"node {self.node}: the node lease was not renewed; stopping the containers of "
                           f"services that may be rescheduled ({len(stops)}) before it can expire")
        if self._stopper is None:
            self._stopper = ThreadPoolExecutor(max_workers=fence.WORKERS, thread_name_prefix="fence")
        renewed_at = self._renewed_wall
        with self._fence_lock:
            for s in stops:
                self._issued[s.container_id] = self._stopper.submit(self._fence_stop, s, renewed_at)
        return stops

    def _fence_stop(self, s: fence.Stop, renewed_at: float) -> None:
        own = self.ownership
        timeout = min(s.timeout, fence.stop_timeout(s.timeout, deadline=own.deadline, now=own.mono()))
        at = self.clock()
        try:
            self.engine.stop(s.container_id, timeout=timeout)
        except ReconcileError as exc:
            logger.error(f"node {self.node}: fence: cannot stop {s.name} ({exc}); trying again")
            with self._fence_lock:
                self._issued.pop(s.container_id, None)
            return
        logger.warning(f"node {self.node}: fence: stopped {s.name} ({s.service} replica {s.replica}, grace "
                       f"{timeout}s): the node lease was not renewed and the service may be rescheduled")
        with self._fence_lock:
            self._fenced[s.container_id] = fence.Fenced(replace(s, timeout=timeout), at, renewed_at)

    def settle_fenced(self, instance: str) -> list[str]:
        """After a renewal that follows fenced stops (after ``remove_moved_away``): audit each
        stop (``FencedStop``) and start again the stopped containers still assigned here.
        Returns the names started. Idempotent: retried at the next tick when it fails."""
        with self._fence_lock:
            pending = [f for f in self._issued.values() if not f.done()]
        wait_futures(pending, timeout=fence.max_grace(self.opts.ttl) + 35.0)  # the engine bounds each stop
        with self._fence_lock:
            fenced = dict(self._fenced)
        if not fenced:
            return []
        assigned = {(p.service, p.replica) for p in self.store.nodes.assignments(node=self.node)}
        desired = set(self.store.desired())
        observed = {c.id: c for c in self.engine.list_owned(instance)}
        events = [fence.fenced_event(f, self.node, self._generations.get(f.stop.service, 0)) for f in fenced.values()]
        started: list[str] = []
        for cid, _f in sorted(fenced.items(), key=lambda kv: kv[1].at):
            c = observed.get(cid)
            if c is None or c.running or (c.service, c.replica) not in assigned or c.service not in desired:
                continue  # removed (moved away or deleted) or already running
            self.gate()
            self.engine.start(cid)
            started.append(c.name)
            events.append(Event(ts=self.clock(), service=c.service, container_id=cid, type="Started",
                                reason=f"started again after the fence: node {self.node} holds its lease again",
                                message=f"container {c.short_id} ({c.name})", generation=c.generation,
                                actor=f"agent:{self.node}"))
        self.store.record(sorted(events, key=lambda e: e.ts))
        with self._fence_lock:
            for cid in fenced:
                self._fenced.pop(cid, None)
                self._issued.pop(cid, None)
        return started

    # -- the scheduler -------------------------------------------------------------
    def schedule(self) -> int:
        """One placement pass if this agent holds (or takes) the scheduler lease; the
        number of audit rows written."""
        if not self.may_act():
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
