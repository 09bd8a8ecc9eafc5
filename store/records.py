"""Plain records the store hands out and takes in (no SQLAlchemy objects leak out)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ResourceInput:
    """A validated resource, ready to store."""

    name: str
    kind: str
    api_version: str
    spec: dict[str, Any]
    metadata: dict[str, Any]
    spec_hash: str


@dataclass(frozen=True)
class Desired:
    name: str
    kind: str
    api_version: str
    spec: dict[str, Any]
    metadata: dict[str, Any]
    spec_hash: str
    generation: int
    source: str
    suspended: bool
    updated_at: float


@dataclass(frozen=True)
class Revision:
    name: str
    generation: int
    kind: str
    spec: dict[str, Any]
    spec_hash: str
    applied_at: float


@dataclass
class Status:
    name: str
    observed_generation: int = 0
    state: str = "Pending"
    health: str = ""
    container_id: str = ""
    restart_count: int = 0
    message: str = ""
    last_transition_at: float = 0.0
    failures: int = 0
    next_attempt_at: float = 0.0
    restart_times: list[float] = field(default_factory=list)
    last_started_at: float = 0.0
    restart_requested_at: float = 0.0
    restart_reason: str = ""
    rollout_from_generation: int = 0
    rollout_started_at: float = 0.0
    config_hash: str = ""
    health_checked_by: str = ""  # engine | controller: who ran the check behind `health`
    updated_at: float = 0.0
    # Why it is in this state, as data (a code such as "BackoffLimitExceeded", "ImageMissing",
    # "WaitingForDependency"; see controller.planner R_*), and the dependencies it still
    # waits for (name -> condition). Callers act on these, never on ``message``.
    reason: str = ""
    waiting_for: dict[str, str] = field(default_factory=dict)
    # the generation this status was derived for: reason and waiting_for describe that one
    derived_generation: int = 0

    def to_row(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["restart_times"] = json.dumps(self.restart_times)
        data["waiting_for"] = json.dumps(self.waiting_for, sort_keys=True)
        return data

    @classmethod
    def from_row(cls, row: Any) -> Status:
        return cls(
            name=row.name, observed_generation=row.observed_generation, state=row.state,
            health=row.health, container_id=row.container_id, restart_count=row.restart_count,
            message=row.message, last_transition_at=row.last_transition_at, failures=row.failures,
            next_attempt_at=row.next_attempt_at, restart_times=json.loads(row.restart_times or "[]"),
            last_started_at=row.last_started_at, restart_requested_at=row.restart_requested_at,
            restart_reason=row.restart_reason, rollout_from_generation=row.rollout_from_generation,
            rollout_started_at=row.rollout_started_at, config_hash=row.config_hash, updated_at=row.updated_at,
            reason=row.reason, waiting_for=json.loads(row.waiting_for or "{}"),
            derived_generation=row.derived_generation, health_checked_by=row.health_checked_by,
        )


@dataclass(frozen=True)
class Event:
    ts: float
    service: str
    type: str
    reason: str = ""
    message: str = ""
    container_id: str = ""
    generation: int = 0
    actor: str = "controller"
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "ts": self.ts, "service": self.service, "container_id": self.container_id,
            "type": self.type, "reason": self.reason, "message": self.message,
            "generation": self.generation, "actor": self.actor,
        }


@dataclass(frozen=True)
class AppliedChange:
    name: str
    kind: str
    change: str  # created | updated | unchanged | pruned
    generation: int
    old_spec: dict[str, Any] | None = None
    new_spec: dict[str, Any] | None = None


@dataclass(frozen=True)
class Notice:
    """Material for a message: a notable audit row as ``controller.notify_rules`` reads it
    (``event`` is the notification's event type), kept in the outbox. ``id`` once stored."""

    ts: float
    service: str
    event: str
    reason: str = ""
    detail: str = ""
    audit_type: str = ""
    id: int = 0


@dataclass(frozen=True)
class NotifierState:
    """A stored Notifier: its (unredacted) spec and its sender's delivery state."""

    name: str
    spec: dict[str, Any]
    generation: int
    source: str = ""
    cursor: int = 0  # the outbox row dealt with last
    attempts: int = 0  # failed attempts of the message at the cursor
    next_attempt_at: float = 0.0
    last_delivery_at: float = 0.0
    last_error: str = ""
    last_error_at: float = 0.0
    damping: dict[str, Any] = field(default_factory=dict)


# -- many hosts (store.nodes) ----------------------------------------------------
@dataclass(frozen=True)
class Fence:
    """Who an agent is on its node: the holder string and the token it acquired."""

    node: str
    holder: str
    token: int


@dataclass(frozen=True)
class Node:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    engine_version: str = ""
    cpus: float = 0.0
    memory: int = 0
    cordoned: bool = False
    draining: bool = False
    lost: bool = False
    registered_at: float = 0.0
    heartbeat_at: float = 0.0


@dataclass(frozen=True)
class NodeLease:
    node: str
    holder: str
    token: int
    acquired_at: float
    expires_at: float


@dataclass(frozen=True)
class Placed:
    """A stored assignment: replica (1-based) of service runs on node."""

    service: str
    replica: int
    node: str
    reason: str = ""
    since: float = 0.0


@dataclass(frozen=True)
class Snapshot:
    """What the scheduler reads, in one transaction, with the database's time."""

    now: float
    nodes: tuple[Node, ...]
    leases: dict[str, NodeLease]
    assignments: tuple[Placed, ...]


@dataclass(frozen=True)
class PlacementWrite:
    """One scheduler pass's changes: assignments to store (upserted), to drop, nodes
    whose ``lost`` flag changes, and the audit rows."""

    upsert: tuple[Placed, ...] = ()
    drop: tuple[tuple[str, int], ...] = ()
    lost: tuple[tuple[str, bool], ...] = ()
    events: tuple[Event, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.upsert or self.drop or self.lost or self.events)
