"""Gates: the small decisions that hold a service (or a replica's restart) before the
per-replica plan. Pure; each takes what it needs and answers ``None`` to let planning go on.

Service-level gates answer the whole ``ServicePlan`` when they hold: a suspended service,
an unreadable reference, an image to build, a failed rollout. ``restart_gate`` is the one
place that decides whether a restart may happen now, for an exited container and for an
unhealthy one alike: it gave up (``Failed``) or it waits out its back-off (``CrashLoopBackOff``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from controller import backoff
from controller.actions import Build, Remove, Rollback
from controller.observed import Observed
from controller.planner.drift import rollout_failure
from controller.planner.model import PlanInput, ServicePlan
from controller.planner.vocab import Reason, State
from crd_like.hashing import canonical
from crd_like.models import RestartPolicy
from store.records import Status


def suspended(inp: PlanInput, status: Status) -> ServicePlan | None:
    """A suspended service: the controller leaves it alone."""
    if not inp.svc.suspended:
        return None
    return ServicePlan(inp.svc.name, state=State.SUSPENDED, message="suspended: the controller leaves it alone",
                       health=status.health, reason=Reason.SUSPENDED)


def bad_reference(inp: PlanInput, status: Status) -> ServicePlan | None:
    """A secret/env file is unreadable: keep what runs, create nothing new."""
    if not inp.svc.ref_error:
        return None
    return ServicePlan(inp.svc.name, state=State.ERROR, message=inp.svc.ref_error, health=status.health,
                       reason=Reason.BAD_REFERENCE)


def build(inp: PlanInput) -> ServicePlan | None:
    """An image built from a context: build it first when it is missing or its context changed."""
    svc = inp.svc
    if svc.spec.build is None or not svc.build_hash:
        return None
    if svc.spec.image not in inp.image_ids:
        why = "image missing"
    elif inp.image_builds.get(svc.spec.image) != svc.build_hash:
        why = "build context changed"
    else:
        return None
    return ServicePlan(svc.name, (Build(svc.name, why),), State.BUILDING, message=why)


def rollout(inp: PlanInput, status: Status, current: Sequence[Observed],
            removals: Sequence[Remove]) -> ServicePlan | None:
    """A rollout in progress that went wrong: roll back (or pause) before anything else.
    ``current``: the wanted replicas' containers of the current spec; ``removals``: the
    scale-down removals, carried out whatever the gate decides."""
    svc = inp.svc
    previous = status.rollout_from_generation
    if not previous or previous == svc.generation or svc.kind == "Job":
        return None
    failure = rollout_failure(svc, list(current), status, inp.now)
    if not failure:
        return None
    target = inp.revisions.get((svc.name, previous))
    same = target is not None and canonical(type(svc.spec).model_validate(target)) == canonical(svc.spec)
    if svc.spec.update.failureAction == "rollback" and target is not None and not same:
        why = f"rollout of generation {svc.generation} failed: {failure}"
        return ServicePlan(svc.name, (*removals, Rollback(svc.name, previous, why)), State.UPDATING, message=failure)
    if svc.spec.update.failureAction == "pause":
        return ServicePlan(svc.name, tuple(removals), State.PAUSED, message=f"rollout paused: {failure}")
    return None


@dataclass(frozen=True)
class Hold:
    """A restart that may not happen now: given up for good, or until ``retry_at``."""

    state: State  # Failed | CrashLoopBackOff
    reason: Reason
    retry_at: float | None = None

    @property
    def final(self) -> bool:
        """Nothing more will happen by itself (the replica counts as settled)."""
        return self.state == State.FAILED


def restart_gate(status: Status, policy: RestartPolicy, now: float, *, gives_up: bool = True) -> Hold | None:
    """May a replica be restarted now? ``None``: yes. ``gives_up``: ``maxAttempts`` within the
    window ends in ``Failed`` (a Job gives up by its backoffLimit instead, before this gate)."""
    if gives_up and backoff.gave_up(status, policy, now):
        return Hold(State.FAILED, Reason.GAVE_UP)
    if now < status.next_attempt_at:
        return Hold(State.CRASHLOOP, Reason.CRASHLOOP, status.next_attempt_at)
    return None


def fresh_failure(status: Status, policy: RestartPolicy, now: float) -> bool:
    """It was last seen running for longer than ``resetAfter``: a new failure, not a loop
    (its failure count starts again)."""
    return bool(status.failures and status.state == State.RUNNING and status.last_started_at
                and now - status.last_started_at >= policy.resetAfter)
