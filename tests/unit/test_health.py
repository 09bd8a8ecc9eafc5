"""Whose health check counts (controller/health.py) and the engine differences the adapter
absorbs for Podman (controller/engine.py): pure logic, a fake engine behind the protocol."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from controller.engine import Engine, _short_ref
from controller.errors import NameConflict, TransientError
from controller.health import HealthChecks
from controller.observed import ContainerDetail, Observed
from controller.probes import CONTROLLER, ENGINE, Outcome
from controller.render import prepare

HC = {"test": ["CMD", "true"], "interval": 1.0, "timeout": 1.0, "retries": 1}


class FakeEngine:
    def __init__(self, runs: bool, health: dict[str, Any] | None = None, started: str = "2026-01-01T00:00:00Z"):
        self.runs = runs
        self.health = health
        self.started = started
        self.inspects = 0

    def runs_healthchecks(self) -> bool:
        return self.runs

    def inspect(self, container_id: str) -> dict[str, Any]:
        self.inspects += 1
        return {"State": {"Health": self.health, "StartedAt": self.started, "Running": True}}

    def detail(self, container_id: str) -> ContainerDetail:
        return ContainerDetail.from_inspect(self.inspect(container_id))

    def exec_probe(self, container_id: str, argv: list[str]) -> Outcome:
        return Outcome(True, 0.0, 0, "ok")


def container(cid: str, health: str, created: float = 0.0, running: bool = True) -> Observed:
    return Observed(id=cid, name=f"web-{cid}", service="web", replica=1, instance="i", spec_hash="h", generation=1,
                    state="running" if running else "exited", exit_code=None, health=health, image_id="img",
                    created=created)


def desired(healthcheck: dict[str, Any] | None = HC) -> dict[str, Any]:
    spec: dict[str, Any] = {"image": "reconcile/demo-web:1"}
    if healthcheck:
        spec["healthcheck"] = healthcheck
    return {"web": prepare("web", "Service", 1, spec, False)}


@pytest.mark.parametrize("runs, health, seed, want_health, want_by", [
    # Docker: the engine's health, untouched
    (True, "healthy", {}, "healthy", ENGINE),
    # Podman: the controller's probes; before the first one, `starting`...
    (False, "starting", {}, "starting", CONTROLLER),
    # ...or what a controller recorded for this container earlier (a new CLI process)
    (False, "starting", {"c1": "healthy"}, "healthy", CONTROLLER),
])
def test_observe_overlays_the_controllers_health_where_the_engine_runs_no_checks(
        runs: bool, health: str, seed: dict[str, str], want_health: str, want_by: str) -> None:
    hc = HealthChecks(FakeEngine(runs), clock=lambda: 100.0)
    try:
        out = hc.observe([container("c1", health)], desired(), 100.0, seed=seed)
        assert out[0].health == want_health
        assert hc.checked_by("c1") == want_by
    finally:
        hc.close()


def test_no_healthcheck_or_stopped_container_is_never_probed() -> None:
    hc = HealthChecks(FakeEngine(False), clock=lambda: 100.0)
    try:
        out = hc.observe([container("c1", "")], desired(None), 100.0)
        assert out[0].health == "" and hc.runner is None
        hc.observe([container("c2", "", running=False)], desired(), 100.0)
        assert hc.checked_by("c2") == ENGINE
    finally:
        hc.close()


@pytest.mark.parametrize("engine_health, now, taken", [
    ({"Status": "starting", "Log": []}, 1_767_225_700.0, True),   # never probed, 100 s after start
    ({"Status": "starting", "Log": [{"ExitCode": 1}]}, 1_767_225_700.0, False),  # the engine probes
    ({"Status": "starting", "Log": []}, 1_767_225_602.0, False),  # too early to tell
])
def test_an_engine_that_leaves_a_check_unrun_is_taken_over(engine_health: dict[str, Any], now: float,
                                                           taken: bool) -> None:
    eng = FakeEngine(True, engine_health)  # StartedAt 2026-01-01T00:00:00Z = 1767225600
    hc = HealthChecks(eng, clock=lambda: now)
    try:
        hc.observe([container("c1", "starting", created=1_767_225_600.0)], desired(), now)
        assert hc.checked_by("c1") == (CONTROLLER if taken else ENGINE)
        # and it looks again only every few seconds
        before = eng.inspects
        hc.observe([container("c1", "starting", created=1_767_225_600.0)], desired(), now + 1)
        assert eng.inspects == before
    finally:
        hc.close()


@pytest.mark.parametrize("tag, short", [
    ("localhost/app:1", "app:1"),
    ("docker.io/library/app:latest", "app:latest"),
    ("docker.io/team/app:2", "team/app:2"),
    ("reconcile/demo-web:1", "reconcile/demo-web:1"),
    ("registry.example:5000/app:1", "registry.example:5000/app:1"),
])
def test_podman_image_names_are_shortened_as_docker_shows_them(tag: str, short: str) -> None:
    assert _short_ref(tag) == short


class _Resp:
    def __init__(self, status: int):
        self.status_code = status
        self.reason = "x"


@pytest.mark.parametrize("status, explanation, error", [
    (409, 'Conflict. The container name "/a" is already in use by container "b".', NameConflict),
    # Podman, on some paths: libpod's wording with a 500
    (500, "creating container storage: the container name \"a\" is already in use by b. You have to remove "
          "that container to be able to reuse that name: that name is already in use", NameConflict),
    (500, "something else broke", TransientError),
])
def test_name_conflicts_are_recognised_in_either_engines_shape(status: int, explanation: str,
                                                               error: type[Exception]) -> None:
    eng = Engine(base_url="unix:///nonexistent.sock")
    eng._api_version = "1.41"  # a fixed version: building the client asks nothing of the (absent) engine

    def fail(api: object) -> None:
        raise docker.errors.APIError("boom", response=_Resp(status), explanation=explanation)  # type: ignore[arg-type]

    with pytest.raises(error):
        eng._call("containers.create", fail)
