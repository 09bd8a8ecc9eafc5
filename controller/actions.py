"""Actions as data: what the planner decides and the executor carries out. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.hooks import HookCall


@dataclass(frozen=True)
class Create:
    service: str
    replica: int
    reason: str


@dataclass(frozen=True)
class Start:
    """Start an existing, stopped container. ``restart`` marks a recovery from a death."""

    service: str
    replica: int
    container_id: str
    reason: str
    restart: bool = True


@dataclass(frozen=True)
class Restart:
    """Restart a running container (it turned unhealthy, or a user asked)."""

    service: str
    replica: int
    container_id: str
    reason: str
    requested: bool = False  # asked for by a user: not a failure, no backoff
    config_hash: str | None = None  # restarting to load these referenced files


@dataclass(frozen=True)
class Recreate:
    service: str
    replica: int
    container_id: str
    reason: str
    changed_fields: tuple[str, ...] = ()
    rollout: bool = False  # replacing a converged earlier generation (rollback-able)


@dataclass(frozen=True)
class Remove:
    """Stop and remove a container. For a container whose record was deleted, the planner
    carries the preStop hooks and grace period of the revision it runs (``pre_stop``,
    ``grace``): the executor has no spec for it any more."""

    service: str
    replica: int
    container_id: str
    name: str
    reason: str
    pre_stop: tuple[HookCall, ...] = field(default=(), metadata={"shown": False})
    grace: float | None = field(default=None, metadata={"shown": False})


@dataclass(frozen=True)
class Rename:
    """Give a managed container its deterministic name back (someone renamed it)."""

    service: str
    replica: int
    container_id: str
    old_name: str
    new_name: str
    reason: str


@dataclass(frozen=True)
class Rollback:
    """Store the earlier revision ``to_generation`` as the desired spec again."""

    service: str
    to_generation: int
    reason: str


@dataclass(frozen=True)
class Build:
    """Build the service's image from its context (missing, or the context changed)."""

    service: str
    reason: str


Action = Create | Start | Restart | Recreate | Remove | Rollback | Build | Rename


def describe(action: Action) -> str:
    match action:
        case Create():
            return f"create {action.service}#{action.replica}: {action.reason}"
        case Start():
            verb = "restart" if action.restart else "start"
            return f"{verb} {action.service}#{action.replica} ({action.container_id[:12]}): {action.reason}"
        case Restart():
            return f"restart {action.service}#{action.replica} ({action.container_id[:12]}): {action.reason}"
        case Recreate():
            return f"recreate {action.service}#{action.replica} ({action.container_id[:12]}): {action.reason}"
        case Remove():
            return f"remove {action.name} ({action.container_id[:12]}): {action.reason}"
        case Rollback():
            return f"roll back {action.service} to revision {action.to_generation}: {action.reason}"
        case Build():
            return f"build the image of {action.service}: {action.reason}"
        case Rename():
            return f"rename {action.old_name} back to {action.new_name}: {action.reason}"
