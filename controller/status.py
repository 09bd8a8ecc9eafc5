"""Status from observation: from the last recorded status and a fresh plan, the status
fields the plan decides (``derive``) and the observed transitions worth an audit row
(``transitions``: health changes, deaths, a Job's end). Pure; ``controller.advance``
turns both into the status to record and its audit rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from controller.observed import Observed
from controller.planner import (COMPLETED, FAILED, R_ACTION_FAILED, R_IMAGE_MISSING, R_NAME_CONFLICT, R_PORT_IN_USE,
                                RUNNING, ServicePlan)
from controller.render import DesiredService
from store.records import Status

ERROR = "Error"  # an action failed (the executor's outcome); reason says which kind
STARTING = "Starting"  # actions were carried out; the next pass observes their effect
EXECUTOR_REASONS = frozenset({R_IMAGE_MISSING, R_PORT_IN_USE, R_NAME_CONFLICT, R_ACTION_FAILED})


@dataclass(frozen=True)
class Transition:
    type: str  # HealthChanged | Died | Completed | JobFailed
    reason: str
    container_id: str
    wants_probe: bool = False  # its audit row carries the last probe's output
    wants_logs: bool = False  # ... or the tail of the container's output


def main_container(containers: Sequence[Observed]) -> Observed | None:
    """Replica 1, a running one first (the container the status describes)."""
    best: Observed | None = None
    for c in containers:  # the first running one, else the first (no sort: this runs twice a service a pass)
        if c.replica == 1 and (best is None or (c.running and not best.running)):
            best = c
    return best


def transitions(old: Status | None, sp: ServicePlan, svc: DesiredService,
                containers: Sequence[Observed]) -> list[Transition]:
    """What changed on its own since ``old`` was recorded, as audit-worthy transitions."""
    main = main_container(containers)
    return _container_notes(old, sp, svc, main) + _job_notes(old, sp, svc, main)


def _container_notes(old: Status | None, sp: ServicePlan, svc: DesiredService,
                     main: Observed | None) -> list[Transition]:
    if old is None:
        return []
    if main is None:
        if old.container_id and old.health:
            return [Transition("HealthChanged", f"{old.health} -> none (container no longer running)",
                               old.container_id)]
        return []
    if old.container_id != main.id:
        return []
    notes: list[Transition] = []
    if old.health != sp.health and svc.spec.probes and sp.health:
        notes.append(Transition("HealthChanged", f"{old.health or 'none'} -> {sp.health}", main.id,
                                wants_probe=sp.health in ("unhealthy", "healthy")))
    if old.state == RUNNING and not main.running and main.state in ("exited", "dead"):
        code = "" if main.exit_code is None else f" with code {main.exit_code}"
        notes.append(Transition("Died", f"container exited{code}", main.id))
    return notes


def _job_notes(old: Status | None, sp: ServicePlan, svc: DesiredService, main: Observed | None) -> list[Transition]:
    if svc.kind != "Job" or main is None:
        return []
    same = old is not None and old.container_id == main.id
    if same and old is not None and old.state == sp.state:
        return []
    reason = f"job exited with code {main.exit_code}"
    if sp.state == COMPLETED:
        return [Transition("Completed", reason, main.id, wants_logs=True)]
    if main.state == "exited" and main.exit_code not in (None, 0) and not (same and old is not None
                                                                          and old.state == FAILED):
        return [Transition("JobFailed", reason, main.id, wants_logs=True)]
    return []


def derive(old: Status | None, sp: ServicePlan, svc: DesiredService, containers: Sequence[Observed],
           now: float, checked_by: str = "") -> Status:
    """The status the plan decides. ``checked_by``: who ran the main container's health
    check (engine | controller)."""
    base = old or Status(name=svc.name)
    main = main_container(containers)
    new = replace(base, state=sp.state, health=sp.health, message=sp.message,
                  container_id=main.id if main else base.container_id, reason=sp.reason,
                  waiting_for={u.dependency: u.condition for u in sp.waiting_on}, derived_generation=svc.generation)
    if base.state == ERROR and base.reason in EXECUTOR_REASONS and sp.actions and not sp.converged:
        # the action that failed (image missing, port taken) is still to be done: keep saying
        # why it failed until an attempt succeeds, instead of flickering back to Pending
        new.state, new.message, new.reason = base.state, base.message, base.reason
    new.health_checked_by = _checked_by(new.health_checked_by, svc, main, checked_by)
    if sp.converged:
        new.observed_generation = svc.generation
        new.rollout_from_generation, new.rollout_started_at = 0, 0.0
    if sp.reset_backoff:
        new.failures, new.next_attempt_at = 0, 0.0
    if sp.retry_at is not None:
        new.next_attempt_at = max(new.next_attempt_at, sp.retry_at)
    if (new.state, new.health) != (base.state, base.health):
        new.last_transition_at = now
    return new


def _checked_by(before: str, svc: DesiredService, main: Observed | None, checked_by: str) -> str:
    if svc.spec.healthcheck is None or not svc.spec.healthcheck.probes:
        return ""
    if main is not None and main.running and checked_by:
        return checked_by
    return before


def changed(a: Status | None, b: Status) -> bool:
    if a is None:
        return True
    if a == b:  # the steady state: one tuple comparison
        return False
    old = a.__dict__  # the fields by dict, not getattr: this runs for every service on every pass
    return any(old[k] != v for k, v in b.__dict__.items() if k != "updated_at")
