"""Podman's event words read in Docker's (``controller.engine.in_dockers_words``): Podman
4.3's Docker-compatible API streams ``remove`` where Docker streams ``destroy`` (and
``exec``/``exec_died`` for ``exec_start``/``exec_die``); the loop wakes a service on
``destroy``, so before the translation a container removed on Podman was noticed only at
the next resync."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller import labels as L
from controller.engine import in_dockers_words
from controller.loop import Controller, LoopOptions
from controller.observed import EngineEvent
from store import Store


def _ev(action: str, *, status: bool = True, type_: str | None = "container") -> dict[str, Any]:
    ev: dict[str, Any] = {"Action": action, "Actor": {"ID": "c0ffee", "Attributes": {L.SERVICE: "web"}},
                          "time": 1, "timeNano": 1_000_000_000}
    if status:
        ev["status"] = action
    if type_ is not None:
        ev["Type"] = type_
    return ev


@pytest.mark.parametrize(("event", "action", "status"), [
    (_ev("remove"), "destroy", "destroy"),  # Podman 4.3, `docker rm -f` through its API
    (_ev("remove", type_=None), "destroy", "destroy"),  # no Type: the stream is filtered to containers
    (_ev("remove", status=False), "destroy", None),  # no legacy status key: none is added
    (_ev("exec_died"), "exec_die", "exec_die"),
    (_ev("exec"), "exec_start", "exec_start"),
    (_ev("destroy"), "destroy", "destroy"),  # Docker's own words pass through
    (_ev("die"), "die", "die"),
    (_ev("exec_start: sh -c true"), "exec_start: sh -c true", "exec_start: sh -c true"),
    (_ev("health_status: healthy"), "health_status: healthy", "health_status: healthy"),
    (_ev("cleanup"), "cleanup", "cleanup"),  # libpod only, no Docker counterpart: as it is
    (_ev("init"), "init", "init"),
    (_ev("remove", type_="image"), "remove", "remove"),  # not a container event: untouched
])
def test_podman_event_actions_are_read_in_dockers_words(event: dict[str, Any], action: str, status: str | None) -> None:
    out = in_dockers_words(event)
    assert out["Action"] == action
    assert out.get("status") == status
    assert out["Actor"] == event["Actor"] and out["timeNano"] == event["timeNano"]
    assert EngineEvent.from_engine(out).kind == action.split(":")[0]


class _NoEngine:
    pass


@pytest.fixture
def ctl(tmp_path: Path) -> Iterator[Controller]:
    store = Store.open(str(tmp_path / "state.db"))
    c = Controller(store, _NoEngine(), LoopOptions(watch_files=False), clock=lambda: 50_000.0)  # type: ignore[arg-type]
    try:
        yield c
    finally:
        c.reconciler.close()
        store.close()


@pytest.mark.parametrize(("raw", "queued"), [
    (_ev("remove"), True),  # Podman's removal now wakes the service, as Docker's destroy does
    (_ev("destroy"), True),
    (_ev("exec_died"), False),  # probes: not a reason to look, on either engine
    (_ev("cleanup"), False),
])
def test_a_container_removed_on_podman_wakes_its_service(ctl: Controller, raw: dict[str, Any], queued: bool) -> None:
    assert ctl.queue.get_nowait() is None
    ctl._on_event(in_dockers_words(raw))
    batch = ctl.queue.get_nowait()
    assert (batch is not None and batch.keys == {"web"}) is queued


@pytest.mark.parametrize(("event", "wakes"), [
    (_ev("die"), "die"),
    (_ev("health_status: healthy"), "health_status"),  # the detail is not part of the action
    (_ev("start", status=False), "start"),
    (in_dockers_words(_ev("remove")), "destroy"),  # Podman's word, translated first
    (_ev("exec_create: true"), ""),  # a health check's probe: three execs per probe
    (_ev("exec_start: true"), ""),
    (_ev("exec_die"), ""),
    (in_dockers_words(_ev("exec_died")), ""),
    (_ev("attach"), ""),
    ({"Actor": {}}, ""),  # no action at all
])
def test_only_the_watched_actions_wake_a_pass(event: dict[str, Any], wakes: str) -> None:
    from controller.engine import watched_action

    assert watched_action(event) == wakes


class _StreamEngine:
    """An engine whose event stream is a fixed list (the inline converge's wakeups read it)."""

    def __init__(self, events: list[dict[str, Any]]):
        self.events = events

    def open_events(self, instance: str, since: float | None = None) -> tuple[Iterator[dict[str, Any]], Any]:
        return iter(self.events), lambda: None


@pytest.mark.parametrize(("events", "woken"), [
    ([_ev("exec_create: true"), _ev("exec_start: true"), _ev("exec_die")], False),  # probes only
    ([_ev("exec_die"), _ev("health_status: unhealthy")], True),
    ([in_dockers_words(_ev("remove"))], True),
])
def test_an_inline_converge_wakes_on_watched_events_only(events: list[dict[str, Any]], woken: bool) -> None:
    from controller.operations import EngineWakeups

    wake = EngineWakeups(_StreamEngine(events), "inst", since=0)  # type: ignore[arg-type]
    wake._thread.join(timeout=5)  # the list is read to its end
    assert not wake._thread.is_alive()
    assert wake.wait(0) is woken
    wake.close()
