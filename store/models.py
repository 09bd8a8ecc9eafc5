"""SQLAlchemy 2.0 typed table models of the store.

Times are UTC epoch seconds (float), which index and compare the same on SQLite and
PostgreSQL. Every change here needs an Alembic migration in ``migrations/versions``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Key/value facts about the store itself (its instance id)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ResourceRow(Base):
    """The desired state of one resource. ``generation`` bumps when its spec changes."""

    __tablename__ = "resources"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    api_version: Mapped[str] = mapped_column(String(64))
    spec: Mapped[str] = mapped_column(Text)  # canonical JSON of the validated spec
    metadata_json: Mapped[str] = mapped_column(Text, default="{}")
    spec_hash: Mapped[str] = mapped_column(String(32))
    generation: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text, default="")  # the file set that applied it
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class RevisionRow(Base):
    """Every applied spec, kept per generation (rollback, changed-field reports)."""

    __tablename__ = "revisions"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    spec: Mapped[str] = mapped_column(Text)
    spec_hash: Mapped[str] = mapped_column(String(32))
    applied_at: Mapped[float] = mapped_column(Float)


class StatusRow(Base):
    """What the controller last observed and decided for a resource."""

    __tablename__ = "statuses"
    # Columns in the order the migrations give them (0001, then each later migration's
    # additions, with the server defaults those added): a new store's schema is built from
    # these models (store.db.create_fresh) and must equal the migrated one (tests/store).
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    observed_generation: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(32), default="Pending")
    health: Mapped[str] = mapped_column(String(16), default="")
    container_id: Mapped[str] = mapped_column(String(64), default="")
    restart_count: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    last_transition_at: Mapped[float] = mapped_column(Float, default=0.0)
    # Crash-loop backoff state: consecutive failed attempts, when the next one may run,
    # and recent restart times (JSON list) for maxAttempts within a window.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, default=0.0)
    restart_times: Mapped[str] = mapped_column(Text, default="[]")
    last_started_at: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[float] = mapped_column(Float, default=0.0)
    # migration 0002, `reconcile restart NAME`: the controller restarts containers started before this.
    restart_requested_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    restart_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    # migration 0003, a rollout in progress: the generation that ran before it (rollback target).
    rollout_from_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rollout_started_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    # migration 0004, onConfigChange=restart: the referenced-files hash the running process was restarted for
    config_hash: Mapped[str] = mapped_column(String(32), default="", server_default="")
    # migration 0005: the state's reason code and the unmet dependencies (JSON name -> condition)
    reason: Mapped[str] = mapped_column(String(32), default="", server_default="")
    waiting_for: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    derived_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # migration 0006: who ran the health check the health above comes from: engine | controller ("" = none)
    health_checked_by: Mapped[str] = mapped_column(String(16), default="", server_default="")


class EventRow(Base):
    """The audit history: every action and every observed change, with its reason."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[float] = mapped_column(Float)
    service: Mapped[str] = mapped_column(String(63), default="")
    container_id: Mapped[str] = mapped_column(String(64), default="")
    type: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    message: Mapped[str] = mapped_column(Text, default="")
    generation: Mapped[int] = mapped_column(Integer, default=0)
    actor: Mapped[str] = mapped_column(String(32), default="")

    __table_args__ = (
        Index("ix_events_service_ts", "service", "ts"),
        Index("ix_events_ts", "ts"),
        Index("ix_events_type_ts", "type", "ts"),
    )


class LeaseRow(Base):
    """One actor per host: the controller that holds this row acts on containers."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    acquired_at: Mapped[float] = mapped_column(Float)
    renewed_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class NotifierRow(Base):
    """A Notifier resource (migration 0007): its spec, and its sender's delivery state:
    the outbox row it has dealt with (``cursor``), the failed attempts of the next
    message, and the damping state (JSON, ``controller.notify_damping``)."""

    __tablename__ = "notifiers"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    spec: Mapped[str] = mapped_column(Text)
    spec_hash: Mapped[str] = mapped_column(String(32))
    generation: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    cursor: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    last_delivery_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    last_error: Mapped[str] = mapped_column(Text, default="", server_default="")
    last_error_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    damping: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")


class OutboxRow(Base):
    """A notable audit row's message material, written in the audit row's transaction."""

    __tablename__ = "notify_outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[float] = mapped_column(Float)
    service: Mapped[str] = mapped_column(String(63), default="", server_default="")
    event: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    detail: Mapped[str] = mapped_column(Text, default="", server_default="")
    audit_type: Mapped[str] = mapped_column(String(32), default="", server_default="")

    __table_args__ = (Index("ix_notify_outbox_ts", "ts"), {"sqlite_autoincrement": True})


class NodeRow(Base):
    """A registered node (migration 0008): its labels and capacity from its agent, the
    operator's cordon/drain flags, and ``lost`` (the scheduler's record that its lease
    expired, so NodeLost/NodeReady are audited once per episode)."""

    __tablename__ = "nodes"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    labels: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")  # JSON object
    engine_version: Mapped[str] = mapped_column(String(64), default="", server_default="")
    cpus: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    memory: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # bytes
    cordoned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    draining: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    lost: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    registered_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    heartbeat_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


class NodeLeaseRow(Base):
    """Who acts on a node's engine: ``token`` increases every time a holder takes the lease
    (the fencing token every agent write is checked against)."""

    __tablename__ = "node_leases"
    node: Mapped[str] = mapped_column(String(63), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128), default="", server_default="")
    token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    acquired_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    expires_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


class AssignmentRow(Base):
    """Which node runs a replica (1-based) of a service, why, and since when."""

    __tablename__ = "assignments"
    service: Mapped[str] = mapped_column(String(63), primary_key=True)
    replica: Mapped[int] = mapped_column(Integer, primary_key=True)
    node: Mapped[str] = mapped_column(String(63))
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    since: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")

    __table_args__ = (Index("ix_assignments_node", "node"),)
