"""controller.planner: (desired, observed, status, now) -> actions. Pure, so the world is
built by hand: DesiredService from render.prepare, Observed containers, store Status."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest

from controller.actions import Action, Create, Recreate, Remove, Restart, Rollback, Start
from controller.observed import Observed
from controller.planner import (CRASHLOOP, EXITED, FAILED, PENDING, RUNNING, SUSPENDED, Lookups, PlanInput, plan,
                                plan_service)
from controller.render import DesiredService, prepare
from store.records import Status

NOW = 100_000.0
CID = "c1" + "0" * 62
HC = {"test": "curl -f http://localhost/", "interval": "5s"}
_ids = itertools.count(1)


def svc(name: str = "web", generation: int = 1, suspended: bool = False, **spec: Any) -> DesiredService:
    return prepare(name, "Service", generation, {"image": "demo/web:1", **spec}, suspended)


def spec_of(name: str = "web", **spec: Any) -> dict[str, Any]:
    """The spec as the store keeps it (canonical, defaults left out)."""
    return svc(name, **spec).spec.model_dump(mode="json", exclude_defaults=True)


def ctr(s: DesiredService, replica: int = 1, *, id: str | None = None, state: str = "running",
        exit_code: int | None = None, health: str = "", created: float = 1.0, image_id: str = "",
        spec_hash: str | None = None, generation: int | None = None) -> Observed:
    cid = id or f"{next(_ids):064x}"
    return Observed(
        id=cid, name=f"{s.name}-{replica}", service=s.name, replica=replica, instance="inst",
        spec_hash=s.container_hash if spec_hash is None else spec_hash,
        generation=s.generation if generation is None else generation, state=state,
        exit_code=exit_code, health=health, image_id=image_id, created=created,
    )


# (id, spec, container (None = missing), status fields, expected actions as (type, attrs),
#  expected state, converged, a fragment of the first action's reason or the message)
SINGLE: list[tuple[str, dict[str, Any], dict[str, Any] | None, dict[str, Any], list[tuple[type, dict[str, Any]]],
                   str, bool, str]] = [
    ("missing container -> Create", {}, None, {}, [(Create, {"replica": 1})], PENDING, False, "container missing"),
    ("missing container after a known one", {}, None, {"container_id": "deadbeef" * 8},
     [(Create, {})], PENDING, False, "previous container deadbeefdead is gone"),
    ("running and matching -> nothing", {}, {}, {}, [], RUNNING, True, ""),
    ("running, healthy", {"healthcheck": HC}, {"health": "healthy"}, {}, [], RUNNING, True, ""),
    ("running, health starting -> not converged yet", {"healthcheck": HC}, {"health": "starting"}, {}, [], RUNNING,
     False, ""),
    ("created -> Start", {}, {"state": "created"}, {}, [(Start, {"container_id": CID, "restart": False})], PENDING,
     False, "never started"),
    ("exited 1, always -> restart", {"restartPolicy": "always"}, {"state": "exited", "exit_code": 1}, {},
     [(Start, {"container_id": CID, "restart": True})], PENDING, False, "exited with code 1"),
    ("exited 0, always -> restart", {}, {"state": "exited", "exit_code": 0}, {},
     [(Start, {"restart": True})], PENDING, False, "exited with code 0"),
    ("exited 137 -> restart, says killed", {}, {"state": "exited", "exit_code": 137}, {},
     [(Start, {"restart": True})], PENDING, False, "code 137 (killed"),
    ("dead, always -> restart", {}, {"state": "dead"}, {}, [(Start, {"restart": True})], PENDING, False,
     "container is dead"),
    ("on-failure, exit 0 -> nothing", {"restartPolicy": "on-failure"}, {"state": "exited", "exit_code": 0}, {},
     [], EXITED, True, "exited with code 0"),
    ("on-failure, exit 2 -> restart", {"restartPolicy": "on-failure"}, {"state": "exited", "exit_code": 2}, {},
     [(Start, {"restart": True})], PENDING, False, "exited with code 2"),
    ("never, exit 1 -> nothing", {"restartPolicy": "never"}, {"state": "exited", "exit_code": 1}, {},
     [], EXITED, True, "restartPolicy never"),
    ("in backoff -> wait", {}, {"state": "exited", "exit_code": 1}, {"failures": 3, "next_attempt_at": NOW + 30},
     [], CRASHLOOP, False, "back-off"),
    ("backoff over -> restart", {}, {"state": "exited", "exit_code": 1},
     {"failures": 3, "next_attempt_at": NOW - 0.5}, [(Start, {"restart": True})], PENDING, False, "code 1"),
    ("maxAttempts reached within the window -> Failed", {"restartPolicy": {"maxAttempts": 3}},
     {"state": "exited", "exit_code": 1}, {"restart_times": [NOW - 300, NOW - 200, NOW - 100]},
     [], FAILED, True, "gave up after 3 restarts"),
    ("maxAttempts, older restarts outside the window -> restart", {"restartPolicy": {"maxAttempts": 3}},
     {"state": "exited", "exit_code": 1}, {"restart_times": [NOW - 900, NOW - 700, NOW - 100]},
     [(Start, {"restart": True})], PENDING, False, "code 1"),
    ("unhealthy -> Restart", {"healthcheck": HC}, {"health": "unhealthy"}, {},
     [(Restart, {"container_id": CID})], PENDING, False, "unhealthy"),
    ("unhealthy, onUnhealthy recreate -> Recreate", {"healthcheck": HC, "onUnhealthy": "recreate"},
     {"health": "unhealthy"}, {}, [(Recreate, {"container_id": CID, "changed_fields": ("health",)})], PENDING,
     False, "unhealthy"),
    ("unhealthy, onUnhealthy ignore -> nothing", {"healthcheck": HC, "onUnhealthy": "ignore"},
     {"health": "unhealthy"}, {}, [], RUNNING, False, ""),
    ("unhealthy within startPeriod -> nothing", {"healthcheck": {**HC, "startPeriod": "1m"}},
     {"health": "unhealthy"}, {"last_started_at": NOW - 30}, [], RUNNING, False, ""),
    ("unhealthy after startPeriod -> Restart", {"healthcheck": {**HC, "startPeriod": "1m"}},
     {"health": "unhealthy"}, {"last_started_at": NOW - 61}, [(Restart, {})], PENDING, False, "unhealthy"),
    ("unhealthy in backoff -> wait", {"healthcheck": HC}, {"health": "unhealthy"},
     {"failures": 2, "next_attempt_at": NOW + 10}, [], CRASHLOOP, False, "backoff"),
    ("unhealthy, gave up -> Failed", {"healthcheck": HC, "restartPolicy": {"maxAttempts": 2}},
     {"health": "unhealthy"}, {"restart_times": [NOW - 20, NOW - 10]}, [], FAILED, False, "gave up after 2"),
    ("unhealthy but no healthcheck in the spec -> nothing", {}, {"health": "unhealthy"}, {}, [], RUNNING, True, ""),
    ("a state the planner does not know -> nothing yet", {}, {"state": "stopped", "exit_code": 1}, {}, [], PENDING,
     False, "in state stopped; waiting for it to settle"),
    ("no state at all -> nothing yet", {}, {"state": ""}, {}, [], PENDING, False, "in state (none)"),
    ("suspended, missing -> nothing", {"suspended": True}, None, {}, [], SUSPENDED, False, "suspended"),
    ("suspended, exited -> nothing", {"suspended": True}, {"state": "exited", "exit_code": 1}, {}, [], SUSPENDED,
     False, "suspended"),
    ("suspended, unhealthy -> nothing", {"suspended": True, "healthcheck": HC}, {"health": "unhealthy"}, {}, [],
     SUSPENDED, False, "suspended"),
]


@pytest.mark.parametrize(("spec", "container", "status", "expected", "state", "converged", "fragment"),
                         [c[1:] for c in SINGLE], ids=[c[0] for c in SINGLE])
def test_plan_service(spec: dict[str, Any], container: dict[str, Any] | None, status: dict[str, Any],
                      expected: list[tuple[type, dict[str, Any]]], state: str, converged: bool,
                      fragment: str) -> None:
    spec = dict(spec)
    suspended = spec.pop("suspended", False)
    s = svc(suspended=suspended, **spec)
    containers = [] if container is None else [ctr(s, id=CID, **container)]
    sp = plan_service(PlanInput(s, containers, Status("web", **status), {}, {}, NOW))
    assert [type(a) for a in sp.actions] == [t for t, _ in expected]
    for action, (_, attrs) in zip(sp.actions, expected):
        assert action.service == "web" and action.replica == 1
        for key, value in attrs.items():
            assert getattr(action, key) == value
    assert sp.state == state
    assert sp.converged is converged
    text = sp.actions[0].reason if sp.actions else sp.message
    assert fragment in text


ROLLOUT_UPDATE = {"parallelism": 1, "monitor": "5s", "failureAction": "rollback"}


@pytest.mark.parametrize(("state", "exit_code", "planned"), [
    ("exited", 3, Rollback),  # the broken new container died: roll back, never restart it
    ("dead", None, Rollback),
    ("running", None, None),  # within the monitor: wait
    ("stopped", 3, None),  # a state the planner does not know: neither restart nor roll back on it
])
def test_a_failed_rollout_is_rolled_back_and_its_container_never_restarted(
        state: str, exit_code: int | None, planned: type | None) -> None:
    new = svc(generation=2, update=ROLLOUT_UPDATE, command=["sh", "-c", "exit 3"])
    revisions = {("web", 1): spec_of(update=ROLLOUT_UPDATE)}
    st = Status("web", observed_generation=1, rollout_from_generation=1, rollout_started_at=NOW - 1)
    sp = plan_service(PlanInput(new, [ctr(new, state=state, exit_code=exit_code, created=NOW - 1)], st, revisions, {}, NOW))
    assert [type(a) for a in sp.actions] == ([planned] if planned else [])
    assert not [a for a in sp.actions if isinstance(a, (Start, Restart))]


def test_waiting_in_backoff_reports_when_to_look_again() -> None:
    s = svc()
    sp = plan_service(PlanInput(s, [ctr(s, state="exited", exit_code=1)], Status("web", failures=2, next_attempt_at=NOW + 42),
                      {}, {}, NOW))
    assert sp.retry_at == NOW + 42
    ok = plan_service(PlanInput(s, [ctr(s)], Status("web"), {}, {}, NOW))
    assert ok.retry_at is None


def test_no_status_is_a_fresh_service() -> None:
    s = svc()
    sp = plan_service(PlanInput(s, [ctr(s, state="exited", exit_code=1)], None, {}, {}, NOW))
    assert [type(a) for a in sp.actions] == [Start]


def test_stable_running_service_resets_backoff() -> None:
    s = svc()
    st = Status("web", failures=4, last_started_at=NOW - 61)
    assert plan_service(PlanInput(s, [ctr(s)], st, {}, {}, NOW)).reset_backoff is True
    st = Status("web", failures=4, last_started_at=NOW - 10)
    assert plan_service(PlanInput(s, [ctr(s)], st, {}, {}, NOW)).reset_backoff is False


OLD_SPEC: dict[str, Any] = {"image": "demo/web:1", "env": {"A": "1"}, "ports": ["8080:80"], "healthcheck": HC}


@pytest.mark.parametrize(
    ("new", "fields"),
    [
        ({"image": "demo/web:2"}, ("image",)),
        ({"env": {"A": "2"}}, ("env.A",)),
        ({"env": {"A": "1", "B": "1"}}, ("env.B",)),
        ({"ports": ["8081:80"]}, ("ports",)),
        ({"healthcheck": {**HC, "interval": "10s"}}, ("healthcheck.interval",)),
        ({"image": "demo/web:2", "env": {"A": "3"}}, ("env.A", "image")),
        ({"volumes": ["data:/data"]}, ("volumes",)),
    ],
)
def test_changed_spec_recreates_naming_the_fields(new: dict[str, Any], fields: tuple[str, ...]) -> None:
    old = svc(generation=1, **OLD_SPEC)
    cur = svc(generation=2, **{**OLD_SPEC, **new})
    c = ctr(old, id=CID, health="healthy")
    sp = plan_service(PlanInput(cur, [c], Status("web"), {("web", 1): spec_of(**OLD_SPEC)}, {}, NOW))
    assert sp.actions == (Recreate("web", 1, CID, "spec changed: " + ", ".join(fields), fields),)
    assert sp.state == PENDING and not sp.converged


def test_changed_spec_without_the_old_revision_still_recreates() -> None:
    old, cur = svc(generation=1), svc(generation=2, image="demo/web:2")
    sp = plan_service(PlanInput(cur, [ctr(old, id=CID)], Status("web"), {}, {}, NOW))
    assert [type(a) for a in sp.actions] == [Recreate]
    assert sp.actions[0].changed_fields == ("spec (previous revision unknown)",)  # type: ignore[union-attr]


def test_policy_only_change_does_not_recreate() -> None:
    old = svc(generation=1)
    cur = svc(generation=2, restartPolicy={"condition": "on-failure", "maxAttempts": 5}, onUnhealthy="ignore")
    sp = plan_service(PlanInput(cur, [ctr(old)], Status("web"), {("web", 1): spec_of()}, {}, NOW))
    assert sp.actions == ()
    assert sp.state == RUNNING and sp.converged


def test_new_image_behind_the_same_tag_recreates() -> None:
    s = svc()
    c = ctr(s, id=CID, image_id="sha256:" + "a" * 64)
    sp = plan_service(PlanInput(s, [c], Status("web"), {}, {"demo/web:1": "sha256:" + "b" * 64}, NOW))
    assert [type(a) for a in sp.actions] == [Recreate]
    assert sp.actions[0].changed_fields == ("image id (aaaaaaaaaaaa -> bbbbbbbbbbbb)",)  # type: ignore[union-attr]
    same = plan_service(PlanInput(s, [c], Status("web"), {}, {"demo/web:1": "sha256:" + "a" * 64}, NOW))
    assert same.actions == ()


def test_duplicate_containers_for_one_replica_keep_the_newest_running_one() -> None:
    s = svc()
    keep = ctr(s, created=20.0)
    older = ctr(s, created=10.0)
    stopped = ctr(s, state="exited", exit_code=0, created=30.0)
    sp = plan_service(PlanInput(s, [older, stopped, keep], Status("web"), {}, {}, NOW))
    removes = [a for a in sp.actions if isinstance(a, Remove)]
    assert sorted(a.container_id for a in removes) == sorted([older.id, stopped.id])
    assert all(a.reason == f"duplicate of {keep.short_id}" for a in removes)
    assert len(sp.actions) == 2
    assert sp.state == RUNNING


def test_duplicate_prefers_the_container_with_the_current_spec() -> None:
    s = svc()
    stale = ctr(s, spec_hash="stale", created=50.0)  # running, but from another spec
    current = ctr(s, state="exited", exit_code=1, created=10.0)
    sp = plan_service(PlanInput(s, [stale, current], Status("web"), {}, {}, NOW))
    assert sp.actions == (
        Remove("web", 1, stale.id, stale.name, f"duplicate of {current.short_id}"),
        Start("web", 1, current.id, "container exited with code 1 (failed)", restart=True),
    )


def test_replica_beyond_the_desired_count_is_removed() -> None:
    s = svc()
    one, two = ctr(s, 1), ctr(s, 2)
    sp = plan_service(PlanInput(s, [one, two], Status("web"), {}, {}, NOW))
    assert sp.actions == (Remove("web", 2, two.id, two.name, "scaled down to 1 replicas"),)


def test_each_replica_is_planned_on_its_own() -> None:
    s = svc(replicas=3)
    one, three = ctr(s, 1), ctr(s, 3, id=CID, state="exited", exit_code=1)
    sp = plan_service(PlanInput(s, [one, three], Status("web"), {}, {}, NOW))
    assert sp.actions == (
        Create("web", 2, "container missing"),
        Start("web", 3, CID, "container exited with code 1 (failed)", restart=True),
    )
    assert sp.state == PENDING and not sp.converged


def test_scaled_to_zero_removes_every_replica() -> None:
    s = svc(replicas=0)
    c = ctr(s, 1)
    sp = plan_service(PlanInput(s, [c], Status("web"), {}, {}, NOW))
    assert sp.actions == (Remove("web", 1, c.id, c.name, "scaled down to 0 replicas"),)


def test_container_of_a_service_no_longer_desired_is_an_orphan() -> None:
    web, gone = svc("web"), svc("gone")
    w, g1, g2 = ctr(web), ctr(gone, 1), ctr(gone, 2, state="exited", exit_code=0)
    p = plan({"web": web}, [w, g1, g2], {}, now=NOW)
    assert set(p.services) == {"web"}
    assert p.services["web"].actions == ()
    assert p.orphans == (
        Remove("gone", 1, g1.id, g1.name, "no longer desired (its record was deleted)"),
        Remove("gone", 2, g2.id, g2.name, "no longer desired (its record was deleted)"),
    )
    assert p.actions == list(p.orphans)


def test_only_restricts_the_plan() -> None:
    web, api, gone = svc("web"), svc("api"), svc("gone")
    observed = [ctr(web, state="exited", exit_code=1), ctr(gone)]  # api is missing
    desired = {"web": web, "api": api}
    everything = plan(desired, observed, {}, now=NOW)
    assert set(everything.services) == {"web", "api"} and len(everything.orphans) == 1
    assert sorted(type(a).__name__ for a in everything.actions) == ["Create", "Remove", "Start"]

    p = plan(desired, observed, {}, now=NOW, only={"api"})
    assert set(p.services) == {"api"}
    assert p.orphans == ()
    assert [type(a) for a in p.actions] == [Create]

    p = plan(desired, observed, {}, now=NOW, only={"gone"})
    assert p.services == {}
    assert [a.service for a in p.orphans] == ["gone"]


def test_plan_passes_statuses_revisions_and_image_ids_through() -> None:
    old, cur = svc("web", 1), svc("web", 2, image="demo/web:2")
    crash = svc("crash")
    observed = [ctr(old, id=CID), ctr(crash, state="exited", exit_code=1)]
    p = plan({"web": cur, "crash": crash}, observed,
             {"crash": Status("crash", failures=1, next_attempt_at=NOW + 5)},
             lookups=Lookups(revisions={("web", 1): spec_of()}), now=NOW)
    assert p.services["web"].actions == (Recreate("web", 1, CID, "spec changed: image", ("image",)),)
    assert p.services["crash"].state == CRASHLOOP and p.services["crash"].actions == ()


# -- idempotence: apply the plan to a simulated world, plan again -------------

def _apply(world: list[Observed], actions: list[Action], desired: dict[str, DesiredService]) -> list[Observed]:
    """What a well-behaved engine would report after the executor ran ``actions``."""
    def fresh(s: DesiredService, replica: int) -> Observed:
        return ctr(s, replica, health="healthy" if s.spec.healthcheck else "", created=NOW)

    out = list(world)
    for a in actions:
        match a:
            case Create():
                out.append(fresh(desired[a.service], a.replica))
            case Start() | Restart():
                i = next(i for i, c in enumerate(out) if c.id == a.container_id)
                hc = desired[a.service].spec.healthcheck
                out[i] = replace(out[i], state="running", exit_code=None, health="healthy" if hc else "")
            case Recreate():
                out = [c for c in out if c.id != a.container_id]
                out.append(fresh(desired[a.service], a.replica))
            case Remove():
                out = [c for c in out if c.id != a.container_id]
    return out


def test_planning_again_after_the_actions_were_applied_yields_nothing() -> None:
    old_api = svc("api", 1)
    desired = {
        "missing": svc("missing"),
        "ok": svc("ok"),
        "crashed": svc("crashed"),
        "created": svc("created"),
        "api": svc("api", 2, image="demo/api:2"),
        "sick": svc("sick", healthcheck=HC),
        "sick2": svc("sick2", healthcheck=HC, onUnhealthy="recreate"),
        "done": svc("done", restartPolicy="on-failure"),
        "dup": svc("dup"),
    }
    world = [
        ctr(desired["ok"]),
        ctr(desired["crashed"], state="exited", exit_code=1),
        ctr(desired["created"], state="created"),
        ctr(old_api),
        ctr(desired["sick"], health="unhealthy"),
        ctr(desired["sick2"], health="unhealthy"),
        ctr(desired["done"], state="exited", exit_code=0),
        ctr(desired["dup"], created=1.0), ctr(desired["dup"], created=2.0),
        ctr(desired["dup"], 3),
        ctr(svc("orphan")),
    ]
    revisions = {("api", 1): spec_of("api")}
    first = plan(desired, world, {}, lookups=Lookups(revisions=revisions), now=NOW)
    assert len(first.actions) == 9
    world = _apply(world, first.actions, desired)
    second = plan(desired, world, {}, lookups=Lookups(revisions=revisions), now=NOW + 1)
    assert second.actions == []
    assert {n: sp.state for n, sp in second.services.items()} == {
        **{n: RUNNING for n in desired}, "done": EXITED}
    assert all(sp.converged for sp in second.services.values())
    third = plan(desired, world, {}, lookups=Lookups(revisions=revisions), now=NOW + 2)
    assert third == second  # and it stays that way


# The reasons a service waits or is blocked are data on the plan (and so in the status).
def _job(name: str = "mig", **spec: Any) -> DesiredService:
    return prepare(name, "Job", 1, {"image": "demo/job:1", **spec}, False)


@pytest.mark.parametrize("case,service,container,status,deps,reason,waiting_on", [
    ("job past its backoffLimit", _job(backoffLimit=0), {"state": "exited", "exit_code": 3}, {"failures": 0},
     {}, "BackoffLimitExceeded", ()),
    ("service that gave up", svc(restartPolicy={"condition": "always", "maxAttempts": 2}),
     {"state": "exited", "exit_code": 1}, {"restart_times": [NOW - 5, NOW - 2], "failures": 2}, {}, "GaveUp", ()),
    ("crash loop in backoff", svc(restartPolicy="always"), {"state": "exited", "exit_code": 1},
     {"failures": 2, "next_attempt_at": NOW + 30}, {}, "CrashLoop", ()),
    ("waits for a dependency", svc(dependsOn={"db": "healthy"}), None, {},
     {"db": (False, False)}, "WaitingForDependency", (("db", "healthy", ""),)),
    ("waits for a failed dependency", svc(dependsOn={"mig": "completed"}), None, {},
     {"mig": (True, False)}, "WaitingForDependency", (("mig", "completed", "failed"),)),
    ("waits for a missing dependency", svc(dependsOn={"gone": "started"}), None, {},
     {}, "WaitingForDependency", (("gone", "started", "missing"),)),
    ("running: no reason", svc(), {}, {}, {}, "", ()),
])
def test_plan_reasons_are_typed(case: str, service: DesiredService, container: dict[str, Any] | None,
                                status: dict[str, Any], deps: dict[str, tuple[bool, bool]], reason: str,
                                waiting_on: tuple[tuple[str, str, str], ...]) -> None:
    from controller.planner import DepInfo

    infos = {n: DepInfo(True, False, False, False, failed, crash, 0.0, False) for n, (failed, crash) in deps.items()}
    observed = [] if container is None else [ctr(service, **container)]
    sp = plan_service(PlanInput(service, observed, Status(name=service.name, **status), {}, {}, NOW, infos))
    assert sp.reason == reason, (case, sp)
    assert tuple((u.dependency, u.condition, u.problem) for u in sp.waiting_on) == waiting_on
