"""The verdict on one replica of a service: its state, the actions it needs, and what it adds
to the service's plan (message, reason, when to look again, whether back-off resets). Pure.

``verdict`` walks one replica from its container (missing, drifted, running, stopped) to a
``Verdict``; ``service.plan_service`` folds the replicas' verdicts into the ``ServicePlan``.
Every restart of a replica goes through ``gates.restart_gate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from controller import backoff
from controller import labels as L
from controller.actions import Action, Create, Recreate, Remove, Rename, Restart, Start
from controller.observed import Observed
from controller.planner.deps import network_peer
from controller.planner.drift import Drift, changed_files, exit_reason, image_moved
from controller.planner.gates import Hold, fresh_failure, restart_gate
from controller.planner.model import PlanInput, Unmet
from controller.planner.vocab import Reason, State
from controller.render import DesiredService, container_name
from crd_like.models import RestartPolicy
from store.records import Status

# engine states in which a container is (or is about to be) up: not restarted on an exit path
_LIVE = ("running", "restarting", "paused", "removing")


@dataclass(frozen=True)
class Context:
    """What every replica of one service is planned from."""

    inp: PlanInput
    status: Status  # as this replica sees it (a fresh failure resets it for the replicas after)
    unmet: tuple[Unmet, ...]
    picked: Mapping[int, tuple[Observed, tuple[Observed, ...]]]  # replica -> (best container, duplicates)
    drifts: Mapping[int, Drift | None]

    @property
    def svc(self) -> DesiredService:
        return self.inp.svc

    @property
    def policy(self) -> RestartPolicy:
        return self.inp.svc.spec.restartPolicy

    @property
    def is_job(self) -> bool:
        return self.inp.svc.kind == "Job"


@dataclass(frozen=True)
class Verdict:
    """One replica's part of the service plan."""

    state: State
    actions: tuple[Action, ...] = ()
    settled: bool = False  # nothing left to do for it (the service may still converge)
    message: str = ""
    reason: Reason = Reason.NONE
    retry_at: float | None = None
    health: str | None = None  # counted in the service's health when not None
    reset_backoff: bool = False
    fresh_failure: bool = False  # the failure count starts again (for the replicas after it too)
    uses_budget: bool = False  # one of the rolling update's replacements


def verdict(ctx: Context, replica: int, budget: int) -> Verdict:
    """The verdict on ``replica``; ``budget``: how many replicas may still be replaced now."""
    if replica not in ctx.picked:
        return _missing(ctx, replica)
    c, dups = ctx.picked[replica]
    removes = tuple(Remove(ctx.svc.name, replica, d.id, d.name, f"duplicate of {c.short_id}") for d in dups)
    v = _present(ctx, replica, c, budget, may_rename=not dups)
    return replace(v, actions=removes + v.actions) if removes else v


def _missing(ctx: Context, replica: int) -> Verdict:
    if ctx.unmet:
        return Verdict(State.WAITING)
    reason = "container missing"
    if ctx.status.container_id and replica == 1:
        reason = f"container missing (previous container {ctx.status.container_id[:12]} is gone)"
    return Verdict(State.PENDING, (Create(ctx.svc.name, replica, reason),))


def _present(ctx: Context, replica: int, c: Observed, budget: int, *, may_rename: bool) -> Verdict:
    drift = ctx.drifts.get(replica)
    if drift:
        return _drifted(ctx, replica, c, drift, budget)
    restart = config_restart(ctx, replica, c)
    if restart is not None:
        return Verdict(State.PENDING, (restart,))
    rename: tuple[Action, ...] = ()
    want_name = container_name(ctx.svc, replica)
    if c.name != want_name and may_rename:
        rename = (Rename(ctx.svc.name, replica, c.id, c.name, want_name,
                         f"container was renamed to {c.name} outside reconcile"),)
    v = _live(ctx, replica, c) if c.state in _LIVE else _stopped(ctx, replica, c)
    if not rename and v.health == c.health:  # dataclasses.replace is dear at 200 services a pass
        return v
    return replace(v, actions=rename + v.actions, health=c.health)


def config_restart(ctx: Context, replica: int, c: Observed) -> Restart | None:
    """``onConfigChange: restart``: a running container whose referenced files changed (and
    whose restart for that change is not already recorded) is restarted, not recreated."""
    svc, status = ctx.svc, ctx.status
    if (svc.spec.onConfigChange != "restart" or c.labels.get(L.CONFIG_HASH, "") == svc.config_hash
            or status.config_hash == svc.config_hash or c.state != "running"):
        return None
    return Restart(svc.name, replica, c.id, "referenced file changed: " + ", ".join(changed_files(c, svc))
                   + " (onConfigChange: restart)", requested=True, config_hash=svc.config_hash)


def _drifted(ctx: Context, replica: int, c: Observed, drift: Drift, budget: int) -> Verdict:
    if ctx.unmet:
        return Verdict(State.WAITING)
    if budget <= 0:
        return Verdict(State.UPDATING, message=f"rolling update: replica {replica} waits for earlier replicas to be ready")
    status, svc = ctx.status, ctx.svc
    rollout = status.observed_generation > 0 and status.observed_generation != svc.generation
    return Verdict(State.UPDATING if rollout else State.PENDING,
                   (Recreate(svc.name, replica, c.id, drift[0], drift[1], rollout=rollout),), uses_budget=True)


def _live(ctx: Context, replica: int, c: Observed) -> Verdict:
    """A container that is up (or about to be): restarted when asked or made to, else
    judged by its health."""
    stable = c.state == "running" and bool(backoff.stable(ctx.status, ctx.policy, ctx.inp.now))
    v = _asked_restart(ctx, replica, c) or _unhealthy(ctx, replica, c)
    if v is None:
        return Verdict(State.RUNNING, settled=True, reset_backoff=stable)
    return replace(v, reset_backoff=True) if stable and not v.reset_backoff else v


def _asked_restart(ctx: Context, replica: int, c: Observed) -> Verdict | None:
    """A restart asked for (``restart``), cascaded from a restarted dependency
    (``dependsOn.restart``), or needed to rejoin a restarted network peer."""
    if c.state != "running":
        return None
    status, svc = ctx.status, ctx.svc
    if status.restart_requested_at > status.last_started_at:
        if ctx.unmet:
            return Verdict(State.WAITING)
        return _restart(ctx, replica, c, status.restart_reason or "restart requested")
    if ctx.unmet:
        return None
    cascade = [n for n, d in svc.spec.dependsOn.items() if d.restart and _restarted_since(ctx, n)]
    if cascade:
        return _restart(ctx, replica, c,
                        f"dependency {', '.join(cascade)} was restarted (cascade: dependsOn.restart)")
    peer = network_peer(svc)
    if peer and _restarted_since(ctx, peer):
        # same container, but its restart made a new network stack: rejoin it
        return _restart(ctx, replica, c, f"network_mode service:{peer}: its container was "
                        "restarted (the network stack shared with it is new)")
    return None


def _restarted_since(ctx: Context, name: str) -> bool:
    """Whether service ``name`` was (re)started after this one last started (never, if this
    one never started). Asked only of the services this one depends on: asking it of every
    service made each pass quadratic in the number of services."""
    last, info = ctx.status.last_started_at, ctx.inp.deps.get(name)
    return last > 0 and info is not None and info.last_started_at > last


def _restart(ctx: Context, replica: int, c: Observed, reason: str) -> Verdict:
    return Verdict(State.PENDING, (Restart(ctx.svc.name, replica, c.id, reason, requested=True),))


def _unhealthy(ctx: Context, replica: int, c: Observed) -> Verdict | None:
    """A running container whose health check fails (past its start period) is restarted or
    recreated, through the restart gate."""
    svc, status, now = ctx.svc, ctx.status, ctx.inp.now
    hc = svc.spec.healthcheck if svc.spec.probes else None
    if hc is None or c.state != "running" or c.health != "unhealthy" or svc.spec.onUnhealthy == "ignore":
        return None
    if now - status.last_started_at < hc.startPeriod:
        return None
    hold = restart_gate(status, ctx.policy, now)
    if hold is not None:
        why = (f"unhealthy and gave up after {ctx.policy.maxAttempts} restarts" if hold.final
               else "unhealthy; next restart after backoff")
        return _held(hold, why)
    reason = "healthcheck failing (unhealthy)"
    action: Action = (Recreate(svc.name, replica, c.id, reason, ("health",)) if svc.spec.onUnhealthy == "recreate"
                      else Restart(svc.name, replica, c.id, reason))
    return Verdict(State.PENDING, (action,))


def _held(hold: Hold, message: str) -> Verdict:
    return Verdict(hold.state, settled=hold.final, message=message, reason=hold.reason, retry_at=hold.retry_at)


def _stopped(ctx: Context, replica: int, c: Observed) -> Verdict:
    """A container that is created, exited, dead, or in a state the planner does not know."""
    if ctx.unmet:
        return Verdict(State.WAITING)
    if c.state == "created":
        return Verdict(State.PENDING, (Start(ctx.svc.name, replica, c.id, "created but never started",
                                             restart=False),))
    if c.state not in ("exited", "dead"):
        # a state the planner does not know (an engine's own transitional one; the seam
        # maps Podman's): never restart on a guess; the next event or resync looks again
        return Verdict(State.PENDING,
                       message=f"container {c.short_id} is in state {c.state or '(none)'}; waiting for it to settle")
    return _exited(ctx, replica, c)


def _backoff_limit(svc: DesiredService) -> int:
    return int(getattr(svc.spec, "backoffLimit", 0))


def _exited(ctx: Context, replica: int, c: Observed) -> Verdict:
    """An exited (or dead) container: done, given up, left alone by its restart policy, or
    restarted through the restart gate."""
    svc, status, policy, now = ctx.svc, ctx.status, ctx.policy, ctx.inp.now
    if ctx.is_job:
        if c.exit_code == 0:
            return Verdict(State.COMPLETED, settled=True)
        limit = _backoff_limit(svc)
        if status.failures >= limit:
            return Verdict(State.FAILED, settled=True, reason=Reason.BACKOFF_LIMIT,
                           message=f"job failed: {exit_reason(c)}; gave up after {status.failures} retries "
                                   f"(backoffLimit {limit})")
    elif not (policy.condition == "always" or (policy.condition == "on-failure" and (c.exit_code or 0) != 0)):
        return Verdict(State.EXITED, settled=True, message=exit_reason(c) + f"; restartPolicy {policy.condition}")
    fresh = fresh_failure(status, policy, now)
    if fresh:
        status = backoff.reset(status)
    hold = restart_gate(status, policy, now, gives_up=not ctx.is_job)
    if hold is not None:
        why = (f"gave up after {policy.maxAttempts} restarts within {policy.window:g}s; {exit_reason(c)}"
               if hold.final else f"{exit_reason(c)}; back-off until next attempt")
        v = _held(hold, why)
    else:
        v = Verdict(State.PENDING, (_retry(ctx, replica, c, status),))
    return replace(v, reset_backoff=fresh, fresh_failure=fresh)


def _retry(ctx: Context, replica: int, c: Observed, status: Status) -> Action:
    """Start the exited container again; a Job whose image tag moved is recreated instead
    (restarting the old container would only have it recreated for the moved image on the
    next pass, mid-run)."""
    svc = ctx.svc
    reason = exit_reason(c)
    if ctx.is_job:
        reason = f"job {reason}; retry {status.failures + 1} of {_backoff_limit(svc)}"
        moved = image_moved(c, svc, ctx.inp.image_ids)
        if moved:
            return Recreate(svc.name, replica, c.id, f"{reason}; {moved[0]}", moved[1])
    return Start(svc.name, replica, c.id, reason, restart=True)
