"""Status bookkeeping: from the last recorded status and a fresh plan, the new status
and the observed transitions worth an audit row (health changes, deaths). Pure."""

from __future__ import annotations

from dataclasses import dataclass, replace

from controller.observed import Observed
from controller.planner import (COMPLETED, FAILED, R_ACTION_FAILED, R_IMAGE_MISSING, R_NAME_CONFLICT, R_PORT_IN_USE,
                                RUNNING, ServicePlan)
from controller.render import DesiredService
from store.records import Status


EXECUTOR_REASONS = frozenset({R_IMAGE_MISSING, R_PORT_IN_USE, R_NAME_CONFLICT, R_ACTION_FAILED})


@dataclass(frozen=True)
class Transition:
    type: str  # HealthChanged | Died
    reason: str
    container_id: str
    wants_probe: bool = False
    wants_logs: bool = False


def derive(old: Status | None, sp: ServicePlan, svc: DesiredService, containers: list[Observed],
           now: float, checked_by: str = "") -> tuple[Status, list[Transition]]:
    """``checked_by``: who ran the main container's health check (engine | controller)."""
    base = old or Status(name=svc.name)
    notes: list[Transition] = []
    main = next((c for c in sorted(containers, key=lambda c: (c.replica, not c.running)) if c.replica == 1), None)
    cid = main.id if main else ""
    if main and old and old.container_id == main.id:
        if old.health != sp.health and svc.spec.probes and sp.health:
            notes.append(Transition("HealthChanged", f"{old.health or 'none'} -> {sp.health}", main.id,
                                    wants_probe=sp.health in ("unhealthy", "healthy")))
        if old.state == RUNNING and not main.running and main.state in ("exited", "dead"):
            code = "" if main.exit_code is None else f" with code {main.exit_code}"
            notes.append(Transition("Died", f"container exited{code}", main.id))
    elif old and old.container_id and old.health and not main:
        notes.append(Transition("HealthChanged", f"{old.health} -> none (container no longer running)", old.container_id))
    if svc.kind == "Job" and main is not None and (old is None or old.state != sp.state or old.container_id != main.id):
        if sp.state == COMPLETED:
            notes.append(Transition("Completed", f"job exited with code {main.exit_code}", main.id, wants_logs=True))
        elif main.state == "exited" and main.exit_code not in (None, 0) and (
                old is None or old.container_id != main.id or old.state not in (FAILED,)):
            notes.append(Transition("JobFailed", f"job exited with code {main.exit_code}", main.id, wants_logs=True))
    new = replace(base, state=sp.state, health=sp.health, message=sp.message, container_id=cid or base.container_id,
                  reason=sp.reason, waiting_for={u.dependency: u.condition for u in sp.waiting_on},
                  derived_generation=svc.generation)
    if base.state == "Error" and base.reason in EXECUTOR_REASONS and sp.actions and not sp.converged:
        # the action that failed (image missing, port taken) is still to be done: keep saying
        # why it failed until an attempt succeeds, instead of flickering back to Pending
        new.state, new.message, new.reason = base.state, base.message, base.reason
    if svc.spec.healthcheck is None or not svc.spec.healthcheck.probes:
        new.health_checked_by = ""
    elif main is not None and main.running and checked_by:
        new.health_checked_by = checked_by
    if sp.converged:
        new.observed_generation = svc.generation
        new.rollout_from_generation, new.rollout_started_at = 0, 0.0
    if sp.reset_backoff:
        new.failures, new.next_attempt_at = 0, 0.0
    if sp.retry_at is not None:
        new.next_attempt_at = max(new.next_attempt_at, sp.retry_at)
    if (new.state, new.health) != (base.state, base.health):
        new.last_transition_at = now
    return new, notes


def changed(a: Status | None, b: Status) -> bool:
    if a is None:
        return True
    ignore = {"updated_at"}
    return any(getattr(a, k) != getattr(b, k) for k in b.__dict__ if k not in ignore)
