"""Nodes, node leases (fencing tokens) and assignments: the store's side of many hosts.

- ``Nodes.register`` upserts a node (labels, engine version, capacity) and its lease row.
- A node's lease is one row: ``holder``, ``expires_at`` and ``token``. ``acquire`` is one
  atomic ``UPDATE ... WHERE holder = '' OR expires_at < now`` that also increments the
  token, so two agents can never both hold a node and every new holding has a larger
  token; ``renew`` is ``UPDATE ... WHERE holder = me AND token = mine``; no read-then-write.
- Fencing: ``check_fence(session, fence)`` is the first statement of every transaction an
  agent writes in (``Store.record``/``rollback`` when ``Store.fence`` is set, and the
  writes here): it reads the lease row ``FOR UPDATE`` (PostgreSQL; SQLite's write
  transactions are ``BEGIN IMMEDIATE``, serialised anyway) and raises ``Fenced`` unless
  holder and token are still the agent's. A takeover therefore waits for, or invalidates,
  every write of the agent it replaced.
- Time: ``now=None`` means the database's own clock (evaluated in the statement), so
  expiry is judged by one clock whatever the hosts' clocks say; tests pass ``now``.
- The scheduler holds the ``scheduler`` row of the ``leases`` table (``acquire_scheduler``)
  and writes assignments and node-loss flags in one fenced transaction (``write_placement``).

Does not import ``controller``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, delete, extract, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store import db
from store.errors import Fenced
from store.models import AssignmentRow, EventRow, LeaseRow, NodeLeaseRow, NodeRow
from store.records import Event, Fence, Node, NodeLease, Placed, PlacementWrite, Snapshot

if TYPE_CHECKING:
    from store.repository import Store

SCHEDULER_LEASE = "scheduler"


def now_expr(s: Session, now: float | None) -> ColumnElement[Any]:
    """``now`` as a literal, or the database's clock in epoch seconds."""
    if now is not None:
        return literal(now)
    if s.get_bind().dialect.name == "sqlite":
        return (func.julianday("now") - 2440587.5) * 86400.0
    return extract("epoch", func.clock_timestamp())


def _db_time(s: Session, now: float | None) -> float:
    return now if now is not None else float(s.scalar(select(now_expr(s, None))) or 0.0)


def check_fence(s: Session, fence: Fence) -> None:
    """Raise ``Fenced`` unless ``fence`` still holds its node (first statement of a write)."""
    row = s.execute(select(NodeLeaseRow.holder, NodeLeaseRow.token).where(NodeLeaseRow.node == fence.node)
                    .with_for_update()).first()
    if row is None or row.holder != fence.holder or row.token != fence.token:
        held = f"held by {row.holder or 'nobody'} with token {row.token}" if row is not None else "not registered"
        raise Fenced(f"node {fence.node}: lease token {fence.token} of {fence.holder} is no longer current ({held})")


def _node(row: NodeRow) -> Node:
    return Node(row.name, json.loads(row.labels or "{}"), row.engine_version, row.cpus, row.memory,
                row.cordoned, row.draining, row.lost, row.registered_at, row.heartbeat_at)


def _lease(row: NodeLeaseRow) -> NodeLease:
    return NodeLease(row.node, row.holder, row.token, row.acquired_at, row.expires_at)


def _event_row(e: Event) -> EventRow:
    return EventRow(ts=e.ts, service=e.service, container_id=e.container_id, type=e.type, reason=e.reason,
                    message=e.message, generation=e.generation, actor=e.actor)


class Nodes:
    """The repository of nodes, node leases and assignments (one transaction per method)."""

    def __init__(self, store: Store):
        self.store = store

    # -- nodes -------------------------------------------------------------
    def register(self, node: Node, *, now: float | None = None, actor: str = "agent") -> bool:
        """Store (or refresh) a node's labels, engine and capacity; True when it is new
        (audited ``NodeRegistered``). Its operator flags are kept."""
        with self.store.writing() as s, s.begin():
            ts = _db_time(s, now)
            row = s.get(NodeRow, node.name)
            new = row is None
            if row is None:
                row = NodeRow(name=node.name, registered_at=ts, cordoned=False, draining=False, lost=False)
                s.add(row)
            row.labels = json.dumps(dict(node.labels), sort_keys=True)
            row.engine_version, row.cpus, row.memory, row.heartbeat_at = (
                node.engine_version, node.cpus, node.memory, ts)
            if s.get(NodeLeaseRow, node.name) is None:
                s.add(NodeLeaseRow(node=node.name, holder="", token=0, acquired_at=0.0, expires_at=0.0))
            if new:
                self._audit(s, [Event(ts=ts, service="", type="NodeRegistered", reason=f"node {node.name} registered",
                                      message=_capacity(node), actor=actor)])
        return new

    def nodes(self) -> list[Node]:
        with self.store.reading() as s:
            return [_node(r) for r in s.scalars(select(NodeRow).order_by(NodeRow.name))]

    def node(self, name: str) -> Node | None:
        with self.store.reading() as s:
            row = s.get(NodeRow, name)
            return _node(row) if row is not None else None

    def count(self) -> int:
        """How many nodes are registered (0: single-host mode)."""
        with self.store.reading() as s:
            return int(s.scalar(select(func.count()).select_from(NodeRow)) or 0)

    def set_flags(self, name: str, *, cordoned: bool | None = None, draining: bool | None = None,
                  actor: str, now: float) -> Node | None:
        """The operator's cordon/drain flags (None: unchanged); None for an unknown node.
        ``uncordon`` clears both (the node takes new work again)."""
        with self.store.writing() as s, s.begin():
            row = s.get(NodeRow, name)
            if row is None:
                return None
            changed = []
            if cordoned is not None and row.cordoned != cordoned:
                row.cordoned = cordoned
                changed.append("cordoned" if cordoned else "uncordoned")
            if draining is not None and row.draining != draining:
                row.draining = draining
                changed.append("draining" if draining else "no longer draining")
            if changed:
                self._audit(s, [Event(ts=now, service="", type="NodeUpdated", reason=f"node {name} " + ", ".join(changed),
                                      actor=actor)])
            return _node(row)

    # -- node leases -------------------------------------------------------
    def acquire(self, node: str, holder: str, *, ttl: float, now: float | None = None,
                dead_holder: str = "") -> Fence | None:
        """Take the node's lease when it is free, expired, or held by ``dead_holder`` (a
        process known to be gone): the token increases. None when another holds it."""
        with self.store.writing() as s, s.begin():
            t = now_expr(s, now)
            cond = or_(NodeLeaseRow.holder == "", NodeLeaseRow.expires_at < t)
            if dead_holder:
                cond = or_(cond, NodeLeaseRow.holder == dead_holder)
            res = s.execute(update(NodeLeaseRow).where(NodeLeaseRow.node == node, cond).values(
                holder=holder, token=NodeLeaseRow.token + 1, acquired_at=t, expires_at=t + ttl)
                .execution_options(synchronize_session=False))
            if res.rowcount != 1:  # type: ignore[attr-defined]
                return None
            token = s.scalar(select(NodeLeaseRow.token).where(NodeLeaseRow.node == node))
            s.execute(update(NodeRow).where(NodeRow.name == node).values(heartbeat_at=t)
                      .execution_options(synchronize_session=False))
            return Fence(node, holder, int(token or 0))

    def renew(self, fence: Fence, *, ttl: float, now: float | None = None) -> bool:
        """Extend the lease (and the node's heartbeat) while holder and token are ours.
        A renewal after expiry still succeeds if nobody took the node meanwhile: the token
        is unchanged, so no write by another holder can have happened in between."""
        with self.store.writing() as s, s.begin():
            t = now_expr(s, now)
            res = s.execute(update(NodeLeaseRow).where(
                NodeLeaseRow.node == fence.node, NodeLeaseRow.holder == fence.holder,
                NodeLeaseRow.token == fence.token).values(expires_at=t + ttl)
                .execution_options(synchronize_session=False))
            if res.rowcount != 1:  # type: ignore[attr-defined]
                return False
            s.execute(update(NodeRow).where(NodeRow.name == fence.node).values(heartbeat_at=t)
                      .execution_options(synchronize_session=False))
            return True

    def release(self, fence: Fence) -> None:
        """Give the lease up (a clean stop): free at once, the token kept (the next holder
        increments it)."""
        with self.store.writing() as s, s.begin():
            s.execute(update(NodeLeaseRow).where(
                NodeLeaseRow.node == fence.node, NodeLeaseRow.holder == fence.holder,
                NodeLeaseRow.token == fence.token).values(holder="", expires_at=0.0)
                .execution_options(synchronize_session=False))

    def lease(self, node: str) -> NodeLease | None:
        with self.store.reading() as s:
            row = s.get(NodeLeaseRow, node)
            return _lease(row) if row is not None else None

    def live_holder(self, node: str, *, now: float | None = None) -> str:
        """The holder of a live (unexpired) lease on ``node``, or ''."""
        with self.store.reading() as s:
            row = s.execute(select(NodeLeaseRow.holder).where(
                NodeLeaseRow.node == node, NodeLeaseRow.holder != "",
                NodeLeaseRow.expires_at >= now_expr(s, now))).first()
            return str(row.holder) if row is not None else ""

    def db_now(self) -> float:
        """The database's clock (epoch seconds)."""
        with self.store.reading() as s:
            return _db_time(s, None)

    # -- assignments -------------------------------------------------------
    def assignments(self, *, service: str | None = None, node: str | None = None) -> list[Placed]:
        with self.store.reading() as s:
            q = select(AssignmentRow)
            if service is not None:
                q = q.where(AssignmentRow.service == service)
            if node is not None:
                q = q.where(AssignmentRow.node == node)
            return [Placed(r.service, r.replica, r.node, r.reason, r.since)
                    for r in s.scalars(q.order_by(AssignmentRow.service, AssignmentRow.replica))]

    def snapshot(self, *, now: float | None = None) -> Snapshot:
        with self.store.reading() as s:
            ts = _db_time(s, now)
            nodes = tuple(_node(r) for r in s.scalars(select(NodeRow).order_by(NodeRow.name)))
            leases = {r.node: _lease(r) for r in s.scalars(select(NodeLeaseRow))}
            placed = tuple(Placed(r.service, r.replica, r.node, r.reason, r.since) for r in s.scalars(
                select(AssignmentRow).order_by(AssignmentRow.service, AssignmentRow.replica)))
        return Snapshot(ts, nodes, leases, placed)

    def assign(self, placed: Sequence[Placed], *, events: Sequence[Event] = ()) -> None:
        """Store assignments directly (``apply --node`` pinning a stack; tests)."""
        with self.store.writing() as s, s.begin():
            self._upsert(s, placed)
            db.lock_desired(s)
            self.store._bump(s)
            self._audit(s, events)

    # -- the scheduler -----------------------------------------------------
    def acquire_scheduler(self, holder: str, *, ttl: float, now: float | None = None) -> bool:
        """Take or renew the scheduler's lease row (atomic); True when ``holder`` has it."""
        with self.store.writing() as s, s.begin():
            t = now_expr(s, now)
            res = s.execute(update(LeaseRow).where(
                LeaseRow.name == SCHEDULER_LEASE, or_(LeaseRow.holder == holder, LeaseRow.expires_at < t))
                .values(holder=holder, renewed_at=t, expires_at=t + ttl)
                .execution_options(synchronize_session=False))
            if res.rowcount == 1:  # type: ignore[attr-defined]
                return True
            if s.scalar(select(LeaseRow.name).where(LeaseRow.name == SCHEDULER_LEASE)) is not None:
                return False  # held by another (the usual answer: no failed INSERT every second)
        try:
            with self.store.writing() as s, s.begin():
                ts = _db_time(s, now)
                s.add(LeaseRow(name=SCHEDULER_LEASE, holder=holder, acquired_at=ts, renewed_at=ts,
                               expires_at=ts + ttl))
            return True
        except IntegrityError:  # another one inserted it first
            return False

    def release_scheduler(self, holder: str) -> None:
        with self.store.writing() as s, s.begin():
            s.execute(delete(LeaseRow).where(LeaseRow.name == SCHEDULER_LEASE, LeaseRow.holder == holder))

    def write_placement(self, change: PlacementWrite, *, scheduler: str) -> None:
        """A scheduler pass's changes, in one transaction that first checks ``scheduler``
        still holds the scheduler lease (``Fenced`` otherwise)."""
        if not change:
            return
        with self.store.writing() as s, s.begin():
            row = s.execute(select(LeaseRow.holder).where(LeaseRow.name == SCHEDULER_LEASE).with_for_update()).first()
            if row is None or row.holder != scheduler:
                raise Fenced(f"the scheduler lease is held by {row.holder if row else 'nobody'}, not {scheduler}")
            for svc, replica in change.drop:
                s.execute(delete(AssignmentRow).where(AssignmentRow.service == svc, AssignmentRow.replica == replica))
            self._upsert(s, change.upsert)
            if change.upsert or change.drop:
                db.lock_desired(s)  # the counter's writers take turns (PostgreSQL)
                self.store._bump(s)  # the agents resync on the desired-state counter
            for name, lost in change.lost:
                s.execute(update(NodeRow).where(NodeRow.name == name).values(lost=lost)
                          .execution_options(synchronize_session=False))
            self._audit(s, change.events)

    # -- helpers -----------------------------------------------------------
    @staticmethod
    def _upsert(s: Session, placed: Iterable[Placed]) -> None:
        for p in placed:
            row = s.get(AssignmentRow, (p.service, p.replica))
            if row is None:
                s.add(AssignmentRow(service=p.service, replica=p.replica, node=p.node, reason=p.reason,
                                    since=p.since))
            else:
                row.node, row.reason, row.since = p.node, p.reason, p.since

    def _audit(self, s: Session, events: Sequence[Event]) -> None:
        s.add_all(_event_row(e) for e in events)
        self.store._notices(s, events)  # the store's own outbox rule (same package)


def _capacity(node: Node) -> str:
    mem = f"{node.memory / 2**30:.1f} GiB" if node.memory else "unknown memory"
    cpus = f"{node.cpus:g} CPUs" if node.cpus else "unknown CPUs"
    labels = ",".join(f"{k}={v}" for k, v in sorted(node.labels.items()))
    return f"engine {node.engine_version or '?'}, {cpus}, {mem}" + (f", labels {labels}" if labels else "")
