"""The pure planner: (desired, observed, status, now) -> actions, per service.

No Docker, no SQL, no clock, no logging. Everything it needs comes in as arguments;
everything it decides comes out as data (``actions.Action``s plus the state to report).
Observed containers passed in are already known to be owned by this store.

Ordering is expressed as gating, not as a sequence: a service whose dependencies do
not meet their conditions gets no Create/Start and reports ``Waiting``; the next pass
(woken by the dependency's events) lets it go. That keeps each pass a pure function of
the world and makes "after an engine restart, come back in dependency order" the same
code path as a first apply.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller import backoff
from controller import labels as L
from controller.actions import Action, Build, Create, Recreate, Remove, Rename, Restart, Rollback, Start
from controller.hooks import HookCall
from controller.hooks import calls as hook_calls
from controller.observed import Observed
from controller.render import DesiredService, container_name, has_refs
from controller.render_net import replaced_peers
from crd_like import units
from crd_like.models import Dependency
from crd_like.spec_lifecycle import Lifecycle
from crd_like.spec_net import service_refs
from crd_like.hashing import POLICY_FIELDS, canonical, changed_fields
from store.records import Status

# States a service can be reported in.
RUNNING, PENDING, EXITED, CRASHLOOP, FAILED, SUSPENDED = (
    "Running", "Pending", "Exited", "CrashLoopBackOff", "Failed", "Suspended")
WAITING, COMPLETED, UPDATING, PAUSED = "Waiting", "Completed", "Updating", "RolloutPaused"

# Why a service is in its state, as data (``Status.reason``): what `wait` and `apply --wait`
# act on, never parsed back out of the human message. The planner decides the first group;
# the executor reports the second when an action fails (``executor.error_reason``).
R_DEPENDENCY, R_CRASHLOOP, R_GAVE_UP, R_BACKOFF_LIMIT = (
    "WaitingForDependency", "CrashLoop", "GaveUp", "BackoffLimitExceeded")
R_BAD_REFERENCE, R_SUSPENDED = "UnreadableReference", "Suspended"
R_IMAGE_MISSING, R_PORT_IN_USE, R_NAME_CONFLICT, R_ACTION_FAILED = (
    "ImageMissing", "PortInUse", "NameConflict", "ActionFailed")
# Reasons that will not change by themselves: waiting on such a service cannot succeed.
BLOCKING_REASONS = frozenset({R_GAVE_UP, R_BACKOFF_LIMIT, R_BAD_REFERENCE, R_IMAGE_MISSING, R_PORT_IN_USE,
                              R_NAME_CONFLICT})


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
    waiting_for: tuple[str, ...] = ()  # human: "db (healthy: it failed)"
    reason: str = ""  # one of the R_* codes above, or ""
    waiting_on: tuple[Unmet, ...] = ()  # typed twin of waiting_for


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


@dataclass(frozen=True)
class DepInfo:
    """What dependents need to know about a service."""

    exists: bool
    started: bool  # at least one replica runs
    healthy: bool  # every replica runs, and is healthy where a healthcheck exists
    completed: bool  # a Job whose current generation exited 0
    failed: bool  # gave up (Failed)
    crashlooping: bool
    last_started_at: float
    restart_pending: bool


def _exit_reason(c: Observed) -> str:
    code = c.exit_code
    if code is None:
        return f"container is {c.state}"
    meaning = {0: "exited normally", 137: "killed (SIGKILL or out of memory)", 143: "terminated (SIGTERM)",
               139: "segmentation fault", 255: "engine stopped or failed"}.get(code, "failed")
    return f"container exited with code {code} ({meaning})"


def diff_fields(old_spec: dict[str, Any] | None, svc: DesiredService) -> tuple[str, ...]:
    if old_spec is None:
        return ("spec (previous revision unknown)",)
    try:
        old = canonical(type(svc.spec).model_validate(old_spec), exclude=POLICY_FIELDS)
    except Exception:  # noqa: BLE001 - an old revision from an older schema
        return ("spec",)
    new = canonical(svc.spec, exclude=POLICY_FIELDS)
    fields = changed_fields(old, new)
    if fields:
        return tuple(_named_file(f, svc) for f in fields)
    if svc.kind == "Job":
        return ("generation (a Job runs once per generation)",)
    if has_refs(svc.spec):
        return ("referenced files",)
    # same spec, no references: the container's hash label itself was changed (a look-alike
    # container made by hand with copied labels)
    return ("spec-hash label (altered outside reconcile)",)


def _named_file(path: str, svc: DesiredService) -> str:
    """``files./run/secrets/db.secret`` -> ``secret db (files./run/secrets/db.secret)``: a
    reason names the compose secret or config whose content changed (never the value)."""
    if not path.startswith("files."):
        return path
    rest = path[len("files."):]
    for target in (rest, rest.rsplit(".", 1)[0]):
        mount = svc.spec.files.get(target)
        if mount is not None and mount.source:
            return f"{mount.source} ({path})"
    return path


def _pick(containers: list[Observed], svc: DesiredService) -> tuple[Observed, list[Observed]]:
    """Keep the best container of a replica; the rest are duplicates to remove."""
    ranked = sorted(containers, key=lambda c: (c.spec_hash == svc.container_hash, c.running, c.created), reverse=True)
    return ranked[0], ranked[1:]


def _ready(c: Observed, svc: DesiredService) -> bool:
    return c.running and (not svc.spec.probes or c.health == "healthy")


def dep_info(svc: DesiredService, containers: Sequence[Observed], status: Status | None) -> DepInfo:
    current = [c for c in containers if c.spec_hash == svc.container_hash and 1 <= c.replica <= svc.replicas]
    st = status or Status(name=svc.name)
    started = any(c.running for c in current)
    healthy = len({c.replica for c in current if _ready(c, svc)}) >= svc.replicas
    completed = svc.kind == "Job" and any(c.state == "exited" and c.exit_code == 0 for c in current)
    return DepInfo(True, started, healthy, completed, st.state == FAILED, st.state == CRASHLOOP,
                   st.last_started_at, st.restart_requested_at > st.last_started_at)


def requirements(svc: DesiredService) -> dict[str, Dependency]:
    """``dependsOn``, plus the services its networkMode, volumesFrom and links refer to
    (they must have started: the engine needs their container)."""
    implicit = {name: Dependency() for name in service_refs(svc.spec) if name not in svc.spec.dependsOn}
    return {**svc.spec.dependsOn, **implicit}


def _network_peer(svc: DesiredService) -> str:
    """X of ``networkMode: service:X``, or ''."""
    mode = svc.spec.networkMode or ""
    return mode.split(":", 1)[1] if mode.startswith("service:") else ""


@dataclass(frozen=True)
class Unmet:
    """A dependency condition not met yet, and whether it can still be met by itself."""

    dependency: str
    condition: str  # started | healthy | completed
    problem: str = ""  # "" | "missing" | "failed" | "crashlooping"

    def text(self) -> str:
        why = {"missing": ": it does not exist", "failed": ": it failed", "crashlooping": ": it is crash-looping"}
        return f"{self.dependency} ({self.condition}{why.get(self.problem, '')})"


def _unmet(svc: DesiredService, deps: Mapping[str, DepInfo]) -> list[Unmet]:
    out = []
    for name, dep in requirements(svc).items():
        info = deps.get(name)
        if info is None or not info.exists:
            out.append(Unmet(name, dep.condition, "missing"))
            continue
        ok = {"started": info.started or info.completed, "healthy": info.healthy,
              "completed": info.completed}[dep.condition]
        if info.restart_pending:
            ok = False
        if not ok:
            out.append(Unmet(name, dep.condition, "failed" if info.failed else (
                "crashlooping" if info.crashlooping else "")))
    return out


def _rollout_failure(svc: DesiredService, current: list[Observed], status: Status, now: float) -> str | None:
    """Why the rollout of the current generation failed, or None."""
    monitor = svc.spec.update.monitor
    for c in current:
        if c.state in ("exited", "dead"):
            return f"new container {c.short_id} exited ({_exit_reason(c)})"
        if c.health == "unhealthy":
            return f"new container {c.short_id} is unhealthy"
        if now - max(c.created, status.rollout_started_at) > monitor and not _ready(c, svc):
            return f"new container {c.short_id} not ready within monitor {monitor:g}s"
    return None


def _changed_files(c: Observed, svc: DesiredService) -> tuple[str, ...]:
    import json

    try:
        before = json.loads(c.labels.get(L.CONFIG_FILES) or "{}")
    except ValueError:
        before = {}
    now = {k: v for k, v in svc.config_files.items() if not k.startswith("env:")}
    files = tuple(sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k)))
    return files or ("secret environment values",)


def _image_moved(c: Observed, svc: DesiredService, image_ids: Mapping[str, str]) -> tuple[str, tuple[str, ...]] | None:
    want_image = image_ids.get(svc.spec.image)
    if want_image and c.image_id and want_image != c.image_id:
        return (f"image {svc.spec.image} now points to a new image",
                (f"image id ({c.image_id[7:19]} -> {want_image[7:19]})",))
    return None


def _drift(c: Observed, svc: DesiredService, revisions: Mapping[tuple[str, int], dict[str, Any]],
           image_ids: Mapping[str, str], is_job: bool) -> tuple[str, tuple[str, ...]] | None:
    """Why container ``c`` must be recreated (reason, changed fields), or None."""
    if c.spec_hash != svc.container_hash:
        fields = diff_fields(revisions.get((svc.name, c.generation)), svc)
        return ("spec changed: " + ", ".join(fields), fields)
    # an exited Job is not rerun because its tag moved (a retry picks the new image up)
    moved = _image_moved(c, svc, image_ids)
    if moved and not (is_job and c.state == "exited"):
        return moved
    if c.running and svc.spec.networks and not set(svc.spec.networks) <= set(c.networks):
        missing = sorted(set(svc.spec.networks) - set(c.networks))
        return (f"not attached to network {', '.join(missing)} (detached or removed outside reconcile)",
                tuple(f"network {n}" for n in missing))
    replaced = replaced_peers(svc, c)
    if replaced:  # its network stack / volumes come from a container that no longer is the peer's
        return ("; ".join(f"{why}: its container was replaced" for _ref, why in replaced),
                tuple(why for _ref, why in replaced))
    if svc.spec.onConfigChange == "recreate" and c.labels.get(L.CONFIG_HASH, "") != svc.config_hash:
        files = _changed_files(c, svc)
        return ("referenced file changed: " + ", ".join(files), tuple(f"file {f}" for f in files))
    return None  # onConfigChange: restart is a Restart, not a drift (see plan_service)


def plan_service(
    svc: DesiredService, containers: Sequence[Observed], status: Status | None,
    revisions: Mapping[tuple[str, int], dict[str, Any]], image_ids: Mapping[str, str], now: float,
    deps: Mapping[str, DepInfo] | None = None, image_builds: Mapping[str, str] | None = None,
) -> ServicePlan:
    status = status or Status(name=svc.name)
    deps = deps or {}
    if svc.suspended:
        return ServicePlan(svc.name, state=SUSPENDED, message="suspended: the controller leaves it alone",
                           health=status.health, reason=R_SUSPENDED)
    if svc.ref_error:
        # a secret/env file is unreadable: keep what runs, create nothing new
        return ServicePlan(svc.name, state="Error", message=svc.ref_error, health=status.health,
                           reason=R_BAD_REFERENCE)
    if svc.spec.build is not None and svc.build_hash:
        built = (image_builds or {}).get(svc.spec.image)
        if svc.spec.image not in image_ids or built != svc.build_hash:
            why = "image missing" if svc.spec.image not in image_ids else "build context changed"
            return ServicePlan(svc.name, (Build(svc.name, why),), "Building", message=why)
    policy = svc.spec.restartPolicy
    is_job = svc.kind == "Job"
    unmet = _unmet(svc, deps)
    gate_msg = "waiting for " + ", ".join(u.text() for u in unmet) if unmet else ""
    by_replica: dict[int, list[Observed]] = defaultdict(list)
    for c in containers:
        by_replica[c.replica].append(c)
    actions: list[Action] = []
    for replica in sorted(by_replica):
        if replica < 1 or replica > svc.replicas:
            for c in by_replica[replica]:
                actions.append(Remove(svc.name, replica, c.id, c.name, f"scaled down to {svc.replicas} replicas"))
    current = [c for r in range(1, svc.replicas + 1) for c in by_replica.get(r, []) if c.spec_hash == svc.container_hash]

    # A rollout in progress that went wrong: roll back (or pause) before anything else.
    if status.rollout_from_generation and status.rollout_from_generation != svc.generation and not is_job:
        failure = _rollout_failure(svc, current, status, now)
        if failure:
            target = revisions.get((svc.name, status.rollout_from_generation))
            same = target is not None and canonical(type(svc.spec).model_validate(target)) == canonical(svc.spec)
            if svc.spec.update.failureAction == "rollback" and target is not None and not same:
                return ServicePlan(svc.name, (*actions, Rollback(svc.name, status.rollout_from_generation,
                                                                  f"rollout of generation {svc.generation} failed: {failure}")),
                                   UPDATING, message=failure)
            if svc.spec.update.failureAction == "pause":
                return ServicePlan(svc.name, tuple(actions), PAUSED, message=f"rollout paused: {failure}")

    # Each wanted replica's container (the best of its group) and why it must be replaced.
    picked = {r: _pick(by_replica[r], svc) for r in range(1, svc.replicas + 1) if by_replica.get(r)}
    drifts = {r: _drift(c, svc, revisions, image_ids, is_job) for r, (c, _dups) in picked.items()}
    # How many replicas may be replaced now (rolling update): the parallelism, less the
    # replicas already in transition (missing, or current but not ready yet). A replica that
    # is itself to be replaced is outdated, not in transition, whatever the kind of drift
    # (spec, image, referenced file, network): counting a stopped one whose image moved as
    # "in transition" used up the budget its own Recreate needed, and it was never replaced.
    outdated = {r for r, drift in drifts.items() if drift}
    in_transition = sum(1 for r in range(1, svc.replicas + 1) if r not in outdated and not any(
        c.spec_hash == svc.container_hash and _ready(c, svc) for c in by_replica.get(r, [])))
    budget = max(0, svc.spec.update.parallelism - in_transition) if svc.replicas > 1 else 1

    states: list[str] = []
    healths: list[str] = []
    messages: list[str] = []
    retry_at: float | None = None
    converged = True
    reset = False
    reasons: list[str] = []
    for replica in range(1, svc.replicas + 1):
        group = by_replica.get(replica, [])
        if not group:
            converged = False
            if unmet:
                states.append(WAITING)
                continue
            reason = "container missing"
            if status.container_id and replica == 1:
                reason = f"container missing (previous container {status.container_id[:12]} is gone)"
            actions.append(Create(svc.name, replica, reason))
            states.append(PENDING)
            continue
        c, dups = picked[replica]
        for d in dups:
            actions.append(Remove(svc.name, replica, d.id, d.name, f"duplicate of {c.short_id}"))
        drift = drifts[replica]
        if (not drift and svc.spec.onConfigChange == "restart" and c.labels.get(L.CONFIG_HASH, "") != svc.config_hash
                and status.config_hash != svc.config_hash and c.state == "running"):
            actions.append(Restart(svc.name, replica, c.id, "referenced file changed: " + ", ".join(_changed_files(c, svc))
                                   + " (onConfigChange: restart)", requested=True, config_hash=svc.config_hash))
            states.append(PENDING)
            converged = False
            continue
        if drift:
            converged = False
            if unmet:
                states.append(WAITING)
                continue
            if budget <= 0:
                states.append(UPDATING)
                messages.append(f"rolling update: replica {replica} waits for earlier replicas to be ready")
                continue
            budget -= 1
            rollout = status.observed_generation > 0 and status.observed_generation != svc.generation
            actions.append(Recreate(svc.name, replica, c.id, drift[0], drift[1], rollout=rollout))
            states.append(UPDATING if rollout else PENDING)
            continue
        want_name = container_name(svc, replica)
        if c.name != want_name and not dups:
            actions.append(Rename(svc.name, replica, c.id, c.name, want_name,
                                  f"container was renamed to {c.name} outside reconcile"))
        healths.append(c.health)
        if c.state in ("running", "restarting", "paused", "removing"):
            if c.state == "running" and backoff.stable(status, policy, now):
                reset = True
            if c.state == "running" and status.restart_requested_at > status.last_started_at:
                if unmet:
                    states.append(WAITING)
                    converged = False
                    continue
                actions.append(Restart(svc.name, replica, c.id, status.restart_reason or "restart requested",
                                       requested=True))
                states.append(PENDING)
                converged = False
                continue
            cascade = [n for n, d in svc.spec.dependsOn.items() if d.restart and n in deps
                       and status.last_started_at > 0 and deps[n].last_started_at > status.last_started_at]
            if c.state == "running" and cascade and not unmet:
                actions.append(Restart(svc.name, replica, c.id,
                                       f"dependency {', '.join(cascade)} was restarted (cascade: dependsOn.restart)",
                                       requested=True))
                states.append(PENDING)
                converged = False
                continue
            peer = _network_peer(svc)
            if (c.state == "running" and peer in deps and not unmet and status.last_started_at > 0
                    and deps[peer].last_started_at > status.last_started_at):
                # same container, but its restart made a new network stack: rejoin it
                actions.append(Restart(svc.name, replica, c.id, f"network_mode service:{peer}: its container was "
                                       "restarted (the network stack shared with it is new)", requested=True))
                states.append(PENDING)
                converged = False
                continue
            hc = svc.spec.healthcheck if svc.spec.probes else None
            in_start_period = hc is not None and now - status.last_started_at < hc.startPeriod
            if (c.state == "running" and c.health == "unhealthy" and hc is not None
                    and svc.spec.onUnhealthy != "ignore" and not in_start_period):
                if backoff.gave_up(status, policy, now):
                    states.append(FAILED)
                    reasons.append(R_GAVE_UP)
                    messages.append(f"unhealthy and gave up after {policy.maxAttempts} restarts")
                    continue
                if now < status.next_attempt_at:
                    states.append(CRASHLOOP)
                    reasons.append(R_CRASHLOOP)
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
        if unmet:
            states.append(WAITING)
            converged = False
            continue
        if c.state == "created":
            actions.append(Start(svc.name, replica, c.id, "created but never started", restart=False))
            states.append(PENDING)
            converged = False
            continue
        if c.state not in ("exited", "dead"):
            # a state the planner does not know (an engine's own transitional one; the seam
            # maps Podman's): never restart on a guess; the next event or resync looks again
            states.append(PENDING)
            messages.append(f"container {c.short_id} is in state {c.state or '(none)'}; waiting for it to settle")
            converged = False
            continue
        if is_job:
            if c.exit_code == 0:
                states.append(COMPLETED)
                continue
            spec_limit = getattr(svc.spec, "backoffLimit", 0)
            if status.failures >= spec_limit:
                states.append(FAILED)
                reasons.append(R_BACKOFF_LIMIT)
                messages.append(f"job failed: {_exit_reason(c)}; gave up after {status.failures} retries "
                                f"(backoffLimit {spec_limit})")
                continue
            wants_restart = True
        else:
            wants_restart = policy.condition == "always" or (
                policy.condition == "on-failure" and (c.exit_code or 0) != 0)
        if not wants_restart:
            states.append(EXITED)
            messages.append(_exit_reason(c) + f"; restartPolicy {policy.condition}")
            continue
        if (status.failures and status.state == RUNNING and status.last_started_at
                and now - status.last_started_at >= policy.resetAfter):
            # it was last seen running for longer than resetAfter: a fresh failure, not a loop
            status = backoff.reset(status)
            reset = True
        if not is_job and backoff.gave_up(status, policy, now):
            states.append(FAILED)
            reasons.append(R_GAVE_UP)
            messages.append(f"gave up after {policy.maxAttempts} restarts within {policy.window:g}s; {_exit_reason(c)}")
            continue
        if now < status.next_attempt_at:
            states.append(CRASHLOOP)
            reasons.append(R_CRASHLOOP)
            retry_at = _min(retry_at, status.next_attempt_at)
            messages.append(f"{_exit_reason(c)}; back-off until next attempt")
            converged = False
            continue
        reason = _exit_reason(c)
        if is_job:
            reason = f"job {reason}; retry {status.failures + 1} of {getattr(svc.spec, 'backoffLimit', 0)}"
            moved = _image_moved(c, svc, image_ids)
            if moved:
                # retry on the image the tag names now: restarting the old container would only
                # have it recreated for the moved image on the next pass, mid-run
                actions.append(Recreate(svc.name, replica, c.id, f"{reason}; {moved[0]}", moved[1]))
                states.append(PENDING)
                converged = False
                continue
        actions.append(Start(svc.name, replica, c.id, reason, restart=True))
        states.append(PENDING)
        converged = False
    state = _worst(states)
    health = _worst_health(healths) if svc.spec.probes else ""
    if svc.spec.probes and health != "healthy":
        converged = False
    if unmet:
        messages.insert(0, gate_msg)
    if svc.replicas == 0:
        state = RUNNING
    reason = next((r for r in reasons if (r == R_CRASHLOOP) == (state == CRASHLOOP)), "") \
        if state in (FAILED, CRASHLOOP) else (R_DEPENDENCY if unmet else "")
    return ServicePlan(svc.name, tuple(actions), state, health, "; ".join(messages), converged and not actions,
                       retry_at, reset, tuple(u.text() for u in unmet), reason, tuple(unmet))


def _min(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


_ORDER = [FAILED, PAUSED, CRASHLOOP, EXITED, WAITING, UPDATING, PENDING, RUNNING, COMPLETED]


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
    image_builds: Mapping[str, str] | None = None,
) -> Plan:
    """Plan every desired service (or just ``only``) and remove containers nobody wants."""
    by_service: dict[str, list[Observed]] = defaultdict(list)
    for c in observed:
        by_service[c.service].append(c)
    deps = {name: dep_info(svc, by_service.get(name, []), statuses.get(name)) for name, svc in desired.items()}
    services = {}
    for name, svc in desired.items():
        if only is not None and name not in only:
            continue
        services[name] = plan_service(svc, by_service.get(name, []), statuses.get(name),
                                      revisions or {}, image_ids or {}, now, deps, image_builds)
    orphans = tuple(
        _orphan(c, (revisions or {}).get((c.service, c.generation)))
        for name, cs in sorted(by_service.items())
        if name not in desired and (only is None or name in only)
        for c in cs
    )
    return Plan(services, orphans)


def _orphan(c: Observed, revision: dict[str, Any] | None) -> Remove:
    """The removal of a container whose record was deleted, with the preStop hooks and
    grace period of the revision it runs (the executor has no spec for it any more)."""
    pre_stop: tuple[HookCall, ...] = ()
    grace: float | None = None
    if revision is not None:
        try:
            pre_stop = hook_calls(Lifecycle.model_validate(revision.get("lifecycle") or {}).preStop)
            grace = units.parse_duration(revision.get("stopGracePeriod", 10.0))
        except ValueError:  # a revision stored by an older release may not validate: no hooks then
            pre_stop, grace = (), None
    return Remove(c.service, c.replica, c.id, c.name, "no longer desired (its record was deleted)", pre_stop, grace)


def dependents(desired: Mapping[str, DesiredService], name: str) -> set[str]:
    """Services that depend on ``name``, directly or transitively."""
    out: set[str] = set()
    frontier = [name]
    while frontier:
        cur = frontier.pop()
        for other, svc in desired.items():
            if cur in requirements(svc) and other not in out:
                out.add(other)
                frontier.append(other)
    return out


def topological_order(desired: Mapping[str, DesiredService]) -> list[str]:
    """Dependencies first; ties by name. Assumes the graph was checked for cycles."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(n: str) -> None:
        if n in seen or n not in desired:
            return
        seen.add(n)
        for d in sorted(requirements(desired[n])):
            visit(d)
        order.append(n)

    for n in sorted(desired):
        visit(n)
    return order
