"""The pure planner: (desired, observed, status, now) -> actions, per service.

No Docker, no SQL, no clock, no logging. Everything it needs comes in as arguments;
everything it decides comes out as data (``actions.Action``s plus the state to report).
Observed containers passed in are already known to be owned by this store.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller import backoff
from controller.actions import Action, Create, Recreate, Remove, Restart, Start
from controller.observed import Observed
from controller.render import DesiredService
from crd_like.hashing import POLICY_FIELDS, changed_fields, canonical
from store.records import Status

# States a service can be reported in.
RUNNING, PENDING, EXITED, CRASHLOOP, FAILED, SUSPENDED = (
    "Running", "Pending", "Exited", "CrashLoopBackOff", "Failed", "Suspended")


@dataclass(frozen=True)
class ServicePlan:
    name: str
    actions: tuple[Action, ...] = ()
    state: str = PENDING
    health: str = ""
    message: str = ""
    converged: bool = False
    retry_at: float | None = None  # when a waiting service should be looked at again
    reset_backoff: bool = False


@dataclass(frozen=True)
class Plan:
    services: dict[str, ServicePlan] = field(default_factory=dict)
    orphans: tuple[Remove, ...] = ()

    @property
    def actions(self) -> list[Action]:
        out: list[Action] = list(self.orphans)
        for sp in self.services.values():
            out.extend(sp.actions)
        return out


def _exit_reason(c: Observed) -> str:
    code = c.exit_code
    if code is None:
        return f"container is {c.state}"
    meaning = {0: "exited normally", 137: "killed (SIGKILL or out of memory)", 143: "terminated (SIGTERM)",
               139: "segmentation fault", 1: "failed"}.get(code, "failed")
    return f"container exited with code {code} ({meaning})"


def diff_fields(old_spec: dict[str, Any] | None, svc: DesiredService) -> tuple[str, ...]:
    if old_spec is None:
        return ("spec (previous revision unknown)",)
    from crd_like.models import ServiceSpec

    try:
        old = canonical(ServiceSpec.model_validate(old_spec), exclude=POLICY_FIELDS)
    except Exception:  # noqa: BLE001 - an old revision from an older schema
        return ("spec",)
    new = canonical(svc.spec, exclude=POLICY_FIELDS)
    fields = changed_fields(old, new)
    return tuple(fields) or ("referenced files",)


def _pick(containers: list[Observed], svc: DesiredService) -> tuple[Observed, list[Observed]]:
    """Keep the best container of a replica; the rest are duplicates to remove."""
    ranked = sorted(
        containers,
        key=lambda c: (c.spec_hash == svc.container_hash, c.running, c.created),
        reverse=True,
    )
    return ranked[0], ranked[1:]


def plan_service(
    svc: DesiredService, containers: Sequence[Observed], status: Status | None,
    revisions: Mapping[tuple[str, int], dict[str, Any]], image_ids: Mapping[str, str], now: float,
) -> ServicePlan:
    status = status or Status(name=svc.name)
    if svc.suspended:
        return ServicePlan(svc.name, state=SUSPENDED, message="suspended: the controller leaves it alone",
                           health=status.health)
    policy = svc.spec.restartPolicy
    by_replica: dict[int, list[Observed]] = defaultdict(list)
    for c in containers:
        by_replica[c.replica].append(c)
    actions: list[Action] = []
    for replica in sorted(by_replica):
        if replica < 1 or replica > svc.replicas:
            for c in by_replica[replica]:
                actions.append(Remove(svc.name, replica, c.id, c.name, f"scaled down to {svc.replicas} replicas"))
    states: list[str] = []
    healths: list[str] = []
    messages: list[str] = []
    retry_at: float | None = None
    converged = True
    reset = False
    for replica in range(1, svc.replicas + 1):
        group = by_replica.get(replica, [])
        if not group:
            reason = "container missing"
            if status.container_id:
                reason = f"container missing (previous container {status.container_id[:12]} is gone)"
            actions.append(Create(svc.name, replica, reason))
            states.append(PENDING)
            converged = False
            continue
        c, dups = _pick(group, svc)
        for d in dups:
            actions.append(Remove(svc.name, replica, d.id, d.name, f"duplicate of {c.short_id}"))
        want_image = image_ids.get(svc.spec.image)
        if c.spec_hash != svc.container_hash:
            fields = diff_fields(revisions.get((svc.name, c.generation)), svc)
            actions.append(Recreate(svc.name, replica, c.id, "spec changed: " + ", ".join(fields), fields))
            states.append(PENDING)
            converged = False
            continue
        if want_image and c.image_id and want_image != c.image_id:
            fields = (f"image id ({c.image_id[7:19]} -> {want_image[7:19]})",)
            actions.append(Recreate(svc.name, replica, c.id, f"image {svc.spec.image} now points to a new image", fields))
            states.append(PENDING)
            converged = False
            continue
        healths.append(c.health)
        if c.state in ("running", "restarting", "paused", "removing"):
            if c.state == "running" and backoff.stable(status, policy, now):
                reset = True
            if c.state == "running" and status.restart_requested_at > status.last_started_at:
                actions.append(Restart(svc.name, replica, c.id, status.restart_reason or "restart requested",
                                       requested=True))
                states.append(PENDING)
                converged = False
                continue
            hc = svc.spec.healthcheck
            in_start_period = hc is not None and now - status.last_started_at < hc.startPeriod
            if (c.state == "running" and c.health == "unhealthy" and hc is not None
                    and svc.spec.onUnhealthy != "ignore" and not in_start_period):
                if backoff.gave_up(status, policy, now):
                    states.append(FAILED)
                    messages.append(f"unhealthy and gave up after {policy.maxAttempts} restarts")
                    continue
                if now < status.next_attempt_at:
                    states.append(CRASHLOOP)
                    retry_at = _min(retry_at, status.next_attempt_at)
                    messages.append("unhealthy; next restart after backoff")
                    converged = False
                    continue
                reason = "healthcheck failing (unhealthy)"
                if svc.spec.onUnhealthy == "recreate":
                    actions.append(Recreate(svc.name, replica, c.id, reason, ("health",)))
                else:
                    actions.append(Restart(svc.name, replica, c.id, reason))
                states.append(PENDING)
                converged = False
                continue
            states.append(RUNNING)
            continue
        # created, exited or dead
        if c.state == "created":
            actions.append(Start(svc.name, replica, c.id, "created but never started", restart=False))
            states.append(PENDING)
            converged = False
            continue
        wants_restart = policy.condition == "always" or (
            policy.condition == "on-failure" and (c.exit_code or 0) != 0)
        if not wants_restart:
            states.append(EXITED)
            messages.append(_exit_reason(c) + f"; restartPolicy {policy.condition}")
            continue
        if backoff.gave_up(status, policy, now):
            states.append(FAILED)
            messages.append(f"gave up after {policy.maxAttempts} restarts within {policy.window:g}s; {_exit_reason(c)}")
            continue
        if now < status.next_attempt_at:
            states.append(CRASHLOOP)
            retry_at = _min(retry_at, status.next_attempt_at)
            messages.append(f"{_exit_reason(c)}; back-off until next attempt")
            converged = False
            continue
        actions.append(Start(svc.name, replica, c.id, _exit_reason(c), restart=True))
        states.append(PENDING)
        converged = False
    state = _worst(states)
    health = _worst_health(healths) if svc.spec.healthcheck else ""
    if svc.spec.healthcheck and health != "healthy":
        converged = False
    return ServicePlan(svc.name, tuple(actions), state, health, "; ".join(messages), converged and not actions,
                       retry_at, reset)


def _min(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


_ORDER = [FAILED, CRASHLOOP, EXITED, PENDING, RUNNING]


def _worst(states: list[str]) -> str:
    for s in _ORDER:
        if s in states:
            return s
    return PENDING


def _worst_health(healths: list[str]) -> str:
    for h in ("unhealthy", "starting", "", "healthy"):
        if h in healths:
            return h
    return ""


def plan(
    desired: Mapping[str, DesiredService], observed: Sequence[Observed], statuses: Mapping[str, Status],
    *, revisions: Mapping[tuple[str, int], dict[str, Any]] | None = None,
    image_ids: Mapping[str, str] | None = None, now: float, only: set[str] | None = None,
) -> Plan:
    """Plan every desired service (or just ``only``) and remove containers nobody wants."""
    by_service: dict[str, list[Observed]] = defaultdict(list)
    for c in observed:
        by_service[c.service].append(c)
    services = {}
    for name, svc in desired.items():
        if only is not None and name not in only:
            continue
        services[name] = plan_service(svc, by_service.get(name, []), statuses.get(name),
                                      revisions or {}, image_ids or {}, now)
    orphans = tuple(
        Remove(c.service, c.replica, c.id, c.name, "no longer desired (its record was deleted)")
        for name, cs in sorted(by_service.items())
        if name not in desired and (only is None or name in only)
        for c in cs
    )
    return Plan(services, orphans)
