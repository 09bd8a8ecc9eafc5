"""The engine seam's typed side: how an engine refusal (HTTP status and message) maps onto
the error tree (``engine.refusal``, one table), which messages name a missing network,
and the typed records built from the engine's documents (an inspect's ``ContainerDetail``,
a stream's ``EngineEvent``), as Docker 20.10 / 26.1 and Podman 4.3 write them."""

from __future__ import annotations

from typing import Any

import pytest

from controller.engine import network_missing, refusal
from controller.errors import (NameConflict, NetworkMissing, NotFound, PortInUse, ReconcileError, StaleTask,
                               TerminalError, TransientError)
from controller.observed import ContainerDetail, EngineEvent, HealthState, ProbeLog

TASK = "task " + "ab" * 32 + ": already exists"


@pytest.mark.parametrize(("what", "status", "text", "error", "message"), [
    ("containers.remove", 409, "removal of container x is already in progress", TransientError,
     "engine busy: removal of container x is already in progress"),
    ("containers.create", 409, "Conflict. The container name \"/web-1\" is already in use", NameConflict,
     "Conflict. The container name \"/web-1\" is already in use"),
    ("containers.create", 500, "web-1: that name is already in use", NameConflict, "web-1: that name is already in use"),
    ("containers.start", 500, "Bind for 0.0.0.0:8080 failed: port is already allocated", PortInUse,
     "host port taken: Bind for 0.0.0.0:8080 failed: port is already allocated"),
    ("containers.start", 500, "listen tcp 127.0.0.1:80: bind: address already in use", PortInUse,
     "host port taken: listen tcp 127.0.0.1:80: bind: address already in use"),
    ("containers.start", 500, TASK, StaleTask, f"the engine cannot start it again: {TASK}"),
    ("containers.restart", 500, TASK, StaleTask, f"the engine cannot start it again: {TASK}"),
    ("containers.create", 500, TASK, TransientError, f"engine error: {TASK}"),  # only a start is stale
    ("containers.start", 503, "overloaded", TransientError, "engine error: overloaded"),
    ("containers.create", 400, "invalid mount config", ReconcileError,
     "engine refused containers.create: invalid mount config"),
])
def test_a_refusal_maps_onto_the_error_tree(what: str, status: int, text: str, error: type[Exception],
                                           message: str) -> None:
    exc = refusal(what, status, text)
    assert type(exc) is error
    assert str(exc) == message


@pytest.mark.parametrize(("status", "retry_after"), [(409, 1.0), (500, 2.0), (503, 2.0)])
def test_transient_refusals_carry_their_delay(status: int, retry_after: float) -> None:
    exc = refusal("containers.remove", status, "removal of container x is already in progress"
                  if status == 409 else "boom")
    assert isinstance(exc, TransientError)
    assert exc.retry_after == retry_after


@pytest.mark.parametrize(("text", "missing"), [
    ("network web_default not found", True),  # Docker
    ("unable to find network with name or ID web_default: network not found", True),  # Podman
    ("No such container: web-1", False),
    ("network web_default is in use", False),
])
def test_network_missing(text: str, missing: bool) -> None:
    assert network_missing(text) is missing


def test_network_missing_is_a_terminal_not_found() -> None:
    assert issubclass(NetworkMissing, NotFound) and issubclass(NetworkMissing, TerminalError)


INSPECT: dict[str, Any] = {
    "Id": "cd" * 32, "Name": "/web-1",
    "State": {"Running": True, "ExitCode": 0, "StartedAt": "2024-05-01T15:32:11.123456789Z",
              "FinishedAt": "0001-01-01T00:00:00Z",
              "Health": {"Status": "healthy", "FailingStreak": 0,
                         "Log": [{"Start": "2024-05-01T15:32:12Z", "End": "2024-05-01T15:32:13Z", "ExitCode": 0,
                                  "Output": "ok\n"}]}},
    "Config": {"Labels": {"io.reconcile.service": "web"}},
}


@pytest.mark.parametrize(("data", "want"), [
    (INSPECT, ContainerDetail(id="cd" * 32, name="web-1", running=True, started_at=1714577531.123456, finished_at=0.0,
                              exit_code=0, health=HealthState("healthy", (ProbeLog(0, "2024-05-01T15:32:12Z",
                                                                                   "2024-05-01T15:32:13Z", "ok\n"),)),
                              labels={"io.reconcile.service": "web"})),
    ({"Id": "x", "State": {"Running": False, "ExitCode": 137}},
     ContainerDetail(id="x", name="", running=False, started_at=0.0, finished_at=0.0, exit_code=137, health=None)),
    ({"Id": "y", "State": {"Health": {"Status": "starting", "Log": None}}},
     ContainerDetail(id="y", name="", running=False, started_at=0.0, finished_at=0.0, exit_code=None,
                     health=HealthState("starting"))),
])
def test_container_detail_from_inspect(data: dict[str, Any], want: ContainerDetail) -> None:
    got = ContainerDetail.from_inspect(data)
    assert got == want
    assert got.labels == want.labels


@pytest.mark.parametrize(("ev", "want", "kind"), [
    ({"Type": "container", "Action": "health_status: healthy", "time": 1714577531,
      "Actor": {"ID": "cd" * 32, "Attributes": {"io.reconcile.service": "web", "name": "web-1"}}},
     EngineEvent("health_status: healthy", "web", "cd" * 32, 1714577531), "health_status"),
    ({"status": "die", "id": "ef" * 32, "time": 5, "Actor": {"Attributes": {}}},  # the old (pre-1.22) fields
     EngineEvent("die", "", "ef" * 32, 5), "die"),
    ({"Action": "exec_start: sh -c true", "Actor": {"ID": "a"}}, EngineEvent("exec_start: sh -c true", "", "a", None),
     "exec_start"),
])
def test_engine_event_from_the_stream(ev: dict[str, Any], want: EngineEvent, kind: str) -> None:
    got = EngineEvent.from_engine(ev)
    assert got == want
    assert got.kind == kind
