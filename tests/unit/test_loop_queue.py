"""controller.loop's use of the work queue, on a fake clock and a fake engine seam: which
engine events queue which names (and the rechecks after a death), and a pass whose own
look times out (audited once, its names retried after the error's delay)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from sqlalchemy.exc import OperationalError

from controller import labels as L
from controller.errors import EngineTimeout
from controller.loop import RECHECKS_AFTER_DEATH, Controller, LoopOptions, store_retry_delay
from controller.observed import Observed
from controller.workqueue import Batch
from store import Store


class Clock:
    def __init__(self) -> None:
        self.now = 50_000.0

    def __call__(self) -> float:
        return self.now


class HungEngine:
    """An engine whose container list never answers in time."""

    def list_owned(self, instance: str, service: str | None = None) -> list[Observed]:
        raise EngineTimeout("containers.list", "", 8.0)

    def images(self) -> tuple[dict[str, str], dict[str, str]]:
        return {}, {}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ctl(tmp_path: Path, clock: Clock) -> Iterator[Controller]:
    store = Store.open(str(tmp_path / "state.db"))
    c = Controller(store, HungEngine(), LoopOptions(watch_files=False), clock=clock)  # type: ignore[arg-type]
    try:
        yield c
    finally:
        c.reconciler.close()
        store.close()


def _drain(c: Controller) -> Batch | None:
    batch = c.queue.get_nowait()
    for k in batch.keys if batch else ():
        c.queue.done(k)
    return batch


def _event(action: str, service: str | None) -> dict[str, Any]:
    attrs = {L.SERVICE: service} if service else {}
    return {"Action": action, "Actor": {"Attributes": attrs}, "time": 1}


@pytest.mark.parametrize(("event", "queued", "rechecks"), [
    (_event("die", "web"), True, True),
    (_event("kill", "web"), True, True),
    (_event("health_status: unhealthy", "web"), True, False),
    (_event("start", "web"), True, False),
    (_event("exec_start: sh -c true", "web"), False, False),  # probes: not a reason to look
    (_event("die", None), False, False),  # not one of ours
])
def test_engine_events_queue_their_service(ctl: Controller, clock: Clock, event: dict[str, Any],
                                           queued: bool, rechecks: bool) -> None:
    ctl._on_event(event)
    batch = _drain(ctl)
    assert (batch is not None and batch.keys == {"web"}) is queued
    looks = 0
    for after in RECHECKS_AFTER_DEATH:
        clock.now = 50_000.0 + after
        looks += _drain(ctl) is not None
    assert looks == (len(RECHECKS_AFTER_DEATH) if rechecks else 0)


def test_a_pass_whose_list_times_out_is_audited_once_and_retried_after_its_delay(
        ctl: Controller, clock: Clock) -> None:
    for _ in range(2):
        ctl.queue.add("web")
        batch = ctl.queue.get_nowait()
        assert batch is not None
        ctl._pass(batch)
        assert ctl.queue.processing() == frozenset(), "released"
        clock.now += 1.99
        assert _drain(ctl) is None
        clock.now += 0.02  # EngineTimeout(8 s) asks for 2 s
        assert _drain(ctl) == Batch(frozenset({"web"}), full=False)
    rows = ctl.store.events_after(0, types=["EngineDegraded"])
    assert [r.reason for r in rows] == ["containers.list timed out after 8s"], "once per episode"


class QuietEngine(HungEngine):
    """An engine with nothing on it that answers at once."""

    def list_owned(self, instance: str, service: str | None = None) -> list[Observed]:
        return []

    def runs_healthchecks(self) -> bool:
        return True


def test_store_retry_delay_doubles_to_a_bound() -> None:
    assert [store_retry_delay(n) for n in (1, 2, 3, 4, 5, 6, 7, 50)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_a_pass_that_cannot_read_the_store_does_nothing_and_retries_with_backoff(
        tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.open(str(tmp_path / "state.db"))
    listed: list[str] = []

    class Engine(QuietEngine):
        def list_owned(self, instance: str, service: str | None = None) -> list[Observed]:
            listed.append(instance)
            return []

    c = Controller(store, Engine(), LoopOptions(watch_files=False), clock=clock)  # type: ignore[arg-type]
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="ERROR")
    refused = OperationalError("SELECT", {}, Exception("connection refused"))
    try:
        monkeypatch.setattr(store, "desired", lambda: (_ for _ in ()).throw(refused))
        for delay in (1.0, 2.0, 4.0):
            c.queue.add("web")
            batch = c.queue.get_nowait()
            assert batch is not None
            c._pass(batch)
            assert c.queue.processing() == frozenset(), "released"
            clock.now += delay - 0.01
            assert _drain(c) is None
            clock.now += 0.02
            assert _drain(c) == Batch(frozenset({"web"}), full=False)
        assert listed == [], "stopped before looking at (or touching) any container"
        assert c.store_down_since is not None
        assert len(lines) == 1 and "connection refused" in lines[0] and "retrying in 1s" in lines[0]
        assert "Traceback" not in lines[0]
        monkeypatch.undo()  # the store answers again
        c.queue.add("web")
        batch = c.queue.get_nowait()
        assert batch is not None
        c._pass(batch)
        assert listed and c.store_down_since is None and c._store_failures == 0
    finally:
        logger.remove(sink)
        c.reconciler.close()
        store.close()
