"""controller.waiting: the verdict of a wait from typed status fields (table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from controller.waiting import verdict
from store.records import Desired, Status


def rec(name: str, kind: str = "Service", gen: int = 1, **spec: Any) -> Desired:
    return Desired(name=name, kind=kind, api_version="reconcile/v1alpha1", spec=spec, metadata={}, spec_hash="h",
                   generation=gen, source="", suspended=False, updated_at=0.0)


def st(name: str, state: str, *, gen: int = 1, observed: int | None = None, health: str = "", reason: str = "",
       waiting_for: dict[str, str] | None = None, message: str = "") -> Status:
    return Status(name=name, state=state, health=health, reason=reason, waiting_for=waiting_for or {},
                  derived_generation=gen, observed_generation=gen if observed is None else observed,
                  message=message)


CASES = [
    # (desired, statuses, names, goal, expected phases, expected root cause of the first blocked)
    ("running service is done", [rec("a")], [st("a", "Running")], None, "healthy", {"a": "done"}, None),
    ("healthcheck not healthy yet waits", [rec("a", healthcheck={"test": ["x"]})],
     [st("a", "Running", health="starting")], None, "healthy", {"a": "waiting"}, None),
    ("healthy with healthcheck is done", [rec("a", healthcheck={"test": ["x"]})],
     [st("a", "Running", health="healthy")], None, "healthy", {"a": "done"}, None),
    ("job running is not done", [rec("j", "Job")], [st("j", "Running")], None, "healthy", {"j": "waiting"}, None),
    ("job completed is done", [rec("j", "Job")], [st("j", "Completed")], None, "completed", {"j": "done"}, None),
    ("job past backoffLimit blocks itself", [rec("j", "Job")],
     [st("j", "Failed", reason="BackoffLimitExceeded")], None, "healthy", {"j": "blocked"}, "j"),
    ("dependent of a failed job is blocked by it", [rec("j", "Job"), rec("b")],
     [st("j", "Failed", reason="BackoffLimitExceeded"),
      st("b", "Waiting", observed=0, reason="WaitingForDependency", waiting_for={"j": "completed"})],
     {"b"}, "healthy", {"b": "blocked"}, "j"),
    ("blocked transitively", [rec("j", "Job"), rec("b"), rec("f")],
     [st("j", "Failed", reason="BackoffLimitExceeded"),
      st("b", "Waiting", observed=0, reason="WaitingForDependency", waiting_for={"j": "completed"}),
      st("f", "Waiting", observed=0, reason="WaitingForDependency", waiting_for={"b": "healthy"})],
     {"f"}, "healthy", {"f": "blocked"}, "j"),
    ("waiting on a dependency that still starts", [rec("d"), rec("b")],
     [st("d", "Starting", observed=0), st("b", "Waiting", observed=0, reason="WaitingForDependency",
                                             waiting_for={"d": "healthy"})],
     {"b"}, "healthy", {"b": "waiting"}, None),
    ("crash loop alone is not decided", [rec("a")], [st("a", "CrashLoopBackOff", observed=0, reason="CrashLoop")],
     None, "healthy", {"a": "waiting"}, None),
    ("gave up after maxAttempts blocks", [rec("a")], [st("a", "Failed", reason="GaveUp")], None, "healthy",
     {"a": "blocked"}, "a"),
    ("image missing blocks", [rec("a")], [st("a", "Error", observed=0, reason="ImageMissing")], None, "healthy",
     {"a": "blocked"}, "a"),
    ("port taken blocks", [rec("a")], [st("a", "Error", observed=0, reason="PortInUse")], None, "healthy",
     {"a": "blocked"}, "a"),
    ("a transient error does not decide", [rec("a")], [st("a", "Error", observed=0, reason="ActionFailed")],
     None, "healthy", {"a": "waiting"}, None),
    ("a status of an older generation decides nothing", [rec("j", "Job", gen=2)],
     [st("j", "Failed", gen=1, reason="BackoffLimitExceeded")], None, "healthy", {"j": "waiting"}, None),
    ("no status yet waits", [rec("a")], [], None, "healthy", {"a": "waiting"}, None),
    ("deleted: gone is done", [], [], {"x"}, "deleted", {"x": "done"}, None),
    ("deleted: containers still there", [], [st("x", "Running")], {"x"}, "deleted", {"x": "waiting"}, None),
    ("deleted: still desired", [rec("x")], [st("x", "Running")], {"x"}, "deleted", {"x": "waiting"}, None),
    ("unknown name is blocked", [], [], {"x"}, "healthy", {"x": "blocked"}, "x"),
    ("dependency cycle in statuses terminates", [rec("a"), rec("b")],
     [st("a", "Waiting", observed=0, reason="WaitingForDependency", waiting_for={"b": "healthy"}),
      st("b", "Waiting", observed=0, reason="WaitingForDependency", waiting_for={"a": "healthy"})],
     None, "healthy", {"a": "waiting", "b": "waiting"}, None),
]


@pytest.mark.parametrize("desired,statuses,names,goal,phases,cause", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_verdict(desired: list[Desired], statuses: list[Status], names: set[str] | None, goal: Any,
                 phases: dict[str, str], cause: str | None) -> None:
    v = verdict({d.name: d for d in desired}, {s.name: s for s in statuses}, names, goal)
    assert {n: o.phase for n, o in v.outcomes.items()} == phases
    blocked = v.blocked
    if cause is None:
        assert not blocked
    else:
        assert blocked[0].cause is not None and blocked[0].cause.service == cause
        assert v.decided and not v.done
