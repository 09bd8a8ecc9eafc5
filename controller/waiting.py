"""Deciding a wait: from desired records and recorded statuses, is the outcome reached,
still possible, or impossible? Pure (no engine, no SQL, no clock).

`apply --wait`, `up` and `wait` ask this after every pass (inline) or every poll of the
store (while a `reconcile run` controller converges). It reads only typed status fields
(``state``, ``reason``, ``waiting_for``, ``derived_generation``), never messages: a service
is *blocked* when its own reason is one that will not change by itself (a Job past its
backoffLimit, a service that gave up, an image that is missing, a host port that is taken)
or when something it waits for is blocked, transitively.

A status derived for an older generation than the stored one says nothing yet about the
current spec: the service counts as waiting ("not observed yet") until a pass re-derives it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from controller.planner import BLOCKING_REASONS, COMPLETED, EXITED, FAILED, R_DEPENDENCY, RUNNING
from store.records import Desired, Status

Goal = Literal["healthy", "completed", "deleted"]
Phase = Literal["done", "waiting", "blocked"]
GOALS: tuple[Goal, ...] = ("healthy", "completed", "deleted")


@dataclass(frozen=True)
class Cause:
    """Why a service cannot reach its goal: the service at the root and its reason."""

    service: str
    reason: str  # a planner R_* code, or "NotFound"
    message: str = ""
    container_id: str = ""


@dataclass(frozen=True)
class Outcome:
    name: str
    phase: Phase
    state: str = ""
    health: str = ""
    reason: str = ""
    waits_for: tuple[tuple[str, str], ...] = ()  # (dependency, condition) still unmet
    cause: Cause | None = None  # set when blocked
    path: tuple[str, ...] = ()  # name -> ... -> cause.service, when blocked through dependencies

    def line(self) -> str:
        """One human line: state, health, what it waits for or what blocks it."""
        bits = [self.state or "-"]
        if self.health:
            bits.append(f"health {self.health}")
        if self.phase == "blocked" and self.cause is not None:
            if self.cause.service == self.name:
                bits.append(f"blocked: {self.cause.reason}")
            else:
                bits.append(f"blocked by {' -> '.join(self.path[1:])}: {self.cause.reason}")
        elif self.waits_for:
            bits.append("waits for " + ", ".join(f"{d} ({c})" for d, c in self.waits_for))
        elif self.phase == "waiting" and self.reason:
            bits.append(self.reason)
        return ", ".join(bits)


@dataclass(frozen=True)
class Verdict:
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return all(o.phase == "done" for o in self.outcomes.values())

    @property
    def blocked(self) -> list[Outcome]:
        return [o for o in self.outcomes.values() if o.phase == "blocked"]

    @property
    def waiting(self) -> list[Outcome]:
        return [o for o in self.outcomes.values() if o.phase == "waiting"]

    @property
    def decided(self) -> bool:
        return self.done or bool(self.blocked)

    def causes(self) -> list[Cause]:
        seen: dict[str, Cause] = {}
        for o in self.blocked:
            if o.cause is not None:
                seen.setdefault(o.cause.service, o.cause)
        return list(seen.values())


def fresh(rec: Desired, st: Status | None) -> bool:
    return st is not None and st.derived_generation == rec.generation


def _own_block(name: str, desired: Mapping[str, Desired], statuses: Mapping[str, Status]) -> Cause | None:
    rec = desired.get(name)
    if rec is None:
        return Cause(name, "NotFound", f"{name} does not exist")
    st = statuses.get(name)
    if rec.suspended or st is None or not fresh(rec, st):
        return None
    if st.state == FAILED or st.reason in BLOCKING_REASONS:
        return Cause(name, st.reason or st.state, st.message, st.container_id)
    return None


def _blocked_path(name: str, desired: Mapping[str, Desired], statuses: Mapping[str, Status],
                  seen: frozenset[str] = frozenset()) -> tuple[tuple[str, ...], Cause] | None:
    """(path from name to the root cause, the cause), or None when nothing blocks name."""
    own = _own_block(name, desired, statuses)
    if own is not None:
        return (name,), own
    rec, st = desired.get(name), statuses.get(name)
    if rec is None or st is None or not fresh(rec, st) or st.reason != R_DEPENDENCY:
        return None
    for dep in sorted(st.waiting_for):
        if dep in seen:
            continue
        found = _blocked_path(dep, desired, statuses, seen | {name})
        if found is not None:
            return (name, *found[0]), found[1]
    return None


def _reached(rec: Desired, st: Status | None, goal: Goal) -> bool:
    if rec.suspended:
        return True
    if st is None or st.observed_generation != rec.generation or not fresh(rec, st):
        return False
    if rec.kind == "Job":  # a Job has converged when it has run to completion
        return st.state == COMPLETED
    if rec.spec.get("healthcheck") and st.health != "healthy":
        return False
    # observed_generation stays once reached: the state says whether it still holds
    return st.state in (RUNNING, EXITED)


def verdict(desired: Mapping[str, Desired], statuses: Mapping[str, Status], names: set[str] | None,
            goal: Goal = "healthy") -> Verdict:
    """The outcome of waiting for ``names`` (every desired service when None) to reach ``goal``."""
    wanted = sorted(names if names is not None else desired)
    if goal == "deleted":
        return Verdict({name: _deleted(name, desired, statuses) for name in wanted})
    return Verdict({name: _outcome(name, desired, statuses, goal) for name in wanted})


def _deleted(name: str, desired: Mapping[str, Desired], statuses: Mapping[str, Status]) -> Outcome:
    """Waiting for deletion: done once neither the record nor its status is left."""
    rec, st = desired.get(name), statuses.get(name)
    gone = rec is None and st is None
    return Outcome(name, "done" if gone else "waiting", st.state if st else "",
                   reason="" if gone else ("still desired" if rec else "containers being removed"))


def _outcome(name: str, desired: Mapping[str, Desired], statuses: Mapping[str, Status], goal: Goal) -> Outcome:
    """Waiting for healthy or completed: reached, blocked (by itself or a dependency), or waiting."""
    rec, st = desired.get(name), statuses.get(name)
    if rec is None:
        return Outcome(name, "blocked", cause=Cause(name, "NotFound", f"no resource named {name}"), path=(name,))
    state, health = (st.state, st.health) if st else ("", "")
    if st is not None and not fresh(rec, st):
        state = f"{state} (generation {rec.generation} not observed yet)" if state else ""
    if _reached(rec, st, goal):
        return Outcome(name, "done", state, health)
    found = _blocked_path(name, desired, statuses)
    if found is not None:
        return Outcome(name, "blocked", state, health, st.reason if st else "", cause=found[1], path=found[0])
    waits = tuple(sorted(st.waiting_for.items())) if st is not None and fresh(rec, st) else ()
    return Outcome(name, "waiting", state, health, st.reason if st else "", waits)


def explain(v: Verdict) -> list[str]:
    """Human lines: which service blocks which and why (blocked), or what still waits on what."""
    lines: list[str] = []
    for o in v.blocked:
        assert o.cause is not None
        why = f"{o.cause.reason}" + (f": {o.cause.message}" if o.cause.message else "")
        if o.cause.service == o.name:
            lines.append(f"{o.name} cannot become ready: {why}")
        else:
            lines.append(f"{o.name} is blocked by {o.cause.service} (via {' -> '.join(o.path)}): {why}")
    for o in v.waiting:
        lines.append(f"{o.name} still waiting: {o.line()}")
    return lines
