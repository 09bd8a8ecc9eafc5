"""controller.planner's gates, one table each: the service-level gates (suspended, unreadable
reference, build, failed rollout), the one restart gate (given up / back-off) and the fresh
failure that resets the count; the order of severity of the states; the typed reasons that
``operations._blocked`` acts on (``ServicePlan.stuck``). Pure: no engine, no clock."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from controller.actions import Build, Remove, Rollback
from controller.observed import Observed
from controller.operations import _blocked
from controller.planner import (BLOCKING_REASONS, Hold, Plan, PlanInput, Problem, Reason, ServicePlan, State, Unmet,
                                gates, plan_service, restart_gate, worst)
from controller.render import DesiredService, prepare
from crd_like.models import RestartPolicy
from store.records import Status
from tests.unit.test_planner import NOW, ctr, spec_of, svc

IMAGE = "sha256:" + "a" * 64
BUILD = {"context": "/srv/app"}


def _inp(s: DesiredService, containers: list[Observed] | None = None, status: Status | None = None,
         **kw: Any) -> PlanInput:
    return PlanInput(s, containers or [], status, kw.pop("revisions", {}), kw.pop("image_ids", {}), NOW, **kw)


# --------------------------------------------------------------------------- restart gate
def _policy(**fields: Any) -> RestartPolicy:
    return RestartPolicy.model_validate({"condition": "always", **fields})


RESTART_GATE: list[tuple[str, dict[str, Any], dict[str, Any], bool, Hold | None]] = [
    ("a fresh service may restart", {}, {}, True, None),
    ("in back-off: wait until the next attempt", {"failures": 3, "next_attempt_at": NOW + 30}, {}, True,
     Hold(State.CRASHLOOP, Reason.CRASHLOOP, NOW + 30)),
    ("back-off just over: restart", {"failures": 3, "next_attempt_at": NOW}, {}, True, None),
    ("maxAttempts within the window: give up", {"restart_times": [NOW - 300, NOW - 200, NOW - 100]},
     {"maxAttempts": 3}, True, Hold(State.FAILED, Reason.GAVE_UP)),
    ("given up wins over back-off", {"restart_times": [NOW - 2, NOW - 1], "next_attempt_at": NOW + 10},
     {"maxAttempts": 2}, True, Hold(State.FAILED, Reason.GAVE_UP)),
    ("restarts outside the window do not count", {"restart_times": [NOW - 900, NOW - 700, NOW - 100]},
     {"maxAttempts": 3}, True, None),
    ("a narrower window forgets sooner", {"restart_times": [NOW - 300, NOW - 200, NOW - 100]},
     {"maxAttempts": 3, "window": "250s"}, True, None),
    ("no maxAttempts: never gives up", {"restart_times": [NOW - i for i in range(1, 100)]}, {}, True, None),
    ("a Job does not give up here (its backoffLimit does)", {"restart_times": [NOW - 2, NOW - 1]},
     {"maxAttempts": 2}, False, None),
    ("a Job still waits out its back-off", {"restart_times": [NOW - 2, NOW - 1], "next_attempt_at": NOW + 5},
     {"maxAttempts": 2}, False, Hold(State.CRASHLOOP, Reason.CRASHLOOP, NOW + 5)),
]


@pytest.mark.parametrize("status, policy, gives_up, expected", [c[1:] for c in RESTART_GATE],
                         ids=[c[0] for c in RESTART_GATE])
def test_restart_gate(status: dict[str, Any], policy: dict[str, Any], gives_up: bool, expected: Hold | None) -> None:
    hold = restart_gate(Status("web", **status), _policy(**policy), NOW, gives_up=gives_up)
    assert hold == expected
    if hold is not None:
        assert hold.final is (hold.state == State.FAILED)


FRESH: list[tuple[str, dict[str, Any], bool]] = [
    ("ran longer than resetAfter: a fresh failure", {"failures": 3, "state": "Running", "last_started_at": NOW - 60},
     True),
    ("ran shorter than resetAfter: still a loop", {"failures": 3, "state": "Running", "last_started_at": NOW - 59},
     False),
    ("no failures to forget", {"failures": 0, "state": "Running", "last_started_at": NOW - 600}, False),
    ("not last seen running", {"failures": 3, "state": "CrashLoopBackOff", "last_started_at": NOW - 600}, False),
    ("never started", {"failures": 3, "state": "Running", "last_started_at": 0.0}, False),
]


@pytest.mark.parametrize("status, fresh", [c[1:] for c in FRESH], ids=[c[0] for c in FRESH])
def test_fresh_failure(status: dict[str, Any], fresh: bool) -> None:
    assert gates.fresh_failure(Status("web", **status), _policy(), NOW) is fresh


@pytest.mark.parametrize("spec, container, status, state, reason, fragment", [
    # the unhealthy path and the exit path go through the same gate: same states, same reasons
    ({"healthcheck": {"test": "true"}, "restartPolicy": {"maxAttempts": 2}}, {"health": "unhealthy"},
     {"restart_times": [NOW - 2, NOW - 1]}, State.FAILED, Reason.GAVE_UP, "unhealthy and gave up after 2"),
    ({"restartPolicy": {"maxAttempts": 2}}, {"state": "exited", "exit_code": 1},
     {"restart_times": [NOW - 2, NOW - 1]}, State.FAILED, Reason.GAVE_UP, "gave up after 2 restarts within 600s"),
    ({"healthcheck": {"test": "true"}}, {"health": "unhealthy"}, {"next_attempt_at": NOW + 3},
     State.CRASHLOOP, Reason.CRASHLOOP, "unhealthy; next restart after backoff"),
    ({}, {"state": "exited", "exit_code": 1}, {"next_attempt_at": NOW + 3},
     State.CRASHLOOP, Reason.CRASHLOOP, "back-off until next attempt"),
])
def test_both_restart_paths_hold_at_the_one_gate(spec: dict[str, Any], container: dict[str, Any],
                                                 status: dict[str, Any], state: State, reason: Reason,
                                                 fragment: str) -> None:
    s = svc(**spec)
    sp = plan_service(_inp(s, [ctr(s, **container)], Status("web", **status)))
    assert (sp.state, sp.reason, sp.actions) == (state, reason, ())
    assert fragment in sp.message
    assert sp.retry_at == (status.get("next_attempt_at") if state == State.CRASHLOOP else None)


def test_a_fresh_failure_resets_the_count_for_the_later_replicas_too() -> None:
    s = svc(replicas=2, restartPolicy={"condition": "always"})
    st = Status("web", failures=5, state="Running", last_started_at=NOW - 600, next_attempt_at=NOW + 30)
    sp = plan_service(_inp(s, [ctr(s, 1, state="exited", exit_code=1), ctr(s, 2, state="exited", exit_code=1)], st))
    assert [type(a).__name__ for a in sp.actions] == ["Start", "Start"]  # neither waits out the old back-off
    assert sp.reset_backoff and sp.state == State.PENDING


# ------------------------------------------------------------------- service-level gates
def _built(**kw: Any) -> DesiredService:
    return replace(svc(build=BUILD), build_hash="h1", **kw)


SERVICE_GATES: list[tuple[str, DesiredService, dict[str, Any], ServicePlan | None]] = [
    ("plain service: no gate holds", svc(), {}, None),
    ("suspended", svc(suspended=True), {},
     ServicePlan("web", state=State.SUSPENDED, message="suspended: the controller leaves it alone",
                 health="healthy", reason=Reason.SUSPENDED)),
    ("unreadable reference", replace(svc(), ref_error="env file .env: not found"), {},
     ServicePlan("web", state=State.ERROR, message="env file .env: not found", health="healthy",
                 reason=Reason.BAD_REFERENCE)),
    ("suspended wins over an unreadable reference", replace(svc(suspended=True), ref_error="x"), {},
     ServicePlan("web", state=State.SUSPENDED, message="suspended: the controller leaves it alone",
                 health="healthy", reason=Reason.SUSPENDED)),
    ("build: the image is missing", _built(), {},
     ServicePlan("web", (Build("web", "image missing"),), State.BUILDING, message="image missing")),
    ("build: the context changed", _built(), {"image_ids": {"demo/web:1": IMAGE}, "image_builds": {"demo/web:1": "h0"}},
     ServicePlan("web", (Build("web", "build context changed"),), State.BUILDING, message="build context changed")),
    ("build: up to date", _built(), {"image_ids": {"demo/web:1": IMAGE}, "image_builds": {"demo/web:1": "h1"}}, None),
    ("build context not hashed yet: no build", svc(build=BUILD), {}, None),
]


@pytest.mark.parametrize("service, lookups, expected", [c[1:] for c in SERVICE_GATES],
                         ids=[c[0] for c in SERVICE_GATES])
def test_service_level_gates(service: DesiredService, lookups: dict[str, Any], expected: ServicePlan | None) -> None:
    inp = _inp(service, [ctr(service, health="healthy")], None, **lookups)
    status = Status("web", health="healthy")
    held = gates.suspended(inp, status) or gates.bad_reference(inp, status) or gates.build(inp)
    assert held == expected
    sp = plan_service(replace(inp, status=status))
    if expected is not None:
        assert sp == expected  # a gate that holds is the whole plan
    else:
        assert sp.state not in (State.SUSPENDED, State.ERROR, State.BUILDING)


UPDATE = {"parallelism": 1, "monitor": "5s"}


@pytest.mark.parametrize("failure_action, revision, container, from_gen, kind, expected", [
    ("rollback", True, {"state": "exited", "exit_code": 3}, 1, "Service", (State.UPDATING, Rollback)),
    ("rollback", True, {"health": "unhealthy"}, 1, "Service", (State.UPDATING, Rollback)),
    ("rollback", True, {"created": NOW - 10, "health": "starting"}, 1, "Service", (State.UPDATING, Rollback)),
    ("rollback", True, {"created": NOW - 1, "health": "starting"}, 1, "Service", None),  # within the monitor
    ("rollback", True, {"created": NOW - 10, "health": "healthy"}, 1, "Service", None),  # ready: it went well
    ("rollback", False, {"state": "exited", "exit_code": 3}, 1, "Service", None),  # nothing to roll back to
    ("pause", True, {"state": "exited", "exit_code": 3}, 1, "Service", (State.PAUSED, None)),
    ("pause", False, {"state": "exited", "exit_code": 3}, 1, "Service", (State.PAUSED, None)),
    ("rollback", True, {"state": "exited", "exit_code": 3}, 0, "Service", None),  # no rollout in progress
    ("rollback", True, {"state": "exited", "exit_code": 3}, 2, "Service", None),  # rolled back already
    ("rollback", True, {"state": "exited", "exit_code": 3}, 1, "Job", None),  # a Job is not rolled out
], ids=["exited", "unhealthy", "not ready", "within monitor", "ready", "no revision", "pause", "pause without revision",
        "no rollout", "same generation", "job"])
def test_rollout_gate(failure_action: str, revision: bool, container: dict[str, Any], from_gen: int, kind: str,
                      expected: tuple[State, type | None] | None) -> None:
    update = {**UPDATE, "failureAction": failure_action}
    image = "demo/job:1" if kind == "Job" else "demo/web:1"
    spec: dict[str, Any] = {"image": image, "command": ["sh", "-c", "exit 3"]}
    if kind != "Job":  # a Job has no update policy (it is never rolled out)
        spec.update(update=update, healthcheck={"test": "true"})
    new = prepare("web", kind, 2, spec, False)
    revisions = {("web", 1): spec_of(update=update, image=image)} if revision else {}
    st = Status("web", observed_generation=1, rollout_from_generation=from_gen, rollout_started_at=NOW - 10)
    extra = ctr(new, 2)  # beyond the desired count: removed whatever the gate decides
    inp = _inp(new, [], st, revisions=revisions)
    removal = Remove("web", 2, extra.id, extra.name, "scaled down to 1 replicas")
    held = gates.rollout(inp, st, [ctr(new, **{"created": NOW - 1, **container})], [removal])
    if expected is None:
        assert held is None
        return
    assert held is not None
    state, action = expected
    assert held.state == state and held.actions[0] == removal
    assert [type(a) for a in held.actions[1:]] == ([action] if action else [])
    if action is Rollback:
        assert held.actions[1] == Rollback("web", 1, f"rollout of generation 2 failed: {held.message}")


# ----------------------------------------------------------------- states and reasons
@pytest.mark.parametrize("states, expected", [
    ([], State.PENDING),
    ([State.RUNNING], State.RUNNING),
    ([State.RUNNING, State.PENDING], State.PENDING),
    ([State.COMPLETED, State.RUNNING], State.RUNNING),
    ([State.UPDATING, State.WAITING], State.WAITING),
    ([State.EXITED, State.WAITING, State.RUNNING], State.EXITED),
    ([State.CRASHLOOP, State.EXITED], State.CRASHLOOP),
    ([State.PAUSED, State.CRASHLOOP], State.PAUSED),
    ([State.RUNNING, State.FAILED, State.PAUSED], State.FAILED),
])
def test_the_worst_replica_state_is_the_service_state(states: list[State], expected: State) -> None:
    assert worst(states) == expected


def test_states_are_the_strings_the_store_and_the_cli_show() -> None:
    assert [s.value for s in State] == ["Failed", "Error", "RolloutPaused", "CrashLoopBackOff", "Exited", "Waiting",
                                        "Building", "Updating", "Starting", "Pending", "Running", "Completed",
                                        "Suspended"]
    assert State("CrashLoopBackOff") is State.CRASHLOOP and f"{State.RUNNING}" == "Running"
    assert [s.severity for s in State] == sorted(s.severity for s in State)  # declared worst first
    assert State.FAILED.severity < State.CRASHLOOP.severity < State.PENDING.severity < State.RUNNING.severity


@pytest.mark.parametrize("reason, blocking", [(r, r in {"GaveUp", "BackoffLimitExceeded", "UnreadableReference",
                                                       "ImageMissing", "PortInUse", "NameConflict"}) for r in Reason])
def test_which_reasons_block(reason: Reason, blocking: bool) -> None:
    assert reason.blocking is blocking and (reason in BLOCKING_REASONS) is blocking
    assert (str(reason.value) in BLOCKING_REASONS) is blocking  # as read back from the store: a plain str


def _sp(name: str, state: State = State.WAITING, reason: Reason = Reason.NONE, *on: Unmet) -> ServicePlan:
    # the message says the opposite of the typed fields: it must not matter
    return ServicePlan(name, state=state, reason=reason, waiting_on=on, message="Failed: gave up, blocked")


@pytest.mark.parametrize("plans, blocked", [
    ([_sp("web", State.RUNNING)], set()),
    ([_sp("web", State.FAILED, Reason.GAVE_UP)], {"web"}),
    ([_sp("web", State.CRASHLOOP, Reason.CRASHLOOP)], {"web"}),
    ([_sp("web", State.ERROR, Reason.IMAGE_MISSING)], {"web"}),
    ([_sp("web", State.ERROR, Reason.ACTION_FAILED)], set()),  # may succeed on the next attempt
    ([_sp("web", State.WAITING, Reason.DEPENDENCY, Unmet("db", "healthy"))], set()),
    ([_sp("web", State.WAITING, Reason.DEPENDENCY, Unmet("db", "healthy", Problem.MISSING))], {"web"}),
    ([_sp("db", State.FAILED, Reason.BACKOFF_LIMIT),
      _sp("api", State.WAITING, Reason.DEPENDENCY, Unmet("db", "completed")),
      _sp("web", State.WAITING, Reason.DEPENDENCY, Unmet("api", "healthy")),
      _sp("other", State.WAITING, Reason.DEPENDENCY, Unmet("cache", "started"))], {"db", "api", "web"}),
], ids=["running", "gave up", "crash loop", "image missing", "action failed", "waits", "waits for a missing one",
        "transitively"])
def test_blocked_services_come_from_typed_fields(plans: list[ServicePlan], blocked: set[str]) -> None:
    assert _blocked(Plan({sp.name: sp for sp in plans})) == blocked
