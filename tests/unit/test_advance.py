"""controller.advance, table-driven: (old status, plan, outcomes or what was seen, now) ->
(new status, audit rows). Pure, so no engine and no store: time is a fake clock value,
outcomes are the records the executor would have returned."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from controller import outcomes as oc
from controller.actions import Create, Remove, Restart, Start
from controller.advance import Seen, Work, advance, observe
from controller.hooks import HookCall, HookResult, HookRun
from controller.observed import Observed
from controller.planner import CRASHLOOP, FAILED, R_ACTION_FAILED, R_IMAGE_MISSING, RUNNING, ServicePlan
from controller.render import prepare
from controller.status import Transition
from crd_like.models import RestartPolicy
from store.records import Status

T0 = 1_000_000.0  # the fake clock's "now"
OLD, NEW = "a" * 64, "b" * 64
POLICY = RestartPolicy()  # backoff 1 s, 2 s, 4 s ... after the first (immediate) restart
WORK = Work("web", (), generation=3, policy=POLICY, actor="controller")


def _run(ok: bool) -> HookRun:
    return HookRun("postStart", 1, 1, HookCall(("sh", "-c", "echo hi")), HookResult(0 if ok else 3, "hi"))


# (case, old status, outcomes, status fields expected, audit rows expected as (type, reason, message))
CASES: list[tuple[str, Status | None, list[oc.Outcome], dict[str, Any], list[tuple[str, str, str]]]] = [
    ("create", None, [oc.Created("web", 1, NEW, "missing", T0 - 5)],
     {"container_id": NEW, "last_started_at": T0 - 5, "state": "Starting", "message": "", "reason": ""},
     [("Created", "missing", f"container {NEW[:12]} created and started")]),
    ("start after a death costs a backoff step", Status("web", failures=1, restart_count=4),
     [oc.Started("web", 1, OLD, "exited (1)", T0, detail="OOM-killed")],
     {"failures": 2, "restart_count": 5, "next_attempt_at": T0 + 2.0, "restart_times": [T0], "container_id": OLD,
      "last_started_at": T0, "state": "Starting"},
     [("Restarted", "exited (1); OOM-killed", "restart #5")]),
    ("a first start is no restart", Status("web", failures=1, restart_count=4),
     [oc.Started("web", 1, OLD, "created, never started", T0, restart=False, detail="ignored")],
     {"failures": 1, "restart_count": 4, "container_id": OLD, "last_started_at": T0},
     [("Started", "created, never started", "")]),
    ("an unhealthy restart costs a backoff step and says the last probe", Status("web", container_id=OLD),
     [oc.Restarted("web", 1, OLD, "unhealthy", T0, probe="exit 1: down")],
     {"failures": 1, "restart_count": 1, "next_attempt_at": T0 + 1.0, "container_id": OLD},
     [("Restarted", "unhealthy; last probe: exit 1: down", "restart #1")]),
    ("a requested restart costs no backoff and loads the new files' hash",
     Status("web", container_id=OLD, failures=2, restart_count=7, config_hash="h1"),
     [oc.Restarted("web", 1, OLD, "restart requested", T0, requested=True, config_hash="h2")],
     {"failures": 2, "restart_count": 8, "config_hash": "h2", "last_started_at": T0, "next_attempt_at": 0.0},
     [("Restarted", "restart requested", "restart #8")]),
    ("a recreate resets the backoff", Status("web", container_id=OLD, failures=3, next_attempt_at=T0 + 50),
     [oc.Recreated("web", 1, OLD, NEW, "image changed", T0, ("image",))],
     {"container_id": NEW, "failures": 0, "next_attempt_at": 0.0, "rollout_from_generation": 0},
     [("Recreated", "image changed", f"changed: image; old {OLD[:12]} -> new {NEW[:12]}")]),
    ("a replacement of an unhealthy container is not seeded with its health (controller probes)",
     Status("web", container_id=OLD, health="unhealthy", health_checked_by="controller"),
     [oc.Recreated("web", 1, OLD, NEW, "unhealthy", T0, ())],
     {"container_id": NEW, "health_checked_by": ""}, [("Recreated", "unhealthy", f"old {OLD[:12]} -> new {NEW[:12]}")]),
    ("a restart in place keeps who checks its health", Status("web", container_id=OLD, health_checked_by="controller"),
     [oc.Started("web", 1, OLD, "exited (1)", T0)], {"container_id": OLD, "health_checked_by": "controller"},
     [("Restarted", "exited (1)", "restart #1")]),
    ("a new container after a removal is not seeded either",
     Status("web", container_id=OLD, health="unhealthy", health_checked_by="controller"),
     [oc.Created("web", 1, NEW, "missing", T0)], {"container_id": NEW, "health_checked_by": ""},
     [("Created", "missing", f"container {NEW[:12]} created and started")]),
    ("a rollout remembers where it started", Status("web", container_id=OLD, observed_generation=2),
     [oc.Recreated("web", 1, OLD, NEW, "spec changed", T0, ("env",), rollout=True)],
     {"rollout_from_generation": 2, "rollout_started_at": T0}, [("Recreated", "spec changed", f"changed: env; "
                                                                  f"old {OLD[:12]} -> new {NEW[:12]}")]),
    ("a rollout already under way keeps its start", Status("web", rollout_from_generation=1, rollout_started_at=5.0),
     [oc.Recreated("web", 2, OLD, NEW, "spec changed", T0, ("env",), rollout=True)],
     {"rollout_from_generation": 1, "rollout_started_at": 5.0}, [("Recreated", "spec changed", f"changed: env; "
                                                                  f"old {OLD[:12]} -> new {NEW[:12]}")]),
    ("a failure is the state until an attempt succeeds", Status("web", state=RUNNING, container_id=OLD),
     [oc.Failed("web", "create web#1: missing", "create", "image 'x' is not present", R_IMAGE_MISSING, T0)],
     {"state": "Error", "reason": R_IMAGE_MISSING, "message": "create web#1: missing failed: image 'x' is not present",
      "container_id": OLD}, [("Failed", "create failed", "image 'x' is not present")]),
    ("the first failure's code counts; messages join", Status("web"),
     [oc.Failed("web", "a", "start", "x", R_ACTION_FAILED, T0), oc.Failed("web", "b", "create", "y", R_IMAGE_MISSING, T0)],
     {"state": "Error", "reason": R_ACTION_FAILED, "message": "a failed: x; b failed: y"},
     [("Failed", "start failed", "x"), ("Failed", "create failed", "y")]),
    ("a long failure message is cut in the status", Status("web"),
     [oc.Failed("web", "create web#1", "create", "z" * 600, R_ACTION_FAILED, T0)],
     {"message": ("create web#1 failed: " + "z" * 600)[:297] + "..."}, [("Failed", "create failed", "z" * 497 + "...")]),
    ("a hung engine call", Status("web"),
     [oc.EngineHung("web", "start web#1 (x): y", "containers.start", 30.0, "no answer", R_ACTION_FAILED, T0, OLD)],
     {"state": "Error", "reason": R_ACTION_FAILED, "message": "start web#1 (x): y failed: no answer"},
     [("EngineDegraded", "containers.start timed out after 30s", "start web#1 (x): y: no answer")]),
    ("a deferred restart is an error with no row and no code", Status("web", state=CRASHLOOP),
     [oc.Deferred("web", T0)],
     {"state": "Error", "reason": "", "message": "web: restart deferred by the host-wide restart limit"}, []),
    ("hooks are audited; a failed one fails the start", Status("web"),
     [oc.Created("web", 1, NEW, "missing", T0), oc.HookRan("web", NEW, _run(True), T0), oc.HookRan("web", NEW, _run(False), T0),
      oc.Failed("web", "create web#1: missing", "create", "postStart hook failed", R_ACTION_FAILED, T0, "")],
     {"state": "Error", "container_id": NEW},
     [("Created", "missing", f"container {NEW[:12]} created and started"),
      ("HookRan", "postStart hook 1/1 exited with status 0", "sh -c 'echo hi': hi"),
      ("HookFailed", "postStart hook 1/1 exited with status 3", "sh -c 'echo hi': hi"),
      ("Failed", "create failed", "postStart hook failed")]),
    ("a preStop hook the engine would not run", Status("web"),
     [oc.HookUnrunnable("web", OLD, "container not running", T0), oc.Removed("web", OLD, "web-2", "scaled down", T0)],
     {"state": "Starting"}, [("HookFailed", "preStop hook could not run", "container not running"),
                             ("Removed", "scaled down", "container web-2 removed (named volumes kept)")]),
    ("a build that fails", Status("web"),
     [oc.BuildFailed("web", "image missing", "step 3\nno such file", T0),
      oc.Failed("web", "build the image of web", "build", "building failed: no such file", R_ACTION_FAILED, T0)],
     {"state": "Error"}, [("BuildFailed", "image missing", "step 3\nno such file"),
                          ("Failed", "build failed", "building failed: no such file")]),
    ("a build, a rename", Status("web"),
     [oc.Built("web", "demo:1", "/src", "image missing", T0), oc.Renamed("web", OLD, "x", "web-1", "renamed", T0)],
     {"state": "Starting"}, [("Built", "image missing", "image demo:1 built from /src"), ("Renamed", "renamed", "x -> web-1")]),
    ("nothing done, nothing failed: the status only gets its time", Status("web", state=RUNNING, message="ok"),
     [], {"state": RUNNING, "message": "ok", "updated_at": T0}, []),
]


@pytest.mark.parametrize("case, old, outcomes, want, rows", CASES, ids=[c[0] for c in CASES])
def test_advance_derives_status_and_audit_rows(case: str, old: Status | None, outcomes: list[oc.Outcome],
                                               want: dict[str, Any], rows: list[tuple[str, str, str]]) -> None:
    got = advance(old, WORK, outcomes, T0)
    assert got.status is not None and got.status.name == "web"
    assert {k: getattr(got.status, k) for k in want} == want
    assert got.status.updated_at == T0
    assert [(e.type, e.reason, e.message) for e in got.events] == rows
    assert all(e.generation == 3 and e.actor == "controller" and e.service == "web" for e in got.events)
    assert got.errors == tuple(o.problem for o in outcomes if o.problem)
    assert got.done == tuple(o.line for o in outcomes if o.line)
    if old is not None:
        assert old == (CASES[[c[0] for c in CASES].index(case)][1]), "advance must not change the status it is given"


def test_rows_are_stamped_when_it_happened_not_when_recorded() -> None:
    got = advance(None, WORK, [oc.Created("web", 1, NEW, "missing", T0 - 9), oc.Removed("web", OLD, "w", "dup", T0 - 2)],
                  T0)
    assert [e.ts for e in got.events] == [T0 - 9, T0 - 2]


@pytest.mark.parametrize("failures, delay", [(0, 1.0), (1, 2.0), (2, 4.0), (9, 300.0)])
def test_each_restart_after_a_death_doubles_the_wait(failures: int, delay: float) -> None:
    got = advance(Status("web", failures=failures), WORK, [oc.Started("web", 1, OLD, "died", T0)], T0)
    assert got.status is not None and got.status.next_attempt_at == T0 + delay
    assert got.status.failures == failures + 1


@pytest.mark.parametrize("actions, outcomes, forget", [
    ((Remove("gone", 1, OLD, "gone-1", "no longer desired"),), [oc.Removed("gone", OLD, "gone-1", "x", T0)], True),
    ((Remove("gone", 1, OLD, "gone-1", "x"),), [oc.Failed("gone", "remove", "remove", "busy", R_ACTION_FAILED, T0)], False),
    ((Remove("gone", 1, OLD, "gone-1", "x"), Start("gone", 1, NEW, "x")), [], False),
])
def test_a_service_no_longer_desired_keeps_no_status(actions: tuple[Any, ...], outcomes: list[oc.Outcome],
                                                     forget: bool) -> None:
    got = advance(Status("gone"), Work("gone", actions), outcomes, T0)
    assert got.status is None and got.forget is forget


def test_no_status_to_start_from_and_nothing_that_makes_one() -> None:
    got = advance(None, Work("web", (Restart("web", 1, OLD, "x"),), 1, POLICY),
                  [oc.Deferred("web", T0)], T0)
    assert got.status is None and got.errors and not got.events


def test_rollback_and_built_are_reported_for_the_reconciler() -> None:
    got = advance(Status("web"), replace(WORK, actions=(Create("web", 1, "x"),)),
                  [oc.Built("web", "i", "/c", "r", T0), oc.RollbackAsked("web", 2, "unhealthy after rollout", T0)], T0)
    assert got.built and got.rollback is not None and got.rollback.to_generation == 2
    assert got.done[-1] == "rolling back web to revision 2: unhealthy after rollout"


# -- observe ------------------------------------------------------------------
SVC = prepare("web", "Service", 4, {"image": "reconcile/busybox:latest",
                                     "healthcheck": {"test": ["CMD", "true"], "interval": "5s"}})
JOB = prepare("mig", "Job", 2, {"image": "reconcile/busybox:latest"})


def _c(cid: str = OLD, state: str = "running", health: str = "", code: int | None = None, service: str = "web") -> Observed:
    return Observed(cid, f"{service}-1", service, 1, "inst", "h", 4, state, code, health, "img", 1.0)


OBSERVE = [
    ("health turns unhealthy: the row carries the probe", SVC, Status("web", state=RUNNING, container_id=OLD, health="healthy"),
     ServicePlan("web", state=RUNNING, health="unhealthy"), [_c(health="unhealthy")],
     {"probe": "exit 1: down"}, [("HealthChanged", "healthy -> unhealthy", "exit 1: down")]),
    ("the container died", SVC, Status("web", state=RUNNING, container_id=OLD),
     ServicePlan("web", state="Exited"), [_c(state="exited", code=137)], {},
     [("Died", "container exited with code 137", "")]),
    ("it is gone", SVC, Status("web", state=RUNNING, container_id=OLD, health="healthy"),
     ServicePlan("web", state="Pending"), [], {}, [("HealthChanged", "healthy -> none (container no longer running)", "")]),
    ("entering a crash loop", SVC, Status("web", state="Exited", container_id=OLD),
     ServicePlan("web", state=CRASHLOOP, message="restarting in 4s", retry_at=T0 + 4), [_c(state="exited", code=1)], {},
     [("BackOff", "restarting in 4s", f"next attempt at {datetime.fromtimestamp(T0 + 4):%H:%M:%S}")]),
    ("still in the crash loop: no second row", SVC, Status("web", state=CRASHLOOP, container_id=OLD),
     ServicePlan("web", state=CRASHLOOP, message="restarting in 4s"), [_c(state="exited", code=1)], {}, []),
    ("giving up", SVC, Status("web", state=CRASHLOOP, container_id=OLD),
     ServicePlan("web", state=FAILED, message="gave up after 3 restarts"), [_c(state="exited", code=1)], {},
     [("GaveUp", "gave up after 3 restarts", "")]),
    ("a job completes: the row carries its output", JOB, Status("mig", state=RUNNING, container_id=OLD),
     ServicePlan("mig", state="Completed"), [_c(state="exited", code=0, service="mig")], {"logs": "output tail: done"},
     [("Died", "container exited with code 0", ""), ("Completed", "job exited with code 0", "output tail: done")]),
    ("a job fails", JOB, None, ServicePlan("mig", state="Exited"), [_c(state="exited", code=2, service="mig")],
     {"logs": "output tail: boom"}, [("JobFailed", "job exited with code 2", "output tail: boom")]),
    ("a crash loop ends: its backoff is reset", SVC, Status("web", state=RUNNING, container_id=OLD, failures=3),
     ServicePlan("web", state=RUNNING, reset_backoff=True), [_c()], {},
     [("BackOffEnded", "running without failing after 3 failures; backoff reset", "")]),
    ("one restart's backoff reset is no crash loop ending", SVC,
     Status("web", state=RUNNING, container_id=OLD, failures=1, next_attempt_at=T0),
     ServicePlan("web", state=RUNNING, reset_backoff=True), [_c()], {}, []),
]


@pytest.mark.parametrize("case, svc, old, sp, containers, detail, rows", OBSERVE, ids=[c[0] for c in OBSERVE])
def test_observe_audits_what_changed_on_its_own(case: str, svc: Any, old: Status | None, sp: ServicePlan,
                                                containers: list[Observed], detail: dict[str, str],
                                                rows: list[tuple[str, str, str]]) -> None:
    from controller import status as status_mod

    notes = status_mod.transitions(old, sp, svc, containers)
    details = {n: detail["probe" if n.wants_probe else "logs"] for n in notes if n.wants_probe or n.wants_logs}
    new, events = observe(old, sp, Seen(svc, tuple(containers), "engine", details, "controller"), T0)
    assert [(e.type, e.reason, e.message) for e in events] == rows
    assert all(e.ts == T0 and e.generation == svc.generation for e in events)
    assert new.state == sp.state and new.derived_generation == svc.generation
    assert new.updated_at == T0  # something changed, so it is stamped


def test_observe_keeps_an_executor_failure_until_an_attempt_succeeds() -> None:
    old = Status("web", state="Error", reason=R_IMAGE_MISSING, message="image missing", updated_at=5.0)
    sp = ServicePlan("web", actions=(Create("web", 1, "missing"),), state="Pending")
    new, events = observe(old, sp, Seen(SVC), T0)
    assert (new.state, new.reason, new.message) == ("Error", R_IMAGE_MISSING, "image missing") and not events
    converged = ServicePlan("web", state=RUNNING, converged=True)
    new, _ = observe(old, converged, Seen(SVC, (_c(),)), T0)
    assert (new.state, new.reason, new.observed_generation, new.container_id) == (RUNNING, "", 4, OLD)


def test_observe_leaves_an_unchanged_status_unstamped() -> None:
    sp = ServicePlan("web", state=RUNNING, health="healthy")
    first, _ = observe(None, sp, Seen(SVC, (_c(health="healthy"),), "engine"), T0)
    again, events = observe(first, sp, Seen(SVC, (_c(health="healthy"),), "engine"), T0 + 30)
    assert again == first and again.updated_at == T0 and not events


@pytest.mark.parametrize("sp, before, want", [
    (ServicePlan("web", state=CRASHLOOP, retry_at=T0 + 8), Status("web", next_attempt_at=T0 + 2), T0 + 8),
    (ServicePlan("web", state=CRASHLOOP, retry_at=T0 + 1), Status("web", next_attempt_at=T0 + 2), T0 + 2),
    (ServicePlan("web", state=RUNNING, reset_backoff=True), Status("web", failures=3, next_attempt_at=T0 + 2), 0.0),
])
def test_observe_takes_the_plans_backoff(sp: ServicePlan, before: Status, want: float) -> None:
    new, _ = observe(before, sp, Seen(SVC), T0)
    assert new.next_attempt_at == want
    if sp.reset_backoff:
        assert new.failures == 0


def test_transitions_are_hashable_keys_for_their_detail() -> None:
    t = Transition("HealthChanged", "a -> b", OLD, wants_probe=True)
    assert {t: "x"}[Transition("HealthChanged", "a -> b", OLD, wants_probe=True)] == "x"
