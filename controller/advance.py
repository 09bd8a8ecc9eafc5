"""The one author of status and audit rows. Pure: time, what was seen and what was done
all come in as arguments; no engine, no store, no clock, no logging.

A pass advances each service's status twice:
- ``observe(old, plan, seen, now)``: before acting, from the plan and what the engine
  showed (the plan's state and health, the backoff it decided, transitions that
  happened on their own: health changes, deaths, a Job's end, a crash loop or give-up);
- ``advance(old, work, outcomes, now)``: after the executor carried the plan out, from
  its ``controller.outcomes`` (the container ids, restart counts and backoff a restart
  costs, a rollout's start; ``Error`` with the failure's reason code, or ``Starting``).

Both answer the new status and the audit rows; ``controller.record`` writes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from controller import backoff
from controller import status as status_mod
from controller.actions import Action, Remove
from controller.observed import Observed
from controller.outcomes import (Built, BuildFailed, Created, EngineHung, Failed, HookRan, HookUnrunnable, Outcome,
                                 Recreated, Removed, Renamed, Restarted, RollbackAsked, Started, truncate)
from controller.planner import CRASHLOOP, FAILED, RUNNING, ServicePlan
from controller.render import DesiredService
from controller.status import ERROR, STARTING, Transition
from crd_like.models import RestartPolicy
from store.records import Event, Status

MESSAGE_LIMIT = 300  # of the failures' text kept in a status message


# -- observe: the status a plan decides ------------------------------------------
@dataclass(frozen=True)
class Seen:
    """What a pass saw of one planned service: its containers, who ran the main one's
    health check, and the detail fetched for the transitions that want one (the last
    probe's output, the tail of a Job's output)."""

    svc: DesiredService
    containers: tuple[Observed, ...] = ()
    checked_by: str = ""
    details: Mapping[Transition, str] = field(default_factory=dict)
    actor: str = "controller"


def observe(old: Status | None, plan: ServicePlan, seen: Seen, now: float) -> tuple[Status, list[Event]]:
    """The status ``plan`` decides, and audit rows for what changed on its own. The
    status's ``updated_at`` is ``now`` when anything in it changed."""
    svc = seen.svc
    new = status_mod.derive(old, plan, svc, seen.containers, now, seen.checked_by)
    events = [Event(ts=now, service=svc.name, type=n.type, reason=n.reason, message=seen.details.get(n, ""),
                    container_id=n.container_id, generation=svc.generation, actor=seen.actor)
              for n in status_mod.transitions(old, plan, svc, seen.containers)]
    if (old is None or old.state != new.state) and new.state in (CRASHLOOP, FAILED):
        backing_off = new.state == CRASHLOOP
        message = f"next attempt at {datetime.fromtimestamp(new.next_attempt_at):%H:%M:%S}" if backing_off else ""
        events.append(Event(ts=now, service=svc.name, type="BackOff" if backing_off else "GaveUp",
                            reason=new.message, message=message, generation=svc.generation, actor=seen.actor))
    if old is not None and old.failures >= 2 and new.failures == 0 and new.state == RUNNING:
        # a crash loop (a second failure waits out a backoff) is over: it ran `resetAfter`
        # without failing, so the backoff was reset
        events.append(Event(ts=now, service=svc.name, type="BackOffEnded",
                            reason=f"running without failing after {old.failures} failures; backoff reset",
                            generation=svc.generation, actor=seen.actor))
    if status_mod.changed(old, new):
        new = replace(new, updated_at=now)
    return new, events


# -- advance: the status what was done makes ---------------------------------------
@dataclass(frozen=True)
class Work:
    """The part of a plan one service's outcomes come from: its actions, and what of
    its desired spec the status needs (``policy`` is None for a service no longer
    desired: only its containers' removal is audited, and no status is kept)."""

    service: str
    actions: tuple[Action, ...] = ()
    generation: int = 0
    policy: RestartPolicy | None = None
    actor: str = "controller"


@dataclass(frozen=True)
class Advanced:
    status: Status | None  # to record (None: nothing to record)
    events: tuple[Event, ...] = ()
    errors: tuple[str, ...] = ()  # one line a failure
    done: tuple[str, ...] = ()  # human lines: what was done and why
    code: str = ""  # the first failure's reason code (planner.R_*), as the status says
    rollback: RollbackAsked | None = None  # for the reconciler to write into the store
    built: bool = False  # an image was built: the image cache is stale
    forget: bool = False  # the service is gone with its last container: drop its status


def advance(old: Status | None, work: Work, outcomes: Sequence[Outcome], now: float) -> Advanced:
    """From the status the executor started from and what it did, the status to record
    (``updated_at`` = ``now``) and the audit rows, in the order things happened."""
    st, events = _replay(old, work, outcomes)
    errors = tuple(o.problem for o in outcomes if o.problem)
    done = tuple(o.line for o in outcomes if o.line)
    code = next((o.code for o in outcomes if isinstance(o, (Failed, EngineHung))), "")
    if st is not None and work.policy is not None:
        st = _settled(st, errors, code, bool(done), now)
    else:
        st = None
    return Advanced(
        status=st, events=tuple(events), errors=errors, done=done, code=code,
        rollback=next((o for o in reversed(outcomes) if isinstance(o, RollbackAsked)), None),
        built=any(isinstance(o, Built) for o in outcomes),
        forget=work.policy is None and not errors and all(isinstance(a, Remove) for a in work.actions))


def _replay(old: Status | None, work: Work, outcomes: Sequence[Outcome]) -> tuple[Status | None, list[Event]]:
    """Each outcome in turn: the status it leaves, and its audit row (stamped when it happened)."""
    st = old
    events: list[Event] = []
    for o in outcomes:
        st = _status_after(st, work, o)
        ev = _lifecycle_event(o, st) or _other_event(o)
        if ev is not None:
            events.append(Event(ts=o.at, service=o.service, type=ev[0], reason=ev[1], message=ev[2],
                                container_id=ev[3], generation=work.generation, actor=work.actor))
    return st, events


def _settled(st: Status, errors: tuple[str, ...], code: str, acted: bool, now: float) -> Status:
    """A failure says so until an attempt succeeds; work done says ``Starting`` until the
    next pass observes its effect."""
    if errors:
        return replace(st, message=truncate("; ".join(errors), MESSAGE_LIMIT), state=ERROR, reason=code,
                       updated_at=now)
    if acted:
        return replace(st, state=STARTING, message="", reason="", updated_at=now)
    return replace(st, updated_at=now)


def _restarted(st: Status, work: Work, at: float) -> Status:
    """A recovery from a death or an unhealthy spell: it costs a backoff step."""
    assert work.policy is not None, "a restart is of a desired service"
    return backoff.after_restart(st, work.policy, at)


def _on(st: Status, container_id: str) -> Status:
    """``st`` about this container. A new container's health is its own: the health
    recorded for the one before it (``unhealthy``, when that is why it was replaced) must
    not seed the controller's probes of the new one (``reconciler._health_seed`` seeds only
    what the controller recorded), or the replacement starts out unhealthy and is replaced
    again, with no health row of its own. The next pass records who checks it now."""
    if container_id == st.container_id:
        return st
    return replace(st, container_id=container_id, health_checked_by="")


def _status_after(old: Status | None, work: Work, o: Outcome) -> Status | None:
    st = old or Status(name=work.service)
    match o:
        case Created() | Started(restart=False):
            return replace(_on(st, o.container_id), last_started_at=o.at)
        case Started():
            return _on(_restarted(st, work, o.at), o.container_id)
        case Restarted(requested=True):
            return replace(st, restart_count=st.restart_count + 1, last_started_at=o.at,
                           config_hash=st.config_hash if o.config_hash is None else o.config_hash)
        case Restarted():
            return _restarted(st, work, o.at)
        case Recreated():
            new = replace(_on(st, o.container_id), last_started_at=o.at, failures=0, next_attempt_at=0.0)
            if o.rollout and not st.rollout_from_generation:
                new.rollout_from_generation, new.rollout_started_at = st.observed_generation, o.at
            return new
    return old


_Row = tuple[str, str, str, str]  # type, reason, message, container id


def _lifecycle_event(o: Outcome, st: Status | None) -> _Row | None:
    count = st.restart_count if st is not None else 0
    match o:
        case Created():
            return "Created", o.reason, f"container {o.container_id[:12]} created and started", o.container_id
        case Started(restart=True) | Restarted():
            return "Restarted", o.full_reason, f"restart #{count}", o.container_id
        case Started():
            return "Started", o.reason, "", o.container_id
        case Recreated():
            changed = f"changed: {', '.join(o.changed_fields)}; " if o.changed_fields else ""  # none: unhealthy
            return "Recreated", o.reason, f"{changed}old {o.old_id[:12]} -> new {o.container_id[:12]}", o.container_id
        case Removed():
            return "Removed", o.reason, f"container {o.name} removed (named volumes kept)", o.container_id
        case Renamed():
            return "Renamed", o.reason, f"{o.old_name} -> {o.new_name}", o.container_id
    return None


def _other_event(o: Outcome) -> _Row | None:
    match o:
        case Built():
            return "Built", o.reason, f"image {o.image} built from {o.context}", ""
        case BuildFailed():
            return "BuildFailed", o.reason, truncate(o.output, 2000), ""
        case HookRan():
            return o.run.event_type, o.run.reason, o.run.message, o.container_id
        case HookUnrunnable():
            return "HookFailed", "preStop hook could not run", truncate(o.error), o.container_id
        case Failed():
            return "Failed", f"{o.kind} failed", truncate(o.error), o.container_id
        case EngineHung():
            return ("EngineDegraded", f"{o.call} timed out after {o.timeout:g}s", truncate(f"{o.what}: {o.error}"),
                    o.container_id)
    return None
