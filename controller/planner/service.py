"""Planning a service, and every service: the service-level gates first, then each replica's
verdict folded into one ``ServicePlan``; orphans (containers whose record was deleted) are
removed. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from controller import backoff
from controller.actions import Action, Remove
from controller.hooks import HookCall
from controller.hooks import calls as hook_calls
from controller.observed import Observed
from controller.planner import gates
from controller.planner.deps import dep_info, ready, unmet
from controller.planner.drift import drift
from controller.planner.model import Plan, PlanInput, ServicePlan
from controller.planner.replica import Context, Verdict, verdict
from controller.planner.vocab import Reason, State, worst
from controller.render import DesiredService
from crd_like import units
from crd_like.spec_lifecycle import Lifecycle
from store.records import Status


def plan_service(inp: PlanInput) -> ServicePlan:
    """The plan of one service: a service-level gate's, or its replicas' verdicts folded."""
    status = inp.status or Status(name=inp.svc.name)
    held = gates.suspended(inp, status) or gates.bad_reference(inp, status) or gates.build(inp)
    if held is not None:
        return held
    svc = inp.svc
    by_replica = _by_replica(inp.containers)
    wanted = svc.wanted
    removals = _scale_down(svc, by_replica)
    current = [c for r in wanted for c in by_replica.get(r, []) if c.spec_hash == svc.container_hash]
    held = gates.rollout(inp, status, current, removals)
    if held is not None:
        return held
    picked = {r: _pick(by_replica[r], inp) for r in wanted if by_replica.get(r)}
    ctx = Context(inp, status, tuple(unmet(svc, inp.deps)), picked,
                  {r: drift(c, svc, inp.revisions, inp.image_ids) for r, (c, _dups) in picked.items()})
    return _fold(ctx, removals, _budget(ctx, by_replica))


def _by_replica(containers: Sequence[Observed]) -> dict[int, list[Observed]]:
    out: dict[int, list[Observed]] = defaultdict(list)
    for c in containers:
        out[c.replica].append(c)
    return out


def _scale_down(svc: DesiredService, by_replica: Mapping[int, list[Observed]]) -> list[Remove]:
    """The containers of replicas beyond the desired count (or numbered below 1), and, on
    a node, of replicas assigned to another node."""
    wanted = set(svc.wanted)
    return [Remove(svc.name, r, c.id, c.name, f"scaled down to {svc.replicas} replicas" if not 1 <= r <= svc.replicas
                   else f"replica {r} is assigned to another node")
            for r in sorted(by_replica) if r not in wanted for c in by_replica[r]]


def _pick(containers: list[Observed], inp: PlanInput) -> tuple[Observed, tuple[Observed, ...]]:
    """Keep the best container of a replica; the rest are duplicates to remove."""
    want = inp.svc.container_hash
    ranked = sorted(containers, key=lambda c: (c.spec_hash == want, c.running, c.created), reverse=True)
    return ranked[0], tuple(ranked[1:])


def _budget(ctx: Context, by_replica: Mapping[int, list[Observed]]) -> int:
    """How many replicas may be replaced now (rolling update): the parallelism, less the
    replicas already in transition (missing, or current but not ready yet). A replica that
    is itself to be replaced is outdated, not in transition, whatever the kind of drift
    (spec, image, referenced file, network): counting a stopped one whose image moved as
    "in transition" used up the budget its own Recreate needed, and it was never replaced."""
    svc = ctx.svc
    if svc.replicas <= 1:
        return 1
    outdated = {r for r, d in ctx.drifts.items() if d}
    in_transition = sum(1 for r in svc.wanted if r not in outdated and not any(
        c.spec_hash == svc.container_hash and ready(c, svc) for c in by_replica.get(r, [])))
    return max(0, svc.spec.update.parallelism - in_transition)


@dataclass
class _Fold:
    """The replicas' verdicts, accumulated in replica order."""

    actions: list[Action]
    states: list[State] = field(default_factory=list)
    healths: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    reasons: list[Reason] = field(default_factory=list)
    retry_at: float | None = None
    settled: bool = True
    reset: bool = False

    def add(self, v: Verdict) -> None:
        self.actions.extend(v.actions)
        self.states.append(v.state)
        if v.health is not None:
            self.healths.append(v.health)
        if v.message:
            self.messages.append(v.message)
        if v.reason:
            self.reasons.append(v.reason)
        if v.retry_at is not None:
            self.retry_at = v.retry_at if self.retry_at is None else min(self.retry_at, v.retry_at)
        self.settled = self.settled and v.settled
        self.reset = self.reset or v.reset_backoff


def _fold(ctx: Context, removals: list[Remove], budget: int) -> ServicePlan:
    svc = ctx.svc
    acc = _Fold([*removals])
    for replica in svc.wanted:
        v = verdict(ctx, replica, budget)
        acc.add(v)
        if v.uses_budget:
            budget -= 1
        if v.fresh_failure:  # the replicas after it see the reset failure count too
            ctx = replace(ctx, status=backoff.reset(ctx.status))
    state = worst(acc.states) if svc.wanted else State.RUNNING
    health = _worst_health(acc.healths) if svc.spec.probes else ""
    converged = acc.settled and not acc.actions and (not svc.spec.probes or health == "healthy")
    if ctx.unmet:
        acc.messages.insert(0, "waiting for " + ", ".join(u.text() for u in ctx.unmet))
    return ServicePlan(svc.name, tuple(acc.actions), state, health, "; ".join(acc.messages), converged,
                       acc.retry_at, acc.reset, tuple(u.text() for u in ctx.unmet),
                       _reason(state, acc.reasons, bool(ctx.unmet)), ctx.unmet)


def _reason(state: State, reasons: Sequence[Reason], waiting: bool) -> Reason:
    """The service's reason: its replicas' for a service that gave up or crash-loops (the
    reason that goes with that state), else that it waits for a dependency, else none."""
    if state in (State.FAILED, State.CRASHLOOP):
        return next((r for r in reasons if (r == Reason.CRASHLOOP) == (state == State.CRASHLOOP)), Reason.NONE)
    return Reason.DEPENDENCY if waiting else Reason.NONE


def _worst_health(healths: list[str]) -> str:
    for h in ("unhealthy", "starting", "", "healthy"):
        if h in healths:
            return h
    return ""


@dataclass(frozen=True)
class Lookups:
    """What ``plan`` may be told besides the containers and statuses (each empty if left out):
    older specs by (service, generation), to name what changed and to roll back; image
    reference -> the id it names now; image reference -> the build-context hash it was built
    from."""

    revisions: Mapping[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    image_ids: Mapping[str, str] = field(default_factory=dict)
    image_builds: Mapping[str, str] = field(default_factory=dict)


NO_LOOKUPS = Lookups()


def plan(desired: Mapping[str, DesiredService], observed: Sequence[Observed], statuses: Mapping[str, Status],
         *, now: float, only: set[str] | None = None, lookups: Lookups = NO_LOOKUPS) -> Plan:
    """Plan every desired service (or just ``only``) and remove containers nobody wants."""
    revisions, image_ids, image_builds = lookups.revisions, lookups.image_ids, lookups.image_builds
    by_service: dict[str, list[Observed]] = defaultdict(list)
    for c in observed:
        by_service[c.service].append(c)
    deps = {name: dep_info(svc, by_service.get(name, []), statuses.get(name)) for name, svc in desired.items()}
    services = {
        name: plan_service(PlanInput(svc, by_service.get(name, []), statuses.get(name), revisions, image_ids, now,
                                     deps, image_builds))
        for name, svc in desired.items() if only is None or name in only
    }
    orphans = tuple(
        _orphan(c, revisions.get((c.service, c.generation)))
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
