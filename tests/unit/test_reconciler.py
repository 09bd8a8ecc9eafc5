"""controller.reconciler with a fake engine seam (observe) and a fake executor (act), a real
SQLite store in tmp_path and a fake clock: what the queue does with each name's answer,
one engine list per pass, and never two passes acting on one service."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.actions import Action, Create
from controller.errors import EngineTimeout, NameConflict
from controller import outcomes as oc
from controller.observed import Observed
from controller.reconciler import Reconciler, ReconcilerConfig
from controller.render import DesiredService
from controller.workqueue import Batch
from crd_like import API_VERSION, ServiceSpec, spec_hash
from store import ResourceInput, Status, Store

IMAGE = "demo/web:1"


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def ExecResult(done: list[str] | None = None, errors: list[str] | None = None,  # noqa: N802 - reads as the old record
               failures: list[Exception] | None = None) -> list[oc.Outcome]:
    """What the executor reports (outcomes): ``errors`` failed actions, the i-th carrying
    ``failures[i]`` as its typed error when there is one; ``done`` alone is a run that
    did nothing wrong."""
    failures = failures or []
    if not errors:
        return [oc.Created("web", 1, "0" * 64, line, 0.0) for line in done or []]
    return [oc.Failed("web", msg, "create", msg, "", 0.0, "",
                      failures[i] if i < len(failures) else None)  # type: ignore[arg-type]
            for i, msg in enumerate(errors or [])]


class FakeEngine:
    """The engine seam the reconciler observes through: nothing runs, nothing exists."""

    def __init__(self) -> None:
        self.lists = 0
        self.observed: list[Observed] = []

    def list_owned(self, instance: str, service: str | None = None) -> list[Observed]:
        self.lists += 1
        return list(self.observed)

    def images(self) -> tuple[dict[str, str], dict[str, str]]:
        return {IMAGE: "sha256:" + "a" * 64}, {}

    def runs_healthchecks(self) -> bool:
        return True


class FakeExecutor:
    """Answers each service's actions from a script; ``gate`` holds a run in flight."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, list[Action]]] = []
        self.answer: list[oc.Outcome] = ExecResult(done=["created"])
        self.gate: threading.Event | None = None
        self.started = threading.Event()

    def run(self, svc: DesiredService | None, actions: list[Action]) -> list[oc.Outcome]:
        self.runs.append((actions[0].service, list(actions)))
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        return self.answer


def _service(name: str) -> ResourceInput:
    model = ServiceSpec.model_validate({"image": IMAGE})
    return ResourceInput(name=name, kind="Service", api_version=API_VERSION,
                         spec=model.model_dump(mode="json", exclude_defaults=True), metadata={"name": name},
                         spec_hash=spec_hash(model))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rig(tmp_path: Path, clock: Clock) -> Iterator[tuple[Reconciler, FakeEngine, FakeExecutor]]:
    store = Store.open(str(tmp_path / "state.db"))
    store.apply([_service("web"), _service("api")], source="t.yaml", actor="test", now=clock())
    engine = FakeEngine()
    rec = Reconciler(store, engine, ReconcilerConfig(actor="test", clock=clock, workers=2))  # type: ignore[arg-type]
    ex = FakeExecutor()
    rec.executor = ex  # type: ignore[assignment]
    try:
        yield rec, engine, ex
    finally:
        if ex.gate is not None:
            ex.gate.set()
        rec.close()
        store.close()


def _ready(rec: Reconciler) -> set[str]:
    batch = rec.queue.get_nowait()
    if batch is None:
        return set()
    for k in batch.keys:
        rec.queue.done(k)
    return set(batch.keys)


def test_one_engine_list_per_pass_and_every_missing_service_is_created(rig: Any) -> None:
    rec, engine, ex = rig
    result = rec.reconcile()
    assert engine.lists == 1
    assert sorted(s for s, _ in ex.runs) == ["api", "web"]
    assert all(isinstance(a, Create) for _, acts in ex.runs for a in acts)
    assert [line.split(" ")[0] for line in result.done] == ["created", "created"] and not result.errors
    assert rec.queue.processing() == frozenset(), "every name released"


def test_done_work_is_looked_at_again_at_once_and_forgets_failures(rig: Any, clock: Clock) -> None:
    rec, _engine, ex = rig
    ex.answer = ExecResult(errors=["deferred"])
    rec.reconcile({"web"})
    assert rec.queue.limiter.failures("web") == 1
    ex.answer = ExecResult(done=["created"])
    assert rec.reconcile({"web"}).skipped == {"web"}, "backing off: not acted on again yet"
    assert len(ex.runs) == 1
    clock.now += 1.01
    assert _ready(rec) == {"web"}
    rec.reconcile({"web"})
    assert len(ex.runs) == 2
    assert rec.queue.limiter.failures("web") == 0
    assert _ready(rec) == {"web"}, "queued again: the next step (or the proof it worked)"


def test_a_full_pass_leaves_a_backing_off_service_alone(rig: Any, clock: Clock) -> None:
    """A resync is a full pass: it must not bring a failing service's retry forward."""
    rec, _engine, ex = rig
    ex.answer = ExecResult(errors=["taken"], failures=[NameConflict("taken")])
    rec.reconcile({"web"})
    ex.answer = ExecResult(done=["created"])
    full = rec.reconcile()
    assert full.skipped == {"web"} and set(full.plan.services) == {"api"}
    assert [s for s, _ in ex.runs] == ["web", "api"]


@pytest.mark.parametrize(("failures", "errors", "ready_after", "counted"), [
    # transient: requeued after its delay (EngineTimeout(20 s) asks 5 s)
    ([EngineTimeout("containers.create", "web-1", 20.0)], 1, 5.0, 1),
    # terminal: recorded, not requeued; held back for the limiter's delay
    ([NameConflict("the name is taken")], 1, None, 1),
    # a failure without a typed error (a deferred restart): rate-limited, 1 s first
    ([], 1, 1.0, 1),
    # terminal and transient in one run: the transient one decides
    ([NameConflict("x"), EngineTimeout("containers.start", "web-1", 8.0)], 2, 2.0, 1),
])
def test_errors_decide_the_retry(rig: Any, clock: Clock, failures: list[Exception], errors: int,
                                 ready_after: float | None, counted: int) -> None:
    rec, _engine, ex = rig
    ex.answer = ExecResult(errors=[f"failed {i}" for i in range(errors)], failures=failures)
    result = rec.reconcile({"web"})
    assert result.errors
    assert rec.queue.limiter.failures("web") == counted
    assert _ready(rec) == set(), "never requeued at once"
    if ready_after is None:
        clock.now += 3600
        assert _ready(rec) == set(), "a terminal error is not requeued"
        return
    clock.now += ready_after - 0.05
    assert _ready(rec) == set()
    clock.now += 0.1
    assert _ready(rec) == {"web"}


def test_a_failing_service_is_not_brought_forward_by_events(rig: Any, clock: Clock) -> None:
    rec, _engine, ex = rig
    ex.answer = ExecResult(errors=["taken"], failures=[NameConflict("taken")])
    rec.reconcile({"web"})
    rec.queue.add("web")  # an event, a resync
    assert _ready(rec) == set()
    clock.now += 1.01
    assert _ready(rec) == {"web"}


def test_a_service_in_flight_is_left_out_of_a_second_pass_and_looked_at_once_done(rig: Any) -> None:
    rec, engine, ex = rig
    ex.gate = threading.Event()
    rec.reconcile({"web"}, wait=False)
    assert ex.started.wait(10)
    second = rec.reconcile(wait=False)  # its snapshot is taken while web's work is in flight
    assert second.skipped == {"web"}
    assert "web" not in second.plan.services, "not planned on a snapshot taken while it was acted on"
    assert engine.lists == 2
    assert [s for s, _ in ex.runs].count("web") == 1, "never two workers on one service"
    ex.gate.set()
    rec.pool.shutdown(wait=True)
    assert rec.queue.processing() == frozenset()
    assert "web" in _ready(rec)


def test_a_batch_cascades_to_dependents_and_releases_what_it_took(tmp_path: Path, clock: Clock) -> None:
    store = Store.open(str(tmp_path / "state.db"))
    api = ServiceSpec.model_validate({"image": IMAGE, "dependsOn": {"db": {"condition": "started"}}})
    store.apply([_service("db"), ResourceInput(name="api", kind="Service", api_version=API_VERSION,
                                               spec=api.model_dump(mode="json", exclude_defaults=True),
                                               metadata={"name": "api"}, spec_hash=spec_hash(api))],
                source="t.yaml", actor="test", now=clock())
    rec = Reconciler(store, FakeEngine(), ReconcilerConfig(actor="test", clock=clock))  # type: ignore[arg-type]
    rec.executor = FakeExecutor()  # type: ignore[assignment]
    try:
        rec.queue.add("db")
        batch = rec.queue.get_nowait()
        assert batch == Batch(frozenset({"db"}), full=False)
        result = rec.reconcile_batch(batch)
        assert set(result.plan.services) == {"db", "api"}
        rec.pool.shutdown(wait=True)
        assert rec.queue.processing() == frozenset()
    finally:
        rec.close()
        store.close()


def test_a_failing_snapshot_releases_every_name(rig: Any) -> None:
    rec, engine, _ex = rig

    def down(instance: str, service: str | None = None) -> list[Observed]:
        raise EngineTimeout("containers.list", "", 10.0)

    engine.list_owned = down
    with pytest.raises(EngineTimeout):
        rec.reconcile()
    assert rec.queue.processing() == frozenset(), "nothing stays held after a failed pass"
